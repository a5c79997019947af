//! Does nothing and exits 0: the child the process benchmark execs.
#![no_std]
#![no_main]

ulib::entry!("bench-true", main);

fn main(_args: &[&str]) -> i32 {
    0
}
