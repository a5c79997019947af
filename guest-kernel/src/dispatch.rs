//! Trap dispatch: what the kernel does with each event `arch` decoded
//! (`arch::x86_64::trap::Event`).
//!
//! `arch` turns every trap into one event and its user frame; [`handle`] (installed at boot
//! with `arch::x86_64::trap::set_handler`) hands it to the code that owns it: system calls,
//! the page-fault path (`vm::fault`), the scheduler's tick, the device drivers. A user
//! program's exception that nothing resolves ends the process with -1.
//!
//! Runs with interrupts off, on the kernel stack of the thread that trapped; the timer may
//! switch threads from here (the thread resumes here later and returns from the trap).

use abi::layout::{KERN_BASE, PAGE_SIZE};

use crate::arch::x86_64::lapic;
use crate::arch::x86_64::trap::{self, Event, TrapFrame};
use crate::proc;
use crate::vm::{self, Access};
use crate::{console, thread};

/// Handles one event; returns to the trapped code (which `frame` now describes) unless the
/// event ended the process.
pub fn handle(frame: &mut TrapFrame, event: Event) {
    match event {
        Event::Syscall => crate::syscall::dispatch(frame),
        Event::Int42 => int42(frame),
        Event::PageFault {
            addr,
            present,
            write,
        } if user_page_fault(frame, addr, present, write) => {}
        Event::InvalidOpcode if skip_int42(frame) => int42(frame),
        Event::Timer => {
            // Before the tick: it may switch threads.
            lapic::eoi();
            thread::tick();
        }
        Event::Device(line) => {
            if line == abi::devices::SERIAL_IRQ {
                console::on_interrupt();
            } else {
                crate::drivers::block::handle_interrupt(line);
            }
            lapic::eoi();
        }
        // Any other exception is the program's fault.
        Event::PageFault { .. } | Event::InvalidOpcode | Event::UserException(_) => {
            proc::exit(proc::KILLED)
        }
    }
}

/// Resolves a user page fault at `addr` (a program page not loaded yet, stack growth, a
/// write to a copy-on-write page); false if the program must die.
fn user_page_fault(frame: &TrapFrame, addr: u64, present: bool, write: bool) -> bool {
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
    vm::fault::resolve(&mut p.mem, addr, frame.rsp, access, false)
}

/// Whether the invalid opcode at `frame.rip` is `int 0x42` (then `rip` is past it). Reads
/// the instruction through the page tables, as the user-copy module does, but without
/// building a buffer: this is on the `int 0x42` path of KVMs that raise #UD for it.
fn skip_int42(frame: &mut TrapFrame) -> bool {
    let Some(process) = proc::current() else {
        return false;
    };
    trap::skip_int42(frame, |va| process.mem.space.read_byte(va))
}

/// `int 0x42`: `rax` holds a user address; it becomes the kernel-virtual address of the
/// frame backing that page, or 0 if none does now.
fn int42(frame: &mut TrapFrame) {
    let page = frame.rax & !(PAGE_SIZE - 1);
    let backing = proc::current()
        .filter(|_| page < KERN_BASE)
        .and_then(|p| p.mem.space.translate(page))
        .map_or(0, |m| m.frame.virt());
    frame.rax = backing;
}
