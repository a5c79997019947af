//! The stack grows on demand: a 512 KiB array on the stack, filled and summed.
#![no_std]
#![no_main]

use core::hint::black_box;

use ulib::check;

ulib::entry!("stack-grow", main);

const LEN: usize = 512 * 1024;

#[inline(never)]
fn fill_and_sum() -> u64 {
    let mut big = [0u8; LEN];
    for (i, b) in big.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    black_box(&mut big);
    big.iter().map(|&b| b as u64).sum()
}

fn main(_args: &[&str]) -> i32 {
    let expected: u64 = (0..LEN).map(|i| (i % 251) as u64).sum();
    check!(fill_and_sum() == expected, "512 KiB on the stack");
    0
}
