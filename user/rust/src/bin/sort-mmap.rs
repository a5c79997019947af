//! Children sort chunks of a file, all at once, each through a writable mapping of its
//! chunk, while the parent holds 3 MiB of other memory in an 8 MiB guest (a user pool of
//! about 3.3 MiB), so mapped pages compete for frames with everything else:
//! 1. the parent touches its other memory, writes `sortdata` (256 KiB of pseudo-random
//!    words) and sorts a copy of the words itself (the reference);
//! 2. four children `msorterN` each map chunk N (64 KiB) of the file, sort it in place,
//!    unmap it (the dirty pages go back to the file) and exit with 10 + N if it was sorted
//!    and held the chunk's words (the same sum);
//! 3. the parent maps the whole file read-only: every chunk is sorted and holds its own
//!    words, and merging the chunks gives the reference; its own words and other memory
//!    are as they were.
//!
//! The children's exit lines come in scheduling order; the test drops them.
#![no_std]
#![no_main]

use ulib::{check, mmap, munmap};

#[allow(dead_code, reason = "each sort program uses part of it")]
#[path = "sortwork/mod.rs"]
mod sortwork;
use sortwork::*;

ulib::entry!("sort-mmap", main);

/// Where the parent maps the file, and child N its chunk (at MAP + N * CHUNK_BYTES).
const MAP: usize = 0x1000_0000;

/// Child `n`: maps chunk `n` of the file, sorts it in place and unmaps it; 10 + `n` if it
/// was sorted and held the chunk's words (2 if the mapping failed).
fn sort_mapped(n: usize, fd: i32) -> i32 {
    let at = MAP + n * CHUNK_BYTES;
    let p = mmap(at, CHUNK_BYTES, true, fd, (n * CHUNK_BYTES) as i64);
    if p as usize != at {
        return 2;
    }
    // SAFETY: [at, at + CHUNK_BYTES) is a writable mapping, page-aligned, until munmap; no
    // other reference to it exists.
    let chunk = unsafe { core::slice::from_raw_parts_mut(p.cast::<u32>(), CHUNK_WORDS) };
    chunk.sort_unstable();
    let ok = is_sorted(chunk) && sum(chunk) == chunk_sum(n);
    munmap(p);
    if ok { 10 + n as i32 } else { 1 }
}

fn main(_args: &[&str]) -> i32 {
    let m = memory();
    let fd = prepare(m);

    let ok = sort_at_once("msorter", |n| sort_mapped(n, fd));
    check!(
        ok,
        "each child sorted its {} KiB chunk through a mapping",
        CHUNK_BYTES / 1024
    );

    let p = mmap(MAP, FILE_BYTES, false, fd, 0);
    check!(p as usize == MAP, "mmap the whole file read-only");
    // SAFETY: [MAP, MAP + FILE_BYTES) is mapped, page-aligned, until munmap below, and
    // nothing writes it meanwhile.
    let file = unsafe { core::slice::from_raw_parts(p.cast::<u32>(), WORDS) };
    check_result(m, file, true);
    munmap(p);
    0
}
