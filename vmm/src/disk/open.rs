//! Opening an existing disk image, which is untrusted input.
//!
//! [`DiskImage::open`] reads the superblock, the free map and every directory slot, and
//! accepts the image only if they agree: the superblock describes a layout that fits the
//! file, the free map marks every metadata block used, every entry decodes (valid name,
//! extent inside the data area), names are unique, no two extents share a block, and every
//! file block is marked used. Only then may `put` allocate from the free map without
//! overwriting a file. Any other state is a [`Corruption`] naming the problem; nothing here
//! panics on bad bytes.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use abi::fs::{
    BLOCK_SIZE, DIR_ENTRY_SIZE, DirEntry, FS_VERSION, FsError, NAME_MAX, Superblock, block_used,
    check_name,
};

use super::{DiskError, DiskImage, MIN_SIZE_BYTES, lossy};

/// What is wrong with a corrupt image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error(
        "the file is {len_bytes} bytes, smaller than the smallest disk ({MIN_SIZE_BYTES} bytes)"
    )]
    TooShort { len_bytes: u64 },
    #[error("bad magic number: not a vmm disk image (make one with `vmm disk create`)")]
    BadMagic,
    #[error("file-system version {0}, but this vmm reads only version {FS_VERSION}")]
    BadVersion(u32),
    #[error("the superblock's layout contradicts itself or the file size ({disk_blocks} blocks)")]
    Superblock { disk_blocks: u64 },
    #[error("metadata block {block} is marked free in the free map")]
    MetadataFree { block: u64 },
    #[error("directory entry {slot} holds a malformed name")]
    EntryName { slot: u64 },
    #[error(
        "directory entry {slot} ({name:?}): {blocks} blocks at block {start_block} lie outside \
         the data area (blocks {data_start} to {last_block})"
    )]
    EntryExtent {
        slot: u64,
        name: String,
        start_block: u64,
        blocks: u64,
        data_start: u64,
        last_block: u64,
    },
    #[error(
        "directory entry {slot} ({name:?}): an empty file must have start block 0, not {start_block}"
    )]
    EmptyFileStart {
        slot: u64,
        name: String,
        start_block: u64,
    },
    #[error("directory entries {first_slot} and {second_slot} both name {name:?}")]
    DuplicateName {
        first_slot: u64,
        second_slot: u64,
        name: String,
    },
    #[error("files {first:?} and {second:?} both use block {block}")]
    Overlap {
        first: String,
        second: String,
        block: u64,
    },
    #[error("block {block} of file {name:?} is marked free in the free map")]
    BlockFree { name: String, block: u64 },
}

impl DiskImage {
    /// Opens the image at `path` and checks all of it (see the module comment). Opens it
    /// read-only if it cannot be opened for writing; `put` and `remove` then refuse.
    pub fn open(path: &Path) -> Result<DiskImage, DiskError> {
        let (file, writable) = open_file(path).map_err(|source| DiskError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let read_error = |source| DiskError::Read {
            path: path.to_path_buf(),
            source,
        };
        let corrupt = |problem| DiskError::Corrupt {
            path: path.to_path_buf(),
            problem,
        };
        let len_bytes = file.metadata().map_err(read_error)?.len();
        if len_bytes < MIN_SIZE_BYTES {
            return Err(corrupt(Corruption::TooShort { len_bytes }));
        }
        let disk_blocks = len_bytes / BLOCK_SIZE;

        let mut block = vec![0u8; BLOCK_SIZE as usize];
        file.read_exact_at(&mut block, 0).map_err(read_error)?;
        let sb = Superblock::decode(&block, disk_blocks).map_err(|error| {
            corrupt(match error {
                FsError::BadMagic => Corruption::BadMagic,
                FsError::BadVersion(version) => Corruption::BadVersion(version),
                _ => Corruption::Superblock { disk_blocks },
            })
        })?;

        // Bounded by the file size: the superblock check put the free map inside the file.
        let mut free_map = vec![0u8; (sb.freemap_blocks * BLOCK_SIZE) as usize];
        file.read_exact_at(&mut free_map, sb.freemap_start * BLOCK_SIZE)
            .map_err(read_error)?;
        if let Some(block) = (0..sb.data_start()).find(|&b| !block_used(&free_map, b)) {
            return Err(corrupt(Corruption::MetadataFree { block }));
        }

        let entries = read_directory(&file, &sb).map_err(|error| match error {
            ReadDirError::Io(source) => read_error(source),
            ReadDirError::Corrupt(problem) => corrupt(problem),
        })?;
        check_extents(&entries, &free_map).map_err(corrupt)?;

        Ok(DiskImage {
            file,
            path: path.to_path_buf(),
            writable,
            sb,
            free_map,
            entries,
        })
    }
}

/// Opens `path` read-write, or read-only if writing is not permitted; says which.
fn open_file(path: &Path) -> io::Result<(File, bool)> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => Ok((file, true)),
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            File::open(path).map(|file| (file, false))
        }
        Err(error) => Err(error),
    }
}

enum ReadDirError {
    Io(io::Error),
    Corrupt(Corruption),
}

/// Reads the directory one block at a time, keeping only used slots (so memory grows with
/// the files present, not with a hostile directory size), and checks names are unique.
fn read_directory(file: &File, sb: &Superblock) -> Result<BTreeMap<u64, DirEntry>, ReadDirError> {
    let mut entries = BTreeMap::new();
    let mut slots_by_name: HashMap<[u8; NAME_MAX], u64> = HashMap::new();
    let mut block = vec![0u8; BLOCK_SIZE as usize];
    for dir_block in 0..sb.dir_blocks {
        file.read_exact_at(&mut block, (sb.dir_start + dir_block) * BLOCK_SIZE)
            .map_err(ReadDirError::Io)?;
        for (index, bytes) in block.chunks_exact(DIR_ENTRY_SIZE).enumerate() {
            let slot = dir_block * (BLOCK_SIZE / DIR_ENTRY_SIZE as u64) + index as u64;
            let entry = match DirEntry::decode(bytes, sb) {
                Ok(Some(entry)) => entry,
                Ok(None) => continue,
                Err(_) => return Err(ReadDirError::Corrupt(diagnose_entry(slot, bytes, sb))),
            };
            if let Some(&first_slot) = slots_by_name.get(&entry.name) {
                return Err(ReadDirError::Corrupt(Corruption::DuplicateName {
                    first_slot,
                    second_slot: slot,
                    name: lossy(entry.name()),
                }));
            }
            slots_by_name.insert(entry.name, slot);
            entries.insert(slot, entry);
        }
    }
    Ok(entries)
}

/// Says why `DirEntry::decode` rejected slot `slot` (it reports only "corrupt").
fn diagnose_entry(slot: u64, bytes: &[u8], sb: &Superblock) -> Corruption {
    let raw_name = &bytes[..NAME_MAX];
    let name_len = raw_name.iter().position(|&b| b == 0).unwrap_or(NAME_MAX);
    let name = &raw_name[..name_len];
    let padding_clean =
        raw_name[name_len..].iter().all(|&b| b == 0) && bytes[NAME_MAX..16] == [0, 0];
    if check_name(name).is_err() || !padding_clean {
        return Corruption::EntryName { slot };
    }
    let field = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let (start_block, size) = (field(16), field(24));
    let blocks = size.div_ceil(BLOCK_SIZE);
    if blocks == 0 {
        Corruption::EmptyFileStart {
            slot,
            name: lossy(name),
            start_block,
        }
    } else {
        Corruption::EntryExtent {
            slot,
            name: lossy(name),
            start_block,
            blocks,
            data_start: sb.data_start(),
            last_block: sb.total_blocks - 1,
        }
    }
}

/// Checks that no two extents share a block and that every file block is marked used.
/// Entries have already been decoded, so every extent lies inside the data area.
fn check_extents(entries: &BTreeMap<u64, DirEntry>, free_map: &[u8]) -> Result<(), Corruption> {
    let mut extents: Vec<&DirEntry> = entries.values().filter(|e| e.blocks() > 0).collect();
    extents.sort_by_key(|e| e.start_block);
    // The extent reaching furthest among those starting earlier: a later extent overlaps
    // some earlier one iff it starts before this one ends.
    let mut furthest: Option<&DirEntry> = None;
    for &entry in &extents {
        if let Some(previous) = furthest
            && entry.start_block < previous.start_block + previous.blocks()
        {
            return Err(Corruption::Overlap {
                first: lossy(previous.name()),
                second: lossy(entry.name()),
                block: entry.start_block,
            });
        }
        let end = entry.start_block + entry.blocks();
        if furthest.is_none_or(|f| end > f.start_block + f.blocks()) {
            furthest = Some(entry);
        }
    }
    // No overlaps, so this visits each data block at most once.
    for entry in extents {
        let end = entry.start_block + entry.blocks();
        if let Some(block) = (entry.start_block..end).find(|&b| !block_used(free_map, b)) {
            return Err(Corruption::BlockFree {
                name: lossy(entry.name()),
                block,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use abi::fs::{MIN_BLOCKS, mark_blocks};

    const BLOCK: usize = BLOCK_SIZE as usize;

    /// A 16-block image with files "a" (2 blocks) and "b" (1 block), as raw bytes, and its
    /// layout: superblock 0, free map 1, directory 2, data from 3.
    fn good_image() -> Vec<u8> {
        let dir = TempDir::new("good");
        let path = dir.join("disk.img");
        let mut image = DiskImage::create(&path, 16 * BLOCK_SIZE).unwrap();
        image.put(b"a", &[1; 2 * BLOCK]).unwrap();
        image.put(b"b", &[2; 10]).unwrap();
        std::fs::read(&path).unwrap()
    }

    /// Writes `bytes` to a fresh file and opens it; returns the error message with the path
    /// replaced by `IMG`.
    fn open_error(bytes: &[u8]) -> String {
        let dir = TempDir::new("corrupt");
        let path = dir.join("disk.img");
        std::fs::write(&path, bytes).unwrap();
        let err = DiskImage::open(&path).unwrap_err();
        err.to_string().replace(&path.display().to_string(), "IMG")
    }

    fn slot_mut(bytes: &mut [u8], slot: usize) -> &mut [u8] {
        let at = 2 * BLOCK + slot * DIR_ENTRY_SIZE;
        &mut bytes[at..at + DIR_ENTRY_SIZE]
    }

    fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
        bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    #[test]
    fn a_good_image_opens() {
        let dir = TempDir::new("opens");
        let path = dir.join("disk.img");
        std::fs::write(&path, good_image()).unwrap();
        let image = DiskImage::open(&path).unwrap();
        assert_eq!(image.list().len(), 2);
        assert_eq!(image.get(b"b").unwrap(), [2; 10]);
    }

    #[test]
    fn missing_file() {
        let dir = TempDir::new("missing");
        let path = dir.join("nope.img");
        assert_eq!(
            DiskImage::open(&path).unwrap_err().to_string(),
            format!(
                "cannot open disk image {}: No such file or directory (os error 2)",
                path.display()
            )
        );
    }

    #[test]
    fn too_short() {
        assert_eq!(
            open_error(&[0; 100]),
            "corrupt disk image IMG: the file is 100 bytes, smaller than the smallest disk \
             (16384 bytes)"
        );
    }

    #[test]
    fn bad_magic() {
        let mut bytes = good_image();
        bytes[0] ^= 0xff;
        assert_eq!(
            open_error(&bytes),
            "corrupt disk image IMG: bad magic number: not a vmm disk image (make one with \
             `vmm disk create`)"
        );
        assert_eq!(
            open_error(&vec![0; MIN_BLOCKS as usize * BLOCK]),
            "corrupt disk image IMG: bad magic number: not a vmm disk image (make one with \
             `vmm disk create`)"
        );
    }

    #[test]
    fn bad_version() {
        let mut bytes = good_image();
        bytes[8] = 7;
        assert_eq!(
            open_error(&bytes),
            "corrupt disk image IMG: file-system version 7, but this vmm reads only version 1"
        );
    }

    #[test]
    fn superblock_larger_than_the_file() {
        let mut bytes = good_image();
        bytes.truncate(15 * BLOCK);
        assert_eq!(
            open_error(&bytes),
            "corrupt disk image IMG: the superblock's layout contradicts itself or the file \
             size (15 blocks)"
        );
    }

    #[test]
    fn metadata_marked_free() {
        let mut bytes = good_image();
        mark_blocks(&mut bytes[BLOCK..2 * BLOCK], 2, 1, false);
        assert_eq!(
            open_error(&bytes),
            "corrupt disk image IMG: metadata block 2 is marked free in the free map"
        );
    }

    #[test]
    fn malformed_name() {
        let mut bytes = good_image();
        slot_mut(&mut bytes, 1)[0] = b'/';
        assert_eq!(
            open_error(&bytes),
            "corrupt disk image IMG: directory entry 1 holds a malformed name"
        );
        let mut bytes = good_image();
        slot_mut(&mut bytes, 0)[5] = b'x'; // after the NUL ending "a"
        assert_eq!(
            open_error(&bytes),
            "corrupt disk image IMG: directory entry 0 holds a malformed name"
        );
    }

    #[test]
    fn extent_outside_the_disk() {
        let mut bytes = good_image();
        put_u64(slot_mut(&mut bytes, 1), 16, 16);
        assert_eq!(
            open_error(&bytes),
            "corrupt disk image IMG: directory entry 1 (\"b\"): 1 blocks at block 16 lie \
             outside the data area (blocks 3 to 15)"
        );
        let mut bytes = good_image();
        put_u64(slot_mut(&mut bytes, 0), 24, u64::MAX);
        assert!(open_error(&bytes).contains("directory entry 0 (\"a\"): 4503599627370496 blocks"));
        let mut bytes = good_image();
        put_u64(slot_mut(&mut bytes, 0), 16, 1);
        assert_eq!(
            open_error(&bytes),
            "corrupt disk image IMG: directory entry 0 (\"a\"): 2 blocks at block 1 lie \
             outside the data area (blocks 3 to 15)",
            "extent over the metadata"
        );
    }

    #[test]
    fn empty_file_with_a_start_block() {
        let mut bytes = good_image();
        let slot = slot_mut(&mut bytes, 2);
        DirEntry::new(b"e", 9, 0).unwrap().encode(slot);
        assert_eq!(
            open_error(&bytes),
            "corrupt disk image IMG: directory entry 2 (\"e\"): an empty file must have start \
             block 0, not 9"
        );
    }

    #[test]
    fn duplicate_names() {
        let mut bytes = good_image();
        DirEntry::new(b"a", 0, 0)
            .unwrap()
            .encode(slot_mut(&mut bytes, 5));
        assert_eq!(
            open_error(&bytes),
            "corrupt disk image IMG: directory entries 0 and 5 both name \"a\""
        );
    }

    #[test]
    fn overlapping_extents() {
        // "a" owns blocks 3 and 4, "b" block 5; make "b" start at 4.
        let mut bytes = good_image();
        put_u64(slot_mut(&mut bytes, 1), 16, 4);
        assert_eq!(
            open_error(&bytes),
            "corrupt disk image IMG: files \"a\" and \"b\" both use block 4"
        );
        // A short extent inside a long one that starts earlier, with a third in between
        // in slot order.
        let mut bytes = good_image();
        mark_blocks(&mut bytes[BLOCK..2 * BLOCK], 3, 13, true);
        DirEntry::new(b"long", 6, 8 * BLOCK_SIZE)
            .unwrap()
            .encode(slot_mut(&mut bytes, 2));
        DirEntry::new(b"inner", 10, 1)
            .unwrap()
            .encode(slot_mut(&mut bytes, 3));
        assert_eq!(
            open_error(&bytes),
            "corrupt disk image IMG: files \"long\" and \"inner\" both use block 10"
        );
    }

    #[test]
    fn file_blocks_marked_free() {
        let mut bytes = good_image();
        mark_blocks(&mut bytes[BLOCK..2 * BLOCK], 4, 1, false);
        assert_eq!(
            open_error(&bytes),
            "corrupt disk image IMG: block 4 of file \"a\" is marked free in the free map"
        );
    }

    #[test]
    fn garbage_never_panics() {
        // Every one-byte corruption of the superblock's fields, the free map's first bytes
        // and the first directory slots either opens or fails cleanly.
        let good = good_image();
        let dir = TempDir::new("garbage");
        let path = dir.join("disk.img");
        let offsets = (0..64)
            .chain(BLOCK..BLOCK + 4)
            .chain(2 * BLOCK..2 * BLOCK + 96);
        for at in offsets {
            for value in [0x00, 0x01, 0x2f, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[at] = value;
                std::fs::write(&path, &bytes).unwrap();
                if let Ok(image) = DiskImage::open(&path) {
                    for file in image.list() {
                        let _ = image.get(file.name.as_bytes());
                    }
                }
            }
        }
    }
}
