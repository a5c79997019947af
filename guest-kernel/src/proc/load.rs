//! Loading a program: the ELF checks of guest-abi.md §1 (with `goblin`), the segments, and
//! the stack with the arguments (§3).
//!
//! Loading is lazy: exec only registers each segment page in the supplemental page table
//! (which part of the executable fills it); the first touch loads it (`vm::fault`). Two
//! segments may share a page (modern linkers put R and R-X segments back to back): the
//! page then carries both ranges and is writable if either segment is. The first stack
//! page is mapped at once, holding the arguments.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use abi::elf::{self, ElfError, ProgramHeader};
use abi::layout::PAGE_SIZE;

use super::{Process, Start};
use crate::arch::x86_64::user::TRAMPOLINE_VA;
use crate::fs::{self, File};
use crate::mm::frame::{self, Frame, Zero};
use crate::mm::page_table::{AddressSpace, PageFlags};
use crate::println;
use crate::vm::spt::{FileRange, Spt};
use crate::vm::{self, Memory, USER_STACK, frame_table};
/// Why a program could not be loaded. The console gets the ABI's one line for each
/// (guest-abi.md §1), or `NAME: out of memory` for a program memory and swap cannot hold;
/// the VMM's standard error gets the precise reason (`console::diagnostic`).
enum LoadError {
    /// No such file.
    Open,
    /// Not an executable this kernel loads (`abi::elf`), with the interpreter a dynamically
    /// linked one asks for, if it could be read.
    Elf(ElfError, Option<String>),
    /// More pages than memory and swap hold together.
    TooBig { pages: u64, budget: u64 },
    /// No frame for the first stack page: memory and swap are full.
    NoFrame,
    /// The arguments do not fit the first stack page.
    ArgsTooLong,
    /// The kernel's own memory ran out while loading.
    NoKernelMemory,
}

/// Longest interpreter path a diagnostic names.
const INTERP_MAX: usize = 128;

impl From<ElfError> for LoadError {
    fn from(e: ElfError) -> Self {
        LoadError::Elf(e, None)
    }
}

/// The words of a command line: split on spaces, runs of spaces being one separator.
pub fn words(cmdline: &[u8]) -> impl Iterator<Item = &[u8]> {
    cmdline.split(|&b| b == b' ').filter(|w| !w.is_empty())
}

/// The program name: the first word of the command line.
pub fn program_name(cmdline: &[u8]) -> Option<&[u8]> {
    words(cmdline).next()
}

/// Loads the program of `cmdline` into `process`'s (empty) user memory; prints the
/// `load:` line on failure.
pub fn load(process: &mut Process, cmdline: &[u8]) -> Result<Start, ()> {
    let name = program_name(cmdline).ok_or(())?;
    let mem = &mut *process.mem;
    match load_into(&mut mem.space, name, cmdline) {
        Ok((start, exe, spt, zero_run)) => {
            mem.exe = Some(exe);
            mem.spt = spt;
            mem.set_zero_run(zero_run);
            adopt_stack(mem);
            Ok(start)
        }
        Err(e) => {
            report(name, e, mem);
            Err(())
        }
    }
}

/// Loads the program of `cmdline` into new user memory and, if that works, makes it
/// `process`'s, releasing the old one. Prints the `load:` line on failure.
pub fn exec(process: &mut Process, cmdline: &[u8]) -> Result<Start, ()> {
    let name = program_name(cmdline).ok_or(())?;
    let mut space = vm::new_space().ok_or(())?;
    match load_into(&mut space, name, cmdline) {
        Ok((start, exe, spt, zero_run)) => {
            process.mem.replace_program(space, spt, exe);
            process.mem.set_zero_run(zero_run);
            adopt_stack(&mut process.mem);
            Ok(start)
        }
        Err(e) => {
            // The new space's only frame (the stack's) was never registered: free it here.
            space.unmap_all(|va, f| {
                if va != TRAMPOLINE_VA {
                    frame::free(f);
                }
            });
            report(name, e, &mut process.mem);
            Err(())
        }
    }
}

/// Enters the first stack page (mapped by `setup_stack` before the space was the
/// process's) in the frame table.
fn adopt_stack(mem: &mut Memory) {
    let va = USER_STACK - PAGE_SIZE;
    if let Some(m) = mem.space.translate(va) {
        frame_table::register(m.frame, mem, va);
    }
}

/// Reports a failed load: the console line (none for [`LoadError::TooBig`]: `mem` is
/// marked out of memory, so the exit prints `NAME: out of memory`, as for a fault that
/// finds no memory) and the reason on the VMM's standard error.
fn report(name: &[u8], error: LoadError, mem: &mut Memory) {
    let name = core::str::from_utf8(name).unwrap_or("?");
    match &error {
        LoadError::Open => println!("load: {name}: open failed"),
        LoadError::TooBig { .. } | LoadError::NoFrame => mem.out_of_memory = true,
        _ => println!("load: {name}: error loading executable"),
    }
    let diagnostic = |why: core::fmt::Arguments<'_>| {
        crate::console::diagnostic(format_args!("load: {name}: {why}"));
    };
    match error {
        LoadError::Open => diagnostic(format_args!(
            "no such file on the guest's disk (put it there with --put, or run it as vmm run PROGRAM)"
        )),
        LoadError::Elf(e, interp) => match interp {
            Some(path) => diagnostic(format_args!(
                "{} (interpreter {}); {}",
                e.describe(),
                path,
                e.advice()
            )),
            None => diagnostic(format_args!("{}; {}", e.describe(), e.advice())),
        },
        LoadError::TooBig { pages, budget } => diagnostic(format_args!(
            "needs {pages} pages, and memory and swap together hold {budget}: give the VM more memory (--mem) or swap (--swap-mib)"
        )),
        LoadError::NoFrame => diagnostic(format_args!(
            "no frame for its first stack page: memory and swap are full"
        )),
        LoadError::ArgsTooLong => diagnostic(format_args!(
            "the command line does not fit the first stack page with its argv (4 KiB)"
        )),
        LoadError::NoKernelMemory => diagnostic(format_args!(
            "the kernel ran out of its own memory loading it: give the VM more memory (--mem)"
        )),
    }
}

/// Checks the executable `name` and registers its pages; returns where it starts, the
/// executable (open with writes denied), the page table describing its pages and its
/// zero-fill run ([`zero_fill_run`]).
fn load_into(
    space: &mut AddressSpace,
    name: &[u8],
    cmdline: &[u8],
) -> Result<(Start, File, Spt, (u64, u64)), LoadError> {
    let mut exe = fs::open(name).ok_or(LoadError::Open)?;
    let file_len = exe.length();
    let mut head = [0u8; elf::EHDR_SIZE];
    let got = exe.read_at(&mut head, 0);
    let info = elf::check_header(&head[..got], file_len)?;
    let mut table = vec![0u8; info.phnum * elf::PHDR_SIZE];
    if exe.read_at(&mut table, info.phoff) != table.len() {
        return Err(ElfError::BadHeader.into());
    }
    let headers: Vec<ProgramHeader> = table
        .chunks_exact(elf::PHDR_SIZE)
        .map(|raw| ProgramHeader::parse(raw.try_into().expect("PHDR_SIZE bytes")))
        .collect();
    let e_type = u16::from_le_bytes([head[16], head[17]]);
    elf::check_segments(e_type, headers.iter().copied(), file_len).map_err(|e| match e {
        ElfError::Dynamic {
            interp: Some((at, len)),
        } => LoadError::Elf(e, Some(read_interp(&mut exe, at, len))),
        e => e.into(),
    })?;
    let pages = headers
        .iter()
        .filter(|ph| ph.p_type == elf::PT_LOAD)
        .map(segment_pages)
        .sum::<u64>()
        + vm::STACK_PAGES;
    let budget = vm::page_budget();
    if pages > budget {
        return Err(LoadError::TooBig { pages, budget });
    }
    let mut spt = Spt::new();
    for ph in headers.iter().filter(|ph| ph.p_type == elf::PT_LOAD) {
        register_segment(&mut spt, ph)?;
    }
    // Room for every stack page now, so that stack growth registers pages without
    // allocating (the fault path allocates nothing).
    if !spt.make_room(vm::STACK_PAGES, vm::page_budget()) {
        return Err(LoadError::NoKernelMemory);
    }
    let start = setup_stack(space, info.entry, cmdline)?;
    spt.add_anon(USER_STACK - PAGE_SIZE, true);
    if !vm::reserve_mappings(space, &spt) {
        return Err(LoadError::NoKernelMemory);
    }
    exe.deny_write();
    Ok((start, exe, spt, zero_fill_run(&headers)))
}

/// The interpreter path (`PT_INTERP`) at `at`, `len` bytes of the file, up to its NUL and
/// to [`INTERP_MAX`] bytes; as much as could be read.
fn read_interp(exe: &mut File, at: u64, len: u64) -> String {
    let mut raw = [0u8; INTERP_MAX];
    let n = exe.read_at(&mut raw[..(len as usize).min(INTERP_MAX)], at);
    let end = raw[..n].iter().position(|&b| b == 0).unwrap_or(n);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The longest run of pages `[lo, hi)` that a writable segment holds past its file bytes
/// (its bss) and that no other segment's file bytes reach: each is registered writable with
/// no range of the executable (`Page::Uninit`), a zero-fill page until it loads
/// (`Memory::zero_run`). `(0, 0)` if there is none. Looks at the headers only: the first
/// program is loaded in ring 0, where a look at each page would cost.
fn zero_fill_run(headers: &[ProgramHeader]) -> (u64, u64) {
    let loads = || headers.iter().filter(|ph| ph.p_type == elf::PT_LOAD);
    let file_pages = |ph: &ProgramHeader| {
        let end = (ph.p_vaddr + ph.p_filesz).next_multiple_of(PAGE_SIZE);
        (ph.p_vaddr & !(PAGE_SIZE - 1))..end
    };
    let mut best = (0, 0);
    for (i, ph) in loads().enumerate().filter(|(_, ph)| ph.writable()) {
        let lo = (ph.p_vaddr + ph.p_filesz).next_multiple_of(PAGE_SIZE);
        let hi = (ph.p_vaddr + ph.p_memsz).next_multiple_of(PAGE_SIZE);
        let clashes = loads().enumerate().any(|(j, other)| {
            let file = file_pages(other);
            j != i && other.p_filesz > 0 && file.start < hi && lo < file.end
        });
        let in_the_way = (lo < USER_STACK && vm::STACK_LIMIT < hi)
            || (lo..hi).contains(&TRAMPOLINE_VA)
            || hi > vm::ZERO_RUN_LIMIT;
        if lo < hi && !clashes && !in_the_way && hi - lo > best.1 - best.0 {
            best = (lo, hi);
        }
    }
    best
}

fn frame_bytes(f: Frame) -> &'static mut [u8] {
    // SAFETY: the loader owns the frame while it fills it; the direct map covers it.
    unsafe { core::slice::from_raw_parts_mut(f.as_ptr(), PAGE_SIZE as usize) }
}

/// Pages a checked segment spans.
fn segment_pages(ph: &ProgramHeader) -> u64 {
    (ph.p_vaddr + ph.p_memsz - (ph.p_vaddr & !(PAGE_SIZE - 1))).div_ceil(PAGE_SIZE)
}

/// Registers every page of a checked segment, with the part of the file that fills it.
fn register_segment(spt: &mut Spt, ph: &ProgramHeader) -> Result<(), LoadError> {
    let writable = ph.writable();
    let first = ph.p_vaddr & !(PAGE_SIZE - 1);
    let end = ph.p_vaddr + ph.p_memsz;
    let file_end_va = ph.p_vaddr + ph.p_filesz;
    // The whole program was checked against the budget: only the heap can refuse.
    if !spt.make_room(segment_pages(ph), vm::page_budget()) {
        return Err(LoadError::NoKernelMemory);
    }
    for page in (first..end).step_by(PAGE_SIZE as usize) {
        let from = page.max(ph.p_vaddr);
        let to = (page + PAGE_SIZE).min(file_end_va);
        let range = (from < to).then(|| FileRange {
            page_offset: (from - page) as u16,
            len: (to - from) as u16,
            file_offset: ph.p_offset + (from - ph.p_vaddr),
        });
        if !spt.add_segment_page(page, writable, range) {
            return Err(LoadError::NoKernelMemory);
        }
    }
    Ok(())
}

/// Maps the first stack page and lays out the arguments (guest-abi.md §3): the strings at
/// the top, padding, argv[argc] = NULL, argv[argc-1] .. argv[0], a fake return address.
/// `argv` is 16-byte aligned, so `rsp` is as at a function's entry. The whole layout must
/// fit the page.
fn setup_stack(space: &mut AddressSpace, entry: u64, cmdline: &[u8]) -> Result<Start, LoadError> {
    let base = USER_STACK - PAGE_SIZE;
    let page = frame_table::alloc(Zero::Yes).ok_or(LoadError::NoFrame)?;
    if space.map(base, page, PageFlags { writable: true }).is_err() {
        frame::free(page);
        return Err(LoadError::NoKernelMemory);
    }
    let bytes = frame_bytes(page);
    let args: Vec<&[u8]> = words(cmdline).collect();
    let mut sp = USER_STACK;
    let mut pointers = Vec::with_capacity(args.len());
    for arg in args.iter().rev() {
        let len = arg.len() as u64 + 1;
        sp = sp
            .checked_sub(len)
            .filter(|&s| s >= base)
            .ok_or(LoadError::ArgsTooLong)?;
        let at = (sp - base) as usize;
        bytes[at..at + arg.len()].copy_from_slice(arg);
        bytes[at + arg.len()] = 0;
        pointers.push(sp);
    }
    pointers.reverse();
    let argc = args.len() as u64;
    // argv must be 16-aligned: place it, then check the strings are above it.
    let argv = sp
        .checked_sub(8 * (argc + 1))
        .ok_or(LoadError::ArgsTooLong)?
        & !15;
    let rsp = argv
        .checked_sub(8)
        .filter(|&r| r >= base)
        .ok_or(LoadError::ArgsTooLong)?;
    for (i, ptr) in pointers.iter().chain(core::iter::once(&0)).enumerate() {
        let at = (argv - base) as usize + 8 * i;
        bytes[at..at + 8].copy_from_slice(&ptr.to_le_bytes());
    }
    bytes[(rsp - base) as usize..(rsp - base) as usize + 8].fill(0);
    Ok(Start {
        entry,
        rsp,
        argc,
        argv,
    })
}
