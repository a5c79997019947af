//! Counting semaphore with a FIFO queue of blocked threads.

use super::{IrqGuard, IrqSpinLock};
use crate::thread::{self, ThreadQueue};

struct Inner {
    value: u64,
    waiters: ThreadQueue,
}

/// A semaphore: `down` waits for the value to be positive and decrements it; `up`
/// increments it and wakes the longest waiter.
pub struct Semaphore {
    inner: IrqSpinLock<Inner>,
}

impl Semaphore {
    /// A semaphore with initial `value`.
    pub const fn new(value: u64) -> Self {
        Semaphore {
            inner: IrqSpinLock::new(
                "semaphore",
                Inner {
                    value,
                    waiters: ThreadQueue::new(),
                },
            ),
        }
    }

    /// Waits until the value is positive, then decrements it. May sleep: not for interrupt
    /// handlers.
    pub fn down(&self) {
        // Interrupts stay off from the check to the block, so no `up` can slip in between.
        let _irq = IrqGuard::new();
        loop {
            {
                let mut inner = self.inner.lock();
                if inner.value > 0 {
                    inner.value -= 1;
                    return;
                }
            }
            thread::block(|me| self.inner.lock().waiters.push_back(me));
        }
    }

    /// Increments the value and makes the longest waiter ready. Safe in interrupt handlers.
    pub fn up(&self) {
        let woken = {
            let mut inner = self.inner.lock();
            inner.value += 1;
            inner.waiters.pop_front()
        };
        if let Some(thread) = woken {
            thread::unblock(thread);
        }
    }

    /// The current value.
    pub fn value(&self) -> u64 {
        self.inner.lock().value
    }
}
