//! Kernel-thread context switch and per-thread FPU/SSE state.
//!
//! A suspended thread's callee-saved registers sit on its own stack; its `Context` holds
//! only the stack pointer. A new thread's stack is laid out so that the first switch to it
//! "returns" into [`thread_entry`], which calls the Rust start function.

use core::arch::naked_asm;
use core::mem::MaybeUninit;

/// Saved stack pointer of a suspended thread.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Context {
    rsp: u64,
}

/// The 512-byte `fxsave64` image of the x87/SSE state.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpuState([u8; 512]);

impl FpuState {
    /// The state after `fninit` with SSE exceptions masked: x87 control word 0x37f, MXCSR
    /// 0x1f80, all registers zero.
    pub const fn initial() -> Self {
        let mut image = [0u8; 512];
        image[0] = 0x7f;
        image[1] = 0x03;
        image[24] = 0x80;
        image[25] = 0x1f;
        FpuState(image)
    }
}

/// Callee-saved registers pushed by `switch_stacks`, in push order.
const SAVED_REGISTERS: usize = 6;

impl Context {
    /// A context that starts `start(arg)` on the stack ending at `stack_top` (16-aligned).
    pub fn new(stack_top: u64, start: extern "C" fn(u64) -> !, arg: u64) -> Self {
        debug_assert!(stack_top.is_multiple_of(16));
        // From `frame` up: rbp rbx r12 r13 r14 r15 (popped by switch_stacks), the return
        // address `thread_entry`, then 16 bytes of padding so that rsp is 16-aligned when
        // thread_entry calls `start`. r12 carries `start`, r13 carries `arg`.
        let frame = stack_top - 8 * (SAVED_REGISTERS as u64 + 3);
        let words = frame as *mut u64;
        let values: [u64; SAVED_REGISTERS + 1] = [
            0,
            0,
            start as usize as u64,
            arg,
            0,
            0,
            thread_entry as *const () as u64,
        ];
        for (i, value) in values.iter().enumerate() {
            // SAFETY: the caller gives a fresh stack it owns; `frame` and the next seven
            // words lie below `stack_top` inside it.
            unsafe { words.add(i).write(*value) };
        }
        Context { rsp: frame }
    }
}

/// Byte offset of XMM0 in the `fxsave64` image.
const XMM0_OFFSET: usize = 160;

impl FpuState {
    /// The value of XMM0 in this image.
    pub fn xmm0(&self) -> u128 {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&self.0[XMM0_OFFSET..XMM0_OFFSET + 16]);
        u128::from_le_bytes(bytes)
    }

    /// Sets XMM0 in this image.
    pub fn set_xmm0(&mut self, value: u128) {
        self.0[XMM0_OFFSET..XMM0_OFFSET + 16].copy_from_slice(&value.to_le_bytes());
    }
}

/// Stores the CPU's x87/SSE registers into `state` (`fxsave64`), which initialises all
/// 512 bytes.
///
/// The kernel never uses these registers itself (it is built without SSE), so they always
/// hold the running thread's values. Kernels that emulate ring 0 cannot run SSE
/// instructions there, but `fxsave64`/`fxrstor64` work everywhere.
pub fn save_fpu(state: &mut MaybeUninit<FpuState>) {
    // SAFETY: the area is 512 bytes and 16-aligned; CR4.OSFXSR is set by the VMM.
    unsafe {
        core::arch::asm!("fxsave64 [{}]", in(reg) state.as_mut_ptr(), options(nostack, preserves_flags))
    };
}

/// Loads the CPU's x87/SSE registers from `state` (`fxrstor64`).
pub fn load_fpu(state: &FpuState) {
    // SAFETY: as for `save_fpu`; the image came from `fxsave64` or `FpuState::initial`
    // (reserved MXCSR bits clear), so `fxrstor64` does not fault.
    unsafe {
        core::arch::asm!("fxrstor64 [{}]", in(reg) state.0.as_ptr(), options(nostack, preserves_flags))
    };
}

/// Switches stacks: saves the callee-saved registers and stack pointer of the running
/// thread into `from`, and resumes the thread whose context is `to`. Returns when some
/// other thread switches back to `from`.
///
/// # Safety
/// Interrupts must be off. `to` must be a context saved by this function or made by
/// [`Context::new`], whose stack is still allocated; `from` must stay valid until resumed.
pub unsafe fn switch(from: *mut Context, to: *const Context) {
    // SAFETY: upheld by the caller as documented.
    unsafe { switch_stacks(from, to) }
}

#[unsafe(naked)]
pub(super) unsafe extern "C" fn switch_stacks(from: *mut Context, to: *const Context) {
    naked_asm!(
        "push r15",
        "push r14",
        "push r13",
        "push r12",
        "push rbx",
        "push rbp",
        "mov [rdi], rsp",
        "mov rsp, [rsi]",
        "pop rbp",
        "pop rbx",
        "pop r12",
        "pop r13",
        "pop r14",
        "pop r15",
        "ret",
    )
}

/// First code of a new thread: calls `start(arg)` (from r12, r13) with an aligned stack.
#[unsafe(naked)]
unsafe extern "C" fn thread_entry() -> ! {
    naked_asm!("mov rdi, r13", "call r12", "ud2")
}
