//! The VMM: boots the guest kernel on KVM and reports how the run ended.
//!
//! ```text
//! cli.rs          the command line (clap)
//! machine.rs      builds a machine from a config and runs it (vCPU thread + watchdog)
//! loader.rs       kernel ELF checks and loading
//! boot_info.rs    the BootInfo block handed to the kernel
//! arch/x86_64/    boot page tables, GDT, long-mode registers
//! vstate/         /dev/kvm, guest memory, the VM, the vCPU run loop
//! devices/        the bus and one file per device
//! ```
//! Only `main.rs` turns an outcome or error into an exit status.

pub mod arch;
pub mod boot_info;
pub mod cli;
pub mod devices;
pub mod loader;
pub mod machine;
pub mod vstate;

use std::time::Duration;

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
    /// The guest triple-faulted; the registers as text.
    TripleFault(String),
    /// KVM reported an internal error.
    InternalError {
        suberror: u32,
        rip: u64,
        data: Vec<u64>,
    },
    /// KVM could not enter the guest.
    FailEntry { reason: u64, rip: u64 },
    /// The vCPU exited for a reason this VMM does not handle.
    UnexpectedExit(String),
}

impl Outcome {
    /// The VMM's exit status for this outcome: the guest's status (low byte, so -1 is 255),
    /// 124 for a timeout, 125 for a failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::PowerOff(status) => *status as u8,
            Outcome::Timeout(_) => EXIT_TIMEOUT,
            _ => EXIT_VMM_FAILURE,
        }
    }

    /// The line to print on stderr (after `vmm: `), if any.
    pub fn message(&self) -> Option<String> {
        Some(match self {
            Outcome::PowerOff(_) => return None,
            Outcome::Timeout(limit) => format!("timeout after {} s", limit.as_secs()),
            Outcome::GuestPanic(message) => format!("guest kernel panic: {message}"),
            Outcome::TripleFault(registers) => format!("guest triple fault: {registers}"),
            Outcome::InternalError {
                suberror,
                rip,
                data,
            } => format!(
                "KVM internal error: suberror {suberror} ({}) at rip {rip:#x}, data {data:x?}; `dmesg | grep kvm` may say more",
                internal_error_name(*suberror)
            ),
            Outcome::FailEntry { reason, rip } => {
                format!(
                    "KVM could not enter the guest: hardware entry failure reason {reason:#x} at rip {rip:#x}"
                )
            }
            Outcome::UnexpectedExit(what) => format!("unexpected vCPU exit: {what}"),
        })
    }
}

/// Names of `KVM_INTERNAL_ERROR_*` suberrors.
fn internal_error_name(suberror: u32) -> &'static str {
    match suberror {
        1 => "emulation failure",
        2 => "exception while delivering an exception",
        3 => "event delivery failure",
        4 => "unexpected exit reason",
        _ => "unknown",
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
        assert_eq!(Outcome::TripleFault(String::new()).exit_code(), 125);
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
        assert!(
            Outcome::TripleFault("rip=0x1".into())
                .message()
                .unwrap()
                .starts_with("guest triple fault: rip=0x1")
        );
        let m = Outcome::InternalError {
            suberror: 1,
            rip: 0x10,
            data: vec![],
        }
        .message()
        .unwrap();
        assert!(
            m.contains("suberror 1 (emulation failure) at rip 0x10"),
            "{m}"
        );
    }
}
