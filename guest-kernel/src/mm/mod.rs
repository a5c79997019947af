//! Memory management.
//!
//! ```text
//! guest-physical RAM (abi::layout)          kernel-virtual
//! [0, 1 MiB)        reserved: boot data,     KERN_BASE + gpa for every gpa: the direct map
//!                   boot page tables         built by the VMM (2 MiB pages). Frames are
//! usable ranges     split into two pools:    reached through it; nothing else is mapped
//!   low part        kernel pool: heap,       in the kernel half.
//!                   page tables, stacks
//!   high part       user pool: user pages    user space [0, KERN_BASE): per address space
//! ```
//! - [`frame`]: the two frame pools (O(1) alloc/free, zero tracking).
//! - [`heap`]: the kernel heap (`#[global_allocator]`), grown from the kernel pool.
//! - [`page_table`]: address spaces sharing the kernel half; map/unmap/translate user pages.
//!
//! What user pages hold and how they come and go (the SPT, the frame table, swap, mmap)
//! is `crate::vm`'s: this module is the machine-level part it builds on.

pub mod frame;
pub mod heap;
pub mod page_table;

/// Brings memory management up: the pools, then the heap (which draws on the kernel pool).
pub fn init(info: &abi::boot::BootInfo) {
    frame::init(info);
    page_table::init();
}
