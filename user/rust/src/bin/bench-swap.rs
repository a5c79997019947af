//! Paging benchmarks under memory pressure (`make bench`, in a small guest), in TSC cycles
//! measured in user mode:
//! - the `int 0x42` round trip and a zero-fill fault, as the baseline of this run;
//! - `kernel_zero_fill_fault`: a zero-fill fault of a forked child while frames are free,
//!   which the kernel resolves in either kernel mode (the fast mode's shim resolves
//!   zero-fill faults only for a program as exec loaded it): the baseline of the two below
//!   in the fast mode, whose faults take the same path;
//! - `evict_fault`: a zero-fill fault that first evicts a dirty page to swap (the child
//!   touching fresh pages once memory is full);
//! - `swap_in_fault`: a fault that reads a page back from swap into a free frame (the
//!   parent touching its own pages again after the child has gone).
//!
//! Each fault is timed on its own and the median is reported: a timer tick or a stall of
//! the (nested) host lands in a few faults and would move a mean by as much as the
//! difference `make bench` checks (swap-in minus zero-fill, ~15 us).
//!
//! Prints `bench NAME: N cycles` lines. Run it with 16 MiB of RAM: the child's array must
//! be well over the user pool (about 7 MiB there), so that every page of the parent's
//! array is evicted.
#![no_std]
#![no_main]

use ulib::{cycles, exit, fork, int42, println, wait};

ulib::entry!("bench-swap", main);

const PAGE: usize = 4096;
/// The parent's pages, evicted by the child and read back from swap.
const OWN_PAGES: usize = 256;
/// The child's pages (12 MiB): well over a 16 MiB guest's user pool.
const HOG_PAGES: usize = 3072;
/// Pages of the zero-fill baseline.
const BASE_PAGES: usize = 128;

#[repr(C, align(4096))]
struct Pages<const N: usize>([u8; N]);

static mut OWN: Pages<{ OWN_PAGES * PAGE }> = Pages([0; OWN_PAGES * PAGE]);
static mut HOG: Pages<{ HOG_PAGES * PAGE }> = Pages([0; HOG_PAGES * PAGE]);
static mut BASE: Pages<{ BASE_PAGES * PAGE }> = Pages([0; BASE_PAGES * PAGE]);

/// Most faults one [`median_fault`] times.
const MAX_TIMED: usize = HOG_PAGES / 2;

/// Stores one byte into each page `from..to` of the array at `base`.
fn touch(base: *mut u8, from: usize, to: usize) {
    for i in from..to {
        // SAFETY: the byte lies inside the static array the caller names; this program
        // holds no reference to it.
        unsafe { base.add(i * PAGE).write_volatile(i as u8 | 1) };
    }
}

/// Stores one byte into each page `from..to` (at most [`MAX_TIMED`]) of the array at
/// `base`, timing each store (one fault); returns the median cycles.
fn median_fault(base: *mut u8, from: usize, to: usize) -> u64 {
    // Written in full here, so the stack under it is mapped before the timing starts.
    let mut times = [0u64; MAX_TIMED];
    let times = &mut times[..to - from];
    for (t, i) in times.iter_mut().zip(from..to) {
        let t0 = cycles();
        // SAFETY: as in `touch`.
        unsafe { base.add(i * PAGE).write_volatile(i as u8 | 1) };
        *t = cycles() - t0;
    }
    times.sort_unstable();
    times[times.len() / 2]
}

fn main(_args: &[&str]) -> i32 {
    const ROUND_TRIPS: u64 = 1000;
    let here = main as *const () as u64;
    let t0 = cycles();
    for _ in 0..ROUND_TRIPS {
        int42(here);
    }
    println!(
        "bench int42_round_trip: {} cycles",
        (cycles() - t0) / ROUND_TRIPS
    );
    let base = (&raw mut BASE).cast::<u8>();
    let zero = median_fault(base, 0, BASE_PAGES);
    println!("bench zero_fill_fault: {zero} cycles");

    let own = (&raw mut OWN).cast::<u8>();
    touch(own, 0, OWN_PAGES);
    let pid = fork(c"bench-hog");
    if pid == 0 {
        // The first half fills memory (and evicts); the second half is timed: by then
        // every fault evicts.
        let hog = (&raw mut HOG).cast::<u8>();
        let kernel_zero = median_fault(hog, 0, BASE_PAGES);
        println!("bench kernel_zero_fill_fault: {kernel_zero} cycles");
        touch(hog, BASE_PAGES, HOG_PAGES / 2);
        let evict = median_fault(hog, HOG_PAGES / 2, HOG_PAGES);
        println!("bench evict_fault: {evict} cycles");
        exit(0);
    }
    if pid < 0 || wait(pid) != 0 {
        println!("bench-swap: the child failed: give the guest more memory");
        return 1;
    }
    // The child's frames are free again; the parent's pages are all in swap.
    let swap_in = median_fault(own, 0, OWN_PAGES);
    println!("bench swap_in_fault: {swap_in} cycles");
    0
}
