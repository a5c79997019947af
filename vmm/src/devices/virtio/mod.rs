//! Virtio devices over the virtio-mmio transport.
//!
//! [`mmio`] owns the transport registers and the queue configuration; each device (a folder
//! once it grows: `block/`) owns its configuration space and serves its queue when the
//! driver notifies it. Requests are served synchronously in the vCPU's exit handler, so a
//! request is complete when the guest's notify write returns.
pub mod block;
pub mod mmio;
