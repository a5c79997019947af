//! seccomp filters: once a thread has done its setup it may make only the system calls its
//! work needs (lists below, from tracing every kind of run: `strace -ff` on runs that
//! boot, page, swap, use files, stop on a timeout, a signal or a guest failure, and
//! sweep). The guest is untrusted: a bug in a device model it can reach should not hand
//! it the host's whole system-call surface.
//!
//! Each thread installs its own filter: the vCPU thread before its first `KVM_RUN`, the
//! console-input and statistics-series threads as they start, and the main thread of `vmm
//! run` once the vCPU runs (in a sweep it keeps building machines, so it stays unfiltered;
//! its machines' threads are filtered). A forbidden call raises SIGSYS, whose handler says
//! which call on which thread and exits with status 125. `--no-seccomp` turns the filters
//! off, for debugging only.

use std::cell::Cell;
use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// Which threads of a run get filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seccomp {
    /// None (`--no-seccomp`).
    Off,
    /// The machine's own threads (vCPU, console input, series), not the calling thread.
    Threads,
    /// Those, and the calling thread once the vCPU runs (`vmm run`).
    All,
}

/// The threads that get a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thread {
    Main,
    Vcpu,
    Stdin,
    Series,
}

impl Thread {
    fn name(self) -> &'static str {
        match self {
            Thread::Main => "main",
            Thread::Vcpu => "vcpu0",
            Thread::Stdin => "stdin",
            Thread::Series => "stats-series",
        }
    }

    /// The calls the thread makes once its filter is on.
    fn allowed(self) -> &'static [libc::c_long] {
        use libc::*;
        match self {
            Thread::Vcpu => &[
                // KVM_RUN and the register reads and writes of each exit.
                SYS_ioctl,
                // Disk and swap requests, console output.
                SYS_pread64,
                SYS_pwrite64,
                SYS_preadv,
                SYS_pwritev,
                SYS_write,
                SYS_writev,
                SYS_fsync,
                SYS_fdatasync,
                SYS_lseek,
                // The interrupt signal of the watchdog, and reading the thread's CPU time.
                SYS_rt_sigreturn,
                SYS_clock_gettime,
                // Handing the result to the watchdog and ending.
                SYS_futex,
                SYS_close,
                SYS_exit,
            ],
            Thread::Stdin => &[SYS_read, SYS_futex, SYS_exit],
            Thread::Series => &[
                SYS_write,
                SYS_writev,
                SYS_clock_gettime,
                SYS_clock_nanosleep,
                SYS_nanosleep,
                SYS_futex,
                SYS_close,
                SYS_exit,
            ],
            Thread::Main => &[
                // Waiting for the vCPU thread, stopping it, joining the others.
                SYS_futex,
                SYS_tgkill,
                SYS_rt_sigreturn,
                SYS_clock_gettime,
                SYS_clock_nanosleep,
                SYS_nanosleep,
                // Reports, the statistics document, `--get` files, dropping the machine and
                // the fresh disk image.
                SYS_write,
                SYS_writev,
                SYS_read,
                SYS_pread64,
                SYS_pwrite64,
                SYS_openat,
                SYS_close,
                SYS_newfstatat,
                SYS_fstat,
                SYS_statx,
                SYS_lseek,
                SYS_ftruncate,
                SYS_fsync,
                SYS_fdatasync,
                SYS_fcntl,
                SYS_unlink,
                SYS_unlinkat,
                SYS_rename,
                SYS_renameat,
                SYS_ioctl,
                SYS_exit_group,
            ],
        }
    }
}

/// Calls every thread may make: memory for the allocator, what a Rust panic needs to say
/// what went wrong and abort, what the SIGSYS handler needs to report, and thread exit.
const COMMON: &[libc::c_long] = &[
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_mprotect,
    libc::SYS_brk,
    libc::SYS_getrandom,
    libc::SYS_sched_yield,
    libc::SYS_sigaltstack,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_tgkill,
    libc::SYS_write,
    libc::SYS_exit_group,
];

thread_local! {
    /// The filtered thread's name, for the SIGSYS report (const-initialised: safe to read
    /// in a signal handler).
    static NAME: Cell<&'static str> = const { Cell::new("unfiltered") };
}

/// Installs `thread`'s filter on the calling thread. An error means the host refuses
/// seccomp: the message says so and how to go on.
pub fn install(thread: Thread) -> Result<(), String> {
    install_report_handler();
    let program = program(thread)?;
    NAME.with(|n| n.set(thread.name()));
    seccompiler::apply_filter(&program).map_err(|e| {
        format!(
            "cannot install the seccomp filter of the {} thread: {e}; run with --no-seccomp on a host without seccomp",
            thread.name()
        )
    })
}

/// `thread`'s filter: its calls and the common ones allowed, any other one trapped.
fn program(thread: Thread) -> Result<BpfProgram, String> {
    let rules: BTreeMap<i64, Vec<_>> = thread
        .allowed()
        .iter()
        .chain(COMMON)
        .map(|&call| (call, Vec::new()))
        .collect();
    SeccompFilter::new(
        rules,
        SeccompAction::Trap,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .and_then(TryInto::try_into)
    .map_err(|e| {
        format!(
            "cannot build the seccomp filter of the {} thread: {e}",
            thread.name()
        )
    })
}

/// For a thread of the machine: installs its filter, or ends the VMM with the reason
/// (the thread cannot return an error to anyone who would wait for it).
pub fn install_or_exit(thread: Thread) {
    if let Err(message) = install(thread) {
        eprintln!("vmm: {message}");
        std::process::exit(i32::from(crate::EXIT_VMM_FAILURE));
    }
}

/// Installs the SIGSYS handler (process-wide; installing it again is harmless).
fn install_report_handler() {
    // SAFETY: a plain sigaction with a handler that only writes to stderr and exits.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigsys as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut());
    }
}

/// The SIGSYS handler: `vmm: seccomp: ...` on stderr, exit status 125. Only
/// async-signal-safe work: no allocation, no locks.
extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: for SIGSYS the kernel fills `si_syscall` (an int at offset 24 of siginfo_t on
    // x86-64: after si_signo, si_errno, si_code and the padding, and si_call_addr).
    let call = unsafe { info.cast::<u8>().add(24).cast::<i32>().read() };
    let name = NAME.with(Cell::get);
    let mut text = [0u8; 256];
    let mut len = 0;
    for part in [
        b"vmm: seccomp: the ".as_slice(),
        name.as_bytes(),
        b" thread made system call ",
        number(call, &mut [0u8; 12]),
        b", which its filter forbids: a bug in the VMM (please report it); --no-seccomp runs without the filters\n",
    ] {
        let n = part.len().min(text.len() - len);
        text[len..len + n].copy_from_slice(&part[..n]);
        len += n;
    }
    // SAFETY: write(2) and _exit(2) are async-signal-safe and allowed in every filter.
    unsafe {
        libc::write(2, text.as_ptr().cast(), len);
        libc::_exit(i32::from(crate::EXIT_VMM_FAILURE));
    }
}

/// `n` in decimal, in `buf`.
fn number(n: i32, buf: &mut [u8; 12]) -> &[u8] {
    let mut at = buf.len();
    let mut v = i64::from(n).unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_decimal() {
        assert_eq!(number(0, &mut [0; 12]), b"0");
        assert_eq!(number(110, &mut [0; 12]), b"110");
        assert_eq!(number(-7, &mut [0; 12]), b"-7");
        assert_eq!(number(i32::MIN, &mut [0; 12]), b"-2147483648");
    }

    #[test]
    fn every_filter_builds() {
        for thread in [Thread::Main, Thread::Vcpu, Thread::Stdin, Thread::Series] {
            assert!(program(thread).is_ok(), "{thread:?}");
        }
    }
}
