//! `create`: new files are zero-filled and have the size asked for; existing names, the
//! empty name and names over 14 bytes fail.
#![no_std]
#![no_main]

use ulib::{check, close, create, filesize, open, read, seek};

ulib::entry!("create", main);

fn main(_args: &[&str]) -> i32 {
    check!(create(c"alpha", 0), "create alpha, 0 bytes");
    check!(!create(c"alpha", 10), "create alpha again fails");
    check!(!create(c"", 10), "create with an empty name fails");
    check!(create(c"fourteen-bytes", 5), "create a 14-byte name");
    check!(
        !create(c"fifteen-bytes-x", 5),
        "create a 15-byte name fails"
    );
    check!(create(c"big", 70000), "create big, 70000 bytes");

    let fd = open(c"alpha");
    check!(fd > 1, "open alpha");
    check!(filesize(fd) == 0, "alpha has 0 bytes");
    let mut buf = [0xffu8; 16];
    check!(read(fd, &mut buf) == 0, "reading alpha gives end of file");
    close(fd);

    let fd = open(c"fourteen-bytes");
    check!(filesize(fd) == 5, "fourteen-bytes has 5 bytes");
    check!(read(fd, &mut buf) == 5, "read returns 5");
    check!(buf[..5] == [0; 5], "all zero");
    close(fd);

    let fd = open(c"big");
    check!(filesize(fd) == 70000, "big has 70000 bytes");
    seek(fd, 69990);
    buf = [0xff; 16];
    check!(read(fd, &mut buf) == 10, "read at 69990 returns 10");
    check!(buf[..10] == [0; 10], "all zero");
    0
}
