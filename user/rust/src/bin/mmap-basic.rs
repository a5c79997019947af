//! mmap: a read-only mapping of sample.txt (--put) shows the file, zeros past its end, and
//! survives close; every documented error returns null; a writable mapping's stores reach
//! the file at munmap.
#![no_std]
#![no_main]

use ulib::{check, close, create, mmap, munmap, open, read, seek};

ulib::entry!("mmap-basic", main);

const MAP: usize = 0x1000_0000;
const KERN_BASE: usize = 0x80_0400_0000;
const USER_STACK: usize = 0x4748_0000;

fn main(_args: &[&str]) -> i32 {
    let fd = open(c"sample.txt");
    check!(fd > 1, "open sample.txt");
    let size = ulib::filesize(fd) as usize;
    let mut file = [0u8; 256];
    check!(read(fd, &mut file) == size as i32, "read sample.txt");

    check!(mmap(0, size, false, fd, 0).is_null(), "mmap at 0 fails");
    check!(
        mmap(MAP + 1, size, false, fd, 0).is_null(),
        "mmap at an unaligned address fails"
    );
    check!(
        mmap(MAP, 0, false, fd, 0).is_null(),
        "mmap of 0 bytes fails"
    );
    check!(
        mmap(MAP, size, false, fd, 1).is_null(),
        "mmap at an unaligned offset fails"
    );
    check!(mmap(MAP, size, false, 0, 0).is_null(), "mmap of fd 0 fails");
    check!(mmap(MAP, size, false, 1, 0).is_null(), "mmap of fd 1 fails");
    check!(
        mmap(MAP, size, false, 99, 0).is_null(),
        "mmap of an unopened fd fails"
    );
    check!(
        mmap(0x40_0000, size, false, fd, 0).is_null(),
        "mmap over the code fails"
    );
    check!(
        mmap(USER_STACK - 0x1_0000, size, false, fd, 0).is_null(),
        "mmap in the stack fails"
    );
    check!(
        mmap(KERN_BASE, size, false, fd, 0).is_null(),
        "mmap in kernel space fails"
    );
    check!(
        mmap(KERN_BASE - 0x1000, 0x2000, false, fd, 0).is_null(),
        "mmap into kernel space fails"
    );
    check!(create(c"empty", 0), "create empty");
    let empty = open(c"empty");
    check!(
        mmap(MAP, 4096, false, empty, 0).is_null(),
        "mmap of an empty file fails"
    );

    let p = mmap(MAP, size, false, fd, 0);
    check!(p as usize == MAP, "mmap sample.txt at 0x10000000");
    check!(
        mmap(MAP, size, false, fd, 0).is_null(),
        "mmap over that mapping fails"
    );
    close(fd);
    // SAFETY: [MAP, MAP + 4096) is mapped read-only above and stays mapped until munmap.
    let page = unsafe { core::slice::from_raw_parts(p, 4096) };
    check!(
        page[..size] == file[..size],
        "the mapping shows the file after close"
    );
    check!(
        page[size..].iter().all(|&b| b == 0),
        "the rest of the page is zero"
    );
    munmap(p);

    check!(create(c"mapw", 5000), "create mapw, 5000 bytes");
    let w = open(c"mapw");
    let q = mmap(MAP, 5000, true, w, 0);
    check!(q as usize == MAP, "mmap mapw writable");
    for i in 0..5000 {
        // SAFETY: [MAP, MAP + 5000) is a writable mapping of mapw.
        unsafe { q.add(i).write_volatile(b'a' + (i % 26) as u8) };
    }
    munmap(q);
    let mut back = [0u8; 5000];
    seek(w, 0);
    check!(read(w, &mut back) == 5000, "read mapw after munmap");
    check!(
        back.iter()
            .enumerate()
            .all(|(i, &b)| b == b'a' + (i % 26) as u8),
        "stores reached the file"
    );
    0
}
