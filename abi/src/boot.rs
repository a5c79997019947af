//! `BootInfo`: what the VMM tells the kernel at entry.
//!
//! The VMM writes one `BootInfo` at [`crate::layout::BOOT_INFO_GPA`] and enters the kernel
//! with `rdi` holding that guest-physical address. Every field is a naturally aligned
//! integer, so the struct has no padding and its bytes can be copied as is. The kernel checks
//! `magic` and `version` before trusting the rest.

/// `b"VMMBOOT\0"` read as a little-endian `u64`.
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"VMMBOOT\0");
/// Bumped whenever the layout of [`BootInfo`] changes.
pub const BOOT_INFO_VERSION: u32 = 6;
/// Capacity of [`BootInfo::usable`].
pub const MAX_USABLE_RANGES: usize = 8;
/// Capacity of [`BootInfo::devices`].
pub const MAX_DEVICES: usize = 8;

/// [`BootInfo::flags`] bit: run the kernel's self-tests instead of a program.
pub const FLAG_SELF_TEST: u32 = 1 << 0;
/// [`BootInfo::flags`] bit: run the kernel's micro-benchmarks instead of a program.
pub const FLAG_BENCH: u32 = 1 << 1;
/// [`BootInfo::flags`] bit: keep the fault-path counters of the stats page still (to
/// measure what they cost); the page still gets its header and constants.
pub const FLAG_NO_FAULT_COUNTERS: u32 = 1 << 2;
/// [`BootInfo::flags`] bit: write a record of every fault, eviction and release into the
/// fault trace ring ([`crate::trace`]). Needs the fault counters (it is ignored with
/// [`FLAG_NO_FAULT_COUNTERS`]).
pub const FLAG_TRACE_FAULTS: u32 = 1 << 3;
/// [`BootInfo::flags`] bit: a debugger is attached (`vmm run --gdb`). A user program's
/// breakpoint (`int3`) or single step (#DB) does not end it: the kernel stops there for
/// the debugger ([`crate::devices::SYSCTL_DEBUG_STOP`]), then resumes it.
pub const FLAG_DEBUGGER: u32 = 1 << 4;

/// A half-open guest-physical range `[start, end)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl MemRange {
    /// Length in bytes (0 for an inverted range).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a [`DeviceInfo`] entry describes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// 16550 UART, port I/O.
    Serial = 1,
    /// The system-control register block (power-off, panic), port I/O.
    SysCtl = 2,
    /// The file-system disk: virtio-blk over virtio-mmio.
    FsDisk = 3,
    /// The swap disk: virtio-blk over virtio-mmio.
    SwapDisk = 4,
}

impl DeviceKind {
    /// Decodes a raw [`DeviceInfo::kind`]; `None` for a kind this side does not know.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Serial),
            2 => Some(Self::SysCtl),
            3 => Some(Self::FsDisk),
            4 => Some(Self::SwapDisk),
            _ => None,
        }
    }
}

/// [`DeviceInfo::space`]: the device's registers are I/O ports.
pub const SPACE_PIO: u32 = 0;
/// [`DeviceInfo::space`]: the device's registers are memory-mapped.
pub const SPACE_MMIO: u32 = 1;
/// [`DeviceInfo::irq`] of a device that raises no interrupt.
pub const NO_IRQ: u32 = u32::MAX;

/// One device: where its registers are and which interrupt line it raises.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// A [`DeviceKind`] as `u32`.
    pub kind: u32,
    /// [`SPACE_PIO`] or [`SPACE_MMIO`].
    pub space: u32,
    /// First port or guest-physical address of the register block.
    pub base: u64,
    /// Size of the register block in ports or bytes.
    pub size: u64,
    /// For a disk: its capacity in 512-byte sectors (so the kernel knows it without
    /// probing the device); 0 otherwise.
    pub capacity_sectors: u64,
    /// Interrupt line the device raises (vector `crate::devices::IRQ_VECTOR_BASE + irq`), or
    /// [`NO_IRQ`].
    pub irq: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Kernel behaviours a test can force from the VMM's command line (`--test-hook`), so the
/// end-to-end tests can check how the VMM reports each kind of guest failure.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestHook {
    /// Normal boot.
    None = 0,
    /// Call `panic!` right after start-up.
    Panic = 1,
    /// Load an empty IDT and raise an exception: the CPU shuts down.
    TripleFault = 2,
    /// Spin forever with interrupts off.
    Spin = 3,
    /// Read an unmapped kernel address: the kernel-mode fault dump, then a panic.
    PageFault = 4,
    /// Fault with an unusable stack: the double-fault handler on its own stack.
    DoubleFault = 5,
    /// In self-test mode, add one test that always fails (checks the failure path).
    FailSelfTest = 6,
    /// Execute `xgetbv` in ring 0 with XSAVE off: an emulation failure on KVMs that emulate
    /// ring 0 (PVM), an invalid-opcode fault (kernel panic) on hardware KVM.
    EmulationFailure = 7,
    /// When the first process has ended, print the free user frames and swap slots (each
    /// against its total), so a test can check that nothing leaked.
    MemoryReport = 8,
    /// Run kernel code at CPL 3 (the fast mode's building block) that reads an unmapped
    /// address: reported like a ring-0 kernel fault, with its RIP.
    Cpl3PageFault = 9,
    /// Read an unmapped address in the handler of the first unsupported system call
    /// (`chdir` and the like): a kernel fault where system calls run, at CPL 3 in the fast
    /// mode, in ring 0 in the classic one; reported with its RIP either way.
    SyscallPageFault = 10,
}

impl TestHook {
    /// Decodes a raw [`BootInfo::test_hook`]; `None` for an unknown value.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::None),
            1 => Some(Self::Panic),
            2 => Some(Self::TripleFault),
            3 => Some(Self::Spin),
            4 => Some(Self::PageFault),
            5 => Some(Self::DoubleFault),
            6 => Some(Self::FailSelfTest),
            7 => Some(Self::EmulationFailure),
            8 => Some(Self::MemoryReport),
            9 => Some(Self::Cpl3PageFault),
            10 => Some(Self::SyscallPageFault),
            _ => None,
        }
    }
}

/// What kind of KVM the VMM runs on: [`BootInfo::host_kind`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// Hardware-assisted KVM (VMX or SVM): guest ring 0 runs natively.
    Hardware = 1,
    /// PVM (the `kvm_pvm` module): software virtualisation, guest ring 0 is emulated
    /// instruction by instruction and only ring 3 runs natively.
    Pvm = 2,
}

impl HostKind {
    /// Decodes a raw value; `None` for a kind this side does not know.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Hardware),
            2 => Some(Self::Pvm),
            _ => None,
        }
    }

    /// The name used in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Hardware => "hardware",
            Self::Pvm => "pvm",
        }
    }
}

/// Where the kernel runs its work: [`BootInfo::kernel_mode`] (what the VMM asks for) and the
/// stats page's `kernel_mode` (what the kernel runs).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelMode {
    /// All kernel code in ring 0 (what hardware KVM runs best).
    Classic = 1,
    /// Only thin entry and exit stubs in ring 0; the rest of the kernel runs at CPL 3 in a
    /// kernel-only address space (what PVM runs best: its ring 3 is native).
    Fast = 2,
}

impl KernelMode {
    /// Decodes a raw value; `None` for a mode this side does not know.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Classic),
            2 => Some(Self::Fast),
            _ => None,
        }
    }

    /// The name used on the command line and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Fast => "fast",
        }
    }

    /// The mode for a host of kind `host` (`vmm run --kernel-mode auto`): fast where ring
    /// 0 is emulated and ring 3 native (PVM), classic elsewhere.
    pub const fn best_for(host: Option<HostKind>) -> Self {
        match host {
            Some(HostKind::Pvm) => Self::Fast,
            _ => Self::Classic,
        }
    }
}

/// The boot information block. See the module documentation.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// [`BOOT_INFO_MAGIC`].
    pub magic: u64,
    /// [`BOOT_INFO_VERSION`].
    pub version: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Bytes of RAM, not counting the hole.
    pub ram_bytes: u64,
    /// One past the highest RAM address: the direct map covers `[0, ram_top)`.
    pub ram_top: u64,
    /// Guest-physical range of the loaded kernel image, bss included.
    pub kernel: MemRange,
    /// Guest-physical address of the command line.
    pub cmdline_gpa: u64,
    /// Length of the command line in bytes (at most `layout::CMDLINE_MAX`).
    pub cmdline_len: u64,
    /// Guest-physical address of the stats page.
    pub stats_gpa: u64,
    /// Guest-physical address of the panic report page.
    pub panic_gpa: u64,
    /// Time-stamp counter frequency in kHz.
    pub tsc_khz: u64,
    /// Upper bound on the user frame pool in pages; 0 means the default (half the free frames).
    pub user_page_limit: u64,
    /// A [`TestHook`] as `u32`.
    pub test_hook: u32,
    /// Number of valid entries in `usable`.
    pub num_usable: u32,
    /// RAM the kernel may use freely, sorted, disjoint, page-aligned.
    pub usable: [MemRange; MAX_USABLE_RANGES],
    /// Number of valid entries in `devices`.
    pub num_devices: u32,
    /// A [`crate::stats::EvictPolicy`] as `u32`.
    pub evict_policy: u32,
    /// The devices.
    pub devices: [DeviceInfo; MAX_DEVICES],
    /// A [`HostKind`] as `u32`; 0 if the VMM could not tell.
    pub host_kind: u32,
    /// The [`KernelMode`] to run in, as `u32`.
    pub kernel_mode: u32,
    /// Guest-physical address of the kernel view the VMM built beside the boot tables: the
    /// same direct map, but user-accessible at every level and without global pages, so
    /// that kernel code at CPL 3 can use it (the fast kernel mode). User address spaces
    /// never map it.
    pub kview_pml4_gpa: u64,
    /// Fault-around: how many pages after a faulting one the kernel also brings in, while
    /// they are pages of the process waiting for their first load and frames are free (it
    /// never evicts for them); 0 for none. At most [`MAX_FAULT_AROUND`].
    pub fault_around: u32,
    /// Zero.
    pub reserved: u32,
}

/// The largest [`BootInfo::fault_around`].
pub const MAX_FAULT_AROUND: u32 = 64;

impl BootInfo {
    /// An empty, valid-header block for the VMM to fill in.
    pub const fn new() -> Self {
        BootInfo {
            magic: BOOT_INFO_MAGIC,
            version: BOOT_INFO_VERSION,
            flags: 0,
            ram_bytes: 0,
            ram_top: 0,
            kernel: MemRange { start: 0, end: 0 },
            cmdline_gpa: 0,
            cmdline_len: 0,
            stats_gpa: 0,
            panic_gpa: 0,
            tsc_khz: 0,
            user_page_limit: 0,
            test_hook: TestHook::None as u32,
            num_usable: 0,
            usable: [MemRange { start: 0, end: 0 }; MAX_USABLE_RANGES],
            num_devices: 0,
            evict_policy: 0,
            devices: [DeviceInfo {
                kind: 0,
                space: 0,
                base: 0,
                size: 0,
                capacity_sectors: 0,
                irq: 0,
                reserved: 0,
            }; MAX_DEVICES],
            host_kind: HostKind::Hardware as u32,
            kernel_mode: KernelMode::Classic as u32,
            kview_pml4_gpa: 0,
            fault_around: 0,
            reserved: 0,
        }
    }

    /// The valid usable ranges (an over-large count is clamped to the capacity).
    pub fn usable(&self) -> &[MemRange] {
        let n = (self.num_usable as usize).min(MAX_USABLE_RANGES);
        &self.usable[..n]
    }

    /// The valid device entries (an over-large count is clamped to the capacity).
    pub fn devices(&self) -> &[DeviceInfo] {
        let n = (self.num_devices as usize).min(MAX_DEVICES);
        &self.devices[..n]
    }

    /// The first device of `kind`, if the VMM described one.
    pub fn device(&self, kind: DeviceKind) -> Option<&DeviceInfo> {
        self.devices().iter().find(|d| d.kind == kind as u32)
    }
}

impl Default for BootInfo {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    /// The layout is a contract with already-built kernels: pin every offset.
    #[test]
    fn boot_info_layout() {
        assert_eq!(size_of::<MemRange>(), 16);
        assert_eq!(size_of::<DeviceInfo>(), 40);
        assert_eq!(align_of::<BootInfo>(), 8);
        assert_eq!(offset_of!(BootInfo, magic), 0);
        assert_eq!(offset_of!(BootInfo, version), 8);
        assert_eq!(offset_of!(BootInfo, flags), 12);
        assert_eq!(offset_of!(BootInfo, ram_bytes), 16);
        assert_eq!(offset_of!(BootInfo, ram_top), 24);
        assert_eq!(offset_of!(BootInfo, kernel), 32);
        assert_eq!(offset_of!(BootInfo, cmdline_gpa), 48);
        assert_eq!(offset_of!(BootInfo, cmdline_len), 56);
        assert_eq!(offset_of!(BootInfo, stats_gpa), 64);
        assert_eq!(offset_of!(BootInfo, panic_gpa), 72);
        assert_eq!(offset_of!(BootInfo, tsc_khz), 80);
        assert_eq!(offset_of!(BootInfo, user_page_limit), 88);
        assert_eq!(offset_of!(BootInfo, test_hook), 96);
        assert_eq!(offset_of!(BootInfo, num_usable), 100);
        assert_eq!(offset_of!(BootInfo, usable), 104);
        assert_eq!(
            offset_of!(BootInfo, num_devices),
            104 + 16 * MAX_USABLE_RANGES
        );
        assert_eq!(offset_of!(BootInfo, devices), 112 + 16 * MAX_USABLE_RANGES);
        let tail = 112 + 16 * MAX_USABLE_RANGES + 40 * MAX_DEVICES;
        assert_eq!(offset_of!(BootInfo, host_kind), tail);
        assert_eq!(offset_of!(BootInfo, kernel_mode), tail + 4);
        // No trailing padding: the struct is exactly the sum of its fields.
        assert_eq!(offset_of!(BootInfo, kview_pml4_gpa), tail + 8);
        assert_eq!(offset_of!(BootInfo, fault_around), tail + 16);
        assert_eq!(offset_of!(BootInfo, reserved), tail + 20);
        assert_eq!(size_of::<BootInfo>(), tail + 24);
        assert!(size_of::<BootInfo>() <= crate::layout::PAGE_SIZE as usize);
    }

    #[test]
    fn counts_are_clamped() {
        let mut info = BootInfo::new();
        info.num_usable = 1000;
        info.num_devices = u32::MAX;
        assert_eq!(info.usable().len(), MAX_USABLE_RANGES);
        assert_eq!(info.devices().len(), MAX_DEVICES);
    }

    #[test]
    fn raw_enums_round_trip() {
        for hook in [
            TestHook::None,
            TestHook::Panic,
            TestHook::TripleFault,
            TestHook::Spin,
            TestHook::PageFault,
            TestHook::DoubleFault,
            TestHook::FailSelfTest,
            TestHook::EmulationFailure,
            TestHook::MemoryReport,
            TestHook::Cpl3PageFault,
            TestHook::SyscallPageFault,
        ] {
            assert_eq!(TestHook::from_raw(hook as u32), Some(hook));
        }
        assert_eq!(TestHook::from_raw(99), None);
        for kind in [HostKind::Hardware, HostKind::Pvm] {
            assert_eq!(HostKind::from_raw(kind as u32), Some(kind));
        }
        for mode in [KernelMode::Classic, KernelMode::Fast] {
            assert_eq!(KernelMode::from_raw(mode as u32), Some(mode));
        }
        assert_eq!(KernelMode::from_raw(0), None);
        assert_eq!(
            DeviceKind::from_raw(DeviceKind::SysCtl as u32),
            Some(DeviceKind::SysCtl)
        );
        assert_eq!(DeviceKind::from_raw(0), None);
    }

    #[test]
    fn device_lookup() {
        let mut info = BootInfo::new();
        info.devices[0] = DeviceInfo {
            kind: DeviceKind::SysCtl as u32,
            base: 0x500,
            ..Default::default()
        };
        assert!(
            info.device(DeviceKind::SysCtl).is_none(),
            "count 0 hides entries"
        );
        info.num_devices = 1;
        assert_eq!(info.device(DeviceKind::SysCtl).map(|d| d.base), Some(0x500));
        assert!(info.device(DeviceKind::Serial).is_none());
    }
}
