//! exec of a program that does not exist: the kernel prints `load: NAME: open failed` and
//! the exec'ing process exits with -1; first in a forked child, then in this process.
#![no_std]
#![no_main]

use ulib::{check, exec, fail, fork, msg, wait};

ulib::entry!("exec-missing", main);

fn main(_args: &[&str]) -> i32 {
    msg!("begin");
    let pid = fork(c"child");
    if pid == 0 {
        exec(c"no-such-prog arg1 arg2");
        fail!("exec returned in the child");
    }
    check!(wait(pid) == -1, "wait(child) = -1");
    msg!("exec missing here");
    exec(c"missing2");
    fail!("exec returned")
}
