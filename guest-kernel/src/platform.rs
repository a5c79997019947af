//! The platform interface: every privileged operation the portable kernel uses, in one
//! place.
//!
//! | operation                  | here                                         |
//! |----------------------------|----------------------------------------------|
//! | interrupt guard            | [`disable_interrupts`], [`enable_interrupts`] |
//! | halt                       | [`wait_for_interrupt`], [`halt_forever`]     |
//! | page-table root (CR3)      | [`load_page_table`], [`active_page_table`]   |
//! | TLB flush                  | [`flush_tlb_page`]                           |
//! | port I/O (VMM devices)     | [`inb`], [`outb`], [`outsb`], [`inl`], [`outl`], [`inl_with_args`] |
//! | interrupt acknowledge      | [`end_of_interrupt`]                         |
//! | the timer                  | [`start_timer`], [`stop_timer`]              |
//! | entry from and to user mode | [`init_user_entry`], [`set_kernel_stack`], [`enter_user`] |
//! | device notify              | none: virtio notifications are MMIO stores by the driver |
//!
//! Each operation is the instruction itself (`arch::x86_64`). In the fast kernel mode
//! (`arch::x86_64::fast`) the kernel's page faults and system calls run at CPL 3 behind a
//! ring-0 shim, and three operations know it: the interrupt guard leaves the flag alone
//! there, a TLB flush is left out and a root load only records the root (the shim reloads
//! CR3 on the way back to the user). Port I/O at CPL 3 faults, and the shim does it in ring
//! 0. Code outside `arch` and this module executes no privileged instruction, so nothing
//! else changes with the mode.
//!
//! The active page-table root is kept in memory, not read back from CR3: every write goes
//! through [`load_page_table`], and a memory load is what CPL-3 code can do (and is cheaper
//! than an emulated `mov` from CR3 where ring 0 is emulated).
//!
//! Everything is `#[inline(always)]`: the interface costs nothing over the instructions.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::boot::{BootInfo, KernelMode};

use crate::arch::x86_64::context::Context;
use crate::arch::x86_64::trap::TrapFrame;
use crate::arch::x86_64::{cpl3, cpu, fast, lapic, user};
use crate::mm::frame::Frame;

/// The kernel view to run the fast mode in, once [`init_user_entry`] starts it; 0 in the
/// classic mode.
static FAST_MODE_VIEW: AtomicU64 = AtomicU64::new(0);

/// Records the page tables the VMM booted with as the loaded ones, and chooses the kernel
/// mode the VMM asked for (`BootInfo::kernel_mode`); returns the mode it runs. Call once, at
/// boot, before any other page-table operation here.
///
/// The fast mode ([`KernelMode::Fast`], `arch::x86_64::fast`) starts with the first user
/// program ([`init_user_entry`]): it concerns user programs' events only, and a boot
/// without one (self-tests, benchmarks) need not pay for it.
pub fn init(info: &BootInfo) -> KernelMode {
    cpu::LOADED_ROOT.store(cpu::read_cr3(), Ordering::Relaxed);
    let fast = KernelMode::from_raw(info.kernel_mode) == Some(KernelMode::Fast)
        && info.kview_pml4_gpa != 0;
    if fast {
        FAST_MODE_VIEW.store(info.kview_pml4_gpa, Ordering::Relaxed);
        KernelMode::Fast
    } else {
        KernelMode::Classic
    }
}

/// Turns interrupts off; returns whether they were on.
#[inline(always)]
pub fn disable_interrupts() -> bool {
    let was_enabled = cpu::interrupts_enabled();
    // `cli` only when they are on: where ring 0 is emulated it is one more emulated
    // instruction, and most guards are taken with interrupts off already (system calls and
    // faults run so), which keeps the check below off their path. Kernel code at CPL 3
    // (`cpl3`) runs with interrupts off but may read them as on (on PVM `pushf` there
    // shows the host's flag): it must not execute `cli`, which would fault.
    if was_enabled && !cpl3::active() {
        cpu::cli();
    }
    was_enabled
}

/// Turns interrupts on (not for kernel code at CPL 3, which runs with them off: see
/// [`disable_interrupts`]).
#[inline(always)]
pub fn enable_interrupts() {
    if !cpl3::active() {
        cpu::enable_interrupts();
    }
}

/// Whether interrupts are on.
#[inline(always)]
pub fn interrupts_enabled() -> bool {
    cpu::interrupts_enabled()
}

/// Turns interrupts on and waits for the next one, atomically: an interrupt that arrives
/// in between is not lost.
#[inline(always)]
pub fn wait_for_interrupt() {
    cpu::enable_interrupts_and_halt();
}

/// Stops the CPU for good (after power-off was asked for, or a panic was reported).
#[inline(always)]
pub fn halt_forever() -> ! {
    cpu::halt_forever()
}

/// Loads the page tables rooted at `pml4` (flushing every non-global TLB entry). Kernel
/// code at CPL 3 (the fast mode: an `exec`) only records the root: the shim loads it on
/// the way back to the user.
///
/// # Safety
/// `pml4` must map the kernel half exactly as the running tables do, so that kernel code,
/// data and stacks stay mapped across the switch.
#[inline(always)]
pub unsafe fn load_page_table(pml4: Frame) {
    cpu::LOADED_ROOT.store(pml4.gpa(), Ordering::Relaxed);
    if !cpl3::active() {
        // SAFETY: the caller's contract.
        unsafe { cpu::write_cr3(pml4.gpa()) };
    }
}

/// The PML4 slot where user address spaces map their own tables (supervisor-only) for
/// the fast mode's shim, once that mode runs; `None` in classic mode.
#[inline(always)]
pub fn self_map_slot() -> Option<usize> {
    fast::is_on().then_some(fast::SELF_SLOT)
}

/// Whether kernel code at CPL 3 may switch threads now: in the fast mode's events (on the
/// thread's kernel stack), not under `cpl3::call` (on the shim's own stacks).
#[inline(always)]
pub fn switches_at_cpl3() -> bool {
    fast::is_on() && !cpl3::in_session()
}

/// Switches threads from kernel code at CPL 3 (`arch::x86_64::fast::switch_threads`):
/// saves the running thread into `from`, resumes `to`, whose kernel stack's top is `top`
/// (0: keep the entry stack). The new thread's page tables must be recorded
/// ([`load_page_table`]) and the FPU state swapped; the shim loads the tables.
///
/// # Safety
/// As `arch::x86_64::fast::switch_threads`; only where [`switches_at_cpl3`] holds.
#[inline(always)]
pub unsafe fn switch_threads_at_cpl3(from: *mut Context, to: *const Context, top: u64) {
    // SAFETY: the caller's contract.
    unsafe { fast::switch_threads(from, to, top) }
}

/// Whether the fast mode runs: the kernel's work happens at CPL 3, so ring-0 code may
/// leave work that needs no privilege (freeing memory) to the kernel's next event there.
#[inline(always)]
pub fn kernel_work_at_cpl3() -> bool {
    fast::is_on()
}

/// Whether kernel code runs at CPL 3 now (the fast mode's events): it must not block or
/// switch threads there.
#[inline(always)]
pub fn kernel_at_cpl3() -> bool {
    cpl3::active()
}

/// The loaded page tables' root.
#[inline(always)]
pub fn active_page_table() -> Frame {
    Frame::from_gpa(cpu::LOADED_ROOT.load(Ordering::Relaxed))
}

/// Drops the TLB's translation of `va` in the loaded page tables. Kernel code at CPL 3
/// (the fast mode) leaves it to the shim, which reloads CR3 before the user runs again and
/// so drops every non-global translation.
#[inline(always)]
pub fn flush_tlb_page(va: u64) {
    if !cpl3::active() {
        cpu::invlpg(va);
    }
}

/// Signals the end of the interrupt being handled.
#[inline(always)]
pub fn end_of_interrupt() {
    lapic::eoi();
}

/// Starts the periodic timer (and the local APIC).
#[inline(always)]
pub fn start_timer() {
    lapic::init();
}

/// Stops the timer (before power-off or when measuring without it).
#[inline(always)]
pub fn stop_timer() {
    lapic::stop_timer();
}

/// Reads a byte from I/O port `port` (a VMM device, `abi::devices`).
#[inline(always)]
pub fn inb(port: u16) -> u8 {
    cpu::inb(port)
}

/// Writes a byte to I/O port `port`.
#[inline(always)]
pub fn outb(port: u16, value: u8) {
    cpu::outb(port, value);
}

/// Reads a 32-bit value from I/O port `port`.
#[inline(always)]
pub fn inl(port: u16) -> u32 {
    cpu::inl(port)
}

/// Writes a 32-bit value to I/O port `port`.
#[inline(always)]
pub fn outl(port: u16, value: u32) {
    cpu::outl(port, value);
}

/// Reads a 32-bit value from I/O port `port` with arguments in registers for the VMM (a
/// page operation: `cpu::inl_with_args`).
#[inline(always)]
pub fn inl_with_args(port: u16, a: u32, b: u32, c: u64, d: u32) -> u32 {
    cpu::inl_with_args(port, a, b, c, d)
}

/// Sets up the entry from user mode (system calls), and starts the fast mode if [`init`]
/// chose it. Call once, before the first program.
pub fn init_user_entry() {
    user::init();
    let view = FAST_MODE_VIEW.load(Ordering::Relaxed);
    if view != 0 {
        let interrupts = disable_interrupts();
        fast::init(view);
        if interrupts {
            enable_interrupts();
        }
    }
}

/// Runs `work` where the kernel's work runs: in the fast mode at CPL 3, in the kernel
/// view behind the shim (natively where ring 0 is emulated), like the events the shim
/// sends up; otherwise, and when already at CPL 3, right here. For work that starts in
/// ring 0 but neither blocks nor switches threads (the first program's load); call it
/// with interrupts off. A root loaded meanwhile (only recorded at CPL 3) is loaded on the
/// way back.
pub fn run_kernel_work<F: FnOnce() -> R, R>(work: F) -> R {
    let view = FAST_MODE_VIEW.load(Ordering::Relaxed);
    if view == 0 || !fast::is_on() || cpl3::active() {
        return work();
    }
    let mut job = Job {
        work: Some(work),
        result: None,
    };
    cpl3::call(run_job::<F, R>, core::ptr::from_mut(&mut job) as u64, view);
    let root = cpu::LOADED_ROOT.load(Ordering::Relaxed);
    if root != cpu::read_cr3() {
        // SAFETY: roots are recorded by `load_page_table`, whose callers promise tables
        // that map the kernel half as the running ones do.
        unsafe { cpu::write_cr3(root) };
    }
    job.result
        .expect("platform: kernel work at CPL 3 did not run")
}

/// A [`run_kernel_work`] in flight: the work, then its result.
struct Job<F, R> {
    work: Option<F>,
    result: Option<R>,
}

/// The CPL-3 side of [`run_kernel_work`]: `job` is the address of its `Job`.
extern "C" fn run_job<F: FnOnce() -> R, R>(job: u64) -> u64 {
    // SAFETY: `run_kernel_work` passes the address of its own `Job<F, R>`, which lives on
    // its stack (the direct map, reachable in the kernel view) until `cpl3::call` returns,
    // and which nothing else touches meanwhile (interrupts are off).
    let job = unsafe { &mut *(job as *mut Job<F, R>) };
    if let Some(work) = job.work.take() {
        job.result = Some(work());
    }
    0
}

/// Makes `top` the stack traps from user mode arrive on (the running thread's kernel
/// stack). Call with interrupts off.
#[inline(always)]
pub fn set_kernel_stack(top: u64) {
    user::set_kernel_stack(top);
}

/// Enters user mode with the registers in `frame`. Never returns.
///
/// # Safety
/// As `arch::x86_64::user::enter_user`: `frame` is a user-mode frame on the running
/// thread's kernel stack (the one [`set_kernel_stack`] gave), and nothing on that stack
/// below it is still needed.
#[inline(always)]
pub unsafe fn enter_user(frame: &TrapFrame) -> ! {
    // SAFETY: the caller's contract.
    unsafe { user::enter_user(frame) }
}
