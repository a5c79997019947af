//! User processes: one kernel thread each, with its own address space and file table.
//!
//! A [`Process`] is owned by the thread that runs it; only that thread touches it (through
//! [`crate::thread::current_process`]). What a parent needs after the child has gone (the
//! exit status) lives in a shared [`ChildState`].
//!
//! Lifecycle: [`start_first`] (from the command line) or [`fork`] create a process and its
//! thread; [`exec`] replaces its program; [`exit`] prints `NAME: exit(STATUS)`, releases
//! everything (frames, page tables, files) and wakes a waiting parent.

pub mod fd;
pub mod load;
pub mod mmap;
pub mod paging;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use abi::devices::{
    PAGE_OP_DONE, PAGE_OP_MAPPED_NEW, PAGE_OP_NOT_MAPPED, SYSCTL_PAGE_MAP, SYSCTL_SWAP_IN_MAP,
    SYSCTL_ZERO_MAP,
};
use abi::layout::PAGE_SIZE;

use crate::arch::x86_64::trap::TrapFrame;
use crate::arch::x86_64::user::{self, TRAMPOLINE_VA, USER_CS, USER_DS, USER_RFLAGS};
use crate::drivers::sysctl;
use crate::fs;
use crate::mm::frame::{self, Frame, Pool, Zero};
use crate::mm::page_table::{self, AddressSpace, PageFlags};
use crate::mm::spt::{FileRange, Page, Spt};
use crate::stats::{self, FaultOutcome};
use crate::sync::Semaphore;
use crate::{println, thread};

/// Process identifier (the first process is 1).
pub type Pid = i32;

/// Exit status of a process the kernel killed.
pub const KILLED: i32 = -1;
/// Kernel frames kept free for the kernel's own use: `fork` fails below this (a process
/// needs about a dozen: page tables, kernel stack, its share of the heap).
const KERNEL_RESERVE_PAGES: u64 = 256;

static NEXT_PID: AtomicU64 = AtomicU64::new(1);

/// What a parent keeps of a child: its pid and how it ended.
pub struct ChildState {
    pub pid: Pid,
    /// Raised once, when the child has exited.
    exited: Semaphore,
    status: AtomicI32,
    /// Set by the parent's `wait`, so a second wait fails.
    waited: AtomicBool,
}

/// A user process.
pub struct Process {
    /// Not read yet; kept for statistics and diagnostics.
    #[allow(dead_code)]
    pub pid: Pid,
    /// The first word of the command line (or the name given to fork); exec keeps it.
    pub name: String,
    pub space: AddressSpace,
    pub fds: fd::FdTable,
    /// The running executable, open with writes denied while it runs.
    pub exe: Option<fs::File>,
    pub children: Vec<Arc<ChildState>>,
    /// This process's own record, shared with its parent.
    state: Arc<ChildState>,
    /// The user stack pointer when the current system call was made (stack growth inside a
    /// system call is judged against it).
    pub syscall_rsp: u64,
    /// File mappings made with `mmap`.
    pub mappings: BTreeMap<u64, mmap::Mapping>,
    /// What each page of the program should hold (loaded on first touch).
    pub spt: Spt,
    /// A page fault found no memory (no free frame and nothing to evict): the exit line is
    /// preceded by `NAME: out of memory`.
    pub out_of_memory: bool,
}

impl Process {
    /// Loads this process's page tables if they are not loaded (on every switch to it).
    pub fn activate(&self) {
        self.space.activate_if_needed();
    }
}

fn new_state(pid: Pid) -> Arc<ChildState> {
    Arc::new(ChildState {
        pid,
        exited: Semaphore::new(0),
        status: AtomicI32::new(0),
        waited: AtomicBool::new(false),
    })
}

/// A fresh address space with the system-call trampoline mapped.
fn new_space() -> Option<AddressSpace> {
    let mut space = AddressSpace::new()?;
    let trampoline = Frame::from_gpa(user::trampoline_frame_gpa());
    space
        .map(TRAMPOLINE_VA, trampoline, PageFlags { writable: false })
        .ok()?;
    Some(space)
}

/// Starts the first process from the command line and waits for it; returns its exit
/// status (what the machine powers off with).
pub fn start_first(cmdline: &[u8]) -> i32 {
    // System calls are needed from here on only (each MSR write costs where ring 0 is
    // emulated, so a boot without a program skips them).
    user::init();
    if !paging::init() {
        println!(
            "kernel: not enough kernel memory for the frame table: give the VM more memory (--mem)"
        );
        return KILLED;
    }
    let Some(name) = load::program_name(cmdline) else {
        println!("kernel: empty command line");
        return KILLED;
    };
    let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed) as Pid;
    stats::bump(&stats::page().processes);
    let state = new_state(pid);
    let Some(space) = new_space() else {
        return KILLED;
    };
    let process = Box::new(Process {
        pid,
        name: String::from_utf8_lossy(name).into_owned(),
        space,
        fds: fd::FdTable::new(),
        exe: None,
        children: Vec::new(),
        state: state.clone(),
        syscall_rsp: 0,
        mappings: BTreeMap::new(),
        spt: Spt::new(),
        out_of_memory: false,
    });
    let cmdline: Vec<u8> = cmdline.to_vec();
    if thread::spawn_process(process, move || run_program(&cmdline)).is_err() {
        return KILLED;
    }
    state.exited.down();
    state.status.load(Ordering::Relaxed)
}

/// First code of a process started from a command line: load the program, enter it.
fn run_program(cmdline: &[u8]) -> ! {
    // Like every system call and fault, loading runs with interrupts off (the frame table
    // relies on it); entering user mode turns them on.
    crate::arch::x86_64::cpu::disable_interrupts();
    let process = thread::current_process().expect("proc: process thread without a process");
    match load::load(process, cmdline) {
        Ok(start) => enter(&start),
        Err(()) => exit(KILLED),
    }
}

/// Where a loaded program starts.
pub struct Start {
    pub entry: u64,
    pub rsp: u64,
    pub argc: u64,
    pub argv: u64,
}

/// A user-mode frame that starts a program: registers zero but `rdi`/`rsi`.
fn start_frame(start: &Start) -> TrapFrame {
    TrapFrame {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rbp: 0,
        rdi: start.argc,
        rsi: start.argv,
        rdx: 0,
        rcx: 0,
        rbx: 0,
        rax: 0,
        vector: 0,
        error_code: 0,
        rip: start.entry,
        cs: USER_CS,
        rflags: USER_RFLAGS,
        rsp: start.rsp,
        ss: USER_DS,
    }
}

/// Enters user mode at `start` on a fresh stack frame. Never returns.
fn enter(start: &Start) -> ! {
    let frame = start_frame(start);
    // SAFETY: a user-mode frame (user selectors, user rip/rsp) on this thread's kernel
    // stack, whose top the scheduler installed as the ring-0 entry stack.
    unsafe { user::enter_user(&frame) }
}

/// Resets `frame` so that returning from the current trap starts the program at `start`
/// (exec).
pub fn restart_frame(frame: &mut TrapFrame, start: &Start) {
    *frame = start_frame(start);
}

/// Ends the running process with `status`: prints `NAME: exit(STATUS)`, frees its memory and
/// files, tells the parent, and ends the thread. Never returns.
pub fn exit(status: i32) -> ! {
    let mut process = thread::take_current_process().expect("proc: exit without a process");
    if status == KILLED && process.out_of_memory {
        println!("{}: out of memory", process.name);
    }
    println!("{}: exit({status})", process.name);
    // Mappings first (dirty pages go back to their files), then files (a removed file's
    // blocks are freed at its last close), then memory.
    mmap::unmap_all(&mut process);
    process.fds.close_all();
    process.exe = None;
    page_table::activate_kernel();
    let owner: *mut Process = &mut *process;
    release_memory(owner, &mut process.space, &process.spt);
    let state = process.state.clone();
    drop(process);
    state.status.store(status, Ordering::Relaxed);
    state.exited.up();
    thread::exit()
}

/// What a user page fault (or a system call's touch of user memory) found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No page is mapped at the address.
    Missing,
    /// A write to a page mapped read-only.
    Write,
    /// Any other access to a mapped page: never allowed.
    Denied,
}

/// Resolves a fault of `process` at `addr` ([`claim`] for a missing page, [`break_cow`] for
/// a write to a read-only page; any other access kills), with `rsp` the user stack pointer
/// to judge stack growth by, and records it on the stats page (`in_syscall`: a system call
/// met it). Returns whether the process may go on.
pub fn fault(process: &mut Process, addr: u64, rsp: u64, access: Access, in_syscall: bool) -> bool {
    let start = stats::fault_start();
    let resolved = match access {
        Access::Missing => claim(process, addr, rsp),
        Access::Write => break_cow(process, addr),
        Access::Denied => None,
    };
    let outcome = match resolved {
        Some(outcome) => outcome,
        None if process.out_of_memory => FaultOutcome::OutOfMemory,
        None => FaultOutcome::Killed,
    };
    stats::fault_end(start, outcome, in_syscall);
    resolved.is_some()
}

/// Brings in the page at `addr` if the process owns it and no frame backs it now: a
/// program page (the executable's bytes, read straight into the frame, zeros elsewhere,
/// not cleared again if the frame is known to be zero), a page in swap (read straight into
/// the frame) or a page of a file mapping (the mapped file's bytes). A page the process
/// does not own may be stack growth, judged against the user stack pointer `rsp`
/// ([`grow_stack`]). Returns how it did, or `None` if it did not; if memory ran out, the
/// process is marked so.
fn claim(process: &mut Process, addr: u64, rsp: u64) -> Option<FaultOutcome> {
    let page = addr & !(PAGE_SIZE - 1);
    let Some(state) = process.spt.get_mut(page) else {
        return grow_stack(process, addr, rsp).then_some(FaultOutcome::StackGrowth);
    };
    // Each case copies out only the fields it needs (where ring 0 is emulated, every memory
    // access costs): the entry is not used after this, as eviction may change it.
    let oom = &mut process.out_of_memory;
    let (frame, outcome) = match *state {
        Page::Uninit {
            writable,
            ranges: [None, None],
        }
        | Page::Anon {
            writable,
            slot: None,
        } => (
            map_zeroed(&mut process.space, oom, page, writable),
            FaultOutcome::ZeroFill,
        ),
        // At least one range: the case above took the pages with none.
        Page::Uninit { writable, ranges } => {
            let exe = process.exe.as_ref()?;
            let frame = fill_and_map(&mut process.space, oom, page, writable, exe, &ranges);
            (frame, FaultOutcome::ElfLoad)
        }
        Page::Mapped { writable, range } => {
            let m = mmap::find(&process.mappings, page)?;
            let frame = fill_and_map(
                &mut process.space,
                oom,
                page,
                writable,
                &m.file,
                &[Some(range)],
            );
            (frame, FaultOutcome::MmapLoad)
        }
        Page::Anon {
            writable,
            slot: Some(slot),
        } => {
            // The page leaves its slot now, in the one lookup: the entry is not touched
            // again (see `swap_in`). Only the slot changes (one store, not the whole
            // entry).
            if let Page::Anon { slot, .. } = state {
                *slot = None;
            }
            (
                swap_in(&mut process.space, oom, page, writable, slot),
                FaultOutcome::SwapIn,
            )
        }
    };
    paging::register(frame?, process, page);
    Some(outcome)
}

/// Maps a zeroed frame at `page` (a zero-fill fault); returns it. A frame that is not zero
/// yet is cleared by the VMM in the exit that maps it.
#[inline(always)]
fn map_zeroed(
    space: &mut AddressSpace,
    oom: &mut bool,
    page: u64,
    writable: bool,
) -> Option<Frame> {
    let (f, is_zero) = fault_frame(oom, paging::alloc_as_is(Zero::Yes))?;
    let fill = if is_zero {
        SYSCTL_PAGE_MAP
    } else {
        SYSCTL_ZERO_MAP
    };
    vmm_fill_and_map(space, page, f, writable, fill, 0)
}

/// Has the VMM fill the fault's frame `f` and map it at `page` with page operation `fill`
/// (`SYSCTL_PAGE_MAP`, which fills nothing, `SYSCTL_ZERO_MAP` or `SYSCTL_SWAP_IN_MAP`, with
/// second argument `b`), in one VM exit: where ring 0 is emulated, the kernel's own
/// page-table walk costs several exits' worth. Maps it here if the VMM did not (a
/// page-table page is missing: the first page of a region). Returns the frame, or frees it
/// if the operation failed or the page cannot be mapped.
#[inline(always)]
fn vmm_fill_and_map(
    space: &mut AddressSpace,
    page: u64,
    f: Frame,
    writable: bool,
    fill: u16,
    b: u32,
) -> Option<Frame> {
    let request = space.map_request(page, PageFlags { writable });
    match sysctl::page_op_and_map(fill, f.number(), b, request) {
        PAGE_OP_DONE => Some(f),
        PAGE_OP_MAPPED_NEW => {
            space.listed(page);
            Some(f)
        }
        PAGE_OP_NOT_MAPPED => map_or_free(space, page, f, writable),
        _ => {
            frame::free(f);
            None
        }
    }
}

/// Maps the fault's frame `f` at `page` and returns it, or frees it if it cannot be mapped.
fn map_or_free(space: &mut AddressSpace, page: u64, f: Frame, writable: bool) -> Option<Frame> {
    if space.map(page, f, PageFlags { writable }).is_err() {
        frame::free(f);
        return None;
    }
    Some(f)
}

/// Passes on `taken`, a page fault's user frame from `paging` (which evicts if needed),
/// marking the process out of memory if there is none.
#[inline(always)]
fn fault_frame<T>(oom: &mut bool, taken: Option<T>) -> Option<T> {
    *oom |= taken.is_none();
    taken
}

/// Maps at `page` a frame holding `ranges` of `file` and zeros elsewhere; returns it.
#[inline(always)]
fn fill_and_map(
    space: &mut AddressSpace,
    oom: &mut bool,
    page: u64,
    writable: bool,
    file: &fs::File,
    ranges: &[Option<FileRange>],
) -> Option<Frame> {
    let covered: u64 = ranges.iter().flatten().map(|r| u64::from(r.len)).sum();
    let zero = if covered == PAGE_SIZE {
        Zero::No
    } else {
        Zero::Yes
    };
    let f = fault_frame(oom, paging::alloc(zero))?;
    for range in ranges.iter().flatten() {
        let at = usize::from(range.page_offset);
        // SAFETY: the frame is ours until mapped; the range lies inside the page (checked
        // when it was registered).
        let into =
            unsafe { core::slice::from_raw_parts_mut(f.as_ptr().add(at), usize::from(range.len)) };
        if file.read_at(into, range.file_offset) != into.len() {
            frame::free(f);
            return None;
        }
    }
    vmm_fill_and_map(space, page, f, writable, SYSCTL_PAGE_MAP, 0)
}

/// Maps at `page` a frame with the anonymous page's contents, read from swap `slot` (by
/// the VMM, in the exit that maps it: see `mm::swap`); the page lets go of the slot, which
/// its entry no longer names. Also on failure: the process dies then, and its exit frees
/// only the slots its entries name.
#[inline(always)]
fn swap_in(
    space: &mut AddressSpace,
    oom: &mut bool,
    page: u64,
    writable: bool,
    slot: u32,
) -> Option<Frame> {
    let Some(f) = fault_frame(oom, paging::alloc(Zero::No)) else {
        crate::mm::swap::release_slot(slot);
        return None;
    };
    vmm_fill_and_map(space, page, f, writable, SYSCTL_SWAP_IN_MAP, slot)
}

/// Most pages one process may register (program, mappings): what memory and swap together
/// can hold. Registering costs kernel heap even before a page is touched, so a program
/// asking for more (a huge bss or mmap) is refused instead of exhausting the kernel.
pub fn page_budget() -> u64 {
    frame::stats(Pool::User).total + crate::mm::swap::slot_count()
}

/// Lowest address the stack may grow to: 1 MiB below its top.
pub const STACK_LIMIT: u64 = load::USER_STACK - (1 << 20);
/// Pages the stack may grow to.
pub const STACK_PAGES: u64 = (load::USER_STACK - STACK_LIMIT) / PAGE_SIZE;

/// Prepares `space` to map every page `spt` registers plus a full stack and the trampoline
/// without allocating on the fault path (design rule: the fault path allocates nothing).
/// Called whenever pages are registered (exec, mmap) and for a forked child.
pub fn reserve_mappings(space: &mut AddressSpace, spt: &Spt) -> bool {
    space.reserve_for(spt.len() + STACK_PAGES + 1)
}

/// Grows the stack to cover `addr`, a page the process does not own (`claim` looked it up),
/// if the access is a valid stack growth (guest-abi.md §7): inside the 1 MiB below
/// `USER_STACK`, and at or above `rsp - 8`. Maps a zeroed page, registered as anonymous
/// (room for it was made at exec); returns whether it did (false: not stack growth, or no
/// memory, which marks the process).
fn grow_stack(process: &mut Process, addr: u64, rsp: u64) -> bool {
    if !(STACK_LIMIT..load::USER_STACK).contains(&addr) || addr < rsp.saturating_sub(8) {
        return false;
    }
    let page = addr & !(PAGE_SIZE - 1);
    let Some(f) = map_zeroed(&mut process.space, &mut process.out_of_memory, page, true) else {
        return false;
    };
    process.spt.add_anon(page, true);
    paging::register(f, process, page);
    true
}

/// Releases the user memory process `owner` holds in `space` and `spt` (its own at exit,
/// the old ones at exec): every frame (freed when no other process shares it), every swap
/// slot, and the page-table entries. The trampoline is shared by all: kept.
pub fn release_memory(owner: *mut Process, space: &mut AddressSpace, spt: &Spt) {
    space.unmap_all(|va, f| {
        if va != TRAMPOLINE_VA {
            paging::release(f, owner);
        }
    });
    for slot in spt.slots() {
        crate::mm::swap::release_slot(slot);
    }
}

/// Waits for direct child `pid` and returns its status; -1 if `pid` is not a child or was
/// waited for already (a killed child's status is -1 too).
pub fn wait(pid: Pid) -> i32 {
    let Some(process) = thread::current_process() else {
        return KILLED;
    };
    let Some(at) = process.children.iter().position(|c| c.pid == pid) else {
        return KILLED;
    };
    let child = process.children[at].clone();
    if child.waited.swap(true, Ordering::Relaxed) {
        return KILLED;
    }
    child.exited.down();
    process.children.remove(at);
    child.status.load(Ordering::Relaxed)
}

/// Copies the running process (address space, copy-on-write; files) into a child named
/// `name` that resumes from `frame` with 0 in `rax`. Returns the child's pid, or -1 if a
/// copy failed (nothing of the child is left then).
pub fn fork(name: &[u8], frame: &TrapFrame) -> i32 {
    let Some(parent) = thread::current_process() else {
        return KILLED;
    };
    // Kernel memory must not run out because of user actions (a failed kernel allocation
    // is fatal): refuse new processes while the kernel pool is low.
    let available = frame::stats(Pool::Kernel).free
        + thread::cached_stack_pages()
        + crate::mm::heap::free_bytes() / PAGE_SIZE;
    if available < KERNEL_RESERVE_PAGES {
        return KILLED;
    }
    let Some(spt) = parent.spt.try_clone() else {
        return KILLED;
    };
    let Some(space) = new_space() else {
        return KILLED;
    };
    let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed) as Pid;
    stats::bump(&stats::page().processes);
    let state = new_state(pid);
    let mut child = Box::new(Process {
        pid,
        name: String::from_utf8_lossy(name).into_owned(),
        space,
        fds: parent.fds.duplicate(),
        exe: parent.exe.as_ref().map(|exe| {
            let mut copy = exe.duplicate();
            copy.deny_write();
            copy
        }),
        children: Vec::new(),
        state: state.clone(),
        syscall_rsp: 0,
        mappings: parent
            .mappings
            .iter()
            .map(|(&addr, m)| (addr, m.duplicate()))
            .collect(),
        spt,
        out_of_memory: false,
    });
    // Pages in swap: the child's entries name the same slots.
    for slot in child.spt.slots() {
        crate::mm::swap::share_slot(slot);
    }
    let owner: *mut Process = &mut *child;
    if !reserve_mappings(&mut child.space, &child.spt)
        || share_user_pages(parent, &mut child.space, owner).is_err()
    {
        release_memory(owner, &mut child.space, &child.spt);
        return KILLED;
    }
    let mut child_frame = *frame;
    child_frame.rax = 0;
    match thread::spawn_forked(child, child_frame) {
        Ok(_) => {
            parent.children.push(state);
            pid
        }
        Err(mut child) => {
            let owner: *mut Process = &mut *child;
            release_memory(owner, &mut child.space, &child.spt);
            KILLED
        }
    }
}

/// Gives the child space `to` (of process `owner`) the user pages of `parent`: each frame
/// is shared copy-on-write: the child maps the same frame, both sides lose write access,
/// and the first write of either gets a private copy ([`break_cow`]). Read-only pages are
/// shared for good. A dirty page stays dirty for the child too (so that eviction does not
/// take it for the executable's bytes once the parent has a copy of its own). No frame is
/// allocated, so nothing is evicted while the parent's pages are walked.
fn share_user_pages(
    parent: &mut Process,
    to: &mut AddressSpace,
    owner: *mut Process,
) -> Result<(), ()> {
    let mut pages = Vec::new();
    parent
        .space
        .for_each_user_page(|va, mapping| pages.push((va, mapping)));
    for (va, mapping) in pages {
        if va == TRAMPOLINE_VA {
            continue;
        }
        if !paging::share(mapping.frame, owner) {
            return Err(());
        }
        if to
            .map(va, mapping.frame, PageFlags { writable: false })
            .is_err()
        {
            paging::release(mapping.frame, owner);
            return Err(());
        }
        if mapping.dirty {
            to.mark_dirty(va);
        }
        if mapping.writable || mapping.cow {
            parent.space.mark_cow(va);
            to.mark_cow(va);
        }
    }
    Ok(())
}

/// Handles a write to copy-on-write page `addr`: if another process still shares the
/// frame, the page gets a copy of its own; if not, the frame is simply made writable again.
/// Returns `None` if `addr` is not a copy-on-write page or no frame is free.
fn break_cow(process: &mut Process, addr: u64) -> Option<FaultOutcome> {
    let page = addr & !(PAGE_SIZE - 1);
    let shared = process.space.cow_frame(page)?;
    if !paging::is_shared(shared) {
        process.space.resolve_cow(page, shared);
        return Some(FaultOutcome::CowReuse);
    }
    // Finding a frame may evict: not the one being copied.
    paging::pin(shared);
    let copy = fault_frame(&mut process.out_of_memory, paging::alloc(Zero::No));
    paging::unpin(shared);
    let copy = copy?;
    frame::copy_frame(shared, copy);
    process.space.resolve_cow(page, copy);
    let owner: *mut Process = process;
    paging::release(shared, owner);
    paging::register(copy, owner, page);
    Some(FaultOutcome::CowCopy)
}

/// Replaces the running program with `cmdline` (keeping name, pid and files). On success
/// `frame` is rewritten so that returning from the system call starts the new program; on
/// failure (after the loader's message) the caller ends the process with -1.
pub fn exec(cmdline: &[u8], frame: &mut TrapFrame) -> Result<(), ()> {
    let process = thread::current_process().ok_or(())?;
    let start = load::exec(process, cmdline)?;
    restart_frame(frame, &start);
    Ok(())
}
