//! The VMM: boots the guest kernel on KVM and reports how the run ended.
//!
//! ```text
//! cli.rs          the command line (clap)
//! run.rs          one `vmm run`: disks, machine, copying files out
//! storage.rs      the run's disks: fs image (fresh or --disk), swap file, --put/--get
//! machine.rs      builds a machine from a config and runs it (vCPU thread + watchdog)
//! seccomp.rs      the system-call filters of the VMM's threads
//! loader.rs       kernel ELF checks and loading
//! boot_info.rs    the BootInfo block handed to the kernel
//! disk/           host-side tools for the guest's file-system disk image (`vmm disk`)
//! arch/x86_64/    boot page tables, GDT, long-mode registers
//! vstate/         /dev/kvm, guest memory, the VM, the vCPU run loop
//! devices/        the bus and one file per device
//! stats/          the run's counters: stats page, VM exits, reports, series, plot, sweep
//! ```
//! Only `main.rs` turns an outcome or error into an exit status.

pub mod arch;
pub mod boot_info;
pub mod cli;
pub mod devices;
pub mod disk;
pub mod gdb;
pub mod loader;
pub mod machine;
pub mod run;
pub mod seccomp;
pub mod stats;
pub mod storage;
#[cfg(test)]
mod testutil;
pub mod vstate;

use std::time::Duration;

use vstate::vcpu::VcpuFault;

/// Exit status for a run stopped by `--timeout` (as timeout(1) uses).
pub const EXIT_TIMEOUT: u8 = 124;
/// Exit status for any failure of the VMM or of the guest kernel itself.
pub const EXIT_VMM_FAILURE: u8 = 125;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest powered off with this status.
    PowerOff(i32),
    /// The timeout passed first.
    Timeout(Duration),
    /// The guest kernel panicked.
    GuestPanic(String),
    /// The vCPU could not go on (triple fault, KVM error).
    Fault(VcpuFault),
    /// The VMM got this signal (SIGINT or SIGTERM) and stopped the guest.
    Interrupted(i32),
}

impl Outcome {
    /// The VMM's exit status for this outcome: the guest's status (low byte, so -1 is 255),
    /// 124 for a timeout, 125 for a failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::PowerOff(status) => *status as u8,
            Outcome::Timeout(_) => EXIT_TIMEOUT,
            Outcome::GuestPanic(_) | Outcome::Fault(_) => EXIT_VMM_FAILURE,
            // As a shell reports a command killed by the signal.
            Outcome::Interrupted(signal) => 128u8.wrapping_add(*signal as u8),
        }
    }

    /// The line to print on stderr (after `vmm: `), if any.
    pub fn message(&self) -> Option<String> {
        match self {
            Outcome::PowerOff(_) => None,
            Outcome::Timeout(limit) => Some(format!("timeout after {} s", limit.as_secs())),
            Outcome::GuestPanic(message) => Some(format!("guest kernel panic: {message}")),
            Outcome::Fault(fault) => Some(fault.to_string()),
            Outcome::Interrupted(signal) => Some(format!(
                "stopped the guest on {}; --get files and statistics are written as usual",
                signal_name(*signal)
            )),
        }
    }
}

/// `SIGINT`, `SIGTERM`, or `signal N`.
fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(Outcome::PowerOff(0).exit_code(), 0);
        assert_eq!(Outcome::PowerOff(-1).exit_code(), 255);
        assert_eq!(Outcome::PowerOff(256 + 3).exit_code(), 3);
        assert_eq!(Outcome::Timeout(Duration::from_secs(2)).exit_code(), 124);
        assert_eq!(Outcome::GuestPanic("x".into()).exit_code(), 125);
        assert_eq!(Outcome::Interrupted(libc::SIGINT).exit_code(), 130);
        assert_eq!(Outcome::Interrupted(libc::SIGTERM).exit_code(), 143);
        assert_eq!(
            Outcome::Fault(VcpuFault::TripleFault(String::new())).exit_code(),
            125
        );
    }

    #[test]
    fn messages() {
        assert_eq!(Outcome::PowerOff(3).message(), None);
        assert_eq!(
            Outcome::Timeout(Duration::from_secs(7)).message().unwrap(),
            "timeout after 7 s"
        );
        assert_eq!(
            Outcome::GuestPanic("oops".into()).message().unwrap(),
            "guest kernel panic: oops"
        );
        assert_eq!(
            Outcome::Interrupted(libc::SIGTERM).message().unwrap(),
            "stopped the guest on SIGTERM; --get files and statistics are written as usual"
        );
        let fault = VcpuFault::UnexpectedExit("Hlt".into());
        assert_eq!(
            Outcome::Fault(fault).message().unwrap(),
            "unexpected vCPU exit: Hlt"
        );
    }
}
