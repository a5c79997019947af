//! Block devices: the file-system disk and the swap disk, virtio-blk over virtio-mmio.
//!
//! A request is served by the VMM during the queue-notify write, so the driver submits and
//! finds the answer already in the used ring: one VM exit per request, with the data moving
//! straight between the disk and the caller's buffer (which may be a whole frame).
//! The driver therefore polls with device interrupts suppressed: an interrupt would only
//! cost two more exits to acknowledge it. [`BlockDevice::set_interrupts`] turns them on
//! (the self-tests check that delivery works); they are then acknowledged and counted.

use abi::boot::{BootInfo, DeviceKind, SPACE_MMIO};
use abi::fs::SECTOR_SIZE;
use abi::layout::phys_to_virt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Once;
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};

use super::virtio::KernelHal;
use crate::sync::IrqSpinLock;

/// Why a block request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The range is beyond the end of the disk, or the buffer is not whole sectors.
    OutOfRange,
    /// The device reported an error.
    Device,
}

/// A virtio block device.
pub struct BlockDevice {
    device: IrqSpinLock<VirtIOBlk<KernelHal, MmioTransport<'static>>>,
    sectors: u64,
    /// Interrupts the device raised.
    interrupts: AtomicU64,
    /// The stats page's request and sector counters for this disk.
    counters: (&'static AtomicU64, &'static AtomicU64),
}

static FS_DISK: Once<Option<BlockDevice>> = Once::new();
static SWAP_DISK: Once<Option<BlockDevice>> = Once::new();

impl BlockDevice {
    /// Probes the virtio-mmio device of `kind` that the VMM described, if any.
    fn probe(info: &BootInfo, kind: DeviceKind, name: &'static str) -> Option<BlockDevice> {
        let dev = info.device(kind).filter(|d| d.space == SPACE_MMIO)?;
        let header = NonNull::new(phys_to_virt(dev.base) as *mut VirtIOHeader)?;
        // SAFETY: the VMM describes a virtio-mmio register window of `size` bytes at `base`,
        // covered (uncached) by the direct map and used by nothing else.
        let transport = unsafe { MmioTransport::new(header, dev.size as usize) }.ok()?;
        let mut blk = VirtIOBlk::<KernelHal, _>::new(transport).ok()?;
        blk.disable_interrupts();
        let sectors = blk.capacity();
        let stats = crate::stats::page();
        let counters = match kind {
            DeviceKind::SwapDisk => (&stats.swap_disk_requests, &stats.swap_disk_sectors),
            _ => (&stats.fs_disk_requests, &stats.fs_disk_sectors),
        };
        Some(BlockDevice {
            device: IrqSpinLock::new(name, blk),
            sectors,
            interrupts: AtomicU64::new(0),
            counters,
        })
    }

    /// Counts one request of `bytes` on the stats page (called with the device locked, so
    /// with interrupts off).
    fn count(&self, bytes: usize) {
        crate::stats::bump(self.counters.0);
        crate::stats::add(self.counters.1, bytes as u64 / SECTOR_SIZE);
    }

    /// Capacity in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    fn check(&self, sector: u64, len: usize) -> Result<(), BlockError> {
        let count = len as u64 / SECTOR_SIZE;
        let whole = len > 0 && (len as u64).is_multiple_of(SECTOR_SIZE);
        if whole
            && sector
                .checked_add(count)
                .is_some_and(|end| end <= self.sectors)
        {
            Ok(())
        } else {
            Err(BlockError::OutOfRange)
        }
    }

    /// Reads whole sectors from `sector` into `buf` (by DMA, no copy).
    pub fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.check(sector, buf.len())?;
        let mut device = self.device.lock();
        self.count(buf.len());
        device
            .read_blocks(sector as usize, buf)
            .map_err(|_| BlockError::Device)
    }

    /// Writes whole sectors from `buf` at `sector` (by DMA, no copy).
    pub fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.check(sector, buf.len())?;
        let mut device = self.device.lock();
        self.count(buf.len());
        device
            .write_blocks(sector as usize, buf)
            .map_err(|_| BlockError::Device)
    }

    /// Sends a request without the range check, so the device's own checking can be
    /// exercised by the self-tests.
    pub fn read_unchecked(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let mut device = self.device.lock();
        self.count(buf.len());
        device
            .read_blocks(sector as usize, buf)
            .map_err(|_| BlockError::Device)
    }

    /// The device's identifier string.
    pub fn device_id(&self) -> Result<([u8; 20], usize), BlockError> {
        let mut id = [0u8; 20];
        let len = self
            .device
            .lock()
            .device_id(&mut id)
            .map_err(|_| BlockError::Device)?;
        Ok((id, len))
    }

    /// Asks the device to interrupt on completions, or not.
    pub fn set_interrupts(&self, enabled: bool) {
        let mut device = self.device.lock();
        if enabled {
            device.enable_interrupts();
        } else {
            device.disable_interrupts();
        }
    }

    /// Interrupts received from this device.
    pub fn interrupts(&self) -> u64 {
        self.interrupts.load(Ordering::Relaxed)
    }

    /// Interrupt handler: acknowledge and count.
    fn on_interrupt(&self) {
        self.device.lock().ack_interrupt();
        self.interrupts.fetch_add(1, Ordering::Relaxed);
    }
}

/// The file-system disk, if attached; the first call sets it up. Disks are set up on first
/// use: that costs about 30 VM exits and much emulated code, which a run that never
/// touches a disk need not pay. Not for interrupt handlers.
pub fn fs_disk() -> Option<&'static BlockDevice> {
    FS_DISK
        .call_once(|| BlockDevice::probe(crate::boot::info(), DeviceKind::FsDisk, "fs disk"))
        .as_ref()
}

/// The swap disk, if attached; the first call sets it up. Not for interrupt handlers.
pub fn swap_disk() -> Option<&'static BlockDevice> {
    SWAP_DISK
        .call_once(|| BlockDevice::probe(crate::boot::info(), DeviceKind::SwapDisk, "swap disk"))
        .as_ref()
}

/// Routes a device interrupt line to its disk; returns whether one took it.
pub fn handle_interrupt(line: u32) -> bool {
    let disk = match line {
        abi::devices::FS_DISK_IRQ => FS_DISK.get().and_then(Option::as_ref),
        // Only a disk already set up can interrupt; never set one up from a handler.
        abi::devices::SWAP_DISK_IRQ => SWAP_DISK.get().and_then(Option::as_ref),
        _ => None,
    };
    disk.inspect(|d| d.on_interrupt()).is_some()
}
