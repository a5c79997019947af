//! Children sort chunks of a file, all at once, each in 128 KiB of its stack (the stack
//! grows by faulting), while the parent holds 3 MiB of other memory in an 8 MiB guest (a
//! user pool of about 3.3 MiB), so every process's pages compete for frames:
//! 1. the parent touches its other memory, writes `sortdata` (256 KiB of pseudo-random
//!    words) and sorts a copy of the words itself (the reference);
//! 2. four children `ssorterN` each read chunk N (64 KiB) into an array on the stack,
//!    merge-sort it with a second stack array for the merges, write it back to its place
//!    and exit with 10 + N if it is sorted and holds the chunk's words (the same sum);
//! 3. the parent reads the file back: every chunk is sorted and holds its own words, and
//!    merging the chunks gives the reference; its own words and other memory are as
//!    they were.
//!
//! The children's exit lines come in scheduling order; the test drops them.
#![no_std]
#![no_main]

use ulib::{check, read, seek, write};

#[allow(dead_code, reason = "each sort program uses part of it")]
#[path = "sortwork/mod.rs"]
mod sortwork;
use sortwork::*;

ulib::entry!("sort-stack", main);

/// Sorts `words` by bottom-up merge sort, merging runs back and forth between `words`
/// and `scratch` (as long).
fn merge_sort(words: &mut [u32], scratch: &mut [u32]) {
    let len = words.len();
    let (mut from, mut to) = (words, scratch);
    let mut flipped = false;
    let mut width = 1;
    while width < len {
        for start in (0..len).step_by(2 * width) {
            let mid = (start + width).min(len);
            let end = (start + 2 * width).min(len);
            let (mut i, mut j) = (start, mid);
            for slot in &mut to[start..end] {
                if j == end || (i < mid && from[i] <= from[j]) {
                    *slot = from[i];
                    i += 1;
                } else {
                    *slot = from[j];
                    j += 1;
                }
            }
        }
        core::mem::swap(&mut from, &mut to);
        flipped = !flipped;
        width *= 2;
    }
    // `from` holds the sorted words; after an odd number of passes that is `scratch`.
    if flipped {
        to.copy_from_slice(from);
    }
}

/// Child `n`'s work, on 128 KiB of stack: reads chunk `n`, sorts it and writes it back;
/// whether the chunk it wrote is sorted and holds the chunk's words.
#[inline(never)]
fn sort_on_stack(n: usize, fd: i32) -> bool {
    let mut chunk = [0u32; CHUNK_WORDS];
    let mut scratch = [0u32; CHUNK_WORDS];
    seek(fd, (n * CHUNK_BYTES) as u32);
    let got = read(fd, bytes_mut(&mut chunk)) == CHUNK_BYTES as i32;
    merge_sort(&mut chunk, &mut scratch);
    seek(fd, (n * CHUNK_BYTES) as u32);
    let wrote = write(fd, bytes(&chunk)) == CHUNK_BYTES as i32;
    got && wrote && is_sorted(&chunk) && sum(&chunk) == chunk_sum(n)
}

fn main(_args: &[&str]) -> i32 {
    let m = memory();
    let fd = prepare(m);

    let ok = sort_at_once("ssorter", |n| {
        if sort_on_stack(n, fd) {
            10 + n as i32
        } else {
            1
        }
    });
    check!(
        ok,
        "each child sorted its {} KiB chunk in the file on its stack",
        CHUNK_BYTES / 1024
    );

    let read_ok = read_back(m, fd);
    check_result(m, &m.file, read_ok);
    0
}
