//! The calls this kernel does not support (16-21, 23, 24) fail with false or -1 and do not
//! kill the process.
#![no_std]
#![no_main]

use ulib::sys::{nr, raw};
use ulib::{check, msg};

ulib::entry!("unsupported", main);

fn main(_args: &[&str]) -> i32 {
    let name = c"dir".as_ptr() as u64;
    let mut entry = [0u8; 16];
    let calls: [(&str, u64, u64, u64); 8] = [
        ("chdir", nr::CHDIR, name, 0),
        ("mkdir", nr::MKDIR, name, 0),
        ("readdir", nr::READDIR, 1, entry.as_mut_ptr() as u64),
        ("isdir", nr::ISDIR, 1, 0),
        ("inumber", nr::INUMBER, 1, 0),
        ("symlink", nr::SYMLINK, name, name),
        ("mount", nr::MOUNT, name, 0),
        ("umount", nr::UMOUNT, name, 0),
    ];
    for (call, number, a, b) in calls {
        // SAFETY: the pointer arguments point to live buffers of the sizes the calls use.
        let r = unsafe { raw::syscall3(number, a, b, 0) } as u32;
        check!(r == 0 || r == u32::MAX, "{call} fails");
    }
    msg!("end");
    0
}
