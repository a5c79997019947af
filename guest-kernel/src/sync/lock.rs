//! A sleeping mutual-exclusion lock that owns the data it protects. Not recursive: a thread
//! that takes a lock it holds is a kernel bug and panics.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU64, Ordering};

use super::Semaphore;
use crate::thread;

/// A lock around a `T`.
pub struct Lock<T> {
    sema: Semaphore,
    /// Id of the holding thread, 0 when free.
    holder: AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is only reached through a LockGuard, and the semaphore admits one holder
// at a time.
unsafe impl<T: Send> Sync for Lock<T> {}
// SAFETY: moving the lock moves the T it owns.
unsafe impl<T: Send> Send for Lock<T> {}

impl<T> Lock<T> {
    /// A free lock around `value`.
    pub const fn new(value: T) -> Self {
        Lock {
            sema: Semaphore::new(1),
            holder: AtomicU64::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Waits for the lock and takes it. Panics if the calling thread already holds it.
    pub fn lock(&self) -> LockGuard<'_, T> {
        let me = thread::current_tid();
        assert_ne!(
            self.holder.load(Ordering::Relaxed),
            me,
            "lock: taken twice by thread {me}"
        );
        self.sema.down();
        self.holder.store(me, Ordering::Relaxed);
        LockGuard { lock: self }
    }
}

/// Access to a held lock's value; dropping it releases the lock.
pub struct LockGuard<'a, T> {
    lock: &'a Lock<T>,
}

impl<'a, T> LockGuard<'a, T> {
    /// The lock this guard holds (for re-acquiring after a condition wait).
    pub fn lock_ref(&self) -> &'a Lock<T> {
        self.lock
    }
}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this thread holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves this thread holds the lock, and `&mut self` is unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for LockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.holder.store(0, Ordering::Relaxed);
        self.lock.sema.up();
    }
}
