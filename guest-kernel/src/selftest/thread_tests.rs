//! Self-tests of interrupts, the timer, threads and the sleeping locks.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Test, TestResult};
use crate::arch::x86_64::context::{self, FpuState};
use crate::arch::x86_64::{cpu, lapic};
use crate::mm::frame::{self, Pool};
use crate::sync::{Condition, IrqGuard, Lock, Semaphore};
use crate::{boot, check, check_eq, thread};

pub const TESTS: &[Test] = &[
    Test {
        name: "irq_guards_nest",
        run: irq_guards_nest,
    },
    Test {
        name: "timer_ticks_while_sleeping",
        run: timer_ticks_while_sleeping,
    },
    Test {
        name: "sleepers_wake_in_order",
        run: sleepers_wake_in_order,
    },
    Test {
        name: "lock_serialises_counter",
        run: lock_serialises_counter,
    },
    Test {
        name: "semaphore_ping_pong",
        run: semaphore_ping_pong,
    },
    Test {
        name: "condition_signal_and_broadcast",
        run: condition_signal_and_broadcast,
    },
    Test {
        name: "busy_thread_is_preempted",
        run: busy_thread_is_preempted,
    },
    Test {
        name: "fpu_state_is_per_thread",
        run: fpu_state_is_per_thread,
    },
    Test {
        name: "exited_threads_are_reaped",
        run: exited_threads_are_reaped,
    },
];

fn interrupts_enabled() -> bool {
    crate::platform::interrupts_enabled()
}

/// Only the outermost guard turns interrupts back on.
fn irq_guards_nest() -> TestResult {
    check!(
        interrupts_enabled(),
        "tests should start with interrupts on"
    );
    let outer = IrqGuard::new();
    let inner = IrqGuard::new();
    check!(!interrupts_enabled(), "guard did not disable interrupts");
    drop(inner);
    check!(!interrupts_enabled(), "inner guard re-enabled interrupts");
    drop(outer);
    check!(
        interrupts_enabled(),
        "outer guard did not restore interrupts"
    );
    Ok(())
}

/// Sleeping 10 ticks takes 10 or 11 ticks, and 10 ticks are about 100 ms of TSC time.
fn timer_ticks_while_sleeping() -> TestResult {
    thread::sleep(1); // start on a tick boundary
    let (t0, tsc0) = (thread::ticks(), cpu::rdtsc());
    thread::sleep(10);
    let (t1, tsc1) = (thread::ticks(), cpu::rdtsc());
    check!(
        (10..=11).contains(&(t1 - t0)),
        "slept {} ticks for 10",
        t1 - t0
    );
    let ms = (tsc1 - tsc0) / boot::info().tsc_khz;
    let expected = (t1 - t0) * 1000 / lapic::TIMER_HZ;
    check!(
        ms * 10 >= expected * 8 && ms * 10 <= expected * 12,
        "{} ticks took {ms} ms",
        t1 - t0
    );
    Ok(())
}

/// Threads sleeping 6, 2 and 4 ticks wake in the order 2, 4, 6.
fn sleepers_wake_in_order() -> TestResult {
    let order = Arc::new(Lock::new(Vec::new()));
    let o = order.clone();
    run_threads(3, move |i| {
        let ticks = [6, 2, 4][i];
        thread::sleep(ticks);
        o.lock().push(ticks);
    });
    check_eq!(*order.lock(), [2, 4, 6]);
    Ok(())
}

/// Runs `n` copies of `f` on new threads and waits for all of them.
fn run_threads(n: usize, f: impl Fn(usize) + Send + Sync + 'static) {
    let done = Arc::new(Semaphore::new(0));
    let f = Arc::new(f);
    for i in 0..n {
        let (done, f) = (done.clone(), f.clone());
        thread::spawn(move || {
            f(i);
            done.up();
        })
        .expect("spawn");
    }
    for _ in 0..n {
        done.down();
    }
}

/// Four threads each add 1 to a shared counter 500 times under a `Lock`, yielding inside
/// the critical section to invite interleaving: the total is exact.
fn lock_serialises_counter() -> TestResult {
    const THREADS: usize = 4;
    const ROUNDS: u64 = 500;
    let counter = Arc::new(Lock::new(0u64));
    let c = counter.clone();
    run_threads(THREADS, move |_| {
        for i in 0..ROUNDS {
            let mut value = c.lock();
            let seen = *value;
            if i % 50 == 0 {
                thread::yield_now();
            }
            *value = seen + 1;
        }
    });
    check_eq!(*counter.lock(), THREADS as u64 * ROUNDS);
    Ok(())
}

/// Two threads hand control back and forth with two semaphores; the log alternates.
fn semaphore_ping_pong() -> TestResult {
    const ROUNDS: usize = 50;
    let ping = Arc::new(Semaphore::new(0));
    let pong = Arc::new(Semaphore::new(0));
    let log = Arc::new(Lock::new(Vec::new()));
    let (ping2, pong2, log2) = (ping.clone(), pong.clone(), log.clone());
    let done = Arc::new(Semaphore::new(0));
    let done2 = done.clone();
    thread::spawn(move || {
        for _ in 0..ROUNDS {
            ping2.down();
            log2.lock().push(b'o');
            pong2.up();
        }
        done2.up();
    })
    .expect("spawn");
    for _ in 0..ROUNDS {
        log.lock().push(b'i');
        ping.up();
        pong.down();
    }
    done.down();
    let log = log.lock();
    check_eq!(log.len(), 2 * ROUNDS);
    check!(
        log.chunks(2).all(|pair| pair == b"io"),
        "log does not alternate: {:?}",
        core::str::from_utf8(&log)
    );
    check_eq!((ping.value(), pong.value()), (0, 0));
    Ok(())
}

/// Five threads wait on a condition: a signal wakes exactly one, then a broadcast wakes the
/// other four.
fn condition_signal_and_broadcast() -> TestResult {
    const WAITERS: u64 = 5;
    struct State {
        go: bool,
        waiting: u64,
        woken: u64,
    }
    let state = Arc::new(Lock::new(State {
        go: false,
        waiting: 0,
        woken: 0,
    }));
    let cond = Arc::new(Condition::new());
    let done = Arc::new(Semaphore::new(0));
    for _ in 0..WAITERS {
        let (state, cond, done) = (state.clone(), cond.clone(), done.clone());
        thread::spawn(move || {
            let mut s = state.lock();
            s.waiting += 1;
            while !s.go {
                s = cond.wait(s);
            }
            s.woken += 1;
            drop(s);
            done.up();
        })
        .expect("spawn");
    }
    // Let every waiter reach its wait.
    while state.lock().waiting < WAITERS {
        thread::sleep(1);
    }
    check_eq!(state.lock().woken, 0);
    state.lock().go = true;
    cond.signal();
    done.down();
    thread::sleep(2);
    check_eq!(state.lock().woken, 1);
    cond.broadcast();
    for _ in 1..WAITERS {
        done.down();
    }
    check_eq!(state.lock().woken, WAITERS);
    Ok(())
}

/// A thread that spins without yielding does not keep the CPU: the timer preempts it, so
/// this thread wakes from its sleep and stops it.
fn busy_thread_is_preempted() -> TestResult {
    let stop = Arc::new(AtomicBool::new(false));
    let spins = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Semaphore::new(0));
    let (stop2, spins2, done2) = (stop.clone(), spins.clone(), done.clone());
    let switches = thread::context_switches();
    thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            spins2.fetch_add(1, Ordering::Relaxed);
        }
        done2.up();
    })
    .expect("spawn");
    thread::sleep(3);
    stop.store(true, Ordering::Relaxed);
    done.down();
    check!(
        spins.load(Ordering::Relaxed) > 0,
        "the busy thread never ran"
    );
    check!(
        thread::context_switches() - switches >= 3,
        "too few switches"
    );
    Ok(())
}

/// The CPU's x87/SSE state now.
fn fpu_now() -> FpuState {
    let mut state = MaybeUninit::uninit();
    context::save_fpu(&mut state);
    // SAFETY: fxsave64 wrote all 512 bytes.
    unsafe { state.assume_init() }
}

/// XMM0 as the CPU holds it now.
fn xmm0() -> u128 {
    fpu_now().xmm0()
}

/// Sets XMM0 (through `fxrstor64`: SSE instructions cannot run in ring 0 on every KVM).
fn set_xmm0(value: u128) {
    let mut state = fpu_now();
    state.set_xmm0(value);
    context::load_fpu(&state);
}

/// Each thread keeps its own SSE registers across switches, and a new thread starts clean.
fn fpu_state_is_per_thread() -> TestResult {
    const MINE: u128 = 0xaaaa_aaaa_0000_0000_1111_1111_2222_2222;
    const THEIRS: u128 = 0xbbbb_bbbb;
    let seen = Arc::new(Lock::new(None));
    let done = Arc::new(Semaphore::new(0));
    let (seen2, done2) = (seen.clone(), done.clone());
    set_xmm0(MINE);
    thread::spawn(move || {
        *seen2.lock() = Some(xmm0());
        set_xmm0(THEIRS);
        thread::yield_now();
        check_theirs(xmm0());
        done2.up();
    })
    .expect("spawn");
    done.down();
    check_eq!(*seen.lock(), Some(0));
    check_eq!(xmm0(), MINE);
    check_eq!(THEIRS_KEPT.load(Ordering::Relaxed), true);
    Ok(())
}

static THEIRS_KEPT: AtomicBool = AtomicBool::new(false);

fn check_theirs(value: u128) {
    THEIRS_KEPT.store(value == 0xbbbb_bbbb, Ordering::Relaxed);
}

/// Threads that exit give their stacks back: after a first batch warms the heap up, a
/// second batch of the same size takes no more kernel frames.
fn exited_threads_are_reaped() -> TestResult {
    run_threads(20, |_| {});
    let free = frame::stats(Pool::Kernel).free;
    for _ in 0..3 {
        run_threads(20, |_| {});
    }
    check_eq!(frame::stats(Pool::Kernel).free, free);
    Ok(())
}
