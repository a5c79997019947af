//! The kernel console: `print!`/`println!` and user writes to fd 1, and input from the
//! serial port.
//!
//! Output goes through one lock (interrupts off) so that each call's text stays in one
//! piece. It is gathered in the console page and sent with one VM exit per call (see
//! `abi::devices::SYSCTL_CONSOLE`); the UART would take one exit per byte where ring 0 is
//! emulated. The fault dump uses [`emergency_print`], which skips the lock, because the
//! fault may have struck while the lock was held; it too leaves in one exit.

use abi::devices::SERIAL_PORT;

use alloc::collections::VecDeque;

use crate::drivers::serial::Serial;
use crate::drivers::sysctl::ConsolePage;
use crate::sync::{IrqSpinLock, Semaphore};
use crate::util::fixed_buf::FixedBuf;

/// The UART (for input) and the console page (for output).
struct Console {
    uart: Serial,
    out: ConsolePage,
}

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.out.write(s.as_bytes());
        Ok(())
    }
}

/// Interrupts stay off while a call's text goes out, so no other thread's text lands in it.
static CONSOLE: IrqSpinLock<Console> = IrqSpinLock::new(
    "console",
    Console {
        uart: Serial::new(SERIAL_PORT),
        out: ConsolePage::new(),
    },
);

/// Bytes received and not yet read, counted by [`INPUT_READY`].
static INPUT: IrqSpinLock<VecDeque<u8>> = IrqSpinLock::new("console input", VecDeque::new());
/// One unit per byte in [`INPUT`].
static INPUT_READY: Semaphore = Semaphore::new(0);
/// Received bytes kept at most; more are dropped until a reader catches up.
const INPUT_MAX: usize = 64 * 1024;

/// Initialises the UART. Call once at boot, before printing.
pub fn init() {
    CONSOLE.lock().uart.init();
}

/// Turns on console input (needs the interrupt controller and threads running).
pub fn enable_input() {
    CONSOLE.lock().uart.enable_receive_interrupt();
}

/// Interrupt handler for the UART: moves every received byte to the input buffer.
pub fn on_interrupt() {
    let console = CONSOLE.lock();
    while let Some(byte) = console.uart.receive() {
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
    let mut console = CONSOLE.lock();
    let _ = core::fmt::write(&mut *console, args);
    console.out.flush();
}

/// Writes several byte slices as one unit (a user `write`: never interleaved with others).
pub fn write_all<'a>(parts: impl Iterator<Item = &'a [u8]>) {
    let mut console = CONSOLE.lock();
    for part in parts {
        console.out.write(part);
    }
    console.out.flush();
}

/// Sends one line to the VMM's standard error instead of the console
/// (`abi::devices::SYSCTL_DIAGNOSTIC`): why something the console reports tersely, by the
/// ABI, happened.
pub fn diagnostic(args: core::fmt::Arguments<'_>) {
    let mut text: FixedBuf<{ abi::devices::DIAGNOSTIC_MAX }> = FixedBuf::new();
    let _ = core::fmt::write(&mut text, args);
    CONSOLE.lock().out.diagnostic(text.as_bytes());
}

/// Stops for the debugger at a user program's trap (`frame_gpa`: its trap frame) and
/// returns when the debugger resumes it (`abi::devices::SYSCTL_DEBUG_STOP`).
pub fn debug_stop(frame_gpa: u64) {
    CONSOLE.lock().out.debug_stop(frame_gpa);
}

/// Prints without the console's lock, in one exit, on the way to a panic (the kernel's
/// fault dump): up to 1 KiB of text.
pub fn emergency_print(args: core::fmt::Arguments<'_>) {
    // Small: this may run on a stack that is nearly full.
    let mut text: FixedBuf<1024> = FixedBuf::new();
    let _ = core::fmt::write(&mut text, args);
    crate::drivers::sysctl::emergency_console(text.as_bytes());
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
