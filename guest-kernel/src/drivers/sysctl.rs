//! The system-control block: power-off, the panic report and page operations
//! (abi::devices).

use abi::devices::{
    PAGE_OP_DONE, PAGE_OP_FAILED, PANIC_MESSAGE_MAX, PageOp, PanicReport, SYSCTL_EXIT,
    SYSCTL_PAGE_OP, SYSCTL_PANIC, SYSCTL_PORT,
};
use abi::layout::{PAGE_OP_GPA, PANIC_PAGE_GPA, phys_to_virt};

use crate::arch::x86_64::cpu;
use crate::sync::IrqGuard;

/// Has the VMM do page operation `op` (`abi::devices::PAGE_OP_*`) with arguments `dst`
/// and `src`; done when this returns. False if the VMM refused or failed it.
pub fn page_op(op: u32, dst: u64, src: u64) -> bool {
    // The argument block is shared: no interrupt handler may use it between the stores and
    // the register write.
    let _irqs_off = IrqGuard::new();
    let args = phys_to_virt(PAGE_OP_GPA) as *mut PageOp;
    // SAFETY: the page-operation block is reserved for this use (abi::layout) and mapped by
    // the direct map; interrupts are off, so nothing else uses it now.
    unsafe {
        args.write_volatile(PageOp {
            dst,
            src,
            status: PAGE_OP_FAILED,
        })
    };
    cpu::outl(SYSCTL_PORT + SYSCTL_PAGE_OP, op);
    // SAFETY: as above; the VMM wrote the status during the register write.
    unsafe { (&raw const (*args).status).read_volatile() == PAGE_OP_DONE }
}

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
