//! The statistics page (`abi::stats`): counters the VMM reads at any moment.
//!
//! Updates are plain loads and stores, no lock and no `lock`-prefixed instruction: every
//! update runs with interrupts off on the one CPU (faults, system calls, the scheduler, and
//! disk requests under their interrupt-safe lock), so two updates never interleave. The VMM
//! reads each `u64` whole.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use abi::boot::{BootInfo, FLAG_NO_FAULT_COUNTERS, KernelMode};
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
    // the stores made through them are sound. The VMM writes only the swap fields, and only
    // during a swap page operation's VM exit (a register read the compiler does not move
    // memory accesses across), so its stores never interleave with the kernel's.
    unsafe { &*(phys_to_virt(STATS_PAGE_GPA) as *const StatsPage) }
}

/// Marks the page valid. Called once at boot, before anything counts. The page is zero
/// already (the VMM's RAM starts zeroed and nothing else writes it), so it is not cleared:
/// that would be emulated stores for nothing on hosts that emulate ring 0.
pub fn init(info: &BootInfo) {
    FAULT_COUNTERS.store(info.flags & FLAG_NO_FAULT_COUNTERS == 0, Relaxed);
    let p = page();
    // Until `set_kernel_mode` says otherwise.
    p.kernel_mode.store(KernelMode::Classic as u64, Relaxed);
    p.host_kind.store(u64::from(info.host_kind), Relaxed);
    p.version.store(STATS_VERSION, Relaxed);
    p.magic.store(STATS_MAGIC, Relaxed);
}

/// Records the kernel mode this kernel runs in (`platform::init`).
pub fn set_kernel_mode(mode: KernelMode) {
    page().kernel_mode.store(mode as u64, Relaxed);
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

/// The counter of pages evicted to `to`.
#[inline]
pub fn evictions(to: abi::trace::EvictTo) -> &'static AtomicU64 {
    use abi::trace::EvictTo;
    let p = page();
    match to {
        EvictTo::Swap => &p.evict_swap,
        EvictTo::File => &p.evict_writeback,
        EvictTo::Drop => &p.evict_drop,
    }
}

/// How a fault was resolved. The order is the order of the `faults_*` outcome counters
/// on the page, from `faults_zero_fill`: the outcome indexes its counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum FaultOutcome {
    ZeroFill = 0,
    ElfLoad,
    MmapLoad,
    SwapIn,
    StackGrowth,
    CowCopy,
    CowReuse,
    Killed,
    OutOfMemory,
}

/// The counter of `outcome`: indexed from `faults_zero_fill` rather than chosen by a
/// `match`, a jump table of several emulated instructions on the fault path.
#[inline]
fn outcome_counter(p: &StatsPage, outcome: FaultOutcome) -> &AtomicU64 {
    const {
        use core::mem::offset_of;
        let first = offset_of!(StatsPage, faults_zero_fill);
        assert!(offset_of!(StatsPage, faults_elf_load) == first + 8);
        assert!(offset_of!(StatsPage, faults_mmap_load) == first + 16);
        assert!(offset_of!(StatsPage, faults_swap_in) == first + 24);
        assert!(offset_of!(StatsPage, faults_stack_growth) == first + 32);
        assert!(offset_of!(StatsPage, faults_cow_copy) == first + 40);
        assert!(offset_of!(StatsPage, faults_cow_reuse) == first + 48);
        assert!(offset_of!(StatsPage, faults_killed) == first + 56);
        assert!(offset_of!(StatsPage, faults_out_of_memory) == first + 64);
    }
    let first: *const AtomicU64 = &p.faults_zero_fill;
    // SAFETY: the outcome counters are consecutive `AtomicU64` fields of the page in
    // `FaultOutcome` order (checked above at compile time), so this stays inside the page.
    unsafe { &*first.add(outcome as usize) }
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

/// Records `n` zero-fill faults the fast mode's shim resolved (untimed), if fault counters
/// are on.
pub fn shim_zero_fills(n: u64) {
    if FAULT_COUNTERS.load(Relaxed) {
        let p = page();
        add(&p.faults, n);
        add(&p.faults_zero_fill, n);
        add(&p.faults_in_shim, n);
    }
}

/// Records a fault of process `pid` at `addr` that began at `start` (from
/// [`fault_start`]; 0, with counters off, records nothing: the TSC is never 0 once the
/// kernel runs), and traces it if a trace is on (`crate::trace`).
#[inline]
pub fn fault_end(start: u64, outcome: FaultOutcome, in_syscall: bool, pid: u32, addr: u64) {
    if start == 0 {
        return;
    }
    let cycles = cpu::rdtsc().wrapping_sub(start);
    let p = page();
    bump(&p.faults);
    bump(outcome_counter(p, outcome));
    if in_syscall {
        bump(&p.faults_in_syscall);
    }
    add(&p.fault_cycles_sum, cycles);
    if cycles > p.fault_cycles_max.load(Relaxed) {
        p.fault_cycles_max.store(cycles, Relaxed);
    }
    bump(&p.fault_cycles_log2[histogram_bucket(cycles)]);
    if crate::trace::on() {
        crate::trace::fault(pid, addr, outcome, start, cycles);
    }
}
