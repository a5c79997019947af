//! `int 0x42` (guest-abi.md §4) shows laziness and copy-on-write: a page has no frame
//! until touched, keeps the one it got, shares it with a forked child until one of them
//! writes, and addresses outside user memory have none.
#![no_std]
#![no_main]

use core::hint::black_box;

use ulib::{check, fork, int42, wait};

ulib::entry!("int42", main);

const PAGE: u64 = 4096;
/// Where the kernel's direct map starts (guest-abi.md): frames are reported there.
const KERN_BASE: u64 = 0x80_0400_0000;

/// Two pages of bss, page-aligned, untouched until the program touches them.
#[repr(C, align(4096))]
struct Pages([u8; 2 * PAGE as usize]);
static mut PAGES: Pages = Pages([0; 2 * PAGE as usize]);

fn page(i: u64) -> u64 {
    (&raw mut PAGES) as u64 + i * PAGE
}

fn touch(addr: u64, value: u8) {
    // SAFETY: `addr` is inside PAGES, which only this thread uses.
    unsafe { (addr as *mut u8).write_volatile(value) };
}

fn main(_args: &[&str]) -> i32 {
    let (first, second) = (page(0), page(1));
    check!(int42(first) == 0, "an untouched page has no frame");
    touch(first, 1);
    let frame = int42(first);
    check!(
        frame >= KERN_BASE && frame.is_multiple_of(PAGE),
        "a touched page has a frame, page-aligned in the kernel's map"
    );
    check!(
        int42(first + 123) == frame && int42(first) == frame,
        "every address of the page gives the same frame, every time"
    );
    check!(int42(second) == 0, "its untouched neighbour still has none");
    check!(
        int42(0) == 0 && int42(KERN_BASE) == 0 && int42(frame) == 0,
        "null and kernel addresses have none"
    );
    match fork(c"int42-child") {
        0 => {
            check!(int42(first) == frame, "the child shares the parent's frame");
            touch(first, 2);
            let copy = int42(first);
            check!(
                copy != frame && copy >= KERN_BASE,
                "the child's write gives it a frame of its own"
            );
            0
        }
        pid => {
            check!(wait(pid) == 0, "the child saw copy-on-write");
            touch(black_box(first), 3);
            check!(
                int42(first) == frame,
                "the parent writes to its frame, no longer shared, without a copy"
            );
            0
        }
    }
}
