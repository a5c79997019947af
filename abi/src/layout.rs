//! Guest-physical and kernel-virtual layout.
//!
//! ```text
//! guest-physical                                   what
//! 0x0000_0000 .. 0x0000_1000   page 0, never used
//! 0x0000_1000                  boot GDT               (BOOT_GDT_GPA, written by the VMM)
//! 0x0000_2000                  BootInfo               (BOOT_INFO_GPA)
//! 0x0000_3000                  command line, 1 page   (CMDLINE_GPA)
//! 0x0000_4000                  stats page             (STATS_PAGE_GPA)
//! 0x0000_5000                  panic report page      (PANIC_PAGE_GPA)
//! 0x0000_6000                  fault trace header     (TRACE_HEADER_GPA)
//! 0x0000_7000                  console output page    (CONSOLE_PAGE_GPA)
//! 0x0000_8000 .. 0x0001_0000   fault trace ring       (TRACE_RING_GPA)
//! 0x0001_0000 .. 0x0010_0000   boot page tables       (BOOT_PT_START..BOOT_PT_END, kept by the kernel)
//! 0x0010_0000 .. 0x0020_0000   usable RAM
//! 0x0020_0000 .. kernel end    kernel image           (KERNEL_PHYS_BASE)
//! kernel end  .. 0xC000_0000   usable RAM (up to the RAM size)
//! 0xC000_0000 .. 0x1_0000_0000 32-bit hole: virtio-mmio devices, LAPIC (LAPIC_GPA)
//! 0x1_0000_0000 ..             RAM beyond 3 GiB, if any
//!
//! kernel-virtual
//! 0x0000_0000_0000 .. KERN_BASE          user space (per process)
//! KERN_BASE + gpa                        every guest-physical address below `ram_top`,
//!                                        mapped with 2 MiB pages (the hole uncached)
//! KERN_BASE + KERNEL_PHYS_BASE           the kernel image (the kernel is linked here)
//! ```
//!
//! `KERN_BASE` is PML4 slot 1, PDPT slot 0, PD slot 32: it is not 1 GiB aligned, and 1 GiB
//! pages do not work on every KVM, so the direct map uses 2 MiB pages only.

/// Size of a base page.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a large page, the unit of the boot direct map.
pub const LARGE_PAGE_SIZE: u64 = 2 * 1024 * 1024;

/// Kernel-virtual address of guest-physical address 0; user space ends here.
pub const KERN_BASE: u64 = 0x80_0400_0000;
/// Where the kernel maps its system-call trampoline page in every user address space: the
/// last page below 512 GiB, which user programs may neither load into nor map.
pub const TRAMPOLINE_VA: u64 = 0x7f_ffff_f000;
/// Guest-physical address the kernel image is loaded at (it is linked at
/// `KERN_BASE + KERNEL_PHYS_BASE`).
pub const KERNEL_PHYS_BASE: u64 = 0x20_0000;

/// Boot GDT written by the VMM (see [`crate::gdt`]).
pub const BOOT_GDT_GPA: u64 = 0x1000;
/// The [`crate::boot::BootInfo`] block; its address is also passed in `rdi`.
pub const BOOT_INFO_GPA: u64 = 0x2000;
/// The kernel command line, at most [`CMDLINE_MAX`] bytes, not NUL-terminated.
pub const CMDLINE_GPA: u64 = 0x3000;
/// Longest command line the VMM passes.
pub const CMDLINE_MAX: usize = PAGE_SIZE as usize;
/// The statistics page, written by the kernel, read by the VMM at any time.
pub const STATS_PAGE_GPA: u64 = 0x4000;
/// The panic report page (see [`crate::devices::PanicReport`]).
pub const PANIC_PAGE_GPA: u64 = 0x5000;
/// The console output page (see [`crate::devices::SYSCTL_CONSOLE`]).
pub const CONSOLE_PAGE_GPA: u64 = 0x7000;
/// The fault trace ring's header (see [`crate::trace`]).
pub const TRACE_HEADER_GPA: u64 = 0x6000;
/// The fault trace ring's records, up to [`BOOT_PT_START`] (see [`crate::trace`]).
pub const TRACE_RING_GPA: u64 = 0x8000;
/// First page of the boot page tables the VMM builds.
pub const BOOT_PT_START: u64 = 0x1_0000;
/// End (exclusive) of the boot page-table area.
pub const BOOT_PT_END: u64 = 0x10_0000;
/// First guest-physical address the kernel may use as general memory.
pub const LOW_USABLE_START: u64 = BOOT_PT_END;

/// Start of the 32-bit hole (devices); RAM stops here and resumes at [`HIGH_RAM_START`].
pub const HOLE_START: u64 = 0xC000_0000;
/// Where RAM beyond [`HOLE_START`] bytes is placed.
pub const HIGH_RAM_START: u64 = 0x1_0000_0000;

/// Guest-physical address of the local APIC's registers (xAPIC mode), in the hole. It is
/// also the address an MSI to the APIC with ID 0 is written to.
pub const LAPIC_GPA: u64 = 0xfee0_0000;

/// Smallest RAM size the VMM accepts, whatever the kernel image size.
pub const MIN_MEM_MIB: u64 = 4;
/// Largest RAM size the VMM accepts (the boot page-table area bounds the direct map).
pub const MAX_MEM_MIB: u64 = 64 * 1024;
/// Memory the kernel needs beyond its image and the reserved low megabyte: boot stacks,
/// the first heap chunk and the frame allocator's bookkeeping.
pub const KERNEL_MIN_FREE_BYTES: u64 = 2 * 1024 * 1024;

/// Kernel-virtual address of a guest-physical address in the direct map.
#[inline]
pub const fn phys_to_virt(gpa: u64) -> u64 {
    KERN_BASE + gpa
}

/// Guest-physical ranges `[start, end)` backed by RAM for a guest of `mem_bytes` bytes: one
/// range below the hole, and a second one above 4 GiB when RAM does not fit below it.
pub const fn ram_ranges(mem_bytes: u64) -> [(u64, u64); 2] {
    if mem_bytes <= HOLE_START {
        [(0, mem_bytes), (HIGH_RAM_START, HIGH_RAM_START)]
    } else {
        [
            (0, HOLE_START),
            (HIGH_RAM_START, HIGH_RAM_START + (mem_bytes - HOLE_START)),
        ]
    }
}

/// One past the highest RAM address for a guest of `mem_bytes` bytes: the extent of the
/// direct map.
pub const fn ram_top(mem_bytes: u64) -> u64 {
    let ranges = ram_ranges(mem_bytes);
    if ranges[1].1 > ranges[1].0 {
        ranges[1].1
    } else {
        ranges[0].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kern_base_slots() {
        // PML4[1], PDPT[0], PD[32]: the facts the page-table builder relies on.
        assert_eq!((KERN_BASE >> 39) & 0x1ff, 1);
        assert_eq!((KERN_BASE >> 30) & 0x1ff, 0);
        assert_eq!((KERN_BASE >> 21) & 0x1ff, 32);
        assert_eq!(KERN_BASE % LARGE_PAGE_SIZE, 0);
    }

    #[test]
    fn fixed_pages_do_not_overlap() {
        let pages = [
            BOOT_GDT_GPA,
            BOOT_INFO_GPA,
            CMDLINE_GPA,
            STATS_PAGE_GPA,
            PANIC_PAGE_GPA,
            TRACE_HEADER_GPA,
            CONSOLE_PAGE_GPA,
        ];
        for (i, a) in pages.iter().enumerate() {
            assert_eq!(a % PAGE_SIZE, 0);
            assert!(*a + PAGE_SIZE <= BOOT_PT_START);
            for b in &pages[i + 1..] {
                assert_ne!(a, b);
            }
        }
        const { assert!(BOOT_PT_END <= KERNEL_PHYS_BASE) };
    }

    #[test]
    fn ram_split_around_hole() {
        let mib = 1024 * 1024;
        assert_eq!(ram_ranges(64 * mib)[0], (0, 64 * mib));
        assert_eq!(ram_top(64 * mib), 64 * mib);
        assert_eq!(ram_top(HOLE_START), HOLE_START);
        let big = 4096 * mib;
        assert_eq!(
            ram_ranges(big),
            [
                (0, HOLE_START),
                (HIGH_RAM_START, HIGH_RAM_START + mib * 1024)
            ]
        );
        assert_eq!(ram_top(big), 5 * 1024 * mib);
    }
}
