//! The contract between the VMM and the guest kernel.
//!
//! Every number that both sides need lives here, once: the guest-physical layout and the
//! kernel's virtual base ([`layout`]), the boot information the VMM hands the kernel
//! ([`boot`]), the registers of the devices the VMM emulates ([`devices`]), the segment
//! selectors of the boot GDT ([`gdt`]), the file-system disk format ([`fs`]), which executables the kernel loads ([`elf`]), the statistics page ([`stats`]), the fault trace ring ([`trace`]) and the
//! system-call numbers of the user ABI ([`syscall`]). The crate is `no_std` and has no dependencies so the
//! kernel and the VMM compile the very same definitions.
#![no_std]

pub mod boot;
pub mod devices;
pub mod elf;
pub mod fs;
pub mod gdt;
pub mod layout;
pub mod stats;
pub mod syscall;
pub mod trace;
