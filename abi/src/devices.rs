//! Registers of the devices the VMM emulates for the kernel.
//!
//! The console is a 16550 UART at the PC's COM1 address; the kernel sends its output
//! through the system-control block's console register instead, and keeps the UART for
//! input and for reports from states where no lock can be trusted. The system-control block
//! is this project's own: 32-bit I/O ports, written to command the VMM and read for page
//! operations (below).
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
pub const SYSCTL_PORT_COUNT: u16 = 76;
/// Offset of the power-off register (32-bit write: the exit status).
pub const SYSCTL_EXIT: u16 = 0;
/// Offset of the panic register (32-bit write: report is in the panic page).
pub const SYSCTL_PANIC: u16 = 4;
/// Offset of the console register (32-bit write: a byte count `n`). The VMM writes the first
/// `n` bytes of the console page (`layout::CONSOLE_PAGE_GPA`) to its console output, after
/// every byte the UART sent before, and before the write completes. A count over a page is
/// clamped to a page. Why: KVMs that emulate ring 0 turn a `rep outsb` to the UART into one
/// VM exit per byte; this is one exit per page of text.
pub const SYSCTL_CONSOLE: u16 = 12;
/// Offset of the diagnostic register (32-bit write: a byte count `n`, at most
/// [`DIAGNOSTIC_MAX`]). The first `n` bytes of the console page are one line from the
/// kernel for the person running the VMM, not for the guest's console: the VMM prints it
/// on its standard error as `vmm: guest: TEXT`, after the console text before it. Why:
/// the console is the user programs' ABI (guest-abi.md: a load failure prints exactly one
/// line there, which tests compare), and the reason behind it belongs elsewhere.
pub const SYSCTL_DIAGNOSTIC: u16 = 68;
/// Longest diagnostic line, in bytes.
pub const DIAGNOSTIC_MAX: usize = 512;
/// Offset of the debug-stop register (32-bit write, the value ignored), used only with
/// [`crate::boot::FLAG_DEBUGGER`]: a user program hit a breakpoint or finished a single
/// step, and the first 8 bytes of the console page hold the guest-physical address of its
/// trap frame (the kernel's `TrapFrame`: r15 .. rax, vector, error code, rip, cs, rflags,
/// rsp, ss). The VMM stops there for the debugger, which reads and writes the user's
/// registers in that frame (setting the trap flag in its rflags to single-step), and the
/// write completes when the debugger resumes; the kernel then returns to the program.
pub const SYSCTL_DEBUG_STOP: u16 = 72;

// Page operations. Each is a 32-bit *read* (`in eax, dx`) of its own register, with the
// arguments `a` in `rdi` and `b` in `rsi` (page numbers, guest-physical address / 4 KiB, or
// swap slots, as each register says) and, for the operations that map a user page, a map
// request in `rcx` and `r8` (below); the value read is the result. The VMM does the
// operation before the read completes: one VM exit instead of a page of `rep stos`/`rep
// movs` (which KVMs that emulate ring 0 run one element at a time), or instead of a virtio
// request the guest must build and parse. The arguments travel in registers, which KVM hands
// the VMM with the exit (`KVM_CAP_SYNC_REGS`), so an operation is one instruction: on PVM a
// store to an argument block, and the interrupt guard that kept it from being shared, cost
// as much again as the exit. Every argument is hostile to the VMM: an operation on anything
// but whole RAM pages, or on a slot not in use, does nothing and reads [`PAGE_OP_FAILED`].
//
// The swap disk is an array of 4 KiB slots (slot `s` is sectors `8s .. 8s + 8`) and the VMM
// keeps which slots are in use, with a count of the pages that hold each one (a page shared
// copy-on-write is one slot for all its owners): the kernel's paging code never searches a
// bitmap in emulated ring 0. The VMM also counts these operations on the stats page
// (`swap_reads`, `swap_writes`, `swap_disk_requests`, `swap_disk_sectors` and the
// `swap_slots_*` gauges), as the kernel counts its own virtio requests there.
//
// Map requests. [`SYSCTL_PAGE_MAP`], [`SYSCTL_ZERO_MAP`] and [`SYSCTL_SWAP_IN_MAP`] map
// their page `a` for a user page fault, after filling it (nothing, zeros, the swap slot),
// in the same exit: `rcx` holds the user page's address, with [`MAP_WRITABLE`] in bit 0 for
// a writable page, and `r8` the page number of the address space's PML4. The other
// operations never read those registers. The VMM walks the guest's page tables and,
// if every table on the way is present and the leaf entry is unused (0) or an evicted page
// ([`PTE_LISTED`] alone), sets the leaf to `a`'s address | present | user | [`PTE_LISTED`]
// (| writable). It never changes a present entry, so no TLB holds the old one. Why: where
// ring 0 is emulated, the kernel's own 4-level walk and store cost ~60 us of a ~300 us
// fault, an exit ~10 us. A missing table (the first page of a region) is left to the
// kernel ([`PAGE_OP_NOT_MAPPED`]), which allocates and maps as before.

/// Clear page `a`.
pub const SYSCTL_PAGE_ZERO: u16 = 16;
/// Copy page `b` to page `a` (distinct pages).
pub const SYSCTL_PAGE_COPY: u16 = 20;
/// Write page `a` to a free swap slot, now held by `b` pages (at least 1); reads the slot,
/// or [`PAGE_OP_SWAP_FULL`] if none is free.
pub const SYSCTL_SWAP_OUT: u16 = 24;
/// Read swap slot `b` into page `a`; the reading page no longer holds the slot (the slot is
/// free once no page holds it), also when the read fails.
pub const SYSCTL_SWAP_IN: u16 = 28;
/// One more page holds swap slot `a` (fork copied a page that is in swap).
pub const SYSCTL_SWAP_SHARE: u16 = 32;
/// One page no longer holds swap slot `a` (its process ended); the last frees it.
pub const SYSCTL_SWAP_DROP: u16 = 36;
/// Reads the number of free swap slots (no arguments).
pub const SYSCTL_SWAP_FREE: u16 = 40;
/// Map page `a` as the map request says (a page already filled, or a fresh zero frame).
pub const SYSCTL_PAGE_MAP: u16 = 44;
/// [`SYSCTL_PAGE_ZERO`], then map page `a` as the map request says.
pub const SYSCTL_ZERO_MAP: u16 = 48;
/// [`SYSCTL_SWAP_IN`], then map page `a` as the map request says.
pub const SYSCTL_SWAP_IN_MAP: u16 = 52;

/// Clear the `b` pages (at most [`ZERO_LIST_MAX`]) whose page numbers are listed as
/// little-endian `u32`s at the start of page `a`: one exit for a batch (the fast kernel
/// mode's stash of zeroed frames). If any listed page is not a RAM page (or `a` is not, or
/// `b` is too big) nothing is cleared.
pub const SYSCTL_ZERO_LIST: u16 = 56;
/// Most pages one [`SYSCTL_ZERO_LIST`] clears (a page of `u32`s).
pub const ZERO_LIST_MAX: u64 = 1024;

/// Eviction and a fault's fill in one exit: write page `a` to a free swap slot, held by
/// one page (the page it backed, which the kernel evicts), then do
/// [`SYSCTL_ZERO_MAP`] on page `a` with the map request. Reads [`evicted_slot`]'s
/// encoding: the slot and the map's result, or [`PAGE_OP_SWAP_FULL`] / [`PAGE_OP_FAILED`]
/// if the page could not be written out (then nothing was done). Why: where the kernel
/// runs at CPL 3 (the fast mode) an exit costs ~46 us, and a fault that evicts took two.
pub const SYSCTL_EVICT_ZERO_MAP: u16 = 60;
/// As [`SYSCTL_EVICT_ZERO_MAP`], but then [`SYSCTL_SWAP_IN_MAP`] of slot `b` into page `a`.
pub const SYSCTL_EVICT_SWAP_IN_MAP: u16 = 64;
/// The low bits of an eviction's result ([`SYSCTL_EVICT_ZERO_MAP`]) when its fill failed
/// after the page was written out (the slot holds it all the same).
pub const EVICT_FILL_FAILED: u32 = 3;
/// Slots an eviction's result can name: with more swap slots than this the VMM refuses
/// those operations ([`PAGE_OP_FAILED`]) and the kernel uses two exits.
pub const EVICT_MAX_SLOTS: u64 = (1 << 30) - 1;

/// The slot and the map's result ([`PAGE_OP_DONE`], [`PAGE_OP_MAPPED_NEW`],
/// [`PAGE_OP_NOT_MAPPED`], or [`EVICT_FILL_FAILED`]) of an eviction's result; `None` if the
/// page was not written out.
pub const fn evicted_slot(result: u32) -> Option<(u32, u32)> {
    // Slots below EVICT_MAX_SLOTS keep every encoding below the two refusals.
    if result >= PAGE_OP_SWAP_FULL {
        None
    } else {
        Some((result >> 2, result & 3))
    }
}

/// Bit 0 of a map request's address: the page is writable.
pub const MAP_WRITABLE: u64 = 1;
/// Software bit 10 of a leaf page-table entry: the kernel lists the page among its
/// address space's mapped pages. An evicted page's entry keeps only this bit.
pub const PTE_LISTED: u64 = 1 << 10;

/// Result of a page operation that worked (but [`SYSCTL_SWAP_OUT`] reads the slot); with a
/// map request, the page was mapped over an evicted page's entry.
pub const PAGE_OP_DONE: u32 = 0;
/// Result of a page operation with a map request that mapped its page at an entry never
/// used before: the kernel lists the page.
pub const PAGE_OP_MAPPED_NEW: u32 = 1;
/// Result of a page operation with a map request that did its work but did not map the
/// page (a table on the way is missing, or the entry is in use): the kernel maps it.
pub const PAGE_OP_NOT_MAPPED: u32 = 2;
/// Result of a page operation that was refused (bad page or slot, no swap disk) or failed
/// on the host.
pub const PAGE_OP_FAILED: u32 = u32::MAX;
/// Result of [`SYSCTL_SWAP_OUT`] when every swap slot is in use.
pub const PAGE_OP_SWAP_FULL: u32 = u32::MAX - 1;
/// Most swap slots the VMM serves (64 KiB short of 16 TiB of swap): slot numbers stay below
/// the results that are not slots.
pub const MAX_SWAP_SLOTS: u64 = (u32::MAX - 15) as u64;

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
    fn slots_stay_below_the_results_that_are_not_slots() {
        assert!(MAX_SWAP_SLOTS < u64::from(PAGE_OP_SWAP_FULL));
        assert!(MAX_SWAP_SLOTS < u64::from(PAGE_OP_FAILED));
    }

    #[test]
    fn registers_fit_the_block() {
        for r in [
            SYSCTL_EXIT,
            SYSCTL_PANIC,
            SYSCTL_CONSOLE,
            SYSCTL_PAGE_ZERO,
            SYSCTL_PAGE_COPY,
            SYSCTL_SWAP_OUT,
            SYSCTL_SWAP_IN,
            SYSCTL_SWAP_SHARE,
            SYSCTL_SWAP_DROP,
            SYSCTL_SWAP_FREE,
            SYSCTL_PAGE_MAP,
            SYSCTL_ZERO_MAP,
            SYSCTL_SWAP_IN_MAP,
            SYSCTL_ZERO_LIST,
            SYSCTL_EVICT_ZERO_MAP,
            SYSCTL_EVICT_SWAP_IN_MAP,
        ] {
            assert!(r % 4 == 0 && r + 4 <= SYSCTL_PORT_COUNT);
        }
    }
}
