//! The statistics page: what the kernel's memory system did, readable by the VMM at any
//! moment.
//!
//! The kernel writes one [`StatsPage`] at [`crate::layout::STATS_PAGE_GPA`] (outside usable
//! RAM) with plain stores and no locks: every field is a naturally aligned `u64`, so a
//! reader on another host CPU sees each value whole, never torn, without stopping the
//! vCPU. Fields are independent (a sample may catch one counter updated and the next one
//! not yet), and every counter only grows, except the gauges ([`FieldKind::Gauge`]).
//! The swap fields are the VMM's, which keeps the swap slots and moves swap pages
//! (`crate::devices`): it writes them during those VM exits, while the vCPU is stopped, so
//! the kernel and the VMM never update the page at once.
//!
//! [`FIELDS`] lists every field with its name, offset, kind and meaning: the VMM reads the
//! page through it, and its JSON output and the README use the same names. The header
//! (`magic`, `version`) tells the VMM whether the kernel has set the page up and whether it
//! speaks this layout.

use core::mem::offset_of;
use core::sync::atomic::AtomicU64;

/// `b"VMMSTATS"` read as a little-endian `u64`, in [`StatsPage::magic`] once the kernel has
/// set the page up.
pub const STATS_MAGIC: u64 = u64::from_le_bytes(*b"VMMSTATS");
/// Bumped whenever the layout of [`StatsPage`] changes.
pub const STATS_VERSION: u64 = 5;
/// Buckets of [`StatsPage::fault_cycles_log2`]: bucket `i` counts faults that took
/// `[2^i, 2^(i+1))` TSC cycles (bucket 0 also counts 0 cycles).
pub const FAULT_HISTOGRAM_BUCKETS: usize = 48;

/// [`crate::boot::BootInfo::evict_policy`]: how the kernel chooses a page to evict.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EvictPolicy {
    /// Second chance: the hand skips (and clears) pages accessed since it last passed.
    #[default]
    Clock = 0,
    /// The hand takes the next page in frame order whatever its accessed bit: with memory
    /// full, a freed frame is refilled at once, so this evicts the page loaded longest ago.
    Fifo = 1,
    /// A page chosen at random (the next evictable one from a random frame).
    Random = 2,
}

impl EvictPolicy {
    /// Decodes a raw value; `None` for a policy this side does not know.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Clock),
            1 => Some(Self::Fifo),
            2 => Some(Self::Random),
            _ => None,
        }
    }

    /// The name used on the command line and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Clock => "clock",
            Self::Fifo => "fifo",
            Self::Random => "random",
        }
    }
}

/// Whether a field only grows or can also go down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// Only grows while the guest runs.
    Counter,
    /// A level that goes up and down (frames in use, slots in use).
    Gauge,
    /// Set once at start-up (a capacity).
    Constant,
}

/// One field of the page, as the VMM and the documentation see it.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// Name in JSON, tables and the README.
    pub name: &'static str,
    /// Byte offset in [`StatsPage`].
    pub offset: usize,
    pub kind: FieldKind,
    /// What it counts.
    pub doc: &'static str,
}

macro_rules! stats_page {
    ($( #[doc = $doc:literal] $kind:ident $name:ident, )*) => {
        /// The statistics page. See the module documentation.
        #[repr(C)]
        #[derive(Debug)]
        pub struct StatsPage {
            /// [`STATS_MAGIC`] once the kernel has set the page up.
            pub magic: AtomicU64,
            /// [`STATS_VERSION`].
            pub version: AtomicU64,
            $( #[doc = $doc] pub $name: AtomicU64, )*
            /// Log2 histogram of fault-handling time in TSC cycles (see
            /// [`FAULT_HISTOGRAM_BUCKETS`]).
            pub fault_cycles_log2: [AtomicU64; FAULT_HISTOGRAM_BUCKETS],
        }

        /// Every scalar field after the header, in layout order.
        pub const FIELDS: &[Field] = &[
            $( Field {
                name: stringify!($name),
                offset: offset_of!(StatsPage, $name),
                kind: FieldKind::$kind,
                doc: $doc.trim_ascii(),
            }, )*
        ];
    };
}

stats_page! {
    /// User page faults handled, by the CPU or met by a system call on user memory: the sum of the `faults_*` outcomes below except `faults_in_syscall` and `faults_in_shim`.
    Counter faults,
    /// Faults that mapped a zeroed page (bss, or an anonymous page never written out).
    Counter faults_zero_fill,
    /// Faults that loaded a page of the executable (lazy ELF loading).
    Counter faults_elf_load,
    /// Faults that loaded a page of a file mapping (mmap).
    Counter faults_mmap_load,
    /// Faults that read a page back from swap.
    Counter faults_swap_in,
    /// Faults that grew the stack by a page.
    Counter faults_stack_growth,
    /// Writes to a copy-on-write page that still had another owner: the page was copied.
    Counter faults_cow_copy,
    /// Writes to a copy-on-write page whose other owners had gone: made writable, no copy.
    Counter faults_cow_reuse,
    /// Faults that killed the process for a bad access (no page there, a write to a read-only page, a bad stack access).
    Counter faults_killed,
    /// Faults that killed the process because no frame could be found (out of memory and swap).
    Counter faults_out_of_memory,
    /// Of all faults, those met by a system call touching user memory.
    Counter faults_in_syscall,
    /// Pages evicted to a swap slot (anonymous pages, and written program pages).
    Counter evict_swap,
    /// Dirty file-mapping pages written back to their file and evicted.
    Counter evict_writeback,
    /// Clean pages dropped (still the executable's or the file's bytes; reloaded later).
    Counter evict_drop,
    /// Swap slots in use now (kept by the VMM, which keeps the slots: `abi::devices`).
    Gauge swap_slots_used,
    /// Most swap slots in use at once (kept by the VMM).
    Counter swap_slots_peak,
    /// Swap slots on the swap disk (4 KiB each; 0 without swap; set by the VMM).
    Constant swap_slots_total,
    /// Pages read from swap (counted by the VMM, which moves them).
    Counter swap_reads,
    /// Pages written to swap (counted by the VMM).
    Counter swap_writes,
    /// User frames in use now.
    Gauge user_frames_used,
    /// Most user frames in use at once.
    Counter user_frames_peak,
    /// Frames in the user pool.
    Constant user_frames_total,
    /// Requests to the file-system disk.
    Counter fs_disk_requests,
    /// 512-byte sectors read or written on the file-system disk.
    Counter fs_disk_sectors,
    /// Requests to the swap disk: virtio requests (counted by the kernel) and page operations (by the VMM).
    Counter swap_disk_requests,
    /// 512-byte sectors read or written on the swap disk.
    Counter swap_disk_sectors,
    /// System calls.
    Counter syscalls,
    /// Switches from one thread to another.
    Counter context_switches,
    /// Processes created (process ids handed out: the first process, and each fork).
    Counter processes,
    /// TSC cycles spent handling faults, in all.
    Counter fault_cycles_sum,
    /// Longest fault, in TSC cycles.
    Counter fault_cycles_max,
    /// The kernel mode the kernel runs in: 1 classic (all of it in ring 0), 2 fast (its work at CPL 3); `abi::boot::KernelMode`.
    Constant kernel_mode,
    /// The KVM the kernel was told it runs on: 1 hardware, 2 PVM, 0 unknown; `abi::boot::HostKind`.
    Constant host_kind,
    /// Pages brought in by fault-around (`--fault-around`) after a faulting page, without a fault of their own (not counted in `faults`).
    Counter pages_mapped_around,
    /// Of all faults, the zero-fill faults the fast kernel mode's ring-0 shim resolved itself with a stashed zeroed frame (counted as faults and as `faults_zero_fill`; not timed: `fault_cycles_*` cover the others).
    Counter faults_in_shim,
    /// Blocks of files found in the kernel's block cache of the file-system disk (reads and partial writes).
    Counter fs_cache_hits,
    /// Blocks of files read into the block cache (each a disk request, or part of one with `fs_cache_readaheads`); whole blocks not cached move between the disk and the caller's memory directly and count as neither.
    Counter fs_cache_misses,
    /// Blocks read into the block cache ahead of a sequential read, in the same request as the block before them.
    Counter fs_cache_readaheads,
    /// Dirty blocks the block cache wrote to the disk (at close, at power-off, or to make room).
    Counter fs_cache_writebacks,
}

/// Offset of histogram bucket `bucket` in the page.
pub const fn histogram_offset(bucket: usize) -> usize {
    offset_of!(StatsPage, fault_cycles_log2) + 8 * bucket
}

/// The histogram bucket for a fault of `cycles` TSC cycles.
pub const fn histogram_bucket(cycles: u64) -> usize {
    let log2 = if cycles == 0 {
        0
    } else {
        63 - cycles.leading_zeros() as usize
    };
    if log2 < FAULT_HISTOGRAM_BUCKETS {
        log2
    } else {
        FAULT_HISTOGRAM_BUCKETS - 1
    }
}

/// The position in [`FIELDS`] of the field named `name`.
pub fn field_index(name: &str) -> Option<usize> {
    FIELDS.iter().position(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, size_of};

    #[test]
    fn layout_is_packed_u64s_in_one_page() {
        assert_eq!(align_of::<StatsPage>(), 8);
        assert_eq!(offset_of!(StatsPage, magic), 0);
        assert_eq!(offset_of!(StatsPage, version), 8);
        for (i, f) in FIELDS.iter().enumerate() {
            assert_eq!(f.offset, 16 + 8 * i, "{} is not the next u64", f.name);
        }
        assert_eq!(histogram_offset(0), 16 + 8 * FIELDS.len());
        assert_eq!(
            size_of::<StatsPage>(),
            histogram_offset(FAULT_HISTOGRAM_BUCKETS),
            "no padding"
        );
        assert!(size_of::<StatsPage>() <= crate::layout::PAGE_SIZE as usize);
    }

    #[test]
    fn names_are_unique_and_documented() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert!(!f.doc.is_empty(), "{}", f.name);
            assert!(FIELDS[i + 1..].iter().all(|g| g.name != f.name));
        }
        assert_eq!(field_index("faults").map(|i| FIELDS[i].offset), Some(16));
        assert!(field_index("nope").is_none());
    }

    #[test]
    fn histogram_buckets() {
        assert_eq!(histogram_bucket(0), 0);
        assert_eq!(histogram_bucket(1), 0);
        assert_eq!(histogram_bucket(2), 1);
        assert_eq!(histogram_bucket(3), 1);
        assert_eq!(histogram_bucket(1 << 20), 20);
        assert_eq!(histogram_bucket((1 << 21) - 1), 20);
        assert_eq!(histogram_bucket(u64::MAX), FAULT_HISTOGRAM_BUCKETS - 1);
    }

    #[test]
    fn policies_round_trip() {
        for p in [EvictPolicy::Clock, EvictPolicy::Fifo, EvictPolicy::Random] {
            assert_eq!(EvictPolicy::from_raw(p as u32), Some(p));
        }
        assert_eq!(EvictPolicy::from_raw(3), None);
        assert_eq!(EvictPolicy::default().name(), "clock");
    }
}
