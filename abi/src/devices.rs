//! Registers of the devices the VMM emulates for the kernel.
//!
//! The console is a 16550 UART at the PC's COM1 address; the kernel sends its output
//! through the system-control block's console register instead, and keeps the UART for
//! input and for reports from states where no lock can be trusted. The system-control block
//! is this project's own: 32-bit write-only I/O ports.
//!
//! * `SYSCTL_EXIT`: writing a status powers the machine off; the VMM exits with the low byte
//!   of the status (so -1 becomes 255).
//! * `SYSCTL_PANIC`: the kernel has put a [`PanicReport`] in the panic page and gives up; the
//!   VMM prints it as `vmm: guest kernel panic: MESSAGE` and exits with status 125. The value
//!   written is ignored.

/// Interrupt vector of interrupt line 0. The machine has no PIC or IOAPIC: a device with
/// interrupt line `irq` (see `BootInfo::devices`) raises vector `IRQ_VECTOR_BASE + irq` at
/// the local APIC directly, as an edge-triggered MSI. The kernel acknowledges it with a
/// LAPIC EOI.
pub const IRQ_VECTOR_BASE: u8 = 0x20;

/// Rate at which the local APIC timer counts with divide-by-1: KVM emulates an APIC bus
/// cycle of 1 ns (measured here against the TSC: 999.7-999.8 MHz).
pub const LAPIC_TIMER_HZ: u64 = 1_000_000_000;

/// First I/O port of the COM1 16550 UART.
pub const SERIAL_PORT: u16 = 0x3f8;
/// Number of UART registers (ports `SERIAL_PORT..SERIAL_PORT + 8`).
pub const SERIAL_PORT_COUNT: u16 = 8;
/// Interrupt line of the UART (vector `IRQ_VECTOR_BASE + SERIAL_IRQ`).
pub const SERIAL_IRQ: u32 = 4;

/// Guest-physical address of the first virtio-mmio device (in the 32-bit hole).
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
/// Bytes of each virtio-mmio device's register window; device `i` is at
/// `VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SIZE`.
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// The file-system disk: virtio-mmio device 0.
pub const FS_DISK_GPA: u64 = VIRTIO_MMIO_BASE;
/// Interrupt line of the file-system disk.
pub const FS_DISK_IRQ: u32 = 5;
/// The swap disk: virtio-mmio device 1.
pub const SWAP_DISK_GPA: u64 = VIRTIO_MMIO_BASE + VIRTIO_MMIO_SIZE;
/// Interrupt line of the swap disk.
pub const SWAP_DISK_IRQ: u32 = 6;

/// First I/O port of the system-control block.
pub const SYSCTL_PORT: u16 = 0x500;
/// Number of ports in the system-control block.
pub const SYSCTL_PORT_COUNT: u16 = 16;
/// Offset of the power-off register (32-bit write: the exit status).
pub const SYSCTL_EXIT: u16 = 0;
/// Offset of the panic register (32-bit write: report is in the panic page).
pub const SYSCTL_PANIC: u16 = 4;
/// Offset of the page-operation register (32-bit write: [`PAGE_OP_ZERO`] or
/// [`PAGE_OP_COPY`], arguments in the [`PageOp`] block at `layout::PAGE_OP_GPA`). The VMM
/// does the operation before the write completes: one VM exit instead of a page of
/// `rep stos`/`rep movs`, which KVMs that emulate ring 0 run one element at a time.
pub const SYSCTL_PAGE_OP: u16 = 8;
/// Offset of the console register (32-bit write: a byte count `n`). The VMM writes the first
/// `n` bytes of the console page (`layout::CONSOLE_PAGE_GPA`) to its console output, after
/// every byte the UART sent before, and before the write completes. A count over a page is
/// clamped to a page. Why: KVMs that emulate ring 0 turn a `rep outsb` to the UART into one
/// VM exit per byte; this is one exit per page of text.
pub const SYSCTL_CONSOLE: u16 = 12;
/// Page operation: clear the page at `PageOp::dst`.
pub const PAGE_OP_ZERO: u32 = 1;
/// Page operation: copy the page at `PageOp::src` to `PageOp::dst`.
pub const PAGE_OP_COPY: u32 = 2;
/// Page operation: read swap slot `PageOp::src` (4 KiB slots from the start of the swap
/// disk) into the page at `PageOp::dst`. Swap moves whole pages between a frame and its
/// slot during one VM exit, with no virtio request for the guest to build and parse.
pub const PAGE_OP_SWAP_IN: u32 = 3;
/// Page operation: write the page at `PageOp::src` to swap slot `PageOp::dst`.
pub const PAGE_OP_SWAP_OUT: u32 = 4;
/// [`PageOp::status`] after an operation that worked.
pub const PAGE_OP_DONE: u64 = 0;
/// [`PageOp::status`] after an operation that was refused (bad page or slot, no swap disk)
/// or failed on the host.
pub const PAGE_OP_FAILED: u64 = 1;

/// Arguments of a page operation: guest-physical page addresses (or a swap slot), and the
/// outcome the VMM writes back. The VMM treats the arguments as hostile: an operation whose
/// pages are not page-aligned, not wholly guest RAM, the same page (for a copy), or whose
/// slot is past the swap disk's end does nothing and reports [`PAGE_OP_FAILED`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageOp {
    pub dst: u64,
    pub src: u64,
    pub status: u64,
}

/// Capacity of [`PanicReport::message`].
pub const PANIC_MESSAGE_MAX: usize = 4096 - 8;

/// The panic page: a length-prefixed UTF-8 message. The VMM treats every field as hostile:
/// it clamps `len` to [`PANIC_MESSAGE_MAX`] and prints invalid bytes as replacement characters.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PanicReport {
    /// Number of valid bytes in `message`.
    pub len: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// The message, without a trailing newline.
    pub message: [u8; PANIC_MESSAGE_MAX],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_report_is_one_page() {
        assert_eq!(size_of::<PanicReport>(), 4096);
        assert_eq!(core::mem::offset_of!(PanicReport, message), 8);
    }

    #[test]
    fn page_op_layout() {
        assert_eq!(size_of::<PageOp>(), 24);
        assert_eq!(core::mem::offset_of!(PageOp, status), 16);
        assert_eq!(core::mem::offset_of!(PageOp, dst), 0);
        assert_eq!(core::mem::offset_of!(PageOp, src), 8);
    }
}
