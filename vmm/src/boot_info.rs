//! Filling in the `BootInfo` block the kernel starts from.

use abi::boot::{
    BootInfo, DeviceInfo, DeviceKind, FLAG_BENCH, FLAG_DEBUGGER, FLAG_NO_FAULT_COUNTERS,
    FLAG_SELF_TEST, FLAG_TRACE_FAULTS, HostKind, KernelMode, MAX_DEVICES, MAX_USABLE_RANGES,
    MemRange, NO_IRQ, SPACE_MMIO, SPACE_PIO, TestHook,
};
use abi::devices::{
    FS_DISK_GPA, FS_DISK_IRQ, SERIAL_IRQ, SERIAL_PORT, SERIAL_PORT_COUNT, SWAP_DISK_GPA,
    SWAP_DISK_IRQ, SYSCTL_PORT, SYSCTL_PORT_COUNT, VIRTIO_MMIO_SIZE,
};
use abi::layout::{self, LOW_USABLE_START, PAGE_SIZE};
use abi::stats::EvictPolicy;
use vm_memory::ByteValued;

use crate::loader::KernelImage;

/// `BootInfo` as bytes for guest memory.
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub struct BootInfoBytes(pub BootInfo);

// SAFETY: BootInfo is #[repr(C)], made only of integers and arrays of #[repr(C)] integer
// structs, and has no padding (abi's layout test pins its size to the sum of its fields), so
// every byte pattern is a valid value and no byte is uninitialised.
unsafe impl ByteValued for BootInfoBytes {}

/// What the boot block needs to know about this run.
#[derive(Debug, Clone)]
pub struct BootParams {
    pub mem_mib: u64,
    pub user_pages: Option<u64>,
    pub kernel: KernelImage,
    pub cmdline_len: usize,
    pub self_test: bool,
    pub bench: bool,
    pub test_hook: TestHook,
    /// How the kernel chooses pages to evict.
    pub evict: EvictPolicy,
    /// Whether the kernel keeps its fault-path counters (off only to measure their cost).
    pub fault_counters: bool,
    pub tsc_khz: u64,
    /// Capacity of the file-system disk in sectors (it is always attached).
    pub fs_disk_sectors: u64,
    /// Capacity of the swap disk in sectors, if one is attached.
    pub swap_disk_sectors: Option<u64>,
    /// The kind of KVM, if known.
    pub host_kind: Option<HostKind>,
    /// Where the kernel runs its work.
    pub kernel_mode: KernelMode,
    /// The kernel view's PML4 (`BootPageTables::kview_pml4_gpa`).
    pub kview_pml4_gpa: u64,
    /// Pages after a faulting one the kernel also brings in (0: none).
    pub fault_around: u32,
    /// Whether the kernel writes the fault trace ring (`abi::trace`).
    pub trace_faults: bool,
    /// Whether a debugger is attached (`vmm run --gdb`).
    pub debugger: bool,
}

/// Builds the boot block for `params`.
pub fn build(params: &BootParams) -> BootInfo {
    let bytes = params.mem_mib << 20;
    let mut info = BootInfo::new();
    info.flags = if params.self_test { FLAG_SELF_TEST } else { 0 }
        | if params.bench { FLAG_BENCH } else { 0 }
        | if params.fault_counters {
            0
        } else {
            FLAG_NO_FAULT_COUNTERS
        }
        | if params.trace_faults {
            FLAG_TRACE_FAULTS
        } else {
            0
        }
        | if params.debugger { FLAG_DEBUGGER } else { 0 };
    info.evict_policy = params.evict as u32;
    info.host_kind = params.host_kind.map_or(0, |k| k as u32);
    info.kernel_mode = params.kernel_mode as u32;
    info.kview_pml4_gpa = params.kview_pml4_gpa;
    info.fault_around = params.fault_around.min(abi::boot::MAX_FAULT_AROUND);
    info.ram_bytes = bytes;
    info.ram_top = layout::ram_top(bytes);
    info.kernel = MemRange {
        start: params.kernel.phys_start,
        end: params.kernel.phys_end,
    };
    info.cmdline_gpa = layout::CMDLINE_GPA;
    info.cmdline_len = params.cmdline_len as u64;
    info.stats_gpa = layout::STATS_PAGE_GPA;
    info.panic_gpa = layout::PANIC_PAGE_GPA;
    info.tsc_khz = params.tsc_khz;
    info.user_page_limit = params.user_pages.unwrap_or(0);
    info.test_hook = params.test_hook as u32;

    let usable = usable_ranges(&layout::ram_ranges(bytes), info.kernel);
    info.num_usable = usable.len() as u32;
    info.usable[..usable.len()].copy_from_slice(&usable);

    let devices = [
        DeviceInfo {
            kind: DeviceKind::Serial as u32,
            space: SPACE_PIO,
            base: u64::from(SERIAL_PORT),
            size: u64::from(SERIAL_PORT_COUNT),
            capacity_sectors: 0,
            irq: SERIAL_IRQ,
            reserved: 0,
        },
        DeviceInfo {
            kind: DeviceKind::SysCtl as u32,
            space: SPACE_PIO,
            base: u64::from(SYSCTL_PORT),
            size: u64::from(SYSCTL_PORT_COUNT),
            capacity_sectors: 0,
            irq: NO_IRQ,
            reserved: 0,
        },
    ];
    let disk = |kind: DeviceKind, base: u64, irq: u32, capacity_sectors: u64| DeviceInfo {
        kind: kind as u32,
        space: SPACE_MMIO,
        base,
        size: VIRTIO_MMIO_SIZE,
        capacity_sectors,
        irq,
        reserved: 0,
    };
    let fs_disk = disk(
        DeviceKind::FsDisk,
        FS_DISK_GPA,
        FS_DISK_IRQ,
        params.fs_disk_sectors,
    );
    let swap_disk = params
        .swap_disk_sectors
        .map(|sectors| disk(DeviceKind::SwapDisk, SWAP_DISK_GPA, SWAP_DISK_IRQ, sectors));
    let all: Vec<DeviceInfo> = devices
        .into_iter()
        .chain([fs_disk])
        .chain(swap_disk)
        .collect();
    assert!(
        all.len() <= MAX_DEVICES,
        "boot_info: more devices than BootInfo holds"
    );
    info.num_devices = all.len() as u32;
    info.devices[..all.len()].copy_from_slice(&all);
    info
}

/// RAM the kernel may use: each RAM range minus the reserved low megabyte and the kernel
/// image, trimmed to whole pages. At most `MAX_USABLE_RANGES` entries.
pub fn usable_ranges(ram: &[(u64, u64)], kernel: MemRange) -> Vec<MemRange> {
    let mut out = Vec::new();
    for &(start, end) in ram {
        let start = start.max(LOW_USABLE_START);
        let pieces = [(start, end.min(kernel.start)), (start.max(kernel.end), end)];
        for (s, e) in pieces {
            let s = s.next_multiple_of(PAGE_SIZE);
            let e = e - e % PAGE_SIZE;
            if s < e && out.len() < MAX_USABLE_RANGES {
                out.push(MemRange { start: s, end: e });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::layout::{HIGH_RAM_START, HOLE_START, KERNEL_PHYS_BASE};

    const MIB: u64 = 1 << 20;
    const KERNEL: MemRange = MemRange {
        start: KERNEL_PHYS_BASE,
        end: KERNEL_PHYS_BASE + 0x8234,
    };

    #[test]
    fn small_guest_has_two_ranges_around_the_kernel() {
        let r = usable_ranges(&layout::ram_ranges(64 * MIB), KERNEL);
        assert_eq!(
            r,
            vec![
                MemRange {
                    start: LOW_USABLE_START,
                    end: KERNEL_PHYS_BASE
                },
                MemRange {
                    start: KERNEL_PHYS_BASE + 0x9000,
                    end: 64 * MIB
                },
            ]
        );
    }

    #[test]
    fn large_guest_adds_ram_above_the_hole() {
        let r = usable_ranges(&layout::ram_ranges(4096 * MIB), KERNEL);
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].end, HOLE_START);
        assert_eq!(
            r[2],
            MemRange {
                start: HIGH_RAM_START,
                end: HIGH_RAM_START + 1024 * MIB
            }
        );
    }

    #[test]
    fn ragged_ends_are_trimmed_to_pages() {
        let r = usable_ranges(&[(0, 6 * MIB + 100)], KERNEL);
        assert_eq!(r.last().unwrap().end, 6 * MIB);
    }

    #[test]
    fn block_describes_the_run() {
        let kernel = KernelImage {
            entry: 0,
            phys_start: KERNEL.start,
            phys_end: KERNEL.end,
        };
        let params = BootParams {
            mem_mib: 64,
            user_pages: Some(300),
            kernel,
            cmdline_len: 5,
            self_test: true,
            bench: false,
            test_hook: TestHook::Spin,
            evict: EvictPolicy::Fifo,
            fault_counters: false,
            tsc_khz: 2_000_000,
            fs_disk_sectors: 2048,
            swap_disk_sectors: Some(4096),
            host_kind: Some(HostKind::Pvm),
            kernel_mode: KernelMode::Classic,
            kview_pml4_gpa: 0x5000,
            fault_around: 8,
            trace_faults: true,
            debugger: false,
        };
        let info = build(&params);
        assert_eq!(info.ram_bytes, 64 * MIB);
        assert_eq!(
            info.flags,
            FLAG_SELF_TEST | FLAG_NO_FAULT_COUNTERS | FLAG_TRACE_FAULTS
        );
        assert_eq!(info.evict_policy, EvictPolicy::Fifo as u32);
        assert_eq!(info.ram_top, 64 * MIB);
        assert_eq!(info.test_hook, TestHook::Spin as u32);
        assert_eq!(info.user_page_limit, 300);
        assert_eq!(info.host_kind, HostKind::Pvm as u32);
        assert_eq!(info.kernel_mode, KernelMode::Classic as u32);
        assert_eq!(info.kview_pml4_gpa, 0x5000);
        assert_eq!(info.fault_around, 8);
        assert_eq!(
            (info.cmdline_gpa, info.cmdline_len),
            (layout::CMDLINE_GPA, 5)
        );
        assert_eq!(info.usable().len(), 2);
        assert_eq!(
            info.device(DeviceKind::Serial).map(|d| (d.base, d.irq)),
            Some((0x3f8, 4))
        );
        assert_eq!(info.device(DeviceKind::SysCtl).map(|d| d.irq), Some(NO_IRQ));
        assert_eq!(
            info.device(DeviceKind::FsDisk)
                .map(|d| (d.space, d.base, d.irq)),
            Some((SPACE_MMIO, FS_DISK_GPA, FS_DISK_IRQ))
        );
        assert_eq!(
            info.device(DeviceKind::SwapDisk).map(|d| d.base),
            Some(SWAP_DISK_GPA)
        );
        assert_eq!(
            info.device(DeviceKind::FsDisk).map(|d| d.capacity_sectors),
            Some(2048)
        );
        assert_eq!(
            info.device(DeviceKind::SwapDisk)
                .map(|d| d.capacity_sectors),
            Some(4096)
        );
        let no_swap = build(&BootParams {
            swap_disk_sectors: None,
            ..params.clone()
        });
        assert!(no_swap.device(DeviceKind::SwapDisk).is_none());
        assert_eq!(BootInfoBytes(info).as_slice().len(), size_of::<BootInfo>());
    }
}
