//! `chain N`: a fork + exec chain N deep. Each level forks a child named `chainK` that
//! execs `chain K` (K = N - 1), waits for it and exits with the child's status + 1, so
//! `chain 15` exits with 15. Needs itself on the disk (--put).
#![no_std]
#![no_main]

use ulib::{cformat, check, exec, fail, fork, msg, wait};

ulib::entry!("chain", main);

fn main(args: &[&str]) -> i32 {
    let depth: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0);
    msg!("depth {depth}");
    if depth == 0 {
        return 0;
    }
    let name = cformat!(16; "chain{}", depth - 1);
    let pid = fork(name.as_cstr());
    if pid == 0 {
        exec(cformat!(32; "chain {}", depth - 1).as_cstr());
        fail!("exec returned");
    }
    if pid < 0 {
        fail!("fork at depth {depth}");
    }
    let status = wait(pid);
    check!(
        status == depth as i32 - 1,
        "depth {depth}: child exited with {status}"
    );
    status + 1
}
