//! Emulated devices, one file each, reached through the address-range [`bus`].
pub mod bus;
pub mod serial;
pub mod swap_slots;
pub mod sysctl;
pub mod virtio;

/// Something a device asks the VMM to do on the guest's behalf that ends the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestRequest {
    /// Power off; the VMM exits with this status (low byte).
    PowerOff(i32),
    /// The kernel panicked with this message (already sanitised to one printable line).
    Panic(String),
    /// A user program stopped for the debugger (`abi::devices::SYSCTL_DEBUG_STOP`); its
    /// trap frame is at this guest-physical address.
    DebugStop(u64),
}
