//! `remove`: the name goes at once, an open fd keeps the data until it is closed, and the
//! name can be reused for a new file meanwhile.
#![no_std]
#![no_main]

use ulib::{check, create, filesize, open, read, remove, seek, write};

ulib::entry!("remove", main);

fn main(_args: &[&str]) -> i32 {
    check!(!remove(c"no-such-file"), "remove no-such-file fails");
    check!(!remove(c""), "remove the empty name fails");
    check!(create(c"doomed", 6), "create doomed");
    let fd = open(c"doomed");
    check!(fd > 1, "open doomed");
    check!(write(fd, b"before") == 6, "write 6 bytes");
    check!(remove(c"doomed"), "remove doomed while it is open");
    check!(!remove(c"doomed"), "remove doomed again fails");
    check!(open(c"doomed") == -1, "open doomed fails");
    seek(fd, 0);
    let mut buf = [0u8; 6];
    check!(
        read(fd, &mut buf) == 6 && &buf == b"before",
        "the open fd still reads the data"
    );
    check!(create(c"doomed", 3), "create a new doomed");
    let fd2 = open(c"doomed");
    check!(fd2 > 1 && filesize(fd2) == 3, "the new doomed has 3 bytes");
    check!(filesize(fd) == 6, "the old fd still sees 6 bytes");
    0
}
