//! The file backend of a virtio block device: moves sectors between the disk file and guest
//! memory.
//!
//! Invariants: every file access is positioned I/O at `sector * 512` (the file offset is never
//! used, so nothing else sharing the file can disturb it) and lies within the capacity fixed
//! at creation; guest memory is touched only through `vm-memory`, which checks each access.
//! Data goes through one reused host bounce buffer of [`BOUNCE_BYTES`]: a request costs one
//! `pread`/`pwrite` per [`BOUNCE_BYTES`] (not per descriptor or sector), and a hostile chain
//! cannot make the VMM allocate more.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use abi::fs::SECTOR_SIZE;
use vm_memory::{Bytes, GuestAddress, GuestMemoryError, GuestMemoryMmap};

/// Size of the host bounce buffer: the most one `pread`/`pwrite` moves.
pub const BOUNCE_BYTES: usize = 256 * 1024;

/// Why the disk could not be opened or a request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot read the size of the disk file: {0}")]
    Metadata(#[source] io::Error),
    #[error(
        "the disk file is {len_bytes} bytes, not a whole number of {SECTOR_SIZE}-byte sectors; \
         pad or truncate it"
    )]
    UnalignedSize { len_bytes: u64 },
    #[error("sector {sector} has no byte offset in a 64-bit file")]
    Overflow { sector: u64 },
    #[error("reading {len_bytes} bytes at disk byte {offset_bytes}: {source}")]
    ReadFile {
        offset_bytes: u64,
        len_bytes: usize,
        source: io::Error,
    },
    #[error("writing {len_bytes} bytes at disk byte {offset_bytes}: {source}")]
    WriteFile {
        offset_bytes: u64,
        len_bytes: usize,
        source: io::Error,
    },
    #[error("flushing the disk file: {0}")]
    Flush(#[source] io::Error),
    #[error("copying to or from guest memory: {0}")]
    GuestMemory(#[source] GuestMemoryError),
}

/// A disk image in a host file.
#[derive(Debug)]
pub struct FileBackend {
    file: File,
    capacity_sectors: u64,
    /// Reused between requests; always [`BOUNCE_BYTES`] long.
    bounce: Vec<u8>,
}

impl FileBackend {
    /// A backend over `file`, whose length must be a whole number of sectors.
    pub fn new(file: File) -> Result<Self, BackendError> {
        let len_bytes = file.metadata().map_err(BackendError::Metadata)?.len();
        if !len_bytes.is_multiple_of(SECTOR_SIZE) {
            return Err(BackendError::UnalignedSize { len_bytes });
        }
        Ok(FileBackend {
            file,
            capacity_sectors: len_bytes / SECTOR_SIZE,
            bounce: vec![0; BOUNCE_BYTES],
        })
    }

    /// Size of the disk in 512-byte sectors.
    pub fn capacity_sectors(&self) -> u64 {
        self.capacity_sectors
    }

    /// Reads the disk from `sector` into the guest buffers `data`, in order. Returns the
    /// bytes written to guest memory. The caller has checked the range against the capacity.
    pub fn read(
        &mut self,
        memory: &GuestMemoryMmap,
        sector: u64,
        data: &[(GuestAddress, u32)],
    ) -> Result<u64, BackendError> {
        self.transfer(sector, data, |file, cursor, chunk, offset_bytes| {
            file.read_exact_at(chunk, offset_bytes)
                .map_err(|source| BackendError::ReadFile {
                    offset_bytes,
                    len_bytes: chunk.len(),
                    source,
                })?;
            cursor.scatter(memory, chunk)
        })
    }

    /// Writes the guest buffers `data`, in order, to the disk from `sector`. Returns the
    /// bytes written to the disk.
    pub fn write(
        &mut self,
        memory: &GuestMemoryMmap,
        sector: u64,
        data: &[(GuestAddress, u32)],
    ) -> Result<u64, BackendError> {
        self.transfer(sector, data, |file, cursor, chunk, offset_bytes| {
            cursor.gather(memory, chunk)?;
            file.write_all_at(chunk, offset_bytes)
                .map_err(|source| BackendError::WriteFile {
                    offset_bytes,
                    len_bytes: chunk.len(),
                    source,
                })
        })
    }

    /// Moves the bytes of the guest buffers `data` to or from the disk from `sector`, one
    /// bounce-buffer chunk at a time: `step` moves one chunk (the buffer, with the file and
    /// the cursor over `data`) at its byte offset on the disk. Returns the bytes moved.
    fn transfer(
        &mut self,
        sector: u64,
        data: &[(GuestAddress, u32)],
        mut step: impl FnMut(&File, &mut Cursor, &mut [u8], u64) -> Result<(), BackendError>,
    ) -> Result<u64, BackendError> {
        let mut offset_bytes = byte_offset(sector)?;
        let mut cursor = Cursor::new(data);
        let mut remaining = cursor.remaining_bytes();
        while remaining > 0 {
            let chunk = &mut self.bounce[..chunk_len(remaining)];
            step(&self.file, &mut cursor, chunk, offset_bytes)?;
            remaining -= chunk.len() as u64;
            offset_bytes += chunk.len() as u64;
        }
        Ok(cursor.done_bytes)
    }

    /// Makes every completed write durable.
    pub fn flush(&mut self) -> Result<(), BackendError> {
        self.file.sync_data().map_err(BackendError::Flush)
    }
}

/// Writes `bytes` into the guest buffers `data`, in order, stopping at the end of either.
/// Returns the bytes written.
pub fn write_to_guest(
    memory: &GuestMemoryMmap,
    data: &[(GuestAddress, u32)],
    bytes: &[u8],
) -> Result<u64, BackendError> {
    let mut cursor = Cursor::new(data);
    let n = usize::try_from(cursor.remaining_bytes()).map_or(bytes.len(), |r| r.min(bytes.len()));
    cursor.scatter(memory, &bytes[..n])?;
    Ok(cursor.done_bytes)
}

fn byte_offset(sector: u64) -> Result<u64, BackendError> {
    sector
        .checked_mul(SECTOR_SIZE)
        .ok_or(BackendError::Overflow { sector })
}

fn chunk_len(remaining_bytes: u64) -> usize {
    usize::try_from(remaining_bytes).map_or(BOUNCE_BYTES, |r| r.min(BOUNCE_BYTES))
}

/// A position in a list of guest buffers, for copying a byte stream across them.
struct Cursor<'a> {
    segments: &'a [(GuestAddress, u32)],
    /// Bytes already copied in `segments[0]`.
    offset_in_first: u32,
    done_bytes: u64,
}

impl<'a> Cursor<'a> {
    fn new(segments: &'a [(GuestAddress, u32)]) -> Self {
        Cursor {
            segments,
            offset_in_first: 0,
            done_bytes: 0,
        }
    }

    fn remaining_bytes(&self) -> u64 {
        let total: u64 = self.segments.iter().map(|&(_, len)| u64::from(len)).sum();
        total - u64::from(self.offset_in_first)
    }

    /// The next piece of at most `max_bytes`: its guest address and length. Skips empty
    /// and finished segments; `None` at the end.
    fn next_piece(
        &mut self,
        max_bytes: usize,
    ) -> Result<Option<(GuestAddress, usize)>, BackendError> {
        while let Some(&(addr, len)) = self.segments.first() {
            let left = len - self.offset_in_first;
            if left == 0 {
                self.segments = &self.segments[1..];
                self.offset_in_first = 0;
                continue;
            }
            let n = (left as usize).min(max_bytes);
            let at = addr.0.checked_add(u64::from(self.offset_in_first)).ok_or(
                BackendError::GuestMemory(GuestMemoryError::GuestAddressOverflow),
            )?;
            return Ok(Some((GuestAddress(at), n)));
        }
        Ok(None)
    }

    fn advance(&mut self, n: usize) {
        self.offset_in_first += n as u32;
        self.done_bytes += n as u64;
    }

    /// Copies all of `bytes` into the buffers from the current position.
    fn scatter(&mut self, memory: &GuestMemoryMmap, mut bytes: &[u8]) -> Result<(), BackendError> {
        while !bytes.is_empty() {
            let Some((addr, n)) = self.next_piece(bytes.len())? else {
                break;
            };
            memory
                .write_slice(&bytes[..n], addr)
                .map_err(BackendError::GuestMemory)?;
            bytes = &bytes[n..];
            self.advance(n);
        }
        Ok(())
    }

    /// Fills all of `bytes` from the buffers at the current position.
    fn gather(
        &mut self,
        memory: &GuestMemoryMmap,
        mut bytes: &mut [u8],
    ) -> Result<(), BackendError> {
        while !bytes.is_empty() {
            let Some((addr, n)) = self.next_piece(bytes.len())? else {
                break;
            };
            let (piece, rest) = bytes.split_at_mut(n);
            memory
                .read_slice(piece, addr)
                .map_err(BackendError::GuestMemory)?;
            bytes = rest;
            self.advance(n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap()
    }

    #[test]
    fn rejects_partial_sector_files() {
        let dir = TempDir::new("backend-unaligned");
        let file = dir.sparse_file("disk", 1000);
        assert!(matches!(
            FileBackend::new(file),
            Err(BackendError::UnalignedSize { len_bytes: 1000 })
        ));
        let dir = TempDir::new("backend-aligned");
        let file = dir.sparse_file("disk", 4096);
        assert_eq!(FileBackend::new(file).unwrap().capacity_sectors(), 8);
    }

    #[test]
    fn scattered_round_trip_across_bounce_chunks() {
        let sectors = 2 * (BOUNCE_BYTES as u64 / SECTOR_SIZE) + 8;
        let dir = TempDir::new("backend-round-trip");
        let file = dir.sparse_file("disk", sectors * SECTOR_SIZE);
        let mut disk = FileBackend::new(file.try_clone().unwrap()).unwrap();
        let mem = memory();
        // Uneven pieces, one empty, in non-ascending guest order; the total is 513 KiB.
        let out = [
            (GuestAddress(0x10_0000), 300 * 1024),
            (GuestAddress(0x1000), 0),
            (GuestAddress(0x2000), 213 * 1024 - 100),
            (GuestAddress(0x9_0000), 100),
        ];
        let total: usize = out.iter().map(|&(_, l)| l as usize).sum();
        let pattern: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        write_to_guest(&mem, &out, &pattern).unwrap();
        assert_eq!(disk.write(&mem, 3, &out).unwrap(), total as u64);
        let mut on_disk = vec![0u8; total];
        file.read_exact_at(&mut on_disk, 3 * SECTOR_SIZE).unwrap();
        assert_eq!(on_disk, pattern);

        let back = [
            (GuestAddress(0x18_0000), 1024),
            (GuestAddress(0x3_0000), total as u32 - 1024),
        ];
        assert_eq!(disk.read(&mem, 3, &back).unwrap(), total as u64);
        let mut got = vec![0u8; total];
        mem.read_slice(&mut got[..1024], back[0].0).unwrap();
        mem.read_slice(&mut got[1024..], back[1].0).unwrap();
        assert_eq!(got, pattern);
        disk.flush().unwrap();
    }

    #[test]
    fn errors_do_not_escape_the_file_or_memory() {
        let dir = TempDir::new("backend-short");
        let file = dir.sparse_file("disk", 4096);
        let mut disk = FileBackend::new(file.try_clone().unwrap()).unwrap();
        let mem = memory();
        // The file shrank behind the device's back: reading past its end is an error.
        file.set_len(1024).unwrap();
        let data = [(GuestAddress(0), 2048)];
        assert!(matches!(
            disk.read(&mem, 0, &data),
            Err(BackendError::ReadFile { .. })
        ));
        // Guest memory the parser would have rejected is still caught here.
        let outside = [(GuestAddress(0x40_0000), 512)];
        assert!(matches!(
            disk.write(&mem, 0, &outside),
            Err(BackendError::GuestMemory(_))
        ));
        assert!(matches!(
            disk.read(&mem, u64::MAX, &data),
            Err(BackendError::Overflow { .. })
        ));
    }

    #[test]
    fn write_to_guest_stops_at_the_shorter() {
        let mem = memory();
        let data = [(GuestAddress(0x100), 4), (GuestAddress(0x200), 4)];
        assert_eq!(write_to_guest(&mem, &data, b"abcdefghij").unwrap(), 8);
        assert_eq!(write_to_guest(&mem, &data, b"xyz").unwrap(), 3);
        let mut got = [0u8; 4];
        mem.read_slice(&mut got, GuestAddress(0x100)).unwrap();
        assert_eq!(&got, b"xyzd");
        mem.read_slice(&mut got, GuestAddress(0x200)).unwrap();
        assert_eq!(&got, b"efgh");
    }
}
