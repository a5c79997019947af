//! File mappings (guest-abi.md §6): `mmap` and `munmap`.
//!
//! For now a mapping is loaded when it is made (the virtual-memory work will make it lazy):
//! each page gets a zeroed user frame with the file's bytes read straight into it. A
//! mapping keeps its own handle on the file, so it survives `close` and `remove`. Dirty
//! pages are written back (only the part inside the file) on `munmap`, at exit and at exec;
//! clean pages are not written, so a later `write()` to the file survives.

use alloc::vec::Vec;

use abi::layout::{KERN_BASE, PAGE_SIZE};

use super::{Process, STACK_LIMIT, load};
use crate::arch::x86_64::user::TRAMPOLINE_VA;
use crate::fs::File;
use crate::mm::frame::{self, Pool, Zero};
use crate::mm::page_table::{AddressSpace, PageFlags};
use crate::mm::spt::Spt;
use crate::proc::fd::Fd;

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
        || (addr < load::USER_STACK && end > STACK_LIMIT)
        || (addr <= TRAMPOLINE_VA && end > TRAMPOLINE_VA)
    {
        return false;
    }
    (addr..end)
        .step_by(PAGE_SIZE as usize)
        .all(|page| space.translate(page).is_none() && !spt.contains(page))
}

/// `mmap(addr, len, writable, fd, offset)`: the address, or 0 (NULL) on any failure.
pub fn map(
    process: &mut Process,
    addr: u64,
    len: u64,
    writable: bool,
    fd: i64,
    offset: u64,
) -> u64 {
    if addr == 0
        || !addr.is_multiple_of(PAGE_SIZE)
        || len == 0
        || !offset.is_multiple_of(PAGE_SIZE)
        || fd < 2
    {
        return 0;
    }
    let file = match process.fds.get(fd) {
        Some(Fd::File(f)) => f.lock().duplicate(),
        _ => return 0,
    };
    let file_len = file.length();
    if file_len == 0 || !range_free(&mut process.space, &process.spt, addr, len) {
        return 0;
    }
    let pages = len.div_ceil(PAGE_SIZE);
    for i in 0..pages {
        let va = addr + i * PAGE_SIZE;
        let Some(f) = frame::alloc(Pool::User, Zero::Yes) else {
            undo(&mut process.space, addr, i);
            return 0;
        };
        let at = offset + i * PAGE_SIZE;
        if at < file_len {
            let n = (file_len - at).min(PAGE_SIZE) as usize;
            // SAFETY: the frame was just allocated and is ours; the direct map covers it.
            let bytes = unsafe { core::slice::from_raw_parts_mut(f.as_ptr(), n) };
            file.read_at(bytes, at);
        }
        if process.space.map(va, f, PageFlags { writable }).is_err() {
            frame::free(f);
            undo(&mut process.space, addr, i);
            return 0;
        }
        // Loading set no dirty bit: only the program's own stores will.
        process.space.take_accessed_dirty(va);
    }
    process.mappings.push(Mapping {
        addr,
        pages,
        file,
        offset,
    });
    addr
}

fn undo(space: &mut AddressSpace, addr: u64, pages: u64) {
    for i in 0..pages {
        if let Some(f) = space.unmap(addr + i * PAGE_SIZE) {
            frame::free(f);
        }
    }
}

/// `munmap(addr)`: removes the mapping that starts at `addr`, writing dirty pages back.
/// Any other address is ignored.
pub fn unmap(process: &mut Process, addr: u64) {
    if let Some(at) = process.mappings.iter().position(|m| m.addr == addr) {
        let mapping = process.mappings.swap_remove(at);
        release(&mut process.space, mapping);
    }
}

/// Removes every mapping, writing dirty pages back (exit, exec).
pub fn unmap_all(process: &mut Process) {
    let mappings: Vec<Mapping> = core::mem::take(&mut process.mappings);
    for mapping in mappings {
        release(&mut process.space, mapping);
    }
}

/// Writes a mapping's dirty pages back (the part inside the file) and frees its frames.
fn release(space: &mut AddressSpace, mapping: Mapping) {
    let file_len = mapping.file.length();
    for i in 0..mapping.pages {
        let va = mapping.addr + i * PAGE_SIZE;
        let dirty = space
            .take_accessed_dirty(va)
            .is_some_and(|(_, dirty)| dirty);
        let Some(f) = space.unmap(va) else {
            continue;
        };
        let at = mapping.offset + i * PAGE_SIZE;
        if dirty && at < file_len {
            let n = (file_len - at).min(PAGE_SIZE) as usize;
            // SAFETY: the frame was unmapped just above and is ours until freed below.
            let bytes = unsafe { core::slice::from_raw_parts(f.as_ptr(), n) };
            mapping.file.write_at(bytes, at);
        }
        frame::free(f);
    }
}
