//! x86-64 boot state for a kernel entered directly in long mode.
pub mod gdt;
pub mod page_tables;
pub mod regs;
