//! Checking and loading the kernel ELF.
//!
//! The header and program headers are checked here, before `linux-loader` copies the
//! segments, so that a wrong file gets a clear message and so the VMM knows the image's
//! full physical extent (bss included, which `linux-loader` does not report).

use std::io::Cursor;

use abi::layout::{HOLE_START, KERNEL_PHYS_BASE};
use linux_loader::loader::{Elf, KernelLoader};
use vm_memory::GuestMemoryMmap;

/// ELF identification and header constants used by the checks.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// Why the kernel image is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    #[error("not an ELF file")]
    NotElf,
    #[error("not a 64-bit little-endian ELF")]
    NotElf64,
    #[error("ELF machine {0} is not x86-64")]
    WrongMachine(u16),
    #[error("ELF type {0} is not an executable")]
    NotExecutable(u16),
    #[error("program headers are missing or malformed")]
    BadProgramHeaders,
    #[error("no loadable segment")]
    NoSegments,
    #[error(
        "segment at physical {start:#x}..{end:#x} is outside {KERNEL_PHYS_BASE:#x}..{HOLE_START:#x}"
    )]
    SegmentOutOfRange { start: u64, end: u64 },
    #[error("entry point {0:#x} is outside the loaded segments")]
    BadEntry(u64),
    #[error("copying the segments into guest memory failed: {0}")]
    Copy(String),
}

/// What the checks learned about a kernel image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelImage {
    /// Virtual entry address.
    pub entry: u64,
    /// Lowest physical address of a loadable segment.
    pub phys_start: u64,
    /// One past the highest physical byte of a loadable segment, bss included.
    pub phys_end: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Checks that `elf` is an x86-64 executable whose segments fit where the kernel goes.
pub fn inspect(elf: &[u8]) -> Result<KernelImage, LoadError> {
    if elf.len() < EHDR_SIZE || &elf[..4] != ELF_MAGIC {
        return Err(LoadError::NotElf);
    }
    if elf[4] != ELFCLASS64 || elf[5] != ELFDATA2LSB {
        return Err(LoadError::NotElf64);
    }
    let e_type = u16_at(elf, 16);
    let machine = u16_at(elf, 18);
    if machine != EM_X86_64 {
        return Err(LoadError::WrongMachine(machine));
    }
    if e_type != ET_EXEC {
        return Err(LoadError::NotExecutable(e_type));
    }
    let entry = u64_at(elf, 24);
    let phoff = u64_at(elf, 32);
    let phentsize = usize::from(u16_at(elf, 54));
    let phnum = usize::from(u16_at(elf, 56));
    if phentsize != PHDR_SIZE {
        return Err(LoadError::BadProgramHeaders);
    }
    let table_len = phnum
        .checked_mul(PHDR_SIZE)
        .ok_or(LoadError::BadProgramHeaders)?;
    let table = usize::try_from(phoff)
        .ok()
        .and_then(|start| elf.get(start..start.checked_add(table_len)?))
        .ok_or(LoadError::BadProgramHeaders)?;

    let (mut start, mut end, mut entry_ok) = (u64::MAX, 0u64, false);
    for ph in table
        .chunks_exact(PHDR_SIZE)
        .filter(|ph| u32_at(ph, 0) == PT_LOAD)
    {
        let (offset, vaddr, paddr) = (u64_at(ph, 8), u64_at(ph, 16), u64_at(ph, 24));
        let (filesz, memsz) = (u64_at(ph, 32), u64_at(ph, 40));
        let seg_end = paddr
            .checked_add(memsz)
            .ok_or(LoadError::SegmentOutOfRange {
                start: paddr,
                end: u64::MAX,
            })?;
        if paddr < KERNEL_PHYS_BASE || seg_end > HOLE_START {
            return Err(LoadError::SegmentOutOfRange {
                start: paddr,
                end: seg_end,
            });
        }
        let file_end = offset
            .checked_add(filesz)
            .ok_or(LoadError::BadProgramHeaders)?;
        if filesz > memsz || file_end > elf.len() as u64 {
            return Err(LoadError::BadProgramHeaders);
        }
        entry_ok |= (vaddr..vaddr.saturating_add(memsz)).contains(&entry);
        start = start.min(paddr);
        end = end.max(seg_end);
    }
    if end == 0 {
        return Err(LoadError::NoSegments);
    }
    if !entry_ok {
        return Err(LoadError::BadEntry(entry));
    }
    Ok(KernelImage {
        entry,
        phys_start: start,
        phys_end: end,
    })
}

/// Copies the segments of a checked image into guest memory at their physical addresses.
/// The bss needs no clearing: guest RAM starts out zero.
pub fn load(memory: &GuestMemoryMmap, elf: &[u8]) -> Result<(), LoadError> {
    Elf::load(memory, None, &mut Cursor::new(elf), None)
        .map(|_| ())
        .map_err(|e| LoadError::Copy(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF: one PT_LOAD of `filesz`/`memsz` at `paddr`, entry at its start.
    fn elf(machine: u16, paddr: u64, filesz: u64, memsz: u64) -> Vec<u8> {
        let mut b = vec![0u8; EHDR_SIZE + PHDR_SIZE + filesz as usize];
        b[..4].copy_from_slice(ELF_MAGIC);
        b[4] = ELFCLASS64;
        b[5] = ELFDATA2LSB;
        b[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        let vaddr = 0x80_0400_0000 + paddr;
        b[24..32].copy_from_slice(&vaddr.to_le_bytes());
        b[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = &mut b[EHDR_SIZE..EHDR_SIZE + PHDR_SIZE];
        ph[0..4].copy_from_slice(&PT_LOAD.to_le_bytes());
        ph[8..16].copy_from_slice(&((EHDR_SIZE + PHDR_SIZE) as u64).to_le_bytes());
        ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
        ph[24..32].copy_from_slice(&paddr.to_le_bytes());
        ph[32..40].copy_from_slice(&filesz.to_le_bytes());
        ph[40..48].copy_from_slice(&memsz.to_le_bytes());
        b
    }

    #[test]
    fn accepts_a_kernel_and_reports_bss_extent() {
        let image = inspect(&elf(EM_X86_64, 0x20_0000, 0x100, 0x5000)).unwrap();
        assert_eq!(image.phys_start, 0x20_0000);
        assert_eq!(image.phys_end, 0x20_5000);
        assert_eq!(image.entry, 0x80_0420_0000);
    }

    #[test]
    fn rejects_other_files() {
        assert_eq!(inspect(b"#!/bin/sh\necho hi\n"), Err(LoadError::NotElf));
        assert_eq!(inspect(&[]), Err(LoadError::NotElf));
        let mut e32 = elf(EM_X86_64, 0x20_0000, 16, 16);
        e32[4] = 1;
        assert_eq!(inspect(&e32), Err(LoadError::NotElf64));
        assert_eq!(
            inspect(&elf(183, 0x20_0000, 16, 16)),
            Err(LoadError::WrongMachine(183))
        );
        let mut dynamic = elf(EM_X86_64, 0x20_0000, 16, 16);
        dynamic[16] = 3;
        assert_eq!(inspect(&dynamic), Err(LoadError::NotExecutable(3)));
    }

    #[test]
    fn rejects_bad_segments() {
        assert!(matches!(
            inspect(&elf(EM_X86_64, 0x1000, 16, 16)),
            Err(LoadError::SegmentOutOfRange { .. })
        ));
        assert!(matches!(
            inspect(&elf(EM_X86_64, HOLE_START - 8, 16, 16)),
            Err(LoadError::SegmentOutOfRange { .. })
        ));
        assert!(matches!(
            inspect(&elf(EM_X86_64, 0x20_0000, 16, u64::MAX)),
            Err(LoadError::SegmentOutOfRange { .. })
        ));
        assert_eq!(
            inspect(&elf(EM_X86_64, 0x20_0000, 32, 16)),
            Err(LoadError::BadProgramHeaders)
        );
        let mut truncated = elf(EM_X86_64, 0x20_0000, 64, 64);
        truncated.truncate(EHDR_SIZE + PHDR_SIZE + 10);
        assert_eq!(inspect(&truncated), Err(LoadError::BadProgramHeaders));
        let mut far_table = elf(EM_X86_64, 0x20_0000, 16, 16);
        far_table[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(inspect(&far_table), Err(LoadError::BadProgramHeaders));
        let mut no_load = elf(EM_X86_64, 0x20_0000, 16, 16);
        no_load[EHDR_SIZE] = 4; // PT_NOTE
        assert_eq!(inspect(&no_load), Err(LoadError::NoSegments));
        let mut bad_entry = elf(EM_X86_64, 0x20_0000, 16, 16);
        bad_entry[24..32].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(inspect(&bad_entry), Err(LoadError::BadEntry(1)));
    }

    #[test]
    fn loads_segments_at_physical_addresses() {
        use vm_memory::{Bytes, GuestAddress};
        let mut image = elf(EM_X86_64, 0x20_0000, 4, 0x1000);
        let n = image.len();
        image[n - 4..].copy_from_slice(b"KERN");
        let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
        load(&memory, &image).unwrap();
        let mut got = [0u8; 4];
        memory
            .read_slice(&mut got, GuestAddress(0x20_0000))
            .unwrap();
        assert_eq!(&got, b"KERN");
    }
}
