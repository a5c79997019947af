//! System calls (guest-abi.md §4).
//!
//! [`dispatch`] runs on the calling process's thread with the user registers in the trap
//! frame: number in `rax`, arguments in `rdi, rsi, rdx, r10, r8, r9`, result in `rax`.
//! Each handler returns the result, or [`Fault`] for a bad pointer, in which case the
//! process is killed with -1 after every local has been dropped.

pub mod usercopy;

use self::usercopy::Fault;
use abi::boot::TestHook;

use crate::arch::x86_64::fast::Verdict;
use crate::arch::x86_64::trap::TrapFrame;
use crate::drivers::sysctl;
use crate::proc::fd::Fd;
use crate::proc::{self, KILLED, Process};
use crate::{console, fs, vm};

/// System-call numbers (guest-abi.md §4), and how the unsupported ones answer.
mod nr {
    pub use abi::syscall::*;
    /// chdir, mkdir, readdir, isdir: unsupported, return false.
    pub const UNSUPPORTED_BOOL: [u64; 4] = [CHDIR, MKDIR, READDIR, ISDIR];
    /// inumber, symlink, mount, umount: unsupported, return -1.
    pub const UNSUPPORTED_INT: [u64; 4] = [INUMBER, SYMLINK, MOUNT, UMOUNT];
}

/// What a handler produced: a value for `rax`, or nothing (exec rewrote the frame).
type Outcome = Result<Option<u64>, Fault>;

/// Runs the system call in `frame` and stores its result. Never inlined into the trap
/// entry, which must stay free of the registers it saves.
#[inline(never)]
pub fn dispatch(frame: &mut TrapFrame) {
    crate::stats::bump(&crate::stats::page().syscalls);
    match handle(frame) {
        Ok(Some(value)) => frame.rax = value,
        Ok(None) => {}
        Err(Fault) => proc::exit(KILLED),
    }
}

/// [`dispatch`] for kernel code at CPL 3 (the fast mode's shim, `crate::dispatch`): a call
/// that blocks (a `wait` for a running child, a console read waiting for input) switches
/// threads through the shim; `halt` is left to ring 0 untouched (`Verdict::Ring0`: it
/// powers off from there); `exit`, and a bad argument that ends the process, end it and
/// its thread here.
pub fn dispatch_at_cpl3(frame: &mut TrapFrame) -> Verdict {
    if frame.rax == nr::HALT {
        return Verdict::Ring0;
    }
    crate::stats::bump(&crate::stats::page().syscalls);
    if frame.rax == nr::EXIT {
        proc::exit(int(frame.rdi) as i32);
    }
    match handle(frame) {
        Ok(Some(value)) => {
            frame.rax = value;
            Verdict::Resume
        }
        Ok(None) => Verdict::Resume,
        Err(Fault) => proc::exit(KILLED),
    }
}

fn ret(value: i64) -> Outcome {
    Ok(Some(value as u64))
}

fn boolean(value: bool) -> Outcome {
    Ok(Some(u64::from(value)))
}

/// An `int` argument (the upper half of the register is not part of it).
fn int(reg: u64) -> i64 {
    i64::from(reg as i32)
}

/// An `unsigned` argument.
fn unsigned(reg: u64) -> u64 {
    u64::from(reg as u32)
}

/// Always inlined: [`dispatch`] and [`dispatch_at_cpl3`] each get their own copy, as
/// `dispatch` had before the second caller (a call of its own cost classic mode's null
/// system call 5-8% on PVM).
#[inline(always)]
fn handle(frame: &mut TrapFrame) -> Outcome {
    let (a0, a1, a2) = (frame.rdi, frame.rsi, frame.rdx);
    let process = proc::current().expect("syscall: no process");
    process.syscall_rsp = frame.rsp;
    match frame.rax {
        nr::HALT => halt(),
        nr::EXIT => proc::exit(int(a0) as i32),
        nr::FORK => {
            let name = usercopy::string(process, a0)?.ok_or(Fault)?;
            ret(i64::from(proc::fork(&name, frame)))
        }
        nr::EXEC => {
            let cmdline = usercopy::string(process, a0)?.ok_or(Fault)?;
            match proc::exec(&cmdline, frame) {
                Ok(()) => Ok(None),
                Err(()) => Err(Fault),
            }
        }
        nr::WAIT => ret(i64::from(proc::wait(int(a0) as i32))),
        nr::CREATE => {
            let name = usercopy::string(process, a0)?;
            boolean(name.is_some_and(|n| fs::create(&n, unsigned(a1))))
        }
        nr::REMOVE => {
            let name = usercopy::string(process, a0)?;
            boolean(name.is_some_and(|n| fs::remove(&n)))
        }
        nr::OPEN => {
            let file = usercopy::string(process, a0)?.and_then(|n| fs::open(&n));
            ret(file.and_then(|f| process.fds.open(f)).unwrap_or(-1))
        }
        nr::FILESIZE => ret(match process.fds.get(int(a0)) {
            Some(Fd::File(f)) => f.lock().length() as i64,
            _ => -1,
        }),
        nr::READ => read(process, int(a0), a1, unsigned(a2)),
        nr::WRITE => write(process, int(a0), a1, unsigned(a2)),
        nr::SEEK => {
            if let Some(Fd::File(f)) = process.fds.get(int(a0)) {
                f.lock().seek(unsigned(a1));
            }
            Ok(Some(0))
        }
        nr::TELL => ret(match process.fds.get(int(a0)) {
            Some(Fd::File(f)) => f.lock().tell() as i64,
            _ => -1,
        }),
        nr::CLOSE => {
            process.fds.close(int(a0));
            Ok(Some(0))
        }
        nr::MMAP => {
            // The console's descriptors cannot be mapped, even if dup2 made them files.
            let fd = int(frame.r10);
            let file = match process.fds.get(fd) {
                Some(Fd::File(f)) if fd >= 2 => Some(f.lock().duplicate()),
                _ => None,
            };
            let writable = int(a2) != 0;
            Ok(Some(vm::mmap::map(
                &mut process.mem,
                a0,
                a1,
                writable,
                file,
                frame.r8,
            )))
        }
        nr::MUNMAP => {
            vm::mmap::unmap(&mut process.mem, a0);
            Ok(Some(0))
        }
        nr::DUP2 => ret(process.fds.dup2(int(a0), int(a1))),
        n if nr::UNSUPPORTED_BOOL.contains(&n) => {
            if crate::boot::info().test_hook == TestHook::SyscallPageFault as u32 {
                crate::arch::x86_64::trap::read_unmapped_address();
            }
            boolean(false)
        }
        n if nr::UNSUPPORTED_INT.contains(&n) => ret(-1),
        _ => ret(-1),
    }
}

/// `halt()`: the file system's cached writes go to the disk, then the machine powers off.
#[cold]
#[inline(never)]
fn halt() -> ! {
    fs::sync_before_power_off();
    sysctl::power_off(0)
}

/// `read(fd, buf, n)`: bytes read into the user buffer (straight into its frames for whole
/// sectors), 0 at end of file, -1 for a bad descriptor.
fn read(process: &mut Process, fd: i64, buf: u64, n: u64) -> Outcome {
    let file = match process.fds.get(fd) {
        Some(Fd::File(f)) => f.clone(),
        // Console input: waits until `n` bytes have arrived (as Pintos does).
        Some(Fd::Stdin) => {
            let mut chunks = usercopy::slices(process, buf, n as usize, true)?;
            for chunk in chunks.iter_mut() {
                for byte in chunk.iter_mut() {
                    *byte = console::read_byte();
                }
            }
            return ret(n as i64);
        }
        _ => return ret(-1),
    };
    // A buffer within one page (the usual small read) needs no list of chunks.
    if let Some(mut chunk) = usercopy::in_one_page(process, buf, n as usize, true)? {
        return ret(file.lock().read(&mut chunk) as i64);
    }
    let mut chunks = usercopy::slices(process, buf, n as usize, true)?;
    let mut file = file.lock();
    let mut total = 0;
    for chunk in chunks.iter_mut() {
        let len = chunk.len();
        let got = file.read(chunk);
        total += got;
        if got < len {
            break;
        }
    }
    ret(total as i64)
}

/// `write(fd, buf, n)`: bytes written; the console gets each call's bytes in one piece; a
/// file never grows; -1 for a bad descriptor.
fn write(process: &mut Process, fd: i64, buf: u64, n: u64) -> Outcome {
    let target = match process.fds.get(fd) {
        Some(Fd::File(f)) => Some(f.clone()),
        Some(Fd::Stdout) => None,
        _ => return ret(-1),
    };
    let chunks = usercopy::slices(process, buf, n as usize, false)?;
    match target {
        None => {
            console::write_all(chunks.iter().map(|c| &**c));
            ret(n as i64)
        }
        Some(file) => {
            let mut file = file.lock();
            let mut total = 0;
            for chunk in chunks.iter() {
                let wrote = file.write(chunk);
                total += wrote;
                if wrote < chunk.len() {
                    break;
                }
            }
            ret(total as i64)
        }
    }
}
