//! Guest RAM: anonymous host memory, mapped lazily.
//!
//! The host maps pages on first touch, so creating a 4 GiB guest costs no more than a 64 MiB
//! one; only pages the guest (or the VMM) touches ever get host memory.

use abi::layout::{self, MAX_MEM_MIB};
use vm_memory::{GuestAddress, GuestMemoryMmap};

/// Why guest RAM could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("--mem {0} MiB is too large: the maximum is {MAX_MEM_MIB} MiB")]
    AboveMaximum(u64),
    #[error(
        "--mem {mib} MiB is more than this host's {host_mib} MiB of RAM: choose a smaller --mem"
    )]
    AboveHost { mib: u64, host_mib: u64 },
    #[error("cannot map {0} MiB of guest RAM: {1}")]
    Map(u64, vm_memory::mmap::FromRangesError),
}

/// Checks `mib` against the fixed maximum and the host's RAM. (The minimum depends on the
/// kernel image; the machine builder checks it.)
pub fn check_size(mib: u64) -> Result<(), MemoryError> {
    if mib > MAX_MEM_MIB {
        return Err(MemoryError::AboveMaximum(mib));
    }
    let host_mib = host_ram_mib();
    if mib > host_mib {
        return Err(MemoryError::AboveHost { mib, host_mib });
    }
    Ok(())
}

/// Creates guest RAM of `mib` MiB, split around the device hole (see `abi::layout`).
pub fn create(mib: u64) -> Result<GuestMemoryMmap, MemoryError> {
    check_size(mib)?;
    let ranges: Vec<(GuestAddress, usize)> = layout::ram_ranges(mib << 20)
        .iter()
        .filter(|(start, end)| end > start)
        .map(|&(start, end)| (GuestAddress(start), (end - start) as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).map_err(|e| MemoryError::Map(mib, e))
}

/// Total RAM of the host in MiB.
fn host_ram_mib() -> u64 {
    // SAFETY: sysinfo only writes into the struct we pass, which is zero-initialised POD.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable sysinfo struct.
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return u64::MAX;
    }
    (info.totalram as u64).saturating_mul(u64::from(info.mem_unit)) >> 20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limits() {
        assert!(check_size(64).is_ok());
        assert!(matches!(
            check_size(MAX_MEM_MIB + 1),
            Err(MemoryError::AboveMaximum(_))
        ));
        assert!(host_ram_mib() > 0);
    }

    #[test]
    fn creates_split_ram() {
        use vm_memory::GuestMemoryBackend;
        let mem = create(64).expect("64 MiB");
        assert_eq!(mem.num_regions(), 1);
        assert_eq!(mem.last_addr(), GuestAddress((64 << 20) - 1));
    }
}
