//! The swap disk as an array of page-sized slots.
//!
//! Slot `s` is sectors `8s .. 8s + 8`. Pages move between a frame and its slot by DMA
//! straight into or out of the frame. [`alloc_slot`] and [`release_slot`] keep track of which
//! slots are in use.

use alloc::vec::Vec;

use abi::boot::DeviceKind;
use abi::fs::SECTORS_PER_BLOCK;
use abi::layout::PAGE_SIZE;

use super::frame::Frame;
use crate::drivers::block::{self, BlockError};
use crate::sync::IrqSpinLock;

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

/// Which slots hold a page: a bitmap searched from a rotating cursor, plus a count of the
/// pages sharing each slot (a page swapped out while shared copy-on-write, or a swapped
/// page inherited by fork, is one slot for all its owners). Set up once, when the first
/// process starts ([`init_slots`]); every use runs with interrupts off (page faults,
/// system calls), so the lock is never contended.
struct Slots {
    used: Vec<u64>,
    owners: Vec<u16>,
    /// Word of `used` where the next search starts.
    cursor: usize,
    free: u64,
    total: u64,
}

static SLOTS: IrqSpinLock<Slots> = IrqSpinLock::new(
    "swap slots",
    Slots {
        used: Vec::new(),
        owners: Vec::new(),
        cursor: 0,
        free: 0,
        total: 0,
    },
);

/// Sets up the slot bitmap for the attached swap disk (once; later calls do nothing).
/// False if the kernel heap has no room for it.
pub fn init_slots() -> bool {
    let mut s = SLOTS.lock();
    let total = slot_count();
    if s.total == total {
        return true;
    }
    let Ok(total_len) = usize::try_from(total) else {
        return false;
    };
    let words = total_len.div_ceil(64);
    if s.used.try_reserve_exact(words).is_err() || s.owners.try_reserve_exact(total_len).is_err() {
        return false;
    }
    s.used.resize(words, 0);
    s.owners.resize(total_len, 0);
    // Slots past the end of the last word do not exist: mark them used.
    if !total.is_multiple_of(64) {
        s.used[words - 1] = !0u64 << (total % 64);
    }
    s.free = total;
    s.total = total;
    true
}

/// Takes a free slot for `owners` pages; `None` if swap is full (or absent).
pub fn alloc_slot(owners: u16) -> Option<u64> {
    let mut s = SLOTS.lock();
    if s.free == 0 {
        return None;
    }
    let words = s.used.len();
    for step in 0..words {
        let w = (s.cursor + step) % words;
        let bits = s.used[w];
        if bits != !0 {
            let bit = u64::from((!bits).trailing_zeros());
            let slot = w as u64 * 64 + bit;
            s.used[w] |= 1 << bit;
            s.owners[slot as usize] = owners;
            s.cursor = w;
            s.free -= 1;
            return Some(slot);
        }
    }
    None
}

/// One more page holds `slot` (fork copied a swapped page's entry).
pub fn share_slot(slot: u64) {
    let mut s = SLOTS.lock();
    if let Some(n) = s.owners.get_mut(slot as usize) {
        *n = n.saturating_add(1);
    }
}

/// One page no longer holds `slot` (swapped in, or its process ended); the last frees it.
pub fn release_slot(slot: u64) {
    let mut s = SLOTS.lock();
    let Some(n) = s.owners.get_mut(slot as usize) else {
        return;
    };
    if *n == 0 {
        return;
    }
    *n -= 1;
    if *n == 0 {
        s.used[(slot / 64) as usize] &= !(1 << (slot % 64));
        s.free += 1;
    }
}

/// Free slots now, and slots in all.
pub fn slot_usage() -> (u64, u64) {
    let s = SLOTS.lock();
    (s.free, s.total)
}
