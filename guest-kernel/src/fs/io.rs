//! Whole-block disk access for the file system's metadata (files' bytes go through
//! [`super::cache`]).

use abi::fs::{BLOCK_SIZE, SECTORS_PER_BLOCK};

use crate::drivers::block::BlockDevice;

/// Reads whole blocks from `block` into `buf`.
pub fn read_blocks(disk: &BlockDevice, block: u64, buf: &mut [u8]) -> Result<(), ()> {
    debug_assert!((buf.len() as u64).is_multiple_of(BLOCK_SIZE));
    disk.read(block * SECTORS_PER_BLOCK, buf).map_err(|_| ())
}

/// Writes whole blocks from `buf` at `block`.
pub fn write_blocks(disk: &BlockDevice, block: u64, buf: &[u8]) -> Result<(), ()> {
    debug_assert!((buf.len() as u64).is_multiple_of(BLOCK_SIZE));
    disk.write(block * SECTORS_PER_BLOCK, buf).map_err(|_| ())
}
