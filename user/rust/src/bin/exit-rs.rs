//! `main`'s return value becomes the exit status through ulib's entry code.
#![no_std]
#![no_main]

ulib::entry!("exit-rs", main);

fn main(_args: &[&str]) -> i32 {
    ulib::msg!("returning 7 from main");
    7
}
