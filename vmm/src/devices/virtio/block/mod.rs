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
use crate::devices::bus::BusDevice;

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
            Err(_) => {
                BlockMetrics::bump(&m.io_errors);
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

impl BusDevice for VirtioBlock {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset.checked_sub(CONFIG_OFFSET) {
            Some(config_offset) => self.read_config(config_offset, data),
            None => self.transport.read(offset, data),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Option<GuestRequest> {
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
