//! A virtio block device on the virtio-mmio transport, backed by a host file.
//!
//! Owns the transport ([`MmioTransport`]), the disk ([`backend`]), the interrupt eventfd and
//! the counters ([`metrics`]). Offers `VIRTIO_F_VERSION_1` and `VIRTIO_BLK_F_FLUSH`; its
//! configuration space is `capacity` (u64, little-endian, in 512-byte sectors) at 0x100.
//!
//! Requests are served synchronously when the driver writes `QueueNotify`: one VM exit
//! completes every chain then available. Invariants, since guest data is hostile:
//! * Every chain taken from the available ring goes to the used ring, well-formed or not,
//!   so the driver never waits forever; a malformed one gets status `IOERR` (`UNSUPP` for an
//!   unknown type) when a status byte can be found, and bumps `malformed_requests`.
//! * The device touches guest memory only through `vm-memory` after [`request::parse`]
//!   checked the ranges, and the disk only within its capacity.
//! * A queue the device cannot use (rings outside RAM, an available index running more than
//!   a queue ahead, a head index outside the table) is a device error: `DEVICE_NEEDS_RESET`
//!   is set and notifications are ignored until the driver resets the device.
//! * Completion never depends on the driver acknowledging interrupts: a driver that polls
//!   the used ring (and sets `VRING_AVAIL_F_NO_INTERRUPT`) sees the same results.

pub mod backend;
pub mod metrics;
pub mod request;

use std::fs::File;
use std::sync::Arc;

use virtio_bindings::virtio_blk::{VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK};
use virtio_bindings::virtio_config::VIRTIO_CONFIG_S_DRIVER_OK;
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_bindings::virtio_mmio::VIRTIO_MMIO_INT_VRING;
use virtio_bindings::virtio_ring::VRING_AVAIL_F_NO_INTERRUPT;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

pub use self::backend::BackendError;
use self::backend::FileBackend;
pub use self::metrics::BlockMetrics;
use self::request::{ID_BYTES, Request, RequestError, RequestKind};
use super::mmio::{CONFIG_OFFSET, MmioTransport, QUEUE_INDEX};
use crate::devices::GuestRequest;
use crate::devices::bus::{ArgRegs, BusDevice};

/// Entries in the device's one queue (`QueueNumMax`).
pub const QUEUE_NUM_MAX: u16 = 256;
/// Bytes of the configuration space the device defines (`capacity` only); the rest of the
/// window reads as zero.
pub const CONFIG_BYTES: usize = 8;

/// Why a block device could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("disk file: {0}")]
    Disk(#[source] BackendError),
    #[error("device id {id:?} is {len_bytes} bytes; at most {ID_BYTES} fit")]
    IdTooLong { id: String, len_bytes: usize },
    #[error("creating the virtio queue: {0}")]
    CreateQueue(#[source] virtio_queue::Error),
}

/// A virtio-blk device: put it on the MMIO bus at its `abi::devices` address.
pub struct VirtioBlock {
    transport: MmioTransport,
    memory: GuestMemoryMmap,
    disk: FileBackend,
    /// Written once per interrupt; a KVM irqfd turns it into an MSI.
    irq: EventFd,
    /// The GET_ID answer: the id string, NUL-padded.
    id: [u8; ID_BYTES as usize],
    metrics: Arc<BlockMetrics>,
}

impl VirtioBlock {
    /// A device serving `disk` (its length must be a whole number of 512-byte sectors) to a
    /// guest with RAM `memory`, raising its interrupt by writing `irq`. `id` (at most 20
    /// bytes) is what GET_ID returns.
    pub fn new(
        memory: GuestMemoryMmap,
        disk: File,
        irq: EventFd,
        id: &str,
    ) -> Result<Self, BlockError> {
        let mut id_bytes = [0u8; ID_BYTES as usize];
        id_bytes
            .get_mut(..id.len())
            .ok_or_else(|| BlockError::IdTooLong {
                id: id.to_string(),
                len_bytes: id.len(),
            })?
            .copy_from_slice(id.as_bytes());
        let disk = FileBackend::new(disk).map_err(BlockError::Disk)?;
        let features = 1u64 << VIRTIO_BLK_F_FLUSH;
        let transport = MmioTransport::new(VIRTIO_ID_BLOCK, features, QUEUE_NUM_MAX)
            .map_err(BlockError::CreateQueue)?;
        Ok(VirtioBlock {
            transport,
            memory,
            disk,
            irq,
            id: id_bytes,
            metrics: Arc::new(BlockMetrics::default()),
        })
    }

    /// The device's counters, for a reader on another thread.
    pub fn metrics(&self) -> Arc<BlockMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Reads the configuration space from byte `offset` (any width, any alignment).
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let config = self.disk.capacity_sectors().to_le_bytes();
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|o| config.get(o).copied())
                .unwrap_or(0);
        }
    }

    /// Serves every chain the driver has made available, then interrupts the driver unless
    /// it asked not to be. Does nothing unless the device is live.
    fn serve_queue(&mut self) {
        if !self.transport.is_live() {
            return;
        }
        let queue = self.transport.queue_mut();
        if !queue.is_valid(&self.memory) {
            return self.device_error();
        }
        // Take the chains first: the iterator borrows the queue, and completing a chain
        // needs it back. `iter` checks the available index is at most a queue ahead, so
        // this is bounded by the queue size.
        let chains: Vec<(u16, Result<Vec<Descriptor>, RequestError>)> =
            match queue.iter(&self.memory) {
                Ok(heads) => heads
                    .map(|chain| (chain.head_index(), request::collect_chain(chain)))
                    .collect(),
                Err(_) => return self.device_error(),
            };
        if chains.is_empty() {
            return;
        }
        for (head, chain) in chains {
            let used_len_bytes = self.complete(chain);
            let queue = self.transport.queue_mut();
            // Fails only for a head index outside the table (the ring is in RAM).
            if queue.add_used(&self.memory, head, used_len_bytes).is_err() {
                return self.device_error();
            }
        }
        let queue = self.transport.queue_mut();
        let needed = queue.needs_notification(&self.memory).unwrap_or(true);
        // virtio-queue does not look at the driver's suppression flag; honour it, since an
        // interrupt a polling driver does not want costs it a trip through its handler.
        let suppressed = self
            .memory
            .read_obj::<u16>(GuestAddress(queue.avail_ring()))
            .is_ok_and(|flags| u16::from_le(flags) & VRING_AVAIL_F_NO_INTERRUPT as u16 != 0);
        if needed && !suppressed {
            self.interrupt(VIRTIO_MMIO_INT_VRING);
        }
    }

    /// Serves one chain and writes its status byte when it has one. Returns the bytes
    /// written to the guest (data and status): the used-ring length.
    fn complete(&mut self, chain: Result<Vec<Descriptor>, RequestError>) -> u32 {
        let (parsed, status_at) = match chain {
            Ok(descriptors) => (
                request::parse(&descriptors, &self.memory, self.disk.capacity_sectors()),
                request::status_address(&descriptors, &self.memory),
            ),
            Err(e) => (Err(e), None),
        };
        let (status, data_bytes) = match parsed {
            Ok(request) => self.execute(&request),
            Err(e) => {
                BlockMetrics::bump(&self.metrics.malformed_requests);
                if let RequestError::Unsupported(_) = e {
                    BlockMetrics::bump(&self.metrics.unsupported_requests);
                }
                (e.status(), 0)
            }
        };
        let status_written = status_at.is_some_and(|at| self.memory.write_obj(status, at).is_ok());
        let used_bytes = data_bytes.saturating_add(u64::from(status_written));
        u32::try_from(used_bytes).unwrap_or(u32::MAX)
    }

    /// Carries out a well-formed request. Returns its status byte and the data bytes written
    /// to the guest.
    fn execute(&mut self, request: &Request) -> (u8, u64) {
        let m = &self.metrics;
        let result = match request.kind {
            RequestKind::In => {
                BlockMetrics::bump(&m.read_requests);
                let read = self.disk.read(&self.memory, request.sector, &request.data);
                read.inspect(|&n| BlockMetrics::add(&m.bytes_read, n))
            }
            RequestKind::Out => {
                BlockMetrics::bump(&m.write_requests);
                let written = self.disk.write(&self.memory, request.sector, &request.data);
                written
                    .map(|n| BlockMetrics::add(&m.bytes_written, n))
                    .map(|()| 0)
            }
            RequestKind::Flush => {
                BlockMetrics::bump(&m.flush_requests);
                self.disk.flush().map(|()| 0)
            }
            RequestKind::GetId => {
                BlockMetrics::bump(&m.get_id_requests);
                backend::write_to_guest(&self.memory, &request.data, &self.id)
            }
        };
        match result {
            Ok(data_bytes) => (VIRTIO_BLK_S_OK as u8, data_bytes),
            Err(error) => {
                BlockMetrics::bump(&m.io_errors);
                if matches!(
                    error,
                    BackendError::ReadFile { .. }
                        | BackendError::WriteFile { .. }
                        | BackendError::Flush(_)
                ) {
                    let mut first = m.first_file_error.lock().unwrap_or_else(|e| e.into_inner());
                    first.get_or_insert_with(|| error.to_string());
                }
                (VIRTIO_BLK_S_IOERR as u8, 0)
            }
        }
    }

    /// The device cannot use its queue: it stops until the driver resets it.
    fn device_error(&mut self) {
        self.transport.set_needs_reset();
        self.signal_irq();
    }

    /// Sets `bits` in `InterruptStatus` and raises the interrupt line.
    fn interrupt(&mut self, bits: u32) {
        self.transport.set_interrupt(bits);
        self.signal_irq();
    }

    fn signal_irq(&mut self) {
        // A full eventfd counter (2^64 - 2 pending) still means "interrupt pending".
        if self.irq.write(1).is_ok() {
            BlockMetrics::bump(&self.metrics.interrupts);
        }
    }
}

impl VirtioBlock {
    fn count_access(&self) {
        if self.transport.status() & VIRTIO_CONFIG_S_DRIVER_OK != 0 {
            BlockMetrics::bump(&self.metrics.accesses_while_live);
        }
    }
}

impl BusDevice for VirtioBlock {
    fn read(&mut self, offset: u64, data: &mut [u8], _args: ArgRegs) {
        self.count_access();
        match offset.checked_sub(CONFIG_OFFSET) {
            Some(config_offset) => self.read_config(config_offset, data),
            None => self.transport.read(offset, data),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Option<GuestRequest> {
        self.count_access();
        // The configuration space is read-only: writes to it are dropped.
        if offset < CONFIG_OFFSET
            && let Some(queue) = self.transport.write(offset, data)
        {
            BlockMetrics::bump(&self.metrics.notifications);
            if queue == QUEUE_INDEX {
                self.serve_queue();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::AtomicU64;

    use virtio_bindings::virtio_blk::{
        VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN,
        VIRTIO_BLK_T_OUT,
    };
    use virtio_bindings::virtio_config::{
        VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
        VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
    };
    use virtio_bindings::virtio_mmio::{
        VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DEVICE_ID,
        VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_INT_CONFIG,
        VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_MAGIC_VALUE,
        VIRTIO_MMIO_QUEUE_AVAIL_HIGH, VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH,
        VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_QUEUE_NUM,
        VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_USED_HIGH,
        VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_STATUS, VIRTIO_MMIO_VERSION,
    };
    use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};

    const RAM_BYTES: usize = 0x10_0000;
    const QUEUE_SIZE: u16 = 16;
    const DESC_TABLE: u64 = 0x1000;
    const AVAIL_RING: u64 = 0x2000;
    const USED_RING: u64 = 0x3000;
    const HEADER: u64 = 0x1_0000;
    const STATUS: u64 = 0x1_1000;
    const DATA: u64 = 0x2_0000;
    const DISK_SECTORS: u64 = 128;

    /// A disk image in a scratch directory, removed on drop.
    struct TempDisk {
        _dir: TempDir,
        file: File,
    }

    impl TempDisk {
        fn new(name: &str, len_bytes: u64) -> Self {
            let dir = TempDir::new(&format!("virtio-blk-{name}"));
            let file = dir.sparse_file("disk.img", len_bytes);
            TempDisk { _dir: dir, file }
        }
    }

    /// Plays the guest driver: owns guest RAM with the rings and talks to the device only
    /// through its registers, as the kernel's driver would.
    struct Driver {
        dev: VirtioBlock,
        mem: GuestMemoryMmap,
        irq: EventFd,
        /// Next free descriptor-table slot.
        next_desc: u16,
        /// The driver's copy of the available index.
        avail_idx: u16,
        /// Used-ring entries already consumed.
        used_seen: u16,
    }

    impl Driver {
        fn new(disk: &TempDisk, id: &str) -> Self {
            let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM_BYTES)]).unwrap();
            let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
            let dev = VirtioBlock::new(
                mem.clone(),
                disk.file.try_clone().unwrap(),
                irq.try_clone().unwrap(),
                id,
            )
            .unwrap();
            Driver {
                dev,
                mem,
                irq,
                next_desc: 0,
                avail_idx: 0,
                used_seen: 0,
            }
        }

        fn read(&mut self, reg: u32) -> u32 {
            let mut word = [0u8; 4];
            self.dev.read(u64::from(reg), &mut word, ArgRegs::default());
            u32::from_le_bytes(word)
        }

        fn write(&mut self, reg: u32, value: u32) {
            assert_eq!(self.dev.write(u64::from(reg), &value.to_le_bytes()), None);
        }

        /// Feature negotiation and queue setup, in the order the spec gives (3.1.1).
        fn init(&mut self, desc: u64, avail: u64, used: u64) {
            self.write(VIRTIO_MMIO_STATUS, 0);
            let mut status = VIRTIO_CONFIG_S_ACKNOWLEDGE;
            self.write(VIRTIO_MMIO_STATUS, status);
            status |= VIRTIO_CONFIG_S_DRIVER;
            self.write(VIRTIO_MMIO_STATUS, status);
            self.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
            let low = self.read(VIRTIO_MMIO_DEVICE_FEATURES);
            self.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
            let high = self.read(VIRTIO_MMIO_DEVICE_FEATURES);
            assert_eq!(low, 1 << VIRTIO_BLK_F_FLUSH, "offers FLUSH only");
            assert_eq!(high, 1, "offers VERSION_1 (bit 32)");
            self.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
            self.write(VIRTIO_MMIO_DRIVER_FEATURES, low);
            self.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
            self.write(VIRTIO_MMIO_DRIVER_FEATURES, high);
            status |= VIRTIO_CONFIG_S_FEATURES_OK;
            self.write(VIRTIO_MMIO_STATUS, status);
            assert_eq!(
                self.read(VIRTIO_MMIO_STATUS),
                status,
                "FEATURES_OK accepted"
            );

            assert_eq!(self.read(VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
            self.write(VIRTIO_MMIO_QUEUE_NUM, u32::from(QUEUE_SIZE));
            self.write(VIRTIO_MMIO_QUEUE_DESC_LOW, desc as u32);
            self.write(VIRTIO_MMIO_QUEUE_DESC_HIGH, (desc >> 32) as u32);
            self.write(VIRTIO_MMIO_QUEUE_AVAIL_LOW, avail as u32);
            self.write(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (avail >> 32) as u32);
            self.write(VIRTIO_MMIO_QUEUE_USED_LOW, used as u32);
            self.write(VIRTIO_MMIO_QUEUE_USED_HIGH, (used >> 32) as u32);
            self.write(VIRTIO_MMIO_QUEUE_READY, 1);
            status |= VIRTIO_CONFIG_S_DRIVER_OK;
            self.write(VIRTIO_MMIO_STATUS, status);
            self.next_desc = 0;
            self.avail_idx = 0;
            self.used_seen = 0;
        }

        fn init_default(&mut self) {
            self.init(DESC_TABLE, AVAIL_RING, USED_RING);
        }

        /// Puts a chain of `(addr, len, device_writable)` buffers in the descriptor table
        /// and the available ring, without notifying. Returns the head index.
        fn post(&mut self, buffers: &[(u64, u32, bool)]) -> u16 {
            let head = self.next_desc;
            for (i, &(addr, len, writable)) in buffers.iter().enumerate() {
                let index = (head + i as u16) % QUEUE_SIZE;
                let last = i + 1 == buffers.len();
                let mut flags = if writable { VRING_DESC_F_WRITE } else { 0 };
                if !last {
                    flags |= VRING_DESC_F_NEXT;
                }
                let next = (index + 1) % QUEUE_SIZE;
                let at = GuestAddress(DESC_TABLE + 16 * u64::from(index));
                let mut raw = [0u8; 16];
                raw[..8].copy_from_slice(&addr.to_le_bytes());
                raw[8..12].copy_from_slice(&len.to_le_bytes());
                raw[12..14].copy_from_slice(&(flags as u16).to_le_bytes());
                raw[14..].copy_from_slice(&next.to_le_bytes());
                self.mem.write_slice(&raw, at).unwrap();
            }
            self.next_desc = (head + buffers.len() as u16) % QUEUE_SIZE;
            let slot = AVAIL_RING + 4 + 2 * u64::from(self.avail_idx % QUEUE_SIZE);
            self.mem
                .write_obj(head.to_le(), GuestAddress(slot))
                .unwrap();
            self.avail_idx = self.avail_idx.wrapping_add(1);
            self.mem
                .write_obj(self.avail_idx.to_le(), GuestAddress(AVAIL_RING + 2))
                .unwrap();
            head
        }

        fn notify(&mut self) {
            self.write(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
        }

        fn used_idx(&self) -> u16 {
            u16::from_le(self.mem.read_obj(GuestAddress(USED_RING + 2)).unwrap())
        }

        /// Takes the next used-ring entry (head index, length), as a polling driver would.
        fn take_used(&mut self) -> (u32, u32) {
            assert_ne!(self.used_idx(), self.used_seen, "no used entry");
            let at = USED_RING + 4 + 8 * u64::from(self.used_seen % QUEUE_SIZE);
            let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
            let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
            self.used_seen = self.used_seen.wrapping_add(1);
            (u32::from_le(id), u32::from_le(len))
        }

        fn header(&self, request_type: u32, sector: u64) {
            let mut raw = [0u8; 16];
            raw[..4].copy_from_slice(&request_type.to_le_bytes());
            raw[8..].copy_from_slice(&sector.to_le_bytes());
            self.mem.write_slice(&raw, GuestAddress(HEADER)).unwrap();
        }

        /// Submits one request (header, `data`, status), notifies, and returns the status
        /// byte and the used length after checking the used entry names the chain.
        fn request(
            &mut self,
            request_type: u32,
            sector: u64,
            data: &[(u64, u32, bool)],
        ) -> (u8, u32) {
            self.header(request_type, sector);
            self.mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
            let mut chain = vec![(HEADER, 16, false)];
            chain.extend_from_slice(data);
            chain.push((STATUS, 1, true));
            let head = self.post(&chain);
            self.notify();
            let (id, len) = self.take_used();
            assert_eq!(id, u32::from(head));
            (self.mem.read_obj(GuestAddress(STATUS)).unwrap(), len)
        }

        fn count(counter: &AtomicU64) -> u64 {
            BlockMetrics::get(counter)
        }
    }

    const OK: u8 = VIRTIO_BLK_S_OK as u8;
    const IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;

    #[test]
    fn driver_session() {
        let disk = TempDisk::new("session", DISK_SECTORS * 512);
        let mut drv = Driver::new(&disk, "fs-disk");
        let metrics = drv.dev.metrics();
        assert_eq!(drv.read(VIRTIO_MMIO_MAGIC_VALUE), 0x7472_6976);
        assert_eq!(drv.read(VIRTIO_MMIO_VERSION), 2);
        assert_eq!(drv.read(VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
        drv.init_default();

        // Capacity, read as one u64 and as two u32 halves.
        let mut capacity = [0u8; 8];
        drv.dev
            .read(CONFIG_OFFSET, &mut capacity, ArgRegs::default());
        assert_eq!(u64::from_le_bytes(capacity), DISK_SECTORS);
        assert_eq!(drv.read(CONFIG_OFFSET as u32), DISK_SECTORS as u32);
        assert_eq!(drv.read(CONFIG_OFFSET as u32 + 4), 0);

        // Write sectors 4..7 from two buffers, then read them back into two others.
        let pattern: Vec<u8> = (0..1536u32).map(|i| (i * 7 % 256) as u8).collect();
        drv.mem
            .write_slice(&pattern[..512], GuestAddress(DATA))
            .unwrap();
        drv.mem
            .write_slice(&pattern[512..], GuestAddress(DATA + 0x1000))
            .unwrap();
        let out = [(DATA, 512, false), (DATA + 0x1000, 1024, false)];
        assert_eq!(drv.request(VIRTIO_BLK_T_OUT, 4, &out), (OK, 1));
        let mut on_disk = vec![0u8; 1536];
        disk.file.read_exact_at(&mut on_disk, 4 * 512).unwrap();
        assert_eq!(on_disk, pattern, "the backing file changed");

        let back = [(DATA + 0x8000, 1024, true), (DATA + 0x9000, 512, true)];
        assert_eq!(drv.request(VIRTIO_BLK_T_IN, 4, &back), (OK, 1537));
        let mut got = vec![0u8; 1536];
        drv.mem
            .read_slice(&mut got[..1024], GuestAddress(DATA + 0x8000))
            .unwrap();
        drv.mem
            .read_slice(&mut got[1024..], GuestAddress(DATA + 0x9000))
            .unwrap();
        assert_eq!(got, pattern, "bytes round-trip");

        assert_eq!(drv.request(VIRTIO_BLK_T_FLUSH, 0, &[]), (OK, 1));

        let id_buf = [(DATA + 0xa000, 20, true)];
        assert_eq!(drv.request(VIRTIO_BLK_T_GET_ID, 0, &id_buf), (OK, 21));
        let mut id = [0xffu8; 20];
        drv.mem
            .read_slice(&mut id, GuestAddress(DATA + 0xa000))
            .unwrap();
        assert_eq!(&id[..8], b"fs-disk\0");
        assert_eq!(id[8..], [0; 12]);

        // Out of range: the last sector plus one more.
        let beyond = [(DATA, 1024, true)];
        let (status, len) = drv.request(VIRTIO_BLK_T_IN, DISK_SECTORS - 1, &beyond);
        assert_eq!((status, len), (IOERR, 1));
        assert_eq!(Driver::count(&metrics.malformed_requests), 1);
        // The device keeps working.
        let one = [(DATA + 0xb000, 512, true)];
        assert_eq!(drv.request(VIRTIO_BLK_T_IN, 5, &one), (OK, 513));
        let mut sector5 = [0u8; 512];
        drv.mem
            .read_slice(&mut sector5, GuestAddress(DATA + 0xb000))
            .unwrap();
        assert_eq!(sector5[..], pattern[512..1024]);

        // Every completion interrupted; the eventfd holds one signal per notify.
        assert_eq!(drv.read(VIRTIO_MMIO_INTERRUPT_STATUS) & 1, 1);
        assert_eq!(drv.irq.read().unwrap(), 6);
        drv.write(VIRTIO_MMIO_INTERRUPT_ACK, 1);
        assert_eq!(drv.read(VIRTIO_MMIO_INTERRUPT_STATUS), 0);

        let m = &metrics;
        let counts = [
            Driver::count(&m.read_requests),
            Driver::count(&m.write_requests),
            Driver::count(&m.flush_requests),
            Driver::count(&m.get_id_requests),
            Driver::count(&m.unsupported_requests),
            Driver::count(&m.bytes_read),
            Driver::count(&m.bytes_written),
            Driver::count(&m.io_errors),
            Driver::count(&m.notifications),
            Driver::count(&m.interrupts),
        ];
        assert_eq!(counts, [2, 1, 1, 1, 0, 2048, 1536, 0, 6, 6]);
    }

    #[test]
    fn batch_served_by_one_notify() {
        let disk = TempDisk::new("batch", DISK_SECTORS * 512);
        disk.file.write_all_at(&[0xab; 512], 9 * 512).unwrap();
        let mut drv = Driver::new(&disk, "");
        drv.init_default();
        for i in 0..3u64 {
            drv.header(VIRTIO_BLK_T_IN, 9);
            drv.post(&[
                (HEADER, 16, false),
                (DATA + i * 0x1000, 512, true),
                (STATUS + 16 * i, 1, true),
            ]);
        }
        drv.notify();
        assert_eq!(drv.used_idx(), 3);
        for i in 0..3u64 {
            assert_eq!(drv.take_used().1, 513);
            let status: u8 = drv.mem.read_obj(GuestAddress(STATUS + 16 * i)).unwrap();
            assert_eq!(status, OK);
            let byte: u8 = drv.mem.read_obj(GuestAddress(DATA + i * 0x1000)).unwrap();
            assert_eq!(byte, 0xab);
        }
        assert_eq!(drv.irq.read().unwrap(), 1, "one interrupt for the batch");
    }

    #[test]
    fn unknown_type_and_unreportable_requests() {
        let disk = TempDisk::new("unknown", DISK_SECTORS * 512);
        let mut drv = Driver::new(&disk, "x");
        drv.init_default();
        let metrics = drv.dev.metrics();
        assert_eq!(drv.request(0x77, 0, &[]), (VIRTIO_BLK_S_UNSUPP as u8, 1));
        assert_eq!(Driver::count(&metrics.unsupported_requests), 1);
        assert_eq!(Driver::count(&metrics.malformed_requests), 1);

        // No status descriptor at all: nothing to write, but the chain is still used.
        drv.header(VIRTIO_BLK_T_IN, 0);
        let head = drv.post(&[(HEADER, 16, false), (DATA, 512, false)]);
        drv.notify();
        assert_eq!(drv.take_used(), (u32::from(head), 0));
        assert_eq!(Driver::count(&metrics.malformed_requests), 2);

        // Wrong direction for a write, and a partial sector.
        assert_eq!(
            drv.request(VIRTIO_BLK_T_OUT, 0, &[(DATA, 512, true)]).0,
            IOERR
        );
        assert_eq!(
            drv.request(VIRTIO_BLK_T_IN, 0, &[(DATA, 100, true)]).0,
            IOERR
        );
        assert_eq!(Driver::count(&metrics.malformed_requests), 4);
        assert_eq!(
            drv.request(VIRTIO_BLK_T_IN, 0, &[(DATA, 512, true)]),
            (OK, 513)
        );
    }

    #[test]
    fn polling_driver_without_interrupts() {
        let disk = TempDisk::new("polling", DISK_SECTORS * 512);
        let mut drv = Driver::new(&disk, "swap");
        drv.init_default();
        // VRING_AVAIL_F_NO_INTERRUPT in the available ring's flags.
        drv.mem
            .write_obj(1u16.to_le(), GuestAddress(AVAIL_RING))
            .unwrap();
        assert_eq!(drv.request(VIRTIO_BLK_T_FLUSH, 0, &[]), (OK, 1));
        assert_eq!(
            drv.request(VIRTIO_BLK_T_IN, 1, &[(DATA, 512, true)]),
            (OK, 513)
        );
        assert!(drv.irq.read().is_err(), "no interrupt was signalled");
        assert_eq!(drv.read(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
        assert_eq!(Driver::count(&drv.dev.metrics().interrupts), 0);
    }

    #[test]
    fn notify_before_driver_ok_is_ignored() {
        let disk = TempDisk::new("early", DISK_SECTORS * 512);
        let mut drv = Driver::new(&disk, "x");
        drv.header(VIRTIO_BLK_T_FLUSH, 0);
        drv.post(&[(HEADER, 16, false), (STATUS, 1, true)]);
        drv.notify();
        assert_eq!(drv.used_idx(), 0);
        assert_eq!(Driver::count(&drv.dev.metrics().notifications), 1);
    }

    #[test]
    fn rings_outside_memory_need_reset() {
        let disk = TempDisk::new("bad-rings", DISK_SECTORS * 512);
        let mut drv = Driver::new(&disk, "x");
        drv.init(0x7_0000_0000, AVAIL_RING, USED_RING);
        drv.notify();
        let status = drv.read(VIRTIO_MMIO_STATUS);
        assert_ne!(status & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
        assert_eq!(
            drv.read(VIRTIO_MMIO_INTERRUPT_STATUS),
            VIRTIO_MMIO_INT_CONFIG
        );
        assert_eq!(drv.irq.read().unwrap(), 1);
        // Ignored until reset.
        drv.notify();
        assert!(drv.irq.read().is_err());

        // A used ring straddling the end of RAM, after a reset.
        drv.init(DESC_TABLE, AVAIL_RING, RAM_BYTES as u64 - 64);
        drv.notify();
        assert_ne!(
            drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET,
            0
        );

        // A sane queue after a reset works.
        drv.init_default();
        assert_eq!(
            drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET,
            0
        );
        assert_eq!(drv.request(VIRTIO_BLK_T_FLUSH, 0, &[]), (OK, 1));
    }

    #[test]
    fn runaway_available_index_needs_reset() {
        let disk = TempDisk::new("runaway", DISK_SECTORS * 512);
        let mut drv = Driver::new(&disk, "x");
        drv.init_default();
        drv.mem
            .write_obj(1000u16.to_le(), GuestAddress(AVAIL_RING + 2))
            .unwrap();
        drv.notify();
        assert_ne!(
            drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET,
            0
        );
        assert_eq!(drv.used_idx(), 0);
    }

    #[test]
    fn head_index_outside_the_table_needs_reset() {
        let disk = TempDisk::new("bad-head", DISK_SECTORS * 512);
        let mut drv = Driver::new(&disk, "x");
        drv.init_default();
        drv.mem
            .write_obj(200u16.to_le(), GuestAddress(AVAIL_RING + 4))
            .unwrap();
        drv.mem
            .write_obj(1u16.to_le(), GuestAddress(AVAIL_RING + 2))
            .unwrap();
        drv.notify();
        assert_ne!(
            drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET,
            0
        );
    }

    /// Garbage descriptor tables, headers and ring indices: the device must never panic,
    /// and either completes every available chain or asks for a reset.
    #[test]
    fn random_garbage_never_panics() {
        let disk = TempDisk::new("garbage", DISK_SECTORS * 512);
        let mut drv = Driver::new(&disk, "x");
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        drv.init_default();
        let mut resets = 0;
        for _ in 0..3000 {
            for i in 0..u64::from(QUEUE_SIZE) {
                let (a, b) = (next(), next());
                // Mostly plausible buffers (header, status, sector-sized data), some wild.
                let (addr, len) = match a % 5 {
                    0 => (a >> 3, b as u32),
                    1 => (HEADER, 16),
                    2 => (STATUS, 1),
                    3 => (DATA + (a >> 8) % 0x100 * 512, ((b >> 8) % 9) as u32 * 512),
                    _ => (HEADER + (a >> 8) % 0x4_0000, (b as u32) % 0x1400),
                };
                let mut raw = [0u8; 16];
                raw[..8].copy_from_slice(&addr.to_le_bytes());
                raw[8..12].copy_from_slice(&len.to_le_bytes());
                let flags = (b >> 32) as u16 & 0x7;
                raw[12..14].copy_from_slice(&flags.to_le_bytes());
                let next_index = ((b >> 48) as u16) % (QUEUE_SIZE + 2);
                raw[14..].copy_from_slice(&next_index.to_le_bytes());
                drv.mem
                    .write_slice(&raw, GuestAddress(DESC_TABLE + 16 * i))
                    .unwrap();
            }
            let kind = [VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, 8, 99];
            drv.header(kind[(next() % 5) as usize], next() % (DISK_SECTORS + 4));
            let posted = (next() % 4) as u16;
            let used_before = drv.used_idx();
            for _ in 0..posted {
                let slot = AVAIL_RING + 4 + 2 * u64::from(drv.avail_idx % QUEUE_SIZE);
                let head = (next() % u64::from(QUEUE_SIZE + 1)) as u16;
                drv.mem.write_obj(head.to_le(), GuestAddress(slot)).unwrap();
                drv.avail_idx = drv.avail_idx.wrapping_add(1);
            }
            drv.mem
                .write_obj(drv.avail_idx.to_le(), GuestAddress(AVAIL_RING + 2))
                .unwrap();
            drv.notify();
            if drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET != 0 {
                resets += 1;
                drv.init_default();
                // The reset driver starts its rings afresh.
                drv.mem
                    .write_obj(0u16, GuestAddress(AVAIL_RING + 2))
                    .unwrap();
                drv.mem
                    .write_obj(0u16, GuestAddress(USED_RING + 2))
                    .unwrap();
            } else {
                assert_eq!(drv.used_idx(), used_before.wrapping_add(posted));
            }
        }
        let m = drv.dev.metrics();
        assert!(BlockMetrics::get(&m.malformed_requests) > 0);
        assert!(resets > 0, "bad head indices were tried");
    }

    #[test]
    fn config_space_reads_any_width() {
        let disk = TempDisk::new("config", 0x1234 * 512);
        let mut drv = Driver::new(&disk, "x");
        let mut byte = [0u8; 1];
        drv.dev
            .read(CONFIG_OFFSET + 1, &mut byte, ArgRegs::default());
        assert_eq!(byte, [0x12]);
        let mut half = [0u8; 2];
        drv.dev.read(CONFIG_OFFSET, &mut half, ArgRegs::default());
        assert_eq!(u16::from_le_bytes(half), 0x1234);
        // Straddling the end of `capacity`, and beyond it: zeros.
        let mut word = [0xffu8; 4];
        drv.dev
            .read(CONFIG_OFFSET + 6, &mut word, ArgRegs::default());
        assert_eq!(word, [0; 4]);
        drv.dev.read(0xff8, &mut word, ArgRegs::default());
        assert_eq!(word, [0; 4]);
        drv.dev.read(u64::MAX - 3, &mut word, ArgRegs::default());
        assert_eq!(word, [0; 4]);
        // Writes to the configuration space are dropped.
        assert_eq!(drv.dev.write(CONFIG_OFFSET, &[0; 8]), None);
        drv.dev.read(CONFIG_OFFSET, &mut half, ArgRegs::default());
        assert_eq!(u16::from_le_bytes(half), 0x1234);
    }

    #[test]
    fn creation_errors() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
        let irq = || EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let odd = TempDisk::new("odd", 1000);
        let err = VirtioBlock::new(mem.clone(), odd.file.try_clone().unwrap(), irq(), "x");
        assert!(matches!(
            err,
            Err(BlockError::Disk(BackendError::UnalignedSize {
                len_bytes: 1000
            }))
        ));
        let ok = TempDisk::new("id", 512);
        let long_id = "a".repeat(21);
        let err = VirtioBlock::new(mem.clone(), ok.file.try_clone().unwrap(), irq(), &long_id);
        assert!(matches!(
            err,
            Err(BlockError::IdTooLong { len_bytes: 21, .. })
        ));
        let exact = "b".repeat(20);
        assert!(VirtioBlock::new(mem, ok.file.try_clone().unwrap(), irq(), &exact).is_ok());
    }
}
