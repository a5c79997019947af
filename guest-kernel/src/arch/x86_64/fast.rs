//! The fast kernel mode's shim for user programs: their page faults and system calls are
//! handled by the kernel's own code running at CPL 3, in the kernel view, behind a few
//! ring-0 instructions, and so are the timer's ticks that arrive while a program runs.
//! `halt`, device interrupts, interrupts of ring-0 code and new threads' first steps still
//! run in ring 0, as in the classic mode (`docs/fast-mode.md`).
//!
//! ```text
//! user (CPL 3, its own tables)   a page fault, or `syscall` (whose trampoline's `swapgs`
//!                                raises #GP on PVM)
//! shim (ring 0, on the thread's kernel stack, where the CPU pushed the user's frame):
//!      [CR2 to memory] the CPL-3 mark on, CR3 -> the kernel view, iretq (through a
//!      frame built in advance) to the kernel's entry at CPL 3, further down that stack
//! kernel (CPL 3, native)         copies the user's frame into a TrapFrame, calls
//!                                `kernel_event_cpl3` (`crate::dispatch`): the fault path
//!                                or the system call, as in classic mode; its Verdict:
//!   Resume:                      registers back, `int3` at `fast_resume`
//!   Ring0 (`halt`):              `int3` at `fast_ring0`
//! shim (ring 0, the int3 gate)   CR3 -> the process's tables (`cpu::LOADED_ROOT`), the
//!                                mark off; then iretq to the user, or the system call in
//!                                ring 0 (`kernel_syscall_ring0`) and the ordinary trap exit
//! ```
//!
//! A thread switch asked for at CPL 3 (a `wait` or console read that blocks, a process's
//! end) goes through
//! the shim too ([`switch_threads`]): the kernel does the scheduler's work natively, then
//! an `int3` at `fast_switch` has the shim switch stacks in ring 0, where every suspended
//! thread's context lives; the thread resumes there later and goes back up to CPL 3.
//!
//! One fault never leaves ring 0: a program's first touch of a page of its zero-fill run
//! (its bss: [`set_zero_fill_run`]) whose leaf entry is still all zero gets an entry from
//! the stash of zeroed frames the kernel keeps filled, read and written through the user
//! tables' self-map ([`SELF_SLOT`]), and the user resumes; the kernel settles it at its
//! next entry ([`drain_shim_faults`]; `docs/fast-mode.md`, "Zero-fill in the shim").
//!
//! The kernel at CPL 3 runs [`RING0_RESERVE`] bytes below the top of the thread's kernel
//! stack: traps it raises there (the #GP of a privileged instruction the shim emulates,
//! `int3` requests) arrive at the top of that stack (TSS rsp0), above it. Interrupts are off
//! while it runs (the frame's IF is 0; an interrupt waits for the user, self-test
//! `interrupts_wait_while_kernel_code_runs_at_cpl3`), so nothing else runs meanwhile.
//!
//! In this mode every exception gate of the ordinary IDT first asks whether kernel code
//! runs at CPL 3 (`cpl3::active`, which the shim sets and clears): if so, the exception is
//! the kernel's (emulated by the shim or reported as a kernel fault, as under
//! `cpl3::call`), otherwise it takes the ordinary path. Global pages are off for the whole
//! run (the boot tables' global kernel translations are supervisor-only and would survive
//! the switch to the kernel view). TLB flushes of the kernel at CPL 3 are left out: the
//! shim reloads CR3 before the user runs again, which drops every non-global translation.

use core::arch::global_asm;
use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{AtomicBool, Ordering};

use super::context::Context;
use super::cpl3::{ACTIVE, CPL3_RFLAGS};
use super::trap::vector;
use super::user::{USER_CS, USER_DS};
use super::{cpu, idt};

/// Bytes at the top of a thread's kernel stack left to ring 0 while the kernel runs at
/// CPL 3 below them: the user's hardware frame and the shim's traps and emulation.
const RING0_RESERVE: u64 = 1024;

/// The kernel view's root (`BootInfo::kview_pml4_gpa`), loaded by the shim for each event.
static mut KVIEW_ROOT: u64 = 0;
/// The address of the page fault being handled (CR2, which CPL 3 cannot read).
static mut FAULT_ADDR: u64 = 0;
/// The `iretq` frames of the shim's upcalls (rip, cs, rflags, rsp, ss), built in advance
/// so that an event costs no ring-0 pushes: a page fault's (to `fast_pf_entry`), a
/// system call's (to `fast_syscall_entry`) and an invalid opcode's (`fast_ud_entry`). All
/// start the kernel [`RING0_RESERVE`] bytes below the user's frame at the top of the
/// running thread's kernel stack ([`set_kernel_stack`]); the fourth is the timer's (to
/// `fast_timer_entry`).
static mut UPCALL_FRAMES: [[u64; 5]; 4] = [[0, USER_CS, CPL3_RFLAGS, 0, USER_DS]; 4];

/// Whether the fast mode is on.
static ON: AtomicBool = AtomicBool::new(false);

/// PML4 slot of the self-map in every user address space in this mode (supervisor-only:
/// the shim reads and writes a user page's leaf entry through it, `[SELF_MAP_BASE +
/// (va >> 12) * 8]`, in a few instructions instead of a walk).
pub const SELF_SLOT: usize = 2;
/// Bit set in a user page number to index the self-map's leaf entries (`SELF_SLOT << 39`
/// is `1 << (SELF_INDEX_BIT + 3)`).
const SELF_INDEX_BIT: u32 = 37;
const _: () = assert!((SELF_SLOT as u64) << 39 == 1 << (SELF_INDEX_BIT + 3));

/// Frames the shim holds ready for zero-fill faults.
pub const STASH_SIZE: usize = 32;

/// What the shim's zero-fill path works from, shared with the kernel at CPL 3
/// (`vm::fault::settle_shim_faults`).
#[repr(C)]
struct ZeroFill {
    /// The running process's zero-fill run `[lo, hi)`: user pages that, while their leaf
    /// entry is all zero, are zero-fill pages never loaded (the kernel publishes it at each
    /// switch; empty for none).
    lo: u64,
    hi: u64,
    /// Entries of `ptes` left: the shim takes `ptes[len - 1]`.
    len: u64,
    /// Leaf entries ready to install: a zeroed frame, present, user, writable, listed.
    ptes: [u64; STASH_SIZE],
    /// Written by the shim for each entry it took: the page's self-map index.
    pages: [u64; STASH_SIZE],
}

/// The shim's zero-fill state ([`ZeroFill`]); `KNOWN` is `len` as the kernel last left it
/// (entries `len..KNOWN` the shim took since).
static mut ZERO_FILL: ZeroFill = ZeroFill {
    lo: 0,
    hi: 0,
    len: 0,
    ptes: [0; STASH_SIZE],
    pages: [0; STASH_SIZE],
};
static mut KNOWN: u64 = 0;

unsafe extern "C" {
    static fast_pf_entry: u8;
    static fast_syscall_entry: u8;
    static fast_ud_entry: u8;
    static fast_timer_entry: u8;
    static fast_timer: u8;
    static fast_ud: u8;
    static fast_page_fault: u8;
    static fast_request: u8;
    static fast_gp: u8;
    static fast_exception_stubs: u8;
}

/// Bytes between consecutive stubs of `fast_exception_stubs`.
const FAST_STUB_SIZE: u64 = 32;

/// Turns the fast mode on: global pages off, the exception gates of the ordinary IDT to
/// the entries above. Call once, with interrupts off, before the first user program
/// (`platform::init_user_entry`); `kview_root` is the kernel view
/// (`BootInfo::kview_pml4_gpa`).
pub fn init(kview_root: u64) {
    // SAFETY: written once, before the first user program, so before any event reads them;
    // interrupts are off.
    unsafe {
        KVIEW_ROOT = kview_root;
        UPCALL_FRAMES[0][0] = addr_of!(fast_pf_entry) as u64;
        UPCALL_FRAMES[1][0] = addr_of!(fast_syscall_entry) as u64;
        UPCALL_FRAMES[2][0] = addr_of!(fast_ud_entry) as u64;
        UPCALL_FRAMES[3][0] = addr_of!(fast_timer_entry) as u64;
    }
    cpu::set_global_pages(false);
    let stubs = addr_of!(fast_exception_stubs) as u64;
    for v in 0..idt::EXCEPTION_VECTORS as u64 {
        let entry = match v {
            vector::BREAKPOINT => addr_of!(fast_request) as u64,
            vector::GENERAL_PROTECTION => addr_of!(fast_gp) as u64,
            vector::PAGE_FAULT => addr_of!(fast_page_fault) as u64,
            vector::INVALID_OPCODE => addr_of!(fast_ud) as u64,
            // The double fault keeps its own stack and its report.
            vector::DOUBLE_FAULT => continue,
            v => stubs + FAST_STUB_SIZE * v,
        };
        idt::set_gate(v as usize, entry, v == vector::BREAKPOINT);
    }
    idt::set_gate(
        usize::from(super::lapic::TIMER_VECTOR),
        addr_of!(fast_timer) as u64,
        false,
    );
    ON.store(true, Ordering::Relaxed);
}

/// Makes the upcalls start the kernel at CPL 3 on the kernel stack whose top is `top` (the
/// running thread's, which TSS rsp0 names too). Call with interrupts off, at every
/// switch to a thread; nothing to do before the mode starts (the first user program's
/// thread is switched to after [`init`]), so classic mode's switches make no stores here.
#[inline(always)]
pub(super) fn set_kernel_stack(top: u64) {
    /// The user's frame (with an error code) at the top of the stack, then the reserve.
    const BELOW_TOP: u64 = 6 * 8 + RING0_RESERVE;
    if !is_on() {
        return;
    }
    // SAFETY: single CPU, interrupts off (the caller's contract): the shim reads the frames
    // only for an event, which cannot come during these stores.
    unsafe {
        UPCALL_FRAMES[0][3] = top - BELOW_TOP;
        UPCALL_FRAMES[1][3] = top - BELOW_TOP;
        UPCALL_FRAMES[2][3] = top - BELOW_TOP;
        UPCALL_FRAMES[3][3] = top - BELOW_TOP;
    }
}

/// Whether the fast mode is on ([`init`]).
#[inline]
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Publishes the running process's zero-fill run `[lo, hi)` (page-aligned, below 512
/// GiB; `lo == hi` for none): user pages whose leaf entry, while all zero, means a
/// writable zero-fill page never loaded. The shim maps such a page itself, with a stashed
/// frame. Call with interrupts off whenever another process's tables are loaded.
#[inline(always)]
pub fn set_zero_fill_run(lo: u64, hi: u64) {
    debug_assert!(lo <= hi && hi <= 1 << 39);
    // SAFETY: single CPU, interrupts off: the shim reads these only for a user's fault.
    unsafe {
        ZERO_FILL.lo = lo;
        ZERO_FILL.hi = hi;
    }
}

/// Calls `f(page, frame_gpa)` for each zero-fill fault the shim resolved since the last
/// call (in the order it took them), and forgets them. Call with interrupts off, before
/// the kernel looks at the process's pages: the shim's mappings belong to the process that
/// ran meanwhile.
#[inline]
pub fn drain_shim_faults(mut f: impl FnMut(u64, u64)) -> u64 {
    // SAFETY: single CPU, interrupts off, no user code runs meanwhile: the shim does not
    // touch the state while the kernel does.
    unsafe {
        let len = ZERO_FILL.len;
        let known = KNOWN;
        for i in (len..known).rev() {
            let index = ZERO_FILL.pages[i as usize];
            let page = (index & !(1 << SELF_INDEX_BIT)) << 12;
            f(page, ZERO_FILL.ptes[i as usize] & PTE_ADDRESS);
        }
        KNOWN = len;
        known - len
    }
}

/// Address bits of a leaf entry.
const PTE_ADDRESS: u64 = 0x000f_ffff_ffff_f000;

/// Frames in the stash.
#[inline]
pub fn stash_len() -> usize {
    // SAFETY: see `drain_shim_faults`.
    unsafe { ZERO_FILL.len as usize }
}

/// Adds leaf entries to the stash, `entries[0]` to be taken first, below the ones it has
/// (taken before them); as many as fit. Returns how many it took. Call as
/// [`drain_shim_faults`], after it.
pub fn stash_add(entries: &[u64]) -> usize {
    // SAFETY: see `drain_shim_faults`.
    let z = unsafe { &mut *addr_of_mut!(ZERO_FILL) };
    let len = z.len as usize;
    let n = entries.len().min(STASH_SIZE - len);
    z.ptes.copy_within(0..len, n);
    for (slot, &e) in z.ptes[..n].iter_mut().rev().zip(entries) {
        *slot = e;
    }
    z.len = (len + n) as u64;
    // SAFETY: as above.
    unsafe { KNOWN = z.len };
    n
}

/// Takes a frame back from the stash (the pool ran dry: it is one of the free frames),
/// the one the shim would have taken next. Call as [`drain_shim_faults`], after it.
#[inline]
pub fn stash_take() -> Option<u64> {
    // SAFETY: see `drain_shim_faults`.
    unsafe {
        let len = ZERO_FILL.len.checked_sub(1)?;
        ZERO_FILL.len = len;
        KNOWN = len;
        Some(ZERO_FILL.ptes[len as usize] & PTE_ADDRESS)
    }
}

/// The address of the user page fault being handled, for the kernel at CPL 3.
#[inline]
pub fn fault_address() -> u64 {
    // SAFETY: written by the shim before the kernel's entry runs; read by it on the same
    // CPU with interrupts off.
    unsafe { addr_of!(FAULT_ADDR).read_volatile() }
}

/// The shim's way up to the kernel at CPL 3, with the user's rax pushed on the thread's
/// kernel stack: the CPL-3 mark on, CR3 -> the kernel view, rax back, iretq through upcall
/// frame `$frame` ([`UPCALL_FRAMES`]). Uses the operands `active`, `kview` and `frames`.
macro_rules! upcall {
    ($frame:literal) => {
        concat!(
            "mov byte ptr [rip + {active}], 1\n",
            "mov rax, [rip + {kview}]\n",
            "mov cr3, rax\n",
            "pop rax\n",
            "lea rsp, [rip + {frames} + ",
            $frame,
            " * 40]\n",
            "iretq\n",
        )
    };
}

/// A kernel entry at CPL 3 named `$name`: copies the user's frame (error code, rip, cs,
/// rflags, rsp, ss) from [`RING0_RESERVE`] bytes above down to the stack and pushes the
/// vector `$vector`, which leaves the hardware part of a TrapFrame. Uses the operand
/// `reserve`.
macro_rules! kernel_entry {
    ($name:literal, $vector:literal) => {
        concat!(
            ".global ",
            $name,
            "\n",
            $name,
            ":\n",
            ".rept 6\n",
            "push qword ptr [rsp + {reserve} + 40]\n",
            ".endr\n",
            "push ",
            $vector,
            "\n",
        )
    };
}

unsafe extern "C" {
    /// The CPL-3 side of [`switch_threads`].
    fn fast_switch_threads(from: *mut Context, to: *const Context, top: u64);
}

/// Switches threads from kernel code at CPL 3 in this mode's events: saves the running
/// thread into `from` and resumes the one saved in `to`, wherever it was suspended (in ring
/// 0, or here); `top` is the new thread's kernel stack top (0: keep the current one).
/// Returns, at CPL 3 again, when some thread switches back to `from`.
///
/// The CPU's state that is not memory goes with it through the shim: an `int3` request
/// (`fast_switch`) whose ring-0 part makes `top` the entry stack, switches stacks with
/// the ring-0 context switch, and, once `from` is resumed, returns to CPL 3 in the kernel
/// view. The caller has recorded the new thread's page tables (`platform::load_page_table`
/// only records at CPL 3; the request loads them) and swapped the FPU state.
///
/// # Safety
/// As `context::switch`, and: kernel code at CPL 3 in one of this mode's events (on the
/// thread's kernel stack, with the ordinary IDT: not under `cpl3::call`).
pub unsafe fn switch_threads(from: *mut Context, to: *const Context, top: u64) {
    // SAFETY: the caller's contract.
    unsafe { fast_switch_threads(from, to, top) }
}

/// The ring-0 half of [`switch_threads`]: makes `top` (if not 0) the stack of entries from
/// CPL 3, as a switch in ring 0 does before it switches.
// SAFETY: no other item has this link name; the shim calls it with the System V ABI.
#[unsafe(no_mangle)]
extern "C" fn fast_switch_stack(top: u64) {
    if top != 0 {
        super::user::set_kernel_stack(top);
    }
}

/// What the kernel at CPL 3 asks the shim to do after an event (`kernel_event_cpl3`'s
/// result).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Resume the user with the frame (changed or not).
    Resume = 0,
    /// Run the system call in the frame in ring 0 (`kernel_syscall_ring0`): `halt`, which
    /// powers off from there.
    Ring0 = 1,
}

// The kernel's entries at CPL 3, reached from the shim with rsp RING0_RESERVE bytes below
// the user's frame (error code, rip, cs, rflags, rsp, ss): one per kind of event, each
// copying that frame down and pushing its vector; then one common part completes a
// TrapFrame (registers), calls the portable handler and asks the shim for what it
// returned: resume the user, or run a system call in ring 0.
global_asm!(
    ".pushsection .text.fast, \"ax\"",
    kernel_entry!("fast_pf_entry", "{pf}"),
    "jmp 5f",
    kernel_entry!("fast_syscall_entry", "{gp}"),
    "jmp 5f",
    kernel_entry!("fast_ud_entry", "{ud}"),
    "jmp 5f",
    kernel_entry!("fast_timer_entry", "{timer}"),
    "5:",
    save_registers!(),
    "cld",
    "call kernel_event_cpl3",
    "test eax, eax",
    "jnz 1f",
    restore_registers!(),
    "add rsp, 16",
    // rsp points at the user's frame: the shim resumes the user with it.
    "int3",
    ".global fast_resume",
    "fast_resume:",
    "ud2",
    // rsp points at the TrapFrame: the shim runs the system call in ring 0 and resumes the
    // user from the frame.
    "1:",
    "int3",
    ".global fast_ring0",
    "fast_ring0:",
    "ud2",
    // switch_threads: a call, as far as the caller's registers go (the switch keeps the
    // callee-saved ones); the shim returns here once this thread is resumed.
    ".global fast_switch_threads",
    "fast_switch_threads:",
    "int3",
    ".global fast_switch",
    "fast_switch:",
    "ret",
    ".popsection",
    reserve = const RING0_RESERVE,
    pf = const vector::PAGE_FAULT,
    gp = const vector::GENERAL_PROTECTION,
    ud = const vector::INVALID_OPCODE,
    timer = const super::lapic::TIMER_VECTOR,
);

// The shim.
// - `fast_page_fault`: a user's page fault goes to the kernel at CPL 3; one of kernel code
//   at CPL 3 is a kernel fault; one in ring 0 takes the ordinary path (probes, kernel bugs).
// - `fast_gp`: the kernel's at CPL 3 go to the shim's emulation; a user's system call (the
//   #GP of the trampoline's `swapgs`, PVM) to the kernel at CPL 3; anything else to the
//   ordinary path.
// - `fast_request` (the int3 gate, reachable from CPL 3): from the kernel's entry, resume
//   the user, run a system call in ring 0 or switch threads; a user's `int3` takes the
//   ordinary path; any other `int3` at CPL 3 is a kernel fault.
// - `fast_exception_stubs`: every other exception, to the kernel-fault report if kernel
//   code runs at CPL 3, to the ordinary path if not.
// The upcall of the first two: the CPL-3 mark on, CR3 -> the kernel view, iretq to the
// entry at CPL 3 with a frame built in advance ([`UPCALL_FRAMES`]).
global_asm!(
    ".pushsection .text.fast, \"ax\"",
    ".global fast_page_fault",
    "fast_page_fault:",
    "cmp byte ptr [rip + {active}], 0",
    "jne cpl3_trap_stubs + {pf_stub}",
    "test byte ptr [rsp + 16], 3",
    "jz 9f",
    // A not-present page in the zero-fill run whose leaf entry is all zero, with a
    // stashed frame: the entry from the stash, the page noted for the kernel, iretq.
    "test byte ptr [rsp], 1",
    "jnz 8f",
    "push rax",
    "push rcx",
    "push rdx",
    "lea rdx, [rip + {zero}]",
    "mov rax, cr2",
    "cmp rax, [rdx + {lo}]",
    "jb 7f",
    "cmp rax, [rdx + {hi}]",
    "jae 7f",
    "shr rax, 12",
    "bts rax, {self_bit}",
    // Faults (in ring 0) if a table above the leaf is missing: see 9 below.
    ".global fast_zero_probe",
    "fast_zero_probe:",
    "cmp qword ptr [rax * 8], 0",
    "jne 7f",
    "mov rcx, [rdx + {len}]",
    "sub rcx, 1",
    "jb 7f",
    "mov [rdx + {len}], rcx",
    "mov [rdx + rcx * 8 + {pages}], rax",
    "mov rcx, [rdx + rcx * 8 + {ptes}]",
    "mov [rax * 8], rcx",
    "pop rdx",
    "pop rcx",
    "pop rax",
    "add rsp, 8",
    "iretq",
    // Anything else goes to the kernel at CPL 3.
    "7:",
    "pop rdx",
    "pop rcx",
    "pop rax",
    "8:",
    "push rax",
    "mov rax, cr2",
    "mov [rip + {fault_addr}], rax",
    "6:",
    upcall!(0),
    // In ring 0: the zero-fill probe met a missing table (the first fault of the 2 MiB
    // region): back to the probe's stack, and on to the kernel with the page's address
    // (CR2 now holds the probe's); anything else takes the ordinary path (probes, kernel
    // bugs).
    "9:",
    "push rax",
    "lea rax, [rip + fast_zero_probe]",
    "cmp rax, [rsp + 16]",
    "pop rax",
    "jne trap_stubs + {pf_stub}",
    "mov rsp, [rsp + 32]",
    "btr rax, {self_bit}",
    "shl rax, 12",
    "mov [rip + {fault_addr}], rax",
    "pop rdx",
    "pop rcx",
    "jmp 6b",
    ".global fast_gp",
    "fast_gp:",
    "cmp byte ptr [rip + {active}], 0",
    "jne cpl3_gp",
    "push rax",
    "mov rax, [rsp + 16]",
    "cmp rax, [rip + {syscall_rip}]",
    "jne 1f",
    upcall!(1),
    "1:",
    "pop rax",
    "jmp trap_stubs + {gp_stub}",
    ".global fast_ud",
    "fast_ud:",
    "cmp byte ptr [rip + {active}], 0",
    "jne cpl3_trap_stubs + {ud_stub}",
    "test byte ptr [rsp + 8], 3",
    "jz trap_stubs + {ud_stub}",
    // No error code for #UD: a zero one, so that the user's frame lies where the kernel's
    // entry looks for it.
    "push 0",
    "push rax",
    upcall!(2),
    // The timer, while a user program runs: acknowledged here (an APIC store, cheap from
    // ring 0), then the tick and any preemption by the kernel at CPL 3, which a user event's
    // frame carries (a zero error code pushed). Interrupting ring 0 (the idle loop, a
    // ring-0 call), it takes the ordinary path; the kernel at CPL 3 runs with interrupts
    // off, so it is never the one interrupted.
    ".global fast_timer",
    "fast_timer:",
    "test byte ptr [rsp + 8], 3",
    "jz trap_stubs + {timer_stub}",
    "push 0",
    "push rax",
    "mov rax, {eoi}",
    "mov dword ptr [rax], 0",
    upcall!(3),
    ".global fast_request",
    "fast_request:",
    "cmp byte ptr [rip + {active}], 0",
    "je trap_stubs + {bp_stub}",
    "push rax",
    "mov rax, [rip + {root}]",
    "mov cr3, rax",
    "lea rax, [rip + fast_resume]",
    "cmp rax, [rsp + 8]",
    "jne 2f",
    "mov byte ptr [rip + {active}], 0",
    "pop rax",
    "mov rsp, [rsp + 24]",
    "iretq",
    "2:",
    "lea rax, [rip + fast_ring0]",
    "cmp rax, [rsp + 8]",
    "je 4f",
    "lea rax, [rip + fast_switch]",
    "cmp rax, [rsp + 8]",
    "je 5f",
    // Not a request: CR3 back to the kernel view, and the kernel-fault report.
    "mov rax, [rip + {kview}]",
    "mov cr3, rax",
    "pop rax",
    "jmp cpl3_trap_stubs + {bp_stub}",
    "4:",
    "mov byte ptr [rip + {active}], 0",
    "mov rsp, [rsp + 32]",
    "mov rdi, rsp",
    "call kernel_syscall_ring0",
    "jmp trap_exit",
    // switch_threads (rdi from, rsi to, rdx the new entry stack; CR3 is the new thread's,
    // loaded above): on this thread's kernel stack, above the kernel's CPL-3 frames, the
    // ring-0 context switch; this thread resumes here, and goes back to CPL 3.
    "5:",
    "mov byte ptr [rip + {active}], 0",
    "pop rax",
    "push rdi",
    "push rsi",
    "push rdx",
    "mov rdi, rdx",
    "call fast_switch_stack",
    "pop rdx",
    "pop rsi",
    "pop rdi",
    "call {switch_stacks}",
    "mov byte ptr [rip + {active}], 1",
    "push rax",
    "mov rax, [rip + {kview}]",
    "mov cr3, rax",
    "pop rax",
    "iretq",
    ".global fast_exception_stubs",
    ".align 32",
    "fast_exception_stubs:",
    ".set fast_vector, 0",
    ".rept {exceptions}",
    ".align 32",
    "cmp byte ptr [rip + {active}], 0",
    "jne cpl3_trap_stubs + fast_vector * {stub_size}",
    "jmp trap_stubs + fast_vector * {stub_size}",
    ".set fast_vector, fast_vector + 1",
    ".endr",
    ".popsection",
    active = sym ACTIVE,
    fault_addr = sym FAULT_ADDR,
    zero = sym ZERO_FILL,
    lo = const core::mem::offset_of!(ZeroFill, lo),
    hi = const core::mem::offset_of!(ZeroFill, hi),
    len = const core::mem::offset_of!(ZeroFill, len),
    ptes = const core::mem::offset_of!(ZeroFill, ptes),
    pages = const core::mem::offset_of!(ZeroFill, pages),
    self_bit = const SELF_INDEX_BIT,
    kview = sym KVIEW_ROOT,
    root = sym cpu::LOADED_ROOT,
    syscall_rip = sym super::user::TRAMPOLINE_ENTRY,
    switch_stacks = sym super::context::switch_stacks,
    frames = sym UPCALL_FRAMES,
    pf_stub = const vector::PAGE_FAULT * idt::STUB_SIZE,
    bp_stub = const vector::BREAKPOINT * idt::STUB_SIZE,
    gp_stub = const vector::GENERAL_PROTECTION * idt::STUB_SIZE,
    ud_stub = const vector::INVALID_OPCODE * idt::STUB_SIZE,
    timer_stub = const super::lapic::TIMER_VECTOR as u64 * idt::STUB_SIZE,
    eoi = const super::lapic::EOI_ADDRESS,
    exceptions = const idt::EXCEPTION_VECTORS,
    stub_size = const idt::STUB_SIZE,
);
