//! The flat file system on the file-system disk (format: `abi::fs`).
//!
//! Pintos base semantics: one root directory, fixed-size files created zero-filled, remove
//! that keeps the data for open handles until the last close, independent positions per
//! handle, writes that never extend a file, and deny-write for running executables.
//!
//! The superblock, free map and directory are read once at mount and kept in memory; every
//! change to them is written through to the disk at once, as is every data write (there is
//! no data cache). One lock serialises every operation.
//!
//! Open files are tracked by inode number: an inode is created when a directory entry is
//! first opened and lives until its last handle closes, so a removed file's blocks are freed
//! only then.

mod io;

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use abi::fs::{self as format, BLOCK_SIZE, DirEntry, SECTORS_PER_BLOCK, Superblock};
use spin::Once;

use crate::drivers::block::{self, BlockDevice};
use crate::sync::Lock;

/// Why mounting failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountError {
    /// The VMM attached no file-system disk.
    NoDisk,
    /// The disk could not be read.
    Io,
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
    /// The free map, one bit per block, as on disk.
    free_map: Vec<u8>,
    /// The directory, one entry per slot.
    dir: Vec<Option<DirEntry>>,
    inodes: BTreeMap<u64, Inode>,
    /// Inode of each directory slot that is open.
    slot_inode: BTreeMap<usize, u64>,
    next_inode: u64,
    /// A run of zero bytes for clearing new files (fresh frames, never written).
    zeros: &'static [u8],
}

static FS: Once<Lock<FileSystem>> = Once::new();

/// Bytes of zeros used to clear a new file's blocks, one request per run.
const ZERO_RUN_BYTES: u64 = 16 * BLOCK_SIZE;

/// Mounts the file-system disk. Call once at boot, before any other function here.
pub fn init() -> Result<(), MountError> {
    let disk = block::fs_disk().ok_or(MountError::NoDisk)?;
    let fs = FileSystem::mount(disk)?;
    FS.call_once(|| Lock::new(fs));
    Ok(())
}

fn fs() -> &'static Lock<FileSystem> {
    FS.get().expect("fs: used before mount")
}

impl FileSystem {
    fn mount(disk: &'static BlockDevice) -> Result<Self, MountError> {
        let disk_blocks = disk.sectors() / SECTORS_PER_BLOCK;
        let mut block0 = vec![0u8; BLOCK_SIZE as usize];
        io::read_blocks(disk, 0, &mut block0).map_err(|_| MountError::Io)?;
        let sb = Superblock::decode(&block0, disk_blocks).map_err(MountError::Format)?;

        let mut free_map = vec![0u8; (sb.freemap_blocks * BLOCK_SIZE) as usize];
        io::read_blocks(disk, sb.freemap_start, &mut free_map).map_err(|_| MountError::Io)?;
        let mut raw_dir = vec![0u8; (sb.dir_blocks * BLOCK_SIZE) as usize];
        io::read_blocks(disk, sb.dir_start, &mut raw_dir).map_err(|_| MountError::Io)?;
        let dir = raw_dir
            .chunks_exact(format::DIR_ENTRY_SIZE)
            .map(|slot| DirEntry::decode(slot, &sb))
            .collect::<Result<Vec<_>, _>>()
            .map_err(MountError::Format)?;

        let zeros_frame = crate::mm::frame::alloc_fresh_run(
            crate::mm::frame::Pool::Kernel,
            ZERO_RUN_BYTES / BLOCK_SIZE,
        )
        .ok_or(MountError::Io)?;
        // SAFETY: the run is fresh (never written, so zero), owned by the file system for
        // the rest of the run and only ever read.
        let zeros =
            unsafe { core::slice::from_raw_parts(zeros_frame.as_ptr(), ZERO_RUN_BYTES as usize) };
        Ok(FileSystem {
            disk,
            sb,
            free_map,
            dir,
            inodes: BTreeMap::new(),
            slot_inode: BTreeMap::new(),
            next_inode: 1,
            zeros,
        })
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        self.dir
            .iter()
            .position(|e| e.as_ref().is_some_and(|e| e.name() == name))
    }

    /// Writes directory slot `slot` through to the disk (its whole block).
    fn write_dir_slot(&self, slot: usize) -> Result<(), ()> {
        let per_block = format::DIR_ENTRIES_PER_BLOCK as usize;
        let first = slot / per_block * per_block;
        let mut block = vec![0u8; BLOCK_SIZE as usize];
        for (i, entry) in self.dir[first..first + per_block].iter().enumerate() {
            if let Some(entry) = entry {
                entry.encode(
                    &mut block[i * format::DIR_ENTRY_SIZE..(i + 1) * format::DIR_ENTRY_SIZE],
                );
            }
        }
        io::write_blocks(
            self.disk,
            self.sb.dir_start + (slot / per_block) as u64,
            &block,
        )
    }

    /// Marks an extent used or free and writes the touched free-map blocks through.
    fn mark(&mut self, start: u64, count: u64, used: bool) -> Result<(), ()> {
        if count == 0 {
            return Ok(());
        }
        format::mark_blocks(&mut self.free_map, start, count, used);
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
            .filter(|&b| !format::block_used(&self.free_map, b))
            .count() as u64
    }

    fn create(&mut self, name: &[u8], size: u64) -> bool {
        if format::check_name(name).is_err() || self.find(name).is_some() {
            return false;
        }
        let Some(slot) = self.dir.iter().position(Option::is_none) else {
            return false;
        };
        let blocks = size.div_ceil(BLOCK_SIZE);
        let start = if blocks == 0 {
            0
        } else {
            match format::find_free_run(
                &self.free_map,
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
        // Clear the extent first: its blocks may hold a removed file's data.
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
        self.dir[slot] = Some(entry);
        self.write_dir_slot(slot).is_ok()
    }

    fn remove(&mut self, name: &[u8]) -> bool {
        let Some(slot) = self.find(name) else {
            return false;
        };
        let entry = self.dir[slot].take().expect("found above");
        if self.write_dir_slot(slot).is_err() {
            return false;
        }
        match self.slot_inode.remove(&slot) {
            // Open: the last close frees the blocks.
            Some(ino) => {
                if let Some(inode) = self.inodes.get_mut(&ino) {
                    inode.dir_slot = None;
                }
            }
            None => {
                let _ = self.mark(entry.start_block, entry.blocks(), false);
            }
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
        let entry = self.dir[slot].as_ref()?;
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

    fn close(&mut self, ino: u64, denied: bool) {
        let inode = self
            .inodes
            .get_mut(&ino)
            .expect("fs: close of an unknown inode");
        if denied {
            inode.deny_write_count -= 1;
        }
        inode.open_count -= 1;
        if inode.open_count > 0 {
            return;
        }
        let inode = self.inodes.remove(&ino).expect("present");
        match inode.dir_slot {
            Some(slot) => {
                self.slot_inode.remove(&slot);
            }
            None => {
                let _ = self.mark(inode.start_block, inode.size.div_ceil(BLOCK_SIZE), false);
            }
        }
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
        let fs = fs().lock();
        let inode = fs.inode(self.ino);
        let n = (buf.len() as u64).min(inode.size.saturating_sub(pos)) as usize;
        if n == 0 {
            return 0;
        }
        let offset = inode.start_block * BLOCK_SIZE + pos;
        match io::read_bytes(fs.disk, offset, &mut buf[..n]) {
            Ok(()) => n,
            Err(()) => 0,
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
        let fs = fs().lock();
        let inode = fs.inode(self.ino);
        if inode.deny_write_count > 0 {
            return 0;
        }
        let n = (buf.len() as u64).min(inode.size.saturating_sub(pos)) as usize;
        if n == 0 {
            return 0;
        }
        let offset = inode.start_block * BLOCK_SIZE + pos;
        match io::write_bytes(fs.disk, offset, &buf[..n]) {
            Ok(()) => n,
            Err(()) => 0,
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
        fs().lock().inode(self.ino).size
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
            pos: self.pos,
            denies_write: false,
        }
    }

    /// Where the file's bytes start on the disk, in bytes (for page-sized DMA by the VM
    /// system), and the file's size.
    pub fn extent(&self) -> (u64, u64) {
        let fs = fs().lock();
        let inode = fs.inode(self.ino);
        (inode.start_block * BLOCK_SIZE, inode.size)
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
    fs().lock().create(name, size)
}

/// Removes a name; open handles keep the data until they close. False if there is no such file.
pub fn remove(name: &[u8]) -> bool {
    fs().lock().remove(name)
}

/// Opens a file, with its position at 0.
pub fn open(name: &[u8]) -> Option<File> {
    let ino = fs().lock().open(name)?;
    Some(File {
        ino,
        pos: 0,
        denies_write: false,
    })
}

/// Free blocks on the disk.
pub fn free_blocks() -> u64 {
    fs().lock().free_blocks()
}

/// The number of files and the disk size in bytes.
pub fn summary() -> (usize, u64) {
    let fs = fs().lock();
    (
        fs.dir.iter().flatten().count(),
        fs.sb.total_blocks * BLOCK_SIZE,
    )
}

/// The first of `count` consecutive blocks no file uses, for tests and benchmarks that
/// write raw sectors (the file system clears blocks before giving them to a file, so
/// scribbling on free blocks is harmless).
pub fn unused_blocks(count: u64) -> Option<u64> {
    let fs = fs().lock();
    format::find_free_run(&fs.free_map, fs.sb.data_start(), fs.sb.total_blocks, count)
}
