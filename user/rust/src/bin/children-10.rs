//! Ten children at once, each with 1 MiB of its own, in a 10 MiB guest (a user pool of
//! about 4.3 MiB, less than the 11 MiB they and the parent hold): the parent fills a 1 MiB
//! array; each child `kidN` checks that its copy holds the parent's bytes (shared
//! copy-on-write) while overwriting them with a pattern of its own, checks that pattern
//! twice, and exits with 10 + N if every check held (1, 2 or 3: which pass failed first).
//! The parent checks every status and that its own array never changed.
//! The children's exit lines come in scheduling order; the test drops them.
#![no_std]
#![no_main]

use ulib::{cformat, check, exit, fail, fork, wait};

ulib::entry!("children-10", main);

const CHILDREN: usize = 10;
const SIZE: usize = 1 << 20;

/// Shared with every child until it writes; only the parent's pattern (seed 0) is ever
/// stored here by the parent.
static mut ARRAY: [u8; SIZE] = [0; SIZE];

/// Byte `i` of the pattern for `seed` (0: the parent; 1 + N: child N): differs between
/// seeds at almost every byte, and within a page.
fn pattern(i: usize, seed: usize) -> u8 {
    ((i + seed * 7919) as u32)
        .wrapping_mul(2_654_435_761)
        .to_le_bytes()[3]
}

fn array() -> *mut u8 {
    (&raw mut ARRAY).cast::<u8>()
}

/// Whether the array holds `seed`'s pattern; first replaces each byte by `then`'s
/// pattern, if given. Volatile accesses: every pass really reads (and writes) memory.
fn holds(seed: usize, then: Option<usize>) -> bool {
    let mut ok = true;
    for i in 0..SIZE {
        // SAFETY: `i` is inside the static array; the process is single-threaded and holds
        // no reference to the array.
        unsafe {
            let at = array().add(i);
            ok &= at.read_volatile() == pattern(i, seed);
            if let Some(new) = then {
                at.write_volatile(pattern(i, new));
            }
        }
    }
    ok
}

fn child(n: usize) -> ! {
    let own = 1 + n;
    let status = if !holds(0, Some(own)) {
        1
    } else if !holds(own, None) {
        2
    } else if !holds(own, None) {
        3
    } else {
        10 + n as i32
    };
    exit(status)
}

fn main(_args: &[&str]) -> i32 {
    for i in 0..SIZE {
        // SAFETY: as in `holds`.
        unsafe { array().add(i).write_volatile(pattern(i, 0)) };
    }
    let mut pids = [0i32; CHILDREN];
    for (n, pid) in pids.iter_mut().enumerate() {
        *pid = fork(cformat!(16; "kid{}", n).as_cstr());
        if *pid == 0 {
            child(n);
        }
        if *pid < 0 {
            fail!("fork kid{n}");
        }
    }
    // Wait for all before printing: the exit lines come in any order.
    let mut status = [0i32; CHILDREN];
    for (s, &pid) in status.iter_mut().zip(&pids) {
        *s = wait(pid);
    }
    for (n, &s) in status.iter().enumerate() {
        check!(
            s == 10 + n as i32,
            "kid{n} saw the parent's 1 MiB, then its own twice"
        );
    }
    check!(holds(0, None), "the parent's 1 MiB is unchanged");
    0
}
