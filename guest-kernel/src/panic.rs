//! The panic handler: the message and location go to the VMM through the panic page.
//!
//! A panic inside the handler (say, while formatting) must not recurse forever, so the
//! second entry sends a fixed message instead.

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use abi::devices::PANIC_MESSAGE_MAX;

use crate::drivers::sysctl;
use crate::platform;
use crate::util::fixed_buf::FixedBuf;

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    platform::disable_interrupts();
    if PANICKING.swap(true, Ordering::Relaxed) {
        sysctl::report_panic(b"panic while panicking");
    }
    let mut text: FixedBuf<PANIC_MESSAGE_MAX> = FixedBuf::new();
    let _ = write!(text, "{}", info.message());
    if let Some(location) = info.location() {
        let _ = write!(
            text,
            " (at {}:{}:{})",
            location.file(),
            location.line(),
            location.column()
        );
    }
    sysctl::report_panic(text.as_bytes())
}
