//! Device drivers: the serial console, the system-control block, and the virtio disks.
pub mod block;
pub mod serial;
pub mod sysctl;
pub mod virtio;
