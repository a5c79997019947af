//! 16550 UART driver: input for the console's interrupt handler. Console text goes out
//! through the console page instead (`drivers::sysctl::ConsolePage`, and
//! `drivers::sysctl::emergency_console` for the fault dump): the UART would take a VM exit
//! per byte where ring 0 is emulated.

use crate::platform::{inb, outb};

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
/// FCR: enable FIFOs, clear the receive and transmit FIFOs.
const FCR_ENABLE_CLEAR: u8 = 0b0000_0111;
/// LCR: 8 data bits, no parity, one stop bit.
const LCR_8N1: u8 = 0b0000_0011;
/// MCR: DTR, RTS, and OUT2 (which gates the interrupt line on a PC).
const MCR_DTR_RTS_OUT2: u8 = 0b0000_1011;

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
}
