//! The console: a 16550 UART (`vm-superio`). What the guest sends goes to the VMM's stdout
//! unchanged; what arrives on the VMM's stdin goes into the UART's receive FIFO (raising its
//! interrupt when the guest enabled it), fed by [`SerialInput`] from another thread.
//!
//! The UART shares its output, a [`ConsoleOut`], with the system-control block's console
//! register (the kernel's usual path for output), so both reach stdout in the guest's order.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use super::GuestRequest;
use super::bus::{ArgRegs, BusDevice};

/// Raises the UART's interrupt line through an eventfd registered as a KVM irqfd.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

type Uart<W> = Serial<IrqTrigger, NoEvents, W>;

/// The console's output, shared by every device that writes console text. Devices write
/// from the vCPU thread only, so bytes keep the order in which the guest sent them.
#[derive(Clone)]
pub struct ConsoleOut(Arc<Mutex<Box<dyn Write + Send>>>);

impl ConsoleOut {
    /// Console output that goes to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        ConsoleOut(Arc::new(Mutex::new(out)))
    }

    fn out(&self) -> std::sync::MutexGuard<'_, Box<dyn Write + Send>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Write for ConsoleOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out().flush()
    }
}

/// The UART on the port bus.
pub struct SerialDevice<W: Write + Send> {
    serial: Arc<Mutex<Uart<W>>>,
}

/// A handle that feeds bytes to the UART's receive side.
pub struct SerialInput<W: Write + Send> {
    serial: Arc<Mutex<Uart<W>>>,
}

impl<W: Write + Send> SerialDevice<W> {
    /// A UART that writes what the guest sends to `out` and signals `irq`.
    pub fn new(irq: EventFd, out: W) -> Self {
        SerialDevice {
            serial: Arc::new(Mutex::new(Serial::new(IrqTrigger(irq), out))),
        }
    }

    /// A handle for feeding input from another thread.
    pub fn input(&self) -> SerialInput<W> {
        SerialInput {
            serial: Arc::clone(&self.serial),
        }
    }

    fn uart(&self) -> std::sync::MutexGuard<'_, Uart<W>> {
        self.serial.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Delay before retrying when the receive FIFO is full (the guest has not read it yet).
const FIFO_FULL_RETRY: Duration = Duration::from_millis(1);

impl<W: Write + Send> SerialInput<W> {
    /// Feeds all of `bytes`, waiting while the guest drains the FIFO.
    pub fn feed(&self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let taken = self
                .serial
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .enqueue_raw_bytes(bytes)
                .unwrap_or(0);
            bytes = &bytes[taken..];
            if !bytes.is_empty() {
                std::thread::sleep(FIFO_FULL_RETRY);
            }
        }
    }

    /// Copies `input` into the UART until it ends (the thread body of the stdin pump).
    pub fn pump(&self, mut input: impl Read) {
        let mut buf = [0u8; 256];
        loop {
            match input.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.feed(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

impl<W: Write + Send> BusDevice for SerialDevice<W> {
    fn read(&mut self, offset: u64, data: &mut [u8], _args: ArgRegs) {
        // The UART has byte registers; a wider access sees the register in its low byte.
        data.fill(0);
        if let (Ok(offset), Some(first)) = (u8::try_from(offset), data.first_mut()) {
            *first = self.uart().read(offset);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Option<GuestRequest> {
        if let (Ok(offset), Some(&value)) = (u8::try_from(offset), data.first()) {
            // A closed stdout (say, the reader of a pipe went away) must not stop the guest.
            let _ = self.uart().write(offset, value);
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
        dev.read(5, &mut lsr, ArgRegs::default());
        assert_ne!(lsr[0] & 0x20, 0, "transmitter always ready");
        assert_eq!(dev.uart().writer().as_slice(), b"ok\r\n\x00\xff");
    }

    #[test]
    fn input_reaches_the_receive_register() {
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let mut dev = SerialDevice::new(irq, Vec::new());
        dev.write(1, &[1]); // IER: received-data interrupt on
        dev.input().pump(&b"hi"[..]);
        let mut byte = [0u8; 1];
        let mut got = Vec::new();
        for _ in 0..2 {
            dev.read(5, &mut byte, ArgRegs::default());
            assert_ne!(byte[0] & 1, 0, "data ready");
            dev.read(0, &mut byte, ArgRegs::default());
            got.push(byte[0]);
        }
        dev.read(5, &mut byte, ArgRegs::default());
        assert_eq!(byte[0] & 1, 0, "drained");
        assert_eq!(got, b"hi");
    }
}
