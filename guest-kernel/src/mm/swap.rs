//! The swap disk as an array of page-sized slots.
//!
//! Slot `s` is sectors `8s .. 8s + 8`. Pages move between a frame and its slot straight
//! into or out of the frame, moved by the VMM during one VM exit (a page operation on the
//! swap disk's file, the bytes the virtio device serves): measured on PVM, a virtio request
//! costs about 400 us of emulated driver code, a page operation about 20 us.
//! [`alloc_slot`] and [`release_slot`] keep track of which slots are in use.

use alloc::vec::Vec;

use spin::Once;

use abi::boot::DeviceKind;
use abi::devices::{PAGE_OP_SWAP_IN, PAGE_OP_SWAP_OUT};
use abi::fs::SECTORS_PER_BLOCK;

use super::frame::Frame;
use crate::drivers::sysctl;
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
    // Looked up once: every page moved to or from swap checks its slot against it.
    static SLOTS_ON_DISK: Once<u64> = Once::new();
    *SLOTS_ON_DISK.call_once(|| {
        crate::boot::info()
            .device(DeviceKind::SwapDisk)
            .map_or(0, |d| d.capacity_sectors / SECTORS_PER_BLOCK)
    })
}

/// Copies `frame` to `slot` on the swap disk.
pub fn write_slot(slot: u64, frame: Frame) -> Result<(), SwapError> {
    check(slot)?;
    count_transfer(&crate::stats::page().swap_writes);
    done(sysctl::page_op(PAGE_OP_SWAP_OUT, slot, frame.gpa()))
}

/// Fills `frame` from `slot` on the swap disk.
pub fn read_slot(slot: u64, frame: Frame) -> Result<(), SwapError> {
    check(slot)?;
    count_transfer(&crate::stats::page().swap_reads);
    done(sysctl::page_op(PAGE_OP_SWAP_IN, frame.gpa(), slot))
}

/// Counts one page moved to or from swap (`pages`: reads or writes): a swap-disk request
/// of one page's sectors.
fn count_transfer(pages: &core::sync::atomic::AtomicU64) {
    let p = crate::stats::page();
    crate::stats::bump(pages);
    crate::stats::bump(&p.swap_disk_requests);
    crate::stats::add(&p.swap_disk_sectors, SECTORS_PER_BLOCK);
}

/// Updates the stats page's slot gauge from `s` (locked).
fn count_slots(s: &Slots) {
    let p = crate::stats::page();
    crate::stats::level(&p.swap_slots_used, &p.swap_slots_peak, s.total - s.free);
}

fn check(slot: u64) -> Result<(), SwapError> {
    match slot_count() {
        0 => Err(SwapError::NoSwap),
        slots if slot >= slots => Err(SwapError::BadSlot),
        _ => Ok(()),
    }
}

fn done(ok: bool) -> Result<(), SwapError> {
    if ok { Ok(()) } else { Err(SwapError::Io) }
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
    crate::stats::page()
        .swap_slots_total
        .store(total, core::sync::atomic::Ordering::Relaxed);
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
            count_slots(&s);
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
        count_slots(&s);
    }
}

/// Free slots now, and slots in all.
pub fn slot_usage() -> (u64, u64) {
    let s = SLOTS.lock();
    (s.free, s.total)
}
