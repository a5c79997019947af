//! Self-tests of the block devices, the swap disk and the file system.
//!
//! They need the disks the VMM attaches by default: a file-system disk and a swap disk.

use alloc::vec;
use alloc::vec::Vec;

use abi::fs::{BLOCK_SIZE, NAME_MAX, SECTOR_SIZE, SECTORS_PER_BLOCK};
use abi::layout::PAGE_SIZE;

use super::{Failure, Test, TestResult};
use crate::drivers::block::{self, BlockDevice, BlockError};
use crate::mm::frame::{self, Frame, Pool, Zero};
use crate::vm::swap;
use crate::{check, check_eq, fs, thread};

pub const TESTS: &[Test] = &[
    Test {
        name: "fs_disk_sectors_round_trip",
        run: fs_disk_sectors_round_trip,
    },
    Test {
        name: "swap_disk_pages_round_trip",
        run: swap_disk_pages_round_trip,
    },
    Test {
        name: "bad_request_fails_cleanly",
        run: bad_request_fails_cleanly,
    },
    Test {
        name: "disk_ids_and_interrupts",
        run: disk_ids_and_interrupts,
    },
    Test {
        name: "fs_create_read_write",
        run: fs_create_read_write,
    },
    Test {
        name: "fs_names_and_directory_size",
        run: fs_names_and_directory_size,
    },
    Test {
        name: "fs_independent_positions",
        run: fs_independent_positions,
    },
    Test {
        name: "fs_remove_while_open",
        run: fs_remove_while_open,
    },
    Test {
        name: "fs_deny_write",
        run: fs_deny_write,
    },
    Test {
        name: "fs_writes_reach_the_disk_at_close",
        run: fs_writes_reach_the_disk_at_close,
    },
    Test {
        name: "fs_put_file_is_uppercased",
        run: fs_put_file_is_uppercased,
    },
];

fn fs_disk() -> Result<&'static BlockDevice, Failure> {
    block::fs_disk().ok_or_else(|| fail("no file-system disk attached"))
}

fn fail(message: &str) -> Failure {
    let mut f = Failure::new();
    let _ = core::fmt::Write::write_str(&mut f, message);
    f
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// One sector and one whole page written to an unused block read back identically.
fn fs_disk_sectors_round_trip() -> TestResult {
    let disk = fs_disk()?;
    let block = fs::unused_blocks(1).ok_or_else(|| fail("no unused block"))?;
    let sector = block * SECTORS_PER_BLOCK;
    let one = pattern(SECTOR_SIZE as usize, 7);
    check_eq!(disk.write(sector + 3, &one), Ok(()));
    let mut back = vec![0u8; SECTOR_SIZE as usize];
    check_eq!(disk.read(sector + 3, &mut back), Ok(()));
    check!(back == one, "sector read back differs");
    let page = pattern(BLOCK_SIZE as usize, 9);
    check_eq!(disk.write(sector, &page), Ok(()));
    let mut back = vec![0u8; BLOCK_SIZE as usize];
    check_eq!(disk.read(sector, &mut back), Ok(()));
    check!(back == page, "page read back differs");
    // Leave the free block as the file system expects to find it: anything (it clears
    // blocks before use), but zeros keep the image tidy.
    check_eq!(disk.write(sector, &vec![0u8; BLOCK_SIZE as usize]), Ok(()));
    Ok(())
}

fn frame_words(f: Frame) -> &'static mut [u64] {
    // SAFETY: the test owns the frame while it uses this slice; the direct map covers it.
    unsafe { core::slice::from_raw_parts_mut(f.virt() as *mut u64, (PAGE_SIZE / 8) as usize) }
}

/// A frame written to a swap slot comes back into another frame (straight into the
/// frames); the VMM keeps the slot in use until its last holder lets go of it.
fn swap_disk_pages_round_trip() -> TestResult {
    let slots = swap::slot_count();
    check!(slots > 0, "no swap disk attached");
    check_eq!(
        block::swap_disk().map(|d| d.sectors()),
        Some(slots * SECTORS_PER_BLOCK)
    );
    let (out, back) = (
        frame::alloc(Pool::User, Zero::No),
        frame::alloc(Pool::User, Zero::Yes),
    );
    let (Some(out), Some(back)) = (out, back) else {
        return Err(fail("no user frames"));
    };
    let result = (|| {
        for (i, word) in frame_words(out).iter_mut().enumerate() {
            *word = ((i as u64) * 0x0101_0101_0101_0101) ^ 0xdead_beef;
        }
        let (free, total) = swap::slot_usage();
        check_eq!(total, slots);
        // One holder: free again once read back, and a second read is refused.
        let slot = swap::swap_out(out, 1).map_err(|_| fail("the VMM refused the page"))?;
        check_eq!(swap::slot_usage(), (free - 1, total));
        check_eq!(swap::swap_in(slot, back), Ok(()));
        check!(
            frame_words(back) == frame_words(out),
            "slot {slot} read back differs"
        );
        check_eq!(swap::slot_usage(), (free, total));
        check_eq!(swap::swap_in(slot, back), Err(swap::SwapError::Io));
        // Two holders (a page shared by fork): one reads it back, the other ends; and a
        // third, shared later, until it lets go.
        let slot = swap::swap_out(out, 2).map_err(|_| fail("the VMM refused the page"))?;
        frame_words(back).fill(0);
        check_eq!(swap::swap_in(slot, back), Ok(()));
        check!(
            frame_words(back) == frame_words(out),
            "slot {slot} read back differs"
        );
        swap::share_slot(slot);
        swap::release_slot(slot);
        check_eq!(swap::slot_usage(), (free - 1, total));
        swap::release_slot(slot);
        check_eq!(swap::slot_usage(), (free, total));
        Ok(())
    })();
    frame::free(out);
    frame::free(back);
    result
}

/// A request beyond the end of the disk gets an error from the device (the VMM answers it
/// with an error status), and the disk keeps working afterwards.
fn bad_request_fails_cleanly() -> TestResult {
    let disk = fs_disk()?;
    let mut buf = vec![0u8; SECTOR_SIZE as usize];
    check_eq!(
        disk.read(disk.sectors(), &mut buf),
        Err(BlockError::OutOfRange)
    );
    check_eq!(
        disk.read_unchecked(disk.sectors(), &mut buf),
        Err(BlockError::Device)
    );
    check_eq!(
        disk.read_unchecked(u64::MAX / SECTOR_SIZE, &mut buf),
        Err(BlockError::Device)
    );
    check_eq!(disk.read(0, &mut buf), Ok(()));
    check_eq!(
        u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8])),
        abi::fs::FS_MAGIC
    );
    Ok(())
}

/// Each disk reports the identifier the VMM gave it, and completions raise interrupts when
/// asked to (the driver normally polls without them).
fn disk_ids_and_interrupts() -> TestResult {
    let disk = fs_disk()?;
    let (id, len) = disk.device_id().map_err(|_| fail("GET_ID failed"))?;
    check_eq!(&id[..len], b"vmm-fs-disk");
    let swap = block::swap_disk().ok_or_else(|| fail("no swap disk"))?;
    let (id, len) = swap.device_id().map_err(|_| fail("GET_ID failed"))?;
    check_eq!(&id[..len], b"vmm-swap-disk");
    let before = disk.interrupts();
    let mut buf = vec![0u8; SECTOR_SIZE as usize];
    disk.set_interrupts(true);
    let read = disk.read(0, &mut buf);
    disk.set_interrupts(false);
    check_eq!(read, Ok(()));
    // The request ran with interrupts off; the interrupt arrives once they are on again,
    // which on hosts that emulate ring 0 can take a while (PVM injects pending interrupts
    // at its own pace). Wait up to 10 ticks.
    for _ in 0..10 {
        if disk.interrupts() > before {
            break;
        }
        thread::sleep(1);
    }
    check!(
        disk.interrupts() > before,
        "no interrupt within 10 ticks of a request"
    );
    Ok(())
}

/// Create, open, read zeros, write, read back, and the end-of-file rules.
fn fs_create_read_write() -> TestResult {
    check!(fs::create(b"t-basic", 1000), "create failed");
    check!(!fs::create(b"t-basic", 10), "created an existing name");
    let mut f = fs::open(b"t-basic").ok_or_else(|| fail("open failed"))?;
    check_eq!(f.length(), 1000);
    let mut buf = vec![0xffu8; 1200];
    check_eq!(f.read(&mut buf), 1000);
    check!(
        buf[..1000].iter().all(|&b| b == 0),
        "new file not zero-filled"
    );
    check_eq!(f.tell(), 1000);
    check_eq!(f.read(&mut buf), 0);
    let data = pattern(600, 3);
    f.seek(100);
    check_eq!(f.write(&data), 600);
    check_eq!(f.tell(), 700);
    f.seek(990);
    // Writes stop at the end of the file.
    check_eq!(f.write(&data), 10);
    f.seek(1000);
    check_eq!(f.write(&data), 0);
    f.seek(5000);
    check_eq!((f.tell(), f.read(&mut buf)), (5000, 0));
    let mut back = vec![0u8; 600];
    check_eq!(f.read_at(&mut back, 100), 600);
    check!(back == data, "data read back differs");
    check_eq!(f.read_at(&mut back[..1], 99), 1);
    check_eq!(back[0], 0);
    drop(f);
    check!(fs::remove(b"t-basic"), "remove failed");
    check!(!fs::remove(b"t-basic"), "removed twice");
    check!(fs::open(b"t-basic").is_none(), "opened a removed file");
    Ok(())
}

/// Names of 1-14 bytes work, others fail; the directory holds at least 64 files; a file
/// larger than the free space cannot be created.
fn fs_names_and_directory_size() -> TestResult {
    check!(!fs::create(b"", 1), "created an empty name");
    check!(
        !fs::create(&[b'x'; NAME_MAX + 1], 1),
        "created a 15-byte name"
    );
    check!(fs::create(&[b'x'; NAME_MAX], 1), "14-byte name refused");
    check!(fs::remove(&[b'x'; NAME_MAX]), "remove failed");
    let free = fs::free_blocks();
    check!(
        !fs::create(b"t-huge", (free + 1) * BLOCK_SIZE),
        "created a file larger than the disk"
    );
    let files_before = fs::file_count();
    let name = |i: usize| alloc::format!("t-dir-{i}").into_bytes();
    for i in 0..64 {
        check!(fs::create(&name(i), 0), "create number {i} failed");
    }
    check_eq!(fs::file_count(), files_before + 64);
    for i in 0..64 {
        check!(fs::remove(&name(i)), "remove number {i} failed");
    }
    check_eq!(fs::free_blocks(), free);
    Ok(())
}

/// Two handles on one file have their own positions.
fn fs_independent_positions() -> TestResult {
    check!(fs::create(b"t-pos", 10), "create failed");
    let mut a = fs::open(b"t-pos").ok_or_else(|| fail("open a"))?;
    let mut b = fs::open(b"t-pos").ok_or_else(|| fail("open b"))?;
    check_eq!(a.write(b"abcde"), 5);
    check_eq!((a.tell(), b.tell()), (5, 0));
    let mut buf = [0u8; 3];
    check_eq!(b.read(&mut buf), 3);
    check_eq!(&buf, b"abc");
    let c = b.duplicate();
    check_eq!(c.tell(), 3);
    drop((a, b, c));
    check!(fs::remove(b"t-pos"), "remove failed");
    Ok(())
}

/// A removed file stays readable through open handles; its name is free at once; its
/// blocks come back only when the last handle closes.
fn fs_remove_while_open() -> TestResult {
    let free = fs::free_blocks();
    check!(fs::create(b"t-rm", 3 * BLOCK_SIZE), "create failed");
    let mut f = fs::open(b"t-rm").ok_or_else(|| fail("open"))?;
    let data = pattern(3 * BLOCK_SIZE as usize, 5);
    check_eq!(f.write(&data), data.len());
    check!(fs::remove(b"t-rm"), "remove failed");
    check!(fs::open(b"t-rm").is_none(), "removed name still opens");
    check!(fs::create(b"t-rm", 10), "name not reusable");
    let mut back = vec![0u8; data.len()];
    check_eq!(f.read_at(&mut back, 0), data.len());
    check!(back == data, "removed file's data changed");
    check_eq!(fs::free_blocks(), free - 4);
    drop(f);
    check_eq!(fs::free_blocks(), free - 1);
    check!(fs::remove(b"t-rm"), "remove failed");
    check_eq!(fs::free_blocks(), free);
    Ok(())
}

/// While one handle denies writes, writes through any handle return 0; allowing them again
/// (or closing the denying handle) restores writes.
fn fs_deny_write() -> TestResult {
    check!(fs::create(b"t-deny", 8), "create failed");
    let mut exe = fs::open(b"t-deny").ok_or_else(|| fail("open"))?;
    let mut other = fs::open(b"t-deny").ok_or_else(|| fail("open"))?;
    exe.deny_write();
    exe.deny_write();
    check_eq!(other.write(b"x"), 0);
    check_eq!(exe.write(b"x"), 0);
    exe.allow_write();
    check_eq!(other.write(b"x"), 1);
    exe.deny_write();
    check_eq!(other.write(b"y"), 0);
    drop(exe);
    check_eq!(other.write(b"y"), 1);
    drop(other);
    check!(fs::remove(b"t-deny"), "remove failed");
    Ok(())
}

/// Data written to a file waits in the block cache and is on the disk once the file is
/// closed (write-behind); reads meanwhile see it.
fn fs_writes_reach_the_disk_at_close() -> TestResult {
    check!(fs::create(b"t-behind", 2000), "create failed");
    let mut f = fs::open(b"t-behind").ok_or_else(|| fail("open"))?;
    f.seek(1500);
    check_eq!(f.write(b"written behind"), 14);
    let (start, size) = f.extent();
    check_eq!(size, 2000);
    let disk = fs_disk()?;
    let mut sectors = vec![0u8; 2 * SECTOR_SIZE as usize];
    check_eq!(disk.read(start / SECTOR_SIZE + 2, &mut sectors), Ok(()));
    check_eq!(&sectors[1500 - 1024..1514 - 1024], &[0u8; 14]);
    let mut back = [0u8; 14];
    check_eq!(f.read_at(&mut back, 1500), 14);
    check_eq!(&back, b"written behind");
    drop(f);
    check_eq!(disk.read(start / SECTOR_SIZE + 2, &mut sectors), Ok(()));
    check_eq!(&sectors[1500 - 1024..1514 - 1024], b"written behind");
    check!(fs::remove(b"t-behind"), "remove failed");
    Ok(())
}

/// The end-to-end tests put a file named `selftest.io` on the disk and check after the run
/// that it came back uppercased. Without it, the test makes its own and checks the result.
fn fs_put_file_is_uppercased() -> TestResult {
    let own = fs::open(b"selftest.io").is_none();
    if own {
        check!(fs::create(b"selftest.io", 5), "create failed");
        let mut f = fs::open(b"selftest.io").ok_or_else(|| fail("open"))?;
        check_eq!(f.write(b"hello"), 5);
    }
    let mut f = fs::open(b"selftest.io").ok_or_else(|| fail("open"))?;
    let mut data = vec![0u8; f.length() as usize];
    check_eq!(f.read(&mut data), data.len());
    data.make_ascii_uppercase();
    check_eq!(f.write_at(&data, 0), data.len());
    if own {
        let mut back = [0u8; 5];
        check_eq!(f.read_at(&mut back, 0), 5);
        check_eq!(&back, b"HELLO");
        drop(f);
        check!(fs::remove(b"selftest.io"), "remove failed");
    }
    Ok(())
}
