//! The one place the kernel touches user memory. Every pointer, buffer and string a
//! system call receives is checked here, page by page, against the process's page
//! tables: the whole range must be user space, mapped (or a valid stack growth), and
//! writable if the kernel writes it. The bytes are then reached through the direct map of
//! the backing frames, so a check that passed cannot fault. A failed check is a [`Fault`]:
//! the process dies with -1.

use alloc::vec::Vec;

use abi::layout::{KERN_BASE, PAGE_SIZE};

use crate::mm::frame::Frame;
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
        let page = at & !(PAGE_SIZE - 1);
        let mapping = match process.mem.space.translate(page) {
            Some(mapping) => mapping,
            // Not loaded yet (a program page), or a valid stack growth: bring it in.
            None if vm::fault::resolve(&mut process.mem, at, rsp, Access::Missing, true) => {
                process.mem.space.translate(page).ok_or(Fault)?
            }
            None => return Err(Fault),
        };
        let mapping = if write && !mapping.writable {
            // Copy-on-write pages get their own frame first (as a write fault would).
            if !(mapping.cow
                && vm::fault::resolve(&mut process.mem, page, rsp, Access::Write, true))
            {
                return Err(Fault);
            }
            process.mem.space.translate(page).ok_or(Fault)?
        } else {
            mapping
        };
        if write {
            process.mem.space.mark_dirty(page);
        }
        let chunk_end = end.min(page + PAGE_SIZE);
        let offset = (at - page) as usize;
        let n = (chunk_end - at) as usize;
        frame_table::pin(mapping.frame);
        // SAFETY: the frame backs a user page of this process (checked above), the direct
        // map covers it, and the slice stays inside it. The process's thread is the one
        // running this system call, so its user code is not running concurrently; the pin
        // keeps the frame this page's until the slices are dropped.
        out.chunks.push(unsafe {
            core::slice::from_raw_parts_mut(mapping.frame.as_ptr().add(offset), n)
        });
        at = chunk_end;
    }
    Ok(out)
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
