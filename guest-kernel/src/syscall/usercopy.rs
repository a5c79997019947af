//! The one place the kernel touches user memory. Every pointer, buffer and string a
//! system call receives is checked here, page by page, against the process's page
//! tables: the whole range must be user space, mapped (or a valid stack growth), and
//! writable if the kernel writes it. The bytes are then reached through the direct map of
//! the backing frames, so a check that passed cannot fault. A failed check is a [`Fault`]:
//! the process dies with -1.

use alloc::vec::Vec;

use abi::layout::{KERN_BASE, PAGE_SIZE};

use crate::mm::frame::Frame;
use crate::mm::page_table::AddressSpace;
use crate::proc::Process;
use crate::vm::{self, Access, frame_table};

/// A bad user pointer: the caller kills the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault;

/// Longest string a system call accepts (a command line may be one page).
pub const MAX_STRING: usize = PAGE_SIZE as usize;

/// User memory as slices of the frames behind it, in order. The frames are pinned (not
/// evicted) until this is dropped, so the slices stay the process's pages even if bringing
/// in a later page of the range, or anything the system call does meanwhile, needs a frame.
pub struct UserSlices {
    chunks: Vec<&'static mut [u8]>,
}

impl core::ops::Deref for UserSlices {
    type Target = Vec<&'static mut [u8]>;
    fn deref(&self) -> &Self::Target {
        &self.chunks
    }
}

impl core::ops::DerefMut for UserSlices {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.chunks
    }
}

impl Drop for UserSlices {
    fn drop(&mut self) {
        for chunk in &self.chunks {
            frame_table::unpin(frame_of(chunk));
        }
    }
}

/// The frame a slice of the direct map lies in.
fn frame_of(chunk: &[u8]) -> Frame {
    Frame::from_gpa((chunk.as_ptr() as u64 - KERN_BASE) & !(PAGE_SIZE - 1))
}

/// The user memory `[va, va + len)` as slices of the frames behind it, in order, after
/// checking all of it. `write` requires writable pages (and marks them dirty: the kernel's
/// stores through the direct map do not). A page below the mapped stack is grown if the
/// stack pointer the system call was made with allows it (guest-abi.md §7).
pub fn slices(
    process: &mut Process,
    va: u64,
    len: usize,
    write: bool,
) -> Result<UserSlices, Fault> {
    let end = va.checked_add(len as u64).ok_or(Fault)?;
    if end > KERN_BASE {
        return Err(Fault);
    }
    let rsp = process.syscall_rsp;
    let mut out = UserSlices { chunks: Vec::new() };
    let mut at = va;
    while at < end {
        let chunk_end = end.min((at & !(PAGE_SIZE - 1)) + PAGE_SIZE);
        out.chunks.push(pinned_chunk(
            process,
            at,
            (chunk_end - at) as usize,
            write,
            rsp,
        )?);
        at = chunk_end;
    }
    Ok(out)
}

/// User memory `[va, va + len)` within one page, as one slice of the frame behind it,
/// checked and pinned as [`slices`] does: for the common small buffer, without the heap
/// (a one-byte `read()` from the block cache spent a fifth of its time on a `Vec` where
/// ring 0 is emulated). `None` if the range crosses a page boundary.
pub fn in_one_page(
    process: &mut Process,
    va: u64,
    len: usize,
    write: bool,
) -> Result<Option<PinnedChunk>, Fault> {
    let end = va.checked_add(len as u64).ok_or(Fault)?;
    if len == 0 || (end - 1) & !(PAGE_SIZE - 1) != va & !(PAGE_SIZE - 1) {
        return Ok(None);
    }
    if end > KERN_BASE {
        return Err(Fault);
    }
    let rsp = process.syscall_rsp;
    pinned_chunk(process, va, len, write, rsp).map(|chunk| Some(PinnedChunk(chunk)))
}

/// One chunk of user memory inside one page, pinned; unpinned when dropped.
pub struct PinnedChunk(&'static mut [u8]);

impl core::ops::Deref for PinnedChunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0
    }
}

impl core::ops::DerefMut for PinnedChunk {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0
    }
}

impl Drop for PinnedChunk {
    fn drop(&mut self) {
        frame_table::unpin(frame_of(self.0));
    }
}

/// `[at, at + n)`, inside one user page below `KERN_BASE`, as a slice of its frame after
/// the checks of [`slices`]; the frame is pinned (the caller unpins it).
fn pinned_chunk(
    process: &mut Process,
    at: u64,
    n: usize,
    write: bool,
    rsp: u64,
) -> Result<&'static mut [u8], Fault> {
    let page = at & !(PAGE_SIZE - 1);
    // A page the kernel writes is marked dirty in the walk that finds it.
    let translate = |space: &mut AddressSpace| {
        if write {
            space.translate_for_write(page)
        } else {
            space.translate(page)
        }
    };
    let mapping = match translate(&mut process.mem.space) {
        Some(mapping) => mapping,
        // Not loaded yet (a program page), or a valid stack growth: bring it in.
        None if vm::fault::resolve(&mut process.mem, at, rsp, Access::Missing, true) => {
            translate(&mut process.mem.space).ok_or(Fault)?
        }
        None => return Err(Fault),
    };
    let mapping = if write && !mapping.writable {
        // Copy-on-write pages get their own frame first (as a write fault would).
        if !(mapping.cow && vm::fault::resolve(&mut process.mem, page, rsp, Access::Write, true)) {
            return Err(Fault);
        }
        translate(&mut process.mem.space)
            .filter(|m| m.writable)
            .ok_or(Fault)?
    } else {
        mapping
    };
    frame_table::pin(mapping.frame);
    // SAFETY: the frame backs a user page of this process (checked above), the direct map
    // covers it, and the slice stays inside it. The process's thread is the one running
    // this system call, so its user code is not running concurrently; the pin keeps the
    // frame this page's until the caller unpins it.
    Ok(unsafe {
        core::slice::from_raw_parts_mut(mapping.frame.as_ptr().add((at - page) as usize), n)
    })
}

/// Reads a NUL-terminated string at `va`: `Ok(None)` if no NUL comes within
/// [`MAX_STRING`] bytes (each of which must be valid), the bytes without the NUL otherwise.
pub fn string(process: &mut Process, va: u64) -> Result<Option<Vec<u8>>, Fault> {
    let mut out = Vec::new();
    let mut at = va;
    while out.len() < MAX_STRING {
        let page_end = (at & !(PAGE_SIZE - 1)) + PAGE_SIZE;
        let n = ((page_end - at) as usize).min(MAX_STRING - out.len());
        let slices = slices(process, at, n, false)?;
        let chunk = slices.first().ok_or(Fault)?;
        if let Some(nul) = chunk.iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..nul]);
            return Ok(Some(out));
        }
        out.extend_from_slice(chunk);
        at += n as u64;
    }
    Ok(None)
}
