//! The block cache of the file-system disk: files' bytes in a fixed pool of 4 KiB block
//! buffers, so that small reads and writes stop costing a disk request each (a VM exit and
//! the driver's path, hundreds of microseconds where ring 0 is emulated).
//!
//! - **What goes through it.** A part of a block (a small `read()` or `write()`, the
//!   edges of an unaligned span) goes through a buffer. Whole blocks that are not cached
//!   move straight between the disk and the caller's memory (a frame being filled for a
//!   fault, a large user buffer), one request per run of them, by DMA as before; a whole
//!   block that is cached is copied from its buffer (a read) or dropped from the cache (a
//!   write that replaces it on the disk). The metadata (superblock, free map, directory)
//!   is the file system's own and is written through.
//! - **Policy.** Clock (second chance) over the buffers, bounded to two turns of the hand.
//!   A block found by lookup: a hash of the block number into chains of buffers, so the
//!   cost does not grow with the disk or the cache.
//! - **Read-ahead.** A miss on a file's first block, or on the block after the one the
//!   last read touched, is a sequential read: the next block of the file comes in with it,
//!   in the same request, into the neighbouring buffer (the buffers are one contiguous
//!   run), if that buffer is free or clean and unreferenced.
//! - **Write-behind.** A partial write dirties the buffer; dirty blocks go to the disk when
//!   their file is closed (every handle's close, so also when a killed process's files
//!   close), at power-off ([`super::sync`]), and when the clock needs their buffer. A
//!   file's blocks are dropped, dirty or not, when the file's blocks are freed, so nothing
//!   stale is ever written over a newer file.
//! - Counters: `fs_cache_hits`, `fs_cache_misses`, `fs_cache_readaheads`,
//!   `fs_cache_writebacks` on the stats page.

use core::ops::Range;

use abi::fs::{BLOCK_SIZE, SECTORS_PER_BLOCK};

use crate::drivers::block::BlockDevice;
use crate::mm::frame::{self, Pool};
use crate::stats;

/// Buffers the cache has at most: 256 KiB.
pub const MAX_BLOCKS: usize = 64;
/// Hash buckets (a power of two; as many as buffers, so chains average one).
const BUCKETS: usize = 64;
/// End of a chain, or an empty bucket.
const NONE: u16 = u16::MAX;
const BS: usize = BLOCK_SIZE as usize;

#[derive(Clone, Copy)]
struct Slot {
    /// The disk block the buffer holds, if `valid`.
    block: u64,
    /// The next buffer in the same bucket's chain.
    next: u16,
    valid: bool,
    /// Newer than the disk.
    dirty: bool,
    /// Used since the hand last passed (the clock's second chance).
    referenced: bool,
}

const EMPTY: Slot = Slot {
    block: 0,
    next: NONE,
    valid: false,
    dirty: false,
    referenced: false,
};

/// Why a cached operation failed: a disk request failed (the disk's error is counted by
/// the driver). What the caller asked for is not done; dirty blocks stay dirty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoError;

pub struct Cache {
    disk: &'static BlockDevice,
    /// The buffers, one contiguous run: buffer `i` is bytes `[i * 4096, (i + 1) * 4096)`.
    bufs: &'static mut [u8],
    /// Buffers in `bufs`.
    len: usize,
    slots: [Slot; MAX_BLOCKS],
    buckets: [u16; BUCKETS],
    hand: usize,
    /// The block the last read through the cache touched (sequential reads read ahead).
    last_read: u64,
}

impl Cache {
    /// A cache over `disk` with up to [`MAX_BLOCKS`] buffers (at most a sixteenth of the
    /// kernel's frames, so a small guest keeps its memory for processes), or `None` if not
    /// even two buffers can be had.
    pub fn new(disk: &'static BlockDevice) -> Option<Cache> {
        let share = (frame::stats(Pool::Kernel).total / 16) as usize;
        let mut want = MAX_BLOCKS.min(share.next_power_of_two()).max(2);
        let first = loop {
            // A fresh run: contiguous, for read-ahead into neighbouring buffers.
            if let Some(first) = frame::alloc_fresh_run(Pool::Kernel, want as u64) {
                break first;
            }
            if want == 2 {
                return None;
            }
            want /= 2;
        };
        // SAFETY: the run was just taken from the kernel pool and belongs to the cache for
        // the rest of the run; the direct map covers it and its frames are contiguous.
        let bufs = unsafe { core::slice::from_raw_parts_mut(first.as_ptr(), want * BS) };
        Some(Cache {
            disk,
            bufs,
            len: want,
            slots: [EMPTY; MAX_BLOCKS],
            buckets: [NONE; BUCKETS],
            hand: 0,
            last_read: u64::MAX,
        })
    }

    fn bucket(block: u64) -> usize {
        // Fibonacci hashing: the top bits of the product spread consecutive blocks.
        (block.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - BUCKETS.trailing_zeros())) as usize
    }

    /// The buffer holding `block`, if any.
    fn find(&self, block: u64) -> Option<usize> {
        let mut i = self.buckets[Self::bucket(block)];
        while i != NONE {
            let slot = &self.slots[usize::from(i)];
            if slot.block == block {
                return Some(usize::from(i));
            }
            i = slot.next;
        }
        None
    }

    /// Makes buffer `i` hold `block` (its bytes are there, or about to be).
    fn link(&mut self, i: usize, block: u64) {
        let bucket = Self::bucket(block);
        self.slots[i] = Slot {
            block,
            next: self.buckets[bucket],
            valid: true,
            dirty: false,
            referenced: true,
        };
        self.buckets[bucket] = i as u16;
    }

    /// Empties buffer `i` (which holds a block), without writing it.
    fn unlink(&mut self, i: usize) {
        let bucket = Self::bucket(self.slots[i].block);
        let next = self.slots[i].next;
        if usize::from(self.buckets[bucket]) == i {
            self.buckets[bucket] = next;
        } else {
            let mut at = usize::from(self.buckets[bucket]);
            while usize::from(self.slots[at].next) != i {
                at = usize::from(self.slots[at].next);
            }
            self.slots[at].next = next;
        }
        self.slots[i] = EMPTY;
    }

    fn buf(&self, i: usize) -> &[u8] {
        &self.bufs[i * BS..(i + 1) * BS]
    }

    fn buf_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i * BS..(i + 1) * BS]
    }

    /// Writes buffer `i` to the disk if it is dirty.
    fn write_back(&mut self, i: usize) -> Result<(), IoError> {
        if !self.slots[i].dirty {
            return Ok(());
        }
        let sector = self.slots[i].block * SECTORS_PER_BLOCK;
        self.disk.write(sector, self.buf(i)).map_err(|_| IoError)?;
        self.slots[i].dirty = false;
        stats::bump(&stats::page().fs_cache_writebacks);
        Ok(())
    }

    /// An empty buffer: a free one, or the clock's choice (written back first if dirty).
    fn victim(&mut self) -> Result<usize, IoError> {
        // Two turns: the first clears every second chance it passes.
        for _ in 0..2 * self.len {
            let i = self.hand;
            self.hand = (i + 1) % self.len;
            let slot = &mut self.slots[i];
            if !slot.valid {
                return Ok(i);
            }
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            self.write_back(i)?;
            self.unlink(i);
            return Ok(i);
        }
        unreachable!("fs cache: the clock found no buffer in two turns")
    }

    /// Buffer `i` was found by a lookup: it gets its second chance, and a hit is counted.
    fn hit(&mut self, i: usize) {
        self.slots[i].referenced = true;
        stats::bump(&stats::page().fs_cache_hits);
    }

    /// Whether buffer `i` may take a block read ahead: free, or clean and unused lately.
    fn spare(&self, i: usize) -> bool {
        let slot = &self.slots[i];
        !slot.valid || !(slot.dirty || slot.referenced)
    }

    /// The buffer of `block`, read in on a miss; for a read (`file`: the blocks of the
    /// file it reads) a sequential one brings the file's next block in too.
    fn get(&mut self, block: u64, file: Option<Range<u64>>) -> Result<usize, IoError> {
        if let Some(i) = self.find(block) {
            self.hit(i);
            return Ok(i);
        }
        let counters = stats::page();
        let i = self.victim()?;
        let pair = file.is_some_and(|file| {
            (block == file.start || block == self.last_read.wrapping_add(1)) && block + 1 < file.end
        }) && i + 1 < self.len
            && self.spare(i + 1)
            && self.find(block + 1).is_none();
        let blocks = if pair { 2 } else { 1 };
        if pair && self.slots[i + 1].valid {
            self.unlink(i + 1);
        }
        self.disk
            .read(
                block * SECTORS_PER_BLOCK,
                &mut self.bufs[i * BS..(i + blocks) * BS],
            )
            .map_err(|_| IoError)?;
        self.link(i, block);
        stats::bump(&counters.fs_cache_misses);
        if pair {
            self.link(i + 1, block + 1);
            // Not used yet: the hand may take it back if the read stops here.
            self.slots[i + 1].referenced = false;
            self.hand = (i + 2) % self.len;
            stats::bump(&counters.fs_cache_readaheads);
        }
        Ok(i)
    }

    /// Reads `buf.len()` bytes at byte `offset` of the disk, a span of the file whose
    /// blocks are `file` (read-ahead stays inside it).
    pub fn read(&mut self, offset: u64, buf: &mut [u8], file: Range<u64>) -> Result<(), IoError> {
        // The common small read, inside one cached block, without the general loop (where
        // ring 0 is emulated every instruction costs about a microsecond).
        let block = offset / BLOCK_SIZE;
        let within = (offset % BLOCK_SIZE) as usize;
        if within + buf.len() <= BS
            && let Some(i) = self.find(block)
        {
            self.hit(i);
            buf.copy_from_slice(&self.buf(i)[within..within + buf.len()]);
            self.last_read = block;
            return Ok(());
        }
        let mut done = 0;
        while done < buf.len() {
            let (block, within, n) = piece(offset, done, buf.len());
            if n == BS
                && let Some(run) = self.uncached_run(block, (buf.len() - done) / BS)
            {
                self.disk
                    .read(block * SECTORS_PER_BLOCK, &mut buf[done..done + run * BS])
                    .map_err(|_| IoError)?;
                done += run * BS;
                self.last_read = block + run as u64 - 1;
                continue;
            }
            let i = self.get(block, Some(file.clone()))?;
            buf[done..done + n].copy_from_slice(&self.buf(i)[within..within + n]);
            done += n;
            self.last_read = block;
        }
        Ok(())
    }

    /// Writes `buf` at byte `offset` of the disk (a span of one file).
    pub fn write(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        let mut done = 0;
        while done < buf.len() {
            let (block, within, n) = piece(offset, done, buf.len());
            if n == BS {
                // Whole blocks replace what the disk and the cache hold: the cached copies
                // go (dirty or not), the bytes go to the disk in one request.
                let run = (buf.len() - done) / BS;
                for b in block..block + run as u64 {
                    if let Some(i) = self.find(b) {
                        self.unlink(i);
                    }
                }
                self.disk
                    .write(block * SECTORS_PER_BLOCK, &buf[done..done + run * BS])
                    .map_err(|_| IoError)?;
                done += run * BS;
                continue;
            }
            let i = self.get(block, None)?;
            self.buf_mut(i)[within..within + n].copy_from_slice(&buf[done..done + n]);
            self.slots[i].dirty = true;
            done += n;
        }
        Ok(())
    }

    /// How many of the `most` whole blocks from `block` on are not cached, counted until
    /// the first cached one; `None` if `block` itself is cached.
    fn uncached_run(&self, block: u64, most: usize) -> Option<usize> {
        let run = (0..most as u64)
            .take_while(|&k| self.find(block + k).is_none())
            .count();
        (run > 0).then_some(run)
    }

    /// Writes the dirty blocks among `[first, end)` to the disk.
    pub fn flush(&mut self, first: u64, end: u64) -> Result<(), IoError> {
        let mut result = Ok(());
        for i in 0..self.len {
            let slot = self.slots[i];
            if slot.valid && slot.dirty && (first..end).contains(&slot.block) {
                // Go on after a failure: write what can be written.
                result = result.and(self.write_back(i));
            }
        }
        result
    }

    /// Forgets the blocks among `[first, end)`, dirty or not (their file is gone, or
    /// they are about to be overwritten on the disk).
    pub fn discard(&mut self, first: u64, end: u64) {
        for i in 0..self.len {
            if self.slots[i].valid && (first..end).contains(&self.slots[i].block) {
                self.unlink(i);
            }
        }
    }
}

/// The next piece of a span of `len` bytes at disk byte `offset`, `done` bytes in: its
/// block, where in the block it starts, and its length (to the block's end at most).
fn piece(offset: u64, done: usize, len: usize) -> (u64, usize, usize) {
    let at = offset + done as u64;
    let within = (at % BLOCK_SIZE) as usize;
    (at / BLOCK_SIZE, within, (BS - within).min(len - done))
}
