//! Which executables the kernel loads (guest-abi.md §1), as a pure check both sides run:
//! the kernel's loader on the file it opens, and `vmm run` on a host file before it boots
//! (so that `vmm run /bin/ls` says what is wrong, and how to fix it, before a guest
//! starts). Each rule broken is its own [`ElfError`].
//!
//! The check reads through a callback, so neither side has to hold the whole file: the
//! header, then the program-header table.

use crate::layout::{KERN_BASE, PAGE_SIZE, TRAMPOLINE_VA};

/// Bytes of an ELF64 file header.
pub const EHDR_SIZE: usize = 64;
/// Bytes of an ELF64 program header.
pub const PHDR_SIZE: usize = 56;
/// Most program headers a loadable executable may have.
pub const MAX_PHNUM: usize = 1024;

/// `p_type` of a loadable segment.
pub const PT_LOAD: u32 = 1;
/// `p_type` of dynamic-linking information.
pub const PT_DYNAMIC: u32 = 2;
/// `p_type` of the program interpreter's path.
pub const PT_INTERP: u32 = 3;
/// `p_type` reserved by the ELF specification (never loadable).
pub const PT_SHLIB: u32 = 5;
/// `p_flags` bit: the segment is writable.
pub const PF_W: u32 = 2;

/// Why the kernel will not load a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file at all (no `\x7fELF` magic, or shorter than it).
    NotElf,
    /// An ELF file, but not 64-bit little-endian x86-64.
    NotX86_64,
    /// The file header is cut short or inconsistent (version, program-header size or
    /// count, a table past the end of the file).
    BadHeader,
    /// Linked against shared libraries: a `PT_INTERP` (`interp` is where its path lies in
    /// the file: offset and length), `PT_DYNAMIC` or `PT_SHLIB` segment.
    Dynamic { interp: Option<(u64, u64)> },
    /// A static executable, but position-independent (`ET_DYN`, a static PIE) or not an
    /// executable at all (an object file, a core dump).
    NotExecutable { e_type: u16 },
    /// A loadable segment's fields contradict each other or the file (file bytes past its
    /// end, `p_memsz` below `p_filesz` or zero, offset and address not congruent modulo
    /// the page size), or the loadable segments are not in address order.
    BadSegment { vaddr: u64 },
    /// A loadable segment lies (partly) outside user memory: below the first page, at or
    /// above `KERN_BASE`, wrapping, or on the system-call trampoline's page.
    OutsideUserMemory { vaddr: u64 },
    /// Two loadable segments share bytes of memory (sharing a page is fine).
    Overlap { vaddr: u64 },
}

impl ElfError {
    /// What is wrong, in a few words (the path of a `PT_INTERP` is the caller's to add).
    pub fn describe(&self) -> &'static str {
        match self {
            ElfError::NotElf => "not an ELF file",
            ElfError::NotX86_64 => "not a 64-bit x86-64 executable",
            ElfError::BadHeader => "bad or truncated ELF header",
            ElfError::Dynamic { .. } => "dynamically linked",
            ElfError::NotExecutable { .. } => "not a static executable (ET_EXEC)",
            ElfError::BadSegment { .. } => "bad or truncated program header",
            ElfError::OutsideUserMemory { .. } => "a segment lies outside user memory",
            ElfError::Overlap { .. } => "two segments overlap",
        }
    }

    /// How to fix it, for people.
    pub fn advice(&self) -> &'static str {
        match self {
            ElfError::NotElf | ElfError::NotX86_64 => {
                "give an x86-64 ELF executable built for the guest (e.g. target/user/NAME)"
            }
            ElfError::Dynamic { .. } | ElfError::NotExecutable { .. } => {
                "the kernel loads static executables only: link with -static -no-pie (user/user.ld links at 0x400000)"
            }
            ElfError::OutsideUserMemory { .. } => {
                "link it into user memory, [0x1000, 0x8004000000), e.g. at 0x400000 as user/user.ld does"
            }
            ElfError::BadHeader | ElfError::BadSegment { .. } | ElfError::Overlap { .. } => {
                "the file is damaged or was not made by a linker: build it again"
            }
        }
    }
}

/// What the check found in a loadable file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    pub entry: u64,
    pub phoff: u64,
    pub phnum: usize,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// A program header's fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramHeader {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
}

impl ProgramHeader {
    /// Parses one program header (`PHDR_SIZE` bytes).
    pub fn parse(b: &[u8; PHDR_SIZE]) -> ProgramHeader {
        ProgramHeader {
            p_type: u32_at(b, 0),
            p_flags: u32_at(b, 4),
            p_offset: u64_at(b, 8),
            p_vaddr: u64_at(b, 16),
            p_filesz: u64_at(b, 32),
            p_memsz: u64_at(b, 40),
        }
    }

    /// Whether the segment is writable.
    pub fn writable(&self) -> bool {
        self.p_flags & PF_W != 0
    }
}

/// Checks the file header (`head`: the file's first bytes, up to [`EHDR_SIZE`]) of a file
/// of `file_len` bytes. The program headers are [`check_segments`]'s.
pub fn check_header(head: &[u8], file_len: u64) -> Result<ElfInfo, ElfError> {
    if head.len() < 4 || head[..4] != *b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if head.len() < 20 {
        return Err(ElfError::BadHeader);
    }
    // EI_CLASS 2 (64-bit), EI_DATA 1 (little-endian), e_machine 0x3e (x86-64).
    if head[4] != 2 || head[5] != 1 || u16_at(head, 18) != 0x3e {
        return Err(ElfError::NotX86_64);
    }
    if head.len() < EHDR_SIZE {
        return Err(ElfError::BadHeader);
    }
    let phoff = u64_at(head, 32);
    let phnum = usize::from(u16_at(head, 56));
    let table_end = (phnum as u64)
        .checked_mul(PHDR_SIZE as u64)
        .and_then(|n| phoff.checked_add(n));
    let ok = head[6] == 1 // EI_VERSION
        && u32_at(head, 20) == 1 // e_version
        && usize::from(u16_at(head, 54)) == PHDR_SIZE
        && phnum <= MAX_PHNUM
        && table_end.is_some_and(|end| end <= file_len);
    if !ok {
        return Err(ElfError::BadHeader);
    }
    Ok(ElfInfo {
        entry: u64_at(head, 24),
        phoff,
        phnum,
    })
}

/// Checks the program headers `phdrs` (in file order) of a file of `file_len` bytes whose
/// header ([`check_header`]) has type `e_type` (`head[16..18]`): no dynamic linking, an
/// executable, and every loadable segment consistent, inside user memory and clear of the
/// others (loadable segments come in address order, as the ELF specification requires, so
/// each is compared with the one before: no search).
pub fn check_segments(
    e_type: u16,
    phdrs: impl Iterator<Item = ProgramHeader> + Clone,
    file_len: u64,
) -> Result<(), ElfError> {
    for ph in phdrs.clone() {
        match ph.p_type {
            PT_INTERP => {
                let interp = Some((ph.p_offset, ph.p_filesz)).filter(|&(at, len)| {
                    at.checked_add(len).is_some_and(|end| end <= file_len) && len <= 4096
                });
                return Err(ElfError::Dynamic { interp });
            }
            PT_DYNAMIC | PT_SHLIB => return Err(ElfError::Dynamic { interp: None }),
            _ => {}
        }
    }
    // ET_EXEC.
    if e_type != 2 {
        return Err(ElfError::NotExecutable { e_type });
    }
    let mut previous_end = 0;
    for ph in phdrs.filter(|ph| ph.p_type == PT_LOAD) {
        let vaddr = ph.p_vaddr;
        let file_end = ph.p_offset.checked_add(ph.p_filesz);
        let consistent = ph.p_offset % PAGE_SIZE == vaddr % PAGE_SIZE
            && ph.p_memsz >= ph.p_filesz
            && ph.p_memsz > 0
            && file_end.is_some_and(|end| end <= file_len);
        if !consistent {
            return Err(ElfError::BadSegment { vaddr });
        }
        let Some(end) = vaddr.checked_add(ph.p_memsz) else {
            return Err(ElfError::OutsideUserMemory { vaddr });
        };
        let inside = vaddr >= PAGE_SIZE
            && end <= KERN_BASE
            && (end <= TRAMPOLINE_VA || vaddr >= TRAMPOLINE_VA + PAGE_SIZE);
        if !inside {
            return Err(ElfError::OutsideUserMemory { vaddr });
        }
        if vaddr < previous_end {
            return Err(ElfError::Overlap { vaddr });
        }
        previous_end = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, machine: u16, e_type: u16, phnum: u16) -> [u8; EHDR_SIZE] {
        let mut h = [0u8; EHDR_SIZE];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = 1;
        h[6] = 1;
        h[16..18].copy_from_slice(&e_type.to_le_bytes());
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[24..32].copy_from_slice(&0x401000u64.to_le_bytes());
        h[32..40].copy_from_slice(&64u64.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&phnum.to_le_bytes());
        h
    }

    fn load(vaddr: u64, offset: u64, filesz: u64, memsz: u64) -> ProgramHeader {
        ProgramHeader {
            p_type: PT_LOAD,
            p_flags: 4,
            p_offset: offset,
            p_vaddr: vaddr,
            p_filesz: filesz,
            p_memsz: memsz,
        }
    }

    #[test]
    fn headers() {
        let len = 64 + 2 * 56;
        assert_eq!(check_header(b"#!/bin/sh\n", 10), Err(ElfError::NotElf));
        assert_eq!(check_header(b"\x7fEL", 3), Err(ElfError::NotElf));
        assert_eq!(
            check_header(b"\x7fELF\x02\x01", 6),
            Err(ElfError::BadHeader)
        );
        assert_eq!(
            check_header(&header(1, 0x3e, 2, 2), len),
            Err(ElfError::NotX86_64)
        );
        assert_eq!(
            check_header(&header(2, 0xb7, 2, 2), len),
            Err(ElfError::NotX86_64)
        );
        // The table past the end of the file; too many headers.
        assert_eq!(
            check_header(&header(2, 0x3e, 2, 3), len),
            Err(ElfError::BadHeader)
        );
        assert_eq!(
            check_header(&header(2, 0x3e, 2, 1025), 1 << 20),
            Err(ElfError::BadHeader)
        );
        let info = check_header(&header(2, 0x3e, 2, 2), len).unwrap();
        assert_eq!((info.entry, info.phoff, info.phnum), (0x401000, 64, 2));
        // Whole u64 fields: a table offset that wraps.
        let mut h = header(2, 0x3e, 2, 2);
        h[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(check_header(&h, len), Err(ElfError::BadHeader));
    }

    #[test]
    fn segments() {
        let file = 0x3000;
        let check =
            |e_type, phdrs: &[ProgramHeader]| check_segments(e_type, phdrs.iter().copied(), file);
        let text = load(0x400000, 0, 0x1800, 0x1800);
        // The data segment shares text's last page (allowed), bss after it.
        let data = load(0x401800, 0x1800, 0x100, 0x5000);
        assert_eq!(check(2, &[text, data]), Ok(()));
        let interp = ProgramHeader {
            p_type: PT_INTERP,
            p_offset: 0x200,
            p_filesz: 28,
            ..ProgramHeader::default()
        };
        assert_eq!(
            check(3, &[interp, text]),
            Err(ElfError::Dynamic {
                interp: Some((0x200, 28))
            })
        );
        let dynamic = ProgramHeader {
            p_type: PT_DYNAMIC,
            ..ProgramHeader::default()
        };
        assert_eq!(
            check(2, &[text, dynamic]),
            Err(ElfError::Dynamic { interp: None })
        );
        assert_eq!(
            check(3, &[text]),
            Err(ElfError::NotExecutable { e_type: 3 })
        );
        let bad = [
            load(0x400000, 0x10, 0x100, 0x100),
            load(0x400000, 0, 0x200, 0x100),
            load(0x400000, 0, 0, 0),
            load(0x400000, 0x2000, 0x1001, 0x2000),
            load(0x400000, !0xfff, 0x1000, 0x1000),
        ];
        for ph in bad {
            assert_eq!(
                check(2, &[ph]),
                Err(ElfError::BadSegment { vaddr: 0x400000 }),
                "{ph:?}"
            );
        }
        for vaddr in [0, KERN_BASE - 0x1000, TRAMPOLINE_VA, !0xfff] {
            assert_eq!(
                check(2, &[load(vaddr, 0, 0x1000, 0x2000)]),
                Err(ElfError::OutsideUserMemory { vaddr }),
                "{vaddr:#x}"
            );
        }
        let overlapping = load(0x401000, 0x1000, 0x100, 0x100);
        assert_eq!(
            check(2, &[text, overlapping]),
            Err(ElfError::Overlap { vaddr: 0x401000 })
        );
        // Out of address order counts as an overlap too.
        assert_eq!(
            check(2, &[data, text]),
            Err(ElfError::Overlap { vaddr: 0x400000 })
        );
    }
}
