//! A 2 MiB file mapped writable next to a 2 MiB bss array, in an 8 MiB guest whose user
//! pool holds about 3.3 MiB: mapped pages must be evicted (clean ones dropped, dirty ones
//! written back to the file) and read back from the file.
//! 1. create `map2m` and fill it with `write` (a byte pattern that differs in every page);
//! 2. map it and check every byte;
//! 3. change one word in every other page (the rest stay clean), touch every page of the
//!    bss array to push the mapping out, and check that the mapping still shows exactly
//!    the changes;
//! 4. munmap, then `read` the file: the changes reached it, the other bytes are as written.
#![no_std]
#![no_main]

use ulib::{check, create, msg, munmap, open, read, seek, write};
use user_programs::pattern;

ulib::entry!("mmap-2m", main);

const PAGE: usize = 4096;
const FILE_BYTES: usize = 2 << 20;
const FILE_PAGES: usize = FILE_BYTES / PAGE;
/// Where the file is mapped.
const MAP: usize = 0x1000_0000;
/// Bytes per `write`/`read` call (fewer, larger transfers keep the run short).
const CHUNK: usize = 64 * 1024;
/// Seed of the file's byte pattern.
const SEED: u32 = 5;

/// Memory pressure: as large as the file, one word touched per page.
static mut BALLAST: [u64; FILE_BYTES / 8] = [0; FILE_BYTES / 8];

/// Byte offset in the file of the word changed in page `page` (even pages only): a
/// different 8-byte-aligned place in every page.
fn changed_at(page: usize) -> usize {
    page * PAGE + (page * 8 * 65) % PAGE
}

/// The word stored at [`changed_at`]`(page)`.
fn changed_word(page: usize) -> u64 {
    (page as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The byte at file offset `i` after step 3.
fn expected_byte(i: usize) -> u8 {
    let page = i / PAGE;
    let at = changed_at(page);
    if page.is_multiple_of(2) && (at..at + 8).contains(&i) {
        changed_word(page).to_le_bytes()[i - at]
    } else {
        pattern(SEED, i)
    }
}

/// Whether every mapped byte is `expected(offset)`. Volatile reads, so every check really
/// reads the mapping (faulting evicted pages back in).
fn mapping_holds(map: *const u8, expected: fn(usize) -> u8) -> bool {
    // SAFETY: [map, map + FILE_BYTES) is a mapping of the file for the whole check.
    (0..FILE_BYTES).all(|i| unsafe { map.add(i).read_volatile() } == expected(i))
}

fn ballast_word(page: usize) -> u64 {
    (!(page as u64) << 12) | page as u64
}

fn main(_args: &[&str]) -> i32 {
    check!(
        create(c"map2m", FILE_BYTES as u32),
        "create map2m, {FILE_BYTES} bytes"
    );
    let fd = open(c"map2m");
    let mut buf = [0u8; CHUNK];
    let mut written = 0;
    for at in (0..FILE_BYTES).step_by(CHUNK) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = pattern(SEED, at + i);
        }
        written += write(fd, &buf).max(0) as usize;
    }
    check!(
        fd > 1 && written == FILE_BYTES,
        "write it: a byte pattern that differs in every page"
    );

    let map = ulib::mmap(MAP, FILE_BYTES, true, fd, 0);
    check!(map as usize == MAP, "mmap it writable");
    check!(
        mapping_holds(map, |i| pattern(SEED, i)),
        "every mapped byte is as written"
    );
    for page in (0..FILE_PAGES).step_by(2) {
        // SAFETY: the word lies inside the writable mapping and is 8-byte aligned.
        unsafe {
            map.add(changed_at(page))
                .cast::<u64>()
                .write_volatile(changed_word(page))
        };
    }
    msg!("change a word in every other page");

    let ballast = (&raw mut BALLAST).cast::<u64>();
    for page in 0..FILE_PAGES {
        // SAFETY: the word lies inside the static array; this program is single-threaded
        // and holds no reference to the array.
        unsafe {
            ballast
                .add(page * PAGE / 8)
                .write_volatile(ballast_word(page))
        };
    }
    msg!("touch 2 MiB of bss");
    check!(
        mapping_holds(map, expected_byte),
        "the mapping shows exactly the changes"
    );
    check!(
        (0..FILE_PAGES).all(|page| {
            // SAFETY: as above.
            let word = unsafe { ballast.add(page * PAGE / 8).read_volatile() };
            word == ballast_word(page)
        }),
        "the bss holds its words"
    );

    munmap(map);
    seek(fd, 0);
    let mut same = true;
    for at in (0..FILE_BYTES).step_by(CHUNK) {
        same &= read(fd, &mut buf) == CHUNK as i32
            && buf
                .iter()
                .enumerate()
                .all(|(i, &b)| b == expected_byte(at + i));
    }
    check!(same, "after munmap, read() shows exactly the changes");
    0
}
