//! Access to the VMM's `BootInfo`, checked once at start-up.
//!
//! Invariant: after [`init`] returns, [`info`] is a validated, immutable block that lives
//! for the rest of the run (the VMM never rewrites it and the kernel never frees its page).

use abi::boot::{BOOT_INFO_MAGIC, BOOT_INFO_VERSION, BootInfo, FLAG_BENCH, FLAG_SELF_TEST};
use abi::layout::{self, PAGE_SIZE};
use spin::Once;

static BOOT_INFO: Once<&'static BootInfo> = Once::new();

/// Validates the block at `gpa` and makes it available through [`info`].
///
/// Panics (reported to the VMM) if the block is not a `BootInfo` of this version, because
/// nothing else can be trusted then.
pub fn init(gpa: u64) -> &'static BootInfo {
    assert!(
        gpa.is_multiple_of(8)
            && gpa
                .checked_add(size_of::<BootInfo>() as u64)
                .is_some_and(|end| end <= layout::BOOT_PT_START),
        "boot: BootInfo address {gpa:#x} is outside the reserved low pages"
    );
    // SAFETY: the address is 8-aligned and lies in the reserved low pages, which the direct
    // map covers and nothing else writes; every field of BootInfo is a plain integer, so any
    // bytes form a valid value. The block is never written after boot, so a shared
    // 'static reference is sound.
    let info: &'static BootInfo = unsafe { &*(layout::phys_to_virt(gpa) as *const BootInfo) };
    assert!(
        info.magic == BOOT_INFO_MAGIC && info.version == BOOT_INFO_VERSION,
        "boot: BootInfo magic {:#x} version {} (expected version {BOOT_INFO_VERSION}): VMM and kernel are from different builds",
        info.magic,
        info.version
    );
    assert!(
        info.cmdline_len <= layout::CMDLINE_MAX as u64
            && info
                .cmdline_gpa
                .checked_add(info.cmdline_len)
                .is_some_and(|end| end <= info.ram_top),
        "boot: command line of {} bytes at {:#x} is too long or outside RAM",
        info.cmdline_len,
        info.cmdline_gpa
    );
    for r in info.usable() {
        assert!(
            r.start.is_multiple_of(PAGE_SIZE)
                && r.end.is_multiple_of(PAGE_SIZE)
                && r.start < r.end
                && r.end <= info.ram_top,
            "boot: bad usable range {:#x}..{:#x}",
            r.start,
            r.end
        );
    }
    BOOT_INFO.call_once(|| info)
}

/// The validated boot information. Panics if called before [`init`].
pub fn info() -> &'static BootInfo {
    BOOT_INFO.get().expect("boot: info() before init()")
}

/// Convenience queries on the boot block.
pub trait BootInfoExt {
    /// Whether the VMM asked for the self-tests.
    fn self_test(&self) -> bool;
    /// Whether the VMM asked for the micro-benchmarks.
    fn bench(&self) -> bool;
    /// The command line bytes.
    fn cmdline(&self) -> &'static [u8];
}

impl BootInfoExt for BootInfo {
    fn self_test(&self) -> bool {
        self.flags & FLAG_SELF_TEST != 0
    }

    fn bench(&self) -> bool {
        self.flags & FLAG_BENCH != 0
    }

    fn cmdline(&self) -> &'static [u8] {
        let start = layout::phys_to_virt(self.cmdline_gpa) as *const u8;
        // SAFETY: init() checked that the range lies in RAM, which the direct map covers; the
        // VMM writes the command line before boot and nothing writes it afterwards.
        unsafe { core::slice::from_raw_parts(start, self.cmdline_len as usize) }
    }
}
