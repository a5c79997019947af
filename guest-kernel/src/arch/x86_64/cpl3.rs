//! Kernel code at CPL 3: the building block of the fast kernel mode.
//!
//! [`call`] runs a kernel function at CPL 3 in the kernel view (the VMM's copy of the
//! direct map with the user bit set at every level: `BootInfo::kview_pml4_gpa`) and
//! returns its result. Where ring 0 is emulated and ring 3 runs natively (PVM), this is how
//! the kernel's work gets out of ring 0.
//!
//! ```text
//! ring 0: call ── save callee-saved registers and rsp; TSS rsp0 -> the shim stack;
//!                 CR3 -> kernel view; iretq to f on the CPL-3 stack ─┐
//! CPL 3:                                   f(arg) runs natively  <─┘
//!                                          returns to `cpl3_return: int3`
//! ring 0: the #BP entry (a DPL-3 gate) sees the return address: CR3 back, rsp back,
//!         registers back, return f's result (still in rax) to call's caller
//! ```
//! While a call runs, the CPU uses an IDT of its own (`idt::load`): `int3` there is the
//! kernel's request to the shim, through a gate CPL-3 code can reach, whose entry
//! ([`request_entry`]) tells the request by the address of the `int3` that raised it and
//! handles it in a handful of ring-0 instructions (where ring 0 is emulated, each costs
//! about a microsecond). The one request of a call is its end (the `int3` at
//! `cpl3_return`).
//!
//! Every other exception in that IDT goes to [`trap`]. The ordinary IDT has none of this,
//! so the trap path of user programs pays nothing for it, and a user program's `int3`
//! still faults as before.
//!
//! The rest of the portable kernel runs unchanged at CPL 3. Its interrupt guards leave the
//! flag alone there (`crate::platform`, which checks [`active`] only when interrupts read
//! as on: on PVM `pushf` at CPL 3 always shows the host's flag, on). The shim emulates the
//! privileged instructions it still executes: `cli`, `sti` (nothing: interrupts are off for
//! the whole run), `in eax, dx` (with the trapping code's registers, so a page
//! operation's arguments reach the VMM) and `out dx, eax` on a fast path in the #GP entry
//! ([`gp_entry`]; on PVM a page operation this way, bounce and exit, measured 46-51 us, no
//! cheaper than an exit straight from CPL 3 through the TSS I/O bitmap, ~47 us in the
//! research harness); other port accesses (`in`/`out` of bytes, `rep outsb`) in
//! [`emulate`], through the general path. None of this is on classic mode's path. The
//! fast mode (`fast`) uses the same #GP entry and emulation for the kernel's events.
//!
//! One shim stack and one CPL-3 stack serve every [`call`] and `events::run_user`: runs
//! at CPL 3 never overlap. (The fast mode's events run on the thread's kernel stack.)
//!
//! While a call runs, any other exception at CPL 3 is a kernel bug and is reported as one,
//! with its RIP, like a ring-0 fault.
//!
//! Interrupts stay off at CPL 3 (the frame's IF is 0), so nothing else runs meanwhile.
//! Global pages are turned off for the call: the boot tables' global kernel translations
//! are supervisor-only and would otherwise survive the switch to the kernel view.

use core::arch::naked_asm;
use core::ptr::addr_of;
use core::sync::atomic::{AtomicBool, Ordering};

use super::entry::Stack;
use super::trap::{TrapFrame, kernel_fault, vector};
use super::user::{USER_CS, USER_DS};
use super::{cpu, gdt, idt};

/// Bytes of the shim stack (traps from CPL 3 arrive on it). A kernel fault at CPL 3 is
/// reported from it, and the panic report alone formats into a 4 KiB buffer there.
pub(super) const SHIM_STACK_SIZE: usize = 16 * 1024;
/// Bytes of the stack kernel code runs on at CPL 3.
pub(super) const CPL3_STACK_SIZE: usize = 16 * 1024;
/// RFLAGS at CPL 3: interrupts off, reserved bit 1.
pub(super) const CPL3_RFLAGS: u64 = 0x2;

/// The stack traps from CPL 3 arrive on (TSS rsp0 during a run).
pub(super) static mut SHIM_STACK: Stack<SHIM_STACK_SIZE> = Stack([0; SHIM_STACK_SIZE]);
/// The stack kernel code runs on at CPL 3.
pub(super) static mut CPL3_STACK: Stack<CPL3_STACK_SIZE> = Stack([0; CPL3_STACK_SIZE]);

/// The stack pointer of the ring-0 code that started the run, after it saved its
/// registers (`save_caller!`): where the end of the run resumes (`resume_caller!`).
pub(super) static mut SAVED_RSP: u64 = 0;
/// Whether kernel code runs at CPL 3 now (a [`ShimSession`], or an event of the fast
/// mode: `fast`, whose shim sets and clears it).
pub(super) static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Whether a [`ShimSession`] runs ([`call`], `events::run_user`): kernel code at CPL 3 on
/// the shim's own stacks and IDT, where a thread switch cannot happen.
static IN_SESSION: AtomicBool = AtomicBool::new(false);

unsafe extern "C" {
    /// The #BP gate's entry: [`request_entry`].
    static cpl3_request: u8;
    /// The #GP gate's entry: [`gp_entry`].
    static cpl3_gp: u8;
}

/// Address of the #GP entry for kernel code at CPL 3: `cli` and `sti` (which change
/// nothing: interrupts are off for the run), `in eax, dx` (with the page-operation
/// argument registers as they are) and `out dx, eax` (the console's flush) are done right
/// there, in a few ring-0 instructions; anything else goes on to the CPL-3 stub and
/// [`trap`].
pub fn gp_entry() -> u64 {
    addr_of!(cpl3_gp) as u64
}

/// Whether kernel code runs at CPL 3 now (under [`call`] or `events::run_user`): then it
/// must not turn interrupts on or off (`crate::platform`).
#[inline]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Whether a [`call`] or `events::run_user` runs now (on the shim's own stacks).
#[inline]
pub fn in_session() -> bool {
    IN_SESSION.load(Ordering::Relaxed)
}

/// Every exception raised during a [`call`] (the CPL-3 IDT's stubs call this with their
/// frame): a #GP that [`emulate`] handles resumes the code; anything else is a kernel bug,
/// reported like a ring-0 fault, with its RIP.
pub(super) extern "C" fn trap(frame: &mut TrapFrame) {
    // SAFETY: a #GP raised during a call: by kernel code at CPL 3 (interrupts are off and
    // the call's ring-0 part raises none).
    if frame.vector == vector::GENERAL_PROTECTION && unsafe { emulate(frame) } {
        return;
    }
    kernel_fault(frame);
}

/// Emulates, for kernel code at CPL 3 during a run, the privileged instruction at
/// `frame.rip` that raised #GP there and that the #GP entry's fast path ([`gp_entry`]:
/// `cli`, `sti`, `in eax, dx`) left: `in`/`out` of a byte, `out` of a double word with the
/// port in `dx`, and `rep outsb` from kernel memory. Moves `rip` past it; false (nothing
/// changed) for any other instruction.
///
/// # Safety
/// `frame` is the trap frame of a #GP raised at CPL 3 by kernel code during a call: its
/// `rip` points into kernel text, and `rsi`/`rcx` of a `rep outsb` there name kernel
/// memory.
unsafe fn emulate(frame: &mut TrapFrame) -> bool {
    // SAFETY: kernel text, readable in ring 0 (the caller's contract).
    let op = unsafe { core::ptr::read(frame.rip as *const [u8; 2]) };
    let port = frame.rdx as u16;
    let len = match op {
        [0xec, _] => {
            frame.rax = (frame.rax & !0xff) | u64::from(cpu::inb(port));
            1
        }
        [0xef, _] => {
            cpu::outl(port, frame.rax as u32);
            1
        }
        [0xee, _] => {
            cpu::outb(port, frame.rax as u8);
            1
        }
        [0xf3, 0x6e] => {
            // SAFETY: `rcx` bytes of kernel memory at `rsi` (the caller's contract).
            let bytes =
                unsafe { core::slice::from_raw_parts(frame.rsi as *const u8, frame.rcx as usize) };
            cpu::outsb(port, bytes);
            frame.rsi += frame.rcx;
            frame.rcx = 0;
            2
        }
        _ => return false,
    };
    frame.rip += len;
    true
}

/// Makes the kernel view's user half (PML4 slot 0) the one of PML4 entry `entry` (a
/// process's, `AddressSpace::user_half`; 0 for none), so that kernel code at CPL 3 reaches
/// that process's user pages at their user addresses. Takes effect at the next [`call`],
/// which loads the kernel view afresh.
pub fn set_user_half(kview_pml4_gpa: u64, entry: u64) {
    let slot0 = abi::layout::phys_to_virt(kview_pml4_gpa) as *mut u64;
    // SAFETY: the kernel view's PML4 is a page of the boot page-table area, reserved for
    // the kernel's tables and reached through the direct map; slot 0 is not used by the
    // kernel half, and no call is running (a call loads the view, so the store is seen by
    // the next one).
    unsafe { slot0.write_volatile(entry) };
}

/// Address of the entry of the `int3` gate: requests from kernel code at CPL 3 (the end
/// of a [`call`]); any other `int3` goes on to the CPL-3 stub of vector 3, a kernel
/// fault.
pub fn request_entry() -> u64 {
    addr_of!(cpl3_request) as u64
}

/// The ring-0 state around a run at CPL 3 under the shim ([`call`], `events::run_user`):
/// interrupts off, TSS rsp0 on the shim stack (so a trap from CPL 3 does not land on the
/// stack the run was started from), global pages off (the boot tables' global kernel
/// translations are supervisor-only and would survive the switch to the kernel view), and
/// the run's own IDT. Dropping it puts everything back.
pub(super) struct ShimSession {
    interrupts: bool,
    old_rsp0: u64,
}

impl ShimSession {
    /// Enters the state, with the IDT `table`.
    pub(super) fn begin(table: idt::Table) -> Self {
        let interrupts = cpu::disable_interrupts();
        let old_rsp0 = gdt::ring0_stack();
        gdt::set_ring0_stack(addr_of!(SHIM_STACK) as u64 + SHIM_STACK_SIZE as u64);
        // The fast mode keeps them off for good (`fast`).
        if !super::fast::is_on() {
            cpu::set_global_pages(false);
        }
        idt::load(table);
        IN_SESSION.store(true, Ordering::Relaxed);
        ACTIVE.store(true, Ordering::Relaxed);
        ShimSession {
            interrupts,
            old_rsp0,
        }
    }
}

impl Drop for ShimSession {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::Relaxed);
        IN_SESSION.store(false, Ordering::Relaxed);
        idt::load(idt::Table::Ordinary);
        if !super::fast::is_on() {
            cpu::set_global_pages(true);
        }
        gdt::set_ring0_stack(self.old_rsp0);
        if self.interrupts {
            cpu::enable_interrupts();
        }
    }
}

/// Runs `f(arg)` at CPL 3 in the kernel view rooted at `kview_pml4_gpa` and returns its
/// result. Interrupts are off during the call and as they were afterwards. `f` must not
/// trap (any trap at CPL 3 during a call is reported as a kernel fault) and must not
/// touch user memory.
pub fn call(f: extern "C" fn(u64) -> u64, arg: u64, kview_pml4_gpa: u64) -> u64 {
    let cpl3_top = addr_of!(CPL3_STACK) as u64 + CPL3_STACK_SIZE as u64;
    let _session = ShimSession::begin(idt::Table::Cpl3);
    let root = cpu::read_cr3();
    // SAFETY: interrupts are off; the kernel view maps the kernel half exactly as the
    // running tables do (with the user bit), so this code, the stacks and the statics stay
    // reachable after the CR3 switch; rsp0 points at the shim stack, so the trap that ends
    // the call does not land on the stack `cpl3_enter` saved its state on; the request
    // entry restores `root` and that state.
    unsafe { cpl3_enter(f, arg, kview_pml4_gpa, cpl3_top, root) }
}

/// The ring-0 half of [`call`]: rdi = f, rsi = arg, rdx = kernel view, rcx = CPL-3 stack
/// top, r8 = the CR3 to restore. Returns f's result (through the request entry).
#[unsafe(naked)]
unsafe extern "C" fn cpl3_enter(
    f: extern "C" fn(u64) -> u64,
    arg: u64,
    kview: u64,
    stack_top: u64,
    root: u64,
) -> u64 {
    naked_asm!(
        save_caller!("r8"),
        "mov cr3, rdx",
        // f returns to the int3 at cpl3_return; rsp at its entry is 8 below a 16-byte
        // boundary, as after a call.
        "lea rax, [rip + cpl3_return]",
        "mov [rcx - 8], rax",
        "sub rcx, 8",
        "push {user_ds}",
        "push rcx",
        "push {rflags}",
        "push {user_cs}",
        "push rdi",
        "mov rdi, rsi",
        "xor eax, eax",
        "iretq",
        ".global cpl3_return",
        "cpl3_return:",
        "int3",
        "cpl3_return_end:",
        saved = sym SAVED_RSP,
        user_ds = const USER_DS,
        user_cs = const USER_CS,
        rflags = const CPL3_RFLAGS,
    )
}

// The #GP entry for kernel code at CPL 3 (see `gp_entry`). The CPU pushed an error code,
// then rip, cs, rflags, rsp, ss; rip points at the faulting instruction (kernel text,
// readable here). The other general registers are the faulting code's, untouched, so `in`
// runs with the page-operation arguments where the VMM reads them.
core::arch::global_asm!(
    ".pushsection .text.cpl3, \"ax\"",
    ".global cpl3_gp",
    "cpl3_gp:",
    "push rax",
    "mov rax, [rsp + 16]",
    "cmp byte ptr [rax], 0xfa",
    "je 1f",
    "cmp byte ptr [rax], 0xfb",
    "je 1f",
    "cmp byte ptr [rax], 0xed",
    "je 2f",
    "cmp byte ptr [rax], 0xef",
    "je 3f",
    "pop rax",
    "jmp cpl3_trap_stubs + {slow}",
    // cli, sti: step over.
    "1:",
    "inc qword ptr [rsp + 16]",
    "pop rax",
    "add rsp, 8",
    "iretq",
    // in eax, dx: do it, step over.
    "2:",
    "inc qword ptr [rsp + 16]",
    "pop rax",
    "in eax, dx",
    "add rsp, 8",
    "iretq",
    // out dx, eax (the console's flush, a sysctl register): do it, step over.
    "3:",
    "inc qword ptr [rsp + 16]",
    "pop rax",
    "out dx, eax",
    "add rsp, 8",
    "iretq",
    ".popsection",
    slow = const vector::GENERAL_PROTECTION * idt::STUB_SIZE,
);

// The #BP entry. The CPU pushed rip (the address after the `int3`), cs, rflags, rsp, ss
// on the shim stack. The end of a call (rip just past `cpl3_return`) restores what
// `cpl3_enter` saved, leaves the frame behind, and returns f's result, still in rax; any
// other `int3` goes on to the CPL-3 stub of vector 3.
core::arch::global_asm!(
    ".pushsection .text.cpl3, \"ax\"",
    ".global cpl3_request",
    "cpl3_request:",
    "push rax",
    "lea rax, [rip + cpl3_return_end]",
    "cmp rax, [rsp + 8]",
    "pop rax",
    "jne cpl3_trap_stubs + {other}",
    resume_caller!(),
    ".popsection",
    saved = sym SAVED_RSP,
    other = const vector::BREAKPOINT * idt::STUB_SIZE,
);
