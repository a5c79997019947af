//! Console input (guest-abi.md §5): `read(0, buf, n)` waits until `n` bytes have arrived
//! from the VMM's standard input, then the program shows them. `read-stdin N` (at most 64).
#![no_std]
#![no_main]

use ulib::read;

ulib::entry!("read-stdin", main);

fn main(args: &[&str]) -> i32 {
    let n = args
        .get(1)
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(0)
        .min(64);
    let mut buf = [0u8; 64];
    let got = read(0, &mut buf[..n]);
    let text = core::str::from_utf8(&buf[..n]).unwrap_or("(not UTF-8)");
    ulib::msg!("read {got} bytes: '{text}'");
    0
}
