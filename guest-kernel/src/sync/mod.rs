//! Synchronisation.
//!
//! The machine has one CPU, so mutual exclusion inside the kernel comes from two tools:
//! - [`IrqGuard`] / [`IrqSpinLock`]: interrupts off for a short section. The spin lock
//!   also catches re-entry (a deadlock on one CPU) and reports it as a kernel bug.
//! - [`Lock`], [`Semaphore`], [`Condition`]: sleeping primitives for long sections; a
//!   waiting thread blocks and the CPU runs something else.

mod condition;
mod irq;
mod lock;
mod semaphore;

pub use condition::Condition;
pub use irq::{IrqGuard, IrqSpinLock};
pub use lock::{Lock, LockGuard};
pub use semaphore::Semaphore;
