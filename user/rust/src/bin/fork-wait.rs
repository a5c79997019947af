//! fork and wait: the child gets a copy of memory (its stores do not reach the parent),
//! its exit status reaches the parent once, and only direct children can be waited for
//! (the child passes its own child's pid back in the file `gpid`). Nothing is printed
//! between a fork and the wait that follows it, so the output order is fixed.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use ulib::{check, close, create, exit, fail, fork, msg, open, read, wait, write};

ulib::entry!("fork-wait", main);

static SHARED: AtomicU32 = AtomicU32::new(1);

fn main(_args: &[&str]) -> i32 {
    msg!("begin");
    if !create(c"gpid", 4) {
        fail!("create gpid");
    }
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
        let fd = open(c"gpid");
        if write(fd, &grandchild.to_le_bytes()) != 4 {
            fail!("write gpid");
        }
        exit(7);
    }
    if pid < 0 {
        fail!("fork");
    }
    check!(wait(pid) == 7, "wait(child) = 7");
    check!(wait(pid) == -1, "wait(child) again returns -1");
    let fd = open(c"gpid");
    let mut bytes = [0u8; 4];
    if read(fd, &mut bytes) != 4 {
        fail!("read gpid");
    }
    close(fd);
    let grandchild = i32::from_le_bytes(bytes);
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
