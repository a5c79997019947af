//! Assembling a machine from a [`MachineConfig`] and running it to its end.
//!
//! Building: check the request (RAM size, kernel image), create guest RAM, copy the kernel
//! in, write the boot page tables, GDT, `BootInfo` and command line, create the VM (interrupt
//! controller, timer, RAM slots) and vCPU, and put the devices on the buses.
//!
//! Running: the vCPU runs on its own thread. The calling thread is the watchdog: when the
//! timeout passes, or SIGINT or SIGTERM arrives ([`install_interrupt_handlers`]), it sets
//! the stop flag and interrupts `KVM_RUN` with a signal, repeating until the vCPU thread
//! notices (a signal that lands between two `KVM_RUN`s is lost).

use std::os::unix::thread::JoinHandleExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use abi::boot::TestHook;
use abi::devices::{
    FS_DISK_GPA, FS_DISK_IRQ, SERIAL_IRQ, SERIAL_PORT, SERIAL_PORT_COUNT, SWAP_DISK_GPA,
    SWAP_DISK_IRQ, SYSCTL_PORT, SYSCTL_PORT_COUNT, VIRTIO_MMIO_SIZE,
};
use abi::layout::{self, BOOT_GDT_GPA, BOOT_INFO_GPA, CMDLINE_GPA, KERNEL_MIN_FREE_BYTES};
use abi::stats::EvictPolicy;
use std::fs::File;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::arch::x86_64::gdt::boot_gdt;
use crate::arch::x86_64::page_tables::{BootPageTables, PageTableError};
use crate::boot_info::{self, BootInfoBytes, BootParams};
use crate::devices::bus::{Bus, BusError};
use crate::devices::serial::{ConsoleOut, SerialDevice};
use crate::devices::sysctl::SysCtl;
use crate::devices::virtio::block::{BlockError, BlockMetrics, VirtioBlock};
use crate::loader::{self, LoadError};
use crate::seccomp::{self, Seccomp};
use crate::stats::profile::{self, Samples, Symbols};
use crate::stats::series::{Sampler, SeriesConfig};
use crate::stats::trace::{Drainer, TraceTotals};
use crate::stats::{ExitCounters, GuestStats, PageOpCounters};
use crate::storage::{Disks, FsDiskSource, GetSpec, SwapSource};
use crate::vstate::kvm::{KvmContext, KvmError};
use crate::vstate::memory::{self, MemoryError};
use crate::vstate::vcpu::{Vcpu, VcpuError, VcpuFault, VcpuStop};
use crate::vstate::vm::{Vm, VmError};
use crate::{Outcome, devices::GuestRequest};

/// The kernel built with this VMM (see build.rs).
static EMBEDDED_KERNEL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/guest-kernel.elf"));

/// Interval between signals while waiting for the vCPU thread to stop.
const KICK_INTERVAL: Duration = Duration::from_millis(10);
/// How often the watchdog looks for SIGINT or SIGTERM while the guest runs.
const INTERRUPT_POLL: Duration = Duration::from_millis(20);

/// Everything that defines one run.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// The KVM device to open.
    pub kvm_path: PathBuf,
    /// RAM size.
    pub mem_mib: u64,
    /// Upper bound on the kernel's user frame pool, in pages.
    pub user_pages: Option<u64>,
    /// A kernel ELF to use instead of the embedded one.
    pub kernel: Option<PathBuf>,
    /// The user program to run (already among the files put on the disk).
    pub program: Option<PathBuf>,
    /// The kernel command line.
    pub cmdline: String,
    /// Run the kernel's self-tests.
    pub self_test: bool,
    /// Run the kernel's micro-benchmarks.
    pub bench: bool,
    /// A failure for the kernel to force.
    pub test_hook: TestHook,
    /// Wall-clock limit; `None` for no limit.
    pub timeout: Option<Duration>,
    /// The file-system disk.
    pub fs_disk: FsDiskSource,
    /// The swap disk.
    pub swap: SwapSource,
    /// Files to copy out of the file-system disk after the run.
    pub gets: Vec<GetSpec>,
    /// How the kernel chooses pages to evict.
    pub evict: EvictPolicy,
    /// Whether the kernel keeps its fault-path counters (off only to measure their cost).
    pub fault_counters: bool,
    /// Pages after a faulting one the kernel also brings in (0: none; at most
    /// `abi::boot::MAX_FAULT_AROUND`).
    pub fault_around: u32,
    /// Where the kernel runs its work; `None` for the host's best (fast on PVM, classic on
    /// hardware KVM).
    pub kernel_mode: Option<abi::boot::KernelMode>,
    /// Sample the stats page into a file while the guest runs.
    pub series: Option<SeriesConfig>,
    /// Write the kernel's fault trace to this file (`stats::trace`).
    pub trace_faults: Option<PathBuf>,
    /// Sample where the guest runs and write the profile to this file (`stats::profile`).
    pub profile: Option<PathBuf>,
    /// Serve GDB on this TCP port of 127.0.0.1 (0: any free port) before the guest starts
    /// (`crate::gdb`).
    pub gdb: Option<u16>,
    /// Discard the guest's console output instead of writing it to stdout (`vmm sweep`).
    pub quiet: bool,
    /// Which of the run's threads get seccomp filters.
    pub seccomp: Seccomp,
    /// A test of the filters: the vCPU thread makes a call its filter forbids.
    pub seccomp_violation: bool,
}

impl MachineConfig {
    /// The program the command line names (its first word), if any.
    fn program_name(&self) -> Option<&str> {
        self.cmdline.split(' ').next().filter(|p| !p.is_empty())
    }
}

/// Why the machine could not be built or run. Each message says what went wrong and, where
/// the user can act, what to do.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Kvm(#[from] KvmError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("--mem {mib} MiB is too small for the kernel: it needs at least {needed_mib} MiB")]
    MemoryTooSmall { mib: u64, needed_mib: u64 },
    #[error(
        "kernel file {0} does not exist: pass an existing file to --kernel, or omit --kernel to use the built-in kernel"
    )]
    KernelMissing(PathBuf),
    #[error("cannot read kernel file {0}: {1}")]
    KernelRead(PathBuf, std::io::Error),
    #[error("{0} is not an x86-64 ELF kernel: {1}")]
    KernelInvalid(String, LoadError),
    #[error("the command line is {0} bytes; the limit is {max}", max = layout::CMDLINE_MAX)]
    CmdlineTooLong(usize),
    #[error("building the boot page tables failed: {0}")]
    PageTables(#[from] PageTableError),
    #[error("writing boot data into guest memory failed: {0}")]
    GuestWrite(vm_memory::GuestMemoryError),
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    #[error("placing a device failed: {0}")]
    Bus(#[from] BusError),
    #[error("cannot use a disk file: {0}")]
    DiskFile(std::io::Error),
    #[error("cannot create a disk device: {0}")]
    Block(BlockError),
    #[error("cannot start the vCPU thread: {0}")]
    Thread(std::io::Error),
    #[error("{0}")]
    Seccomp(String),
    #[error("the vCPU thread died unexpectedly")]
    VcpuThreadDied,
    #[error("cannot open the swap file a second time (for page operations): {0}")]
    SwapFile(std::io::Error),
    #[error(
        "cannot create the fault trace file {0}: {1}; check that its directory exists and is writable"
    )]
    TraceFile(PathBuf, std::io::Error),
    #[error(
        "cannot create the profile file {0}: {1}; check that its directory exists and is writable"
    )]
    ProfileFile(PathBuf, std::io::Error),
    #[error("--gdb: cannot listen on 127.0.0.1:{0}: {1}; choose another port (0 picks a free one)")]
    GdbListen(u16, std::io::Error),
    #[error(
        "cannot create the stats series file {0}: {1}; check that its directory exists and is writable"
    )]
    SeriesFile(PathBuf, std::io::Error),
}

/// How a run ended, and what each device saw.
#[derive(Debug)]
pub struct RunResult {
    pub outcome: Outcome,
    pub devices: Vec<DeviceExits>,
    pub stats: RunStats,
}

/// The counters of a finished run.
#[derive(Debug)]
pub struct RunStats {
    /// The guest's stats page at the end; `None` if the kernel never set it up.
    pub guest: Option<GuestStats>,
    /// VM exits by reason.
    pub exits: Arc<ExitCounters>,
    /// Page operations the VMM did for the guest.
    pub page_ops: Arc<PageOpCounters>,
    /// Wall time from starting the vCPU to its stop.
    pub wall: Duration,
    /// CPU time of the vCPU thread (guest and KVM time, host side).
    pub vcpu_time: Duration,
    /// The guest's TSC frequency (fault times are in its cycles).
    pub tsc_khz: u64,
    /// Why the series file could not be completed, if it could not.
    pub series_error: Option<String>,
    /// With `--trace-faults`: what the trace holds, or why it could not be completed.
    pub trace: Option<Result<TraceTotals, String>>,
    /// With `--profile`: the samples written, or why the file could not be written.
    pub profile: Option<Result<u64, String>>,
}

/// VM exits that reached one device, and the disk counters if it is a disk.
#[derive(Debug)]
pub struct DeviceExits {
    pub name: &'static str,
    pub exits: u64,
    pub disk: Option<Arc<BlockMetrics>>,
}

/// A built machine, ready to run.
pub struct Machine {
    // Field order is drop order: the vCPU goes before the VM, the VM before its memory.
    vcpu: Vcpu,
    pio: Bus,
    mmio: Bus,
    vm: Vm,
    timeout: Option<Duration>,
    /// Counters of each disk, by device name.
    disk_metrics: Vec<(&'static str, Arc<BlockMetrics>)>,
    page_ops: Arc<PageOpCounters>,
    tsc_khz: u64,
    /// The series file (created at build time, so a bad path fails before boot).
    series: Option<(File, Duration)>,
    /// The fault trace file (created at build time) and its first line.
    trace: Option<(File, serde_json::Value)>,
    /// The profile file (created at build time), the kernel's symbols and what the run is.
    profile: Option<(File, Symbols, String)>,
    /// The debugger's listening socket (`--gdb`) and the guest's RAM size.
    gdb: Option<(std::net::TcpListener, u64)>,
    seccomp: Seccomp,
    /// For the seccomp test: the vCPU thread makes a forbidden call once filtered.
    seccomp_violation: bool,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("pio", &self.pio)
            .field("vm", &self.vm)
            .finish_non_exhaustive()
    }
}

impl Machine {
    /// Builds the machine described by `config` with the prepared `disks` (see the module
    /// documentation).
    pub fn build(config: &MachineConfig, disks: &Disks) -> Result<Self, MachineError> {
        let kvm = KvmContext::open(&config.kvm_path)?;

        let (elf, elf_name) = match &config.kernel {
            None => (
                std::borrow::Cow::Borrowed(EMBEDDED_KERNEL),
                "the built-in kernel".to_string(),
            ),
            Some(path) => (
                std::borrow::Cow::Owned(read_kernel(path)?),
                path.display().to_string(),
            ),
        };
        let image =
            loader::inspect(&elf).map_err(|e| MachineError::KernelInvalid(elf_name.clone(), e))?;

        let needed_mib = (image.phys_end + KERNEL_MIN_FREE_BYTES)
            .div_ceil(1 << 20)
            .max(layout::MIN_MEM_MIB);
        if config.mem_mib < needed_mib {
            return Err(MachineError::MemoryTooSmall {
                mib: config.mem_mib,
                needed_mib,
            });
        }
        if config.cmdline.len() > layout::CMDLINE_MAX {
            return Err(MachineError::CmdlineTooLong(config.cmdline.len()));
        }
        let memory = memory::create(config.mem_mib)?;
        loader::load(&memory, &elf).map_err(|e| MachineError::KernelInvalid(elf_name, e))?;
        let tables = BootPageTables::build(&layout::ram_ranges(config.mem_mib << 20))?;
        write_boot_tables(&memory, &tables)?;

        let mut vm = Vm::new(&kvm, memory)?;
        let vcpu = Vcpu::new(&kvm, &vm, image.entry, tables.pml4_gpa)?;
        let tsc_khz = u64::from(vcpu.tsc_khz()?);
        let kvm_kind = crate::stats::KvmKind::detect();
        let host_kind = kvm_kind.host_kind();
        let params = BootParams {
            mem_mib: config.mem_mib,
            user_pages: config.user_pages,
            kernel: image,
            cmdline_len: config.cmdline.len(),
            self_test: config.self_test,
            bench: config.bench,
            test_hook: config.test_hook,
            evict: config.evict,
            fault_counters: config.fault_counters,
            fault_around: config.fault_around,
            tsc_khz,
            trace_faults: config.trace_faults.is_some() && config.fault_counters,
            debugger: config.gdb.is_some(),
            fs_disk_sectors: sectors(&disks.fs)?,
            swap_disk_sectors: disks.swap.as_ref().map(sectors).transpose()?,
            host_kind,
            kernel_mode: config.kernel_mode.unwrap_or_else(|| {
                // PVM runs CPL-3 code natively and does not report its breakpoints and
                // steps to the VMM (`crate::gdb`): under a debugger, the kernel stays in
                // ring 0 unless the user asks otherwise.
                if config.gdb.is_some() && host_kind == Some(abi::boot::HostKind::Pvm) {
                    abi::boot::KernelMode::Classic
                } else {
                    abi::boot::KernelMode::best_for(host_kind)
                }
            }),
            kview_pml4_gpa: tables.kview_pml4_gpa,
        };
        let info = BootInfoBytes(boot_info::build(&params));
        vm.memory
            .write_obj(info, GuestAddress(BOOT_INFO_GPA))
            .map_err(MachineError::GuestWrite)?;
        vm.memory
            .write_slice(config.cmdline.as_bytes(), GuestAddress(CMDLINE_GPA))
            .map_err(MachineError::GuestWrite)?;

        let series = match &config.series {
            Some(s) => Some((
                File::create(&s.path).map_err(|e| MachineError::SeriesFile(s.path.clone(), e))?,
                s.interval,
            )),
            None => None,
        };
        let trace = match &config.trace_faults {
            Some(path) => Some((
                File::create(path).map_err(|e| MachineError::TraceFile(path.clone(), e))?,
                trace_header(config, params.kernel_mode, kvm_kind, tsc_khz),
            )),
            None => None,
        };
        let profile = match &config.profile {
            Some(path) => Some((
                File::create(path).map_err(|e| MachineError::ProfileFile(path.clone(), e))?,
                Symbols::parse(&elf),
                format!(
                    "{}, {} MiB, kernel mode {}, host {}",
                    config.program_name().unwrap_or("no program"),
                    config.mem_mib,
                    params.kernel_mode.name(),
                    kvm_kind.name
                ),
            )),
            None => None,
        };
        let gdb = match config.gdb {
            Some(port) => {
                let listener = std::net::TcpListener::bind(("127.0.0.1", port))
                    .map_err(|e| MachineError::GdbListen(port, e))?;
                let port = listener.local_addr().map_or(port, |a| a.port());
                eprintln!(
                    "vmm: gdb: waiting for a debugger on 127.0.0.1:{port} (gdb {} -ex 'target remote 127.0.0.1:{port}')",
                    config.kernel.as_ref().map_or_else(
                        || "target/x86_64-unknown-none/release/guest-kernel".to_string(),
                        |k| k.display().to_string()
                    )
                );
                if host_kind == Some(abi::boot::HostKind::Pvm) {
                    eprintln!(
                        "vmm: gdb: on PVM, breakpoints and single steps stop the kernel and user programs in the classic kernel mode (the default under --gdb here); the fast mode's kernel at CPL 3 runs through them"
                    );
                }
                Some((listener, config.mem_mib << 20))
            }
            None => None,
        };
        let (pio, mmio, disk_metrics, page_ops) =
            attach_devices(&mut vm, disks, config.quiet, config.seccomp)?;
        Ok(Machine {
            vcpu,
            pio,
            mmio,
            vm,
            // A run stopped in the debugger has no time limit.
            timeout: config.timeout.filter(|_| config.gdb.is_none()),
            disk_metrics,
            page_ops,
            tsc_khz,
            series,
            trace,
            profile,
            gdb,
            seccomp: config.seccomp,
            seccomp_violation: config.seccomp_violation,
        })
    }

    /// Runs the guest until it powers off, fails, or the timeout passes.
    pub fn run(self) -> Result<RunResult, MachineError> {
        let Machine {
            mut vcpu,
            mut pio,
            mut mmio,
            vm,
            timeout,
            disk_metrics,
            page_ops,
            tsc_khz,
            series,
            trace,
            profile,
            gdb,
            seccomp,
            seccomp_violation,
        } = self;
        let samples = profile.as_ref().map(|_| {
            let samples = Arc::new(Samples::default());
            vcpu.sample_into(Arc::clone(&samples));
            samples
        });
        install_kick_handler();
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = mpsc::channel();
        let vcpu_stop = Arc::clone(&stop);
        let exits = Arc::new(ExitCounters::default());
        let vcpu_exits = Arc::clone(&exits);
        let started = Instant::now();
        let sampler = match series {
            Some((file, interval)) => Some(
                Sampler::start(
                    file,
                    interval,
                    vm.memory.clone(),
                    Arc::clone(&exits),
                    started,
                    seccomp != Seccomp::Off,
                )
                .map_err(MachineError::Thread)?,
            ),
            None => None,
        };
        let drainer = match trace {
            Some((file, header)) => Some(
                Drainer::start(
                    file,
                    &header,
                    vm.memory.clone(),
                    tsc_khz,
                    seccomp != Seccomp::Off,
                )
                .map_err(MachineError::Thread)?,
            ),
            None => None,
        };
        let gdb_memory = vm.memory.clone();
        let thread = std::thread::Builder::new()
            .name("vcpu0".into())
            .spawn(move || {
                // Serving a debugger takes network calls the vCPU filter does not allow.
                if seccomp != Seccomp::Off && gdb.is_none() {
                    seccomp::install_or_exit(seccomp::Thread::Vcpu);
                    if seccomp_violation {
                        // SAFETY: getppid has no effect; the filter forbids it here.
                        unsafe { libc::getppid() };
                    }
                }
                let result = match gdb {
                    Some((listener, mem_bytes)) => crate::gdb::serve(
                        listener,
                        &mut vcpu,
                        &mut pio,
                        &mut mmio,
                        gdb_memory,
                        mem_bytes,
                        &vcpu_stop,
                        &vcpu_exits,
                    ),
                    None => vcpu.run(&mut pio, &mut mmio, &vcpu_stop, &vcpu_exits),
                };
                let cpu = crate::stats::thread_cpu_time();
                // The receiver outlives this thread unless the VMM is already exiting.
                let _ = done_tx.send((result, pio, mmio, cpu));
            })
            .map_err(MachineError::Thread)?;
        if seccomp == Seccomp::All {
            seccomp::install(seccomp::Thread::Main).map_err(MachineError::Seccomp)?;
        }

        // Wait for the guest to end, the timeout to pass, or a signal to stop it.
        // With `--profile`, also ask for a sample every period.
        let deadline = timeout.map(|limit| started + limit);
        let poll = if samples.is_some() {
            profile::PERIOD
        } else {
            INTERRUPT_POLL
        };
        let first = loop {
            let wait = deadline.map_or(poll, |d| {
                d.saturating_duration_since(Instant::now()).min(poll)
            });
            match done_rx.recv_timeout(wait) {
                Err(mpsc::RecvTimeoutError::Timeout)
                    if interrupted().is_none() && deadline.is_none_or(|d| Instant::now() < d) =>
                {
                    if let Some(samples) = &samples {
                        samples.request();
                        kick(&thread);
                    }
                    continue;
                }
                other => break other,
            }
        };
        let (result, pio, mmio, vcpu_time) = match first {
            Ok(done) => done,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(MachineError::VcpuThreadDied),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                stop.store(true, Ordering::Release);
                loop {
                    kick(&thread);
                    match done_rx.recv_timeout(KICK_INTERVAL) {
                        Ok(done) => break done,
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            return Err(MachineError::VcpuThreadDied);
                        }
                    }
                }
            }
        };
        let _ = thread.join();
        let wall = started.elapsed();
        let series_error = sampler
            .map(Sampler::finish)
            .and_then(Result::err)
            .map(|e| e.to_string());
        let guest = GuestStats::read(&vm.memory);
        let trace = drainer.map(|d| d.finish(guest.as_ref()).map_err(|e| e.to_string()));
        let profile = profile
            .zip(samples)
            .map(|((mut file, symbols, about), samples)| {
                let taken = samples.taken();
                std::io::Write::write_all(
                    &mut file,
                    profile::report(&about, &taken, &symbols).as_bytes(),
                )
                .map(|()| taken.iter().map(|(_, n)| n).sum())
                .map_err(|e| e.to_string())
            });
        drop(vm);
        let outcome = match result? {
            VcpuStop::Guest(GuestRequest::PowerOff(status)) => Outcome::PowerOff(status),
            VcpuStop::Guest(GuestRequest::Panic(message)) => Outcome::GuestPanic(message),
            VcpuStop::Guest(GuestRequest::DebugStop(_)) => Outcome::Fault(
                VcpuFault::UnexpectedExit("a debug stop with no debugger".into()),
            ),
            VcpuStop::Stopped => match interrupted() {
                Some(signal) => Outcome::Interrupted(signal),
                None => Outcome::Timeout(timeout.unwrap_or_default()),
            },
            VcpuStop::Fault(fault) => Outcome::Fault(fault),
            // Only a debugger sets breakpoints, and it handles their stops.
            VcpuStop::Debug { dr6 } => Outcome::Fault(VcpuFault::UnexpectedExit(format!(
                "debug exit (DR6 {dr6:#x}) with no debugger"
            ))),
        };
        let devices = pio
            .accesses()
            .chain(mmio.accesses())
            .map(|(name, exits)| DeviceExits {
                name,
                exits,
                disk: disk_metrics
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, m)| Arc::clone(m)),
            })
            .collect();
        let stats = RunStats {
            guest,
            exits,
            page_ops,
            wall,
            vcpu_time,
            tsc_khz,
            series_error,
            trace,
            profile,
        };
        Ok(RunResult {
            outcome,
            devices,
            stats,
        })
    }
}

/// The first line of a fault trace: what the run is (`stats::trace`).
fn trace_header(
    config: &MachineConfig,
    mode: abi::boot::KernelMode,
    kvm: crate::stats::KvmKind,
    tsc_khz: u64,
) -> serde_json::Value {
    serde_json::json!({
        "trace": "faults",
        "version": abi::trace::TRACE_VERSION,
        "program": config.program_name(),
        "cmdline": config.cmdline,
        "mem_mib": config.mem_mib,
        "evict": config.evict.name(),
        "fault_around": config.fault_around,
        "kernel_mode": mode.name(),
        "host": kvm.name,
        "tsc_khz": tsc_khz,
        "ring_records": abi::trace::TRACE_CAPACITY,
    })
}

/// Capacity of a disk file in 512-byte sectors.
fn sectors(file: &File) -> Result<u64, MachineError> {
    Ok(file.metadata().map_err(MachineError::DiskFile)?.len() / abi::fs::SECTOR_SIZE)
}

fn read_kernel(path: &PathBuf) -> Result<Vec<u8>, MachineError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => MachineError::KernelMissing(path.clone()),
        _ => MachineError::KernelRead(path.clone(), e),
    })
}

/// Writes the page tables and the GDT the vCPU starts with.
fn write_boot_tables(
    memory: &GuestMemoryMmap,
    tables: &BootPageTables,
) -> Result<(), MachineError> {
    for page in &tables.pages {
        let bytes: Vec<u8> = page.entries.iter().flat_map(|e| e.to_le_bytes()).collect();
        memory
            .write_slice(&bytes, GuestAddress(page.gpa))
            .map_err(MachineError::GuestWrite)?;
    }
    let gdt: Vec<u8> = boot_gdt().iter().flat_map(|e| e.to_le_bytes()).collect();
    memory
        .write_slice(&gdt, GuestAddress(BOOT_GDT_GPA))
        .map_err(MachineError::GuestWrite)
}

/// Creates the devices and their buses: the UART (interrupt line `SERIAL_IRQ`) and the
/// system-control block on the port bus, both writing console text to stdout; the disks on
/// the MMIO bus.
#[allow(clippy::type_complexity)]
fn attach_devices(
    vm: &mut Vm,
    disks: &Disks,
    quiet: bool,
    seccomp: Seccomp,
) -> Result<
    (
        Bus,
        Bus,
        Vec<(&'static str, Arc<BlockMetrics>)>,
        Arc<PageOpCounters>,
    ),
    MachineError,
> {
    let mut pio = Bus::new();
    let serial_irq = vm.connect_irq(SERIAL_IRQ)?;
    let out = ConsoleOut::new(if quiet {
        Box::new(std::io::sink())
    } else {
        Box::new(std::io::stdout())
    });
    let serial = SerialDevice::new(serial_irq, out.clone());
    let input = serial.input();
    // The console's input is the VMM's stdin. The thread blocks in read and ends at EOF (or
    // with the process).
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            if seccomp != Seccomp::Off {
                seccomp::install_or_exit(seccomp::Thread::Stdin);
            }
            input.pump(std::io::stdin());
        })
        .map_err(MachineError::Thread)?;
    pio.insert(
        u64::from(SERIAL_PORT),
        u64::from(SERIAL_PORT_COUNT),
        "serial",
        Box::new(serial),
    )?;
    let sysctl = SysCtl::new(
        vm.memory.clone(),
        Box::new(out),
        disks
            .swap
            .as_ref()
            .map(File::try_clone)
            .transpose()
            .map_err(MachineError::SwapFile)?,
    )
    .with_diagnostics(if quiet {
        Box::new(std::io::sink())
    } else {
        Box::new(std::io::stderr())
    });
    let page_ops = sysctl.counters();
    pio.insert(
        u64::from(SYSCTL_PORT),
        u64::from(SYSCTL_PORT_COUNT),
        "sysctl",
        Box::new(sysctl),
    )?;
    let mut mmio = Bus::new();
    let fs = attach_disk(
        vm,
        &mut mmio,
        &disks.fs,
        FS_DISK_GPA,
        FS_DISK_IRQ,
        "fs-disk",
    )?;
    let mut metrics = vec![("fs-disk", fs)];
    if let Some(swap) = &disks.swap {
        let swap = attach_disk(
            vm,
            &mut mmio,
            swap,
            SWAP_DISK_GPA,
            SWAP_DISK_IRQ,
            "swap-disk",
        )?;
        metrics.push(("swap-disk", swap));
    }
    Ok((pio, mmio, metrics, page_ops))
}

/// Puts a virtio-blk device named `name` (its GET_ID string is `vmm-NAME`) backed by
/// `file` at `gpa` with interrupt line `irq`; returns its counters.
fn attach_disk(
    vm: &mut Vm,
    mmio: &mut Bus,
    file: &File,
    gpa: u64,
    irq: u32,
    name: &'static str,
) -> Result<Arc<BlockMetrics>, MachineError> {
    let irq = vm.connect_irq(irq)?;
    let file = file.try_clone().map_err(MachineError::DiskFile)?;
    let id = format!("vmm-{name}");
    let device =
        VirtioBlock::new(vm.memory.clone(), file, irq, &id).map_err(MachineError::Block)?;
    let metrics = device.metrics();
    mmio.insert(gpa, VIRTIO_MMIO_SIZE, name, Box::new(device))?;
    Ok(metrics)
}

/// The first SIGINT or SIGTERM the VMM got (0: none).
static INTERRUPT: AtomicI32 = AtomicI32::new(0);

/// Makes SIGINT and SIGTERM stop the guest instead of killing the VMM: the run then ends
/// as a timeout would, with `--get`, the statistics and an exit status of 128 + the signal
/// ([`Outcome::Interrupted`]). Call before the run starts; a signal before the guest runs
/// stops it at once. A second signal of the same kind while stopping changes nothing:
/// stopping takes milliseconds.
pub fn install_interrupt_handlers() {
    extern "C" fn on_interrupt(signal: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // Async-signal-safe: one atomic store; the first signal wins.
        let _ = INTERRUPT.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    }
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // Failure leaves the default action (the VMM dies at once): worse, but not wrong.
        let _ = vmm_sys_util::signal::register_signal_handler(signal, on_interrupt);
    }
}

/// The signal that asked the VMM to stop, if one did.
pub fn interrupted() -> Option<i32> {
    match INTERRUPT.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// Signal used to interrupt `KVM_RUN` on the vCPU thread.
fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

/// Installs a do-nothing handler for the kick signal, so that it interrupts `KVM_RUN`
/// (which then returns `EINTR`) instead of killing the process.
fn install_kick_handler() {
    extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}
    // Registering twice (several runs in one process) is harmless, and failure would only
    // make the timeout unable to interrupt a spinning guest, so it is not fatal.
    let _ = vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick);
}

fn kick(thread: &std::thread::JoinHandle<()>) {
    kick_thread(thread.as_pthread_t());
}

/// Interrupts `KVM_RUN` on `thread` (a running thread of this process, such as the vCPU
/// thread while a debugger is attached).
pub fn kick_thread(thread: libc::pthread_t) {
    // SAFETY: the caller names a thread of this process that has not been joined, so it
    // exists (or has exited but not been reaped, which pthread_kill tolerates).
    unsafe { libc::pthread_kill(thread, kick_signal()) };
}
