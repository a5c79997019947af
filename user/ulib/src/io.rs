//! Console output and small fixed buffers: [`Buf`] collects formatted text and writes it to
//! an fd with as few `write` calls as possible (one, unless it overflows); [`CBuf`] builds a
//! NUL-terminated string for the calls that take `&CStr`.

use core::ffi::CStr;
use core::fmt;

/// Bytes one `print!` can put out with a single `write`.
pub const BUF_SIZE: usize = 1024;

/// Formatted output bound for an fd; flushed when full and by [`Buf::flush`].
pub struct Buf {
    fd: i32,
    len: usize,
    bytes: [u8; BUF_SIZE],
}

impl Buf {
    /// An empty buffer for `fd`.
    pub const fn new(fd: i32) -> Self {
        Buf {
            fd,
            len: 0,
            bytes: [0; BUF_SIZE],
        }
    }

    /// Writes out what is buffered (one `write` call) and empties the buffer.
    pub fn flush(&mut self) {
        if self.len > 0 {
            crate::sys::write(self.fd, &self.bytes[..self.len]);
            self.len = 0;
        }
    }
}

impl fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == BUF_SIZE {
                self.flush();
            }
            self.bytes[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Prints `args` to fd 1 with one `write` (if it fits in [`BUF_SIZE`] bytes).
pub fn print(args: fmt::Arguments<'_>) {
    let mut buf = Buf::new(1);
    let _ = fmt::write(&mut buf, args);
    buf.flush();
}

/// Prints to the console (fd 1), one `write` per call.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::io::print(format_args!($($arg)*)) };
}

/// Prints a line to the console (fd 1), one `write` per call.
#[macro_export]
macro_rules! println {
    () => { $crate::io::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::io::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// A NUL-terminated string of at most `N - 1` bytes built with `write!`; text that does not
/// fit is cut off.
pub struct CBuf<const N: usize> {
    len: usize,
    bytes: [u8; N],
}

impl<const N: usize> CBuf<N> {
    /// An empty string.
    pub const fn new() -> Self {
        CBuf {
            len: 0,
            bytes: [0; N],
        }
    }

    /// The string so far, as the system calls take it.
    pub fn as_cstr(&self) -> &CStr {
        // The buffer is zero-filled past `len` and `len < N`, so a NUL follows the text; an
        // interior NUL written by the caller just ends the string early.
        CStr::from_bytes_until_nul(&self.bytes[..=self.len]).unwrap_or(c"")
    }
}

impl<const N: usize> Default for CBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for CBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len + 1 >= N {
                return Err(fmt::Error);
            }
            self.bytes[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Formats into a fresh [`CBuf`] of `N` bytes: `cformat!(64; "chain {}", n)`.
#[macro_export]
macro_rules! cformat {
    ($n:literal; $($arg:tt)*) => {{
        let mut b = $crate::io::CBuf::<$n>::new();
        let _ = core::fmt::Write::write_fmt(&mut b, format_args!($($arg)*));
        b
    }};
}
