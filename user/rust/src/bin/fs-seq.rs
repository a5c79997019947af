//! Sequential access: a 20000-byte file written in 997-byte pieces and read back in
//! 1013-byte pieces.
#![no_std]
#![no_main]

use ulib::{check, create, fail, open, read, seek, write};
use user_programs::pattern;

ulib::entry!("fs-seq", main);

const SIZE: usize = 20000;

fn main(_args: &[&str]) -> i32 {
    check!(create(c"seq", SIZE as u32), "create seq");
    let fd = open(c"seq");
    check!(fd > 1, "open seq");
    let mut buf = [0u8; 1013];
    let mut pos = 0;
    while pos < SIZE {
        let n = (SIZE - pos).min(997);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(3, pos + i);
        }
        if write(fd, &buf[..n]) != n as i32 {
            fail!("write at {pos}");
        }
        pos += n;
    }
    ulib::msg!("wrote {SIZE} bytes");
    seek(fd, 0);
    pos = 0;
    loop {
        let n = read(fd, &mut buf);
        if n <= 0 {
            break;
        }
        for (i, &b) in buf[..n as usize].iter().enumerate() {
            if b != pattern(3, pos + i) {
                fail!("byte {} differs", pos + i);
            }
        }
        pos += n as usize;
    }
    check!(pos == SIZE, "read back {pos} bytes, all match");
    0
}
