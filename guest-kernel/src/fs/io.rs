//! Byte-granular disk access on top of whole-sector requests.
//!
//! Sector-aligned spans go straight between the disk and the caller's buffer (DMA, no
//! copy); only a partial first or last sector passes through a 512-byte buffer, and a
//! partial write reads that sector first.

use abi::fs::{BLOCK_SIZE, SECTOR_SIZE, SECTORS_PER_BLOCK};

use crate::drivers::block::BlockDevice;

const SECTOR: usize = SECTOR_SIZE as usize;

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

/// Splits `[offset, offset + len)` into an unaligned head, whole sectors, and a tail.
/// Returns (head length, middle length); the tail is the rest.
fn split(offset: u64, len: usize) -> (usize, usize) {
    let into_sector = (offset % SECTOR_SIZE) as usize;
    let head = if into_sector == 0 {
        0
    } else {
        (SECTOR - into_sector).min(len)
    };
    let middle = (len - head) / SECTOR * SECTOR;
    (head, middle)
}

/// Reads `buf.len()` bytes at byte `offset` of the disk.
pub fn read_bytes(disk: &BlockDevice, offset: u64, buf: &mut [u8]) -> Result<(), ()> {
    let (head, middle) = split(offset, buf.len());
    let mut bounce = [0u8; SECTOR];
    if head > 0 {
        let within = (offset % SECTOR_SIZE) as usize;
        disk.read(offset / SECTOR_SIZE, &mut bounce)
            .map_err(|_| ())?;
        buf[..head].copy_from_slice(&bounce[within..within + head]);
    }
    let sector = (offset + head as u64) / SECTOR_SIZE;
    if middle > 0 {
        disk.read(sector, &mut buf[head..head + middle])
            .map_err(|_| ())?;
    }
    let tail = buf.len() - head - middle;
    if tail > 0 {
        disk.read(sector + (middle / SECTOR) as u64, &mut bounce)
            .map_err(|_| ())?;
        buf[head + middle..].copy_from_slice(&bounce[..tail]);
    }
    Ok(())
}

/// Writes `buf` at byte `offset` of the disk.
pub fn write_bytes(disk: &BlockDevice, offset: u64, buf: &[u8]) -> Result<(), ()> {
    let (head, middle) = split(offset, buf.len());
    let mut bounce = [0u8; SECTOR];
    if head > 0 {
        let within = (offset % SECTOR_SIZE) as usize;
        let sector = offset / SECTOR_SIZE;
        disk.read(sector, &mut bounce).map_err(|_| ())?;
        bounce[within..within + head].copy_from_slice(&buf[..head]);
        disk.write(sector, &bounce).map_err(|_| ())?;
    }
    let sector = (offset + head as u64) / SECTOR_SIZE;
    if middle > 0 {
        disk.write(sector, &buf[head..head + middle])
            .map_err(|_| ())?;
    }
    let tail = buf.len() - head - middle;
    if tail > 0 {
        let last = sector + (middle / SECTOR) as u64;
        disk.read(last, &mut bounce).map_err(|_| ())?;
        bounce[..tail].copy_from_slice(&buf[head + middle..]);
        disk.write(last, &bounce).map_err(|_| ())?;
    }
    Ok(())
}
