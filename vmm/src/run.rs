//! One `vmm run`: prepare the disks, build and run the machine, copy `--get` files out.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use abi::elf::{self, ElfError, ProgramHeader};

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
    ProgramMissing(PathBuf),
    #[error(
        "program {0} is a directory: give the path of a user program (an x86-64 ELF executable), e.g. target/user/NAME"
    )]
    ProgramIsDirectory(PathBuf),
    #[error("program {0} cannot be read: {1}")]
    ProgramUnreadable(PathBuf, std::io::Error),
    /// The kernel would not load it (`abi::elf`); with the interpreter a dynamically linked
    /// program names.
    #[error("program {}: {}{}: {}", .0.display(), .1.describe(), interpreter(.2), .1.advice())]
    ProgramNotLoadable(PathBuf, ElfError, Option<String>),
}

fn interpreter(name: &Option<String>) -> String {
    name.as_ref()
        .map(|n| format!(" (interpreter {n})"))
        .unwrap_or_default()
}

/// Checks, before anything boots, that the kernel will load `program` (the checks of
/// `abi::elf`, which the kernel's loader runs too): a directory, a file that is not an
/// executable for the guest, or one linked dynamically is refused with what to do.
pub fn check_program(program: &Path) -> Result<(), RunError> {
    if program.is_dir() {
        return Err(RunError::ProgramIsDirectory(program.to_path_buf()));
    }
    if !program.is_file() {
        return Err(RunError::ProgramMissing(program.to_path_buf()));
    }
    let unreadable = |e| RunError::ProgramUnreadable(program.to_path_buf(), e);
    let file = File::open(program).map_err(unreadable)?;
    let len = file.metadata().map_err(unreadable)?.len();
    let read = |at: u64, buf: &mut [u8]| -> std::io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], at + got as u64)? {
                0 => break,
                n => got += n,
            }
        }
        Ok(got)
    };
    let not_loadable = |e, interp| RunError::ProgramNotLoadable(program.to_path_buf(), e, interp);
    let mut head = [0u8; elf::EHDR_SIZE];
    let got = read(0, &mut head).map_err(unreadable)?;
    let info = elf::check_header(&head[..got], len).map_err(|e| not_loadable(e, None))?;
    let mut table = vec![0u8; info.phnum * elf::PHDR_SIZE];
    if read(info.phoff, &mut table).map_err(unreadable)? != table.len() {
        return Err(not_loadable(ElfError::BadHeader, None));
    }
    let headers = table
        .chunks_exact(elf::PHDR_SIZE)
        .map(|raw| ProgramHeader::parse(raw.try_into().expect("PHDR_SIZE bytes")));
    let e_type = u16::from_le_bytes([head[16], head[17]]);
    match elf::check_segments(e_type, headers, len) {
        Ok(()) => Ok(()),
        Err(e @ ElfError::Dynamic { interp }) => {
            let name = interp.and_then(|(at, n)| {
                let mut raw = vec![0u8; usize::try_from(n).ok()?];
                read(at, &mut raw).ok()?;
                let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                Some(String::from_utf8_lossy(&raw[..end]).into_owned())
            });
            Err(not_loadable(e, name))
        }
        Err(e) => Err(not_loadable(e, None)),
    }
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
    crate::machine::install_interrupt_handlers();
    if let Some(program) = &config.program {
        check_program(program)?;
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
