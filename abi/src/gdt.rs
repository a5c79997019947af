//! Segment selectors shared by the VMM's boot GDT and the kernel's own GDT.
//!
//! The VMM enters the kernel with `cs = KERNEL_CS` and the data segments `= KERNEL_DS`; the
//! kernel later loads its own GDT with the same two selectors in the same slots, so nothing
//! needs reloading at that moment.

/// 64-bit kernel code segment.
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data segment (also the kernel stack segment).
pub const KERNEL_DS: u16 = 0x10;
/// Number of descriptors in the VMM's boot GDT (null, code, data).
pub const BOOT_GDT_ENTRIES: usize = 3;
