//! System call wrappers, one per call of guest-abi §4, over the raw `syscall` instruction.
//!
//! Register use (§4): number in `rax`, arguments in `rdi, rsi, rdx, r10, r8, r9`, result in
//! `rax`; the kernel clobbers `rcx` and `r11` and preserves everything else. Results that the
//! ABI types as `int` are the low 32 bits of `rax`; `bool` results are "low 32 bits non-zero".

use core::ffi::CStr;

/// System call numbers (guest-abi §4), from the contract crate.
pub use abi::syscall as nr;

/// The `syscall` instruction with up to six arguments.
pub mod raw {
    use core::arch::asm;

    /// Issues system call `nr` with arguments `a`..`f` and returns `rax`.
    ///
    /// # Safety
    /// Pointer arguments are read or written by the kernel as the call defines; a bad pointer
    /// makes the kernel kill the process (which is sound, but ends the program).
    #[inline(always)]
    pub unsafe fn syscall6(nr: u64, a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> u64 {
        let ret;
        // SAFETY: the kernel preserves every register but rax, rcx and r11 (guest-abi §4);
        // memory effects are the caller's contract.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") nr => ret,
                in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d, in("r8") e, in("r9") f,
                lateout("rcx") _, lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }

    /// [`syscall6`] with three arguments.
    ///
    /// # Safety
    /// As [`syscall6`].
    #[inline(always)]
    pub unsafe fn syscall3(nr: u64, a: u64, b: u64, c: u64) -> u64 {
        let ret;
        // SAFETY: as in `syscall6`.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") nr => ret,
                in("rdi") a, in("rsi") b, in("rdx") c,
                lateout("rcx") _, lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }
}

fn call(nr: u64, a: u64, b: u64, c: u64) -> u64 {
    // SAFETY: only called below with pointers derived from live references of the right size
    // and mutability, or with no pointers.
    unsafe { raw::syscall3(nr, a, b, c) }
}

fn ptr(s: &CStr) -> u64 {
    s.as_ptr() as u64
}

/// Powers the machine off at once; no exit line is printed.
pub fn halt() -> ! {
    call(nr::HALT, 0, 0, 0);
    unreachable_loop()
}

/// Ends the process with `status`.
pub fn exit(status: i32) -> ! {
    call(nr::EXIT, status as i64 as u64, 0, 0);
    unreachable_loop()
}

/// If the kernel returned from `halt`/`exit` (a kernel bug), spin rather than run off.
fn unreachable_loop() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Copies the process; the child is named `name`. Child pid in the parent, 0 in the child,
/// -1 on failure.
pub fn fork(name: &CStr) -> i32 {
    call(nr::FORK, ptr(name), 0, 0) as i32
}

/// Replaces the program with `cmdline`; returns only if the kernel breaks the ABI (on
/// failure the process exits with -1).
pub fn exec(cmdline: &CStr) -> i32 {
    call(nr::EXEC, ptr(cmdline), 0, 0) as i32
}

/// Waits for direct child `pid`; its exit status, or -1.
pub fn wait(pid: i32) -> i32 {
    call(nr::WAIT, pid as i64 as u64, 0, 0) as i32
}

/// Creates a zero-filled file of `size` bytes.
pub fn create(file: &CStr, size: u32) -> bool {
    call(nr::CREATE, ptr(file), size as u64, 0) as u32 != 0
}

/// Removes the name `file`.
pub fn remove(file: &CStr) -> bool {
    call(nr::REMOVE, ptr(file), 0, 0) as u32 != 0
}

/// Opens `file`: a new fd, or -1.
pub fn open(file: &CStr) -> i32 {
    call(nr::OPEN, ptr(file), 0, 0) as i32
}

/// Size in bytes of the file open as `fd`.
pub fn filesize(fd: i32) -> i32 {
    call(nr::FILESIZE, fd as i64 as u64, 0, 0) as i32
}

/// Reads into `buf`: bytes read, 0 at end of file, -1 on a bad fd.
pub fn read(fd: i32, buf: &mut [u8]) -> i32 {
    let (p, n) = (buf.as_mut_ptr() as u64, buf.len() as u32 as u64);
    call(nr::READ, fd as i64 as u64, p, n) as i32
}

/// Writes `buf`: bytes written.
pub fn write(fd: i32, buf: &[u8]) -> i32 {
    let (p, n) = (buf.as_ptr() as u64, buf.len() as u32 as u64);
    call(nr::WRITE, fd as i64 as u64, p, n) as i32
}

/// Sets the position of `fd`.
pub fn seek(fd: i32, pos: u32) {
    call(nr::SEEK, fd as i64 as u64, pos as u64, 0);
}

/// Current position of `fd`.
pub fn tell(fd: i32) -> u32 {
    call(nr::TELL, fd as i64 as u64, 0, 0) as u32
}

/// Closes `fd`.
pub fn close(fd: i32) {
    call(nr::CLOSE, fd as i64 as u64, 0, 0);
}

/// Maps `len` bytes of the file open as `fd`, from `off`, at `addr` (guest-abi §6). Returns
/// `addr`, or null on failure. No memory is touched by the call itself.
pub fn mmap(addr: usize, len: usize, writable: bool, fd: i32, off: i64) -> *mut u8 {
    // SAFETY: mmap dereferences no user pointer; the mapping it makes is the caller's to use.
    let r = unsafe {
        raw::syscall6(
            nr::MMAP,
            addr as u64,
            len as u64,
            writable as u64,
            fd as i64 as u64,
            off as u64,
            0,
        )
    };
    r as *mut u8
}

/// Unmaps the mapping that `mmap` returned at `addr`.
pub fn munmap(addr: *mut u8) {
    call(nr::MUNMAP, addr as u64, 0, 0);
}

/// Makes `new` a copy of `old` sharing its position; `new`, or -1 if `old` is invalid.
pub fn dup2(old: i32, new: i32) -> i32 {
    call(nr::DUP2, old as i64 as u64, new as i64 as u64, 0) as i32
}

/// Unsupported (guest-abi §4): returns false.
pub fn chdir(dir: &CStr) -> bool {
    call(nr::CHDIR, ptr(dir), 0, 0) as u32 != 0
}

/// Unsupported: returns false.
pub fn mkdir(dir: &CStr) -> bool {
    call(nr::MKDIR, ptr(dir), 0, 0) as u32 != 0
}

/// Unsupported: returns false. `name` receives a directory entry name on success.
pub fn readdir(fd: i32, name: &mut [u8; 15]) -> bool {
    call(nr::READDIR, fd as i64 as u64, name.as_mut_ptr() as u64, 0) as u32 != 0
}

/// Unsupported: returns false.
pub fn isdir(fd: i32) -> bool {
    call(nr::ISDIR, fd as i64 as u64, 0, 0) as u32 != 0
}

/// Unsupported: returns -1.
pub fn inumber(fd: i32) -> i32 {
    call(nr::INUMBER, fd as i64 as u64, 0, 0) as i32
}

/// Unsupported: returns -1.
pub fn symlink(target: &CStr, linkpath: &CStr) -> i32 {
    call(nr::SYMLINK, ptr(target), ptr(linkpath), 0) as i32
}

/// Unsupported: returns -1.
pub fn mount(path: &CStr, chan_no: i32, dev_no: i32) -> i32 {
    call(
        nr::MOUNT,
        ptr(path),
        chan_no as i64 as u64,
        dev_no as i64 as u64,
    ) as i32
}

/// Unsupported: returns -1.
pub fn umount(path: &CStr) -> i32 {
    call(nr::UMOUNT, ptr(path), 0, 0) as i32
}

/// `int 0x42` (guest-abi.md §4): the kernel-virtual address of the frame that backs the page
/// of user address `addr`, or 0 if it has no frame now. Shows what the kernel did with a
/// page (lazy loading, copy-on-write sharing); its round trip is the bare cost of entering
/// the kernel.
pub fn int42(addr: u64) -> u64 {
    let out: u64;
    // SAFETY: `int 0x42` only replaces rax (guest-abi.md §4).
    unsafe { core::arch::asm!("int 0x42", inout("rax") addr => out) };
    out
}

/// The time-stamp counter (benchmarks time themselves in cycles).
pub fn cycles() -> u64 {
    // SAFETY: rdtsc only reads a counter (allowed in ring 3 here).
    unsafe { core::arch::x86_64::_rdtsc() }
}
