//! System-call numbers of the user ABI (guest-abi.md §4), shared by the kernel and the Rust
//! user runtime. (The C runtime's assembly stubs in `user/c/syscall.S` spell the same
//! numbers; the end-to-end tests run both.)

pub const HALT: u64 = 0;
pub const EXIT: u64 = 1;
pub const FORK: u64 = 2;
pub const EXEC: u64 = 3;
pub const WAIT: u64 = 4;
pub const CREATE: u64 = 5;
pub const REMOVE: u64 = 6;
pub const OPEN: u64 = 7;
pub const FILESIZE: u64 = 8;
pub const READ: u64 = 9;
pub const WRITE: u64 = 10;
pub const SEEK: u64 = 11;
pub const TELL: u64 = 12;
pub const CLOSE: u64 = 13;
pub const MMAP: u64 = 14;
pub const MUNMAP: u64 = 15;
/// Not supported: returns false.
pub const CHDIR: u64 = 16;
/// Not supported: returns false.
pub const MKDIR: u64 = 17;
/// Not supported: returns false.
pub const READDIR: u64 = 18;
/// Not supported: returns false.
pub const ISDIR: u64 = 19;
/// Not supported: returns -1.
pub const INUMBER: u64 = 20;
/// Not supported: returns -1.
pub const SYMLINK: u64 = 21;
pub const DUP2: u64 = 22;
/// Not supported: returns -1.
pub const MOUNT: u64 = 23;
/// Not supported: returns -1.
pub const UMOUNT: u64 = 24;
