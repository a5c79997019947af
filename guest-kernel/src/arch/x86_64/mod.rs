//! x86-64: entry from the VMM, GDT/TSS, IDT and trap entry, port I/O, CPU control.

/// The general registers pushed in `TrapFrame` order, last field first (the part of the
/// frame below the vector), then `rdi` pointing at the frame.
macro_rules! save_registers {
    () => {
        concat!(
            "push rax\n",
            "push rbx\n",
            "push rcx\n",
            "push rdx\n",
            "push rsi\n",
            "push rdi\n",
            "push rbp\n",
            "push r8\n",
            "push r9\n",
            "push r10\n",
            "push r11\n",
            "push r12\n",
            "push r13\n",
            "push r14\n",
            "push r15\n",
            "mov rdi, rsp\n",
        )
    };
}

/// The general registers popped from a `TrapFrame` at `rsp`, the reverse of
/// `save_registers!` (without its `mov`): `rsp` then points at the vector.
macro_rules! restore_registers {
    () => {
        concat!(
            "pop r15\n",
            "pop r14\n",
            "pop r13\n",
            "pop r12\n",
            "pop r11\n",
            "pop r10\n",
            "pop r9\n",
            "pop r8\n",
            "pop rbp\n",
            "pop rdi\n",
            "pop rsi\n",
            "pop rdx\n",
            "pop rcx\n",
            "pop rbx\n",
            "pop rax\n",
        )
    };
}

/// The ring-0 half of entering CPL 3 under the shim (`cpl3`, `events`): pushes the
/// callee-saved registers and `$root` (the CR3 to return to), and stores the stack pointer
/// at `{saved}` (an operand of the enclosing `asm!`) for [`resume_caller!`].
macro_rules! save_caller {
    ($root:literal) => {
        concat!(
            "push rbp\n",
            "push rbx\n",
            "push r12\n",
            "push r13\n",
            "push r14\n",
            "push r15\n",
            "push ",
            $root,
            "\n",
            "sub rsp, 8\n",
            "mov [rip + {saved}], rsp\n",
        )
    };
}

/// The shim's way back to the code that called [`save_caller!`]: from any stack, loads
/// the CR3 and the registers it saved at `{saved}` and returns to it with `rax` as it is.
macro_rules! resume_caller {
    () => {
        concat!(
            "mov rsp, [rip + {saved}]\n",
            "add rsp, 8\n",
            "pop r8\n",
            "mov cr3, r8\n",
            "pop r15\n",
            "pop r14\n",
            "pop r13\n",
            "pop r12\n",
            "pop rbx\n",
            "pop rbp\n",
            "ret\n",
        )
    };
}

pub mod context;
pub mod cpl3;
pub mod cpu;
pub mod entry;
pub mod events;
pub mod fast;
pub mod gdt;
pub mod idt;
pub mod lapic;
pub mod trap;
pub mod user;

/// Loads the kernel's own GDT, TSS and IDT. Called once, first thing after `BootInfo`.
pub fn init(info: &abi::boot::BootInfo) {
    gdt::init();
    idt::init(info.devices().iter().map(|d| d.irq));
}
