//! Parsing of virtio-blk requests: a descriptor chain in, a checked [`Request`] out.
//!
//! Guest data is hostile. Parsing is pure (it reads guest memory, writes nothing, does no
//! I/O), uses checked arithmetic throughout, and accepts only this framing:
//!
//! ```text
//! descriptor 0      header: type u32, reserved u32, sector u64 (LE)   device-readable, >= 16 B
//! descriptors 1..n  data buffers                       direction set by the request type
//! descriptor n+1    status: the device writes one byte at its start   device-writable, >= 1 B
//! ```
//!
//! Invariants of a returned [`Request`]: every data buffer and the status byte lie inside
//! guest RAM; for IN/OUT the data is a whole number of sectors and `sector + length` is
//! within the disk; for GET_ID the data holds at least [`ID_BYTES`] bytes. A chain that
//! breaks any rule is a [`RequestError`]; [`status_address`] tells the caller where (if
//! anywhere) it may still report the error.

use abi::fs::SECTOR_SIZE;
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// Bytes of the request header (type, reserved, sector).
pub const HEADER_BYTES: u32 = 16;
/// Bytes of a GET_ID answer (the device's id string, NUL-padded).
pub const ID_BYTES: u32 = VIRTIO_BLK_ID_BYTES;
/// Most descriptors the device walks in one chain. The queue holds at most 256 and the
/// device does not offer indirect descriptors, so a longer chain is the guest misbehaving;
/// the bound also caps what one request can make the VMM allocate.
pub const MAX_CHAIN_DESCRIPTORS: usize = 1024;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Read sectors into device-writable buffers.
    In,
    /// Write sectors from device-readable buffers.
    Out,
    /// Make earlier writes durable.
    Flush,
    /// Write the device id string into a device-writable buffer.
    GetId,
}

/// A well-formed request (see the module invariants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to do.
    pub kind: RequestKind,
    /// First sector for IN/OUT (meaningless for FLUSH and GET_ID).
    pub sector: u64,
    /// The data buffers in chain order: guest address and length in bytes. Empty for FLUSH.
    pub data: Vec<(GuestAddress, u32)>,
    /// Where the status byte goes.
    pub status: GuestAddress,
}

impl Request {
    /// Total bytes of the data buffers (cannot overflow: checked when parsed).
    pub fn data_len_bytes(&self) -> u64 {
        self.data.iter().map(|&(_, len)| u64::from(len)).sum()
    }
}

/// Why a chain is not a request the device serves.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RequestError {
    #[error("the descriptor chain is longer than {MAX_CHAIN_DESCRIPTORS} descriptors")]
    ChainTooLong,
    #[error("the chain has {0} descriptor(s); a request needs a header and a status")]
    ChainTooShort(usize),
    #[error("the last descriptor is not a device-writable status byte")]
    MissingStatus,
    #[error("the header descriptor is device-writable")]
    HeaderWritable,
    #[error("the header descriptor holds {0} bytes, fewer than {HEADER_BYTES}")]
    HeaderTooShort(u32),
    #[error("a data descriptor of a {0:?} request has the wrong direction")]
    WrongDataDirection(RequestKind),
    #[error("{0} data bytes is not a whole number of sectors")]
    UnalignedLength(u64),
    #[error("sectors {sector}+{sectors} lie beyond the disk's {capacity_sectors} sectors")]
    OutOfRange {
        sector: u64,
        sectors: u64,
        capacity_sectors: u64,
    },
    #[error("request arithmetic overflows")]
    Overflow,
    #[error("buffer {addr:#x}+{len:#x} is outside guest memory")]
    OutsideGuestMemory { addr: u64, len: u32 },
    #[error("unknown request type {0}")]
    Unsupported(u32),
    #[error("the GET_ID buffer holds {0} bytes, fewer than {ID_BYTES}")]
    GetIdTooSmall(u64),
}

impl RequestError {
    /// The status byte that reports this error to the driver.
    pub fn status(&self) -> u8 {
        match self {
            RequestError::Unsupported(_) => VIRTIO_BLK_S_UNSUPP as u8,
            _ => VIRTIO_BLK_S_IOERR as u8,
        }
    }
}

/// Takes the descriptors of one chain, at most [`MAX_CHAIN_DESCRIPTORS`]. The chain iterator
/// (virtio-queue) already ends a chain that loops, leaves the table, or whose lengths add up
/// past 4 GiB; this adds the device's own bound.
pub fn collect_chain<I>(chain: I) -> Result<Vec<Descriptor>, RequestError>
where
    I: IntoIterator<Item = Descriptor>,
{
    let descriptors: Vec<Descriptor> = chain.into_iter().take(MAX_CHAIN_DESCRIPTORS + 1).collect();
    if descriptors.len() > MAX_CHAIN_DESCRIPTORS {
        return Err(RequestError::ChainTooLong);
    }
    Ok(descriptors)
}

/// Where the status byte of `chain` goes: the start of its last descriptor, if that one is
/// device-writable, at least a byte long and inside guest RAM. Used to report errors too, so
/// it asks nothing of the rest of the chain.
pub fn status_address(chain: &[Descriptor], memory: &GuestMemoryMmap) -> Option<GuestAddress> {
    let last = chain.last()?;
    let usable = last.is_write_only()
        && last.len() >= 1
        && GuestMemoryBackend::check_range(memory, last.addr(), 1);
    usable.then_some(last.addr())
}

/// Parses `chain` against a disk of `capacity_sectors` sectors. Reads the header from
/// `memory`; writes nothing.
pub fn parse(
    chain: &[Descriptor],
    memory: &GuestMemoryMmap,
    capacity_sectors: u64,
) -> Result<Request, RequestError> {
    if chain.len() > MAX_CHAIN_DESCRIPTORS {
        return Err(RequestError::ChainTooLong);
    }
    let [header, data @ .., status] = chain else {
        return Err(RequestError::ChainTooShort(chain.len()));
    };
    if !status.is_write_only() || status.len() == 0 {
        return Err(RequestError::MissingStatus);
    }
    check_in_memory(memory, status.addr(), 1)?;

    if header.is_write_only() {
        return Err(RequestError::HeaderWritable);
    }
    if header.len() < HEADER_BYTES {
        return Err(RequestError::HeaderTooShort(header.len()));
    }
    check_in_memory(memory, header.addr(), HEADER_BYTES)?;
    let mut raw = [0u8; HEADER_BYTES as usize];
    memory
        .read_slice(&mut raw, header.addr())
        .map_err(|_| outside(header.addr(), HEADER_BYTES))?;
    let (request_type, rest) = raw.split_at(4);
    let request_type = u32::from_le_bytes(request_type.try_into().expect("4 bytes"));
    let sector = u64::from_le_bytes(rest[4..].try_into().expect("8 bytes"));

    let kind = match request_type {
        VIRTIO_BLK_T_IN => RequestKind::In,
        VIRTIO_BLK_T_OUT => RequestKind::Out,
        VIRTIO_BLK_T_FLUSH => RequestKind::Flush,
        VIRTIO_BLK_T_GET_ID => RequestKind::GetId,
        other => return Err(RequestError::Unsupported(other)),
    };
    let request = |data| Request {
        kind,
        sector,
        data,
        status: status.addr(),
    };
    if kind == RequestKind::Flush {
        // A flush moves no data; buffers a driver attaches anyway are never touched.
        return Ok(request(Vec::new()));
    }

    let device_writes = matches!(kind, RequestKind::In | RequestKind::GetId);
    let mut buffers = Vec::with_capacity(data.len());
    let mut len_bytes: u64 = 0;
    for d in data {
        if d.is_write_only() != device_writes {
            return Err(RequestError::WrongDataDirection(kind));
        }
        check_in_memory(memory, d.addr(), d.len())?;
        len_bytes = len_bytes
            .checked_add(u64::from(d.len()))
            .ok_or(RequestError::Overflow)?;
        buffers.push((d.addr(), d.len()));
    }

    if kind == RequestKind::GetId {
        if len_bytes < u64::from(ID_BYTES) {
            return Err(RequestError::GetIdTooSmall(len_bytes));
        }
        return Ok(request(buffers));
    }
    if !len_bytes.is_multiple_of(SECTOR_SIZE) {
        return Err(RequestError::UnalignedLength(len_bytes));
    }
    let sectors = len_bytes / SECTOR_SIZE;
    let end_sector = sector.checked_add(sectors).ok_or(RequestError::Overflow)?;
    if end_sector > capacity_sectors {
        return Err(RequestError::OutOfRange {
            sector,
            sectors,
            capacity_sectors,
        });
    }
    // The backend turns the sector into a byte offset; make sure it can.
    end_sector
        .checked_mul(SECTOR_SIZE)
        .ok_or(RequestError::Overflow)?;
    Ok(request(buffers))
}

fn outside(addr: GuestAddress, len: u32) -> RequestError {
    RequestError::OutsideGuestMemory { addr: addr.0, len }
}

/// Checks `[addr, addr + len)` lies in guest RAM (possibly across regions).
fn check_in_memory(
    memory: &GuestMemoryMmap,
    addr: GuestAddress,
    len: u32,
) -> Result<(), RequestError> {
    if addr.0.checked_add(u64::from(len)).is_none() {
        return Err(RequestError::Overflow);
    }
    if GuestMemoryBackend::check_range(memory, addr, len as usize) {
        Ok(())
    } else {
        Err(outside(addr, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::mock::MockSplitQueue;

    /// Guest RAM: 1 MiB at 0. Headers at 0x1_0000, data at 0x2_0000, status at 0x3_0000.
    const RAM_BYTES: usize = 0x10_0000;
    const HEADER: u64 = 0x1_0000;
    const DATA: u64 = 0x2_0000;
    const STATUS: u64 = 0x3_0000;
    const CAPACITY: u64 = 64;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM_BYTES)]).unwrap()
    }

    fn header(mem: &GuestMemoryMmap, request_type: u32, sector: u64) {
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(&request_type.to_le_bytes());
        raw[8..].copy_from_slice(&sector.to_le_bytes());
        mem.write_slice(&raw, GuestAddress(HEADER)).unwrap();
    }

    /// A descriptor; `write` = device-writable. Chaining flags do not matter to the parser.
    fn d(addr: u64, len: u32, write: bool) -> Descriptor {
        let flags = if write { VRING_DESC_F_WRITE as u16 } else { 0 };
        Descriptor::new(addr, len, flags, 0)
    }

    fn hdr() -> Descriptor {
        d(HEADER, 16, false)
    }

    fn st() -> Descriptor {
        d(STATUS, 1, true)
    }

    fn parse_with(
        mem: &GuestMemoryMmap,
        request_type: u32,
        sector: u64,
        chain: &[Descriptor],
    ) -> Result<Request, RequestError> {
        header(mem, request_type, sector);
        parse(chain, mem, CAPACITY)
    }

    #[test]
    fn good_read_write_flush_get_id() {
        let mem = memory();
        let chain = [
            hdr(),
            d(DATA, 512, true),
            d(DATA + 0x1000, 1024, true),
            st(),
        ];
        let r = parse_with(&mem, VIRTIO_BLK_T_IN, 3, &chain).unwrap();
        assert_eq!(
            r,
            Request {
                kind: RequestKind::In,
                sector: 3,
                data: vec![
                    (GuestAddress(DATA), 512),
                    (GuestAddress(DATA + 0x1000), 1024)
                ],
                status: GuestAddress(STATUS),
            }
        );
        assert_eq!(r.data_len_bytes(), 1536);

        let chain = [hdr(), d(DATA, 4096, false), st()];
        let r = parse_with(&mem, VIRTIO_BLK_T_OUT, CAPACITY - 8, &chain).unwrap();
        assert_eq!((r.kind, r.sector, r.data.len()), (RequestKind::Out, 56, 1));

        let r = parse_with(&mem, VIRTIO_BLK_T_FLUSH, 0, &[hdr(), st()]).unwrap();
        assert_eq!((r.kind, r.data.len()), (RequestKind::Flush, 0));

        let chain = [hdr(), d(DATA, 20, true), st()];
        let r = parse_with(&mem, VIRTIO_BLK_T_GET_ID, 0, &chain).unwrap();
        assert_eq!(r.kind, RequestKind::GetId);

        // A header descriptor longer than 16 bytes and an empty read are fine.
        let chain = [d(HEADER, 64, false), d(STATUS, 8, true)];
        let r = parse_with(&mem, VIRTIO_BLK_T_IN, CAPACITY, &chain).unwrap();
        assert_eq!((r.data_len_bytes(), r.status), (0, GuestAddress(STATUS)));
    }

    #[test]
    fn chain_too_short_or_without_status() {
        let mem = memory();
        header(&mem, VIRTIO_BLK_T_IN, 0);
        assert_eq!(
            parse(&[], &mem, CAPACITY),
            Err(RequestError::ChainTooShort(0))
        );
        assert_eq!(
            parse(&[st()], &mem, CAPACITY),
            Err(RequestError::ChainTooShort(1))
        );
        let readable_status = [hdr(), d(STATUS, 1, false)];
        assert_eq!(
            parse(&readable_status, &mem, CAPACITY),
            Err(RequestError::MissingStatus)
        );
        assert_eq!(status_address(&readable_status, &mem), None);
        let empty_status = [hdr(), d(STATUS, 0, true)];
        assert_eq!(
            parse(&empty_status, &mem, CAPACITY),
            Err(RequestError::MissingStatus)
        );
        assert_eq!(status_address(&empty_status, &mem), None);
        assert_eq!(status_address(&[], &mem), None);
    }

    #[test]
    fn bad_header() {
        let mem = memory();
        header(&mem, VIRTIO_BLK_T_IN, 0);
        let writable = [d(HEADER, 16, true), st()];
        assert_eq!(
            parse(&writable, &mem, CAPACITY),
            Err(RequestError::HeaderWritable)
        );
        let short = [d(HEADER, 15, false), st()];
        assert_eq!(
            parse(&short, &mem, CAPACITY),
            Err(RequestError::HeaderTooShort(15))
        );
        // The status is still reportable.
        assert_eq!(status_address(&short, &mem), Some(GuestAddress(STATUS)));
    }

    #[test]
    fn wrong_data_direction() {
        let mem = memory();
        let into_readable = [hdr(), d(DATA, 512, false), st()];
        assert_eq!(
            parse_with(&mem, VIRTIO_BLK_T_IN, 0, &into_readable),
            Err(RequestError::WrongDataDirection(RequestKind::In))
        );
        let from_writable = [hdr(), d(DATA, 512, true), st()];
        assert_eq!(
            parse_with(&mem, VIRTIO_BLK_T_OUT, 0, &from_writable),
            Err(RequestError::WrongDataDirection(RequestKind::Out))
        );
        let id_into_readable = [hdr(), d(DATA, 20, false), st()];
        assert_eq!(
            parse_with(&mem, VIRTIO_BLK_T_GET_ID, 0, &id_into_readable),
            Err(RequestError::WrongDataDirection(RequestKind::GetId))
        );
        // Mixed directions in one request.
        let mixed = [hdr(), d(DATA, 512, true), d(DATA, 512, false), st()];
        assert_eq!(
            parse_with(&mem, VIRTIO_BLK_T_IN, 0, &mixed),
            Err(RequestError::WrongDataDirection(RequestKind::In))
        );
    }

    #[test]
    fn partial_sectors() {
        let mem = memory();
        let chain = [hdr(), d(DATA, 512, true), d(DATA, 100, true), st()];
        assert_eq!(
            parse_with(&mem, VIRTIO_BLK_T_IN, 0, &chain),
            Err(RequestError::UnalignedLength(612))
        );
        let chain = [hdr(), d(DATA, 511, false), st()];
        assert_eq!(
            parse_with(&mem, VIRTIO_BLK_T_OUT, 0, &chain),
            Err(RequestError::UnalignedLength(511))
        );
    }

    #[test]
    fn beyond_capacity() {
        let mem = memory();
        let chain = [hdr(), d(DATA, 1024, true), st()];
        assert_eq!(
            parse_with(&mem, VIRTIO_BLK_T_IN, CAPACITY - 1, &chain),
            Err(RequestError::OutOfRange {
                sector: 63,
                sectors: 2,
                capacity_sectors: CAPACITY
            })
        );
        let chain = [hdr(), st()];
        assert!(matches!(
            parse_with(&mem, VIRTIO_BLK_T_OUT, CAPACITY + 1, &chain),
            Err(RequestError::OutOfRange { .. })
        ));
    }

    #[test]
    fn arithmetic_overflow() {
        let mem = memory();
        let chain = [hdr(), d(DATA, 512, true), st()];
        assert_eq!(
            parse_with(&mem, VIRTIO_BLK_T_IN, u64::MAX, &chain),
            Err(RequestError::Overflow)
        );
        // A capacity whose byte size overflows (only a caller bug could pass one).
        header(&mem, VIRTIO_BLK_T_IN, u64::MAX / 256);
        assert_eq!(parse(&chain, &mem, u64::MAX), Err(RequestError::Overflow));
        // An address range that wraps around.
        let wrapping = [hdr(), d(u64::MAX - 10, 512, true), st()];
        assert_eq!(
            parse_with(&mem, VIRTIO_BLK_T_IN, 0, &wrapping),
            Err(RequestError::Overflow)
        );
    }

    #[test]
    fn buffers_outside_guest_memory() {
        let mem = memory();
        let end = RAM_BYTES as u64;
        let cases: [(Descriptor, Descriptor, Descriptor); 4] = [
            // Header, data, status: each one in turn pokes out of RAM.
            (d(end - 8, 16, false), d(DATA, 512, true), st()),
            (hdr(), d(end - 256, 512, true), st()),
            (hdr(), d(0x4000_0000, 512, true), st()),
            (hdr(), d(DATA, 512, true), d(end, 1, true)),
        ];
        for (h, data, s) in cases {
            let got = parse_with(&mem, VIRTIO_BLK_T_IN, 0, &[h, data, s]);
            assert!(
                matches!(got, Err(RequestError::OutsideGuestMemory { .. })),
                "{got:?}"
            );
        }
        assert_eq!(status_address(&[hdr(), d(end, 1, true)], &mem), None);
    }

    #[test]
    fn unknown_type_is_unsupported() {
        let mem = memory();
        let err = parse_with(&mem, 0x1234, 0, &[hdr(), st()]).unwrap_err();
        assert_eq!(err, RequestError::Unsupported(0x1234));
        assert_eq!(err.status(), VIRTIO_BLK_S_UNSUPP as u8);
        assert_eq!(
            RequestError::MissingStatus.status(),
            VIRTIO_BLK_S_IOERR as u8
        );
    }

    #[test]
    fn get_id_buffer_too_small() {
        let mem = memory();
        let chain = [hdr(), d(DATA, 19, true), st()];
        assert_eq!(
            parse_with(&mem, VIRTIO_BLK_T_GET_ID, 0, &chain),
            Err(RequestError::GetIdTooSmall(19))
        );
        let none = [hdr(), st()];
        assert_eq!(
            parse_with(&mem, VIRTIO_BLK_T_GET_ID, 0, &none),
            Err(RequestError::GetIdTooSmall(0))
        );
        // Split across two buffers is enough.
        let split = [hdr(), d(DATA, 10, true), d(DATA + 64, 10, true), st()];
        assert!(parse_with(&mem, VIRTIO_BLK_T_GET_ID, 0, &split).is_ok());
    }

    #[test]
    fn overlong_chain() {
        let mem = memory();
        let chain = vec![hdr(); MAX_CHAIN_DESCRIPTORS + 5];
        assert_eq!(
            collect_chain(chain.clone()).unwrap_err(),
            RequestError::ChainTooLong
        );
        assert_eq!(
            parse(&chain, &mem, CAPACITY),
            Err(RequestError::ChainTooLong)
        );
        assert_eq!(collect_chain(vec![hdr(); 3]).unwrap().len(), 3);
    }

    /// Chains built in a real descriptor table and walked by virtio-queue, the way the device
    /// gets them.
    #[test]
    fn chains_from_a_queue() {
        let mem = memory();
        let queue = MockSplitQueue::create(&mem, GuestAddress(0x8000), 16);
        let raw = |addr, len, flags: u32| {
            RawDescriptor::from(Descriptor::new(addr, len, flags as u16, 0))
        };
        header(&mem, VIRTIO_BLK_T_OUT, 5);
        let chain = queue
            .build_desc_chain(&[
                raw(HEADER, 16, 0),
                raw(DATA, 1024, 0),
                raw(STATUS, 1, VRING_DESC_F_WRITE),
            ])
            .unwrap();
        let descriptors = collect_chain(chain).unwrap();
        let r = parse(&descriptors, &mem, CAPACITY).unwrap();
        assert_eq!(
            (r.kind, r.sector, r.data_len_bytes(), r.status),
            (RequestKind::Out, 5, 1024, GuestAddress(STATUS))
        );

        // A chain (at table index 4) whose second descriptor points back at its first:
        // virtio-queue stops after queue-size descriptors, and the parser finds the status
        // and header descriptors in the data.
        let looped = [
            RawDescriptor::from(Descriptor::new(HEADER, 16, VRING_DESC_F_NEXT as u16, 5)),
            RawDescriptor::from(Descriptor::new(
                STATUS,
                1,
                (VRING_DESC_F_NEXT | VRING_DESC_F_WRITE) as u16,
                4,
            )),
        ];
        queue.add_desc_chains(&looped, 4).unwrap();
        let mut q: virtio_queue::Queue = queue.create_queue().unwrap();
        let mut heads = virtio_queue::QueueOwnedT::iter(&mut q, &mem).unwrap();
        assert_eq!(heads.next().unwrap().head_index(), 0);
        let looping = heads.next().unwrap();
        assert_eq!(looping.head_index(), 4);
        let descriptors = collect_chain(looping).unwrap();
        assert_eq!(descriptors.len(), 16);
        assert!(descriptors.len() <= 16);
        assert!(parse(&descriptors, &mem, CAPACITY).is_err());
    }
}
