//! Workloads whose paging counts the program itself determines, for the statistics tests
//! and experiments (`vmm run --stats`):
//!
//! * `paging-stats touch N`: writes one byte in each of the first N pages of a page-aligned
//!   bss array (N ≤ 2048): exactly N zero-fill faults more than `touch 0`.
//! * `paging-stats cow K`: writes all 64 pages of the array, forks; the child writes K of
//!   them (K ≤ 64) while the parent waits: exactly K copy-on-write copies more than
//!   `cow 0`.
//! * `paging-stats hot-cold HOT COLD ROUNDS`: each round writes all HOT pages, then the
//!   next 4 of COLD pages in turn. With memory for the hot pages and a few more, the clock
//!   keeps the hot pages (they are always recently used) while FIFO evicts them in turn,
//!   so FIFO evicts more.
//!
//! Each mode ends by checking what it wrote and prints one line.
#![no_std]
#![no_main]

use ulib::{exit, fail, fork, msg, wait};

ulib::entry!("paging-stats", main);

const PAGE: usize = 4096;
const PAGES: usize = 2048;

#[repr(C, align(4096))]
struct Pages([u8; PAGE * PAGES]);

/// Its own pages only (page-aligned): no other variable shares a page with it.
static mut ARRAY: Pages = Pages([0; PAGE * PAGES]);

fn page(i: usize) -> *mut u8 {
    // SAFETY: callers pass i < PAGES, so the offset is inside the static array.
    unsafe { (&raw mut ARRAY).cast::<u8>().add(i * PAGE) }
}

fn write(i: usize, value: u8) {
    // SAFETY: `page(i)` is inside the array; the process holds no reference to it.
    unsafe { page(i).write_volatile(value) }
}

fn read(i: usize) -> u8 {
    // SAFETY: as in `write`.
    unsafe { page(i).read_volatile() }
}

fn number(args: &[&str], at: usize, max: usize) -> usize {
    match args.get(at).and_then(|s| s.parse::<usize>().ok()) {
        Some(n) if n <= max => n,
        _ => fail!("argument {at} must be a number up to {max}"),
    }
}

fn touch(n: usize) -> i32 {
    for i in 0..n {
        write(i, i as u8 | 1);
    }
    if (0..n).any(|i| read(i) != i as u8 | 1) {
        fail!("a touched page lost its byte");
    }
    msg!("touched {n} pages");
    0
}

fn cow(k: usize) -> i32 {
    const SHARED: usize = 64;
    for i in 0..SHARED {
        write(i, 1);
    }
    let pid = fork(c"cow-child");
    if pid == 0 {
        for i in 0..k {
            write(i, 2);
        }
        let ok = (0..SHARED).all(|i| read(i) == if i < k { 2 } else { 1 });
        exit(if ok { 0 } else { 1 });
    }
    if pid < 0 || wait(pid) != 0 {
        fail!("the child failed");
    }
    if (0..SHARED).any(|i| read(i) != 1) {
        fail!("the child's writes reached the parent");
    }
    msg!("child wrote {k} shared pages");
    0
}

fn hot_cold(hot: usize, cold: usize, rounds: usize) -> i32 {
    const COLD_PER_ROUND: usize = 4;
    if hot + cold > PAGES || cold < COLD_PER_ROUND {
        fail!("HOT + COLD must fit {PAGES} pages, COLD at least 4");
    }
    let mut next = 0;
    for round in 0..rounds {
        for i in 0..hot {
            write(i, round as u8);
        }
        for _ in 0..COLD_PER_ROUND {
            write(hot + next, 1);
            next = (next + 1) % cold;
        }
    }
    let last = rounds.wrapping_sub(1) as u8;
    if rounds > 0 && (0..hot).any(|i| read(i) != last) {
        fail!("a hot page lost its last write");
    }
    msg!("{rounds} rounds over {hot} hot and {cold} cold pages");
    0
}

fn main(args: &[&str]) -> i32 {
    match args.get(1).copied() {
        Some("touch") => touch(number(args, 2, PAGES)),
        Some("cow") => cow(number(args, 2, 64)),
        Some("hot-cold") => hot_cold(
            number(args, 2, PAGES),
            number(args, 3, PAGES),
            number(args, 4, 1 << 20),
        ),
        _ => fail!("usage: paging-stats touch N | cow K | hot-cold HOT COLD ROUNDS"),
    }
}
