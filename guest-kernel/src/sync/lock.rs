//! A sleeping mutual-exclusion lock that owns the data it protects. Not recursive: a thread
//! that takes a lock it holds is a kernel bug and panics.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU64, Ordering};

use super::Semaphore;
use crate::thread;

/// A lock around a `T`. Taking a free lock and releasing one nobody waits for is one
/// atomic add each; only contention goes to the semaphore (whose interrupt guard and spin
/// lock, taken twice per lock and release, cost a one-byte `read()` from the block cache
/// a fifth of its time where ring 0 is emulated).
pub struct Lock<T> {
    /// Threads holding the lock or waiting for it: 0 when free.
    users: AtomicU64,
    /// Where waiters sleep; a release with waiters hands the lock to one of them.
    sema: Semaphore,
    /// Id of the holding thread, 0 when free.
    holder: AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is only reached through a LockGuard, and one thread at a time holds
// one: the first to raise `users` from 0, or the one a release hands it to.
unsafe impl<T: Send> Sync for Lock<T> {}
// SAFETY: moving the lock moves the T it owns.
unsafe impl<T: Send> Send for Lock<T> {}

impl<T> Lock<T> {
    /// A free lock around `value`.
    pub const fn new(value: T) -> Self {
        Lock {
            users: AtomicU64::new(0),
            sema: Semaphore::new(0),
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
        if self.users.fetch_add(1, Ordering::Acquire) != 0 {
            // Held: wait for the holder's release to hand it over (an `up` that comes
            // before this `down` is kept by the semaphore).
            self.sema.down();
        }
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
        if self.lock.users.fetch_sub(1, Ordering::Release) != 1 {
            // Someone waits (or is about to): the lock passes to them.
            self.lock.sema.up();
        }
    }
}
