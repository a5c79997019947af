//! The ELF checks the kernel's loader and `vmm run` share (`abi::elf`), on arbitrary
//! bytes as a whole file: never a panic, and a file they accept has every loadable
//! segment inside the file and user memory.
#![no_main]

use abi::elf::{PHDR_SIZE, ProgramHeader, check_header, check_segments};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let Ok(info) = check_header(data, len) else {
        return;
    };
    let Some(table) = usize::try_from(info.phoff)
        .ok()
        .and_then(|at| data.get(at..at.checked_add(info.phnum.checked_mul(PHDR_SIZE)?)?))
    else {
        return;
    };
    let phdrs = table
        .chunks_exact(PHDR_SIZE)
        .map(|b| ProgramHeader::parse(b.try_into().expect("56 bytes")));
    let e_type = u16::from_le_bytes([data[16], data[17]]);
    if check_segments(e_type, phdrs.clone(), len).is_ok() {
        for ph in phdrs.filter(|ph| ph.p_type == 1) {
            assert!(
                ph.p_offset
                    .checked_add(ph.p_filesz)
                    .is_some_and(|end| end <= len)
            );
            assert!(
                ph.p_vaddr
                    .checked_add(ph.p_memsz)
                    .is_some_and(|end| end <= abi::layout::KERN_BASE)
            );
        }
    }
});
