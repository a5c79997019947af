//! Architecture-specific boot state: the page tables, GDT and registers the vCPU starts with.
pub mod x86_64;
