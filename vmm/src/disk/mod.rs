//! Host-side tools for the guest's file-system disk image (format: `abi::fs`).
//!
//! A [`DiskImage`] is a host file holding one file system. It keeps the superblock, the
//! whole free map and the used directory entries in memory, and writes every change
//! through at once, in an order that never leaves a directory entry pointing at blocks the
//! free map calls free: file data, then the free map, then the directory entry (and the
//! reverse on removal). A crash can leak blocks, never corrupt a file.
//!
//! ```text
//! mod.rs      DiskImage: create, list, put, get, remove; DiskError
//! open.rs     DiskImage::open: reads and cross-checks an untrusted image (Corruption)
//! build.rs    build_image: one fresh image from host files (`vmm run --put`)
//! cli.rs      `vmm disk create|ls|put|get|rm`
//! ```
//! Invariants kept between calls: every in-memory entry decodes against the superblock,
//! no two extents overlap, every extent and every metadata block is marked used in the
//! free map, and names are unique.

pub mod build;
pub mod cli;
mod open;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use abi::fs::{
    BLOCK_SIZE, DIR_ENTRY_SIZE, DirEntry, MAX_BLOCKS, MIN_BLOCKS, NAME_MAX, Superblock, block_used,
    check_name, find_free_run, mark_blocks,
};

pub use build::build_image;
pub use open::Corruption;

/// Smallest image size in bytes the format describes.
pub const MIN_SIZE_BYTES: u64 = MIN_BLOCKS * BLOCK_SIZE;
/// Largest image size in bytes the format describes.
pub const MAX_SIZE_BYTES: u64 = MAX_BLOCKS * BLOCK_SIZE;

/// Why a disk-image operation failed. Messages start lowercase and name the image, file or
/// host path involved; the caller prints them after `vmm: `.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot create disk image {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot open disk image {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read disk image {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write disk image {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot change disk image {}: it is read-only; check its permissions", path.display())]
    ReadOnly { path: PathBuf },
    #[error("corrupt disk image {}: {problem}", path.display())]
    Corrupt { path: PathBuf, problem: Corruption },
    #[error("disk size {size_bytes} bytes is not a multiple of the {BLOCK_SIZE}-byte block size")]
    SizeNotBlockMultiple { size_bytes: u64 },
    #[error(
        "disk size {size_bytes} bytes is outside what the format can describe: \
         use {MIN_SIZE_BYTES} bytes (16 KiB) to {MAX_SIZE_BYTES} bytes (64 GiB)"
    )]
    SizeOutOfRange { size_bytes: u64 },
    #[error("empty file name: a name is 1 to {NAME_MAX} bytes")]
    NameEmpty,
    #[error(
        "file name {name:?} is {len_bytes} bytes long, but the disk format holds names of \
         at most {NAME_MAX} bytes"
    )]
    NameTooLong { name: String, len_bytes: usize },
    #[error("file name {name:?} contains '/' or a NUL byte, which the disk format does not allow")]
    NameBadByte { name: String },
    #[error("disk image {} already holds a file named {name:?}; remove it first", path.display())]
    FileExists { path: PathBuf, name: String },
    #[error(
        "disk image {} is full: its directory holds at most {entries} files; remove one first",
        path.display()
    )]
    DirectoryFull { path: PathBuf, entries: u64 },
    #[error(
        "no room for {name:?} in disk image {}: it needs {needed_bytes} contiguous bytes, but \
         {free_bytes} bytes are free and the largest free run is {largest_run_bytes} bytes",
        path.display()
    )]
    NoSpace {
        path: PathBuf,
        name: String,
        needed_bytes: u64,
        free_bytes: u64,
        largest_run_bytes: u64,
    },
    #[error("no file named {name:?} in disk image {}", path.display())]
    FileNotFound { path: PathBuf, name: String },
    #[error("cannot read {}: {source}", path.display())]
    ReadHostFile { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    WriteHostFile { path: PathBuf, source: io::Error },
    #[error("guest file name {name:?} is given more than once")]
    DuplicateName { name: String },
    #[error("{count} files do not fit in the disk's directory, which holds {entries}")]
    TooManyFiles { count: usize, entries: u64 },
    #[error(
        "the files do not fit in a {size_mib} MiB disk: with the file-system metadata they \
         need {needed_bytes} bytes, so make the disk at least {needed_mib} MiB"
    )]
    ImageTooSmall {
        size_mib: u64,
        needed_bytes: u64,
        needed_mib: u64,
    },
    #[error(
        "the files need a disk of {needed_bytes} bytes, more than the format's maximum of \
         {MAX_SIZE_BYTES} bytes (64 GiB)"
    )]
    ImageTooLarge { needed_bytes: u64 },
    #[error("cannot write to standard output: {0}")]
    WriteStdout(io::Error),
}

/// One file as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The name, with bytes that are not UTF-8 replaced.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// An open disk image (see the module comment for what it caches and the write order).
#[derive(Debug)]
pub struct DiskImage {
    file: File,
    path: PathBuf,
    /// False when the image could only be opened read-only: `put` and `remove` refuse.
    writable: bool,
    sb: Superblock,
    /// The whole free map, `sb.freemap_blocks` blocks.
    free_map: Vec<u8>,
    /// Used directory entries by slot number.
    entries: BTreeMap<u64, DirEntry>,
}

impl DiskImage {
    /// Creates (or truncates) `path` as an empty file system of `size_bytes` bytes.
    ///
    /// Writes only the metadata blocks; the data area stays a hole in a sparse file.
    pub fn create(path: &Path, size_bytes: u64) -> Result<DiskImage, DiskError> {
        let sb = layout_for_size(size_bytes)?;
        let create_error = |source| DiskError::Create {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(create_error)?;
        file.set_len(size_bytes).map_err(create_error)?;

        let mut free_map = vec![0u8; (sb.freemap_blocks * BLOCK_SIZE) as usize];
        mark_blocks(&mut free_map, 0, sb.data_start(), true);
        let mut block0 = vec![0u8; BLOCK_SIZE as usize];
        sb.encode(&mut block0);
        let directory = vec![0u8; (sb.dir_blocks * BLOCK_SIZE) as usize];
        let writes = [
            (0, &block0[..]),
            (sb.freemap_start * BLOCK_SIZE, &free_map[..]),
            (sb.dir_start * BLOCK_SIZE, &directory[..]),
        ];
        for (offset, bytes) in writes {
            file.write_all_at(bytes, offset).map_err(create_error)?;
        }
        Ok(DiskImage {
            file,
            path: path.to_path_buf(),
            writable: true,
            sb,
            free_map,
            entries: BTreeMap::new(),
        })
    }

    /// The host path of the image.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocks on the disk.
    pub fn total_blocks(&self) -> u64 {
        self.sb.total_blocks
    }

    /// Every file, sorted by name.
    pub fn list(&self) -> Vec<FileInfo> {
        let mut files: Vec<FileInfo> = self
            .entries
            .values()
            .map(|entry| FileInfo {
                name: String::from_utf8_lossy(entry.name()).into_owned(),
                size: entry.size,
            })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        files
    }

    /// Whether a file named `name` exists.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.find(name).is_some()
    }

    /// Adds file `name` holding `data` in the first free run of blocks large enough, and
    /// zeroes the rest of its last block. Fails without changing the image if the name is
    /// invalid or taken, the directory is full, or no free run is large enough.
    pub fn put(&mut self, name: &[u8], data: &[u8]) -> Result<(), DiskError> {
        check_file_name(name)?;
        self.require_writable()?;
        if self.contains(name) {
            return Err(DiskError::FileExists {
                path: self.path.clone(),
                name: lossy(name),
            });
        }
        let slot = self.free_slot().ok_or_else(|| DiskError::DirectoryFull {
            path: self.path.clone(),
            entries: self.sb.dir_entries(),
        })?;
        let size = data.len() as u64;
        let blocks = size.div_ceil(BLOCK_SIZE);
        let start = if blocks == 0 {
            0
        } else {
            find_free_run(
                &self.free_map,
                self.sb.data_start(),
                self.sb.total_blocks,
                blocks,
            )
            .ok_or_else(|| self.no_space(name, blocks))?
        };
        let entry = DirEntry::new(name, start, size).map_err(|_| DiskError::NameEmpty)?;

        let offset = start * BLOCK_SIZE;
        self.write_at(data, offset)?;
        let tail = (blocks * BLOCK_SIZE - size) as usize;
        if tail > 0 {
            self.write_at(&vec![0u8; tail], offset + size)?;
        }
        mark_blocks(&mut self.free_map, start, blocks, true);
        self.write_free_map(start, blocks)?;
        self.write_slot(slot, Some(&entry))?;
        self.entries.insert(slot, entry);
        Ok(())
    }

    /// The contents of file `name`.
    pub fn get(&self, name: &[u8]) -> Result<Vec<u8>, DiskError> {
        let (_, entry) = self.find_or_err(name)?;
        let mut data = vec![0u8; entry.size as usize];
        self.file
            .read_exact_at(&mut data, entry.start_block * BLOCK_SIZE)
            .map_err(|source| DiskError::Read {
                path: self.path.clone(),
                source,
            })?;
        Ok(data)
    }

    /// Removes file `name` and frees its blocks (their contents stay on the host file).
    pub fn remove(&mut self, name: &[u8]) -> Result<(), DiskError> {
        let (slot, entry) = self.find_or_err(name)?;
        self.require_writable()?;
        self.write_slot(slot, None)?;
        self.entries.remove(&slot);
        mark_blocks(&mut self.free_map, entry.start_block, entry.blocks(), false);
        self.write_free_map(entry.start_block, entry.blocks())
    }

    fn find(&self, name: &[u8]) -> Option<(u64, DirEntry)> {
        self.entries
            .iter()
            .find(|(_, entry)| entry.name() == name)
            .map(|(&slot, &entry)| (slot, entry))
    }

    fn find_or_err(&self, name: &[u8]) -> Result<(u64, DirEntry), DiskError> {
        self.find(name).ok_or_else(|| DiskError::FileNotFound {
            path: self.path.clone(),
            name: lossy(name),
        })
    }

    fn require_writable(&self) -> Result<(), DiskError> {
        if self.writable {
            Ok(())
        } else {
            Err(DiskError::ReadOnly {
                path: self.path.clone(),
            })
        }
    }

    /// The lowest unused directory slot, if any.
    fn free_slot(&self) -> Option<u64> {
        // `entries` iterates in slot order, so the first gap is the lowest free slot.
        let mut expected = 0;
        for &slot in self.entries.keys() {
            if slot != expected {
                break;
            }
            expected += 1;
        }
        (expected < self.sb.dir_entries()).then_some(expected)
    }

    /// The error for a file of `blocks` blocks that finds no free run.
    fn no_space(&self, name: &[u8], blocks: u64) -> DiskError {
        let (free, largest) =
            free_space(&self.free_map, self.sb.data_start(), self.sb.total_blocks);
        DiskError::NoSpace {
            path: self.path.clone(),
            name: lossy(name),
            needed_bytes: blocks * BLOCK_SIZE,
            free_bytes: free * BLOCK_SIZE,
            largest_run_bytes: largest * BLOCK_SIZE,
        }
    }

    /// Writes the free-map bytes that hold the bits of blocks `[start, start + count)`.
    fn write_free_map(&self, start: u64, count: u64) -> Result<(), DiskError> {
        if count == 0 {
            return Ok(());
        }
        let first = (start / 8) as usize;
        let last = ((start + count - 1) / 8) as usize;
        self.write_at(
            &self.free_map[first..=last],
            self.sb.freemap_start * BLOCK_SIZE + first as u64,
        )
    }

    /// Writes directory slot `slot`: `entry`, or zeros to free it.
    fn write_slot(&self, slot: u64, entry: Option<&DirEntry>) -> Result<(), DiskError> {
        let mut bytes = [0u8; DIR_ENTRY_SIZE];
        if let Some(entry) = entry {
            entry.encode(&mut bytes);
        }
        let offset = self.sb.dir_start * BLOCK_SIZE + slot * DIR_ENTRY_SIZE as u64;
        self.write_at(&bytes, offset)
    }

    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<(), DiskError> {
        self.file
            .write_all_at(bytes, offset)
            .map_err(|source| DiskError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

/// The layout of a fresh disk of `size_bytes` bytes, or why the format cannot hold it.
pub fn layout_for_size(size_bytes: u64) -> Result<Superblock, DiskError> {
    if !size_bytes.is_multiple_of(BLOCK_SIZE) {
        return Err(DiskError::SizeNotBlockMultiple { size_bytes });
    }
    Superblock::for_disk(size_bytes / BLOCK_SIZE)
        .map_err(|_| DiskError::SizeOutOfRange { size_bytes })
}

/// Checks that the format can hold `name`, saying what is wrong with it if not.
pub fn check_file_name(name: &[u8]) -> Result<(), DiskError> {
    if check_name(name).is_ok() {
        Ok(())
    } else if name.is_empty() {
        Err(DiskError::NameEmpty)
    } else if name.len() > NAME_MAX {
        Err(DiskError::NameTooLong {
            name: lossy(name),
            len_bytes: name.len(),
        })
    } else {
        Err(DiskError::NameBadByte { name: lossy(name) })
    }
}

/// Free blocks in `[from, total)` and the longest run of them.
fn free_space(map: &[u8], from: u64, total: u64) -> (u64, u64) {
    let (mut free, mut run, mut largest) = (0, 0, 0);
    for block in from..total {
        if block_used(map, block) {
            run = 0;
        } else {
            free += 1;
            run += 1;
            largest = largest.max(run);
        }
    }
    (free, largest)
}

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    /// An image of `blocks` blocks in a fresh temp dir (kept alive by the returned guard).
    fn fresh(tag: &str, blocks: u64) -> (TempDir, DiskImage) {
        let dir = TempDir::new(tag);
        let image = DiskImage::create(&dir.join("disk.img"), blocks * BLOCK_SIZE).unwrap();
        (dir, image)
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn create_writes_metadata_and_stays_sparse() {
        let (dir, image) = fresh("create", 4096);
        assert!(image.list().is_empty());
        drop(image); // Some file systems trim speculative preallocation only on close.
        let path = dir.join("disk.img");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 4096 * BLOCK_SIZE);
        use std::os::unix::fs::MetadataExt;
        assert!(
            meta.blocks() * 512 < 1024 * 1024,
            "only metadata is allocated: {} sectors",
            meta.blocks()
        );
        let bytes = std::fs::read(&path).unwrap();
        let sb = Superblock::decode(&bytes, 4096).unwrap();
        assert_eq!(sb, Superblock::for_disk(4096).unwrap());
        let map = &bytes[BLOCK_SIZE as usize..];
        for block in 0..sb.data_start() {
            assert!(block_used(map, block), "metadata block {block}");
        }
        assert!(!block_used(map, sb.data_start()));
    }

    #[test]
    fn create_truncates_an_existing_file() {
        let dir = TempDir::new("truncate");
        let path = dir.join("disk.img");
        std::fs::write(&path, vec![0xffu8; 100 * BLOCK_SIZE as usize]).unwrap();
        DiskImage::create(&path, 16 * BLOCK_SIZE).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16 * BLOCK_SIZE);
        assert!(DiskImage::open(&path).unwrap().list().is_empty());
    }

    #[test]
    fn create_rejects_sizes_the_format_cannot_describe() {
        let dir = TempDir::new("sizes");
        let path = dir.join("disk.img");
        let err = DiskImage::create(&path, BLOCK_SIZE * 10 + 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "disk size 40961 bytes is not a multiple of the 4096-byte block size"
        );
        for size in [
            0,
            (MIN_BLOCKS - 1) * BLOCK_SIZE,
            MAX_SIZE_BYTES + BLOCK_SIZE,
        ] {
            let err = DiskImage::create(&path, size).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "disk size {size} bytes is outside what the format can describe: use \
                     16384 bytes (16 KiB) to 68719476736 bytes (64 GiB)"
                )
            );
        }
        assert!(!path.exists(), "nothing is created for a bad size");
        DiskImage::create(&path, MIN_SIZE_BYTES).unwrap();
    }

    #[test]
    fn create_reports_an_unwritable_path() {
        let dir = TempDir::new("unwritable");
        let path = dir.join("no-such-dir/disk.img");
        let err = DiskImage::create(&path, MIN_SIZE_BYTES).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot create disk image {}: No such file or directory (os error 2)",
                path.display()
            )
        );
    }

    #[test]
    fn round_trip_and_space_reuse() {
        let (dir, mut image) = fresh("round-trip", 64);
        let files: [(&[u8], Vec<u8>); 4] = [
            (b"zeta", pattern(3 * BLOCK_SIZE as usize, 1)),
            (b"alpha", pattern(10, 2)),
            (b"empty", Vec::new()),
            (b"exactly14bytes", pattern(BLOCK_SIZE as usize + 1, 3)),
        ];
        for (name, data) in &files {
            image.put(name, data).unwrap();
        }
        drop(image);

        let mut image = DiskImage::open(&dir.join("disk.img")).unwrap();
        let names: Vec<(String, u64)> =
            image.list().into_iter().map(|f| (f.name, f.size)).collect();
        assert_eq!(
            names,
            [
                ("alpha".to_string(), 10),
                ("empty".to_string(), 0),
                ("exactly14bytes".to_string(), BLOCK_SIZE + 1),
                ("zeta".to_string(), 3 * BLOCK_SIZE),
            ]
        );
        for (name, data) in &files {
            assert_eq!(&image.get(name).unwrap(), data);
        }

        // "zeta" took the first three data blocks; a three-block file reuses them.
        let zeta_start = image.find(b"zeta").unwrap().1.start_block;
        image.remove(b"zeta").unwrap();
        assert!(!image.contains(b"zeta"));
        image
            .put(b"again", &pattern(3 * BLOCK_SIZE as usize - 5, 9))
            .unwrap();
        assert_eq!(image.find(b"again").unwrap().1.start_block, zeta_start);
        drop(image);
        let image = DiskImage::open(&dir.join("disk.img")).unwrap();
        assert_eq!(
            image.get(b"again").unwrap(),
            pattern(3 * BLOCK_SIZE as usize - 5, 9)
        );
        assert!(!image.contains(b"zeta"));
    }

    #[test]
    fn put_zeroes_the_tail_of_the_last_block() {
        let (dir, mut image) = fresh("tail", 16);
        let path = dir.join("disk.img");
        // Dirty the data area first, as a reused block would be.
        let start = image.sb.data_start() * BLOCK_SIZE;
        image.write_at(&[0xaa; BLOCK_SIZE as usize], start).unwrap();
        image.put(b"short", b"hello").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let block = &bytes[start as usize..(start + BLOCK_SIZE) as usize];
        assert_eq!(&block[..5], b"hello");
        assert!(block[5..].iter().all(|&b| b == 0));
    }

    #[test]
    fn put_rejects_bad_names() {
        let (_dir, mut image) = fresh("names", 16);
        assert_eq!(
            image.put(b"", b"x").unwrap_err().to_string(),
            "empty file name: a name is 1 to 14 bytes"
        );
        assert_eq!(
            image.put(b"fifteen15bytes!", b"x").unwrap_err().to_string(),
            "file name \"fifteen15bytes!\" is 15 bytes long, but the disk format holds names \
             of at most 14 bytes"
        );
        for bad in [&b"a/b"[..], b"a\0b"] {
            assert!(matches!(
                image.put(bad, b"x"),
                Err(DiskError::NameBadByte { .. })
            ));
        }
        assert!(image.list().is_empty());
    }

    #[test]
    fn put_rejects_an_existing_name() {
        let (dir, mut image) = fresh("exists", 16);
        image.put(b"a", b"1").unwrap();
        assert_eq!(
            image.put(b"a", b"2").unwrap_err().to_string(),
            format!(
                "disk image {} already holds a file named \"a\"; remove it first",
                dir.join("disk.img").display()
            )
        );
        assert_eq!(image.get(b"a").unwrap(), b"1");
    }

    #[test]
    fn put_reports_a_full_directory() {
        let (dir, mut image) = fresh("dir-full", 16);
        let entries = image.sb.dir_entries();
        for i in 0..entries {
            image.put(format!("f{i}").as_bytes(), b"").unwrap();
        }
        assert_eq!(
            image.put(b"one-more", b"").unwrap_err().to_string(),
            format!(
                "disk image {} is full: its directory holds at most 128 files; remove one first",
                dir.join("disk.img").display()
            )
        );
        // A freed slot in the middle is reused.
        image.remove(b"f7").unwrap();
        image.put(b"one-more", b"x").unwrap();
        assert_eq!(image.find(b"one-more").unwrap().0, 7);
    }

    #[test]
    fn put_reports_free_space_and_largest_run() {
        // 16 blocks: 3 metadata, 13 data.
        let (dir, mut image) = fresh("no-space", 16);
        let block = BLOCK_SIZE as usize;
        image.put(b"a", &vec![1; 4 * block]).unwrap();
        image.put(b"b", &vec![2; block]).unwrap();
        image.put(b"c", &vec![3; 4 * block]).unwrap();
        image.remove(b"b").unwrap();
        // Free: block 7 (one block) and blocks 12..16 (four).
        let err = image.put(b"big", &vec![4; 5 * block]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no room for \"big\" in disk image {}: it needs 20480 contiguous bytes, but \
                 20480 bytes are free and the largest free run is 16384 bytes",
                dir.join("disk.img").display()
            )
        );
        assert!(!image.contains(b"big"));
        image.put(b"fits", &vec![5; 4 * block]).unwrap();
        image.put(b"hole", &[6; 10]).unwrap();
        assert_eq!(image.find(b"hole").unwrap().1.start_block, 7);
    }

    #[test]
    fn get_and_remove_name_the_missing_file() {
        let (dir, mut image) = fresh("missing", 16);
        let expected = format!(
            "no file named \"nope\" in disk image {}",
            dir.join("disk.img").display()
        );
        assert_eq!(image.get(b"nope").unwrap_err().to_string(), expected);
        assert_eq!(image.remove(b"nope").unwrap_err().to_string(), expected);
    }

    #[test]
    fn read_only_image_can_be_read_but_not_changed() {
        let (dir, mut image) = fresh("read-only", 16);
        image.put(b"a", b"data").unwrap();
        drop(image);
        let path = dir.join("disk.img");
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&path, perms).unwrap();
        let mut image = DiskImage::open(&path).unwrap();
        assert_eq!(image.get(b"a").unwrap(), b"data");
        let can_write = OpenOptions::new().write(true).open(&path).is_ok();
        assert_eq!(
            image.writable, can_write,
            "opened read-only iff writing is denied"
        );
        // As root the permissions do not apply and the image opens read-write; test the
        // refusal anyway.
        image.writable = false;
        let expected = format!(
            "cannot change disk image {}: it is read-only; check its permissions",
            path.display()
        );
        assert_eq!(image.put(b"b", b"").unwrap_err().to_string(), expected);
        assert_eq!(image.remove(b"a").unwrap_err().to_string(), expected);
    }

    #[test]
    fn free_space_counts_runs() {
        let mut map = [0u8; 4];
        mark_blocks(&mut map, 0, 3, true);
        mark_blocks(&mut map, 5, 2, true);
        assert_eq!(free_space(&map, 0, 32), (27, 25));
        assert_eq!(free_space(&map, 0, 5), (2, 2));
        assert_eq!(free_space(&map, 0, 0), (0, 0));
    }
}
