//! `vmm`: parse the command line, run, and map the outcome to an exit status.
//!
//! Exit status: the guest's own status when it powers off (low byte: -1 becomes 255), 124
//! when `--timeout` stops it, 125 when the VMM or the guest kernel fails. Every failure is
//! one line on stderr starting with `vmm: `.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use vmm::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => match vmm::run::run(&args.machine_config()) {
            Ok(run) => {
                if let Some(message) = run.outcome.message() {
                    report(&message);
                }
                match run.copy_out {
                    Ok(()) => run.outcome.exit_code(),
                    Err(error) => {
                        report(&error.to_string());
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
        },
        Command::Disk(args) => match vmm::disk::cli::run(args) {
            Ok(()) => 0,
            Err(error) => {
                report(&error.to_string());
                vmm::EXIT_VMM_FAILURE
            }
        },
    };
    ExitCode::from(code)
}

/// Prints `vmm: MESSAGE` on stderr, after anything the guest wrote to stdout.
fn report(message: &str) {
    let _ = std::io::stdout().flush();
    eprintln!("vmm: {message}");
}
