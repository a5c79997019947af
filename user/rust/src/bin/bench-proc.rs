//! Process benchmarks (`make bench`), in TSC cycles measured in user mode:
//! - a null system call (`tell` on a bad descriptor: entry, dispatch, exit);
//! - an empty `write()` to the console, and a one-byte `read()` from a file in the
//!   kernel's block cache (a 1 KiB file the program makes, read one byte per call);
//! - an `int 0x42` round trip (the bare cost of entering and leaving the kernel);
//! - fork + exec of a program that does nothing + wait;
//! - page faults, one byte touched per page: a zero-fill fault (bss), a lazy load of a
//!   data page from the executable, a copy-on-write copy (a forked child's first store to
//!   a page the parent has), and a copy-on-write store that needs no copy (the parent's,
//!   after the child has gone).
//!
//! Prints `bench NAME: N cycles` lines; the harness converts them to time.
#![no_std]
#![no_main]

use ulib::{
    close, create, cycles, exec, exit, fork, int42, open, println, read, seek, tell, wait, write,
};

ulib::entry!("bench-proc", main);

const SYSCALLS: u64 = 2000;
const SPAWNS: u64 = 10;
/// Pages of each fault benchmark (1 MiB: fits the default 64 MiB guest many times over).
const FAULT_PAGES: usize = 256;
const PAGE: usize = 4096;

/// Page-aligned bytes, so each benchmark array owns its pages.
#[repr(C, align(4096))]
struct Pages([u8; FAULT_PAGES * PAGE]);

/// Zero-fill on demand (bss).
static mut ZERO: Pages = Pages([0; FAULT_PAGES * PAGE]);
/// Loaded from the executable on first touch (data: nonzero, so it is in the file).
static mut DATA: Pages = Pages([1; FAULT_PAGES * PAGE]);

/// Touches one byte of each page of `pages` (a store if `store`), and returns the average
/// cycles per page.
fn touch_pages(pages: *mut Pages, store: bool) -> u64 {
    let base = pages.cast::<u8>();
    let t0 = cycles();
    for i in 0..FAULT_PAGES {
        // SAFETY: the byte lies inside the static array; this program is single-threaded
        // and holds no reference to the array.
        unsafe {
            let at = base.add(i * PAGE);
            if store {
                at.write_volatile(2);
            } else {
                at.read_volatile();
            }
        }
    }
    (cycles() - t0) / FAULT_PAGES as u64
}

fn main(_args: &[&str]) -> i32 {
    let t0 = cycles();
    for _ in 0..SYSCALLS {
        tell(-1);
    }
    let t1 = cycles();
    println!("bench null_syscall: {} cycles", (t1 - t0) / SYSCALLS);

    let t0 = cycles();
    for _ in 0..SYSCALLS {
        write(1, &[]);
    }
    let t1 = cycles();
    println!("bench empty_write: {} cycles", (t1 - t0) / SYSCALLS);
    println!("bench fs_read_1b: {} cycles", cached_read());

    let here = main as *const () as u64;
    let t0 = cycles();
    for _ in 0..SYSCALLS {
        int42(here);
    }
    let t1 = cycles();
    println!("bench int42_round_trip: {} cycles", (t1 - t0) / SYSCALLS);

    let t0 = cycles();
    for _ in 0..SPAWNS {
        let pid = fork(c"bench-child");
        if pid == 0 {
            exec(c"bench-true");
            exit(1);
        }
        wait(pid);
    }
    let t1 = cycles();
    println!("bench fork_exec_wait: {} cycles", (t1 - t0) / SPAWNS);

    let zero_fill = touch_pages(&raw mut ZERO, false);
    println!("bench zero_fill_fault: {zero_fill} cycles");
    let lazy_load = touch_pages(&raw mut DATA, false);
    println!("bench lazy_load_fault: {lazy_load} cycles");
    // Make the pages writable ones of this process before sharing them.
    touch_pages(&raw mut ZERO, true);
    let pid = fork(c"bench-cow");
    if pid == 0 {
        let copy = touch_pages(&raw mut ZERO, true);
        println!("bench cow_copy_fault: {copy} cycles");
        exit(0);
    }
    wait(pid);
    let reclaim = touch_pages(&raw mut ZERO, true);
    println!("bench cow_no_copy_fault: {reclaim} cycles");
    0
}

/// Cycles of a one-byte `read()` from a 1 KiB file the block cache holds: the file is
/// made and read once (which brings its block in), then read one byte per call, over and
/// over from the start.
fn cached_read() -> u64 {
    const SIZE: u32 = 1024;
    if !create(c"bench-1k", SIZE) {
        return 0;
    }
    let fd = open(c"bench-1k");
    if fd < 2 {
        return 0;
    }
    let mut byte = [0u8; 1];
    read(fd, &mut byte);
    let t0 = cycles();
    for i in 0..SYSCALLS {
        if i % u64::from(SIZE) == 0 {
            seek(fd, 0);
        }
        read(fd, &mut byte);
    }
    let t1 = cycles();
    close(fd);
    (t1 - t0) / SYSCALLS
}
