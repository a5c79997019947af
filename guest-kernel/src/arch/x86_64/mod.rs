//! x86-64: entry from the VMM, GDT/TSS, IDT and trap entry, port I/O, CPU control.
pub mod context;
pub mod cpl3;
pub mod cpu;
pub mod entry;
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
