//! Live KVM objects: the `/dev/kvm` handle, the VM with its memory, and the vCPU.
pub mod kvm;
pub mod memory;
pub mod vcpu;
pub mod vm;
