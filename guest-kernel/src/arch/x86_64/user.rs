//! Ring 3: segment selectors, the kernel stack used on entry from user mode, the
//! `syscall` trampoline, and the first jump into a user program.
//!
//! ## System calls on both kinds of KVM
//! `LSTAR` points at the trampoline page, mapped in every address space at
//! [`TRAMPOLINE_VA`], user-executable and read-only (user programs cannot map that page).
//! Its first instruction is `swapgs`:
//! - On hardware KVM, `syscall` enters the trampoline in ring 0; `swapgs` works, the code
//!   switches to the thread's kernel stack, builds an interrupt frame (vector
//!   [`SYSCALL_VECTOR`]) and joins the common trap path, which returns with `iretq`.
//! - On KVMs whose `syscall` does not change privilege (PVM: the trampoline runs in ring
//!   3), `swapgs` raises #GP. The #GP handler sees the trampoline's address in a user-mode
//!   frame and runs the system call from there: no register was touched, and nothing was
//!   written below the user's stack pointer (which a leaf function may use as red zone).
//!
//! In both cases the arguments are in the saved registers and the call returns to `rcx`
//! with the flags in `r11`, as `syscall` defines.

use core::arch::{global_asm, naked_asm};
use core::ptr::addr_of;

use x86_64::registers::model_specific::{Efer, EferFlags, KernelGsBase, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::{PrivilegeLevel, VirtAddr};

use super::gdt;
use super::trap::TrapFrame;

/// User code segment selector (GDT slot 0x20, RPL 3).
pub const USER_CS: u64 = 0x23;
/// User data/stack segment selector (GDT slot 0x18, RPL 3).
pub const USER_DS: u64 = 0x1b;
/// Where the trampoline page is mapped in every address space: the last page below 512 GiB
/// (PML4 slot 0), which user programs may not map.
pub const TRAMPOLINE_VA: u64 = abi::layout::TRAMPOLINE_VA;
/// Pseudo-vector in the frame the hardware path builds (no IDT gate has this number).
pub const SYSCALL_VECTOR: u64 = 0x80;
/// RFLAGS of a new user program: interrupts on, reserved bit 1.
pub const USER_RFLAGS: u64 = 0x202;

/// Per-CPU data reached through `gs` on the hardware system-call path.
#[repr(C)]
struct PerCpu {
    /// Top of the running thread's kernel stack.
    kernel_rsp: u64,
    /// Scratch: the user's stack pointer during entry.
    user_rsp: u64,
}

static mut PER_CPU: PerCpu = PerCpu {
    kernel_rsp: 0,
    user_rsp: 0,
};

unsafe extern "C" {
    static __trampoline_start: u8;
    static trampoline_entry: u8;
}

// The trampoline. It runs at TRAMPOLINE_VA (an alias of this page), so it refers to kernel
// code only through the absolute address stored in the same page.
global_asm!(
    ".pushsection .trampoline, \"ax\"",
    ".global trampoline_entry",
    "trampoline_entry:",
    "swapgs",
    "mov gs:[8], rsp",
    "mov rsp, gs:[0]",
    "push {user_ds}",
    "push qword ptr gs:[8]",
    "push r11",
    "push {user_cs}",
    "push rcx",
    "push 0",
    "push {vector}",
    "swapgs",
    "jmp qword ptr [rip + trampoline_common]",
    ".balign 8",
    "trampoline_common:",
    ".quad {common}",
    ".popsection",
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    vector = const SYSCALL_VECTOR,
    common = sym super::idt::trap_common,
);

/// Guest-physical address of the trampoline page.
pub fn trampoline_frame_gpa() -> u64 {
    addr_of!(__trampoline_start) as u64 - abi::layout::KERN_BASE
}

/// Where user programs see the trampoline's first instruction (`LSTAR`).
pub fn trampoline_entry_va() -> u64 {
    TRAMPOLINE_VA + (addr_of!(trampoline_entry) as u64 - addr_of!(__trampoline_start) as u64)
}

/// [`trampoline_entry_va`], kept in memory by [`init`]: one load on the PVM system-call
/// path instead of its computation (where ring 0 is emulated every instruction shows), and
/// what the fast mode's shim compares with.
pub(super) static mut TRAMPOLINE_ENTRY: u64 = 0;

/// Whether `rip` in a user-mode frame is the trampoline's first instruction (the #GP of
/// the PVM system-call path). Valid once [`init`] ran, as every user program's is.
#[inline(always)]
pub fn is_trampoline_entry(rip: u64) -> bool {
    // SAFETY: written once by `init`, before any user program runs.
    rip == unsafe { addr_of!(TRAMPOLINE_ENTRY).read() }
}

/// Sets up `syscall`: enables it, sets the selectors, entry point and flag mask, and the
/// per-CPU area for `swapgs`. Call once at boot.
pub fn init() {
    let entry = trampoline_entry_va();
    // SAFETY: once, at the first program's start, before any user code runs.
    unsafe { TRAMPOLINE_ENTRY = entry };
    // SAFETY: the selectors match the GDT (gdt.rs); LSTAR points at the trampoline, which
    // every address space maps; the mask clears IF, DF, TF and AC on entry; KernelGsBase
    // points at a static that lives forever.
    unsafe {
        Efer::update(|flags| flags.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
        Star::write(
            SegmentSelector::new(4, PrivilegeLevel::Ring3),
            SegmentSelector::new(3, PrivilegeLevel::Ring3),
            SegmentSelector::new(1, PrivilegeLevel::Ring0),
            SegmentSelector::new(2, PrivilegeLevel::Ring0),
        )
        .expect("user: STAR selectors");
        LStar::write(VirtAddr::new(entry));
        SFMask::write(
            RFlags::INTERRUPT_FLAG
                | RFlags::DIRECTION_FLAG
                | RFlags::TRAP_FLAG
                | RFlags::ALIGNMENT_CHECK,
        );
        KernelGsBase::write(VirtAddr::from_ptr(addr_of!(PER_CPU)));
    }
}

/// Makes `top` the stack the CPU switches to on entry from user mode (TSS `rsp0`, and the
/// per-CPU copy the system-call path uses). Call with interrupts off.
pub fn set_kernel_stack(top: u64) {
    gdt::set_ring0_stack(top);
    super::fast::set_kernel_stack(top);
    // SAFETY: single CPU with interrupts off: no entry path reads it concurrently.
    unsafe { PER_CPU.kernel_rsp = top };
}

/// Starts user code: loads the registers of `frame` and returns to ring 3 with `iretq`.
/// Interrupts go off before `rsp` moves to the frame (an interrupt taken while the
/// registers are popped would push its own frame below it, over whatever lies there);
/// `iretq` turns them back on from the frame's flags.
///
/// # Safety
/// `frame` must be a user-mode frame (user selectors, canonical user `rip` and `rsp`) on the
/// current thread's kernel stack, which is the stack `set_kernel_stack` gave; nothing on
/// that stack below the frame may still be needed.
pub unsafe fn enter_user(frame: *const TrapFrame) -> ! {
    // SAFETY: upheld by the caller.
    unsafe { enter_user_asm(frame) }
}

#[unsafe(naked)]
unsafe extern "C" fn enter_user_asm(frame: *const TrapFrame) -> ! {
    naked_asm!("cli", "mov rsp, rdi", "jmp {exit}", exit = sym super::idt::trap_exit)
}
