//! The swap disk as an array of page-sized slots.
//!
//! Slot `s` is sectors `8s .. 8s + 8`. Pages move between a frame and its slot by DMA
//! straight into or out of the frame. Which slots are in use is the VM system's business.

use abi::boot::DeviceKind;
use abi::fs::SECTORS_PER_BLOCK;
use abi::layout::PAGE_SIZE;

use super::frame::Frame;
use crate::drivers::block::{self, BlockError};

/// Why a swap transfer failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapError {
    /// No swap disk is attached.
    NoSwap,
    /// The slot is beyond the disk.
    BadSlot,
    /// The device failed.
    Io,
}

/// Number of page slots on the swap disk (0 without one), from the size the VMM reported,
/// without setting the device up.
pub fn slot_count() -> u64 {
    crate::boot::info()
        .device(DeviceKind::SwapDisk)
        .map_or(0, |d| d.capacity_sectors / SECTORS_PER_BLOCK)
}

fn frame_bytes(frame: Frame) -> &'static mut [u8] {
    // SAFETY: the caller owns the frame for the transfer; the direct map covers it.
    unsafe { core::slice::from_raw_parts_mut(frame.as_ptr(), PAGE_SIZE as usize) }
}

fn map_error(e: BlockError) -> SwapError {
    match e {
        BlockError::OutOfRange => SwapError::BadSlot,
        BlockError::Device => SwapError::Io,
    }
}

/// Copies `frame` to `slot` on the swap disk.
pub fn write_slot(slot: u64, frame: Frame) -> Result<(), SwapError> {
    let disk = block::swap_disk().ok_or(SwapError::NoSwap)?;
    let sector = slot
        .checked_mul(SECTORS_PER_BLOCK)
        .ok_or(SwapError::BadSlot)?;
    disk.write(sector, frame_bytes(frame)).map_err(map_error)
}

/// Fills `frame` from `slot` on the swap disk.
pub fn read_slot(slot: u64, frame: Frame) -> Result<(), SwapError> {
    let disk = block::swap_disk().ok_or(SwapError::NoSwap)?;
    let sector = slot
        .checked_mul(SECTORS_PER_BLOCK)
        .ok_or(SwapError::BadSlot)?;
    disk.read(sector, frame_bytes(frame)).map_err(map_error)
}
