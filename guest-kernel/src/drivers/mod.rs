//! Device drivers: the serial console and the system-control block.
pub mod serial;
pub mod sysctl;
