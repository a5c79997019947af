//! The kernel's GDT and TSS.
//!
//! ```text
//! selector  descriptor
//! 0x00      null
//! 0x08      kernel code, 64-bit   (abi::gdt::KERNEL_CS, same slot as the VMM's boot GDT)
//! 0x10      kernel data           (abi::gdt::KERNEL_DS)
//! 0x18      user data, DPL 3      (sysret: STAR[63:48] = 0x10, ss = 0x10 + 8)
//! 0x20      user code, DPL 3      (sysret: cs = 0x10 + 16)
//! 0x28      TSS (two slots)
//! ```
//! Kernel selectors match the boot GDT's, so loading this GDT needs no segment reload.
//! The TSS holds the double-fault stack (IST 1); later it also holds the ring-0 stack.

use core::ptr::addr_of;

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

use super::entry::Stack;

/// IST slot (1-based, as the IDT encodes it) of the double-fault stack.
pub const DOUBLE_FAULT_IST: u8 = 1;
/// Size of the double-fault stack.
const DOUBLE_FAULT_STACK_SIZE: usize = 16 * 1024;
/// Selector of the TSS descriptor.
const TSS_SELECTOR: u16 = 0x28;

static mut DOUBLE_FAULT_STACK: Stack<DOUBLE_FAULT_STACK_SIZE> = Stack([0; DOUBLE_FAULT_STACK_SIZE]);

/// The one TSS. Only `init` writes it before it is loaded.
static mut TSS: TaskStateSegment = TaskStateSegment::new();

static GDT: Once<GlobalDescriptorTable> = Once::new();

/// Sets the stack the CPU switches to on an interrupt or exception from ring 3 (TSS
/// `rsp0`). Call with interrupts off.
pub fn set_ring0_stack(top: u64) {
    // SAFETY: single CPU, interrupts off: the CPU reads rsp0 only when an interrupt arrives,
    // which cannot happen during this store.
    unsafe { TSS.privilege_stack_table[0] = VirtAddr::new(top) };
}

/// The stack the CPU switches to on an interrupt or exception from ring 3 (TSS `rsp0`).
pub fn ring0_stack() -> u64 {
    // SAFETY: single CPU; the only writer (`set_ring0_stack`) runs with interrupts off and
    // never concurrently with this plain read.
    unsafe { TSS.privilege_stack_table[0].as_u64() }
}

/// Builds and loads the GDT and the TSS. Call once, with interrupts off.
pub fn init() {
    let df_stack_top = addr_of!(DOUBLE_FAULT_STACK) as u64 + DOUBLE_FAULT_STACK_SIZE as u64;
    // SAFETY: single CPU, interrupts off, called once before the TSS is loaded: nothing
    // else reads or writes TSS concurrently.
    unsafe {
        TSS.interrupt_stack_table[usize::from(DOUBLE_FAULT_IST - 1)] = VirtAddr::new(df_stack_top);
    }

    let gdt = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kcode = gdt.append(Descriptor::kernel_code_segment());
        let kdata = gdt.append(Descriptor::kernel_data_segment());
        gdt.append(Descriptor::user_data_segment());
        gdt.append(Descriptor::user_code_segment());
        // SAFETY: TSS is a static, so the pointer stays valid for the whole run.
        let tss = gdt.append(unsafe { Descriptor::tss_segment_unchecked(&raw const TSS) });
        debug_assert_eq!(kcode.0, abi::gdt::KERNEL_CS);
        debug_assert_eq!(kdata.0, abi::gdt::KERNEL_DS);
        debug_assert_eq!(tss.0, TSS_SELECTOR);
        gdt
    });
    gdt.load();
    // SAFETY: the GDT just loaded has a valid, not-busy TSS descriptor at TSS_SELECTOR.
    unsafe { load_tss(SegmentSelector(TSS_SELECTOR)) };
}
