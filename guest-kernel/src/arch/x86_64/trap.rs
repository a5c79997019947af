//! Trap decoding: what the CPU reported, turned into one portable [`Event`].
//!
//! The entry stubs (`idt`) save a [`TrapFrame`] and hand it to the portable dispatcher
//! (`crate::dispatch`), which calls [`decode`] and decides what to do with the event. So
//! `arch` never calls the fault path, the scheduler or the system calls by name, and none
//! of them is above it in an import circle (the one thing it uses from above is the
//! console, for the register dump of a kernel fault).
//!
//! Kernel-mode exceptions are kernel bugs and never become events, with one exception: an
//! instruction listed in the fixup table (the probes below) may fault on purpose; the
//! handler then resumes at its fixup address with the vector in `rdx`. Everything else
//! prints a register dump on the console and panics, which the VMM reports as
//! `vmm: guest kernel panic: ...`.

use core::arch::{global_asm, naked_asm};
use core::ptr::addr_of;

use super::{cpl3, cpu, idt, lapic, user};
use crate::console;

/// The registers saved on a trap, lowest address first; `trap_common` builds it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Vector number pushed by the stub.
    pub vector: u64,
    /// Error code pushed by the CPU, or 0 pushed by the stub.
    pub error_code: u64,
    // The hardware interrupt frame.
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(size_of::<TrapFrame>() == 22 * 8);

/// Vector numbers used by name.
pub mod vector {
    pub const DEBUG: u64 = 1;
    pub const BREAKPOINT: u64 = 3;
    pub const INVALID_OPCODE: u64 = 6;
    pub const DOUBLE_FAULT: u64 = 8;
    pub const GENERAL_PROTECTION: u64 = 13;
    pub const PAGE_FAULT: u64 = 14;
    /// The local APIC timer's interrupt.
    pub const TIMER: u64 = super::lapic::TIMER_VECTOR as u64;
}

/// Short mnemonic and name of an exception vector.
pub fn exception_name(vector: u64) -> (&'static str, &'static str) {
    match vector {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range exceeded"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        9 => ("#CSO", "coprocessor segment overrun"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection fault"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating-point error"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating-point error"),
        20 => ("#VE", "virtualization exception"),
        21 => ("#CP", "control protection"),
        28 => ("#HV", "hypervisor injection"),
        29 => ("#VC", "VMM communication"),
        30 => ("#SX", "security exception"),
        _ => ("#??", "reserved vector"),
    }
}

/// A trap, decoded: what happened, in portable terms. The [`TrapFrame`] that comes with it
/// holds the user registers (system-call arguments, the result in `rax`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A system call from user mode.
    Syscall,
    /// `int 0x42` from user mode: `rax` holds a user address, to be replaced by the
    /// kernel-virtual address of the frame backing it (or 0).
    Int42,
    /// A page fault in user mode at `addr`: `present` if the page was mapped (a protection
    /// violation), `write` if the access was a write.
    PageFault {
        addr: u64,
        present: bool,
        write: bool,
    },
    /// An invalid opcode in user mode. Some KVMs raise it for `int 0x42` in ring 3 instead
    /// of using the gate: [`skip_int42`] tells.
    InvalidOpcode,
    /// Any other exception in user mode (the program's fault), with its vector.
    UserException(u64),
    /// The timer interrupt. Not acknowledged yet: [`lapic::eoi`] before switching threads.
    Timer,
    /// An interrupt from device line `line` (`abi::devices`). Not acknowledged yet.
    Device(u32),
}

/// `rflags` bits a system call may hand back to user code: the arithmetic flags (the rest
/// are forced: interrupts on, no trap flag, IOPL 0).
const USER_RFLAGS_KEPT: u64 = 0x8d5;
/// The bytes of `int 0x42`.
const INT42_BYTES: [u8; 2] = [0xcd, 0x42];

/// What a page fault's error code says: whether the page was present (a protection
/// violation, not a missing page), and whether the access was a write.
#[inline(always)]
pub fn page_fault_access(error_code: u64) -> (bool, bool) {
    /// Error-code bit: the page was present.
    const PF_PRESENT: u64 = 1;
    /// Error-code bit: the access was a write.
    const PF_WRITE: u64 = 2;
    (error_code & PF_PRESENT != 0, error_code & PF_WRITE != 0)
}

/// The event `frame` reports; `None` for a spurious interrupt or a probe's fault (resumed
/// at its fixup). Panics on any other kernel-mode exception.
#[inline(always)]
pub fn decode(frame: &mut TrapFrame) -> Option<Event> {
    let is_interrupt = frame.vector >= idt::EXCEPTION_VECTORS as u64
        && frame.vector != user::SYSCALL_VECTOR
        && frame.vector != idt::INT42_VECTOR as u64;
    if is_interrupt {
        return match frame.vector {
            v if v == u64::from(lapic::SPURIOUS_VECTOR) => None,
            v if v == u64::from(lapic::TIMER_VECTOR) => Some(Event::Timer),
            v => Some(Event::Device(
                (v - u64::from(abi::devices::IRQ_VECTOR_BASE)) as u32,
            )),
        };
    }
    if frame.cs & 3 != 3 {
        if let Some(fixup) = fixup_for(frame.rip) {
            frame.rdx = frame.vector;
            frame.rip = fixup;
            return None;
        }
        kernel_fault(frame);
    }
    Some(match frame.vector {
        user::SYSCALL_VECTOR => Event::Syscall,
        vector::GENERAL_PROTECTION if user::is_trampoline_entry(frame.rip) => {
            // `syscall` ran the trampoline in ring 3 (PVM): its `swapgs` faulted.
            if syscall_from_trampoline(frame) {
                Event::Syscall
            } else {
                Event::UserException(vector::GENERAL_PROTECTION)
            }
        }
        v if v == idt::INT42_VECTOR as u64 => Event::Int42,
        vector::PAGE_FAULT => {
            let (present, write) = page_fault_access(frame.error_code);
            Event::PageFault {
                addr: cpu::read_cr2(),
                present,
                write,
            }
        }
        vector::INVALID_OPCODE => Event::InvalidOpcode,
        v => Event::UserException(v),
    })
}

/// Makes the frame of a `syscall` that ran the trampoline in ring 3 (PVM: its `swapgs`
/// raised #GP) return where `syscall` would, with the flags it saved in `r11`. False (and
/// the frame unchanged) if that return address is not canonical: a program that jumped to
/// the trampoline with such an `rcx` would make the return itself fault, in ring 0 where
/// `iretq` checks it (Intel); it is the program's fault instead.
#[inline(always)]
pub fn syscall_from_trampoline(frame: &mut TrapFrame) -> bool {
    /// The first address above the canonical lower half.
    const NON_CANONICAL: u64 = 1 << 47;
    if frame.rcx >= NON_CANONICAL {
        return false;
    }
    frame.rip = frame.rcx;
    frame.rflags = (frame.r11 & USER_RFLAGS_KEPT) | user::USER_RFLAGS;
    frame.cs = user::USER_CS;
    frame.ss = user::USER_DS;
    true
}

/// For an [`Event::InvalidOpcode`]: if the user instruction at `frame.rip` is `int 0x42`
/// (its bytes read with `read_byte`, which gives `None` for an address not mapped), moves
/// `rip` past it, as the gate would have, and says so.
#[inline(always)]
pub fn skip_int42(frame: &mut TrapFrame, mut read_byte: impl FnMut(u64) -> Option<u8>) -> bool {
    let rip = frame.rip;
    let is_int42 = read_byte(rip) == Some(INT42_BYTES[0])
        && rip.checked_add(1).and_then(&mut read_byte) == Some(INT42_BYTES[1]);
    if is_int42 {
        frame.rip += INT42_BYTES.len() as u64;
    }
    is_int42
}

/// Reports an unexpected kernel-mode exception and panics. Never returns.
pub(super) fn kernel_fault(frame: &TrapFrame) -> ! {
    let (mnemonic, name) = exception_name(frame.vector);
    let cr2 = cpu::read_cr2();
    // The dump bypasses the console lock: the fault may have hit while it was held.
    console::emergency_print(format_args!(
        "kernel fault: {mnemonic} {name} (vector {}), error {:#x}, rip {:#x}, cr2 {cr2:#x}\n\
             rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n\
             rsi {:#018x} rdi {:#018x} rbp {:#018x} rsp {:#018x}\n\
             r8  {:#018x} r9  {:#018x} r10 {:#018x} r11 {:#018x}\n\
             r12 {:#018x} r13 {:#018x} r14 {:#018x} r15 {:#018x}\n\
             rflags {:#x} cs {:#x} ss {:#x}\n",
        frame.vector,
        frame.error_code,
        frame.rip,
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.rsp,
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
        frame.rflags,
        frame.cs,
        frame.ss,
    ));
    panic!(
        "kernel fault: {mnemonic} {name} (vector {}) at rip {:#x}, error {:#x}, cr2 {cr2:#x}",
        frame.vector, frame.rip, frame.error_code
    );
}

// Probes: instructions that may fault on purpose. Each `*_insn` label is listed in
// `fixup_for` with the address to resume at; the fixup returns the vector in rdx.
global_asm!(
    ".pushsection .text.probe, \"ax\"",
    // probe_read_u64(addr: u64) -> ProbeResult: reads *addr.
    ".global probe_read_u64",
    "probe_read_u64:",
    "xor edx, edx",
    ".global probe_read_u64_insn",
    "probe_read_u64_insn:",
    "mov rax, [rdi]",
    ".global probe_read_u64_fixup",
    "probe_read_u64_fixup:",
    "ret",
    // probe_invalid_opcode() -> ProbeResult: executes ud2.
    ".global probe_invalid_opcode",
    "probe_invalid_opcode:",
    "xor edx, edx",
    "xor eax, eax",
    ".global probe_invalid_opcode_insn",
    "probe_invalid_opcode_insn:",
    "ud2",
    ".global probe_invalid_opcode_fixup",
    "probe_invalid_opcode_fixup:",
    "ret",
    ".popsection",
);

/// What a probe returns: the value read, and 0 or the vector of the exception it took.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProbeResult {
    pub value: u64,
    pub vector: u64,
}

unsafe extern "C" {
    fn probe_read_u64(addr: u64) -> ProbeResult;
    fn probe_invalid_opcode() -> ProbeResult;
    static probe_read_u64_insn: u8;
    static probe_read_u64_fixup: u8;
    static probe_invalid_opcode_insn: u8;
    static probe_invalid_opcode_fixup: u8;
}

/// The fixup address for a faulting instruction at `rip`, if it is a probe.
fn fixup_for(rip: u64) -> Option<u64> {
    let table = [
        (
            addr_of!(probe_read_u64_insn),
            addr_of!(probe_read_u64_fixup),
        ),
        (
            addr_of!(probe_invalid_opcode_insn),
            addr_of!(probe_invalid_opcode_fixup),
        ),
    ];
    table
        .iter()
        .find(|(insn, _)| *insn as u64 == rip)
        .map(|(_, fixup)| *fixup as u64)
}

/// Reads the `u64` at kernel-virtual `addr`; `Err(vector)` if the read faulted.
pub fn try_read_u64(addr: u64) -> Result<u64, u64> {
    // SAFETY: the probe's only memory access is covered by the fixup table, so a fault
    // resumes at the fixup instead of being fatal; a successful read has no side effect
    // on kernel memory (callers pass addresses outside any device register range).
    let r = unsafe { probe_read_u64(addr) };
    if r.vector == 0 {
        Ok(r.value)
    } else {
        Err(r.vector)
    }
}

/// Executes an invalid instruction; returns the vector it raised (6 if the IDT works).
pub fn try_invalid_opcode() -> u64 {
    // SAFETY: the ud2 is covered by the fixup table; the probe touches no memory.
    unsafe { probe_invalid_opcode() }.vector
}

/// Test hook: makes the next exception unrecoverable, so the CPU shuts down.
pub fn force_triple_fault() -> ! {
    idt::load_empty();
    // SAFETY: deliberately raises #UD with no IDT: #UD -> #GP -> #DF -> shutdown.
    unsafe { core::arch::asm!("ud2", options(noreturn)) }
}

/// Test hook: reads an unmapped kernel address outside any fixup, so the fault is fatal.
pub fn force_kernel_page_fault() -> ! {
    /// Canonical, page-aligned, and far beyond any RAM in the direct map.
    const UNMAPPED: u64 = 0x7fff_dead_0000;
    // SAFETY: deliberately faults; the #PF handler panics and never returns here.
    unsafe { core::arch::asm!("mov rax, [{0}]", "ud2", in(reg) UNMAPPED, options(noreturn)) }
}

/// Test hook: runs kernel code at CPL 3 (`cpl3::call`) that reads an unmapped kernel
/// address; the fault is reported like a ring-0 one, and panics.
pub fn force_cpl3_page_fault() -> ! {
    extern "C" fn read_unmapped(_: u64) -> u64 {
        read_unmapped_address()
    }
    cpl3::call(read_unmapped, 0, crate::boot::info().kview_pml4_gpa);
    unreachable!("trap: the CPL-3 read of an unmapped address did not fault")
}

/// Test hook: reads an address that is never mapped, at whatever privilege the caller
/// runs; the fault is fatal.
pub fn read_unmapped_address() -> u64 {
    /// Canonical, page-aligned, and far beyond any RAM in the direct map.
    const UNMAPPED: u64 = 0x7fff_dead_0000;
    // SAFETY: deliberately faults; the fault is fatal and never returns here.
    unsafe { (UNMAPPED as *const u64).read_volatile() }
}

/// Test hook: takes a page fault with an unmapped stack. Delivering the #PF then faults
/// too, which is a double fault; its handler runs on its own IST stack and reports.
pub fn force_double_fault() -> ! {
    // SAFETY: never returns (see above); nothing of the current stack is used again.
    unsafe { double_fault_now() }
}

/// Test hook: executes an instruction that KVMs which emulate ring 0 cannot emulate
/// (`xgetbv` with CR4.OSXSAVE clear). Hardware raises #UD instead, which is fatal here.
pub fn force_emulation_failure() -> ! {
    // SAFETY: deliberately stops the VM (emulation failure) or faults (#UD -> panic).
    unsafe { core::arch::asm!("xor ecx, ecx", "xgetbv", "ud2", options(noreturn)) }
}

#[unsafe(naked)]
unsafe extern "C" fn double_fault_now() -> ! {
    naked_asm!("mov rsp, 0x7fffdead0000", "push rax", "ud2")
}
