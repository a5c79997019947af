//! Physical frames: a kernel pool and a user pool.
//!
//! Each pool owns a set of address ranges and hands frames out in O(1) from either its
//! free list (frames given back) or its bump cursor (frames never used since boot).
//! Initialisation only records ranges: nothing touches memory in proportion to its size.
//!
//! Zero tracking: guest RAM starts out zero, so a frame from the bump cursor is known to be
//! zero and [`alloc`] with [`Zero::Yes`] does not clear it again; a frame from the free list
//! is cleared only when the caller asks for zeros. So that clearing is rare, a caller that
//! wants zeros gets a never-used frame while there are any, and one that will overwrite the
//! frame gets a used one first.
//!
//! The free list is intrusive: a free frame's first word holds the address of the next.
//!
//! Invariant: every usable frame is in exactly one place: below its pool's bump cursor and
//! either handed out or on the free list, or at/above the cursor and never used.

use abi::boot::{BootInfo, MAX_USABLE_RANGES, MemRange};
use abi::devices::{PAGE_OP_DONE, SYSCTL_PAGE_COPY, SYSCTL_PAGE_ZERO, SYSCTL_ZERO_LIST};
use abi::layout::{PAGE_SIZE, phys_to_virt};

use core::sync::atomic::{AtomicU64, Ordering};

use crate::drivers::sysctl;
use crate::sync::IrqSpinLock;

/// A 4 KiB physical frame, by its guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frame(u64);

impl Frame {
    /// The frame at `gpa`, which must be page-aligned.
    pub const fn from_gpa(gpa: u64) -> Frame {
        assert!(gpa.is_multiple_of(PAGE_SIZE), "frame: unaligned address");
        Frame(gpa)
    }

    /// Guest-physical address.
    pub const fn gpa(self) -> u64 {
        self.0
    }

    /// Page number (guest-physical address / 4 KiB), as page operations name frames: guest
    /// RAM is at most `layout::MAX_MEM_MIB`, so it fits.
    pub const fn number(self) -> u32 {
        (self.0 / PAGE_SIZE) as u32
    }

    /// Kernel-virtual address of the frame's first byte (direct map).
    pub const fn virt(self) -> u64 {
        phys_to_virt(self.0)
    }

    /// Pointer to the frame's first byte.
    pub const fn as_ptr(self) -> *mut u8 {
        self.virt() as *mut u8
    }
}

/// Which pool a frame comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// Kernel heap, page tables, kernel stacks.
    Kernel,
    /// Pages of user processes.
    User,
}

/// Whether the caller needs the frame to read as zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zero {
    Yes,
    No,
}

/// A pool's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Frames in the pool.
    pub total: u64,
    /// Frames available now (with the user frames in the fast mode's stash:
    /// [`take_fresh_for_stash`]).
    pub free: u64,
    /// Frames never handed out since boot (the rest of the bump region).
    pub fresh: u64,
}

struct FramePool {
    ranges: [MemRange; MAX_USABLE_RANGES],
    num_ranges: usize,
    /// Range the bump cursor is in, and the next never-used frame in it.
    bump_range: usize,
    bump_next: u64,
    /// First frame of the free list, or 0 (page 0 is never usable).
    free_head: u64,
    stats: PoolStats,
}

impl FramePool {
    const fn empty() -> Self {
        FramePool {
            ranges: [MemRange { start: 0, end: 0 }; MAX_USABLE_RANGES],
            num_ranges: 0,
            bump_range: 0,
            bump_next: 0,
            free_head: 0,
            stats: PoolStats {
                total: 0,
                free: 0,
                fresh: 0,
            },
        }
    }

    fn add_range(&mut self, range: MemRange) {
        if range.is_empty() {
            return;
        }
        assert!(
            self.num_ranges < MAX_USABLE_RANGES,
            "frame: too many ranges in a pool"
        );
        if self.num_ranges == 0 {
            self.bump_next = range.start;
        }
        self.ranges[self.num_ranges] = range;
        self.num_ranges += 1;
        let pages = range.len() / PAGE_SIZE;
        self.stats.total += pages;
        self.stats.free += pages;
        self.stats.fresh += pages;
    }

    /// Takes a frame; the bool says whether it is known to be zero. For [`Zero::Yes`] a
    /// never-used frame comes first, otherwise a used one.
    #[inline(always)]
    fn take(&mut self, zero: Zero) -> Option<(Frame, bool)> {
        match zero {
            Zero::Yes => self.take_fresh().or_else(|| self.take_used()),
            Zero::No => self.take_used().or_else(|| self.take_fresh()),
        }
        .map(|(frame, fresh)| {
            self.stats.free -= 1;
            (frame, fresh)
        })
    }

    /// A frame from the free list (its contents are stale).
    #[inline(always)]
    fn take_used(&mut self) -> Option<(Frame, bool)> {
        if self.free_head == 0 {
            return None;
        }
        let frame = Frame(self.free_head);
        // SAFETY: free frames are owned by the pool; their first word is the link written by
        // `give`.
        self.free_head = unsafe { (frame.virt() as *const u64).read() };
        Some((frame, false))
    }

    /// A never-used frame from the bump cursor (zero).
    #[inline(always)]
    fn take_fresh(&mut self) -> Option<(Frame, bool)> {
        while self.bump_range < self.num_ranges {
            if self.bump_next < self.ranges[self.bump_range].end {
                let frame = Frame(self.bump_next);
                self.bump_next += PAGE_SIZE;
                self.stats.fresh -= 1;
                return Some((frame, true));
            }
            self.bump_range += 1;
            if self.bump_range < self.num_ranges {
                self.bump_next = self.ranges[self.bump_range].start;
            }
        }
        None
    }

    /// Takes `count` frames that are contiguous and fresh, from the bump region only. If
    /// the current range is too short, its remaining frames go to the free list (so none is
    /// lost) and the next range is tried.
    fn take_fresh_run(&mut self, count: u64) -> Option<Frame> {
        let bytes = count.checked_mul(PAGE_SIZE)?;
        while self.bump_range < self.num_ranges {
            let end = self.bump_next.checked_add(bytes)?;
            if end <= self.ranges[self.bump_range].end {
                let first = Frame(self.bump_next);
                self.bump_next = end;
                self.stats.free -= count;
                self.stats.fresh -= count;
                return Some(first);
            }
            let later_fits = self.ranges[self.bump_range + 1..self.num_ranges]
                .iter()
                .any(|r| r.len() >= bytes);
            if !later_fits {
                return None;
            }
            while self.bump_next < self.ranges[self.bump_range].end {
                let frame = Frame(self.bump_next);
                self.bump_next += PAGE_SIZE;
                self.stats.fresh -= 1;
                self.stats.free -= 1;
                self.give(frame);
            }
            self.bump_range += 1;
            if self.bump_range < self.num_ranges {
                self.bump_next = self.ranges[self.bump_range].start;
            }
        }
        None
    }

    fn give(&mut self, frame: Frame) {
        // SAFETY: the caller hands the frame back, so the pool owns it and may use its
        // first word as the free-list link.
        unsafe { (frame.virt() as *mut u64).write(self.free_head) };
        self.free_head = frame.0;
        self.stats.free += 1;
    }

    fn contains(&self, frame: Frame) -> bool {
        self.ranges[..self.num_ranges]
            .iter()
            .any(|r| (r.start..r.end).contains(&frame.0))
    }
}

/// Lowest frame of the user pool: the kernel pool holds every usable frame below it and the
/// user pool every one above, so `free` finds a frame's pool without a search. Set once.
static USER_POOL_START: AtomicU64 = AtomicU64::new(u64::MAX);

static KERNEL_POOL: IrqSpinLock<FramePool> =
    IrqSpinLock::new("kernel frame pool", FramePool::empty());
static USER_POOL: IrqSpinLock<FramePool> = IrqSpinLock::new("user frame pool", FramePool::empty());

fn pool(which: Pool) -> &'static IrqSpinLock<FramePool> {
    match which {
        Pool::Kernel => &KERNEL_POOL,
        Pool::User => &USER_POOL,
    }
}

/// Number of user frames for `free_frames` usable frames and the VMM's limit (0: none):
/// half the frames, as in Pintos, capped by the limit.
pub const fn user_pool_size(free_frames: u64, limit: u64) -> u64 {
    let half = free_frames / 2;
    if limit != 0 && limit < half {
        limit
    } else {
        half
    }
}

/// Splits the usable ranges between the pools: the kernel pool takes the lowest frames.
pub fn init(info: &BootInfo) {
    let free_frames: u64 = info.usable().iter().map(|r| r.len() / PAGE_SIZE).sum();
    let mut kernel_left = free_frames - user_pool_size(free_frames, info.user_page_limit);
    let (mut kernel, mut user) = (KERNEL_POOL.lock(), USER_POOL.lock());
    for range in info.usable() {
        let kernel_part = (range.len() / PAGE_SIZE).min(kernel_left);
        let split = range.start + kernel_part * PAGE_SIZE;
        kernel.add_range(MemRange {
            start: range.start,
            end: split,
        });
        user.add_range(MemRange {
            start: split,
            end: range.end,
        });
        if split < range.end && USER_POOL_START.load(Ordering::Relaxed) == u64::MAX {
            USER_POOL_START.store(split, Ordering::Relaxed);
        }
        kernel_left -= kernel_part;
    }
    let user_end = info.usable().iter().map(|r| r.end).max().unwrap_or(0);
    USER_POOL_END.store(user_end, Ordering::Relaxed);
    crate::stats::page()
        .user_frames_total
        .store(user.stats.total, Ordering::Relaxed);
}

/// Updates the stats page's user-frame gauge from `pool` (the user pool, locked).
fn count_user_frames(pool: &FramePool) {
    let p = crate::stats::page();
    crate::stats::level(
        &p.user_frames_used,
        &p.user_frames_peak,
        pool.stats.total - pool.stats.free,
    );
}

/// Takes up to `out.len()` free user frames for the fast mode's stash of zeroed frames
/// (`vm::fault::settle_shim_faults`), in the order zero-fill faults would take them:
/// never-used ones (zero) first, then used ones, which the caller clears
/// ([`zero_frames`]). They still count as free ([`PoolStats::free`], the stats page's
/// gauge) until [`stashed_used`]. Returns how many are never-used, and how many in all.
pub fn take_for_stash(out: &mut [Frame]) -> (usize, usize) {
    let mut p = USER_POOL.lock();
    let mut fresh = 0;
    while fresh < out.len() {
        let Some((frame, _)) = p.take_fresh() else {
            break;
        };
        out[fresh] = frame;
        fresh += 1;
    }
    let mut n = fresh;
    while n < out.len() {
        let Some((frame, _)) = p.take_used() else {
            break;
        };
        out[n] = frame;
        n += 1;
    }
    (fresh, n)
}

/// Gives used frames [`take_for_stash`] took back to the pool, as they were (they never
/// stopped counting as free).
pub fn untake_for_stash(frames: &[Frame]) {
    let mut p = USER_POOL.lock();
    for &frame in frames.iter().rev() {
        p.give(frame);
        p.stats.free -= 1;
    }
}

/// The page of frame numbers [`zero_frames`] hands the VMM.
#[repr(C, align(4096))]
struct ZeroList([u32; ZERO_LIST_LEN]);
const ZERO_LIST_LEN: usize = 64;
static ZERO_LIST: IrqSpinLock<ZeroList> =
    IrqSpinLock::new("zero list", ZeroList([0; ZERO_LIST_LEN]));

/// Clears `frames` (at most 64), the VMM in one exit (`SYSCTL_ZERO_LIST`). False if it
/// refused.
pub fn zero_frames(frames: &[Frame]) -> bool {
    let mut list = ZERO_LIST.lock();
    for (slot, f) in list.0.iter_mut().zip(frames) {
        *slot = f.number();
    }
    let gpa = (&raw const list.0) as u64 - abi::layout::KERN_BASE;
    frames.len() <= ZERO_LIST_LEN
        && sysctl::page_op(
            SYSCTL_ZERO_LIST,
            (gpa / PAGE_SIZE) as u32,
            frames.len() as u32,
        ) == PAGE_OP_DONE
}

/// `n` frames of the stash went into use (the shim mapped them, or a fault took them when
/// the pool ran dry).
pub fn stashed_used(n: u64) {
    let mut p = USER_POOL.lock();
    p.stats.free -= n;
    count_user_frames(&p);
}

/// Allocates a frame from `which` pool; with [`Zero::Yes`] it reads as zero. `None` when
/// the pool is empty.
#[inline(always)]
pub fn alloc(which: Pool, zero: Zero) -> Option<Frame> {
    let (frame, is_zero) = alloc_as_is(which, zero)?;
    if zero == Zero::Yes && !is_zero {
        zero_frame(frame);
    }
    Some(frame)
}

/// Allocates a frame from `which` pool as it is: a never-used (zero) one first if `zero`
/// asks for it, else a used one first; returns it and whether it reads as zero. For a
/// caller that clears it together with other work (a page fault's one page operation).
#[inline(always)]
pub fn alloc_as_is(which: Pool, zero: Zero) -> Option<(Frame, bool)> {
    let mut p = pool(which).lock();
    let taken = p.take(zero)?;
    if which == Pool::User {
        count_user_frames(&p);
    }
    Some(taken)
}

/// Allocates `count` physically contiguous frames that have never been used (so they read
/// as zero). Only the untouched part of the pool can serve this; `None` otherwise.
pub fn alloc_fresh_run(which: Pool, count: u64) -> Option<Frame> {
    pool(which).lock().take_fresh_run(count)
}

/// Returns `frame` to the pool it came from.
///
/// Panics if the frame belongs to neither pool.
pub fn free(frame: Frame) {
    let which = if frame.gpa() >= USER_POOL_START.load(Ordering::Relaxed) {
        Pool::User
    } else {
        Pool::Kernel
    };
    let mut p = pool(which).lock();
    assert!(
        p.contains(frame),
        "frame: free of {:#x}, which is in no pool",
        frame.gpa()
    );
    p.give(frame);
    if which == Pool::User {
        count_user_frames(&p);
    }
}

/// The counters of `which` pool.
pub fn stats(which: Pool) -> PoolStats {
    pool(which).lock().stats
}

/// End of the user pool's highest range.
static USER_POOL_END: AtomicU64 = AtomicU64::new(0);

/// The addresses the user pool's frames lie in: `start..end` (holes included).
pub fn user_span() -> (u64, u64) {
    (
        USER_POOL_START.load(Ordering::Relaxed),
        USER_POOL_END.load(Ordering::Relaxed),
    )
}

/// Copies frame `from` into frame `to` (the VMM copies: one VM exit, where `rep movsq`
/// costs one emulated step per word on KVMs that emulate ring 0).
pub fn copy_frame(from: Frame, to: Frame) {
    let done = sysctl::page_op(SYSCTL_PAGE_COPY, to.number(), from.number()) == PAGE_OP_DONE;
    assert!(done, "frame: the VMM refused to copy {:#x}", from.gpa());
}

/// Clears a frame (the VMM clears it, as [`copy_frame`] copies).
pub fn zero_frame(frame: Frame) {
    let done = sysctl::page_op(SYSCTL_PAGE_ZERO, frame.number(), 0) == PAGE_OP_DONE;
    assert!(done, "frame: the VMM refused to clear {:#x}", frame.gpa());
}
