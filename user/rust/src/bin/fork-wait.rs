//! fork and wait: the child gets a copy of memory (its stores do not reach the parent),
//! its exit status reaches the parent once, and only direct children can be waited for.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use ulib::{check, exit, fork, msg, wait};

ulib::entry!("fork-wait", main);

static SHARED: AtomicU32 = AtomicU32::new(1);

fn main(_args: &[&str]) -> i32 {
    msg!("begin");
    let mut local = 10u32;
    let pid = fork(c"child");
    if pid == 0 {
        SHARED.store(2, Ordering::Relaxed);
        local += 1;
        check!(
            SHARED.load(Ordering::Relaxed) == 2 && local == 11,
            "child changed its copies"
        );
        // A grandchild: the parent is not its parent, so waiting for it there fails.
        let grandchild = fork(c"grandchild");
        if grandchild == 0 {
            exit(5);
        }
        check!(wait(grandchild) == 5, "child waited for grandchild");
        exit(grandchild);
    }
    check!(pid > 0, "fork returned a pid");
    let grandchild = wait(pid);
    check!(grandchild > 0, "wait(child) returns its status");
    check!(wait(pid) == -1, "wait(child) again returns -1");
    check!(
        wait(grandchild) == -1,
        "wait(grandchild) returns -1: not our child"
    );
    check!(
        wait(-5) == -1 && wait(0x7fff_0000) == -1,
        "wait(bad pids) returns -1"
    );
    check!(
        SHARED.load(Ordering::Relaxed) == 1 && local == 10,
        "parent's memory unchanged"
    );
    msg!("end");
    0
}
