//! The statistics page (`abi::stats`): counters the VMM reads at any moment.
//!
//! Updates are plain loads and stores, no lock and no `lock`-prefixed instruction: every
//! update runs with interrupts off on the one CPU (faults, system calls, the scheduler, and
//! disk requests under their interrupt-safe lock), so two updates never interleave. The VMM
//! reads each `u64` whole.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use abi::boot::{BootInfo, FLAG_NO_FAULT_COUNTERS};
use abi::layout::{STATS_PAGE_GPA, phys_to_virt};
use abi::stats::{STATS_MAGIC, STATS_VERSION, StatsPage, histogram_bucket};

use crate::arch::x86_64::cpu;

/// Whether the fault path records its counters (see `FLAG_NO_FAULT_COUNTERS`).
static FAULT_COUNTERS: AtomicBool = AtomicBool::new(true);

/// The page.
pub fn page() -> &'static StatsPage {
    // SAFETY: the stats page is a reserved guest-physical page below usable RAM (see
    // `abi::layout`), covered by the direct map for the whole run and used for nothing
    // else. `StatsPage` is all `AtomicU64`s, valid for any bytes, so shared references and
    // the stores made through them are sound; the VMM only reads the page.
    unsafe { &*(phys_to_virt(STATS_PAGE_GPA) as *const StatsPage) }
}

/// Marks the page valid. Called once at boot, before anything counts. The page is zero
/// already (the VMM's RAM starts zeroed and nothing else writes it), so it is not cleared:
/// that would be emulated stores for nothing on hosts that emulate ring 0.
pub fn init(info: &BootInfo) {
    FAULT_COUNTERS.store(info.flags & FLAG_NO_FAULT_COUNTERS == 0, Relaxed);
    let p = page();
    p.version.store(STATS_VERSION, Relaxed);
    p.magic.store(STATS_MAGIC, Relaxed);
}

/// Adds `n` to `counter` (a plain load and store: see the module documentation).
#[inline]
pub fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Adds one to `counter`.
#[inline]
pub fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

/// Sets gauge `level` to `value` and raises `peak` to it if higher.
#[inline]
pub fn level(level: &AtomicU64, peak: &AtomicU64, value: u64) {
    level.store(value, Relaxed);
    if value > peak.load(Relaxed) {
        peak.store(value, Relaxed);
    }
}

/// How a fault was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    ZeroFill,
    ElfLoad,
    MmapLoad,
    SwapIn,
    StackGrowth,
    CowCopy,
    CowReuse,
    Killed,
    OutOfMemory,
}

/// The time a fault started, for [`fault_end`]; 0 when fault counters are off.
#[inline]
pub fn fault_start() -> u64 {
    if FAULT_COUNTERS.load(Relaxed) {
        cpu::rdtsc()
    } else {
        0
    }
}

/// Records a fault that began at `start` (from [`fault_start`]).
pub fn fault_end(start: u64, outcome: FaultOutcome, in_syscall: bool) {
    if !FAULT_COUNTERS.load(Relaxed) {
        return;
    }
    let cycles = cpu::rdtsc().wrapping_sub(start);
    let p = page();
    bump(&p.faults);
    bump(match outcome {
        FaultOutcome::ZeroFill => &p.faults_zero_fill,
        FaultOutcome::ElfLoad => &p.faults_elf_load,
        FaultOutcome::MmapLoad => &p.faults_mmap_load,
        FaultOutcome::SwapIn => &p.faults_swap_in,
        FaultOutcome::StackGrowth => &p.faults_stack_growth,
        FaultOutcome::CowCopy => &p.faults_cow_copy,
        FaultOutcome::CowReuse => &p.faults_cow_reuse,
        FaultOutcome::Killed => &p.faults_killed,
        FaultOutcome::OutOfMemory => &p.faults_out_of_memory,
    });
    if in_syscall {
        bump(&p.faults_in_syscall);
    }
    add(&p.fault_cycles_sum, cycles);
    if cycles > p.fault_cycles_max.load(Relaxed) {
        p.fault_cycles_max.store(cycles, Relaxed);
    }
    bump(&p.fault_cycles_log2[histogram_bucket(cycles)]);
}
