//! One `vmm run`: prepare the disks, build and run the machine, copy `--get` files out.

use crate::Outcome;
use crate::machine::{DeviceExits, Machine, MachineConfig, MachineError, RunStats};
use crate::storage::{self, StorageError};

/// Why a run could not happen at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Machine(#[from] MachineError),
    #[error(
        "program {0} does not exist: give the path of a user program (an x86-64 ELF executable), e.g. target/user/NAME"
    )]
    ProgramMissing(std::path::PathBuf),
}

/// How a run that started went: the guest's outcome, and whether copying files out worked
/// (attempted whatever the outcome).
#[derive(Debug)]
pub struct RunReport {
    pub outcome: Outcome,
    /// VM exits (and disk counters) per device.
    pub devices: Vec<DeviceExits>,
    /// The run's counters.
    pub stats: RunStats,
    pub copy_out: Result<(), StorageError>,
}

/// Runs the machine `config` describes.
pub fn run(config: &MachineConfig) -> Result<RunReport, RunError> {
    if let Some(program) = &config.program
        && !program.is_file()
    {
        return Err(RunError::ProgramMissing(program.clone()));
    }
    let disks = storage::prepare(&config.fs_disk, &config.swap)?;
    let machine = Machine::build(config, &disks)?;
    let result = machine.run()?;
    let copy_out = storage::copy_out(&disks.fs_path, &config.gets);
    Ok(RunReport {
        outcome: result.outcome,
        devices: result.devices,
        stats: result.stats,
        copy_out,
    })
}
