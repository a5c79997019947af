//! `vmm run --gdb PORT`: a GDB remote stub for the guest (the `gdbstub` crate), for kernel
//! and user code alike: registers, memory reads and writes at virtual addresses,
//! breakpoints, single step, continue, and Ctrl-C.
//!
//! The vCPU thread serves the debugger: it waits for GDB to connect before the first guest
//! instruction, then runs the guest only when GDB resumes it.
//!
//! Kernel code stops through `KVM_SET_GUEST_DEBUG`: breakpoints are the CPU's four
//! instruction breakpoints (debug registers), so at most four at once, and a step is
//! KVM's single step. Writing `int3` into kernel code would not work on every KVM: PVM
//! emulates ring-0 code, and its emulator fails on `int3` with a debugger attached.
//!
//! User code stops through the kernel. PVM runs CPL-3 code natively and delivers its
//! debug exceptions to the guest, so neither a debug register nor KVM's single step
//! reaches the VMM from there. Told that a debugger is attached (`FLAG_DEBUGGER`), the
//! kernel does not end a program at a breakpoint or a single step: it stops for the
//! debugger (`SYSCTL_DEBUG_STOP`) with the program's trap frame, whose registers GDB
//! then reads and writes; a breakpoint is an `int3` written into the program's page; a
//! step sets the trap flag in the frame. This works where the kernel handles the user's
//! traps in ring 0: the classic kernel mode, which `--gdb` picks on PVM unless told
//! otherwise (the fast mode's kernel at CPL 3 does not stop at all there).
//!
//! When the guest powers off, GDB sees the process exit with the guest's status; when the
//! kernel panics, it sees SIGABRT. If GDB detaches, the guest runs on to its end without
//! a debugger; if it kills the guest, the run ends as "the debugger killed the guest".

pub mod memory;

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gdbstub::common::Signal;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::run_blocking::{self, BlockingEventLoop, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, GdbStub, SingleThreadStopReason};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::X86_64_SSE;
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use abi::layout::KERN_BASE;

use crate::devices::GuestRequest;
use crate::devices::bus::Bus;
use crate::stats::ExitCounters;
use crate::vstate::vcpu::{Vcpu, VcpuError, VcpuFault, VcpuStop};

/// DR6 bits of the four breakpoints.
const DR6_BREAKPOINTS: u64 = 0xf;

/// The guest as GDB drives it, on the vCPU thread.
pub struct GdbTarget<'a> {
    vcpu: &'a mut Vcpu,
    pio: &'a mut Bus,
    mmio: &'a mut Bus,
    memory: GuestMemoryMmap,
    mem_bytes: u64,
    /// Set to stop `KVM_RUN`: by the watchdog (a signal to the VMM) or by [`Interrupter`]
    /// when GDB sends data while the guest runs.
    stop: &'a AtomicBool,
    exits: &'a ExitCounters,
    /// The debug registers' breakpoints (kernel code).
    breakpoints: [Option<u64>; 4],
    /// Breakpoints in user code: an `int3` written over the byte kept here (the kernel
    /// reports the trap: `abi::devices::SYSCTL_DEBUG_STOP`).
    user_breakpoints: Vec<(u64, u8)>,
    single_step: bool,
    /// Whether the guest runs now (the interrupter acts only then).
    running: Arc<AtomicBool>,
    /// Set by the interrupter when GDB sent data while the guest ran.
    gdb_wants_in: Arc<AtomicBool>,
    /// How the guest ended, once it has.
    ended: Option<VcpuStop>,
    /// While a user program is stopped for the debugger (its breakpoint or step, which
    /// the kernel reports: `abi::devices::SYSCTL_DEBUG_STOP`), the guest-physical address
    /// of its trap frame: its registers are read and written there.
    user_frame: Option<u64>,
}

/// `u64` slots of the kernel's `TrapFrame` (`abi::devices::SYSCTL_DEBUG_STOP`).
mod frame {
    /// r15, r14, ..., r8, rbp, rdi, rsi, rdx, rcx, rbx, rax: GDB's order of the first
    /// sixteen (rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8 .. r15) as slots, `RSP` for rsp.
    pub const GDB_ORDER: [usize; 16] = [14, 13, 12, 11, 10, 9, 8, RSP, 7, 6, 5, 4, 3, 2, 1, 0];
    pub const VECTOR: usize = 15;
    pub const RIP: usize = 17;
    pub const CS: usize = 18;
    pub const RFLAGS: usize = 19;
    pub const RSP: usize = 20;
    pub const SS: usize = 21;
    pub const SLOTS: usize = 22;
}

/// RFLAGS' trap flag: a single step.
const TRAP_FLAG: u64 = 1 << 8;

impl<'a> GdbTarget<'a> {
    fn cr3(&self) -> u64 {
        self.vcpu.sregs().map_or(0, |s| s.cr3)
    }

    /// The stopped user program's trap frame, or `None` if it cannot be read.
    fn read_frame(&self, gpa: u64) -> Option<[u64; frame::SLOTS]> {
        let mut bytes = [0u8; frame::SLOTS * 8];
        self.memory.read_slice(&mut bytes, GuestAddress(gpa)).ok()?;
        let mut slots = [0u64; frame::SLOTS];
        for (slot, b) in slots.iter_mut().zip(bytes.chunks_exact(8)) {
            *slot = u64::from_le_bytes(b.try_into().ok()?);
        }
        Some(slots)
    }

    fn write_frame(&self, gpa: u64, slots: &[u64; frame::SLOTS]) -> bool {
        let bytes: Vec<u8> = slots.iter().flat_map(|s| s.to_le_bytes()).collect();
        self.memory.write_slice(&bytes, GuestAddress(gpa)).is_ok()
    }

    /// Runs the guest until a breakpoint, a step, its end, or GDB's data. From a user
    /// program's stop, a step is the program's trap flag (the kernel returns to it and the
    /// CPU traps after one instruction), not a step of the kernel's way back.
    fn run(&mut self) -> Result<Stop, VcpuError> {
        let mut kernel_step = self.single_step;
        if let Some(gpa) = self.user_frame.take() {
            kernel_step = false;
            if let Some(mut slots) = self.read_frame(gpa) {
                slots[frame::RFLAGS] &= !TRAP_FLAG;
                if self.single_step {
                    slots[frame::RFLAGS] |= TRAP_FLAG;
                }
                self.write_frame(gpa, &slots);
            }
        }
        self.vcpu.set_debug(&self.breakpoints, kernel_step)?;
        self.running.store(true, Ordering::Release);
        let result = self.vcpu.run(self.pio, self.mmio, self.stop, self.exits);
        self.running.store(false, Ordering::Release);
        let result = result?;
        // GDB's data may have come just as the guest stopped for another reason: the stub
        // reads it anyway, and the flags must not stop the next run.
        if !matches!(result, VcpuStop::Stopped)
            && self.gdb_wants_in.swap(false, Ordering::AcqRel)
            && crate::machine::interrupted().is_none()
        {
            self.stop.store(false, Ordering::Release);
        }
        match result {
            VcpuStop::Debug { dr6 } if dr6 & DR6_BREAKPOINTS != 0 => Ok(Stop::Breakpoint),
            VcpuStop::Debug { .. } => Ok(Stop::Step),
            VcpuStop::Guest(GuestRequest::DebugStop(gpa)) => Ok(self.user_stop(gpa)),
            VcpuStop::Stopped if self.gdb_wants_in.swap(false, Ordering::AcqRel) => {
                self.stop.store(false, Ordering::Release);
                Ok(Stop::Incoming)
            }
            other => Ok(Stop::Ended(other)),
        }
    }

    /// A user program stopped with its trap frame at `gpa`: a single step (#DB), or a
    /// breakpoint, whose `rip` is put back on the `int3` (#BP reports the byte after it;
    /// the #GP of `int3` through a gate user code may not use reports the byte itself).
    fn user_stop(&mut self, gpa: u64) -> Stop {
        const DEBUG: u64 = 1;
        const BREAKPOINT: u64 = 3;
        self.user_frame = Some(gpa);
        let Some(mut slots) = self.read_frame(gpa) else {
            return Stop::Breakpoint;
        };
        match slots[frame::VECTOR] {
            DEBUG => Stop::Step,
            BREAKPOINT => {
                slots[frame::RIP] -= 1;
                self.write_frame(gpa, &slots);
                Stop::Breakpoint
            }
            _ => Stop::Breakpoint,
        }
    }
}

/// Why [`GdbTarget::run`] returned.
enum Stop {
    Breakpoint,
    Step,
    Incoming,
    Ended(VcpuStop),
}

impl Target for GdbTarget<'_> {
    type Arch = X86_64_SSE;
    type Error = VcpuError;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadBase for GdbTarget<'_> {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs) -> TargetResult<(), Self> {
        if let Some(gpa) = self.user_frame {
            let slots = self.read_frame(gpa).ok_or(TargetError::NonFatal)?;
            for (reg, slot) in regs.regs.iter_mut().zip(frame::GDB_ORDER) {
                *reg = slots[slot];
            }
            regs.rip = slots[frame::RIP];
            regs.eflags = slots[frame::RFLAGS] as u32;
            regs.segments.cs = slots[frame::CS] as u32;
            regs.segments.ss = slots[frame::SS] as u32;
            return Ok(());
        }
        let r = self.vcpu.regs().map_err(TargetError::Fatal)?;
        let s = self.vcpu.sregs().map_err(TargetError::Fatal)?;
        regs.regs = [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ];
        regs.rip = r.rip;
        regs.eflags = r.rflags as u32;
        regs.segments.cs = u32::from(s.cs.selector);
        regs.segments.ss = u32::from(s.ss.selector);
        regs.segments.ds = u32::from(s.ds.selector);
        regs.segments.es = u32::from(s.es.selector);
        regs.segments.fs = u32::from(s.fs.selector);
        regs.segments.gs = u32::from(s.gs.selector);
        if let Ok(fpu) = self.vcpu.fpu() {
            for (xmm, bytes) in regs.xmm.iter_mut().zip(fpu.xmm.iter()) {
                *xmm = u128::from_le_bytes(*bytes);
            }
            regs.mxcsr = fpu.mxcsr;
        }
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs) -> TargetResult<(), Self> {
        if let Some(gpa) = self.user_frame {
            let mut slots = self.read_frame(gpa).ok_or(TargetError::NonFatal)?;
            for (reg, slot) in regs.regs.iter().zip(frame::GDB_ORDER) {
                slots[slot] = *reg;
            }
            slots[frame::RIP] = regs.rip;
            slots[frame::RFLAGS] = u64::from(regs.eflags);
            return match self.write_frame(gpa, &slots) {
                true => Ok(()),
                false => Err(TargetError::NonFatal),
            };
        }
        let mut r = self.vcpu.regs().map_err(TargetError::Fatal)?;
        [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ] = regs.regs;
        r.rip = regs.rip;
        // The upper half of RFLAGS is reserved (zero).
        r.rflags = u64::from(regs.eflags);
        self.vcpu.set_regs(&r).map_err(TargetError::Fatal)
    }

    fn read_addrs(&mut self, start_addr: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        let cr3 = self.cr3();
        match memory::read(&self.memory, cr3, self.mem_bytes, start_addr, data) {
            0 if !data.is_empty() => Err(TargetError::NonFatal),
            n => Ok(n),
        }
    }

    fn write_addrs(&mut self, start_addr: u64, data: &[u8]) -> TargetResult<(), Self> {
        let cr3 = self.cr3();
        if memory::write(&self.memory, cr3, self.mem_bytes, start_addr, data) {
            Ok(())
        } else {
            Err(TargetError::NonFatal)
        }
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadResume for GdbTarget<'_> {
    fn resume(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        // A signal GDB passes on has no meaning for a kernel: ignored.
        self.single_step = false;
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadSingleStep for GdbTarget<'_> {
    fn step(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.single_step = true;
        Ok(())
    }
}

impl Breakpoints for GdbTarget<'_> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

impl GdbTarget<'_> {
    /// Takes a debug register for `addr`; false if all four are taken.
    fn add_breakpoint(&mut self, addr: u64) -> bool {
        if self.breakpoints.contains(&Some(addr)) {
            return true;
        }
        match self.breakpoints.iter_mut().find(|b| b.is_none()) {
            Some(free) => {
                *free = Some(addr);
                true
            }
            None => false,
        }
    }

    fn remove_breakpoint(&mut self, addr: u64) -> bool {
        match self.breakpoints.iter_mut().find(|b| **b == Some(addr)) {
            Some(taken) => {
                *taken = None;
                true
            }
            None => false,
        }
    }
}

impl SwBreakpoint for GdbTarget<'_> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if addr >= KERN_BASE {
            return Ok(self.add_breakpoint(addr));
        }
        // User code: an `int3` in the page the running process maps there (a page not in
        // memory cannot take one: GDB says it cannot insert the breakpoint).
        if self.user_breakpoints.iter().any(|&(a, _)| a == addr) {
            return Ok(true);
        }
        let (cr3, mut byte) = (self.cr3(), [0u8]);
        if memory::read(&self.memory, cr3, self.mem_bytes, addr, &mut byte) != 1
            || !memory::write(&self.memory, cr3, self.mem_bytes, addr, &[INT3])
        {
            return Err(TargetError::NonFatal);
        }
        self.user_breakpoints.push((addr, byte[0]));
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if addr >= KERN_BASE {
            return Ok(self.remove_breakpoint(addr));
        }
        let Some(i) = self.user_breakpoints.iter().position(|&(a, _)| a == addr) else {
            return Ok(false);
        };
        let (_, byte) = self.user_breakpoints.swap_remove(i);
        let cr3 = self.cr3();
        Ok(memory::write(
            &self.memory,
            cr3,
            self.mem_bytes,
            addr,
            &[byte],
        ))
    }
}

/// The `int3` instruction.
const INT3: u8 = 0xcc;

impl HwBreakpoint for GdbTarget<'_> {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.add_breakpoint(addr))
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.remove_breakpoint(addr))
    }
}

/// The event loop: run until a stop, tell GDB.
struct EventLoop<'a>(std::marker::PhantomData<&'a ()>);

impl<'a> BlockingEventLoop for EventLoop<'a> {
    type Target = GdbTarget<'a>;
    type Connection = TcpStream;
    type StopReason = SingleThreadStopReason<u64>;

    fn wait_for_stop_reason(
        target: &mut Self::Target,
        conn: &mut Self::Connection,
    ) -> Result<
        run_blocking::Event<Self::StopReason>,
        WaitForStopReasonError<VcpuError, std::io::Error>,
    > {
        let reason = loop {
            match target.run().map_err(WaitForStopReasonError::Target)? {
                // Stopped for GDB's data, which the stub may have read meanwhile (it came
                // as the guest stopped before): with none left, the guest runs on.
                Stop::Incoming => match conn.peek().map_err(WaitForStopReasonError::Connection)? {
                    Some(_) => {
                        let byte = conn.read().map_err(WaitForStopReasonError::Connection)?;
                        return Ok(run_blocking::Event::IncomingData(byte));
                    }
                    None => continue,
                },
                Stop::Breakpoint => break SingleThreadStopReason::SwBreak(()),
                Stop::Step => break SingleThreadStopReason::DoneStep,
                Stop::Ended(end) => {
                    let reason = match &end {
                        VcpuStop::Guest(GuestRequest::PowerOff(status)) => {
                            SingleThreadStopReason::Exited(*status as u8)
                        }
                        VcpuStop::Guest(GuestRequest::Panic(_)) => {
                            SingleThreadStopReason::Terminated(Signal::SIGABRT)
                        }
                        _ => SingleThreadStopReason::Terminated(Signal::SIGKILL),
                    };
                    target.ended = Some(end);
                    break reason;
                }
            }
        };
        Ok(run_blocking::Event::TargetStopped(reason))
    }

    fn on_interrupt(_target: &mut Self::Target) -> Result<Option<Self::StopReason>, VcpuError> {
        Ok(Some(SingleThreadStopReason::Signal(Signal::SIGINT)))
    }
}

/// Wakes the vCPU out of `KVM_RUN` when GDB sends data (Ctrl-C) while the guest runs: a
/// thread that waits for data on a copy of the connection.
struct Interrupter;

impl Interrupter {
    fn start(
        conn: &TcpStream,
        running: Arc<AtomicBool>,
        gdb_wants_in: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
        vcpu_thread: libc::pthread_t,
    ) -> std::io::Result<()> {
        let conn = conn.try_clone()?;
        std::thread::Builder::new()
            .name("gdb-interrupt".into())
            .spawn(move || {
                let mut byte = [0u8; 1];
                loop {
                    // The stub's own peeks make the shared socket non-blocking at times:
                    // then there is just nothing yet.
                    match conn.peek(&mut byte) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                            ) =>
                        {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        Err(_) => return,
                    }
                    // Kicked again until the vCPU has stopped: a signal that lands just
                    // before KVM_RUN is lost. The stop flag first: the vCPU thread clears
                    // it when it finds `gdb_wants_in` after a stop of another kind, and
                    // in the other order a stop flag set between the two would outlive
                    // that and end the next run at once, as if the guest had been killed.
                    if running.load(Ordering::Acquire) {
                        stop.store(true, Ordering::Release);
                        gdb_wants_in.store(true, Ordering::Release);
                        crate::machine::kick_thread(vcpu_thread);
                    }
                    // The data waits for the stub to read it (while the guest is stopped,
                    // that is GDB talking to it).
                    std::thread::sleep(Duration::from_millis(5));
                }
            })?;
        Ok(())
    }
}

/// Waits for GDB to connect; `None` if `stop` is set first (SIGINT or SIGTERM to the VMM).
fn accept(listener: &TcpListener, stop: &AtomicBool) -> Option<std::io::Result<TcpStream>> {
    if let Err(e) = listener.set_nonblocking(true) {
        return Some(Err(e));
    }
    loop {
        match listener.accept() {
            Ok((conn, _)) => return Some(conn.set_nonblocking(false).map(|()| conn)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::Acquire) {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Some(Err(e)),
        }
    }
}

/// Waits for GDB on `listener`, then runs the guest under its control until it ends;
/// returns how it ended. Runs on the vCPU thread. If GDB detaches first, the guest runs
/// on without it.
#[allow(clippy::too_many_arguments)]
pub fn serve(
    listener: TcpListener,
    vcpu: &mut Vcpu,
    pio: &mut Bus,
    mmio: &mut Bus,
    memory: GuestMemoryMmap,
    mem_bytes: u64,
    stop: &Arc<AtomicBool>,
    exits: &ExitCounters,
) -> Result<VcpuStop, VcpuError> {
    let Some(conn) = accept(&listener, stop) else {
        return Ok(VcpuStop::Stopped);
    };
    drop(listener);
    let conn = match conn {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!(
                "vmm: gdb: accepting the debugger's connection failed: {e}; running without it"
            );
            return vcpu.run(pio, mmio, stop, exits);
        }
    };
    let _ = conn.set_nodelay(true);
    let running = Arc::new(AtomicBool::new(false));
    let gdb_wants_in = Arc::new(AtomicBool::new(false));
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    if let Err(e) = Interrupter::start(
        &conn,
        Arc::clone(&running),
        Arc::clone(&gdb_wants_in),
        Arc::clone(stop),
        me,
    ) {
        eprintln!("vmm: gdb: Ctrl-C will not stop the guest: {e}");
    }
    let mut target = GdbTarget {
        vcpu,
        pio,
        mmio,
        memory,
        mem_bytes,
        stop,
        exits,
        breakpoints: [None; 4],
        user_breakpoints: Vec::new(),
        single_step: false,
        running,
        gdb_wants_in,
        ended: None,
        user_frame: None,
    };
    let outcome = GdbStub::new(conn).run_blocking::<EventLoop>(&mut target);
    let GdbTarget {
        vcpu,
        pio,
        mmio,
        ended,
        ..
    } = target;
    if let Some(end) = ended {
        return Ok(end);
    }
    match outcome {
        Ok(DisconnectReason::Kill) => Ok(VcpuStop::Fault(VcpuFault::KilledByDebugger)),
        Ok(_) => {
            vcpu.set_debug(&[None; 4], false)?;
            vcpu.run(pio, mmio, stop, exits)
        }
        Err(e) => {
            eprintln!("vmm: gdb: the debugger's session failed ({e}); running on without it");
            vcpu.set_debug(&[None; 4], false)?;
            vcpu.run(pio, mmio, stop, exits)
        }
    }
}
