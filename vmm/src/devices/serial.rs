//! The console: a 16550 UART (`vm-superio`) whose output goes to the VMM's stdout unchanged.

use std::io::{self, Write};

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use super::GuestRequest;
use super::bus::BusDevice;

/// Raises the UART's interrupt line through an eventfd registered as a KVM irqfd.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// The UART on the port bus.
pub struct SerialDevice<W: Write + Send> {
    serial: Serial<IrqTrigger, NoEvents, W>,
}

impl<W: Write + Send> SerialDevice<W> {
    /// A UART that writes what the guest sends to `out` and signals `irq`.
    pub fn new(irq: EventFd, out: W) -> Self {
        SerialDevice {
            serial: Serial::new(IrqTrigger(irq), out),
        }
    }
}

impl<W: Write + Send> BusDevice for SerialDevice<W> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // The UART has byte registers; a wider access sees the register in its low byte.
        data.fill(0);
        if let (Ok(offset), Some(first)) = (u8::try_from(offset), data.first_mut()) {
            *first = self.serial.read(offset);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Option<GuestRequest> {
        if let (Ok(offset), Some(&value)) = (u8::try_from(offset), data.first()) {
            // A closed stdout (say, the reader of a pipe went away) must not stop the guest.
            let _ = self.serial.write(offset, value);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_pass_through_unchanged() {
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let mut dev = SerialDevice::new(irq, Vec::new());
        for &b in b"ok\r\n\x00\xff" {
            dev.write(0, &[b]);
        }
        let mut lsr = [0u8; 1];
        dev.read(5, &mut lsr);
        assert_ne!(lsr[0] & 0x20, 0, "transmitter always ready");
        assert_eq!(dev.serial.writer().as_slice(), b"ok\r\n\x00\xff");
    }
}
