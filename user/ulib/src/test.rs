//! Pintos-style test output: every line a test prints starts with `(NAME) `, where NAME is
//! the test name given to [`entry!`](crate::entry) (or later to [`set_test_name`]).
//! A failure prints `(NAME) text: FAILED` and exits with status 1.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::io::Buf;

static NAME_PTR: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static NAME_LEN: AtomicUsize = AtomicUsize::new(0);

/// Sets the name that prefixes test messages.
pub fn set_test_name(name: &'static str) {
    NAME_LEN.store(0, Ordering::Relaxed);
    NAME_PTR.store(name.as_ptr().cast_mut(), Ordering::Relaxed);
    NAME_LEN.store(name.len(), Ordering::Relaxed);
}

/// The name that prefixes test messages (`"?"` before one is set).
pub fn test_name() -> &'static str {
    let p = NAME_PTR.load(Ordering::Relaxed);
    if p.is_null() {
        return "?";
    }
    let len = NAME_LEN.load(Ordering::Relaxed);
    // SAFETY: `p`/`len` come from a `&'static str` stored by `set_test_name`; the process is
    // single-threaded, so the pair is consistent.
    unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(p, len)) }
}

/// Prints `(NAME) ` + `args` + `suffix` + newline in one `write`.
pub fn msg_with(args: fmt::Arguments<'_>, suffix: &str) {
    let mut buf = Buf::new(1);
    let _ = writeln!(buf, "({}) {}{}", test_name(), args, suffix);
    buf.flush();
}

/// Prints `(NAME) args: FAILED` and exits with status 1.
pub fn fail(args: fmt::Arguments<'_>) -> ! {
    msg_with(args, ": FAILED");
    crate::sys::exit(1)
}

/// Prints `(NAME) text`.
#[macro_export]
macro_rules! msg {
    ($($arg:tt)*) => { $crate::test::msg_with(format_args!($($arg)*), "") };
}

/// Prints `(NAME) text: FAILED` and exits with status 1.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => { $crate::test::fail(format_args!($($arg)*)) };
}

/// Prints `(NAME) text`; if `cond` is false, then prints `(NAME) text: FAILED` and exits 1.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {{
        let ok: bool = $cond;
        $crate::msg!($($arg)*);
        if !ok {
            $crate::fail!($($arg)*);
        }
    }};
}
