//! What the sort programs (`sort-seq`, `sort-par`, `sort-stack`, `sort-mmap`) share: the
//! data file of pseudo-random words cut into chunks, the parent's memory (its copy of the
//! words, the reference sort, the other memory that keeps frames scarce), writing the file,
//! and the checks on the result. Each program differs only in how its children sort.
//! Included by each program with `#[path]` (a directory without `main.rs` is no binary).

use ulib::{cformat, check, create, exit, fail, fork, msg, open, read, seek, wait, write};

pub const WORDS: usize = 64 * 1024;
pub const FILE_BYTES: usize = WORDS * 4;
pub const CHUNKS: usize = 4;
pub const CHUNK_WORDS: usize = WORDS / CHUNKS;
pub const CHUNK_BYTES: usize = CHUNK_WORDS * 4;
pub const BALLAST_PAGES: usize = 768;
/// u64 words per page of the other memory.
pub const PAGE_WORDS: usize = 512;

/// All of the program's data, in bss.
pub struct Memory {
    /// The other memory: one word per page is written and checked.
    pub ballast: [u64; BALLAST_PAGES * PAGE_WORDS],
    /// The words as written to the file.
    pub data: [u32; WORDS],
    /// The words sorted by the parent.
    pub expect: [u32; WORDS],
    /// The file as read back.
    pub file: [u32; WORDS],
}

static mut MEMORY: Memory = Memory {
    ballast: [0; BALLAST_PAGES * PAGE_WORDS],
    data: [0; WORDS],
    expect: [0; WORDS],
    file: [0; WORDS],
};

/// The program's data. Called once per process (a forked child calls it no more: it
/// works on its copy of the parent's reference); every process is single-threaded.
pub fn memory() -> &'static mut Memory {
    let memory: *mut Memory = &raw mut MEMORY;
    // SAFETY: the only reference to MEMORY ever made (see above).
    unsafe { &mut *memory }
}

/// The words of the file, in order: a fixed pseudo-random sequence (a 64-bit LCG's high
/// bits).
pub fn words() -> impl Iterator<Item = u32> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    core::iter::repeat_with(move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u32
    })
}

pub fn sum(words: &[u32]) -> u64 {
    words.iter().map(|&w| u64::from(w)).sum()
}

/// The sum of chunk `n`'s words, from the sequence itself.
pub fn chunk_sum(n: usize) -> u64 {
    words()
        .skip(n * CHUNK_WORDS)
        .take(CHUNK_WORDS)
        .map(u64::from)
        .sum()
}

pub fn is_sorted(words: &[u32]) -> bool {
    words.windows(2).all(|p| p[0] <= p[1])
}

pub fn bytes(words: &[u32]) -> &[u8] {
    // SAFETY: u32 has no padding and a larger alignment than u8; same memory, same length.
    unsafe { core::slice::from_raw_parts(words.as_ptr().cast(), words.len() * 4) }
}

pub fn bytes_mut(words: &mut [u32]) -> &mut [u8] {
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

/// Step 1 of every sort program: touches the other memory, writes `sortdata` (the words)
/// and sorts the parent's reference copy. Returns the file's descriptor.
pub fn prepare(m: &mut Memory) -> i32 {
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
    fd
}

/// Reads the whole file `fd` back into `m.file`; whether all of it came.
pub fn read_back(m: &mut Memory, fd: i32) -> bool {
    seek(fd, 0);
    read(fd, bytes_mut(&mut m.file)) == FILE_BYTES as i32
}

/// The last step of every sort program, on the file's words as the parent sees them
/// (`read_ok`: they all came): every chunk is sorted and holds its own words, merging the
/// chunks gives the reference, and the parent's words and other memory are unchanged.
pub fn check_result(m: &Memory, file: &[u32], read_ok: bool) {
    check!(
        read_ok
            && (0..CHUNKS).all(|n| {
                let range = n * CHUNK_WORDS..(n + 1) * CHUNK_WORDS;
                is_sorted(&file[range.clone()]) && sum(&file[range]) == chunk_sum(n)
            }),
        "every chunk in the file is sorted and holds its own words"
    );
    check!(
        merge_matches(file, &m.expect),
        "merging the chunks gives all the words in order"
    );
    let ballast_same = (0..BALLAST_PAGES).all(|page| {
        // SAFETY: a valid, aligned element of the array.
        let word = unsafe { (&raw const m.ballast[page * PAGE_WORDS]).read_volatile() };
        word == ballast_word(page)
    });
    check!(
        m.data.iter().copied().eq(words().take(WORDS)) && ballast_same,
        "the parent's words and other memory are unchanged"
    );
}

/// Step 2 when the children run at once: forks one child per chunk, named `PREFIXn`, which
/// exits with `sort(n)` (10 + n when it sorted chunk n right), and waits for them all.
/// Whether every child exited with 10 + n.
pub fn sort_at_once(prefix: &str, mut sort: impl FnMut(usize) -> i32) -> bool {
    let mut pids = [0i32; CHUNKS];
    for (n, pid) in pids.iter_mut().enumerate() {
        *pid = fork(cformat!(16; "{}{}", prefix, n).as_cstr());
        if *pid == 0 {
            exit(sort(n));
        }
        if *pid < 0 {
            fail!("fork {prefix}{n}");
        }
    }
    let mut ok = true;
    for (n, &pid) in pids.iter().enumerate() {
        ok &= wait(pid) == 10 + n as i32;
    }
    ok
}
