//! The fault trace ring (`abi::trace`): with `vmm run --trace-faults`, a record of every
//! page fault, eviction and release of a process's pages, which the VMM drains while the
//! guest runs.
//!
//! Off (the default) the fault path pays one load and branch ([`on`]); nothing is written.
//! On, a record is a few plain stores into the ring and one to its head, no VM exit and no
//! lock: every record is written with interrupts off on the one CPU, like the stats page's
//! counters. A full ring drops the record and counts it; the guest never waits for the VMM.

use core::sync::atomic::{AtomicBool, Ordering};

use abi::boot::{BootInfo, FLAG_NO_FAULT_COUNTERS, FLAG_TRACE_FAULTS};
use abi::layout::{TRACE_HEADER_GPA, TRACE_RING_GPA, phys_to_virt};
use abi::trace::{
    Cause, EvictTo, RecordKind, Release, TRACE_CAPACITY, TRACE_MAGIC, TRACE_VERSION, TraceHeader,
    TraceRecord, UNTIMED,
};

use crate::arch::x86_64::cpu;
use crate::stats::FaultOutcome;

/// Whether records are written ([`init`]).
static ON: AtomicBool = AtomicBool::new(false);

fn header() -> &'static TraceHeader {
    // SAFETY: the header is a reserved guest-physical page below usable RAM
    // (`abi::layout`), covered by the direct map for the whole run and used for nothing
    // else. `TraceHeader` is all `AtomicU64`s, valid for any bytes. The VMM writes only
    // `tail`, so the kernel's plain stores to the other fields never race with it.
    unsafe { &*(phys_to_virt(TRACE_HEADER_GPA) as *const TraceHeader) }
}

/// Sets the ring up if the boot flags ask for a trace (and the fault counters are on: a
/// fault is traced where it is counted). Call once at boot, before anything faults.
pub fn init(info: &BootInfo) {
    if info.flags & FLAG_TRACE_FAULTS == 0 || info.flags & FLAG_NO_FAULT_COUNTERS != 0 {
        return;
    }
    let h = header();
    h.start_tsc.store(cpu::rdtsc(), Ordering::Relaxed);
    h.version.store(TRACE_VERSION, Ordering::Relaxed);
    h.magic.store(TRACE_MAGIC, Ordering::Release);
    ON.store(true, Ordering::Relaxed);
}

/// Whether records are written.
#[inline(always)]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Appends one record, or counts it dropped if the ring is full.
#[inline(never)]
fn record(kind: RecordKind, detail: u8, pid: u32, page: u64, tsc: u64, cycles: u64) {
    let h = header();
    let head = h.head.load(Ordering::Relaxed);
    if head.wrapping_sub(h.tail.load(Ordering::Acquire)) >= TRACE_CAPACITY {
        crate::stats::bump(&h.dropped);
        return;
    }
    let slot = phys_to_virt(TRACE_RING_GPA) as *mut TraceRecord;
    // SAFETY: `head % TRACE_CAPACITY` indexes the ring, reserved memory below usable RAM in
    // the direct map (see `header`); the VMM reads this slot only once `head` is past it,
    // and has given it back (`tail` is past its last use), so nobody else accesses it now.
    unsafe {
        slot.add((head % TRACE_CAPACITY) as usize)
            .write_volatile(TraceRecord {
                tsc,
                page,
                cycles,
                pid,
                kind: kind as u8,
                detail,
                reserved: 0,
            });
    }
    h.head.store(head + 1, Ordering::Release);
}

/// A fault of `pid` at `addr` that started at TSC `start` and took `cycles`.
#[cold]
pub fn fault(pid: u32, addr: u64, outcome: FaultOutcome, start: u64, cycles: u64) {
    let cause = match outcome {
        FaultOutcome::ZeroFill => Cause::Zero,
        FaultOutcome::ElfLoad => Cause::File,
        FaultOutcome::MmapLoad => Cause::Mmap,
        FaultOutcome::SwapIn => Cause::Swap,
        FaultOutcome::StackGrowth => Cause::Stack,
        FaultOutcome::CowCopy | FaultOutcome::CowReuse => Cause::Cow,
        FaultOutcome::Killed | FaultOutcome::OutOfMemory => Cause::Kill,
    };
    let page = addr & !(abi::layout::PAGE_SIZE - 1);
    record(RecordKind::Fault, cause as u8, pid, page, start, cycles);
}

/// A zero-fill fault of `pid` at `page` that the fast mode's shim resolved (untimed; it is
/// recorded when the kernel settles it, at its next entry from that process, before
/// anything else of that entry is recorded).
#[inline]
pub fn shim_fault(pid: u32, page: u64) {
    if on() {
        record(
            RecordKind::Fault,
            Cause::Zero as u8,
            pid,
            page,
            cpu::rdtsc(),
            UNTIMED,
        );
    }
}

/// `page` of `pid` left memory for `to`.
#[inline]
pub fn evict(pid: u32, page: u64, to: EvictTo) {
    if on() {
        record(RecordKind::Evict, to as u8, pid, page, cpu::rdtsc(), 0);
    }
}

/// Every page of `pid` was released (`why`).
#[inline]
pub fn release(pid: u32, why: Release) {
    if on() {
        record(RecordKind::Release, why as u8, pid, 0, cpu::rdtsc(), 0);
    }
}
