//! The frame table and eviction (Pintos-KAIST's frame table, `vm_get_frame` and
//! `vm_evict_frame`).
//!
//! Every user frame that backs a user page has an entry, indexed by frame number, naming
//! the page and the processes that map it, by their [`Memory`] (one, or several when fork
//! shares the frame copy-on-write: always at the same address). When the user pool is empty, [`alloc`]
//! evicts a page chosen by the clock (second chance): the hand skips pages whose accessed
//! bit is set in any owner, clearing it, and takes the first page not accessed since the
//! hand last passed; it gives at most [`MAX_SECOND_CHANCES`] such chances per eviction,
//! then takes the next page it can evict whatever its accessed bit, so no single fault
//! sweeps all of memory. The VMM's `--evict` option (`BootInfo::evict_policy`) can replace the clock for
//! experiments: `fifo` takes the next page under the hand whatever its accessed bit, and
//! `random` starts the hand at a random frame first; both still skip pinned frames.
//!
//! What happens to the victim depends on its page (see [`Page`]): a page still holding the
//! executable's bytes (clean in every owner) is dropped and loaded again at its next touch;
//! a clean page of a file mapping is dropped, a dirty one written back to its file first;
//! any other page goes to a swap slot (one slot for all owners), by DMA from its frame.
//!
//! Concurrency: the kernel runs system calls and faults with interrupts off and never
//! blocks while it uses user memory (the file system's lock is only taken for a whole
//! operation, which does not block), so an eviction never sees another thread halfway
//! through a change to the pages it touches. Frames the kernel is reading or writing for a
//! system call are pinned ([`pin`]) and never chosen.

use core::cell::UnsafeCell;

use abi::layout::PAGE_SIZE;
use abi::stats::EvictPolicy;
use abi::trace::EvictTo;

use super::spt::Page;
use super::{Memory, mmap, swap};
use crate::mm::frame::{self, Frame, Pool, Zero};

/// Most pages the clock gives a second chance (clearing their accessed bit) in one
/// eviction: the next page it can evict goes, accessed or not. Without a bound, an
/// eviction in memory where every page was touched since the hand last passed sweeps all
/// of it first (the demo's worst fault: 113 ms in 10 MiB where ring 0 is emulated, a
/// page-table walk per step); with it, a fault's clock work is bounded at any memory size
/// (the demo's worst fault 3.4-3.7 ms, its fault counts unchanged).
const MAX_SECOND_CHANCES: u32 = 16;

/// Low bits of [`Entry::va`]: how many times the frame is pinned.
const PIN_MASK: u64 = PAGE_SIZE - 1;

/// One user frame.
struct Entry {
    /// The page it backs in every owner, plus the pin count in the low bits.
    va: u64,
    /// First owner; null while the frame backs no user page.
    owner: *mut Memory,
    /// Further owners (copy-on-write sharing after fork), a list of [`OwnerNode`]s; null
    /// for none (the table starts as zeroed memory).
    more: *mut OwnerNode,
}

/// One owner of a shared frame beyond its first, in a list hanging off its entry. Nodes
/// are carved from kernel frames, 256 to a frame, and kept on a free list: fork shares a
/// frame with no heap allocation (it made two per frame, a `Box` and a `Vec`, where each
/// costs hundreds of emulated instructions).
struct OwnerNode {
    owner: *mut Memory,
    next: *mut OwnerNode,
}

impl Entry {
    fn owners(&self) -> impl Iterator<Item = *mut Memory> + '_ {
        let mut node = self.more;
        core::iter::once(self.owner).chain(core::iter::from_fn(move || {
            // SAFETY: an entry's list holds live nodes (taken from the free list, not put
            // back while linked).
            let n = unsafe { node.as_ref()? };
            node = n.next;
            Some(n.owner)
        }))
    }

    fn owner_count(&self) -> usize {
        self.owners().count()
    }

    /// Makes the frame nobody's (its page left memory), giving the owner nodes back.
    fn disown(&mut self, free: &mut *mut OwnerNode) {
        self.owner = core::ptr::null_mut();
        self.clear_more(free);
        self.va = 0;
    }

    /// Forgets every owner but the first, giving their nodes back.
    fn clear_more(&mut self, t_free: &mut *mut OwnerNode) {
        while !self.more.is_null() {
            let node = self.more;
            // SAFETY: as in `owners`; the node leaves the list before it goes back.
            self.more = unsafe { (*node).next };
            free_node(t_free, node);
        }
    }
}

/// Puts `node` on the free list `free`.
fn free_node(free: &mut *mut OwnerNode, node: *mut OwnerNode) {
    // SAFETY: `node` is a node of the pool that nothing links to any more.
    unsafe { (*node).next = *free };
    *free = node;
}

struct Table {
    /// One entry per frame of the user pool's span, from `base`.
    entries: *mut Entry,
    len: usize,
    base: u64,
    /// The clock hand.
    hand: usize,
    /// How the hand picks a victim.
    policy: EvictPolicy,
    /// State of the random policy's generator (xorshift64; a fixed seed, so runs repeat).
    random: u64,
    /// The eviction [`evict_one`] just deferred, for its caller.
    deferred: Option<Deferred>,
    /// Unused [`OwnerNode`]s.
    free_nodes: *mut OwnerNode,
}

impl Table {
    fn entry(&mut self, f: Frame) -> Option<&mut Entry> {
        self.entry_and_free(f).0
    }

    /// [`entry`](Self::entry) of `f`, and the free list of owner nodes beside it.
    fn entry_and_free(&mut self, f: Frame) -> (Option<&mut Entry>, &mut *mut OwnerNode) {
        let index = f
            .gpa()
            .checked_sub(self.base)
            .map(|offset| offset / PAGE_SIZE)
            .filter(|&i| i < self.len as u64);
        // SAFETY: `entries` holds `len` initialised entries owned by the table (see
        // `init`); the entry is not part of `free_nodes`.
        let entry = index.map(|i| unsafe { &mut *self.entries.add(i as usize) });
        (entry, &mut self.free_nodes)
    }

    /// An unused owner node, carving a fresh kernel frame into nodes if none is left;
    /// `None` if the kernel pool is empty.
    fn take_node(&mut self) -> Option<*mut OwnerNode> {
        if self.free_nodes.is_null() {
            let page = frame::alloc(Pool::Kernel, Zero::No)?;
            let nodes = page.as_ptr().cast::<OwnerNode>();
            for i in 0..PAGE_SIZE as usize / size_of::<OwnerNode>() {
                // SAFETY: the frame is the table's from now on (never freed), covered by
                // the direct map, and holds this many nodes; `free_node` writes `next`
                // before anything reads it.
                free_node(&mut self.free_nodes, unsafe { nodes.add(i) });
            }
        }
        let node = self.free_nodes;
        // SAFETY: a node on the free list is the table's and initialised by `free_node`.
        self.free_nodes = unsafe { (*node).next };
        Some(node)
    }
}

/// The table, without a lock: see [`table`].
struct TableCell(UnsafeCell<Table>);

// SAFETY: see `table`: uses never overlap.
unsafe impl Sync for TableCell {}

static TABLE: TableCell = TableCell(UnsafeCell::new(Table {
    entries: core::ptr::null_mut(),
    len: 0,
    base: 0,
    hand: 0,
    policy: EvictPolicy::Clock,
    random: 0x9e37_79b9_7f4a_7c15,
    deferred: None,
    free_nodes: core::ptr::null_mut(),
}));

/// The frame table. It takes no lock: every user runs with interrupts off on the one CPU
/// (page faults and system calls enter through interrupt gates and never turn interrupts
/// back on; the first program is loaded with them off), and no function here uses the
/// table while another use is live, so uses never overlap. A lock costs where ring 0 is
/// emulated: measured on PVM, taking and dropping an `IrqSpinLock` for `register` added
/// ~55 us to every page fault.
fn table() -> &'static mut Table {
    // SAFETY: see above.
    unsafe { &mut *TABLE.0.get() }
}

/// Sets the table up (once, when the first process starts, not at boot: it is 24 bytes per
/// user frame), from never-used kernel frames, which read as zero: a valid empty entry.
/// False if the kernel pool cannot spare them.
pub fn init() -> bool {
    let t = table();
    if t.len != 0 {
        return true;
    }
    let (start, end) = frame::user_span();
    let frames = (end.saturating_sub(start) / PAGE_SIZE) as usize;
    let bytes = (frames * size_of::<Entry>()) as u64;
    if frames == 0 {
        return true;
    }
    let Some(run) = frame::alloc_fresh_run(Pool::Kernel, bytes.div_ceil(PAGE_SIZE)) else {
        return false;
    };
    t.entries = run.as_ptr().cast::<Entry>();
    t.len = frames;
    t.base = start;
    t.policy = EvictPolicy::from_raw(crate::boot::info().evict_policy).unwrap_or_default();
    true
}

/// Records that `owner` maps `frame` at `va` (a new page: the frame's only owner).
#[inline]
pub fn register(frame: Frame, owner: *mut Memory, va: u64) {
    if let (Some(e), free) = table().entry_and_free(frame) {
        e.va = va;
        e.owner = owner;
        if !e.more.is_null() {
            e.clear_more(free);
        }
    }
}

/// Records one more owner of `frame` (fork shares it copy-on-write). False if the kernel
/// pool has no room for the record.
pub fn share(frame: Frame, owner: *mut Memory) -> bool {
    let t = table();
    if t.entry(frame).is_none_or(|e| e.owner.is_null()) {
        return false;
    }
    let Some(node) = t.take_node() else {
        return false;
    };
    let e = t.entry(frame).expect("checked above");
    // SAFETY: the node was just taken from the free list: the table's, linked nowhere.
    unsafe {
        node.write(OwnerNode {
            owner,
            next: e.more,
        })
    };
    e.more = node;
    true
}

/// Whether more than one process maps `frame`.
pub fn is_shared(frame: Frame) -> bool {
    table().entry(frame).is_some_and(|e| !e.more.is_null())
}

/// `owner` no longer maps `frame`; the last owner frees it.
pub fn release(frame: Frame, owner: *mut Memory) {
    let (entry, free) = table().entry_and_free(frame);
    let last = match entry {
        Some(e) if !e.owner.is_null() => {
            if e.owner == owner {
                // SAFETY: as in `Entry::owners`.
                match unsafe { e.more.as_ref() } {
                    Some(&OwnerNode {
                        owner: next,
                        next: rest,
                    }) => {
                        free_node(free, e.more);
                        e.owner = next;
                        e.more = rest;
                        false
                    }
                    None => {
                        e.owner = core::ptr::null_mut();
                        e.va = 0;
                        true
                    }
                }
            } else {
                // Unlink `owner`'s node, if it has one.
                let mut link: *mut *mut OwnerNode = &raw mut e.more;
                // SAFETY: `link` points at the entry's head or at a live node's `next`.
                while let Some(node) = unsafe { (*link).as_mut() } {
                    if node.owner == owner {
                        // SAFETY: as above; `*link` is `node`, which leaves the list here.
                        let unlinked = unsafe { *link };
                        // SAFETY: as above.
                        unsafe { *link = node.next };
                        free_node(free, unlinked);
                        break;
                    }
                    link = &raw mut node.next;
                }
                false
            }
        }
        _ => true,
    };
    if last {
        frame::free(frame);
    }
}

/// Keeps `frame` from being evicted until [`unpin`] (a system call uses it).
pub fn pin(frame: Frame) {
    if let Some(e) = table().entry(frame)
        && e.va & PIN_MASK < PIN_MASK
    {
        e.va += 1;
    }
}

/// Undoes one [`pin`].
pub fn unpin(frame: Frame) {
    if let Some(e) = table().entry(frame)
        && e.va & PIN_MASK > 0
    {
        e.va -= 1;
    }
}

/// A user frame, evicting a page if the pool is empty; with [`Zero::Yes`] it reads as
/// zero. `None` if nothing can be evicted (every frame pinned, or the victim needs a swap
/// slot and swap is full or absent): the caller's process is out of memory.
#[inline(always)]
pub fn alloc(zero: Zero) -> Option<Frame> {
    let (f, is_zero) = alloc_as_is(zero)?;
    if zero == Zero::Yes && !is_zero {
        frame::zero_frame(f);
    }
    Some(f)
}

/// A user frame as it is (see `frame::alloc_as_is`), evicting a page if none is free;
/// with whether it reads as zero.
#[inline(always)]
pub fn alloc_as_is(zero: Zero) -> Option<(Frame, bool)> {
    if let Some(taken) = frame::alloc_as_is(Pool::User, zero) {
        return Some(taken);
    }
    stashed_or_evicted()
}

/// For [`alloc_as_is`] when the pool is empty: a frame of the fast mode's stash of zeroed
/// frames (free frames all the same), or else one eviction frees.
#[cold]
#[inline(never)]
fn stashed_or_evicted() -> Option<(Frame, bool)> {
    if let Some(f) = super::fault::take_stashed_frame() {
        return Some((f, true));
    }
    Some((evict_one::<false>()?, false))
}

/// A page the clock chose whose frame a fault takes before the page is written out: its
/// swap-out rides on the page operation that fills the frame for the fault
/// (`abi::devices::SYSCTL_EVICT_ZERO_MAP`), one exit instead of two. Until
/// [`finish_eviction`] it is still mapped, listed here and in its SPT; if the operation
/// wrote nothing out, nothing changed.
pub struct Deferred {
    owner: *mut Memory,
    va: u64,
    writable: bool,
}

/// [`alloc_as_is`] for a fault that fills the frame with a page operation (zeros, a swap
/// slot): an evicted page that must go to swap may be [`Deferred`] to that operation.
#[inline(always)]
pub fn alloc_for_fill(zero: Zero) -> Option<(Frame, bool, Option<Deferred>)> {
    if let Some((f, is_zero)) = frame::alloc_as_is(Pool::User, zero) {
        return Some((f, is_zero, None));
    }
    stashed_or_deferred()
}

/// [`stashed_or_evicted`] for [`alloc_for_fill`].
#[cold]
#[inline(never)]
fn stashed_or_deferred() -> Option<(Frame, bool, Option<Deferred>)> {
    if let Some(f) = super::fault::take_stashed_frame() {
        return Some((f, true, None));
    }
    let f = evict_one::<true>()?;
    Some((f, false, table().deferred.take()))
}

/// Ends the eviction of `deferred`, whose frame `frame` the page operation wrote to swap
/// `slot`: the page leaves its owner's tables (the TLB entry too) for the slot, and the
/// frame is nobody's until the fault registers it.
pub fn finish_eviction(frame: Frame, deferred: Deferred, slot: u32) {
    let Deferred {
        owner,
        va,
        writable,
    } = deferred;
    // SAFETY: as in `evict_one`: the owner is alive (it maps the frame) and not using its
    // tables now.
    unsafe {
        now_in_slot(owner, va, writable, slot);
        (*owner).space.evict(va);
        crate::trace::evict((*owner).pid, va, EvictTo::Swap);
    }
    if let (Some(e), free) = table().entry_and_free(frame) {
        e.disown(free);
    }
    crate::stats::bump(crate::stats::evictions(EvictTo::Swap));
}

/// Runs the clock until a page leaves memory; returns its frame (now nobody's). With
/// `DEFER`, a page that must go to swap may instead be [`Deferred`] (left in
/// `Table::deferred`): its frame comes back, still its own until [`finish_eviction`].
/// Generic rather than a flag so that the plain path carries none of it (classic mode's
/// evicting fault took 4-6% longer with a payload in `Outcome`, where ring 0 is emulated).
fn evict_one<const DEFER: bool>() -> Option<Frame> {
    let t = table();
    let len = t.len;
    if len == 0 {
        return None;
    }
    let second_chance = t.policy == EvictPolicy::Clock;
    if t.policy == EvictPolicy::Random {
        t.random ^= t.random << 13;
        t.random ^= t.random >> 7;
        t.random ^= t.random << 17;
        t.hand = (t.random % len as u64) as usize;
    }
    // The first sweep may only clear accessed bits; the second then finds a victim unless
    // none can leave. At most `MAX_SECOND_CHANCES` pages get theirs per eviction, so no
    // fault waits for a sweep of all memory.
    let mut chances = 0;
    for _ in 0..2 * len {
        let index = t.hand;
        t.hand = if index + 1 == len { 0 } else { index + 1 };
        // SAFETY: `index < len` (see `Table::entry`).
        let e = unsafe { &mut *t.entries.add(index) };
        if e.owner.is_null() || e.va & PIN_MASK != 0 {
            continue;
        }
        let frame = Frame::from_gpa(t.base + index as u64 * PAGE_SIZE);
        let va = e.va;
        let (mut accessed, mut dirty) = (false, false);
        // Every policy needs the dirty bits; only the clock looks at the accessed bits, and
        // clears them as it reads them: a page accessed in any owner gets its second
        // chance in all of them.
        let chance = second_chance && chances < MAX_SECOND_CHANCES;
        for p in e.owners() {
            // SAFETY: an owner is alive while its entry names it (exit releases its frames
            // first) and is not using its tables now (see the module's documentation).
            if let Some((a, d)) = unsafe { (*p).space.accessed_dirty(va, chance) } {
                accessed |= a;
                dirty |= d;
            }
        }
        if accessed && chance {
            chances += 1;
            continue;
        }
        match evict::<DEFER>(e, frame, dirty) {
            Outcome::Evicted => {
                e.disown(&mut t.free_nodes);
                return Some(frame);
            }
            Outcome::Deferred { writable } => {
                t.deferred = Some(Deferred {
                    owner: e.owner,
                    va,
                    writable,
                });
                return Some(frame);
            }
            Outcome::Kept => {}
            // Memory and swap are both full. Dropping clean pages could go on, but the
            // faulting instruction may need two of them, each dropped to bring in the
            // other, for ever: the process that needs the page is out of memory.
            Outcome::SwapFull => return None,
        }
    }
    None
}

/// What became of a victim.
enum Outcome {
    /// Out of memory in every owner.
    Evicted,
    /// It stays (its write-back failed, or it has no page record); nothing changed.
    Kept,
    /// It needs a swap slot and none is free; nothing changed.
    SwapFull,
    /// Its swap-out rides on the fault's page operation ([`Deferred`], which the caller
    /// leaves in `Table::deferred`); nothing changed yet.
    Deferred { writable: bool },
}

/// Records in `owner`'s SPT that its page `va` is in swap `slot` now.
///
/// # Safety
/// `owner` is alive and not using its SPT (see `evict_one`).
unsafe fn now_in_slot(owner: *mut Memory, va: u64, writable: bool, slot: u32) {
    // SAFETY: the caller's promise.
    if let Some(state) = unsafe { (*owner).spt.get_mut(va) } {
        *state = Page::Anon {
            writable,
            slot: Some(slot),
        };
    }
}

/// Takes page `e.va` out of every owner: saved first where its contents must survive
/// (its file, or a swap slot).
fn evict<const DEFER: bool>(e: &Entry, frame: Frame, dirty: bool) -> Outcome {
    let va = e.va;
    let to;
    // SAFETY: as in `evict_one`; owners of one frame hold the same kind of page there.
    let page = unsafe { (*e.owner).spt.get_mut(va).copied() };
    match page {
        Some(Page::Mapped { range, .. }) => {
            if dirty {
                // SAFETY: as above.
                let mapping = unsafe { mmap::find(&(*e.owner).mappings, va) };
                let Some(mapping) = mapping else {
                    return Outcome::Kept;
                };
                // SAFETY: the frame backs the page and stays allocated during the write.
                let bytes =
                    unsafe { core::slice::from_raw_parts(frame.as_ptr(), usize::from(range.len)) };
                if mapping.file.write_at(bytes, range.file_offset) != bytes.len() {
                    return Outcome::Kept;
                }
                to = EvictTo::File;
            } else {
                to = EvictTo::Drop;
            }
        }
        Some(Page::Uninit { .. }) if !dirty => to = EvictTo::Drop,
        Some(Page::Uninit { writable, .. } | Page::Anon { writable, .. }) => {
            if DEFER && e.more.is_null() && swap::can_defer_swap_out() {
                return Outcome::Deferred { writable };
            }
            let owners = u16::try_from(e.owner_count()).unwrap_or(u16::MAX);
            let slot = match swap::swap_out(frame, owners) {
                Ok(slot) => slot,
                // A swap disk that fails a write (the host's disk full, an I/O error)
                // would fail the next one too: trying every page in turn (an exit each)
                // only delays the end; the process that needs the page is out of memory.
                Err(swap::SwapError::Full | swap::SwapError::NoSwap | swap::SwapError::Io) => {
                    return Outcome::SwapFull;
                }
            };
            for p in e.owners() {
                // SAFETY: as above.
                unsafe { now_in_slot(p, va, writable, slot) };
            }
            to = EvictTo::Swap;
        }
        None => return Outcome::Kept,
    }
    for p in e.owners() {
        // SAFETY: as above.
        unsafe {
            (*p).space.evict(va);
            crate::trace::evict((*p).pid, va, to);
        }
    }
    crate::stats::bump(crate::stats::evictions(to));
    Outcome::Evicted
}
