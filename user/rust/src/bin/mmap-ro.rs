//! A store into a read-only mapping kills the process with -1. Maps sample.txt (--put).
#![no_std]
#![no_main]

use ulib::{check, mmap, open};

ulib::entry!("mmap-ro", main);

fn main(_args: &[&str]) -> i32 {
    let fd = open(c"sample.txt");
    check!(fd > 1, "open sample.txt");
    let p = mmap(0x1000_0000, 4096, false, fd, 0);
    check!(!p.is_null(), "mmap read-only");
    // SAFETY: deliberately faults: the page is mapped without write permission.
    unsafe { p.write_volatile(b'X') };
    ulib::fail!("store into a read-only mapping did not kill the process")
}
