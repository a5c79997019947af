//! `halt` powers the machine off at once: no exit line follows.
#![no_std]
#![no_main]

ulib::entry!("halt", main);

fn main(_args: &[&str]) -> i32 {
    ulib::msg!("begin");
    ulib::halt();
}
