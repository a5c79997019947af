//! User processes: one kernel thread each, with its own address space and file table.
//!
//! A [`Process`] is owned by the thread that runs it (as its `thread::UserTask`); only that
//! thread touches it (through [`current`]). What a parent needs after the child has gone
//! (the exit status) lives in a shared [`ChildState`].
//!
//! Lifecycle: [`start_first`] (from the command line) or [`fork`] create a process and its
//! thread; [`exec`] replaces its program; [`exit`] prints `NAME: exit(STATUS)`, releases
//! everything (frames, page tables, files) and wakes a waiting parent. A process's user
//! memory is a [`vm::Memory`]: this module creates, copies and releases it; the page-fault
//! path is `vm`'s.

pub mod fd;
pub mod load;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use abi::layout::PAGE_SIZE;

use crate::arch::x86_64::trap::TrapFrame;
use crate::arch::x86_64::user::{USER_CS, USER_DS, USER_RFLAGS};
use crate::mm::frame::{self, Pool};
use crate::mm::page_table;
use crate::stats;
use crate::sync::Semaphore;
use crate::vm::{self, Memory};
use crate::{platform, println, thread};

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
    /// User memory: page tables, supplemental page table, mappings, executable.
    pub mem: Box<Memory>,
    pub fds: fd::FdTable,
    pub children: Vec<Arc<ChildState>>,
    /// This process's own record, shared with its parent.
    state: Arc<ChildState>,
    /// The user stack pointer when the current system call was made (stack growth inside a
    /// system call is judged against it).
    pub syscall_rsp: u64,
}

// SAFETY: `Process` is the only type that implements `UserTask` (the trait's contract).
unsafe impl thread::UserTask for Process {
    /// Loads this process's page tables if they are not loaded (on every switch to it).
    fn activate(&self) {
        self.mem.activate();
    }
}

/// The process the running thread runs, if any (see `thread::current_task`).
#[inline(always)]
pub fn current() -> Option<&'static mut Process> {
    thread::current_task::<Process>()
}

fn new_state(pid: Pid) -> Arc<ChildState> {
    Arc::new(ChildState {
        pid,
        exited: Semaphore::new(0),
        status: AtomicI32::new(0),
        waited: AtomicBool::new(false),
    })
}

/// Starts the first process from the command line and waits for it; returns its exit
/// status (what the machine powers off with).
pub fn start_first(cmdline: &[u8]) -> i32 {
    // System calls are needed from here on only (each MSR write costs where ring 0 is
    // emulated, so a boot without a program skips them).
    platform::init_user_entry();
    vm::fault::init(crate::boot::info());
    if !vm::frame_table::init() {
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
    let Some(mut mem) = Memory::new() else {
        return KILLED;
    };
    mem.pid = pid as u32;
    let process = Box::new(Process {
        pid,
        name: String::from_utf8_lossy(name).into_owned(),
        mem,
        fds: fd::FdTable::new(),
        children: Vec::new(),
        state: state.clone(),
        syscall_rsp: 0,
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
    platform::disable_interrupts();
    let process = current().expect("proc: process thread without a process");
    // The load is most of a big program's start (an SPT entry per page): in the fast mode
    // it runs at CPL 3, as an `exec` there does.
    match platform::run_kernel_work(|| load::load(process, cmdline)) {
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
    unsafe { platform::enter_user(&frame) }
}

/// Resets `frame` so that returning from the current trap starts the program at `start`
/// (exec).
pub fn restart_frame(frame: &mut TrapFrame, start: &Start) {
    *frame = start_frame(start);
}

/// Ends the running process with `status`: prints `NAME: exit(STATUS)`, frees its memory and
/// files, tells the parent, and ends the thread. Never returns.
pub fn exit(status: i32) -> ! {
    let mut process = thread::take_current_task::<Process>().expect("proc: exit without a process");
    if status == KILLED && process.mem.out_of_memory {
        println!("{}: out of memory", process.name);
    }
    println!("{}: exit({status})", process.name);
    // Memory (mappings first: dirty pages go back to their files), then files (a removed
    // file's blocks are freed at its last close).
    page_table::activate_kernel();
    process.mem.release();
    process.fds.close_all();
    let state = process.state.clone();
    drop(process);
    state.status.store(status, Ordering::Relaxed);
    state.exited.up();
    thread::exit()
}

/// Waits for direct child `pid` and returns its status; -1 if `pid` is not a child or was
/// waited for already (a killed child's status is -1 too).
pub fn wait(pid: Pid) -> i32 {
    let Some(process) = current() else {
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
    let Some(parent) = current() else {
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
    let Some(mut mem) = Memory::fork(&mut parent.mem) else {
        return KILLED;
    };
    let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed) as Pid;
    mem.pid = pid as u32;
    stats::bump(&stats::page().processes);
    let state = new_state(pid);
    let child = Box::new(Process {
        pid,
        name: String::from_utf8_lossy(name).into_owned(),
        mem,
        fds: parent.fds.duplicate(),
        children: Vec::new(),
        state: state.clone(),
        syscall_rsp: 0,
    });
    let mut child_frame = *frame;
    child_frame.rax = 0;
    match thread::spawn_forked(child, child_frame) {
        Ok(_) => {
            parent.children.push(state);
            pid
        }
        Err(mut child) => {
            child.mem.release();
            KILLED
        }
    }
}

/// Replaces the running program with `cmdline` (keeping name, pid and files). On success
/// `frame` is rewritten so that returning from the system call starts the new program; on
/// failure (after the loader's message) the caller ends the process with -1.
pub fn exec(cmdline: &[u8], frame: &mut TrapFrame) -> Result<(), ()> {
    let process = current().ok_or(())?;
    let start = load::exec(process, cmdline)?;
    restart_frame(frame, &start);
    Ok(())
}
