//! Copy-on-write: fork shares every user frame between parent and child ([`share_pages`]),
//! and the first write of either side to a shared page gets it a private copy
//! ([`break_cow`]).
//!
//! A shared page is read-only in both page tables, with the page table's copy-on-write bit
//! set; the frame table lists both processes as the frame's owners, so that eviction takes
//! the page out of both and the last owner to let go frees the frame.

use alloc::vec::Vec;

use abi::layout::PAGE_SIZE;

use super::{Memory, frame_table};
use crate::arch::x86_64::user::TRAMPOLINE_VA;
use crate::mm::frame::{self, Zero};
use crate::mm::page_table::PageFlags;
use crate::stats::FaultOutcome;

/// Gives `child` (a fresh copy's memory) the user pages of `parent`: each frame is shared
/// copy-on-write: the child maps the same frame, both sides lose write access, and the
/// first write of either gets a private copy ([`break_cow`]). Read-only pages are shared
/// for good. A dirty page stays dirty for the child too (so that eviction does not take it
/// for the executable's bytes once the parent has a copy of its own). No frame is
/// allocated, so nothing is evicted while the parent's pages are walked. On an error the
/// pages shared so far stay the child's, for its release.
pub fn share_pages(parent: &mut Memory, child: &mut Memory) -> Result<(), ()> {
    let owner: *mut Memory = child;
    let mut pages = Vec::new();
    parent
        .space
        .for_each_user_page(|va, mapping| pages.push((va, mapping)));
    for (va, mapping) in pages {
        if va == TRAMPOLINE_VA {
            continue;
        }
        if !frame_table::share(mapping.frame, owner) {
            return Err(());
        }
        if child
            .space
            .map(va, mapping.frame, PageFlags { writable: false })
            .is_err()
        {
            frame_table::release(mapping.frame, owner);
            return Err(());
        }
        if mapping.dirty {
            child.space.mark_dirty(va);
        }
        if mapping.writable || mapping.cow {
            parent.space.mark_cow(va);
            child.space.mark_cow(va);
        }
    }
    Ok(())
}

/// Handles a write to copy-on-write page `addr`: if another process still shares the
/// frame, the page gets a copy of its own; if not, the frame is simply made writable again.
/// Returns `None` if `addr` is not a copy-on-write page or no frame is free (then the
/// process is marked out of memory).
#[inline(always)]
pub fn break_cow(mem: &mut Memory, addr: u64) -> Option<FaultOutcome> {
    let page = addr & !(PAGE_SIZE - 1);
    let shared = mem.space.cow_frame(page)?;
    if !frame_table::is_shared(shared) {
        mem.space.resolve_cow(page, shared);
        return Some(FaultOutcome::CowReuse);
    }
    // Finding a frame may evict: not the one being copied.
    frame_table::pin(shared);
    let copy = frame_table::alloc(Zero::No);
    frame_table::unpin(shared);
    mem.out_of_memory |= copy.is_none();
    let copy = copy?;
    frame::copy_frame(shared, copy);
    mem.space.resolve_cow(page, copy);
    let owner: *mut Memory = mem;
    frame_table::release(shared, owner);
    frame_table::register(copy, owner, page);
    Some(FaultOutcome::CowCopy)
}
