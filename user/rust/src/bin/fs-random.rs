//! Random access: 300 writes of up to 64 bytes at pseudo-random offsets into an 8 KiB
//! file, mirrored in memory, then random and whole-file reads compared with the mirror.
#![no_std]
#![no_main]

use ulib::{check, create, fail, open, read, seek, write};
use user_programs::Lcg;

ulib::entry!("fs-random", main);

const SIZE: usize = 8192;

fn main(_args: &[&str]) -> i32 {
    let mut mirror = [0u8; SIZE];
    let mut rng = Lcg(2024);
    check!(create(c"rand", SIZE as u32), "create rand");
    let fd = open(c"rand");
    check!(fd > 1, "open rand");
    for _ in 0..300 {
        let pos = rng.below(SIZE as u32) as usize;
        let len = (rng.below(64) as usize + 1).min(SIZE - pos);
        let mut chunk = [0u8; 64];
        for b in &mut chunk[..len] {
            *b = rng.below(256) as u8;
        }
        seek(fd, pos as u32);
        if write(fd, &chunk[..len]) != len as i32 {
            fail!("write of {len} at {pos}");
        }
        mirror[pos..pos + len].copy_from_slice(&chunk[..len]);
    }
    ulib::msg!("300 random writes done");
    for _ in 0..300 {
        let pos = rng.below(SIZE as u32) as usize;
        let len = (rng.below(100) as usize + 1).min(SIZE - pos);
        let mut chunk = [0u8; 100];
        seek(fd, pos as u32);
        if read(fd, &mut chunk[..len]) != len as i32 || chunk[..len] != mirror[pos..pos + len] {
            fail!("read of {len} at {pos}");
        }
    }
    ulib::msg!("300 random reads match");
    let mut whole = [0u8; SIZE];
    seek(fd, 0);
    check!(read(fd, &mut whole) == SIZE as i32, "read the whole file");
    check!(whole == mirror, "it matches");
    0
}
