//! The swap disk as an array of page-sized slots.
//!
//! Slot `s` is sectors `8s .. 8s + 8`. Pages move between a frame and a slot straight into
//! or out of the frame, moved by the VMM during one VM exit (a page operation on the swap
//! disk's file, the bytes the virtio device serves): measured on PVM, a virtio request
//! costs about 400 us of emulated driver code, a page operation about 30 us.
//!
//! The VMM also keeps which slots are in use, and how many pages hold each (a page in swap
//! shared copy-on-write is one slot for all its owners): a slot is taken when a page is
//! written out ([`swap_out`]) and let go when a page is read back ([`swap_in`]) or its
//! process ends ([`release_slot`]). Searching and updating a bitmap here would be dozens of
//! emulated instructions on every eviction and swap-in on KVMs that emulate ring 0; there
//! it is part of the one VM exit the page's move costs anyway. The VMM keeps the
//! `swap_*` counters of the stats page for the same reason.
//!
//! A page fault reads its page back with the same operation plus a map request, so that
//! the VMM also maps the page in that exit (`vm::fault`); [`swap_in`] is the plain read.

use spin::Once;

use abi::boot::DeviceKind;
use abi::devices::{
    EVICT_MAX_SLOTS, MAX_SWAP_SLOTS, PAGE_OP_DONE, PAGE_OP_FAILED, PAGE_OP_SWAP_FULL,
    SYSCTL_SWAP_DROP, SYSCTL_SWAP_FREE, SYSCTL_SWAP_IN, SYSCTL_SWAP_OUT, SYSCTL_SWAP_SHARE,
};
use abi::fs::SECTORS_PER_BLOCK;

use crate::drivers::sysctl;
use crate::mm::frame::Frame;

/// Why a page could not go to or come from swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapError {
    /// No swap disk is attached.
    NoSwap,
    /// Every slot is in use.
    Full,
    /// The VMM refused the slot (not in use) or the host's read or write failed.
    Io,
}

/// Number of page slots on the swap disk (0 without one), from the size the VMM reported.
pub fn slot_count() -> u64 {
    // Looked up once: it bounds what a process may register.
    static SLOTS_ON_DISK: Once<u64> = Once::new();
    *SLOTS_ON_DISK.call_once(|| {
        crate::boot::info()
            .device(DeviceKind::SwapDisk)
            .map_or(0, |d| d.capacity_sectors / SECTORS_PER_BLOCK)
            .min(MAX_SWAP_SLOTS)
    })
}

/// Writes `frame` to a free slot, which `holders` pages (the frame's owners) then hold;
/// returns the slot.
#[inline]
pub fn swap_out(frame: Frame, holders: u16) -> Result<u32, SwapError> {
    match sysctl::page_op(SYSCTL_SWAP_OUT, frame.number(), u32::from(holders)) {
        PAGE_OP_SWAP_FULL => Err(SwapError::Full),
        PAGE_OP_FAILED if slot_count() == 0 => Err(SwapError::NoSwap),
        PAGE_OP_FAILED => Err(SwapError::Io),
        slot => Ok(slot),
    }
}

/// Whether a page's swap-out may ride on the page operation that fills its frame for a
/// fault (`abi::devices::SYSCTL_EVICT_ZERO_MAP`): there is a free slot (the VMM keeps the
/// count on the stats page), and few enough slots that the operation's result can name
/// any of them.
#[inline]
pub fn can_defer_swap_out() -> bool {
    let p = crate::stats::page();
    let used = p
        .swap_slots_used
        .load(core::sync::atomic::Ordering::Relaxed);
    let total = slot_count();
    total <= EVICT_MAX_SLOTS && used < total
}

/// Fills `frame` from `slot`, which the reading page no longer holds afterwards, also if
/// the read fails (the slot is free once no page holds it).
#[inline]
pub fn swap_in(slot: u32, frame: Frame) -> Result<(), SwapError> {
    match sysctl::page_op(SYSCTL_SWAP_IN, frame.number(), slot) {
        PAGE_OP_DONE => Ok(()),
        _ => Err(SwapError::Io),
    }
}

/// One more page holds `slot` (fork copied a page that is in swap).
pub fn share_slot(slot: u32) {
    // The VMM refuses only a slot not in use, which no page names.
    let _ = sysctl::page_op(SYSCTL_SWAP_SHARE, slot, 0);
}

/// One page no longer holds `slot` (its process ended, or exec dropped its old pages); the
/// last frees it.
pub fn release_slot(slot: u32) {
    // A slot the VMM does not know as in use has nothing to free.
    let _ = sysctl::page_op(SYSCTL_SWAP_DROP, slot, 0);
}

/// Free slots now, and slots in all.
pub fn slot_usage() -> (u64, u64) {
    let total = slot_count();
    if total == 0 {
        return (0, 0);
    }
    (u64::from(sysctl::page_op(SYSCTL_SWAP_FREE, 0, 0)), total)
}
