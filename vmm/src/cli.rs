//! The `vmm` command line.

use std::path::PathBuf;
use std::time::Duration;

use abi::boot::TestHook;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::machine::MachineConfig;
use crate::storage::{self, FsDiskSource, GetSpec, PutSpec, SwapSource};

/// Boots the guest kernel on KVM.
#[derive(Debug, Parser)]
#[command(name = "vmm", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot the kernel and run until it powers off; exit with the guest's status.
    Run(Box<RunArgs>),
    /// Create, list and edit file-system disk images.
    Disk(crate::disk::cli::DiskArgs),
}

/// Options of `vmm run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Guest RAM in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub mem: u64,

    /// Stop the guest after this many seconds of wall time (exit status 124); 0 means never.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,

    /// Cap the kernel's user frame pool at this many 4 KiB pages (default: half of the free
    /// memory, as in Pintos).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub user_pages: Option<u64>,

    /// Run the kernel's self-tests instead of a program; exit 0 only if all pass.
    #[arg(long)]
    pub self_test: bool,

    /// Run the kernel's micro-benchmarks and print their results.
    #[arg(long, conflicts_with = "self_test")]
    pub bench: bool,

    /// Boot this kernel ELF instead of the one built into `vmm`.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,

    /// Make the kernel fail on purpose (for the VMM's own tests).
    #[arg(long, value_enum, hide = true)]
    pub test_hook: Option<TestHookArg>,

    /// Copy a host file onto the guest's file-system disk (as GUEST, default: its base
    /// name). Repeatable.
    #[arg(long = "put", value_name = "HOST[:GUEST]", value_parser = storage::parse_put)]
    pub puts: Vec<PutSpec>,

    /// After the run, copy a file from the guest's disk to the host (to HOST, default: the
    /// same name in the current directory). Repeatable; done also when the guest failed.
    #[arg(long = "get", value_name = "GUEST[:HOST]", value_parser = storage::parse_get)]
    pub gets: Vec<GetSpec>,

    /// Use this disk image as the file-system disk, in place (changes persist), instead of
    /// a fresh one. Create one with `vmm disk create`.
    #[arg(long, value_name = "PATH")]
    pub disk: Option<PathBuf>,

    /// Size of the fresh file-system disk in MiB (default: the --put files plus 8 MiB).
    #[arg(long, value_name = "MIB", conflicts_with = "disk", value_parser = clap::value_parser!(u64).range(1..))]
    pub fs_mib: Option<u64>,

    /// Size of the swap disk in MiB; 0 means no swap disk.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub swap_mib: u64,

    /// Use this file as the swap disk (created with --swap-mib MiB if missing) instead of
    /// a temporary file that is deleted at exit.
    #[arg(long, value_name = "PATH")]
    pub swap_file: Option<PathBuf>,

    /// The exact guest command line, instead of PROGRAM's name and ARGS joined by single
    /// spaces (use it to pass runs of spaces).
    #[arg(long, value_name = "STRING")]
    pub cmdline: Option<String>,

    /// A user program (a host ELF file): copied onto the guest's disk under its base name
    /// and run as the first process. Without it the kernel boots and powers off.
    #[arg(value_name = "PROGRAM")]
    pub program: Option<PathBuf>,

    /// Arguments for PROGRAM.
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        requires = "program"
    )]
    pub args: Vec<String>,

    /// The KVM device (for the VMM's own tests).
    #[arg(long, value_name = "PATH", default_value = "/dev/kvm", hide = true)]
    pub kvm_path: PathBuf,
}

/// `--test-hook` values (see `abi::boot::TestHook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestHookArg {
    Panic,
    TripleFault,
    Spin,
    PageFault,
    DoubleFault,
    FailSelfTest,
    EmulationFailure,
    MemoryReport,
}

impl From<TestHookArg> for TestHook {
    fn from(arg: TestHookArg) -> Self {
        match arg {
            TestHookArg::Panic => TestHook::Panic,
            TestHookArg::TripleFault => TestHook::TripleFault,
            TestHookArg::Spin => TestHook::Spin,
            TestHookArg::PageFault => TestHook::PageFault,
            TestHookArg::DoubleFault => TestHook::DoubleFault,
            TestHookArg::FailSelfTest => TestHook::FailSelfTest,
            TestHookArg::EmulationFailure => TestHook::EmulationFailure,
            TestHookArg::MemoryReport => TestHook::MemoryReport,
        }
    }
}

impl RunArgs {
    /// The machine these options describe.
    pub fn machine_config(&self) -> MachineConfig {
        let program_name = self.program.as_ref().map(|p| {
            p.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        });
        let mut puts = self.puts.clone();
        if let (Some(path), Some(name)) = (&self.program, &program_name) {
            puts.insert(
                0,
                PutSpec {
                    host: path.clone(),
                    guest: name.clone(),
                },
            );
        }
        let cmdline = match (&self.cmdline, &program_name) {
            (Some(exact), _) => exact.clone(),
            (None, Some(name)) => core::iter::once(name.as_str())
                .chain(self.args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            (None, None) => String::new(),
        };
        MachineConfig {
            program: self.program.clone(),
            kvm_path: self.kvm_path.clone(),
            mem_mib: self.mem,
            user_pages: self.user_pages,
            kernel: self.kernel.clone(),
            cmdline,
            self_test: self.self_test,
            bench: self.bench,
            test_hook: self.test_hook.map_or(TestHook::None, TestHook::from),
            timeout: (self.timeout > 0).then(|| Duration::from_secs(self.timeout)),
            fs_disk: match &self.disk {
                Some(path) => FsDiskSource::Existing {
                    path: path.clone(),
                    puts: puts.clone(),
                },
                None => FsDiskSource::Fresh {
                    puts: puts.clone(),
                    size_mib: self.fs_mib,
                },
            },
            swap: match (&self.swap_file, self.swap_mib) {
                (Some(path), mib) => SwapSource::File {
                    path: path.clone(),
                    mib: mib.max(1),
                },
                (None, 0) => SwapSource::None,
                (None, mib) => SwapSource::Temp { mib },
            },
            gets: self.gets.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(["vmm", "run"].iter().chain(args)).expect("parses");
        let Command::Run(run) = cli.command else {
            panic!("not a run command");
        };
        *run
    }

    #[test]
    fn defaults() {
        let config = run_args(&[]).machine_config();
        assert_eq!(config.mem_mib, 64);
        assert_eq!(config.timeout, Some(Duration::from_secs(60)));
        assert!(!config.self_test);
        assert_eq!(config.kernel, None);
        assert_eq!(config.test_hook, TestHook::None);
        assert_eq!(config.user_pages, None);
        assert_eq!(config.kvm_path, PathBuf::from("/dev/kvm"));
    }

    #[test]
    fn options() {
        let config = run_args(&[
            "--mem",
            "4096",
            "--timeout",
            "0",
            "--self-test",
            "--kernel",
            "k.elf",
            "--test-hook",
            "triple-fault",
            "--user-pages",
            "512",
        ])
        .machine_config();
        assert_eq!(config.mem_mib, 4096);
        assert_eq!(config.timeout, None);
        assert!(config.self_test);
        assert_eq!(config.kernel, Some(PathBuf::from("k.elf")));
        assert_eq!(config.test_hook, TestHook::TripleFault);
        assert_eq!(config.user_pages, Some(512));
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &["--mem", "-1"][..],
            &["--mem", "lots"],
            &["--timeout", "1.5"],
            &["--test-hook", "nope"],
            &["--bogus"],
            &["--user-pages", "0"],
        ] {
            assert!(
                Cli::try_parse_from(["vmm", "run"].iter().chain(bad)).is_err(),
                "{bad:?}"
            );
        }
        assert!(
            Cli::try_parse_from(["vmm"]).is_err(),
            "a subcommand is required"
        );
    }
}
