//! Trap dispatch: what the kernel does with each event `arch` decoded
//! (`arch::x86_64::trap::Event`).
//!
//! The trap stubs call [`kernel_trap`] with the saved frame; `arch` decodes it into one
//! event, and this module hands the event to the code that owns it: system calls, the
//! page-fault path (`vm::fault`), the scheduler's tick, the device drivers. A user
//! program's exception that nothing resolves ends the process with -1.
//!
//! Every arm is one call, so the entry itself saves no registers: where ring 0 is emulated,
//! each memory access on this path is paid by every system call and fault.
//!
//! Runs with interrupts off, on the kernel stack of the thread that trapped; the timer may
//! switch threads from here (the thread resumes here later and returns from the trap).

use abi::layout::{KERN_BASE, PAGE_SIZE};

use crate::arch::x86_64::fast::{self, Verdict};
use crate::arch::x86_64::trap::{self, Event, TrapFrame};
use crate::vm::{self, Access};
use crate::{console, thread};
use crate::{platform, proc};

/// Entry from the trap stubs (`arch::x86_64::idt`, which call it by this link name) with
/// the frame they saved. Returns to the trapped code, which `frame` then describes, unless
/// the event ended the process.
// SAFETY: no other item has this link name; the stubs call it with the System V ABI and a
// pointer to the frame they pushed on the current stack (aligned, initialised, and
// exclusively this function's until it returns).
#[unsafe(no_mangle)]
extern "C" fn kernel_trap(frame: &mut TrapFrame) {
    match trap::decode(frame) {
        None => {}
        Some(Event::Syscall) => crate::syscall::dispatch(frame),
        Some(Event::Int42) => int42(frame),
        Some(Event::PageFault {
            addr,
            present,
            write,
        }) => page_fault(frame, addr, present, write),
        Some(Event::InvalidOpcode) => invalid_opcode(frame),
        Some(Event::Timer) => timer(),
        Some(Event::Device(line)) => device(line),
        // A breakpoint or single step stops for an attached debugger.
        Some(Event::UserException(vector))
            if debugger_attached() && is_debug_stop(vector, frame) =>
        {
            console::debug_stop(frame as *mut TrapFrame as u64 - KERN_BASE);
        }
        // Any other exception is the program's fault.
        Some(Event::UserException(_)) => {
            settle_shim_faults();
            proc::exit(proc::KILLED)
        }
    }
}

/// Entry from the fast mode's shim (`arch::x86_64::fast`), at CPL 3 in the kernel view with
/// interrupts off, with a user's event in `frame`: a page fault (the error code as the CPU
/// gave it; the address from the shim), an invalid opcode (`int 0x42` on PVM) or a system
/// call (the #GP of the trampoline, PVM).
/// Says what the shim does next: resume the user, or run the system call in ring 0
/// ([`kernel_syscall_ring0`]). A process that ends here ends its thread here too
/// (`proc::exit`), and the switch to the next thread goes through the shim; a `wait` that
/// blocks switches the same way and returns when its child has exited.
// SAFETY: no other item has this link name; the fast mode's entry calls it with the System
// V ABI and a pointer to the frame it built on the current stack.
#[unsafe(no_mangle)]
extern "C" fn kernel_event_cpl3(frame: &mut TrapFrame) -> Verdict {
    settle_shim_faults();
    thread::bury_dead();
    let resolved = match frame.vector {
        trap::vector::PAGE_FAULT => {
            let (present, write) = trap::page_fault_access(frame.error_code);
            user_page_fault::<true>(frame, fast::fault_address(), present, write)
        }
        trap::vector::INVALID_OPCODE => emulated_int42(frame),
        trap::vector::TIMER => {
            // Acknowledged by the shim.
            tick();
            true
        }
        _ => {
            if trap::syscall_from_trampoline(frame) {
                return crate::syscall::dispatch_at_cpl3(frame);
            }
            false
        }
    };
    if !resolved {
        proc::exit(proc::KILLED);
    }
    Verdict::Resume
}

/// Entry from the fast mode's shim, in ring 0 on the thread's kernel stack with interrupts
/// off, for a system call [`kernel_event_cpl3`] left to ring 0 (`frame` is already the
/// one `syscall` returns with): runs it as classic mode does. The shim then resumes the
/// user from `frame`.
// SAFETY: no other item has this link name; the shim calls it with the System V ABI and a
// pointer to the frame on the current stack.
#[unsafe(no_mangle)]
extern "C" fn kernel_syscall_ring0(frame: &mut TrapFrame) {
    crate::syscall::dispatch(frame);
}

/// Whether a debugger is attached (`abi::boot::FLAG_DEBUGGER`): user breakpoints and
/// single steps stop for it instead of ending the program.
fn debugger_attached() -> bool {
    crate::boot::info().flags & abi::boot::FLAG_DEBUGGER != 0
}

/// Whether a user exception is a breakpoint or a single step: #DB, #BP, or the #GP that
/// `int3` raises through the breakpoint gate, which user code may not use (error code:
/// vector 3, from the IDT).
fn is_debug_stop(vector: u64, frame: &TrapFrame) -> bool {
    const INT3_THROUGH_GATE: u64 = (trap::vector::BREAKPOINT << 3) | 2;
    vector == trap::vector::DEBUG
        || vector == trap::vector::BREAKPOINT
        || (vector == trap::vector::GENERAL_PROTECTION && frame.error_code == INT3_THROUGH_GATE)
}

/// The timer interrupt.
#[inline(never)]
fn timer() {
    // Before the tick: it may switch threads.
    platform::end_of_interrupt();
    tick();
}

/// The timer's tick, after its acknowledgement: counts it, wakes sleepers, and lets another
/// thread run if the running one's slice is over.
#[inline(always)]
fn tick() {
    if thread::tick_without_preemption() {
        // What the shim did for this process is settled before another one runs.
        settle_shim_faults();
        thread::yield_now();
    }
}

/// Settles what the fast mode's shim did for the running process since the kernel last ran
/// (`vm::fault::settle_shim_faults`): at every entry from its user code that may look at
/// its pages or switch to another process.
#[inline(always)]
fn settle_shim_faults() {
    if let Some(process) = proc::current() {
        vm::fault::settle_shim_faults(&mut process.mem);
    }
}

/// An interrupt from device line `line`.
#[inline(never)]
fn device(line: u32) {
    if line == abi::devices::SERIAL_IRQ {
        console::on_interrupt();
    } else {
        crate::drivers::block::handle_interrupt(line);
    }
    platform::end_of_interrupt();
}

/// A user page fault: resolved, or the process ends. Inlined: it calls the fault path and
/// needs nothing kept across the call, so the entry still saves no registers.
#[inline(always)]
fn page_fault(frame: &TrapFrame, addr: u64, present: bool, write: bool) {
    if !user_page_fault::<false>(frame, addr, present, write) {
        proc::exit(proc::KILLED);
    }
}

/// An invalid opcode in user mode: `int 0x42` on KVMs that raise #UD for it, or the
/// program's fault.
#[inline(never)]
fn invalid_opcode(frame: &mut TrapFrame) {
    if !emulated_int42(frame) {
        proc::exit(proc::KILLED);
    }
}

/// For an invalid opcode in user mode: if it is `int 0x42`, does what the gate would have
/// and says so; false if the program must die. Inlined: in classic mode this is the
/// `int 0x42` path of PVM, where every emulated instruction of a call shows (a call here
/// cost the round trip 22%).
#[inline(always)]
fn emulated_int42(frame: &mut TrapFrame) -> bool {
    let Some(process) = proc::current() else {
        return false;
    };
    // The instruction is read through the page tables, as the user-copy module does, but
    // without building a buffer: this is the `int 0x42` path of KVMs that raise #UD for it.
    let space = &mut process.mem.space;
    if !trap::skip_int42(frame, |va| space.read_byte(va)) {
        return false;
    }
    int42_of(process, frame);
    true
}

/// Resolves a user page fault at `addr` (a program page not loaded yet, stack growth, a
/// write to a copy-on-write page); false if the program must die. `AT_CPL3`: kernel code
/// at CPL 3 resolves it (`vm::fault::resolve_at_cpl3`).
#[inline(always)]
fn user_page_fault<const AT_CPL3: bool>(
    frame: &TrapFrame,
    addr: u64,
    present: bool,
    write: bool,
) -> bool {
    let Some(p) = proc::current() else {
        return false;
    };
    let access = match (present, write) {
        (false, _) => Access::Missing,
        // A write to a read-only page: fine only if the page is copy-on-write.
        (true, true) => Access::Write,
        // Present, not a write (a kernel page, or a fetch from a no-execute page): nothing
        // to bring in.
        (true, false) => Access::Denied,
    };
    if AT_CPL3 {
        vm::fault::resolve_at_cpl3(&mut p.mem, addr, frame.rsp, access, false)
    } else {
        vm::fault::resolve(&mut p.mem, addr, frame.rsp, access, false)
    }
}

/// `int 0x42`: `rax` holds a user address; it becomes the kernel-virtual address of the
/// frame backing that page, or 0 if none does now.
#[inline(never)]
fn int42(frame: &mut TrapFrame) {
    match proc::current() {
        Some(process) => int42_of(process, frame),
        None => frame.rax = 0,
    }
}

/// [`int42`] for `process`.
#[inline(always)]
fn int42_of(process: &mut proc::Process, frame: &mut TrapFrame) {
    let page = frame.rax & !(PAGE_SIZE - 1);
    frame.rax = (page < KERN_BASE)
        .then(|| process.mem.space.translate(page))
        .flatten()
        .map_or(0, |m| m.frame.virt());
}
