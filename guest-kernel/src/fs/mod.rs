//! The flat file system on the file-system disk (format: `abi::fs`).
//!
//! Pintos base semantics: one root directory, fixed-size files created zero-filled, remove
//! that keeps the data for open handles until the last close, independent positions per
//! handle, writes that never extend a file, and deny-write for running executables.
//!
//! The superblock, free map and directory are read once at mount and kept in memory; every
//! change to them is written through to the disk at once. Files' bytes go through a block
//! cache ([`cache`]: write-behind, with every dirty block on the disk when its file is
//! closed and at power-off, [`sync`]). One lock serialises every operation.
//!
//! Open files are tracked by inode number: an inode is created when a directory entry is
//! first opened and lives until its last handle closes, so a removed file's blocks are freed
//! only then.

mod cache;
mod io;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use abi::fs::{self as format, BLOCK_SIZE, DirEntry, SECTORS_PER_BLOCK, Superblock};
use spin::Once;

use crate::drivers::block::{self, BlockDevice};
use crate::mm::frame::{self, Pool, Zero};
use crate::sync::Lock;

/// Why mounting failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountError {
    /// The VMM attached no file-system disk.
    NoDisk,
    /// The disk could not be read.
    Io,
    /// No kernel memory for the file system's tables.
    NoMemory,
    /// The disk does not hold a valid file system.
    Format(format::FsError),
}

/// An open file's shared state.
struct Inode {
    start_block: u64,
    size: u64,
    /// Handles open on this inode.
    open_count: u32,
    /// Handles that deny writes (running executables).
    deny_write_count: u32,
    /// Directory slot while the file still has its name; `None` once removed.
    dir_slot: Option<usize>,
}

struct FileSystem {
    disk: &'static BlockDevice,
    sb: Superblock,
    /// The free map, one bit per block, exactly as on disk (kernel frames).
    free_map: &'static mut [u8],
    /// The directory blocks exactly as on disk (kernel frames); slot `i` is bytes
    /// `[32 i, 32 i + 32)`. Every used slot was checked at mount.
    dir: &'static mut [u8],
    /// Slot of each name in the directory.
    names: BTreeMap<Vec<u8>, usize>,
    inodes: BTreeMap<u64, Inode>,
    /// Inode of each directory slot that is open.
    slot_inode: BTreeMap<usize, u64>,
    next_inode: u64,
    /// A run of zero bytes for clearing new files (fresh frames, never written).
    zeros: &'static [u8],
    /// Files' blocks.
    cache: cache::Cache,
}

/// The file system, mounted on first use (see [`mounted`]).
static FS: Once<Result<Lock<FileSystem>, MountError>> = Once::new();

/// Bytes of zeros used to clear a new file's blocks, one request per run.
const ZERO_RUN_BYTES: u64 = 16 * BLOCK_SIZE;

/// The file system, mounting it on first use. Mounting costs a few milliseconds where
/// ring 0 is emulated (setting the disk up and reading its tables), so a run that never
/// touches files does not pay for it. A failed mount is remembered: every call reports it.
fn mounted() -> Result<&'static Lock<FileSystem>, MountError> {
    FS.call_once(|| {
        let disk = block::fs_disk().ok_or(MountError::NoDisk)?;
        FileSystem::mount(disk).map(Lock::new)
    })
    .as_ref()
    .map_err(|e| *e)
}

/// The file system, for operations on an open file (which proves it is mounted).
fn fs() -> &'static Lock<FileSystem> {
    mounted().expect("fs: a file is open, so the file system is mounted")
}

/// `blocks` blocks of kernel memory kept for the rest of the run, not cleared: metadata
/// is read straight into them (clearing would cost where ring 0 is emulated).
fn metadata_pages(blocks: u64) -> Result<&'static mut [u8], MountError> {
    let first = if blocks == 1 {
        frame::alloc(Pool::Kernel, Zero::No)
    } else {
        frame::alloc_fresh_run(Pool::Kernel, blocks)
    };
    let first = first.ok_or(MountError::NoMemory)?;
    // SAFETY: the frames were just taken from the pool and are owned by the file system
    // from now on; the direct map covers them and they are contiguous.
    Ok(unsafe { core::slice::from_raw_parts_mut(first.as_ptr(), (blocks * BLOCK_SIZE) as usize) })
}

impl FileSystem {
    fn mount(disk: &'static BlockDevice) -> Result<Self, MountError> {
        let disk_blocks = disk.sectors() / SECTORS_PER_BLOCK;
        // The superblock, free map and directory sit at the start of the disk; a disk made by
        // this project's formatter has the layout `Superblock::for_disk` gives, so one request
        // usually fetches all three (each request costs hundreds of microseconds where ring 0
        // is emulated). Anything the guess missed is read afterwards.
        let guess = Superblock::for_disk(disk_blocks).map_err(MountError::Format)?;
        let head_blocks = guess.data_start();
        let head = metadata_pages(head_blocks)?;
        io::read_blocks(disk, 0, head).map_err(|_| MountError::Io)?;
        let sb = Superblock::decode(head, disk_blocks).map_err(MountError::Format)?;
        let head_ptr = head.as_mut_ptr();
        let region = |start: u64, blocks: u64| -> Result<&'static mut [u8], MountError> {
            if start + blocks <= head_blocks {
                // SAFETY: `head` is kept for the rest of the run; the free map and the
                // directory are disjoint block ranges inside it (the superblock check makes
                // them so), each handed out once, so the mutable slices do not alias.
                Ok(unsafe {
                    core::slice::from_raw_parts_mut(
                        head_ptr.add((start * BLOCK_SIZE) as usize),
                        (blocks * BLOCK_SIZE) as usize,
                    )
                })
            } else {
                let pages = metadata_pages(blocks)?;
                io::read_blocks(disk, start, pages).map_err(|_| MountError::Io)?;
                Ok(pages)
            }
        };
        let free_map = region(sb.freemap_start, sb.freemap_blocks)?;
        let dir = region(sb.dir_start, sb.dir_blocks)?;
        // Index the used slots, checking each (a free slot costs one byte compare).
        let mut names = BTreeMap::new();
        for (slot, raw) in dir.chunks_exact(format::DIR_ENTRY_SIZE).enumerate() {
            if raw[0] != 0 {
                let entry = DirEntry::decode(raw, &sb)
                    .map_err(MountError::Format)?
                    .expect("used slot");
                if names.insert(entry.name().to_vec(), slot).is_some() {
                    return Err(MountError::Format(format::FsError::Corrupt));
                }
            }
        }
        // A fresh run: never written since boot, so it reads as zero without clearing.
        let zeros_first = frame::alloc_fresh_run(Pool::Kernel, ZERO_RUN_BYTES / BLOCK_SIZE)
            .ok_or(MountError::NoMemory)?;
        // SAFETY: the run is owned by the file system from now on and only ever read.
        let zeros =
            unsafe { core::slice::from_raw_parts(zeros_first.as_ptr(), ZERO_RUN_BYTES as usize) };
        let cache = cache::Cache::new(disk).ok_or(MountError::NoMemory)?;
        Ok(FileSystem {
            disk,
            sb,
            free_map,
            dir,
            names,
            inodes: BTreeMap::new(),
            slot_inode: BTreeMap::new(),
            next_inode: 1,
            zeros,
            cache,
        })
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        self.names.get(name).copied()
    }

    fn slot_bytes(&self, slot: usize) -> &[u8] {
        &self.dir[slot * format::DIR_ENTRY_SIZE..(slot + 1) * format::DIR_ENTRY_SIZE]
    }

    /// The entry in a used slot (checked at mount or written by this code).
    fn entry(&self, slot: usize) -> Option<DirEntry> {
        DirEntry::decode(self.slot_bytes(slot), &self.sb)
            .ok()
            .flatten()
    }

    /// Stores `entry` (or a free slot) in `slot` and writes its directory block through.
    fn set_entry(&mut self, slot: usize, entry: Option<&DirEntry>) -> Result<(), ()> {
        let range = slot * format::DIR_ENTRY_SIZE..(slot + 1) * format::DIR_ENTRY_SIZE;
        match entry {
            Some(entry) => entry.encode(&mut self.dir[range]),
            None => self.dir[range].fill(0),
        }
        let block = slot as u64 / format::DIR_ENTRIES_PER_BLOCK;
        let bytes = &self.dir[(block * BLOCK_SIZE) as usize..((block + 1) * BLOCK_SIZE) as usize];
        io::write_blocks(self.disk, self.sb.dir_start + block, bytes)
    }

    /// Marks an extent used or free and writes the touched free-map blocks through.
    fn mark(&mut self, start: u64, count: u64, used: bool) -> Result<(), ()> {
        if count == 0 {
            return Ok(());
        }
        format::mark_blocks(self.free_map, start, count, used);
        let bits_per_block = BLOCK_SIZE * 8;
        for map_block in start / bits_per_block..=(start + count - 1) / bits_per_block {
            let bytes = &self.free_map
                [(map_block * BLOCK_SIZE) as usize..((map_block + 1) * BLOCK_SIZE) as usize];
            io::write_blocks(self.disk, self.sb.freemap_start + map_block, bytes)?;
        }
        Ok(())
    }

    fn free_blocks(&self) -> u64 {
        (0..self.sb.total_blocks)
            .filter(|&b| !format::block_used(self.free_map, b))
            .count() as u64
    }

    fn create(&mut self, name: &[u8], size: u64) -> bool {
        if format::check_name(name).is_err() || self.find(name).is_some() {
            return false;
        }
        let Some(slot) =
            (0..self.sb.dir_entries() as usize).find(|&slot| self.slot_bytes(slot)[0] == 0)
        else {
            return false;
        };
        let blocks = size.div_ceil(BLOCK_SIZE);
        let start = if blocks == 0 {
            0
        } else {
            match format::find_free_run(
                self.free_map,
                self.sb.data_start(),
                self.sb.total_blocks,
                blocks,
            ) {
                Some(start) => start,
                None => return false,
            }
        };
        let Ok(entry) = DirEntry::new(name, start, size) else {
            return false;
        };
        // Clear the extent first: its blocks may hold a removed file's data (which the
        // cache dropped when they were freed: `free_extent`).
        let mut done = 0;
        while done < blocks {
            let run = (blocks - done).min(ZERO_RUN_BYTES / BLOCK_SIZE);
            if io::write_blocks(
                self.disk,
                start + done,
                &self.zeros[..(run * BLOCK_SIZE) as usize],
            )
            .is_err()
            {
                return false;
            }
            done += run;
        }
        if self.mark(start, blocks, true).is_err() {
            return false;
        }
        if self.set_entry(slot, Some(&entry)).is_err() {
            return false;
        }
        self.names.insert(name.to_vec(), slot);
        true
    }

    fn remove(&mut self, name: &[u8]) -> bool {
        let Some(slot) = self.find(name) else {
            return false;
        };
        let Some(entry) = self.entry(slot) else {
            return false;
        };
        if self.set_entry(slot, None).is_err() {
            return false;
        }
        self.names.remove(name);
        match self.slot_inode.remove(&slot) {
            // Open: the last close frees the blocks.
            Some(ino) => {
                if let Some(inode) = self.inodes.get_mut(&ino) {
                    inode.dir_slot = None;
                }
            }
            None => self.free_extent(entry.start_block, entry.blocks()),
        }
        true
    }

    fn open(&mut self, name: &[u8]) -> Option<u64> {
        let slot = self.find(name)?;
        if let Some(&ino) = self.slot_inode.get(&slot) {
            self.inodes
                .get_mut(&ino)
                .expect("slot_inode points at a live inode")
                .open_count += 1;
            return Some(ino);
        }
        let entry = self.entry(slot)?;
        let ino = self.next_inode;
        self.next_inode += 1;
        let inode = Inode {
            start_block: entry.start_block,
            size: entry.size,
            open_count: 1,
            deny_write_count: 0,
            dir_slot: Some(slot),
        };
        self.inodes.insert(ino, inode);
        self.slot_inode.insert(slot, ino);
        Some(ino)
    }

    /// Closes one handle on `ino`; the file's dirty blocks go to the disk (every close,
    /// so a file's bytes are on the disk once any handle that wrote them is closed).
    fn close(&mut self, ino: u64, denied: bool) {
        let inode = self
            .inodes
            .get_mut(&ino)
            .expect("fs: close of an unknown inode");
        if denied {
            inode.deny_write_count -= 1;
        }
        inode.open_count -= 1;
        let (first, blocks) = (inode.start_block, inode.size.div_ceil(BLOCK_SIZE));
        let (open, named) = (inode.open_count > 0, inode.dir_slot.is_some());
        if named {
            // A failed write-back leaves the blocks dirty for the next try (the next
            // close, power-off); `close` itself cannot fail in the ABI.
            let _ = self.cache.flush(first, first + blocks);
        }
        if open {
            return;
        }
        let inode = self.inodes.remove(&ino).expect("present");
        match inode.dir_slot {
            Some(slot) => {
                self.slot_inode.remove(&slot);
            }
            None => self.free_extent(first, blocks),
        }
    }

    /// Frees a removed file's blocks; their cached copies go too, unwritten.
    fn free_extent(&mut self, first: u64, blocks: u64) {
        self.cache.discard(first, first + blocks);
        let _ = self.mark(first, blocks, false);
    }

    fn inode(&self, ino: u64) -> &Inode {
        self.inodes
            .get(&ino)
            .expect("fs: handle on an unknown inode")
    }
}

/// An open file: a handle with its own position.
pub struct File {
    ino: u64,
    /// The inode's extent, fixed for its life (files never move or grow): reads need no
    /// lookup of the inode.
    start_block: u64,
    size: u64,
    pos: u64,
    /// Whether this handle denies writes to the file (see [`File::deny_write`]).
    denies_write: bool,
}

impl File {
    /// Reads up to `buf.len()` bytes at the position and advances it; returns the count
    /// (0 at or past the end).
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.read_at(buf, self.pos);
        self.pos += n as u64;
        n
    }

    /// Reads up to `buf.len()` bytes at `pos`, leaving the position alone.
    pub fn read_at(&self, buf: &mut [u8], pos: u64) -> usize {
        let n = (buf.len() as u64).min(self.size.saturating_sub(pos)) as usize;
        if n == 0 {
            return 0;
        }
        let offset = self.start_block * BLOCK_SIZE + pos;
        let blocks = self.start_block..self.start_block + self.size.div_ceil(BLOCK_SIZE);
        match fs().lock().cache.read(offset, &mut buf[..n], blocks) {
            Ok(()) => n,
            Err(cache::IoError) => 0,
        }
    }

    /// Writes up to `buf.len()` bytes at the position (never past the end of the file)
    /// and advances it; returns the count, 0 if writes are denied.
    pub fn write(&mut self, buf: &[u8]) -> usize {
        let n = self.write_at(buf, self.pos);
        self.pos += n as u64;
        n
    }

    /// Writes up to `buf.len()` bytes at `pos`, leaving the position alone.
    pub fn write_at(&self, buf: &[u8], pos: u64) -> usize {
        let mut fs = fs().lock();
        let inode = fs.inode(self.ino);
        if inode.deny_write_count > 0 {
            return 0;
        }
        let n = (buf.len() as u64).min(inode.size.saturating_sub(pos)) as usize;
        if n == 0 {
            return 0;
        }
        let offset = inode.start_block * BLOCK_SIZE + pos;
        match fs.cache.write(offset, &buf[..n]) {
            Ok(()) => n,
            Err(cache::IoError) => 0,
        }
    }

    /// Sets the position (past the end is allowed).
    pub fn seek(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// The position.
    pub fn tell(&self) -> u64 {
        self.pos
    }

    /// The file's size in bytes.
    pub fn length(&self) -> u64 {
        self.size
    }

    /// Denies writes to the file through any handle until this handle allows them again or
    /// closes. Idempotent per handle.
    pub fn deny_write(&mut self) {
        if !self.denies_write {
            self.denies_write = true;
            fs().lock()
                .inodes
                .get_mut(&self.ino)
                .expect("open inode")
                .deny_write_count += 1;
        }
    }

    /// Undoes this handle's [`File::deny_write`].
    pub fn allow_write(&mut self) {
        if self.denies_write {
            self.denies_write = false;
            fs().lock()
                .inodes
                .get_mut(&self.ino)
                .expect("open inode")
                .deny_write_count -= 1;
        }
    }

    /// A second handle on the same file with its own copy of the position (fork).
    pub fn duplicate(&self) -> File {
        fs().lock()
            .inodes
            .get_mut(&self.ino)
            .expect("open inode")
            .open_count += 1;
        File {
            ino: self.ino,
            start_block: self.start_block,
            size: self.size,
            pos: self.pos,
            denies_write: false,
        }
    }

    /// Where the file's bytes start on the disk, in bytes, and the file's size. What is
    /// on the disk there may be older than what the block cache holds until the file is
    /// closed or [`sync`] runs.
    pub fn extent(&self) -> (u64, u64) {
        (self.start_block * BLOCK_SIZE, self.size)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        fs().lock().close(self.ino, self.denies_write);
    }
}

/// Creates a zero-filled file of `size` bytes. False if the name is empty, too long or taken,
/// the directory is full, or no contiguous space is left.
pub fn create(name: &[u8], size: u64) -> bool {
    mounted().is_ok_and(|fs| fs.lock().create(name, size))
}

/// Removes a name; open handles keep the data until they close. False if there is no such file.
pub fn remove(name: &[u8]) -> bool {
    mounted().is_ok_and(|fs| fs.lock().remove(name))
}

/// Opens a file, with its position at 0.
pub fn open(name: &[u8]) -> Option<File> {
    let mut fs = mounted().ok()?.lock();
    let ino = fs.open(name)?;
    let inode = fs.inode(ino);
    Some(File {
        ino,
        start_block: inode.start_block,
        size: inode.size,
        pos: 0,
        denies_write: false,
    })
}

/// Writes every dirty cached block to the disk. False if a write failed (those blocks stay
/// dirty).
pub fn sync() -> bool {
    match FS.get() {
        Some(Ok(fs)) => fs.lock().cache.flush(0, u64::MAX).is_ok(),
        // Never mounted, or failed to: nothing was written.
        _ => true,
    }
}

/// [`sync`] before the machine powers off; says on the console if the disk refused
/// writes, since the VMM's `--get` and `--disk` image will then miss them.
pub fn sync_before_power_off() {
    if !sync() {
        crate::println!("fs: the file-system disk refused writes: some file data is not on it");
    }
}

/// Free blocks on the disk.
pub fn free_blocks() -> u64 {
    mounted().map_or(0, |fs| fs.lock().free_blocks())
}

/// The number of files on the disk (0 if it cannot be mounted).
pub fn file_count() -> usize {
    mounted().map_or(0, |fs| fs.lock().names.len())
}

/// The first of `count` consecutive blocks no file uses, for tests and benchmarks that
/// write raw sectors (the file system clears blocks before giving them to a file, so
/// scribbling on free blocks is harmless).
pub fn unused_blocks(count: u64) -> Option<u64> {
    let fs = mounted().ok()?.lock();
    format::find_free_run(fs.free_map, fs.sb.data_start(), fs.sb.total_blocks, count)
}
