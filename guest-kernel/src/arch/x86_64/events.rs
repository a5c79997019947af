//! A user program's events delivered to kernel code at CPL 3: the fast kernel mode's event
//! path, as an experiment the self-tests and benchmarks drive ([`run_user`]).
//!
//! ```text
//! user (CPL 3, its own page tables)  ud2
//! shim (ring 0, shim stack)          CR3 -> kernel view; iretq to the kernel's event entry
//!                                    on the event stack; the user's hardware frame stays
//!                                    on the shim stack
//! kernel (CPL 3, native)             event entry (on the CPL-3 stack `cpl3` keeps): copy
//!                                    the user frame off the shim stack,
//!                                    save the registers (a TrapFrame), call the handler,
//!                                    restore, int3 at `events_return`
//! shim (ring 0)                      CR3 -> the user's tables; iretq with the (changed)
//!                                    user frame
//! user                               goes on
//! ```
//! The events are `ud2` (#UD) and page faults (#PF: the shim also passes the error code
//! and the faulting address, [`fault_address`], which only ring 0 can read).
//!
//! Two trips between CPL 3 and ring 0 per event, and a dozen ring-0 instructions; all the
//! kernel's work (saving and restoring registers, the handler) runs natively. The run ends
//! when the user executes `int3` at the address [`run_user`] was given; anything else the
//! user or the kernel raises meanwhile is reported as a kernel fault.
//!
//! The fast kernel mode's own event path, for real processes on their threads' stacks, is
//! `fast` (`docs/fast-mode.md`); this one stays as a self-test and benchmark fixture.

use core::arch::{global_asm, naked_asm};
use core::ptr::addr_of;

use super::cpl3::{
    CPL3_RFLAGS, CPL3_STACK, CPL3_STACK_SIZE, SAVED_RSP, SHIM_STACK, SHIM_STACK_SIZE,
};
use super::trap::{TrapFrame, vector};
use super::user::{USER_CS, USER_DS};
use super::{cpu, idt};

/// The kernel view's root, loaded by the shim for each event.
static mut KVIEW_ROOT: u64 = 0;
/// The user's page-table root, loaded by the shim on the way back.
static mut USER_ROOT: u64 = 0;
/// The address just past the user's final `int3`.
static mut FINISH_RIP: u64 = 0;
/// The event's vector and error code, and for a page fault its address (CR2), as the shim
/// found them.
static mut EVENT_VECTOR: u64 = 0;
static mut EVENT_ERROR: u64 = 0;
static mut FAULT_ADDR: u64 = 0;
/// The handler the event entry calls with the user's registers.
static mut HANDLER: extern "C" fn(&mut TrapFrame) = no_handler;

extern "C" fn no_handler(_: &mut TrapFrame) {}

unsafe extern "C" {
    static events_upcall: u8;
    static events_upcall_pf: u8;
    static events_request: u8;
}

/// Address of the shim's #UD entry for user events.
pub fn upcall_entry() -> u64 {
    addr_of!(events_upcall) as u64
}

/// Address of the shim's #PF entry for user events.
pub fn page_fault_entry() -> u64 {
    addr_of!(events_upcall_pf) as u64
}

/// The address of the page fault being handled (for a handler at CPL 3, where CR2 cannot
/// be read).
pub fn fault_address() -> u64 {
    // SAFETY: written by the shim before the handler runs; read by the handler on the same
    // CPU with interrupts off.
    unsafe { addr_of!(FAULT_ADDR).read_volatile() }
}

/// Address of the `int3` entry while user events go to the kernel at CPL 3.
pub fn request_entry() -> u64 {
    addr_of!(events_request) as u64
}

/// Runs user code at `entry` in the address space rooted at `user_root` until it executes
/// the `int3` that ends just before `finish_rip`; each `ud2` or page fault meanwhile is an
/// event: `handler` runs at CPL 3 in the kernel view rooted at `kview_root` (which should
/// hold the user's half: `cpl3::set_user_half`) with the user's registers (`vector` says
/// which event), which it may change (past a `ud2` it must move `rip` on; after a page
/// fault the user retries the access). Returns the user's `rax` at the end.
/// Interrupts are off throughout. Any other exception is reported as a kernel fault.
pub fn run_user(
    entry: u64,
    user_root: u64,
    finish_rip: u64,
    kview_root: u64,
    handler: extern "C" fn(&mut TrapFrame),
) -> u64 {
    let _session = super::cpl3::ShimSession::begin(idt::Table::Events);
    let root = cpu::read_cr3();
    // SAFETY: interrupts are off and nothing else uses these statics; the shim reads them
    // only during the run below.
    unsafe {
        KVIEW_ROOT = kview_root;
        USER_ROOT = user_root;
        FINISH_RIP = finish_rip;
        HANDLER = handler;
    }
    // SAFETY: interrupts are off; the user's tables and the kernel view both map the kernel
    // half (supervisor-only in the first), so the shim, its stack and these statics stay
    // reachable in ring 0 in both; rsp0 points at the shim stack, not at the stack
    // `events_enter` saved its state on; the request entry restores `root` and that state.
    unsafe { events_enter(entry, user_root, root) }
}

/// rdi = the user's entry, rsi = its root, rdx = the CR3 to restore. Returns the user's
/// rax at its final `int3` (through the request entry).
#[unsafe(naked)]
unsafe extern "C" fn events_enter(entry: u64, user_root: u64, root: u64) -> u64 {
    naked_asm!(
        save_caller!("rdx"),
        "mov cr3, rsi",
        "push {user_ds}",
        // The user's stack pointer: the code under test uses no stack.
        "push 0",
        "push {rflags}",
        "push {user_cs}",
        "push rdi",
        "xor eax, eax",
        "iretq",
        saved = sym SAVED_RSP,
        user_ds = const USER_DS,
        user_cs = const USER_CS,
        rflags = const CPL3_RFLAGS,
    )
}

/// The kernel's event entry, at CPL 3 on the CPL-3 stack with the user's registers live:
/// builds a `TrapFrame` (the hardware part, rip, cs, rflags, rsp and ss, copied off the
/// top of the shim stack, where the CPU pushed them), calls the handler,
/// restores the registers and asks the shim to resume the user with the frame's tail.
#[unsafe(naked)]
unsafe extern "C" fn events_kernel_entry() -> ! {
    naked_asm!(
        "push qword ptr [rip + {shim} + {top} - 8]",
        "push qword ptr [rip + {shim} + {top} - 16]",
        "push qword ptr [rip + {shim} + {top} - 24]",
        "push qword ptr [rip + {shim} + {top} - 32]",
        "push qword ptr [rip + {shim} + {top} - 40]",
        "push qword ptr [rip + {error}]",
        "push qword ptr [rip + {vector}]",
        save_registers!(),
        "cld",
        "call qword ptr [rip + {handler}]",
        restore_registers!(),
        "add rsp, 16",
        // rsp now points at the user's frame: the shim resumes the user with it.
        "int3",
        ".global events_return",
        "events_return:",
        "ud2",
        shim = sym SHIM_STACK,
        top = const SHIM_STACK_SIZE,
        error = sym EVENT_ERROR,
        vector = sym EVENT_VECTOR,
        handler = sym HANDLER,
    )
}

// The shim's two entries. The upcall (#UD from the user): load the kernel view and
// `iretq` to the kernel's event entry at CPL 3, leaving the user's frame on the shim
// stack. The request entry (`int3`): from the event entry (rip just past its `int3`),
// switch to the frame on the event stack, load the user's tables and resume the user; the
// user's final `int3` ends the run; anything else is a kernel fault.
global_asm!(
    ".pushsection .text.events, \"ax\"",
    ".global events_upcall_pf",
    "events_upcall_pf:",
    // The error code is on top; the user's frame above it, where #UD leaves it too.
    "push rax",
    "mov rax, [rsp + 8]",
    "mov [rip + {error}], rax",
    "mov rax, cr2",
    "mov [rip + {fault_addr}], rax",
    "mov qword ptr [rip + {vector}], {pf}",
    "jmp 4f",
    ".global events_upcall",
    "events_upcall:",
    "push rax",
    "mov qword ptr [rip + {error}], 0",
    "mov qword ptr [rip + {vector}], {ud}",
    "4:",
    "mov rax, [rip + {kview}]",
    "mov cr3, rax",
    "pop rax",
    "push {user_ds}",
    "push rax",
    "lea rax, [rip + {stack} + {stack_size}]",
    "xchg rax, [rsp]",
    "push {rflags}",
    "push {user_cs}",
    "push rax",
    "lea rax, [rip + {entry}]",
    "xchg rax, [rsp]",
    "iretq",
    ".global events_request",
    "events_request:",
    "push rax",
    "lea rax, [rip + events_return]",
    "cmp rax, [rsp + 8]",
    "pop rax",
    "jne 2f",
    "mov rsp, [rsp + 24]",
    "push rax",
    "mov rax, [rip + {user_root}]",
    "mov cr3, rax",
    "pop rax",
    "iretq",
    "2:",
    "push rax",
    "mov rax, [rip + {finish}]",
    "cmp rax, [rsp + 8]",
    "pop rax",
    "jne cpl3_trap_stubs + {other}",
    resume_caller!(),
    ".popsection",
    kview = sym KVIEW_ROOT,
    error = sym EVENT_ERROR,
    vector = sym EVENT_VECTOR,
    fault_addr = sym FAULT_ADDR,
    pf = const vector::PAGE_FAULT,
    ud = const vector::INVALID_OPCODE,
    stack = sym CPL3_STACK,
    stack_size = const CPL3_STACK_SIZE,
    rflags = const CPL3_RFLAGS,
    entry = sym events_kernel_entry,
    user_root = sym USER_ROOT,
    finish = sym FINISH_RIP,
    saved = sym SAVED_RSP,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    other = const vector::BREAKPOINT * idt::STUB_SIZE,
);
