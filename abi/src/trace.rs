//! The fault trace ring (`vmm run --trace-faults FILE`): one record per page fault,
//! eviction and release of a process's pages, written by the kernel and drained by the VMM
//! while the guest runs, with no VM exit per record.
//!
//! The ring lives in reserved low memory below usable RAM (see [`crate::layout`]), so
//! tracing takes no frame from the guest: a traced run has the same user frames, and so
//! the same faults, as an untraced one. [`TraceHeader`] sits at
//! [`crate::layout::TRACE_HEADER_GPA`] and [`TRACE_CAPACITY`] [`TraceRecord`]s at
//! [`crate::layout::TRACE_RING_GPA`].
//!
//! One writer, one reader: the kernel (one CPU) writes record `head % TRACE_CAPACITY` and
//! then advances `head`; the VMM reads the records from `tail` to `head` and then advances
//! `tail`. A record that finds the ring full (`head - tail == TRACE_CAPACITY`) is not
//! written: the kernel counts it in `dropped` and goes on, so a slow reader never stalls
//! the guest, and the VMM reports the count. The kernel sets the header up only when the
//! boot flag [`crate::boot::FLAG_TRACE_FAULTS`] asks for a trace; otherwise nothing on the
//! fault path writes here.

use core::sync::atomic::AtomicU64;

/// `b"VMMTRACE"` read as a little-endian `u64`, in [`TraceHeader::magic`] once the kernel
/// has set the ring up.
pub const TRACE_MAGIC: u64 = u64::from_le_bytes(*b"VMMTRACE");
/// Bumped whenever the header or record layout changes.
pub const TRACE_VERSION: u64 = 1;
/// Records in the ring: the 32 KiB from [`crate::layout::TRACE_RING_GPA`].
pub const TRACE_CAPACITY: u64 = 1024;
/// [`TraceRecord::cycles`] of a fault nobody timed (the fast mode's shim resolves
/// zero-fill faults without timing them).
pub const UNTIMED: u64 = u64::MAX;

/// The ring's header. Every field is a naturally aligned `u64` (read whole by the other
/// side, never torn).
#[repr(C)]
#[derive(Debug)]
pub struct TraceHeader {
    /// [`TRACE_MAGIC`] once the kernel has set the ring up.
    pub magic: AtomicU64,
    /// [`TRACE_VERSION`].
    pub version: AtomicU64,
    /// Records written so far (the kernel's; only grows).
    pub head: AtomicU64,
    /// Records read so far (the VMM's; only grows, never past `head`).
    pub tail: AtomicU64,
    /// Records the kernel could not write because the ring was full.
    pub dropped: AtomicU64,
    /// The guest's TSC when the kernel set the ring up, at boot: times in the trace count
    /// from it.
    pub start_tsc: AtomicU64,
}

/// What a record is.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A page fault of `pid` at `page`; `detail` is a [`Cause`].
    Fault = 1,
    /// `page` of `pid` left memory; `detail` is an [`EvictTo`].
    Evict = 2,
    /// Every page of `pid` was released; `detail` is a [`Release`].
    Release = 3,
}

/// How a fault was resolved ([`RecordKind::Fault`]).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A zeroed page (bss, an anonymous page never written out).
    Zero = 0,
    /// A page of the executable.
    File = 1,
    /// A page of a file mapping.
    Mmap = 2,
    /// A page read back from swap.
    Swap = 3,
    /// Stack growth.
    Stack = 4,
    /// A write to a copy-on-write page (copied, or made writable).
    Cow = 5,
    /// The access killed the process (no page there, a bad write, or out of memory).
    Kill = 6,
}

/// Where an evicted page went ([`RecordKind::Evict`]).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictTo {
    /// A swap slot.
    Swap = 0,
    /// Written back to its mapped file.
    File = 1,
    /// Dropped: clean, still the executable's or the file's bytes.
    Drop = 2,
}

/// Why a process's pages were all released ([`RecordKind::Release`]).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// The process ended.
    Exit = 0,
    /// The process ran exec: its old program's pages are gone.
    Exec = 1,
}

/// One record, 32 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceRecord {
    /// The guest's TSC when it happened (when the fault started).
    pub tsc: u64,
    /// The user page (page-aligned virtual address); 0 for a release.
    pub page: u64,
    /// TSC cycles the fault took; [`UNTIMED`] if not timed; 0 for other kinds.
    pub cycles: u64,
    /// The process.
    pub pid: u32,
    /// A [`RecordKind`].
    pub kind: u8,
    /// The [`Cause`], [`EvictTo`] or [`Release`].
    pub detail: u8,
    pub reserved: u16,
}

impl Cause {
    /// Decodes a raw value.
    pub const fn from_raw(raw: u8) -> Option<Self> {
        Some(match raw {
            0 => Self::Zero,
            1 => Self::File,
            2 => Self::Mmap,
            3 => Self::Swap,
            4 => Self::Stack,
            5 => Self::Cow,
            6 => Self::Kill,
            _ => return None,
        })
    }

    /// The name in the trace file.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Zero => "zero",
            Self::File => "file",
            Self::Mmap => "mmap",
            Self::Swap => "swap",
            Self::Stack => "stack",
            Self::Cow => "cow",
            Self::Kill => "kill",
        }
    }
}

impl EvictTo {
    /// Decodes a raw value.
    pub const fn from_raw(raw: u8) -> Option<Self> {
        Some(match raw {
            0 => Self::Swap,
            1 => Self::File,
            2 => Self::Drop,
            _ => return None,
        })
    }

    /// The name in the trace file.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Swap => "swap",
            Self::File => "file",
            Self::Drop => "drop",
        }
    }
}

impl Release {
    /// Decodes a raw value.
    pub const fn from_raw(raw: u8) -> Option<Self> {
        Some(match raw {
            0 => Self::Exit,
            1 => Self::Exec,
            _ => return None,
        })
    }

    /// The name in the trace file.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Exit => "exit",
            Self::Exec => "exec",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{BOOT_PT_START, PAGE_SIZE, TRACE_HEADER_GPA, TRACE_RING_GPA};
    use core::mem::size_of;

    #[test]
    fn the_ring_fits_its_reserved_memory() {
        assert_eq!(size_of::<TraceRecord>(), 32);
        assert!(size_of::<TraceHeader>() as u64 <= PAGE_SIZE);
        assert_eq!(
            TRACE_RING_GPA + TRACE_CAPACITY * size_of::<TraceRecord>() as u64,
            BOOT_PT_START
        );
        const { assert!(TRACE_HEADER_GPA + PAGE_SIZE <= TRACE_RING_GPA) };
    }

    #[test]
    fn names_round_trip() {
        for raw in 0..=6 {
            let cause = Cause::from_raw(raw).expect("cause");
            assert_eq!(cause as u8, raw);
        }
        assert_eq!(Cause::from_raw(7), None);
        assert_eq!(EvictTo::from_raw(2).map(EvictTo::name), Some("drop"));
        assert_eq!(EvictTo::from_raw(3), None);
        assert_eq!(Release::from_raw(1).map(Release::name), Some("exec"));
    }
}
