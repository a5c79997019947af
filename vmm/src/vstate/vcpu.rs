//! The vCPU: its boot state and its run loop.
//!
//! The run loop knows no device. Port and MMIO exits go to the two buses; a device that
//! asks for the machine to stop (power-off, panic) returns a [`GuestRequest`] through the
//! bus, and the loop hands it back to the caller. The loop also stops when the shared `stop`
//! flag is set (the watchdog sets it and then interrupts `KVM_RUN` with a signal).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, kvm_regs, kvm_run, kvm_sregs};
use kvm_ioctls::{SyncReg, VcpuExit, VcpuFd};

use super::kvm::KvmContext;
use super::vm::Vm;
use crate::arch::x86_64::regs;
use crate::devices::GuestRequest;
use crate::devices::bus::{ArgRegs, Bus};
use crate::stats::profile::{Sample, Samples};
use crate::stats::{ExitCounters, ExitReason};

/// Why the vCPU could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    #[error("KVM_CREATE_VCPU failed: {0}")]
    Create(kvm_ioctls::Error),
    #[error("reading the supported CPUID failed: {0}")]
    GetSupportedCpuid(kvm_ioctls::Error),
    #[error("setting the vCPU's CPUID failed: {0}")]
    SetCpuid(kvm_ioctls::Error),
    #[error("reading the vCPU's special registers failed: {0}")]
    GetSregs(kvm_ioctls::Error),
    #[error("setting the vCPU's special registers failed: {0}")]
    SetSregs(kvm_ioctls::Error),
    #[error("setting the vCPU's registers failed: {0}")]
    SetRegs(kvm_ioctls::Error),
    #[error("setting the vCPU's FPU state failed: {0}")]
    SetFpu(kvm_ioctls::Error),
    #[error("reading the TSC frequency failed: {0}")]
    TscKhz(kvm_ioctls::Error),
    #[error("KVM_RUN failed: {0}")]
    Run(kvm_ioctls::Error),
    #[error("setting the vCPU's debug state (breakpoints, single step) failed: {0}")]
    SetGuestDebug(kvm_ioctls::Error),
    #[error("reading or writing the vCPU's registers failed: {0}")]
    Registers(kvm_ioctls::Error),
}

/// Why the vCPU stopped running.
#[derive(Debug)]
pub enum VcpuStop {
    /// A device relayed a request from the guest (power-off, panic).
    Guest(GuestRequest),
    /// The `stop` flag was set (the watchdog fired).
    Stopped,
    /// The vCPU cannot go on.
    Fault(VcpuFault),
    /// A breakpoint or a single step (only while a debugger set them: `vmm run --gdb`);
    /// `dr6` says which.
    Debug { dr6: u64 },
}

/// A state the vCPU cannot continue from. The `Display` text is the report line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VcpuFault {
    /// The guest triple-faulted; the text holds the vCPU's registers.
    #[error("guest triple fault: {0}")]
    TripleFault(String),
    /// KVM could not emulate or handle something (`KVM_EXIT_INTERNAL_ERROR`).
    #[error(
        "KVM internal error: suberror {suberror} ({}) at rip {rip:#x}, data {data:x?}; \
         `dmesg | grep kvm` may say more",
        internal_error_name(*suberror)
    )]
    InternalError {
        suberror: u32,
        rip: u64,
        data: Vec<u64>,
    },
    /// KVM refused to enter the guest (`KVM_EXIT_FAIL_ENTRY`).
    #[error(
        "KVM could not enter the guest: hardware entry failure reason {reason:#x} at rip {rip:#x}"
    )]
    FailEntry { reason: u64, rip: u64 },
    /// An exit this VMM does not handle (the text names it).
    #[error("unexpected vCPU exit: {0}")]
    UnexpectedExit(String),
    /// The debugger (`vmm run --gdb`) killed the guest.
    #[error("the debugger killed the guest")]
    KilledByDebugger,
}

/// Names of `KVM_INTERNAL_ERROR_*` suberrors.
fn internal_error_name(suberror: u32) -> &'static str {
    match suberror {
        1 => "emulation failure",
        2 => "exception while delivering an exception",
        3 => "event delivery failure",
        4 => "unexpected exit reason",
        _ => "unknown",
    }
}

/// The boot vCPU.
pub struct Vcpu {
    fd: VcpuFd,
    /// With `--profile`: where the samples asked for go (`crate::stats::profile`).
    samples: Option<Arc<Samples>>,
}

impl std::fmt::Debug for Vcpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vcpu").finish_non_exhaustive()
    }
}

impl Vcpu {
    /// Creates vCPU 0 in 64-bit mode at `entry` with `pml4_gpa` in CR3, with the host's
    /// supported CPUID (the kernel's `fxsave` needs it).
    pub fn new(kvm: &KvmContext, vm: &Vm, entry: u64, pml4_gpa: u64) -> Result<Self, VcpuError> {
        let mut fd = vm.fd.create_vcpu(0).map_err(VcpuError::Create)?;
        let cpuid = kvm
            .kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(VcpuError::GetSupportedCpuid)?;
        fd.set_cpuid2(&cpuid).map_err(VcpuError::SetCpuid)?;
        let current = fd.get_sregs().map_err(VcpuError::GetSregs)?;
        fd.set_sregs(&regs::long_mode_sregs(&current, pml4_gpa))
            .map_err(VcpuError::SetSregs)?;
        fd.set_regs(&regs::entry_regs(entry))
            .map_err(VcpuError::SetRegs)?;
        fd.set_fpu(&regs::initial_fpu())
            .map_err(VcpuError::SetFpu)?;
        // KVM copies the general registers into `kvm_run` at every exit (KvmContext checked
        // KVM_CAP_SYNC_REGS): page operations pass their arguments in registers, and an
        // ioctl to read them costs more than the exit.
        fd.set_sync_valid_reg(SyncReg::Register);
        Ok(Vcpu { fd, samples: None })
    }

    /// Arms the debugger's breakpoints (instruction breakpoints in the debug registers,
    /// up to four linear addresses) and single stepping; with neither, the vCPU runs as
    /// without a debugger.
    pub fn set_debug(
        &self,
        breakpoints: &[Option<u64>; 4],
        single_step: bool,
    ) -> Result<(), VcpuError> {
        use kvm_bindings::{
            KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP, kvm_guest_debug,
        };
        let mut debug = kvm_guest_debug::default();
        let mut dr7 = 0;
        for (i, addr) in breakpoints.iter().enumerate() {
            if let Some(addr) = addr {
                debug.arch.debugreg[i] = *addr;
                // Local enable; condition 00 (execution) and length 00 (one byte).
                dr7 |= 1 << (2 * i);
            }
        }
        debug.arch.debugreg[7] = dr7;
        if dr7 != 0 || single_step {
            debug.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
            if single_step {
                debug.control |= KVM_GUESTDBG_SINGLESTEP;
            }
        }
        self.fd
            .set_guest_debug(&debug)
            .map_err(VcpuError::SetGuestDebug)
    }

    /// The general registers.
    pub fn regs(&self) -> Result<kvm_regs, VcpuError> {
        self.fd.get_regs().map_err(VcpuError::Registers)
    }

    /// Sets the general registers.
    pub fn set_regs(&self, regs: &kvm_regs) -> Result<(), VcpuError> {
        self.fd.set_regs(regs).map_err(VcpuError::Registers)
    }

    /// The special registers (segments, control registers).
    pub fn sregs(&self) -> Result<kvm_sregs, VcpuError> {
        self.fd.get_sregs().map_err(VcpuError::Registers)
    }

    /// The FPU and SSE state.
    pub fn fpu(&self) -> Result<kvm_bindings::kvm_fpu, VcpuError> {
        self.fd.get_fpu().map_err(VcpuError::Registers)
    }

    /// The guest's TSC frequency in kHz.
    pub fn tsc_khz(&self) -> Result<u32, VcpuError> {
        self.fd.get_tsc_khz().map_err(VcpuError::TscKhz)
    }

    /// Takes a sample into `samples` at each return from `KVM_RUN` after one is asked for
    /// (`vmm run --profile`).
    pub fn sample_into(&mut self, samples: Arc<Samples>) {
        self.samples = Some(samples);
    }

    /// Records a sample if one was asked for: the guest's RIP and privilege level now.
    fn sample(&self) {
        let Some(samples) = &self.samples else {
            return;
        };
        if !samples.take_request() {
            return;
        }
        if let (Ok(regs), Ok(sregs)) = (self.fd.get_regs(), self.fd.get_sregs()) {
            samples.record(Sample {
                rip: regs.rip,
                cpl: (sregs.cs.selector & 3) as u8,
            });
        }
    }

    /// Runs the guest until it stops (see [`VcpuStop`]).
    pub fn run(
        &mut self,
        pio: &mut Bus,
        mmio: &mut Bus,
        stop: &AtomicBool,
        exits: &ExitCounters,
    ) -> Result<VcpuStop, VcpuError> {
        loop {
            if stop.load(Ordering::Acquire) {
                return Ok(VcpuStop::Stopped);
            }
            // Where the last `KVM_RUN` stopped (the kick's interruption, or an exit).
            self.sample();
            let result = self.fd.run();
            exits.count(match &result {
                Ok(VcpuExit::IoOut(..)) => ExitReason::PioWrite,
                Ok(VcpuExit::IoIn(..)) => ExitReason::PioRead,
                Ok(VcpuExit::MmioWrite(..)) => ExitReason::MmioWrite,
                Ok(VcpuExit::MmioRead(..)) => ExitReason::MmioRead,
                Ok(VcpuExit::Hlt) => ExitReason::Hlt,
                Ok(VcpuExit::Shutdown) => ExitReason::Shutdown,
                Ok(VcpuExit::InternalError) => ExitReason::InternalError,
                Ok(VcpuExit::FailEntry(..)) => ExitReason::FailEntry,
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    ExitReason::Interrupted
                }
                _ => ExitReason::Other,
            });
            let request = match result {
                Ok(VcpuExit::IoOut(port, data)) => {
                    // A string `out` (`rep outsb`) arrives as one exit holding `count`
                    // elements of `size` bytes; the bus sees them one by one, in order.
                    let mut copy = [0u8; MAX_IO_BYTES];
                    let len = data.len().min(MAX_IO_BYTES);
                    copy[..len].copy_from_slice(&data[..len]);
                    let size = self.io_size();
                    io_elements(&copy[..len], size)
                        .find_map(|element| pio.write(u64::from(port), element))
                }
                Ok(VcpuExit::IoIn(..)) => {
                    let (port, data, args) = self.io_in();
                    pio.read(u64::from(port), data, args);
                    None
                }
                Ok(VcpuExit::MmioWrite(addr, data)) => mmio.write(addr, data),
                Ok(VcpuExit::MmioRead(addr, data)) => {
                    // No MMIO register takes arguments.
                    mmio.read(addr, data, ArgRegs::default());
                    None
                }
                Ok(VcpuExit::Shutdown) => {
                    return Ok(VcpuStop::Fault(VcpuFault::TripleFault(
                        self.describe_registers(),
                    )));
                }
                Ok(VcpuExit::InternalError) => return Ok(VcpuStop::Fault(self.internal_error())),
                Ok(VcpuExit::FailEntry(reason, _cpu)) => {
                    return Ok(VcpuStop::Fault(VcpuFault::FailEntry {
                        reason,
                        rip: self.rip(),
                    }));
                }
                Ok(VcpuExit::Debug(debug)) => {
                    return Ok(VcpuStop::Debug { dr6: debug.dr6 });
                }
                Ok(VcpuExit::Hlt) => {
                    let what = "hlt (no interrupt controller to wake the vCPU)".to_string();
                    return Ok(VcpuStop::Fault(VcpuFault::UnexpectedExit(what)));
                }
                Ok(other) => {
                    let what = format!("{other:?}");
                    return Ok(VcpuStop::Fault(VcpuFault::UnexpectedExit(what)));
                }
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    self.fd.set_kvm_immediate_exit(0);
                    None
                }
                Err(e) => return Err(VcpuError::Run(e)),
            };
            if let Some(request) = request {
                return Ok(VcpuStop::Guest(request));
            }
        }
    }

    /// The port, the data buffer and the guest's argument registers (see [`ArgRegs`]) of the
    /// port read (`KVM_EXIT_IO`, direction in) that `KVM_RUN` just returned.
    fn io_in(&mut self) -> (u16, &mut [u8], ArgRegs) {
        let run = self.fd.get_kvm_run();
        // SAFETY: the exit reason is KVM_EXIT_IO, so KVM filled the `io` member of the exit
        // union; `s.regs` holds the registers at this exit because `new` set
        // KVM_SYNC_X86_REGS in `kvm_valid_regs`. Both are plain integers.
        let (io, regs) = unsafe { (run.__bindgen_anon_1.io, run.s.regs.regs) };
        let len = usize::from(io.size) * io.count as usize;
        let base = std::ptr::from_mut::<kvm_run>(run).cast::<u8>();
        // SAFETY: KVM places an I/O exit's `count` elements of `size` bytes at `data_offset`
        // inside the kvm_run mapping (what `VcpuExit::IoIn` hands out too). The slice
        // borrows `self`, so it is gone before the next KVM_RUN, the only other writer.
        let data =
            unsafe { std::slice::from_raw_parts_mut(base.add(io.data_offset as usize), len) };
        (
            io.port,
            data,
            ArgRegs {
                a: regs.rdi,
                b: regs.rsi,
                c: regs.rcx,
                d: regs.r8,
            },
        )
    }

    /// Element size of the current `KVM_EXIT_IO`.
    fn io_size(&mut self) -> usize {
        let run = self.fd.get_kvm_run();
        // SAFETY: called right after KVM_RUN returned KVM_EXIT_IO, so KVM filled the `io`
        // member of the exit union; it is plain integers.
        let io = unsafe { run.__bindgen_anon_1.io };
        usize::from(io.size)
    }

    fn rip(&self) -> u64 {
        self.fd.get_regs().map(|r| r.rip).unwrap_or(0)
    }

    fn internal_error(&mut self) -> VcpuFault {
        let run = self.fd.get_kvm_run();
        // SAFETY: KVM filled the `internal` member of the exit union because the exit
        // reason is KVM_EXIT_INTERNAL_ERROR; it is plain integers.
        let internal = unsafe { run.__bindgen_anon_1.internal };
        let n = (internal.ndata as usize).min(internal.data.len());
        VcpuFault::InternalError {
            suberror: internal.suberror,
            rip: self.rip(),
            data: internal.data[..n].to_vec(),
        }
    }

    /// The registers as one line of text, for crash reports.
    fn describe_registers(&self) -> String {
        match (self.fd.get_regs(), self.fd.get_sregs()) {
            (Ok(r), Ok(s)) => format_registers(&r, &s),
            (Err(e), _) | (_, Err(e)) => format!("registers unavailable: {e}"),
        }
    }
}

/// Most bytes one port-I/O exit carries: KVM keeps string I/O within one page.
const MAX_IO_BYTES: usize = 4096;

/// The elements of a port-I/O exit's data: `size`-byte pieces (a plain `out` is one piece).
pub fn io_elements(data: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    data.chunks(size.clamp(1, 4))
}

/// Formats the registers that matter for a crash report on one line.
pub fn format_registers(r: &kvm_regs, s: &kvm_sregs) -> String {
    format!(
        "rip={:#x} rsp={:#x} rbp={:#x} rflags={:#x} rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} \
         rsi={:#x} rdi={:#x} r8={:#x} r9={:#x} r10={:#x} r11={:#x} r12={:#x} r13={:#x} \
         r14={:#x} r15={:#x} cs={:#x} ss={:#x} cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} \
         efer={:#x} idt={:#x}/{:#x}",
        r.rip,
        r.rsp,
        r.rbp,
        r.rflags,
        r.rax,
        r.rbx,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        r.r8,
        r.r9,
        r.r10,
        r.r11,
        r.r12,
        r.r13,
        r.r14,
        r.r15,
        s.cs.selector,
        s.ss.selector,
        s.cr0,
        s.cr2,
        s.cr3,
        s.cr4,
        s.efer,
        s.idt.base,
        s.idt.limit
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_io_is_split_into_elements() {
        let bytes: Vec<&[u8]> = io_elements(b"hello", 1).collect();
        assert_eq!(bytes, [b"h", b"e", b"l", b"l", b"o"]);
        let word: Vec<&[u8]> = io_elements(&[1, 2, 3, 4], 4).collect();
        assert_eq!(word, [&[1, 2, 3, 4]]);
        assert_eq!(
            io_elements(&[1, 2], 0).count(),
            2,
            "a bogus size is clamped"
        );
    }

    #[test]
    fn fault_reports() {
        let m = VcpuFault::InternalError {
            suberror: 1,
            rip: 0x10,
            data: vec![1, 0xab],
        }
        .to_string();
        assert_eq!(
            m,
            "KVM internal error: suberror 1 (emulation failure) at rip 0x10, data [1, ab]; `dmesg | grep kvm` may say more"
        );
        assert_eq!(
            VcpuFault::TripleFault("rip=0x1".into()).to_string(),
            "guest triple fault: rip=0x1"
        );
        let m = VcpuFault::FailEntry {
            reason: 0x21,
            rip: 0x20,
        }
        .to_string();
        assert_eq!(
            m,
            "KVM could not enter the guest: hardware entry failure reason 0x21 at rip 0x20"
        );
    }
}
