//! read, write, seek and tell on one file: writes stop at the end of the file (files never
//! grow), reads return 0 at and past the end, seeking past the end is allowed.
#![no_std]
#![no_main]

use ulib::{check, create, filesize, open, read, seek, tell, write};
use user_programs::pattern;

ulib::entry!("rw-basic", main);

fn main(_args: &[&str]) -> i32 {
    let mut data = [0u8; 120];
    for (i, b) in data.iter_mut().enumerate() {
        *b = pattern(1, i);
    }
    check!(create(c"rw", 100), "create rw, 100 bytes");
    let fd = open(c"rw");
    check!(fd > 1, "open rw");
    check!(write(fd, &data[..60]) == 60, "write 60 bytes");
    check!(tell(fd) == 60, "tell = 60");
    check!(write(fd, &data[60..]) == 40, "write 60 more: only 40 fit");
    check!(tell(fd) == 100, "tell = 100");
    check!(write(fd, &data) == 0, "write at the end writes nothing");
    check!(filesize(fd) == 100, "the file still has 100 bytes");
    seek(fd, 0);
    let mut back = [0u8; 200];
    check!(read(fd, &mut back) == 100, "read from 0 returns 100");
    check!(back[..100] == data[..100], "the bytes match");
    check!(read(fd, &mut back) == 0, "read at the end returns 0");
    seek(fd, 37);
    check!(tell(fd) == 37, "seek 37, tell = 37");
    check!(
        read(fd, &mut back[..3]) == 3 && back[..3] == data[37..40],
        "read at 37"
    );
    seek(fd, 500);
    check!(tell(fd) == 500, "seek past the end, tell = 500");
    check!(read(fd, &mut back) == 0, "read past the end returns 0");
    check!(write(fd, &data) == 0, "write past the end writes nothing");
    check!(filesize(fd) == 100, "the file still has 100 bytes");
    check!(write(fd, &[]) == 0, "write of 0 bytes returns 0");
    0
}
