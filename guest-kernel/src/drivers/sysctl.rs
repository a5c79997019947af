//! The system-control block: power-off, the panic report, console output and page
//! operations (abi::devices).

use abi::devices::{
    PANIC_MESSAGE_MAX, PanicReport, SYSCTL_CONSOLE, SYSCTL_EXIT, SYSCTL_PANIC, SYSCTL_PORT,
};
use abi::layout::{CONSOLE_PAGE_GPA, PAGE_SIZE, PANIC_PAGE_GPA, phys_to_virt};

use crate::platform;

/// Has the VMM do the page operation of `register` (`abi::devices::SYSCTL_PAGE_ZERO` ..
/// `SYSCTL_SWAP_FREE`) with arguments `a` and `b`; returns its result (done when this
/// returns): one register read with the arguments in registers, a single VM exit. Nothing
/// is shared, so no lock and no interrupt guard: an interrupt cannot split the instruction.
#[inline(always)]
pub fn page_op(register: u16, a: u32, b: u32) -> u32 {
    platform::inl_with_args(SYSCTL_PORT + register, a, b, 0, 0)
}

/// A request that a page operation also map its page for a user page fault
/// (`abi::devices`), made by `AddressSpace::fill_and_map`.
#[derive(Clone, Copy, Debug)]
pub struct MapRequest {
    /// The user page's address, with `abi::devices::MAP_WRITABLE` for a writable page.
    pub page: u64,
    /// Page number of the address space's PML4.
    pub root: u32,
}

/// [`page_op`] for `SYSCTL_PAGE_MAP`, `SYSCTL_ZERO_MAP` or `SYSCTL_SWAP_IN_MAP`, which map
/// page `a` as `map` asks, in the same VM exit; returns its result (`PAGE_OP_DONE`,
/// `PAGE_OP_MAPPED_NEW`, `PAGE_OP_NOT_MAPPED` or `PAGE_OP_FAILED`).
#[inline(always)]
pub fn page_op_and_map(register: u16, a: u32, b: u32, map: MapRequest) -> u32 {
    platform::inl_with_args(SYSCTL_PORT + register, a, b, map.page, map.root)
}

/// Console text gathered in the console page and handed to the VMM with one register write
/// (one VM exit) per page or per [`ConsolePage::flush`].
///
/// The console owns the only one, behind its lock: text from two would mix in the page.
#[derive(Debug)]
pub struct ConsolePage {
    /// Bytes waiting at the start of the page.
    used: usize,
}

impl ConsolePage {
    const CAPACITY: usize = PAGE_SIZE as usize;

    pub const fn new() -> Self {
        ConsolePage { used: 0 }
    }

    /// Adds `bytes`, sending the page each time it fills.
    pub fn write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = bytes.len().min(Self::CAPACITY - self.used);
            let page = phys_to_virt(CONSOLE_PAGE_GPA) as *mut u8;
            // SAFETY: the console page is reserved for console text (abi::layout) and mapped
            // by the direct map; `used + n` is at most a page; the only `ConsolePage` is
            // behind the console's lock, so nothing else writes the page meanwhile.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), page.add(self.used), n) };
            self.used += n;
            bytes = &bytes[n..];
            if self.used == Self::CAPACITY {
                self.flush();
            }
        }
    }

    /// Sends `text` (at most `DIAGNOSTIC_MAX` bytes of it) to the VMM's standard error as
    /// a diagnostic (`abi::devices::SYSCTL_DIAGNOSTIC`), after the waiting console text.
    pub fn diagnostic(&mut self, text: &[u8]) {
        self.flush();
        let text = &text[..text.len().min(abi::devices::DIAGNOSTIC_MAX)];
        // SAFETY: the only `ConsolePage` is behind the console's lock, and its waiting text
        // is out: nothing else uses the page.
        unsafe { send_page(abi::devices::SYSCTL_DIAGNOSTIC, text) };
    }

    /// Stops for the debugger at a user program's trap, whose frame is at guest-physical
    /// `frame_gpa` (`abi::devices::SYSCTL_DEBUG_STOP`); returns when it resumes.
    pub fn debug_stop(&mut self, frame_gpa: u64) {
        self.flush();
        // SAFETY: as in `diagnostic`.
        unsafe { send_page(abi::devices::SYSCTL_DEBUG_STOP, &frame_gpa.to_le_bytes()) };
    }

    /// Has the VMM write out the waiting text; it is out when this returns.
    pub fn flush(&mut self) {
        if self.used != 0 {
            platform::outl(SYSCTL_PORT + SYSCTL_CONSOLE, self.used as u32);
            self.used = 0;
        }
    }
}

/// Sends `text` (up to a page) to the console in one exit, without the console's lock: for
/// the fault dump on the way to a panic, which cannot trust the lock (the fault may have
/// struck while it was held). It writes over the console page, whose unsent text, if any,
/// is a call the fault cut short: its thread never resumes to send it.
pub fn emergency_console(text: &[u8]) {
    // SAFETY: nothing else runs meanwhile: this is the one CPU, with interrupts off, on its
    // way to a panic.
    unsafe { send_page(SYSCTL_CONSOLE, text) };
}

/// Copies `bytes` (up to a page) to the start of the console page and writes their count
/// to sysctl `register`: the VMM takes them during that exit.
///
/// # Safety
/// Nothing else writes the console page meanwhile.
unsafe fn send_page(register: u16, bytes: &[u8]) {
    let n = bytes.len().min(ConsolePage::CAPACITY);
    // SAFETY: the console page is reserved for this (abi::layout) and mapped by the direct
    // map; `n` is at most a page; the caller keeps everything else off the page.
    unsafe {
        core::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            phys_to_virt(CONSOLE_PAGE_GPA) as *mut u8,
            n,
        );
    }
    platform::outl(SYSCTL_PORT + register, n as u32);
}

/// Powers the machine off; the VMM exits with the low byte of `status`. Never returns.
pub fn power_off(status: i32) -> ! {
    platform::outl(SYSCTL_PORT + SYSCTL_EXIT, status as u32);
    // The VMM stops the vCPU on the write above; halting is only a guard.
    platform::halt_forever()
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
    platform::outl(SYSCTL_PORT + SYSCTL_PANIC, 1);
    platform::halt_forever()
}
