//! The kernel's first instructions.
//!
//! The VMM enters `_start` in 64-bit mode, interrupts off, paging on with the boot page
//! tables (all RAM at `KERN_BASE`), `cs`/`ds` from the boot GDT and `rdi` = the guest-physical
//! address of `BootInfo`. The VMM sets no stack: `_start` switches to the boot stack in
//! `.bss` and calls `kmain`, which never returns.

use core::arch::naked_asm;

/// Size of the boot stack, which is also the stack `kmain` and the self-tests run on.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

/// A 16-byte aligned stack area.
#[repr(C, align(16))]
pub struct Stack<const N: usize>(pub [u8; N]);

/// The boot stack; only `_start` names it, through its end address.
static mut BOOT_STACK: Stack<BOOT_STACK_SIZE> = Stack([0; BOOT_STACK_SIZE]);

/// Kernel entry point (the ELF entry).
///
/// # Safety
/// Only the VMM may enter here, once, in the state described in the module documentation.
#[unsafe(naked)]
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.entry")]
pub unsafe extern "C" fn _start() -> ! {
    naked_asm!(
        // rdi (BootInfo address) passes through untouched as kmain's first argument.
        "lea rsp, [rip + {stack} + {size}]",
        "xor ebp, ebp",
        "call {kmain}",
        "ud2",
        stack = sym BOOT_STACK,
        size = const BOOT_STACK_SIZE,
        kmain = sym crate::kmain,
    )
}
