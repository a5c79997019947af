//! `badmem KIND`: one bad memory access or jump; each kills the process with -1, so the
//! output is the line naming KIND, then `badmem: exit(-1)`.
//!
//! KIND: read-null, write-null, read-kernel, write-kernel (KERN_BASE), read-unmapped
//! (0x20000000), write-code (store into our own text), below-stack (store 64 KiB below
//! `rsp`), call-null, call-kernel (jump to KERN_BASE + 2 MiB, the kernel's code),
//! breakpoint (`int3`: the kernel's own code at CPL 3 uses it to ask the shim for things,
//! in an IDT of its own; a user program's is a fault).
#![no_std]
#![no_main]

use core::arch::asm;

ulib::entry!("badmem", main);

/// Lowest kernel address (guest-abi §2).
const KERN_BASE: usize = 0x80_0400_0000;
/// Where every address space maps the system-call trampoline, whose first instruction is
/// the `syscall` entry (`LSTAR`).
const TRAMPOLINE_VA: u64 = 0x7f_ffff_f000;

/// Loads a byte from `addr` (in assembly, so the compiler cannot reason about it).
///
/// # Safety
/// Not sound for a bad `addr`: meant to fault.
unsafe fn load(addr: usize) {
    // SAFETY: the caller intends the fault.
    unsafe { asm!("mov {0:l}, byte ptr [{0}]", inout(reg) addr => _, options(nostack)) };
}

/// Stores a byte to `addr`.
///
/// # Safety
/// Not sound for a bad `addr`: meant to fault.
unsafe fn store(addr: usize) {
    // SAFETY: the caller intends the fault.
    unsafe { asm!("mov byte ptr [{0}], 0xcc", in(reg) addr, options(nostack)) };
}

/// Calls `addr`.
///
/// # Safety
/// Not sound for a bad `addr`: meant to fault.
unsafe fn call(addr: usize) {
    // SAFETY: the caller intends the fault.
    unsafe { asm!("call {0}", in(reg) addr, clobber_abi("C")) };
}

fn main(args: &[&str]) -> i32 {
    let kind = args.get(1).copied().unwrap_or("");
    ulib::msg!("{kind}");
    let rsp: usize;
    // SAFETY: reads rsp only.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
    // SAFETY: none of these is sound: each access is meant to fault and get the process
    // killed by the kernel; that is what the test checks.
    unsafe {
        match kind {
            "read-null" => load(0),
            "write-null" => store(0),
            "read-kernel" => load(KERN_BASE),
            "write-kernel" => store(KERN_BASE),
            "read-unmapped" => load(0x2000_0000),
            "write-code" => store(main as *const () as usize),
            "below-stack" => store(rsp - 0x1_0000),
            "call-null" => call(0),
            "call-kernel" => call(KERN_BASE + 0x20_0000),
            "breakpoint" => asm!("int3"),
            // Privileged instructions: the fast kernel mode's shim does some of them for
            // the kernel at CPL 3 (`in eax, dx` and `out dx, eax` to the VMM's ports, cli,
            // sti); a user program's must kill it, never reach a port. The port is the
            // system-control block's power-off register.
            "cli" => asm!("cli"),
            "port-in" => asm!("in eax, dx", in("dx") 0x500u16, out("eax") _),
            "port-out" => asm!("out dx, eax", in("dx") 0x500u16, in("eax") 7u32),
            // The system-call trampoline entered by a jump, not by `syscall`, with a
            // return address (rcx) outside user space: the kernel must not return there.
            "trampoline-bad-return" => asm!(
                "jmp {entry}",
                entry = in(reg) TRAMPOLINE_VA,
                in("rax") ulib::sys::nr::TELL,
                in("rdi") 100u64,
                in("rcx") 0x8000_0000_0000_0000u64,
                in("r11") 0x202u64,
                options(noreturn)
            ),
            _ => ulib::fail!("unknown kind '{kind}'"),
        }
    }
    ulib::fail!("{kind} did not kill the process")
}
