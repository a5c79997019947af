//! Forks a chain of processes (each `fkl` forks the next and waits) until fork fails, then
//! does it again: the second chain must reach about the same depth (within 2%), so nothing
//! leaked per process.
//! The number of `fkl: exit(N)` lines depends on the kernel's limits; the test harness
//! drops them and compares the rest.
#![no_std]
#![no_main]

use ulib::{check, exit, fork, msg, wait};

ulib::entry!("fork-limit", main);

/// Stop here even if fork never fails.
const CAP: i32 = 4000;

/// Forks one more level below this process; returns how many levels exist below it.
fn descend(level: i32) -> i32 {
    if level >= CAP {
        return 0;
    }
    let pid = fork(c"fkl");
    if pid == 0 {
        exit(descend(level + 1));
    }
    if pid < 0 {
        return 0;
    }
    let below = wait(pid);
    if below < 0 { 1 } else { below + 1 }
}

fn main(_args: &[&str]) -> i32 {
    let first = descend(0);
    msg!("fork failed eventually");
    check!(first >= 1, "at least one fork worked");
    let second = descend(0);
    // Within 2%: the kernel's allocators may keep a little more memory after the first
    // chain (heap fragmentation), but a leak of anything per process would cost far more.
    check!(second * 50 >= first * 49, "the second chain got as deep");
    0
}
