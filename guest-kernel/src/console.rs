//! The kernel console: `print!`/`println!` to the serial port.
//!
//! Output goes through one lock (interrupts off) so that each call's text stays in one piece. The fault dump
//! uses [`emergency_writer`], which skips the lock, because the fault may have struck while
//! the lock was held.

use abi::devices::SERIAL_PORT;

use crate::drivers::serial::Serial;
use crate::sync::IrqSpinLock;

/// Interrupts stay off while a call's text goes out, so no other thread's text lands in it.
static CONSOLE: IrqSpinLock<Serial> = IrqSpinLock::new("console", Serial::new(SERIAL_PORT));

/// Initialises the UART. Call once at boot, before printing.
pub fn init() {
    CONSOLE.lock().init();
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
