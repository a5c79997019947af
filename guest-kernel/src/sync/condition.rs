//! Condition variables (Mesa semantics): a woken waiter re-takes the lock and must
//! re-check its condition.

use super::{IrqGuard, IrqSpinLock, LockGuard};
use crate::thread::{self, ThreadQueue};

/// A condition variable, used with a [`super::Lock`].
pub struct Condition {
    waiters: IrqSpinLock<ThreadQueue>,
}

impl Condition {
    /// A condition with no waiters.
    pub const fn new() -> Self {
        Condition {
            waiters: IrqSpinLock::new("condition", ThreadQueue::new()),
        }
    }

    /// Releases the lock held by `guard`, waits for a signal, re-takes the lock.
    pub fn wait<'a, T>(&self, guard: LockGuard<'a, T>) -> LockGuard<'a, T> {
        let lock = guard.lock_ref();
        {
            // Interrupts stay off from the release to the block, so a signal sent after the
            // release (by a thread that ran because of it) cannot be missed.
            let _irq = IrqGuard::new();
            drop(guard);
            thread::block(|me| self.waiters.lock().push_back(me));
        }
        lock.lock()
    }

    /// Wakes the longest waiter, if any.
    pub fn signal(&self) {
        let woken = self.waiters.lock().pop_front();
        if let Some(thread) = woken {
            thread::unblock(thread);
        }
    }

    /// Wakes every waiter.
    pub fn broadcast(&self) {
        let mut woken = core::mem::take(&mut *self.waiters.lock());
        while let Some(thread) = woken.pop_front() {
            thread::unblock(thread);
        }
    }
}
