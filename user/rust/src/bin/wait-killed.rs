//! A child killed by the kernel (null store) exits with -1, and that is what wait returns.
#![no_std]
#![no_main]

use ulib::{check, fork, msg, wait};

ulib::entry!("wait-killed", main);

fn main(_args: &[&str]) -> i32 {
    msg!("begin");
    let pid = fork(c"victim");
    if pid == 0 {
        // SAFETY: deliberately faults (a store to page 0); the kernel kills this child.
        unsafe { core::arch::asm!("mov byte ptr [0], 1", options(nostack)) };
        ulib::fail!("null store did not kill the child");
    }
    check!(wait(pid) == -1, "wait(killed child) = -1");
    msg!("end");
    0
}
