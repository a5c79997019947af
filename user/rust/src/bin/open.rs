//! `open`: missing and empty names fail; each open gets a new fd (never 0 or 1) with its own
//! position; a closed fd stops working. Reads sample.txt (--put).
#![no_std]
#![no_main]

use ulib::{check, close, open, read, tell};

ulib::entry!("open", main);

fn main(_args: &[&str]) -> i32 {
    check!(open(c"no-such-file") == -1, "open no-such-file fails");
    check!(open(c"") == -1, "open the empty name fails");
    let a = open(c"sample.txt");
    check!(a > 1, "open sample.txt");
    let b = open(c"sample.txt");
    check!(b > 1 && b != a, "open sample.txt again: another fd");
    let mut buf = [0u8; 8];
    check!(read(a, &mut buf) == 8, "read 8 bytes through the first fd");
    check!(tell(b) == 0, "the second fd is still at 0");
    check!(
        read(b, &mut buf[..5]) == 5 && &buf[..5] == b"Lines",
        "it reads from the start"
    );
    close(a);
    check!(read(a, &mut buf) == -1, "read on the closed fd fails");
    check!(
        read(b, &mut buf[..3]) == 3 && &buf[..3] == b" of",
        "the other fd still works"
    );
    0
}
