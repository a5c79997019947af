//! Children sort chunks of a file one at a time, each a fresh program (fork + exec), while
//! the parent holds 3 MiB of other memory in an 8 MiB guest (a user pool of about
//! 3.3 MiB), so the children's pages and the parent's compete for frames:
//! 1. the parent touches its other memory, writes `sortdata` (256 KiB of pseudo-random
//!    words) and sorts a copy of the words itself (the reference);
//! 2. for each chunk N (64 KiB) in turn, a child `sorterN` runs `sort-seq N`, which reads
//!    the chunk into its own bss, sorts it, writes it back to its place and exits with
//!    10 + N if it is sorted and holds the chunk's words (the same sum);
//! 3. the parent reads the file back: every chunk is sorted and holds its own words, and
//!    merging the chunks gives the reference; its own words and other memory are as
//!    they were.
#![no_std]
#![no_main]

use ulib::{cformat, check, exec, fail, fork, open, read, seek, wait, write};

#[allow(dead_code, reason = "each sort program uses part of it")]
#[path = "sortwork/mod.rs"]
mod sortwork;
use sortwork::*;

ulib::entry!("sort-seq", main);

/// `sort-seq N`, in a child: sorts chunk `n` of the file in place; 10 + `n` if the chunk
/// it wrote is sorted and holds the chunk's words.
fn sorter(n: usize) -> i32 {
    if n >= CHUNKS {
        return 1;
    }
    let chunk = &mut memory().file[..CHUNK_WORDS];
    let fd = open(c"sortdata");
    seek(fd, (n * CHUNK_BYTES) as u32);
    let got = read(fd, bytes_mut(chunk)) == CHUNK_BYTES as i32;
    chunk.sort_unstable();
    seek(fd, (n * CHUNK_BYTES) as u32);
    let wrote = write(fd, bytes(chunk)) == CHUNK_BYTES as i32;
    let ok = got && wrote && is_sorted(chunk) && sum(chunk) == chunk_sum(n);
    if ok { 10 + n as i32 } else { 1 }
}

fn main(args: &[&str]) -> i32 {
    if let Some(n) = args.get(1) {
        return sorter(n.parse().unwrap_or(CHUNKS));
    }
    let m = memory();
    let fd = prepare(m);

    // One at a time: each exit line comes before the next fork.
    let mut ok = true;
    for n in 0..CHUNKS {
        let pid = fork(cformat!(16; "sorter{}", n).as_cstr());
        if pid == 0 {
            exec(cformat!(32; "sort-seq {}", n).as_cstr());
            fail!("exec sort-seq {n}");
        }
        if pid < 0 {
            fail!("fork sorter{n}");
        }
        ok &= wait(pid) == 10 + n as i32;
    }
    check!(
        ok,
        "each child in turn sorted its {} KiB chunk in the file",
        CHUNK_BYTES / 1024
    );

    let read_ok = read_back(m, fd);
    check_result(m, &m.file, read_ok);
    0
}
