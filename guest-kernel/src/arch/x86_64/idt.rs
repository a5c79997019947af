//! The IDT and the assembly entry stubs.
//!
//! Every vector's stub is 16 bytes long and placed at `trap_stubs + 16 * vector`, so the IDT
//! is filled from one base address with no table of pointers. A stub pushes a zero error code
//! if the CPU does not push one, then the vector number, and jumps to `trap_common`, which
//! saves the general registers into a [`TrapFrame`](super::trap::TrapFrame) and calls `kernel_trap` with its address.
//!
//! `kernel_trap` is the portable dispatcher's entry (`crate::dispatch`), called by its link
//! name: `arch` hands traps on without importing the code that handles them, and the call
//! costs nothing more than a direct call (where ring 0 is emulated, every instruction and
//! memory access on the trap path shows in the system-call and fault times). It decodes the
//! frame with [`super::trap::decode`].
//!
//! The IDT lives in `.bss`: an all-zero gate is "not present", so only the gates in use are
//! written at boot (a few dozen stores instead of 4 KiB; ring-0 stores are expensive on
//! emulating hosts). A vector with no gate raises #NP, which the #NP handler reports.

use core::arch::global_asm;
use core::ptr::addr_of;

use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

use abi::devices::IRQ_VECTOR_BASE;

use super::gdt::DOUBLE_FAULT_IST;
use super::lapic;
use super::trap::vector;

/// Device interrupt lines the VMM may route (vectors `IRQ_VECTOR_BASE..+IRQ_LINES`).
pub const IRQ_LINES: usize = 24;
const _: () = assert!(
    (IRQ_VECTOR_BASE as usize) + IRQ_LINES <= lapic::TIMER_VECTOR as usize
        && (lapic::SPURIOUS_VECTOR as usize) < STUB_VECTORS
);

/// Number of CPU exception vectors (0-31).
pub const EXCEPTION_VECTORS: usize = 32;
/// Vectors with an entry stub: exceptions, device lines, the timer and the spurious vector
/// (see `lapic`). Must stay above every vector the kernel installs.
pub const STUB_VECTORS: usize = 0x50;
/// Bytes between consecutive stubs; must match `.align` in the assembly below.
pub(super) const STUB_SIZE: u64 = 16;
/// Gate type: present, DPL 0, 64-bit interrupt gate (IF cleared on entry).
const GATE_INTERRUPT_DPL0: u8 = 0x8e;

/// One 16-byte IDT gate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const fn new(handler: u64, ist: u8, type_attr: u8) -> Self {
        Gate {
            offset_low: handler as u16,
            selector: abi::gdt::KERNEL_CS,
            ist,
            type_attr,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

// SAFETY (of the zero initialiser): all-zero gates are valid "not present" entries.
/// A gate that is not present.
const NO_GATE: Gate = Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    type_attr: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
};

static mut IDT: Idt = Idt([NO_GATE; 256]);

/// The IDT while kernel code runs at CPL 3 (`cpl3::call`): every exception goes to
/// `cpl3_trap_common` (the shim's emulation of privileged instructions, or a kernel-fault
/// report), and `int3` to the shim's request entry. Interrupts cannot arrive then (they are
/// off). Keeping this apart costs the ordinary trap path nothing.
static mut CPL3_IDT: Idt = Idt([NO_GATE; 256]);

/// The IDT while a user program's events go to kernel code at CPL 3 (`events::run_user`):
/// as [`CPL3_IDT`], but #UD from the user goes to the shim's upcall, and `int3` to the
/// events' request entry.
static mut EVENTS_IDT: Idt = Idt([NO_GATE; 256]);

/// Which IDT to load ([`load`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// The ordinary one: every trap to `trap_common`.
    Ordinary,
    /// Kernel code at CPL 3 (`cpl3::call`).
    Cpl3,
    /// A user program's events to kernel code at CPL 3 (`events::run_user`).
    Events,
}

unsafe extern "C" {
    /// First byte of the stub block (vector 0's stub).
    static trap_stubs: u8;
    /// First byte of the CPL-3 stub block (vector 0's).
    static cpl3_trap_stubs: u8;
    /// The restore half of `trap_common`: pops a [`TrapFrame`] at `rsp` and returns.
    pub fn trap_exit() -> !;
}

/// Vector of `int 0x42` (see guest-abi.md): a gate user code may use.
pub const INT42_VECTOR: usize = 0x42;
/// Gate type: present, DPL 3, 64-bit interrupt gate.
const GATE_INTERRUPT_DPL3: u8 = 0xee;

/// Bit `v` is set if the CPU pushes an error code for exception `v` (#DF, #TS, #NP, #SS,
/// #GP, #PF, #AC, #CP, #VC, #SX). The stub assembly reads the same constant.
const ERROR_CODE_VECTORS: u32 = 1 << 8
    | 1 << 10
    | 1 << 11
    | 1 << 12
    | 1 << 13
    | 1 << 14
    | 1 << 17
    | 1 << 21
    | 1 << 29
    | 1 << 30;

/// Address of the entry stub of `vector`.
fn stub_address(vector: usize) -> u64 {
    addr_of!(trap_stubs) as u64 + STUB_SIZE * vector as u64
}

/// Installs gates for all CPU exceptions, the device lines in use, the timer and the
/// spurious vector, and loads the IDT. Call once, interrupts off.
///
/// Each gate costs a few emulated instructions on some hosts, so only vectors that can
/// arrive get one (any other raises #NP, which is reported).
pub fn init(device_lines: impl Iterator<Item = u32>) {
    set_gates(0..EXCEPTION_VECTORS);
    for line in device_lines.filter(|&l| (l as usize) < IRQ_LINES) {
        let vector = usize::from(IRQ_VECTOR_BASE) + line as usize;
        set_gates(vector..vector + 1);
    }
    for vector in [lapic::TIMER_VECTOR, lapic::SPURIOUS_VECTOR] {
        set_gates(usize::from(vector)..usize::from(vector) + 1);
    }
    set_gates(INT42_VECTOR..INT42_VECTOR + 1);
    // SAFETY: single CPU, interrupts off, before `lidt`.
    unsafe { IDT.0[INT42_VECTOR].type_attr = GATE_INTERRUPT_DPL3 };
    // The double fault runs on its own stack, so a corrupt kernel stack is still reported.
    // SAFETY: single CPU, interrupts off, before `lidt`.
    unsafe { IDT.0[8].ist = DOUBLE_FAULT_IST };
    let pointer = DescriptorTablePointer {
        limit: (size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(addr_of!(IDT)),
    };
    // SAFETY: IDT is a static (lives forever) whose present gates all point at the stubs
    // below, which follow the interrupt-frame protocol trap_common expects.
    unsafe { lidt(&pointer) };
}

/// Fills the IDTs of runs at CPL 3 ([`CPL3_IDT`], [`EVENTS_IDT`]), once, when the first
/// such run loads one: a boot that never runs code at CPL 3 pays nothing for them.
fn init_cpl3_tables() {
    static DONE: spin::Once<()> = spin::Once::new();
    DONE.call_once(|| {
        for vector in 0..EXCEPTION_VECTORS {
            let stub = addr_of!(cpl3_trap_stubs) as u64 + STUB_SIZE * vector as u64;
            let ist = if vector == 8 { DOUBLE_FAULT_IST } else { 0 };
            // SAFETY: single CPU, interrupts off (a run at CPL 3 is starting), once; CPL3_IDT is
            // only loaded by `cpl3::call`.
            unsafe { CPL3_IDT.0[vector] = Gate::new(stub, ist, GATE_INTERRUPT_DPL0) };
        }
        // #GP from kernel code at CPL 3: the shim emulates the common privileged instructions
        // there before the general path (`cpl3::gp_entry`).
        // SAFETY: as above.
        unsafe {
            CPL3_IDT.0[vector::GENERAL_PROTECTION as usize] =
                Gate::new(super::cpl3::gp_entry(), 0, GATE_INTERRUPT_DPL0);
        }
        // `int3` is how kernel code at CPL 3 asks the shim for something: a gate it can reach.
        let request = Gate::new(super::cpl3::request_entry(), 0, GATE_INTERRUPT_DPL3);
        // SAFETY: as above; the entry hands anything not a request to the CPL-3 stub.
        unsafe { CPL3_IDT.0[vector::BREAKPOINT as usize] = request };
        // SAFETY: as above; EVENTS_IDT is only loaded by `events::run_user`.
        unsafe {
            EVENTS_IDT.0[..EXCEPTION_VECTORS].copy_from_slice(&CPL3_IDT.0[..EXCEPTION_VECTORS]);
            EVENTS_IDT.0[vector::BREAKPOINT as usize] =
                Gate::new(super::events::request_entry(), 0, GATE_INTERRUPT_DPL3);
            EVENTS_IDT.0[vector::INVALID_OPCODE as usize] =
                Gate::new(super::events::upcall_entry(), 0, GATE_INTERRUPT_DPL0);
            EVENTS_IDT.0[vector::PAGE_FAULT as usize] =
                Gate::new(super::events::page_fault_entry(), 0, GATE_INTERRUPT_DPL0);
        }
    });
}

/// Loads the IDT `table`.
pub fn load(table: Table) {
    if table != Table::Ordinary {
        init_cpl3_tables();
    }
    let base = match table {
        Table::Ordinary => addr_of!(IDT),
        Table::Cpl3 => addr_of!(CPL3_IDT),
        Table::Events => addr_of!(EVENTS_IDT),
    };
    let pointer = DescriptorTablePointer {
        limit: (size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(base),
    };
    // SAFETY: every table is a static whose present gates (filled by `init`, or by
    // `init_cpl3_tables` just above) all point at entries that follow the interrupt-frame
    // protocol.
    unsafe { lidt(&pointer) };
}

/// Points the gate of `vector` at `entry` (a DPL 3 gate, which user code may raise with
/// `int`, if `user`). Call with interrupts off; the change applies to the next event.
pub(super) fn set_gate(vector: usize, entry: u64, user: bool) {
    let attr = if user {
        GATE_INTERRUPT_DPL3
    } else {
        GATE_INTERRUPT_DPL0
    };
    let gate = Gate::new(entry, 0, attr);
    // SAFETY: single CPU, interrupts off (the caller's contract); the CPU reads a gate only
    // when its vector arrives, and the gate is written whole before that.
    unsafe { (&raw mut IDT.0).cast::<Gate>().add(vector).write(gate) };
}

/// Points the gates of `vectors` at their stubs (DPL 0 interrupt gates, no IST).
fn set_gates(vectors: core::ops::Range<usize>) {
    for vector in vectors {
        let gate = Gate::new(stub_address(vector), 0, GATE_INTERRUPT_DPL0);
        // SAFETY: single CPU; gates are written before `lidt` with interrupts off; the
        // vector is below 256 (callers pass exception vectors or u8 vectors).
        unsafe { (&raw mut IDT.0).cast::<Gate>().add(vector).write(gate) };
    }
}

/// Replaces the IDT with an empty one, so that the next exception shuts the CPU down.
/// Only the triple-fault test hook uses this.
pub fn load_empty() {
    let pointer = DescriptorTablePointer {
        limit: 0,
        base: VirtAddr::zero(),
    };
    // SAFETY: deliberately makes every interrupt fatal; the caller raises one at once.
    unsafe { lidt(&pointer) };
}

/// A block of entry stubs at `$label`, one per vector below `$count`, each padded to
/// `STUB_SIZE`: it pushes a zero error code where the CPU pushes none, then the vector,
/// and jumps to `$common`. `push imm32` (0x68) keeps every stub the same length whatever
/// the vector.
macro_rules! stub_block {
    ($label:literal, $count:expr, $common:path) => {
        global_asm!(
            ".pushsection .text.trap, \"ax\"",
            concat!(".global ", $label),
            ".align 16",
            concat!($label, ":"),
            ".set trap_vector, 0",
            ".rept {count}",
            ".align 16",
            ".if trap_vector >= 32 || ((({mask} >> trap_vector) & 1) == 0)",
            "push 0",
            ".endif",
            ".byte 0x68",
            ".long trap_vector",
            "jmp {common}",
            ".set trap_vector, trap_vector + 1",
            ".endr",
            ".popsection",
            count = const $count,
            mask = const ERROR_CODE_VECTORS,
            common = sym $common,
        );
    };
}

stub_block!("trap_stubs", STUB_VECTORS, trap_common);
// The same stubs for the CPL-3 IDT (exceptions only), ending in `cpl3_trap_common`.
stub_block!("cpl3_trap_stubs", EXCEPTION_VECTORS, cpl3_trap_common);

/// [`trap_common`] for the CPL-3 IDT: the same frame, handed to `cpl3::trap`.
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn cpl3_trap_common() -> ! {
    core::arch::naked_asm!(
        save_registers!(),
        "cld",
        "call {trap}",
        "jmp trap_exit",
        trap = sym super::cpl3::trap,
    )
}

/// Saves the interrupted context as a `TrapFrame`, calls `kernel_trap` (see the module
/// documentation) with its address, restores, returns. `trap_exit` (the restore half) also
/// starts user programs (`user::enter_user`).
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn trap_common() -> ! {
    core::arch::naked_asm!(
        // The frame is 22 quadwords (176 bytes) on a 16-byte aligned entry stack, so rsp is
        // 16-byte aligned after the pushes, as the call needs.
        save_registers!(),
        "cld",
        "call kernel_trap",
        ".global trap_exit",
        "trap_exit:",
        restore_registers!(),
        // Drop the vector and the error code.
        "add rsp, 16",
        "iretq",
    )
}
