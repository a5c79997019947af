//! Self-tests of the boot environment: the VMM's `BootInfo`, its page tables, and the
//! kernel's exception handling.

use abi::layout::{self, KERN_BASE, LARGE_PAGE_SIZE, PAGE_SIZE, phys_to_virt};

use super::{Test, TestResult};
use crate::arch::x86_64::trap::{self, vector};
use crate::arch::x86_64::{cpu, entry};
use crate::boot::{self, BootInfoExt};
use crate::{check, check_eq};

pub const TESTS: &[Test] = &[
    Test {
        name: "boot_info_consistent",
        run: boot_info_consistent,
    },
    Test {
        name: "direct_map_covers_usable_ram",
        run: direct_map_covers_usable_ram,
    },
    Test {
        name: "direct_map_ends_at_ram_top",
        run: direct_map_ends_at_ram_top,
    },
    Test {
        name: "invalid_opcode_is_caught",
        run: invalid_opcode_is_caught,
    },
    Test {
        name: "page_fault_reports_address",
        run: page_fault_reports_address,
    },
    Test {
        name: "tsc_advances",
        run: tsc_advances,
    },
];

/// The usable ranges are sorted, disjoint, inside RAM, and miss the kernel image and the
/// reserved low pages; the kernel range holds the code that is running.
fn boot_info_consistent() -> TestResult {
    let info = boot::info();
    check!(
        info.ram_top >= info.ram_bytes,
        "ram_top {:#x} below ram_bytes {:#x}",
        info.ram_top,
        info.ram_bytes
    );
    check!(!info.usable().is_empty(), "no usable RAM");
    let mut previous_end = 0;
    for r in info.usable() {
        check!(
            r.start >= previous_end,
            "usable range {:#x}.. overlaps or is unsorted",
            r.start
        );
        check!(
            r.start >= layout::LOW_USABLE_START,
            "usable range {:#x}.. covers reserved pages",
            r.start
        );
        check!(
            r.end <= info.kernel.start || r.start >= info.kernel.end,
            "usable range {:#x}..{:#x} overlaps the kernel",
            r.start,
            r.end
        );
        previous_end = r.end;
    }
    let entry = entry::_start as *const () as u64;
    check!(
        (phys_to_virt(info.kernel.start)..phys_to_virt(info.kernel.end)).contains(&entry),
        "_start {entry:#x} outside the kernel range {:#x}..{:#x}",
        info.kernel.start,
        info.kernel.end
    );
    check_eq!(info.kernel.start, layout::KERNEL_PHYS_BASE);
    check!(
        info.cmdline().len() <= layout::CMDLINE_MAX,
        "command line too long"
    );
    Ok(())
}

/// The first and last word of every usable range read through the direct map without a fault.
fn direct_map_covers_usable_ram() -> TestResult {
    for r in boot::info().usable() {
        for gpa in [r.start, r.end - 8] {
            let result = trap::try_read_u64(phys_to_virt(gpa));
            check!(
                result.is_ok(),
                "reading gpa {gpa:#x} faulted with vector {:?}",
                result.err()
            );
        }
    }
    Ok(())
}

/// Past the last RAM large page the direct map stops: a read there is a page fault.
fn direct_map_ends_at_ram_top() -> TestResult {
    let top = boot::info().ram_top.next_multiple_of(LARGE_PAGE_SIZE);
    check_eq!(
        trap::try_read_u64(phys_to_virt(top)),
        Err(vector::PAGE_FAULT)
    );
    Ok(())
}

/// `ud2` raises #UD, the IDT delivers it, and execution resumes at the fixup.
fn invalid_opcode_is_caught() -> TestResult {
    check_eq!(trap::try_invalid_opcode(), vector::INVALID_OPCODE);
    // A second time, to show the handler returned cleanly.
    check_eq!(trap::try_invalid_opcode(), vector::INVALID_OPCODE);
    Ok(())
}

/// A read of an unmapped address raises #PF with CR2 holding that address.
fn page_fault_reports_address() -> TestResult {
    let unmapped = KERN_BASE - 16 * PAGE_SIZE;
    check_eq!(trap::try_read_u64(unmapped), Err(vector::PAGE_FAULT));
    check_eq!(cpu::read_cr2(), unmapped);
    Ok(())
}

/// The VMM passed a TSC frequency and the counter moves forward.
fn tsc_advances() -> TestResult {
    let khz = boot::info().tsc_khz;
    check!(
        (100_000..=10_000_000).contains(&khz),
        "implausible TSC frequency {khz} kHz"
    );
    let first = cpu::rdtsc();
    let second = cpu::rdtsc();
    check!(second > first, "TSC went from {first} to {second}");
    Ok(())
}
