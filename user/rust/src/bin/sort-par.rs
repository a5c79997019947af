//! Children sort chunks of a file, all at once, while the parent holds 3 MiB of other
//! memory in an 8 MiB guest (a user pool of about 3.3 MiB), so every process's pages
//! compete for frames:
//! 1. the parent touches its other memory, writes `sortdata` (256 KiB of pseudo-random
//!    words) and sorts a copy of the words itself (the reference);
//! 2. four children `psorterN` each sort chunk N (64 KiB) of their copy-on-write copy of
//!    the words, write it to its place in the file, and exit with 10 + N if it is sorted
//!    and holds the same words (the same sum);
//! 3. the parent reads the file back: every chunk is sorted and holds its own words, and
//!    merging the chunks gives the reference; its own words and other memory are as
//!    they were.
//!
//! The children's exit lines come in scheduling order; the test drops them.
#![no_std]
#![no_main]

use ulib::{check, seek, write};

#[allow(dead_code, reason = "each sort program uses part of it")]
#[path = "sortwork/mod.rs"]
mod sortwork;
use sortwork::*;

ulib::entry!("sort-par", main);

/// Child `n`: sorts chunk `n` of its copy of the words and writes it to its place in the
/// file; 10 + `n` if it is sorted and holds the chunk's words.
fn sort_chunk(n: usize, data: &mut [u32], fd: i32) -> i32 {
    let chunk = &mut data[n * CHUNK_WORDS..(n + 1) * CHUNK_WORDS];
    chunk.sort_unstable();
    seek(fd, (n * CHUNK_BYTES) as u32);
    let wrote = write(fd, bytes(chunk)) == CHUNK_BYTES as i32;
    let ok = wrote && is_sorted(chunk) && sum(chunk) == chunk_sum(n);
    if ok { 10 + n as i32 } else { 1 }
}

fn main(_args: &[&str]) -> i32 {
    let m = memory();
    let fd = prepare(m);

    let ok = sort_at_once("psorter", |n| sort_chunk(n, &mut m.data, fd));
    check!(
        ok,
        "each child sorted its {} KiB chunk in the file",
        CHUNK_BYTES / 1024
    );

    let read_ok = read_back(m, fd);
    check_result(m, &m.file, read_ok);
    0
}
