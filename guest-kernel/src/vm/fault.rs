//! The page-fault handler (Pintos-KAIST's `vm_try_handle_fault`): the one entry for a user
//! page fault, and for a system call's touch of a user page that is not in memory.
//!
//! [`resolve`] decides by what the fault found: a missing page is brought in according to
//! its kind in the supplemental page table ([`claim`]), or is stack growth; a write to a
//! read-only page is copy-on-write ([`super::cow`]); anything else kills the process. Every
//! fault is timed and counted on the stats page.
//!
//! Each page comes in with one frame from the frame table and one call into the page table
//! that has the VMM fill and map it in a single VM exit (where ring 0 is emulated every
//! kernel instruction costs, so nothing here walks or scans). Nothing allocates from the
//! heap: room in the page table's lists and in the SPT was made when the pages were
//! registered.
//!
//! In the fast kernel mode the shim resolves a program's bss zero-fill faults itself with
//! frames stashed here; [`settle_shim_faults`] brings them into the frame table and the
//! counters at the kernel's next entry.

use core::sync::atomic::{AtomicU32, Ordering};

use abi::layout::{KERN_BASE, PAGE_SIZE};

use super::spt::{FileRange, Page};
use super::{Access, Memory, STACK_LIMIT, USER_STACK, cow, frame_table, mmap, swap};
use crate::arch::x86_64::fast;
use crate::fs;
use crate::mm::frame::{self, Frame, Pool, Zero};
use crate::mm::page_table::{self, AddressSpace, EvictFill, Fill, MapError, PageFlags};
use crate::stats::{self, FaultOutcome};

/// Fault-around: how many pages after a faulting one come in with it
/// (`BootInfo::fault_around`; 0, the default, for none). Set by [`init`].
static AROUND: AtomicU32 = AtomicU32::new(0);

/// Takes the fault-around setting from the boot block. Call once, before the first
/// process.
pub fn init(info: &abi::boot::BootInfo) {
    AROUND.store(
        info.fault_around.min(abi::boot::MAX_FAULT_AROUND),
        Ordering::Relaxed,
    );
}

/// Resolves a fault of the process owning `mem` at `addr` ([`claim`] for a missing page,
/// [`cow::break_cow`] for a write to a read-only page; any other access kills), with `rsp`
/// the user stack pointer to judge stack growth by, and records it on the stats page
/// (`in_syscall`: a system call met it). Returns whether the process may go on.
///
/// Never inlined: the trap entry calls it and must stay free of the registers it saves.
#[inline(never)]
pub fn resolve(mem: &mut Memory, addr: u64, rsp: u64, access: Access, in_syscall: bool) -> bool {
    resolve_as::<false>(mem, addr, rsp, access, in_syscall)
}

/// [`resolve`] for kernel code at CPL 3 (the fast mode's events), where walking and
/// writing the page tables is native: a page with nothing to fill (a zero-fill fault on a
/// frame that is zero already, a page the disk already filled) is mapped by the kernel
/// itself instead of by the VMM in a VM exit. A second copy of the path, chosen at compile
/// time, so that classic mode's path carries no check for it (one cost its zero-fill
/// fault 3% on PVM).
#[inline(never)]
pub fn resolve_at_cpl3(
    mem: &mut Memory,
    addr: u64,
    rsp: u64,
    access: Access,
    in_syscall: bool,
) -> bool {
    resolve_as::<true>(mem, addr, rsp, access, in_syscall)
}

/// [`resolve`], mapping pages with nothing to fill natively if `NATIVE_MAP`.
#[inline(always)]
fn resolve_as<const NATIVE_MAP: bool>(
    mem: &mut Memory,
    addr: u64,
    rsp: u64,
    access: Access,
    in_syscall: bool,
) -> bool {
    let start = stats::fault_start();
    let resolved = match access {
        Access::Missing => claim::<NATIVE_MAP>(mem, addr, rsp),
        Access::Write => cow::break_cow(mem, addr),
        Access::Denied => None,
    };
    let outcome = match resolved {
        Some(outcome) => outcome,
        None if mem.out_of_memory => FaultOutcome::OutOfMemory,
        None => FaultOutcome::Killed,
    };
    stats::fault_end(start, outcome, in_syscall, mem.pid, addr);
    resolved.is_some()
}

/// Brings in the page at `addr` if the process owns it and no frame backs it now: a
/// program page (the executable's bytes, read straight into the frame, zeros elsewhere,
/// not cleared again if the frame is known to be zero), a page in swap (read straight into
/// the frame) or a page of a file mapping (the mapped file's bytes). A page the process
/// does not own may be stack growth, judged against the user stack pointer `rsp`
/// ([`grow_stack`]). Returns how it did, or `None` if it did not; if memory ran out, the
/// process is marked so.
#[inline(always)]
fn claim<const NATIVE_MAP: bool>(mem: &mut Memory, addr: u64, rsp: u64) -> Option<FaultOutcome> {
    let page = addr & !(PAGE_SIZE - 1);
    let Some(state) = mem.spt.get_mut(page) else {
        return grow_stack::<NATIVE_MAP>(mem, addr, rsp).then_some(FaultOutcome::StackGrowth);
    };
    // Each case copies out only the fields it needs (where ring 0 is emulated, every memory
    // access costs): the entry is not used after this, as eviction may change it.
    let oom = &mut mem.out_of_memory;
    let (frame, outcome) = match *state {
        Page::Uninit {
            writable,
            ranges: [None, None],
        }
        | Page::Anon {
            writable,
            slot: None,
        } => (
            map_zeroed::<NATIVE_MAP>(&mut mem.space, oom, page, writable),
            FaultOutcome::ZeroFill,
        ),
        // At least one range: the case above took the pages with none.
        Page::Uninit { writable, ranges } => {
            let exe = mem.exe.as_ref()?;
            let frame =
                fill_and_map::<NATIVE_MAP>(&mut mem.space, oom, page, writable, exe, &ranges);
            (frame, FaultOutcome::ElfLoad)
        }
        Page::Mapped { writable, range } => {
            let m = mmap::find(&mem.mappings, page)?;
            let frame = fill_and_map::<NATIVE_MAP>(
                &mut mem.space,
                oom,
                page,
                writable,
                &m.file,
                &[Some(range)],
            );
            (frame, FaultOutcome::MmapLoad)
        }
        Page::Anon {
            writable,
            slot: Some(slot),
        } => {
            // The page leaves its slot now, in the one lookup: the entry is not touched
            // again (see `swap_in`). Only the slot changes (one store, not the whole
            // entry).
            if let Page::Anon { slot, .. } = state {
                *slot = None;
            }
            (
                swap_in::<NATIVE_MAP>(&mut mem.space, oom, page, writable, slot),
                FaultOutcome::SwapIn,
            )
        }
    };
    frame_table::register(frame?, mem, page);
    // Here, where `mem`, `page` and `outcome` are at hand anyway: off (the default), this
    // is one load and branch (checked after the outcome in `resolve`, it cost classic
    // mode's zero-fill fault 5% on PVM in register spills).
    if AROUND.load(Ordering::Relaxed) != 0 {
        map_around::<NATIVE_MAP>(mem, page, outcome);
    }
    Some(outcome)
}

/// Fault-around: brings in up to `AROUND` pages after `page`, in order, each as a fault
/// would, as long as it is a page of the process waiting for its first load (zero-fill,
/// the executable's or a mapped file's: not one in swap or mapped already) and a frame is
/// free: it never evicts, so it never costs the process a page it has. Counts them as
/// `pages_mapped_around`, not as faults.
/// Only after a fault that brought a page in from nothing or from a file (`outcome`).
#[cold]
#[inline(never)]
fn map_around<const NATIVE_MAP: bool>(mem: &mut Memory, page: u64, outcome: FaultOutcome) {
    if !matches!(
        outcome,
        FaultOutcome::ZeroFill | FaultOutcome::ElfLoad | FaultOutcome::MmapLoad
    ) {
        return;
    }
    let count = u64::from(AROUND.load(Ordering::Relaxed));
    for next in (1..=count).map(|i| page + i * PAGE_SIZE) {
        if next >= KERN_BASE || mem.space.translate(next).is_some() {
            return;
        }
        let Some(state) = mem.spt.get_mut(next) else {
            return;
        };
        let frame = match *state {
            Page::Uninit {
                writable,
                ranges: [None, None],
            }
            | Page::Anon {
                writable,
                slot: None,
            } => {
                let Some((f, is_zero)) = frame::alloc_as_is(Pool::User, Zero::Yes) else {
                    return;
                };
                let fill = if is_zero { Fill::Nothing } else { Fill::Zeros };
                map_or_free::<NATIVE_MAP>(&mut mem.space, None, next, f, writable, fill)
            }
            Page::Uninit { writable, ranges } => {
                let Some(exe) = mem.exe.as_ref() else {
                    return;
                };
                let Some(f) = frame::alloc(Pool::User, zero_for(&ranges)) else {
                    return;
                };
                fill_frame_and_map::<NATIVE_MAP>(
                    &mut mem.space,
                    None,
                    f,
                    next,
                    writable,
                    exe,
                    &ranges,
                )
            }
            Page::Mapped { writable, range } => {
                let Some(m) = mmap::find(&mem.mappings, next) else {
                    return;
                };
                let ranges = [Some(range)];
                let Some(f) = frame::alloc(Pool::User, zero_for(&ranges)) else {
                    return;
                };
                fill_frame_and_map::<NATIVE_MAP>(
                    &mut mem.space,
                    None,
                    f,
                    next,
                    writable,
                    &m.file,
                    &ranges,
                )
            }
            Page::Anon { slot: Some(_), .. } => return,
        };
        let Some(f) = frame else {
            return;
        };
        frame_table::register(f, mem, next);
        stats::bump(&stats::page().pages_mapped_around);
    }
}

/// Maps a zeroed frame at `page` (a zero-fill fault); returns it. A frame that is not zero
/// yet is cleared by the VMM in the exit that maps it.
#[inline(always)]
fn map_zeroed<const NATIVE_MAP: bool>(
    space: &mut AddressSpace,
    oom: &mut bool,
    page: u64,
    writable: bool,
) -> Option<Frame> {
    // Only kernel code at CPL 3 (the fast mode) defers an eviction to the fill: where an
    // exit costs ~46 us from CPL 3 it saves one, but from ring 0 (~9 us) it saved less than
    // the emulated instructions of the deferral cost (evict_fault 1.19x, classic mode).
    let (f, is_zero) = if NATIVE_MAP {
        let (f, is_zero, deferred) = fault_frame(oom, frame_table::alloc_for_fill(Zero::Yes))?;
        if let Some(d) = deferred {
            return evict_and_fill::<NATIVE_MAP>(space, oom, page, writable, f, d, Fill::Zeros);
        }
        (f, is_zero)
    } else {
        fault_frame(oom, frame_table::alloc_as_is(Zero::Yes))?
    };
    let fill = if is_zero { Fill::Nothing } else { Fill::Zeros };
    map_or_free::<NATIVE_MAP>(space, Some(oom), page, f, writable, fill)
}

/// For a fault whose frame `f` comes from an eviction [`Deferred`](frame_table::Deferred)
/// to this fault's page operation: the evicted page goes to swap and `f` is filled as
/// `fill` says and mapped at `page`, in one exit. If nothing was written out (swap full, or
/// the VMM refused), the fault takes a frame the plain way (which evicts on its own or
/// finds memory full).
#[inline(never)]
fn evict_and_fill<const NATIVE_MAP: bool>(
    space: &mut AddressSpace,
    oom: &mut bool,
    page: u64,
    writable: bool,
    f: Frame,
    deferred: frame_table::Deferred,
    fill: Fill,
) -> Option<Frame> {
    match space.evict_fill_and_map(page, f, PageFlags { writable }, fill) {
        Ok(slot) => {
            frame_table::finish_eviction(f, deferred, slot);
            Some(f)
        }
        Err(EvictFill::NotFilled(slot)) => {
            frame_table::finish_eviction(f, deferred, slot);
            frame::free(f);
            None
        }
        Err(EvictFill::NoTable(slot)) => {
            frame_table::finish_eviction(f, deferred, slot);
            map_with_user_tables(space, oom, page, f, writable)
        }
        Err(EvictFill::NotWrittenOut) => {
            let zero = if fill == Fill::Zeros {
                Zero::Yes
            } else {
                Zero::No
            };
            let Some((f, is_zero)) = fault_frame(oom, frame_table::alloc_as_is(zero)) else {
                // As in `swap_in`: the page no longer holds its slot.
                if let Fill::SwapSlot(slot) = fill {
                    swap::release_slot(slot);
                }
                return None;
            };
            let fill = if is_zero && fill == Fill::Zeros {
                Fill::Nothing
            } else {
                fill
            };
            map_or_free::<NATIVE_MAP>(space, Some(oom), page, f, writable, fill)
        }
    }
}

/// Has the VMM fill the fault's frame `f` as `fill` says and map it at `page`; returns the
/// frame, or frees it if the fill failed or the page cannot be mapped.
#[inline(always)]
fn map_or_free<const NATIVE_MAP: bool>(
    space: &mut AddressSpace,
    oom: Option<&mut bool>,
    page: u64,
    f: Frame,
    writable: bool,
    fill: Fill,
) -> Option<Frame> {
    let flags = PageFlags { writable };
    let mapped = match fill {
        Fill::Nothing if NATIVE_MAP => space.map(page, f, flags),
        fill => space.fill_and_map(page, f, flags, fill),
    };
    match mapped {
        Ok(()) => Some(f),
        // Filled (a missing table is found after the fill), not mapped. Fault-around
        // (`oom` None) never evicts, so it takes no table from the user pool either.
        Err(MapError::OutOfMemory) if let Some(oom) = oom => {
            map_with_user_tables(space, oom, page, f, writable)
        }
        Err(_) => {
            frame::free(f);
            None
        }
    }
}

/// Maps frame `f`, filled already, at `page` after mapping it failed for want of a
/// page-table page (the kernel pool was empty: the kernel heap may hold its frames): each
/// missing table comes from the user pool instead, evicting a page if it must, as the
/// fault's own frame did. Without one the process is out of memory. Returns the frame, or
/// frees it.
#[cold]
#[inline(never)]
fn map_with_user_tables(
    space: &mut AddressSpace,
    oom: &mut bool,
    page: u64,
    f: Frame,
    writable: bool,
) -> Option<Frame> {
    // A PT, a PD and a PDPT at most.
    for _ in 0..3 {
        let Some(table) = fault_frame(oom, frame_table::alloc(Zero::Yes)) else {
            break;
        };
        space.give_table_frame(table);
        match space.map(page, f, PageFlags { writable }) {
            Ok(()) => return Some(f),
            Err(MapError::OutOfMemory) => {}
            Err(_) => break,
        }
    }
    frame::free(f);
    None
}

/// Passes on `taken`, a page fault's user frame from the frame table (which evicts if
/// needed), marking the process out of memory if there is none.
#[inline(always)]
fn fault_frame<T>(oom: &mut bool, taken: Option<T>) -> Option<T> {
    *oom |= taken.is_none();
    taken
}

/// Maps at `page` a frame holding `ranges` of `file` and zeros elsewhere; returns it.
#[inline(always)]
fn fill_and_map<const NATIVE_MAP: bool>(
    space: &mut AddressSpace,
    oom: &mut bool,
    page: u64,
    writable: bool,
    file: &fs::File,
    ranges: &[Option<FileRange>],
) -> Option<Frame> {
    let f = fault_frame(oom, frame_table::alloc(zero_for(ranges)))?;
    fill_frame_and_map::<NATIVE_MAP>(space, Some(oom), f, page, writable, file, ranges)
}

/// Whether a frame for a page holding `ranges` of a file must read as zero first (unless
/// they cover it all).
#[inline(always)]
fn zero_for(ranges: &[Option<FileRange>]) -> Zero {
    let covered: u64 = ranges.iter().flatten().map(|r| u64::from(r.len)).sum();
    if covered == PAGE_SIZE {
        Zero::No
    } else {
        Zero::Yes
    }
}

/// Reads `ranges` of `file` into frame `f` (zeros elsewhere already) and maps it at
/// `page`; returns it, or frees it if a read fell short or the page cannot be mapped.
#[inline(always)]
fn fill_frame_and_map<const NATIVE_MAP: bool>(
    space: &mut AddressSpace,
    oom: Option<&mut bool>,
    f: Frame,
    page: u64,
    writable: bool,
    file: &fs::File,
    ranges: &[Option<FileRange>],
) -> Option<Frame> {
    for range in ranges.iter().flatten() {
        let at = usize::from(range.page_offset);
        // SAFETY: the frame is ours until mapped; the range lies inside the page (checked
        // when it was registered).
        let into =
            unsafe { core::slice::from_raw_parts_mut(f.as_ptr().add(at), usize::from(range.len)) };
        if file.read_at(into, range.file_offset) != into.len() {
            frame::free(f);
            return None;
        }
    }
    map_or_free::<NATIVE_MAP>(space, oom, page, f, writable, Fill::Nothing)
}

/// Maps at `page` a frame with the anonymous page's contents, read from swap `slot` (by
/// the VMM, in the exit that maps it: see `vm::swap`); the page lets go of the slot, which
/// its entry no longer names. Also on failure: the process dies then, and its exit frees
/// only the slots its entries name.
#[inline(always)]
fn swap_in<const NATIVE_MAP: bool>(
    space: &mut AddressSpace,
    oom: &mut bool,
    page: u64,
    writable: bool,
    slot: u32,
) -> Option<Frame> {
    // As in `map_zeroed`: the deferred eviction only at CPL 3.
    let taken = if NATIVE_MAP {
        match fault_frame(oom, frame_table::alloc_for_fill(Zero::No)) {
            Some((f, _, Some(d))) => {
                let fill = Fill::SwapSlot(slot);
                return evict_and_fill::<NATIVE_MAP>(space, oom, page, writable, f, d, fill);
            }
            taken => taken.map(|(f, _, _)| f),
        }
    } else {
        fault_frame(oom, frame_table::alloc(Zero::No))
    };
    let Some(f) = taken else {
        swap::release_slot(slot);
        return None;
    };
    map_or_free::<NATIVE_MAP>(space, Some(oom), page, f, writable, Fill::SwapSlot(slot))
}

/// Settles the zero-fill faults the fast mode's shim resolved since the kernel last ran
/// (`arch::x86_64::fast`): each page it mapped is listed in `mem`'s page table and its
/// frame entered in the frame table, and the faults are counted; then the stash is topped
/// up with zeroed free frames ([`refill_stash`]), which stay free frames meanwhile. Call on
/// every entry from the user `mem` belongs to, before anything looks at its pages (the
/// SPT needs nothing: a zero-fill page keeps its entry when it loads).
#[inline]
pub fn settle_shim_faults(mem: &mut Memory) {
    let owner: *mut Memory = mem;
    let pid = mem.pid;
    let space = &mut mem.space;
    let taken = fast::drain_shim_faults(|page, gpa| {
        crate::trace::shim_fault(pid, page);
        space.note_mapped(page);
        frame_table::register(Frame::from_gpa(gpa), owner, page);
    });
    if taken != 0 {
        frame::stashed_used(taken);
        stats::shim_zero_fills(taken);
    }
    if fast::stash_len() < fast::STASH_SIZE / 2 && shim_zero_fill() {
        refill_stash();
    }
}

/// Whether the shim resolves zero-fill faults: in the fast mode, unless fault-around is on
/// (its pages come in with the faulting one, which only the kernel does).
#[inline]
pub fn shim_zero_fill() -> bool {
    fast::is_on() && AROUND.load(Ordering::Relaxed) == 0
}

/// Tops the shim's stash up with free user frames, if there are any: never-used ones
/// first (zero already), then used ones, which the VMM clears in one exit for all.
#[cold]
fn refill_stash() {
    let mut frames = [Frame::from_gpa(0); fast::STASH_SIZE];
    let want = fast::STASH_SIZE - fast::stash_len();
    let (fresh, mut n) = frame::take_for_stash(&mut frames[..want]);
    if n > fresh && !frame::zero_frames(&frames[fresh..n]) {
        frame::untake_for_stash(&frames[fresh..n]);
        n = fresh;
    }
    let mut entries = [0; fast::STASH_SIZE];
    for (e, &f) in entries.iter_mut().zip(&frames[..n]) {
        *e = page_table::zero_fill_entry(f);
    }
    fast::stash_add(&entries[..n]);
}

/// A frame from the shim's stash, for a fault that found the pool empty: stashed frames
/// are free frames, so none is evicted while one is left.
#[inline]
pub fn take_stashed_frame() -> Option<Frame> {
    let gpa = fast::stash_take()?;
    frame::stashed_used(1);
    Some(Frame::from_gpa(gpa))
}

/// Grows the stack to cover `addr`, a page the process does not own (`claim` looked it up),
/// if the access is a valid stack growth (guest-abi.md §7): inside the 1 MiB below
/// `USER_STACK`, and at or above `rsp - 8`. Maps a zeroed page, registered as anonymous
/// (room for it was made at exec); returns whether it did (false: not stack growth, or no
/// memory, which marks the process).
fn grow_stack<const NATIVE_MAP: bool>(mem: &mut Memory, addr: u64, rsp: u64) -> bool {
    if !(STACK_LIMIT..USER_STACK).contains(&addr) || addr < rsp.saturating_sub(8) {
        return false;
    }
    let page = addr & !(PAGE_SIZE - 1);
    let Some(f) = map_zeroed::<NATIVE_MAP>(&mut mem.space, &mut mem.out_of_memory, page, true)
    else {
        return false;
    };
    mem.spt.add_anon(page, true);
    frame_table::register(f, mem, page);
    true
}
