//! The file-system disk format, shared by the VMM's formatter and the kernel.
//!
//! A flat file system with Pintos base semantics: one root directory, names of 1 to
//! [`NAME_MAX`] bytes, and each file in one contiguous extent whose size is fixed when the
//! file is created. The unit is a 4 KiB block (8 sectors of 512 bytes), so whole pages move
//! between the disk and memory by DMA.
//!
//! ```text
//! block 0                         superblock
//! blocks 1 .. 1+F                 free map: bit b set = block b in use (F = freemap_blocks)
//! blocks 1+F .. 1+F+D             root directory: DIR_ENTRY_SIZE-byte entries (D = dir_blocks)
//! blocks data_start ..            file data
//! ```
//! Every multi-byte field is little-endian. The free map marks the metadata blocks as used.
//! A file of size 0 owns no block (`start_block` 0).
//!
//! Everything here is pure and works on byte slices without allocating, so it is the same
//! code on both sides; every decoder treats its input as untrusted and checks it.

/// Bytes per sector (the block devices' unit).
pub const SECTOR_SIZE: u64 = 512;
/// Bytes per file-system block.
pub const BLOCK_SIZE: u64 = 4096;
/// Sectors per block.
pub const SECTORS_PER_BLOCK: u64 = BLOCK_SIZE / SECTOR_SIZE;
/// `b"VMMFS01\0"` as a little-endian `u64`.
pub const FS_MAGIC: u64 = u64::from_le_bytes(*b"VMMFS01\0");
/// Format version.
pub const FS_VERSION: u32 = 1;
/// Longest file name in bytes.
pub const NAME_MAX: usize = 14;
/// Bytes per directory entry.
pub const DIR_ENTRY_SIZE: usize = 32;
/// Directory entries per block.
pub const DIR_ENTRIES_PER_BLOCK: u64 = BLOCK_SIZE / DIR_ENTRY_SIZE as u64;
/// Directory blocks in a freshly formatted disk: 128 entries.
pub const DEFAULT_DIR_BLOCKS: u64 = 1;
/// Smallest disk: superblock, one free-map block, the directory, one data block.
pub const MIN_BLOCKS: u64 = 3 + DEFAULT_DIR_BLOCKS;
/// Largest disk the format describes: one free-map block per 32768 blocks (128 MiB); cap
/// at 64 GiB so the free map stays small.
pub const MAX_BLOCKS: u64 = 16 * 1024 * 1024;

/// Why on-disk data or a request is unacceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsError {
    /// The superblock's magic number is wrong: not a disk of this format.
    BadMagic,
    /// A version this code does not know.
    BadVersion(u32),
    /// Fields that contradict each other or the disk size.
    Corrupt,
    /// The disk is too small or too large for the format.
    BadSize,
    /// A name that is empty, longer than [`NAME_MAX`], or holds a `/` or NUL byte.
    BadName,
}

/// The superblock (block 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Blocks on the disk.
    pub total_blocks: u64,
    /// First free-map block (always 1).
    pub freemap_start: u64,
    /// Free-map blocks.
    pub freemap_blocks: u64,
    /// First directory block.
    pub dir_start: u64,
    /// Directory blocks.
    pub dir_blocks: u64,
}

impl Superblock {
    /// The layout of a fresh disk of `total_blocks` blocks.
    pub const fn for_disk(total_blocks: u64) -> Result<Self, FsError> {
        if total_blocks < MIN_BLOCKS || total_blocks > MAX_BLOCKS {
            return Err(FsError::BadSize);
        }
        let freemap_blocks = total_blocks.div_ceil(BLOCK_SIZE * 8);
        let sb = Superblock {
            total_blocks,
            freemap_start: 1,
            freemap_blocks,
            dir_start: 1 + freemap_blocks,
            dir_blocks: DEFAULT_DIR_BLOCKS,
        };
        if sb.data_start() >= total_blocks {
            return Err(FsError::BadSize);
        }
        Ok(sb)
    }

    /// First data block.
    pub const fn data_start(&self) -> u64 {
        self.dir_start + self.dir_blocks
    }

    /// Directory entries.
    pub const fn dir_entries(&self) -> u64 {
        self.dir_blocks * DIR_ENTRIES_PER_BLOCK
    }

    /// Writes the superblock into the first bytes of `block` (which must be at least 64
    /// bytes; the rest of the block is left alone).
    pub fn encode(&self, block: &mut [u8]) {
        put_u64(block, 0, FS_MAGIC);
        put_u32(block, 8, FS_VERSION);
        put_u32(block, 12, BLOCK_SIZE as u32);
        put_u64(block, 16, self.total_blocks);
        put_u64(block, 24, self.freemap_start);
        put_u64(block, 32, self.freemap_blocks);
        put_u64(block, 40, self.dir_start);
        put_u64(block, 48, self.dir_blocks);
    }

    /// Reads and checks a superblock from block 0 of a disk of `disk_blocks` blocks.
    pub fn decode(block: &[u8], disk_blocks: u64) -> Result<Self, FsError> {
        if block.len() < 64 {
            return Err(FsError::Corrupt);
        }
        if get_u64(block, 0) != FS_MAGIC {
            return Err(FsError::BadMagic);
        }
        let version = get_u32(block, 8);
        if version != FS_VERSION {
            return Err(FsError::BadVersion(version));
        }
        let sb = Superblock {
            total_blocks: get_u64(block, 16),
            freemap_start: get_u64(block, 24),
            freemap_blocks: get_u64(block, 32),
            dir_start: get_u64(block, 40),
            dir_blocks: get_u64(block, 48),
        };
        let consistent = get_u32(block, 12) as u64 == BLOCK_SIZE
            && sb.total_blocks >= MIN_BLOCKS
            && sb.total_blocks <= MAX_BLOCKS
            && sb.total_blocks <= disk_blocks
            && sb.freemap_start == 1
            && sb.freemap_blocks == sb.total_blocks.div_ceil(BLOCK_SIZE * 8)
            && sb.dir_start == 1 + sb.freemap_blocks
            && sb.dir_blocks >= 1
            && sb.dir_blocks <= sb.total_blocks
            && sb.data_start() < sb.total_blocks;
        if consistent {
            Ok(sb)
        } else {
            Err(FsError::Corrupt)
        }
    }
}

/// A directory entry. An entry is in use iff its name is non-empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name, NUL-padded.
    pub name: [u8; NAME_MAX],
    /// First block of the extent (0 for an empty file).
    pub start_block: u64,
    /// File size in bytes.
    pub size: u64,
}

impl DirEntry {
    /// An entry for `name` (checked with [`check_name`]).
    pub fn new(name: &[u8], start_block: u64, size: u64) -> Result<Self, FsError> {
        check_name(name)?;
        let mut padded = [0u8; NAME_MAX];
        padded[..name.len()].copy_from_slice(name);
        Ok(DirEntry {
            name: padded,
            start_block,
            size,
        })
    }

    /// The name without padding.
    pub fn name(&self) -> &[u8] {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_MAX);
        &self.name[..len]
    }

    /// Blocks the file's extent occupies.
    pub const fn blocks(&self) -> u64 {
        self.size.div_ceil(BLOCK_SIZE)
    }

    /// Writes the entry into a [`DIR_ENTRY_SIZE`]-byte slot.
    pub fn encode(&self, slot: &mut [u8]) {
        slot[..NAME_MAX].copy_from_slice(&self.name);
        slot[NAME_MAX..16].fill(0);
        put_u64(slot, 16, self.start_block);
        put_u64(slot, 24, self.size);
    }

    /// Reads a slot: `Ok(None)` for a free slot, an error if the slot is malformed or its
    /// extent lies outside the data area of `sb`.
    pub fn decode(slot: &[u8], sb: &Superblock) -> Result<Option<Self>, FsError> {
        if slot.len() < DIR_ENTRY_SIZE {
            return Err(FsError::Corrupt);
        }
        if slot[0] == 0 {
            return Ok(None);
        }
        let mut name = [0u8; NAME_MAX];
        name.copy_from_slice(&slot[..NAME_MAX]);
        let entry = DirEntry {
            name,
            start_block: get_u64(slot, 16),
            size: get_u64(slot, 24),
        };
        check_name(entry.name()).map_err(|_| FsError::Corrupt)?;
        // Padding after the name must be zero, so a name has exactly one encoding.
        if entry.name[entry.name().len()..].iter().any(|&b| b != 0) || slot[NAME_MAX..16] != [0, 0]
        {
            return Err(FsError::Corrupt);
        }
        let blocks = entry.blocks();
        let in_range = if blocks == 0 {
            entry.start_block == 0
        } else {
            entry.start_block >= sb.data_start()
                && entry
                    .start_block
                    .checked_add(blocks)
                    .is_some_and(|end| end <= sb.total_blocks)
        };
        if in_range {
            Ok(Some(entry))
        } else {
            Err(FsError::Corrupt)
        }
    }
}

/// Checks a file name: 1 to [`NAME_MAX`] bytes, no NUL and no `/`.
pub fn check_name(name: &[u8]) -> Result<(), FsError> {
    if name.is_empty() || name.len() > NAME_MAX || name.iter().any(|&b| b == 0 || b == b'/') {
        Err(FsError::BadName)
    } else {
        Ok(())
    }
}

/// Whether block `block` is marked used in free-map bytes `map` (bit `block % 8` of byte
/// `block / 8`). Blocks beyond the map count as used.
pub fn block_used(map: &[u8], block: u64) -> bool {
    map.get((block / 8) as usize)
        .is_none_or(|byte| byte & (1 << (block % 8)) != 0)
}

/// Marks blocks `[start, start + count)` used or free in `map`.
///
/// Panics if the range is beyond the map (callers check ranges against the superblock).
pub fn mark_blocks(map: &mut [u8], start: u64, count: u64, used: bool) {
    for block in start..start + count {
        let byte = &mut map[(block / 8) as usize];
        if used {
            *byte |= 1 << (block % 8);
        } else {
            *byte &= !(1 << (block % 8));
        }
    }
}

/// The first run of `count` free blocks in `[from, total)`, first fit.
pub fn find_free_run(map: &[u8], from: u64, total: u64, count: u64) -> Option<u64> {
    if count == 0 {
        return Some(0);
    }
    let mut run_start = from;
    let mut run_len = 0;
    for block in from..total {
        if block_used(map, block) {
            run_len = 0;
            run_start = block + 1;
        } else {
            run_len += 1;
            if run_len == count {
                return Some(run_start);
            }
        }
    }
    None
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(bytes)
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_a_fresh_disk() {
        let sb = Superblock::for_disk(2048).unwrap();
        assert_eq!(
            (
                sb.freemap_start,
                sb.freemap_blocks,
                sb.dir_start,
                sb.dir_blocks
            ),
            (1, 1, 2, 1)
        );
        assert_eq!(sb.data_start(), 3);
        assert_eq!(sb.dir_entries(), 128);
        // 32768 blocks fit one free-map block; one more needs a second.
        assert_eq!(Superblock::for_disk(32768).unwrap().freemap_blocks, 1);
        assert_eq!(Superblock::for_disk(32769).unwrap().freemap_blocks, 2);
        assert_eq!(Superblock::for_disk(MIN_BLOCKS - 1), Err(FsError::BadSize));
        assert_eq!(
            Superblock::for_disk(MIN_BLOCKS).map(|s| s.data_start()),
            Ok(MIN_BLOCKS - 1)
        );
        assert_eq!(Superblock::for_disk(MAX_BLOCKS + 1), Err(FsError::BadSize));
    }

    #[test]
    fn superblock_round_trip_and_checks() {
        let sb = Superblock::for_disk(40000).unwrap();
        let mut block = [0u8; BLOCK_SIZE as usize];
        sb.encode(&mut block);
        assert_eq!(Superblock::decode(&block, 40000), Ok(sb));
        assert_eq!(
            Superblock::decode(&block, 39999),
            Err(FsError::Corrupt),
            "disk smaller than the fs"
        );
        let mut bad = block;
        bad[0] ^= 1;
        assert_eq!(Superblock::decode(&bad, 40000), Err(FsError::BadMagic));
        let mut bad = block;
        bad[8] = 9;
        assert_eq!(Superblock::decode(&bad, 40000), Err(FsError::BadVersion(9)));
        let mut bad = block;
        put_u64(&mut bad, 48, 0);
        assert_eq!(
            Superblock::decode(&bad, 40000),
            Err(FsError::Corrupt),
            "no directory"
        );
        let mut bad = block;
        put_u64(&mut bad, 32, 7);
        assert_eq!(
            Superblock::decode(&bad, 40000),
            Err(FsError::Corrupt),
            "free map size"
        );
        assert_eq!(
            Superblock::decode(&block[..10], 40000),
            Err(FsError::Corrupt)
        );
    }

    #[test]
    fn names() {
        assert_eq!(check_name(b"a"), Ok(()));
        assert_eq!(check_name(b"exactly14bytes"), Ok(()));
        assert_eq!(check_name(b"fifteen15bytes!"), Err(FsError::BadName));
        assert_eq!(check_name(b""), Err(FsError::BadName));
        assert_eq!(check_name(b"a/b"), Err(FsError::BadName));
        assert_eq!(check_name(b"a\0b"), Err(FsError::BadName));
    }

    #[test]
    fn dir_entry_round_trip_and_checks() {
        let sb = Superblock::for_disk(100).unwrap();
        let entry = DirEntry::new(b"exactly14bytes", sb.data_start(), 3 * BLOCK_SIZE + 1).unwrap();
        assert_eq!(entry.blocks(), 4);
        let mut slot = [0u8; DIR_ENTRY_SIZE];
        entry.encode(&mut slot);
        assert_eq!(DirEntry::decode(&slot, &sb), Ok(Some(entry)));
        assert_eq!(
            DirEntry::decode(&slot, &sb).unwrap().unwrap().name(),
            b"exactly14bytes"
        );
        assert_eq!(DirEntry::decode(&[0u8; DIR_ENTRY_SIZE], &sb), Ok(None));

        let empty = DirEntry::new(b"empty", 0, 0).unwrap();
        empty.encode(&mut slot);
        assert_eq!(DirEntry::decode(&slot, &sb), Ok(Some(empty)));

        for (start, size) in [
            (1, 10),
            (sb.data_start(), 1 << 40),
            (99, 2 * BLOCK_SIZE),
            (0, 1),
            (7, 0),
        ] {
            DirEntry {
                start_block: start,
                size,
                ..entry
            }
            .encode(&mut slot);
            assert_eq!(
                DirEntry::decode(&slot, &sb),
                Err(FsError::Corrupt),
                "start {start} size {size}"
            );
        }
        entry.encode(&mut slot);
        slot[3] = 0;
        slot[5] = b'x';
        assert_eq!(
            DirEntry::decode(&slot, &sb),
            Err(FsError::Corrupt),
            "bytes after the NUL"
        );
        assert_eq!(DirEntry::new(b"", 0, 0), Err(FsError::BadName));
    }

    #[test]
    fn free_map() {
        let mut map = [0u8; 4];
        mark_blocks(&mut map, 0, 3, true);
        mark_blocks(&mut map, 5, 2, true);
        assert!(block_used(&map, 2) && !block_used(&map, 3) && block_used(&map, 6));
        assert!(block_used(&map, 32), "beyond the map counts as used");
        assert_eq!(find_free_run(&map, 0, 32, 2), Some(3));
        assert_eq!(find_free_run(&map, 0, 32, 3), Some(7));
        assert_eq!(find_free_run(&map, 0, 32, 26), None);
        assert_eq!(find_free_run(&map, 0, 32, 25), Some(7));
        mark_blocks(&mut map, 5, 2, false);
        assert_eq!(find_free_run(&map, 0, 32, 4), Some(3));
    }
}
