//! Process benchmarks (`make bench`), in TSC cycles measured in user mode:
//! - a null system call (`tell` on a bad descriptor: entry, dispatch, exit);
//! - an `int 0x42` round trip (the bare cost of entering and leaving the kernel);
//! - fork + exec of a program that does nothing + wait.
//!
//! Prints `bench NAME: N cycles` lines; the harness converts them to time.
#![no_std]
#![no_main]

use ulib::{exec, exit, fork, println, tell, wait};

ulib::entry!("bench-proc", main);

const SYSCALLS: u64 = 2000;
const SPAWNS: u64 = 10;

/// The time-stamp counter.
fn cycles() -> u64 {
    // SAFETY: rdtsc only reads a counter (allowed in ring 3 here).
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn int42(addr: u64) -> u64 {
    let out: u64;
    // SAFETY: `int 0x42` only replaces rax (guest-abi.md §4).
    unsafe { core::arch::asm!("int 0x42", inout("rax") addr => out) };
    out
}

fn main(_args: &[&str]) -> i32 {
    let t0 = cycles();
    for _ in 0..SYSCALLS {
        tell(-1);
    }
    let t1 = cycles();
    println!("bench null_syscall: {} cycles", (t1 - t0) / SYSCALLS);

    let here = main as *const () as u64;
    let t0 = cycles();
    for _ in 0..SYSCALLS {
        int42(here);
    }
    let t1 = cycles();
    println!("bench int42_round_trip: {} cycles", (t1 - t0) / SYSCALLS);

    let t0 = cycles();
    for _ in 0..SPAWNS {
        let pid = fork(c"bench-child");
        if pid == 0 {
            exec(c"bench-true");
            exit(1);
        }
        wait(pid);
    }
    let t1 = cycles();
    println!("bench fork_exec_wait: {} cycles", (t1 - t0) / SPAWNS);
    0
}
