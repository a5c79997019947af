//! Interrupt-disable guards that nest, and a spin lock that holds interrupts off.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::platform;

/// Interrupts are off while this lives; dropping it restores the state it found, so guards
/// nest: only the outermost one turns interrupts back on.
#[must_use = "interrupts are re-enabled when the guard is dropped"]
pub struct IrqGuard {
    was_enabled: bool,
}

impl IrqGuard {
    /// Turns interrupts off, remembering whether they were on.
    #[inline(always)]
    pub fn new() -> Self {
        IrqGuard {
            was_enabled: platform::disable_interrupts(),
        }
    }
}

impl Drop for IrqGuard {
    #[inline(always)]
    fn drop(&mut self) {
        if self.was_enabled {
            platform::enable_interrupts();
        }
    }
}

/// A lock for short critical sections that may also be entered from interrupt handlers.
/// Holding it keeps interrupts off. Re-entering it on the one CPU would spin forever, so
/// that is reported as a kernel panic naming the lock.
pub struct IrqSpinLock<T> {
    name: &'static str,
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialised by `locked` (and interrupts being off), so the
// lock may be shared between threads and interrupt handlers as long as T may be sent.
unsafe impl<T: Send> Sync for IrqSpinLock<T> {}
// SAFETY: moving the lock moves the T it owns.
unsafe impl<T: Send> Send for IrqSpinLock<T> {}

impl<T> IrqSpinLock<T> {
    /// A new, unlocked lock. `name` appears in deadlock reports.
    pub const fn new(name: &'static str, value: T) -> Self {
        IrqSpinLock {
            name,
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Turns interrupts off and takes the lock. Panics if this CPU already holds it.
    ///
    /// Always inlined: it is on the fault path (the frame pools), where a call of its own
    /// costs a few emulated instructions on hosts that emulate ring 0 (left to the
    /// compiler, it stopped being inlined there once the pools had more callers, and
    /// classic mode's faults got 4-5% slower on PVM).
    #[inline(always)]
    pub fn lock(&self) -> IrqSpinLockGuard<'_, T> {
        let irq = IrqGuard::new();
        if self.locked.swap(true, Ordering::Acquire) {
            taken_twice(self.name);
        }
        IrqSpinLockGuard {
            lock: self,
            _irq: irq,
        }
    }
}

/// The panic of a lock taken twice, out of line.
#[cold]
#[inline(never)]
fn taken_twice(name: &str) -> ! {
    panic!("{name}: lock taken twice (deadlock)")
}

/// Access to the value of a held [`IrqSpinLock`].
pub struct IrqSpinLockGuard<'a, T> {
    lock: &'a IrqSpinLock<T>,
    // Dropped after `Drop::drop` has released the lock, so interrupts come back on last.
    _irq: IrqGuard,
}

impl<T> Deref for IrqSpinLockGuard<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held, so no other reference exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for IrqSpinLockGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for IrqSpinLockGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        // Release first; `_irq` is dropped after this body, restoring interrupts last.
        self.lock.locked.store(false, Ordering::Release);
    }
}
