//! `vmm`: parse the command line, run, and map the outcome to an exit status.
//!
//! Exit status: the guest's own status when it powers off (low byte: -1 becomes 255), 124
//! when `--timeout` stops it, 125 when the VMM or the guest kernel fails, 130 or 143 when
//! SIGINT or SIGTERM stops it. Every failure is one line on stderr starting with `vmm: `.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use vmm::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse_from(vmm::cli::split_sweep_jobs(std::env::args_os()));
    let code = match cli.command {
        Command::Run(args) => {
            let config = args.machine_config();
            run(&args, &config)
        }
        Command::Disk(args) => match vmm::disk::cli::run(args) {
            Ok(()) => 0,
            Err(error) => {
                report(&error.to_string());
                vmm::EXIT_VMM_FAILURE
            }
        },
        Command::Replay(args) => match replay(&args) {
            Ok(()) => 0,
            Err(error) => {
                report(&error);
                vmm::EXIT_VMM_FAILURE
            }
        },
        Command::Plot(args) => match plot(&args) {
            Ok(()) => 0,
            Err(error) => {
                report(&error);
                vmm::EXIT_VMM_FAILURE
            }
        },
        Command::Sweep(args) if args.matrix => {
            println!("{:#}", vmm::stats::sweep::matrix(&args));
            0
        }
        Command::Sweep(args) if args.merge => match vmm::stats::sweep::merge(&args.run) {
            Ok(doc) if args.json => {
                println!("{doc:#}");
                0
            }
            Ok(doc) => {
                print!("{}", vmm::stats::sweep::merged_table(&doc));
                0
            }
            Err(error) => {
                report(&error.to_string());
                vmm::EXIT_VMM_FAILURE
            }
        },
        Command::Sweep(args) => match vmm::stats::sweep::run(&args) {
            Ok(rows) => {
                if let Some(path) = &args.plot
                    && let Err(error) = std::fs::write(path, vmm::stats::sweep::curves_svg(&rows))
                {
                    report(&format!(
                        "sweep --plot: cannot write {}: {error}",
                        path.display()
                    ));
                    return ExitCode::from(vmm::EXIT_VMM_FAILURE);
                }
                let kvm = vmm::stats::KvmKind::detect();
                if args.json {
                    println!("{:#}", vmm::stats::sweep::json(&args, &rows, kvm));
                } else {
                    print!("{}", vmm::stats::sweep::table(&rows, kvm));
                }
                // Stopped early by SIGINT or SIGTERM: the rows so far, and the signal's status.
                vmm::machine::interrupted()
                    .map_or(0, |signal| vmm::Outcome::Interrupted(signal).exit_code())
            }
            Err(error) => {
                report(&error.to_string());
                vmm::EXIT_VMM_FAILURE
            }
        },
    };
    ExitCode::from(code)
}

/// For `--bench`: VM exits per disk request, from the VMM's own counters.
fn print_exits_per_request(devices: &[vmm::machine::DeviceExits]) {
    use std::sync::atomic::Ordering::Relaxed;
    for device in devices {
        if let Some(disk) = &device.disk {
            let requests = disk.read_requests.load(Relaxed)
                + disk.write_requests.load(Relaxed)
                + disk.flush_requests.load(Relaxed)
                + disk.get_id_requests.load(Relaxed)
                + disk.unsupported_requests.load(Relaxed);
            let live = disk.accesses_while_live.load(Relaxed);
            println!(
                "bench {}_exits_per_request: {:.2} ({live} exits for {requests} requests once the device was running; {} exits in all, with setup)",
                device.name.replace('-', "_"),
                live as f64 / requests.max(1) as f64,
                device.exits,
            );
        }
    }
}

/// `vmm run`: runs the machine `config` (from `args`) and reports how it went; returns the
/// exit status.
fn run(args: &vmm::cli::RunArgs, config: &vmm::machine::MachineConfig) -> u8 {
    match vmm::run::run(config) {
        Ok(run) => {
            if args.bench {
                print_exits_per_request(&run.devices);
            }
            if let Some(message) = run.outcome.message() {
                report(&message);
            }
            report_host_file_errors(config, &run);
            let stats_written = write_stats(args, config, &run);
            match run
                .copy_out
                .as_ref()
                .map_err(ToString::to_string)
                .and(stats_written)
            {
                Ok(()) => run.outcome.exit_code(),
                Err(error) => {
                    report(&error);
                    // Keep the guest's own failure status; a clean run becomes a failure.
                    match run.outcome.exit_code() {
                        0 => vmm::EXIT_VMM_FAILURE,
                        code => code,
                    }
                }
            }
        }
        Err(error) => {
            report(&error.to_string());
            vmm::EXIT_VMM_FAILURE
        }
    }
}

/// After a run: the first error of the swap file and of the disk image, if the host
/// refused them a write or a read, each naming its file.
fn report_host_file_errors(config: &vmm::machine::MachineConfig, run: &vmm::run::RunReport) {
    let temporary = |what: &str| format!("({what} in {})", std::env::temp_dir().display());
    let swap_error = run
        .stats
        .page_ops
        .swap_error
        .lock()
        .ok()
        .and_then(|e| e.clone());
    if let Some(error) = swap_error {
        let file = match &config.swap {
            vmm::storage::SwapSource::File { path, .. } => path.display().to_string(),
            _ => temporary("a temporary file"),
        };
        report(&format!(
            "swap file {file}: {error}; the guest processes that needed swap were ended (give swap room on a disk with space, or --swap-mib 0)"
        ));
    }
    let fs_error = run
        .devices
        .iter()
        .filter(|d| d.name == "fs-disk")
        .find_map(|d| d.disk.as_ref()?.first_file_error.lock().ok()?.clone());
    if let Some(error) = fs_error {
        let image = match &config.fs_disk {
            vmm::storage::FsDiskSource::Existing { path, .. } => path.display().to_string(),
            _ => temporary("the run's temporary image"),
        };
        report(&format!(
            "disk image {image}: {error}; the guest's file operations that needed it failed"
        ));
    }
}

/// `--stats`, `--stats-json` and the series' outcome; an error names what could not be
/// written.
fn write_stats(
    args: &vmm::cli::RunArgs,
    config: &vmm::machine::MachineConfig,
    run: &vmm::run::RunReport,
) -> Result<(), String> {
    use vmm::stats::{KvmKind, report};
    let kvm = KvmKind::detect();
    if args.stats {
        let _ = std::io::stdout().flush();
        eprint!("{}", report::table(config, run, kvm));
    }
    if let Some(error) = &run.stats.series_error {
        return Err(format!("writing the stats series failed: {error}"));
    }
    if let (Some(trace), Some(path)) = (&run.stats.trace, &args.trace_faults) {
        let totals = trace
            .as_ref()
            .map_err(|e| format!("writing the fault trace {} failed: {e}", path.display()))?;
        if totals.dropped > 0 {
            report(&format!(
                "fault trace {}: {} records were lost because the kernel's ring was full (the VMM drained it too slowly); the trace is incomplete",
                path.display(),
                totals.dropped
            ));
        }
        if totals.invalid > 0 {
            report(&format!(
                "fault trace {}: {} records from the guest did not decode and were left out",
                path.display(),
                totals.invalid
            ));
        }
    }
    if let (Some(profile), Some(path)) = (&run.stats.profile, &args.profile) {
        profile
            .as_ref()
            .map_err(|e| format!("writing the profile {} failed: {e}", path.display()))?;
    }
    if let Some(path) = &args.stats_json {
        let doc = format!("{:#}\n", report::json(config, run, kvm));
        std::fs::write(path, doc).map_err(|e| {
            format!(
                "cannot write the stats JSON to {}: {e}; check that its directory exists and is writable",
                path.display()
            )
        })?;
    }
    Ok(())
}

/// `vmm replay TRACE [--frames N,...] [--json]`.
fn replay(args: &vmm::cli::ReplayArgs) -> Result<(), String> {
    use vmm::stats::replay::{Trace, json, rows, table};
    let name = args.trace.display();
    let text = std::fs::read_to_string(&args.trace).map_err(|e| {
        format!("cannot read the trace {name}: {e}; record one with `vmm run --trace-faults FILE`")
    })?;
    let trace = Trace::parse(&text).map_err(|e| format!("{name}: {e}"))?;
    let frames = if args.frames.is_empty() {
        vec![trace.user_frames.ok_or_else(|| {
            format!("{name} does not say how many frames its run had (it has no last line): give --frames")
        })?]
    } else {
        args.frames.clone()
    };
    if !trace.complete {
        report(&format!(
            "{name} has no last line (its run did not finish writing it); replaying what it has"
        ));
    }
    if trace.dropped > 0 {
        report(&format!(
            "{name} lost {} records to a full ring: its reference string is incomplete",
            trace.dropped
        ));
    }
    let rows = rows(&trace, &frames);
    if args.json {
        println!("{:#}", json(&trace, &rows));
    } else {
        print!("{}", table(&trace, &rows));
    }
    Ok(())
}

/// `vmm plot SERIES -o FILE.svg`.
fn plot(args: &vmm::cli::PlotArgs) -> Result<(), String> {
    let series = std::fs::read_to_string(&args.series).map_err(|e| {
        format!(
            "cannot read the series {}: {e}; record one with `vmm run --stats-series PATH`",
            args.series.display()
        )
    })?;
    let svg = vmm::stats::plot::render_svg(&series)
        .map_err(|e| format!("{}: {e}", args.series.display()))?;
    std::fs::write(&args.output, svg)
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))
}

/// Prints `vmm: MESSAGE` on stderr, after anything the guest wrote to stdout.
fn report(message: &str) {
    let _ = std::io::stdout().flush();
    eprintln!("vmm: {message}");
}
