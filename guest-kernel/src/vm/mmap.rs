//! File mappings (guest-abi.md §6): `mmap` and `munmap`.
//!
//! A mapping is lazy: `mmap` registers its pages in the supplemental page table, and the
//! first touch of a page loads it ([`super::fault`]): a user frame with the file's
//! bytes read straight into it and zeros past the file's end. A mapping keeps its own
//! handle on the file, so it survives `close` and `remove`. Dirty pages are written back
//! (only the part inside the file) on `munmap`, at exit and at exec; clean pages and pages
//! never touched are not written, so a later `write()` to the file survives.

use alloc::collections::BTreeMap;

use abi::layout::{KERN_BASE, PAGE_SIZE};

use super::spt::{FileRange, Spt};
use super::{Memory, STACK_LIMIT, USER_STACK, frame_table};
use crate::arch::x86_64::user::TRAMPOLINE_VA;
use crate::fs::File;
use crate::mm::page_table::AddressSpace;

/// One mapping.
pub struct Mapping {
    /// First page.
    pub addr: u64,
    /// Pages mapped.
    pub pages: u64,
    /// The file's bytes at `offset` are at `addr`.
    pub file: File,
    pub offset: u64,
}

impl Mapping {
    /// The same mapping with its own handle on the file (fork).
    pub fn duplicate(&self) -> Self {
        Mapping {
            addr: self.addr,
            pages: self.pages,
            file: self.file.duplicate(),
            offset: self.offset,
        }
    }

    /// Whether page `va` lies inside this mapping.
    pub fn contains(&self, va: u64) -> bool {
        va >= self.addr && (va - self.addr) / PAGE_SIZE < self.pages
    }
}

/// Whether `[addr, addr + len)` may hold a new mapping: user space, clear of the stack
/// region, the trampoline, every mapped page and every program page not loaded yet.
fn range_free(space: &mut AddressSpace, spt: &Spt, addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    let end = end.next_multiple_of(PAGE_SIZE);
    if end > KERN_BASE
        || (addr < USER_STACK && end > STACK_LIMIT)
        || (addr <= TRAMPOLINE_VA && end > TRAMPOLINE_VA)
    {
        return false;
    }
    (addr..end)
        .step_by(PAGE_SIZE as usize)
        .all(|page| space.translate(page).is_none() && !spt.contains(page))
}

/// `mmap(addr, len, writable, fd, offset)` of `file`, the descriptor's file (`None` if
/// `fd` is not an open file other than the console's): the address, or 0 (NULL) on any
/// failure.
pub fn map(
    mem: &mut Memory,
    addr: u64,
    len: u64,
    writable: bool,
    file: Option<File>,
    offset: u64,
) -> u64 {
    if addr == 0 || !addr.is_multiple_of(PAGE_SIZE) || len == 0 || !offset.is_multiple_of(PAGE_SIZE)
    {
        return 0;
    }
    let Some(file) = file else {
        return 0;
    };
    let file_len = file.length();
    let pages = len.div_ceil(PAGE_SIZE);
    // The budget first: it bounds the page-by-page range check.
    if file_len == 0
        || !mem.spt.make_room(pages, super::page_budget())
        || !range_free(&mut mem.space, &mem.spt, addr, len)
    {
        return 0;
    }
    for i in 0..pages {
        let at = offset + i * PAGE_SIZE;
        let range = FileRange {
            page_offset: 0,
            len: file_len.saturating_sub(at).min(PAGE_SIZE) as u16,
            file_offset: at,
        };
        mem.spt.add_mapped(addr + i * PAGE_SIZE, writable, range);
    }
    if !mem.reserve_mappings() {
        for i in 0..pages {
            mem.spt.remove(addr + i * PAGE_SIZE);
        }
        return 0;
    }
    mem.mappings.insert(
        addr,
        Mapping {
            addr,
            pages,
            file,
            offset,
        },
    );
    addr
}

/// The mapping that holds page `va`, if any (a lookup, not a scan: the fault path uses it).
pub fn find(mappings: &BTreeMap<u64, Mapping>, va: u64) -> Option<&Mapping> {
    mappings
        .range(..=va)
        .next_back()
        .map(|(_, m)| m)
        .filter(|m| m.contains(va))
}

/// `munmap(addr)`: removes the mapping that starts at `addr`, writing dirty pages back.
/// Any other address is ignored.
pub fn unmap(mem: &mut Memory, addr: u64) {
    if let Some(mapping) = mem.mappings.remove(&addr) {
        let owner: *mut Memory = mem;
        release(owner, &mut mem.space, &mut mem.spt, mapping);
    }
}

/// Removes every mapping, writing dirty pages back (exit, exec).
pub fn unmap_all(mem: &mut Memory) {
    let owner: *mut Memory = mem;
    for (_, mapping) in core::mem::take(&mut mem.mappings) {
        release(owner, &mut mem.space, &mut mem.spt, mapping);
    }
}

/// Writes a mapping's dirty pages back (the part inside the file), releases its frames
/// (held by `owner`; a frame shared with a forked child stays the child's) and forgets its
/// pages. Pages evicted earlier were written back then.
fn release(owner: *mut Memory, space: &mut AddressSpace, spt: &mut Spt, mapping: Mapping) {
    let file_len = mapping.file.length();
    let start = mapping.addr;
    space.unmap_range(
        start..start + mapping.pages * PAGE_SIZE,
        |space, va| {
            spt.remove(va);
            space
                .take_accessed_dirty(va)
                .is_some_and(|(_, dirty)| dirty)
        },
        |va, f, dirty| {
            let at = mapping.offset + (va - start);
            if dirty && at < file_len {
                let n = (file_len - at).min(PAGE_SIZE) as usize;
                // SAFETY: the frame was unmapped just before this call and is ours until
                // freed below.
                let bytes = unsafe { core::slice::from_raw_parts(f.as_ptr(), n) };
                mapping.file.write_at(bytes, at);
            }
            frame_table::release(f, owner);
        },
    );
}
