//! 16550 UART driver: polled output, and input for the console's interrupt handler.
//!
//! Console text normally goes through the console page (`drivers::sysctl::ConsolePage`);
//! the UART's output serves the fault dump, which cannot trust the console's lock. Output
//! is sent in bursts: one line-status read tells whether the transmit FIFO is empty, and if
//! so up to a FIFO's worth of bytes (the 16550A's transmit FIFO holds 16) follows in one
//! `rep outsb`. KVM may still take one VM exit per byte of it: PVM does.

use crate::platform::{inb, outb, outsb};

/// Transmit holding register (write).
const THR: u16 = 0;
/// Interrupt enable register.
const IER: u16 = 1;
/// FIFO control register (write).
const FCR: u16 = 2;
/// Line control register.
const LCR: u16 = 3;
/// Modem control register.
const MCR: u16 = 4;
/// Line status register.
const LSR: u16 = 5;

/// Receive buffer register (read).
const RBR: u16 = 0;
/// LSR bit: a received byte is waiting in RBR.
const LSR_DATA_READY: u8 = 1 << 0;
/// IER bit: interrupt when a byte is received.
const IER_RECEIVED_DATA: u8 = 1 << 0;
/// LSR bit: the transmit holding register and FIFO are empty.
const LSR_THR_EMPTY: u8 = 1 << 5;
/// FCR: enable FIFOs, clear the receive and transmit FIFOs.
const FCR_ENABLE_CLEAR: u8 = 0b0000_0111;
/// LCR: 8 data bits, no parity, one stop bit.
const LCR_8N1: u8 = 0b0000_0011;
/// MCR: DTR, RTS, and OUT2 (which gates the interrupt line on a PC).
const MCR_DTR_RTS_OUT2: u8 = 0b0000_1011;
/// Transmit FIFO depth of a 16550A.
const TX_FIFO_BYTES: usize = 16;

/// A 16550 at a fixed I/O base.
#[derive(Debug)]
pub struct Serial {
    base: u16,
}

impl Serial {
    /// A handle for the UART at `base`; call [`Serial::init`] once before sending.
    pub const fn new(base: u16) -> Self {
        Serial { base }
    }

    /// Puts the UART in 8N1 mode with FIFOs on and interrupts off.
    pub fn init(&self) {
        outb(self.base + IER, 0);
        outb(self.base + LCR, LCR_8N1);
        outb(self.base + FCR, FCR_ENABLE_CLEAR);
        outb(self.base + MCR, MCR_DTR_RTS_OUT2);
    }

    /// Asks for an interrupt whenever a byte arrives.
    pub fn enable_receive_interrupt(&self) {
        outb(self.base + IER, IER_RECEIVED_DATA);
    }

    /// The next received byte, if one is waiting.
    pub fn receive(&self) -> Option<u8> {
        (inb(self.base + LSR) & LSR_DATA_READY != 0).then(|| inb(self.base + RBR))
    }

    /// Sends `bytes`, waiting for FIFO space as needed.
    pub fn write_bytes(&self, bytes: &[u8]) {
        for chunk in bytes.chunks(TX_FIFO_BYTES) {
            while inb(self.base + LSR) & LSR_THR_EMPTY == 0 {
                core::hint::spin_loop();
            }
            outsb(self.base + THR, chunk);
        }
    }
}

impl core::fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}
