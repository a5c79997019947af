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

use ulib::{cformat, check, create, exit, fail, fork, msg, open, read, seek, wait, write};

ulib::entry!("sort-stack", main);

const WORDS: usize = 64 * 1024;
const FILE_BYTES: usize = WORDS * 4;
const CHUNKS: usize = 4;
const CHUNK_WORDS: usize = WORDS / CHUNKS;
const CHUNK_BYTES: usize = CHUNK_WORDS * 4;
const BALLAST_PAGES: usize = 768;
/// u64 words per page of the other memory.
const PAGE_WORDS: usize = 512;

/// All of the program's data, in bss.
struct Memory {
    /// The other memory: one word per page is written and checked.
    ballast: [u64; BALLAST_PAGES * PAGE_WORDS],
    /// The words as written to the file.
    data: [u32; WORDS],
    /// The words sorted by the parent.
    expect: [u32; WORDS],
    /// The file as read back.
    file: [u32; WORDS],
}

static mut MEMORY: Memory = Memory {
    ballast: [0; BALLAST_PAGES * PAGE_WORDS],
    data: [0; WORDS],
    expect: [0; WORDS],
    file: [0; WORDS],
};

/// The program's data. Called once, by `main`: the process is single-threaded and a
/// forked child works on its own copy.
fn memory() -> &'static mut Memory {
    let memory: *mut Memory = &raw mut MEMORY;
    // SAFETY: the only reference to MEMORY ever made (see above).
    unsafe { &mut *memory }
}

/// The words of the file, in order: a fixed pseudo-random sequence (a 64-bit LCG's high
/// bits).
fn words() -> impl Iterator<Item = u32> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    core::iter::repeat_with(move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u32
    })
}

fn sum(words: &[u32]) -> u64 {
    words.iter().map(|&w| u64::from(w)).sum()
}

/// The sum of chunk `n`'s words, from the sequence itself.
fn chunk_sum(n: usize) -> u64 {
    words()
        .skip(n * CHUNK_WORDS)
        .take(CHUNK_WORDS)
        .map(u64::from)
        .sum()
}

fn is_sorted(words: &[u32]) -> bool {
    words.windows(2).all(|p| p[0] <= p[1])
}

fn bytes(words: &[u32]) -> &[u8] {
    // SAFETY: u32 has no padding and a larger alignment than u8; same memory, same length.
    unsafe { core::slice::from_raw_parts(words.as_ptr().cast(), words.len() * 4) }
}

fn bytes_mut(words: &mut [u32]) -> &mut [u8] {
    // SAFETY: as in `bytes`, and every byte pattern is a valid u32.
    unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 4) }
}

fn ballast_word(page: usize) -> u64 {
    (page as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Whether merging the sorted chunks of `file` yields exactly `expect`.
fn merge_matches(file: &[u32], expect: &[u32]) -> bool {
    let mut next = [0usize; CHUNKS];
    for &want in expect {
        let mut best: Option<(usize, u32)> = None;
        for (c, &at) in next.iter().enumerate() {
            if at < CHUNK_WORDS {
                let v = file[c * CHUNK_WORDS + at];
                if best.is_none_or(|(_, b)| v < b) {
                    best = Some((c, v));
                }
            }
        }
        match best {
            Some((c, v)) if v == want => next[c] += 1,
            _ => return false,
        }
    }
    true
}

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
    for page in 0..BALLAST_PAGES {
        // SAFETY: a valid, aligned element of the array (volatile: it must reach memory).
        unsafe { (&raw mut m.ballast[page * PAGE_WORDS]).write_volatile(ballast_word(page)) };
    }
    msg!("touch {} KiB of other memory", BALLAST_PAGES * 4);

    for (w, v) in m.data.iter_mut().zip(words()) {
        *w = v;
    }
    check!(
        create(c"sortdata", FILE_BYTES as u32),
        "create sortdata, {FILE_BYTES} bytes of pseudo-random words"
    );
    let fd = open(c"sortdata");
    let mut written = 0;
    for piece in bytes(&m.data).chunks(CHUNK_BYTES) {
        written += write(fd, piece).max(0) as usize;
    }
    if fd < 2 || written != FILE_BYTES {
        fail!("write sortdata");
    }
    m.expect.copy_from_slice(&m.data);
    m.expect.sort_unstable();

    let mut pids = [0i32; CHUNKS];
    for (n, pid) in pids.iter_mut().enumerate() {
        *pid = fork(cformat!(16; "ssorter{}", n).as_cstr());
        if *pid == 0 {
            exit(if sort_on_stack(n, fd) {
                10 + n as i32
            } else {
                1
            });
        }
        if *pid < 0 {
            fail!("fork ssorter{n}");
        }
    }
    let mut ok = true;
    for (n, &pid) in pids.iter().enumerate() {
        ok &= wait(pid) == 10 + n as i32;
    }
    check!(
        ok,
        "each child sorted its {} KiB chunk in the file on its stack",
        CHUNK_BYTES / 1024
    );

    seek(fd, 0);
    check!(
        read(fd, bytes_mut(&mut m.file)) == FILE_BYTES as i32
            && (0..CHUNKS).all(|n| {
                let range = n * CHUNK_WORDS..(n + 1) * CHUNK_WORDS;
                is_sorted(&m.file[range.clone()]) && sum(&m.file[range]) == chunk_sum(n)
            }),
        "every chunk in the file is sorted and holds its own words"
    );
    check!(
        merge_matches(&m.file, &m.expect),
        "merging the chunks gives all the words in order"
    );
    let ballast_same = (0..BALLAST_PAGES).all(|page| {
        // SAFETY: as above.
        let word = unsafe { (&raw const m.ballast[page * PAGE_WORDS]).read_volatile() };
        word == ballast_word(page)
    });
    check!(
        m.data.iter().copied().eq(words().take(WORDS)) && ballast_same,
        "the parent's words and other memory are unchanged"
    );
    0
}
