//! The kernel console: `print!`/`println!` to the serial port.
//!
//! Output goes through one lock (interrupts off) so that each call's text stays in one piece. The fault dump
//! uses [`emergency_writer`], which skips the lock, because the fault may have struck while
//! the lock was held.

use abi::devices::SERIAL_PORT;

use alloc::collections::VecDeque;

use crate::drivers::serial::Serial;
use crate::sync::{IrqSpinLock, Semaphore};

/// Interrupts stay off while a call's text goes out, so no other thread's text lands in it.
static CONSOLE: IrqSpinLock<Serial> = IrqSpinLock::new("console", Serial::new(SERIAL_PORT));

/// Bytes received and not yet read, counted by [`INPUT_READY`].
static INPUT: IrqSpinLock<VecDeque<u8>> = IrqSpinLock::new("console input", VecDeque::new());
/// One unit per byte in [`INPUT`].
static INPUT_READY: Semaphore = Semaphore::new(0);
/// Received bytes kept at most; more are dropped until a reader catches up.
const INPUT_MAX: usize = 64 * 1024;

/// Initialises the UART. Call once at boot, before printing.
pub fn init() {
    CONSOLE.lock().init();
}

/// Turns on console input (needs the interrupt controller and threads running).
pub fn enable_input() {
    CONSOLE.lock().enable_receive_interrupt();
}

/// Interrupt handler for the UART: moves every received byte to the input buffer.
pub fn on_interrupt() {
    let serial = CONSOLE.lock();
    while let Some(byte) = serial.receive() {
        let mut input = INPUT.lock();
        if input.len() < INPUT_MAX {
            input.push_back(byte);
            drop(input);
            INPUT_READY.up();
        }
    }
}

/// The next byte of console input, waiting for one to arrive.
pub fn read_byte() -> u8 {
    INPUT_READY.down();
    INPUT
        .lock()
        .pop_front()
        .expect("console: input counted but missing")
}

/// Writes formatted text to the console as one unit.
pub fn print_fmt(args: core::fmt::Arguments<'_>) {
    let mut serial = CONSOLE.lock();
    let _ = core::fmt::write(&mut *serial, args);
}

/// Writes several byte slices as one unit (a user `write`: never interleaved with others).
pub fn write_all<'a>(parts: impl Iterator<Item = &'a [u8]>) {
    let serial = CONSOLE.lock();
    for part in parts {
        serial.write_bytes(part);
    }
}

/// A writer for use when the lock cannot be trusted (fault and panic paths).
pub fn emergency_writer() -> Serial {
    Serial::new(SERIAL_PORT)
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!($($arg)*)) };
}

/// Prints to the console, with a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
