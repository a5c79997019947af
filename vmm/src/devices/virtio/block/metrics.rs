//! Counters of one virtio block device.
//!
//! The vCPU thread bumps them where each event happens; another thread may read them at any
//! moment while the guest runs. Each counter is independent (no counter is derived from
//! another under a lock), so `Relaxed` ordering is enough: a reader sees each value as some
//! recent value, never a torn one.

use std::sync::atomic::{AtomicU64, Ordering};

/// Named event counters of a virtio block device. Shared through an `Arc`.
#[derive(Debug, Default)]
pub struct BlockMetrics {
    /// Well-formed `VIRTIO_BLK_T_IN` requests served (including ones that hit an I/O error).
    pub read_requests: AtomicU64,
    /// Well-formed `VIRTIO_BLK_T_OUT` requests served (including ones that hit an I/O error).
    pub write_requests: AtomicU64,
    /// Well-formed `VIRTIO_BLK_T_FLUSH` requests served.
    pub flush_requests: AtomicU64,
    /// Well-formed `VIRTIO_BLK_T_GET_ID` requests served.
    pub get_id_requests: AtomicU64,
    /// Requests of a type the device does not know (completed with `VIRTIO_BLK_S_UNSUPP`).
    pub unsupported_requests: AtomicU64,
    /// Bytes copied from the disk into guest memory by successful reads.
    pub bytes_read: AtomicU64,
    /// Bytes copied from guest memory onto the disk by successful writes.
    pub bytes_written: AtomicU64,
    /// Requests rejected by the parser (every `RequestError`, unsupported types included).
    pub malformed_requests: AtomicU64,
    /// Well-formed requests that failed on the backing file or on guest memory.
    pub io_errors: AtomicU64,
    /// Writes to the `QueueNotify` register.
    pub notifications: AtomicU64,
    /// Signals written to the interrupt eventfd.
    pub interrupts: AtomicU64,
    /// Register reads and writes (each a VM exit) made while the driver had the device
    /// running (`DRIVER_OK` set): the exits that requests cost, without the setup.
    pub accesses_while_live: AtomicU64,
    /// The first request that failed on the backing file (a full disk, an I/O error), for
    /// the VMM's report after the run.
    pub first_file_error: std::sync::Mutex<Option<String>>,
}

impl BlockMetrics {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value of `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_start_at_zero_and_count() {
        let m = BlockMetrics::default();
        assert_eq!(BlockMetrics::get(&m.read_requests), 0);
        BlockMetrics::bump(&m.read_requests);
        BlockMetrics::add(&m.bytes_read, 4096);
        assert_eq!(BlockMetrics::get(&m.read_requests), 1);
        assert_eq!(BlockMetrics::get(&m.bytes_read), 4096);
        assert_eq!(BlockMetrics::get(&m.bytes_written), 0);
    }
}
