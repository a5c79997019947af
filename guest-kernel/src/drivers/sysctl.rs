//! The system-control block: power-off and the panic report (abi::devices).

use abi::devices::{PANIC_MESSAGE_MAX, PanicReport, SYSCTL_EXIT, SYSCTL_PANIC, SYSCTL_PORT};
use abi::layout::{PANIC_PAGE_GPA, phys_to_virt};

use crate::arch::x86_64::cpu;

/// Powers the machine off; the VMM exits with the low byte of `status`. Never returns.
pub fn power_off(status: i32) -> ! {
    cpu::outl(SYSCTL_PORT + SYSCTL_EXIT, status as u32);
    // The VMM stops the vCPU on the write above; halting is only a guard.
    cpu::halt_forever()
}

/// Copies `message` (truncated to the page's capacity) into the panic page and tells the
/// VMM, which prints it and stops the machine. Never returns.
pub fn report_panic(message: &[u8]) -> ! {
    let len = message.len().min(PANIC_MESSAGE_MAX);
    let report = phys_to_virt(PANIC_PAGE_GPA) as *mut PanicReport;
    // SAFETY: the panic page is reserved for this use (abi::layout), mapped by the direct
    // map, and written only here; `len` is within the message array.
    unsafe {
        core::ptr::copy_nonoverlapping(
            message.as_ptr(),
            (&raw mut (*report).message).cast::<u8>(),
            len,
        );
        (&raw mut (*report).len).write_volatile(len as u32);
    }
    cpu::outl(SYSCTL_PORT + SYSCTL_PANIC, 1);
    cpu::halt_forever()
}
