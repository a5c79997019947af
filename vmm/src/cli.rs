//! The `vmm` command line.

use crate::seccomp::Seccomp;
use std::path::PathBuf;
use std::time::Duration;

use abi::boot::{KernelMode, TestHook};
use abi::stats::EvictPolicy;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::machine::MachineConfig;
use crate::stats::series::SeriesConfig;
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
    /// Draw a `--stats-series` file as an SVG chart: faults, evictions and swap traffic
    /// per second over time.
    Plot(PlotArgs),
    /// Run a program once per RAM size and print a table of faults, evictions, swap traffic
    /// and time per size.
    Sweep(SweepArgs),
    /// Replay a fault trace (`vmm run --trace-faults`) against OPT, LRU, clock, FIFO and
    /// random replacement at each frame count, beside the kernel's own faults.
    Replay(ReplayArgs),
}

/// Options of `vmm replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A trace written by `vmm run --trace-faults FILE`.
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,
    /// Frame counts to simulate, comma-separated (default: the traced run's user frames).
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    pub frames: Vec<u64>,
    /// Print one JSON array of rows (`policy`, `frames`, `faults`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `vmm plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A series written by `vmm run --stats-series PATH`.
    #[arg(value_name = "SERIES")]
    pub series: PathBuf,
    /// The SVG file to write.
    #[arg(short, long, value_name = "FILE.svg")]
    pub output: PathBuf,
}

/// `vmm sweep`'s own options before its run options, with a `-jN` split into `-j N`:
/// the trailing run options take any hyphenated word, and clap hands them `-jN` (it
/// parses `-j N` and `--jobs=N` as the sweep's). Every other word stays as it is.
pub fn split_sweep_jobs(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = args.into_iter().collect();
    if args.get(1).is_none_or(|a| a != "sweep") {
        return args;
    }
    let mut i = 2;
    while let Some(word) = args.get(i).and_then(|a| a.to_str()).map(str::to_string) {
        let jobs = word
            .strip_prefix("-j")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if let Some(n) = jobs {
            let n = std::ffi::OsString::from(n);
            args[i] = "-j".into();
            args.insert(i + 1, n);
            i += 2;
        } else if ["--mem", "--evict", "--plot", "-j", "--jobs"].contains(&word.as_str()) {
            i += 2;
        } else if ["--json", "--matrix", "--merge"].contains(&word.as_str())
            || word.starts_with("--mem=")
            || word.starts_with("--evict=")
            || word.starts_with("--plot=")
            || word.starts_with("--jobs=")
        {
            i += 1;
        } else {
            // The run options, the program and its arguments: theirs.
            break;
        }
    }
    args
}

/// Options of `vmm sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The RAM sizes to run with, in MiB, comma-separated (e.g. 8,16,32,64).
    #[arg(long, value_name = "MIB,...", value_delimiter = ',', required_unless_present = "merge",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub mem: Vec<u64>,
    /// Print the results as one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Guests to run at once (default: the host's processor count). Fault counts do not
    /// depend on it; wall times of runs that share the processors do.
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Eviction policies to run each size with, comma-separated (e.g. clock,fifo,random):
    /// one row per size and policy. Without it, the run options' --evict (or clock).
    #[arg(long, value_enum, value_name = "POLICY,...", value_delimiter = ',')]
    pub evict: Vec<EvictArg>,
    /// Print the grid as a JSON list of jobs instead of running it: each job's `args` are
    /// the `vmm` arguments of a one-cell sweep with --json, for a CI matrix or a batch
    /// scheduler; `vmm sweep --merge` joins their documents.
    #[arg(long)]
    pub matrix: bool,
    /// Also draw the miss-ratio curve as an SVG chart: page faults against RAM, one line
    /// per eviction policy.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Join sweeps' --json documents (the files given instead of a program) into one:
    /// rows by size and policy, each keeping its host and kernel mode. A table, or JSON
    /// with --json.
    #[arg(long, conflicts_with_all = ["mem", "evict", "matrix", "jobs"])]
    pub merge: bool,
    /// Any `vmm run` options (but --mem), then the program and its arguments. The guest's
    /// console output is discarded; progress goes to stderr. With --merge: the JSON files.
    #[arg(
        value_name = "[RUN OPTIONS] PROGRAM [ARGS]",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub run: Vec<String>,
}

impl SweepArgs {
    /// The `vmm run` options for one size, and one policy of `--evict` if given.
    pub fn run_args(&self, mem: u64, evict: Option<EvictArg>) -> Result<RunArgs, clap::Error> {
        let mem = mem.to_string();
        let policy = evict.map(|e| EvictPolicy::from(e).name());
        let argv = ["vmm", "run", "--mem", &mem]
            .into_iter()
            .chain(policy.into_iter().flat_map(|p| ["--evict", p]))
            .chain(self.run.iter().map(String::as_str));
        match Cli::try_parse_from(argv)?.command {
            Command::Run(args) => Ok(*args),
            _ => unreachable!("parsed as `vmm run`"),
        }
    }
}

/// `--evict` values (see `abi::stats::EvictPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum EvictArg {
    /// Second chance on the accessed bit (the default).
    #[default]
    Clock,
    /// The page loaded longest ago, whether used since or not.
    Fifo,
    /// A page at random (fixed seed: runs repeat).
    Random,
}

impl From<EvictArg> for EvictPolicy {
    fn from(arg: EvictArg) -> Self {
        match arg {
            EvictArg::Clock => EvictPolicy::Clock,
            EvictArg::Fifo => EvictPolicy::Fifo,
            EvictArg::Random => EvictPolicy::Random,
        }
    }
}

/// `--kernel-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum KernelModeArg {
    /// Fast on PVM hosts (where ring 0 is emulated), classic on hardware KVM.
    #[default]
    Auto,
    /// User page faults and system calls that cannot block handled at CPL 3 behind a
    /// ring-0 shim.
    Fast,
    /// The whole kernel in ring 0.
    Classic,
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

    /// At exit, print a table of the run's counters on stderr: page faults by outcome,
    /// evictions, swap and disk traffic, VM exits, time.
    #[arg(long)]
    pub stats: bool,

    /// At exit, write every counter, the configuration and the kind of KVM to PATH as one
    /// JSON document.
    #[arg(long, value_name = "PATH")]
    pub stats_json: Option<PathBuf>,

    /// While the guest runs, append one JSON line of counters every --stats-interval to
    /// PATH (the guest is not stopped to read them). Draw it with `vmm plot`.
    #[arg(long, value_name = "PATH")]
    pub stats_series: Option<PathBuf>,

    /// Sampling interval of --stats-series, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100, requires = "stats_series",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stats_interval: u64,

    /// Write one JSON line per page fault, eviction and process exit to FILE, in the order
    /// they happened: the reference string of the run's faults, for `vmm replay`. The
    /// kernel fills a ring in shared memory that the VMM drains while the guest runs (no VM
    /// exit per fault); records lost to a full ring are counted and reported.
    #[arg(long, value_name = "FILE", conflicts_with = "no_fault_counters")]
    pub trace_faults: Option<PathBuf>,

    /// Sample where the guest runs every 500 us of wall time and write a flat profile to
    /// FILE: the share of user code, kernel code at CPL 3 (the fast kernel mode) and ring 0,
    /// and the kernel's symbols by samples. Each sample interrupts the guest once (a few
    /// percent of its time).
    #[arg(long, value_name = "FILE", conflicts_with = "gdb")]
    pub profile: Option<PathBuf>,

    /// Serve a GDB remote stub on 127.0.0.1:PORT (0: a free port, printed) and wait for
    /// GDB before the first guest instruction: registers, memory, breakpoints (up to four
    /// in the kernel), single step, continue and Ctrl-C, in kernel and user code. Load the kernel's
    /// symbols from target/x86_64-unknown-none/release/guest-kernel. No --timeout applies
    /// and the vCPU thread runs without its seccomp filter.
    #[arg(long, value_name = "PORT")]
    pub gdb: Option<u16>,

    /// How the kernel chooses a page to evict when memory is full.
    #[arg(long, value_enum, default_value_t = EvictArg::Clock)]
    pub evict: EvictArg,

    /// Keep the kernel's fault-path counters still (to measure what they cost).
    #[arg(long)]
    pub no_fault_counters: bool,

    /// Fault-around: on a page fault, also bring in up to N following pages that are the
    /// program's and not loaded yet, while frames are free (never evicting for them).
    /// Fewer faults for sequential access; off by default because fault counts are what
    /// paging experiments measure (`pages_mapped_around` counts these pages).
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(abi::boot::MAX_FAULT_AROUND)))]
    pub fault_around: u32,

    /// Where the kernel runs its work: `fast` handles user page faults and the system calls
    /// that cannot block at CPL 3 behind a ring-0 shim (much cheaper where ring 0 is
    /// emulated, as on PVM hosts), `classic` runs
    /// the whole kernel in ring 0, `auto` picks fast on PVM and classic on hardware KVM.
    /// The environment variable VMM_KERNEL_MODE sets the default.
    #[arg(long, value_enum, env = "VMM_KERNEL_MODE", default_value_t = KernelModeArg::Auto)]
    pub kernel_mode: KernelModeArg,

    /// Run without the seccomp filters that limit each of the VMM's threads to the system
    /// calls it needs. For debugging only: a forbidden call ends the VMM with a message
    /// that names it; this option lets the run go on.
    #[arg(long)]
    pub no_seccomp: bool,

    /// For the VMM's own tests: the vCPU thread makes a system call its filter forbids.
    #[arg(long, hide = true)]
    pub test_seccomp_violation: bool,

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
    Cpl3PageFault,
    SyscallPageFault,
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
            TestHookArg::Cpl3PageFault => TestHook::Cpl3PageFault,
            TestHookArg::SyscallPageFault => TestHook::SyscallPageFault,
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
            evict: self.evict.into(),
            fault_counters: !self.no_fault_counters,
            fault_around: self.fault_around,
            kernel_mode: match self.kernel_mode {
                KernelModeArg::Auto => None,
                KernelModeArg::Fast => Some(KernelMode::Fast),
                KernelModeArg::Classic => Some(KernelMode::Classic),
            },
            series: self.stats_series.as_ref().map(|path| SeriesConfig {
                path: path.clone(),
                interval: Duration::from_millis(self.stats_interval),
            }),
            trace_faults: self.trace_faults.clone(),
            profile: self.profile.clone(),
            gdb: self.gdb,
            quiet: false,
            seccomp: if self.no_seccomp {
                Seccomp::Off
            } else {
                Seccomp::All
            },
            seccomp_violation: self.test_seccomp_violation,
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
        assert_eq!(config.evict, EvictPolicy::Clock);
        assert!(config.fault_counters);
        assert_eq!(config.series, None);
    }

    #[test]
    fn stats_options() {
        let config = run_args(&[
            "--evict",
            "fifo",
            "--stats-series",
            "s.jsonl",
            "--stats-interval",
            "25",
            "--no-fault-counters",
        ])
        .machine_config();
        assert_eq!(config.evict, EvictPolicy::Fifo);
        assert!(!config.fault_counters);
        assert_eq!(
            config.series,
            Some(SeriesConfig {
                path: "s.jsonl".into(),
                interval: Duration::from_millis(25),
            })
        );
        for bad in [
            &["--stats-interval", "10"][..],
            &["--stats-series", "s", "--stats-interval", "0"],
            &["--evict", "lru"],
        ] {
            assert!(
                Cli::try_parse_from(["vmm", "run"].iter().chain(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn fault_around_takes_a_page_count_up_to_the_limit() {
        assert_eq!(run_args(&[]).machine_config().fault_around, 0);
        let config = run_args(&["--fault-around", "64"]).machine_config();
        assert_eq!(config.fault_around, abi::boot::MAX_FAULT_AROUND);
        for bad in ["65", "-1", "x"] {
            let args = ["vmm", "run", "--fault-around", bad];
            assert!(Cli::try_parse_from(args).is_err(), "{bad}");
        }
    }

    #[test]
    fn kernel_mode_is_chosen_by_name() {
        for (arg, mode) in [
            ("fast", Some(KernelMode::Fast)),
            ("classic", Some(KernelMode::Classic)),
            ("auto", None),
        ] {
            let config = run_args(&["--kernel-mode", arg]).machine_config();
            assert_eq!(config.kernel_mode, mode, "{arg}");
        }
        let bad = ["vmm", "run", "--kernel-mode", "ring3"];
        assert!(Cli::try_parse_from(bad).is_err());
    }

    #[test]
    fn sweep_passes_run_options_through() {
        let cli = Cli::try_parse_from([
            "vmm",
            "sweep",
            "--mem",
            "8,16",
            "--json",
            "--swap-mib",
            "4",
            "--evict",
            "fifo",
            "prog",
            "--x",
            "y",
        ])
        .expect("parses");
        let Command::Sweep(sweep) = cli.command else {
            panic!("not a sweep");
        };
        assert_eq!(sweep.mem, [8, 16]);
        assert!(sweep.json);
        let run = sweep.run_args(16, None).expect("run options");
        assert_eq!(run.mem, 16);
        assert_eq!(run.swap_mib, 4);
        assert_eq!(run.evict, EvictArg::Fifo);
        assert_eq!(run.program, Some(PathBuf::from("prog")));
        assert_eq!(run.args, ["--x", "y"]);
        assert!(
            Cli::try_parse_from(["vmm", "sweep", "prog"]).is_err(),
            "--mem is required"
        );
        let bad = Cli::try_parse_from(["vmm", "sweep", "--mem", "8", "--mem-typo", "prog"]);
        let Ok(Cli {
            command: Command::Sweep(bad),
        }) = bad
        else {
            panic!("unknown run options are checked per run, not by sweep");
        };
        assert!(bad.run_args(8, None).is_err());
        // A list of policies before the run options: one run per policy.
        let cli = Cli::try_parse_from([
            "vmm",
            "sweep",
            "--mem",
            "8",
            "--evict",
            "clock,random",
            "prog",
        ])
        .expect("parses");
        let Command::Sweep(grid) = cli.command else {
            panic!("not a sweep");
        };
        assert_eq!(grid.evict, [EvictArg::Clock, EvictArg::Random]);
        let run = grid
            .run_args(8, Some(EvictArg::Random))
            .expect("run options");
        assert_eq!(run.evict, EvictArg::Random);
        assert_eq!(run.program, Some(PathBuf::from("prog")));
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
    fn a_sweep_takes_j_with_its_number_attached() {
        let words = |list: &[&str]| -> Vec<std::ffi::OsString> {
            list.iter().map(std::ffi::OsString::from).collect()
        };
        let split = |list: &[&str]| split_sweep_jobs(words(list));
        assert_eq!(
            split(&["vmm", "sweep", "-j2", "--mem", "8", "p"]),
            words(&["vmm", "sweep", "-j", "2", "--mem", "8", "p"])
        );
        assert_eq!(
            split(&[
                "vmm",
                "sweep",
                "--mem",
                "8",
                "--json",
                "-j12",
                "--user-pages",
                "9",
                "p",
                "-j3"
            ]),
            words(&[
                "vmm",
                "sweep",
                "--mem",
                "8",
                "--json",
                "-j",
                "12",
                "--user-pages",
                "9",
                "p",
                "-j3"
            ]),
            "the program's own -j3 stays"
        );
        assert_eq!(
            split(&["vmm", "run", "-j2"]),
            words(&["vmm", "run", "-j2"]),
            "only sweep"
        );
        let cli = Cli::try_parse_from(split(&["vmm", "sweep", "--mem", "8", "-j2", "prog"]))
            .expect("parses");
        let Command::Sweep(sweep) = cli.command else {
            panic!("not a sweep");
        };
        assert_eq!(sweep.jobs, Some(2));
        assert_eq!(sweep.run, ["prog"]);
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
