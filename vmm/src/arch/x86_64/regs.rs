//! The vCPU's first register state: 64-bit mode, paging on, at the kernel's entry point.

use abi::gdt::{BOOT_GDT_ENTRIES, KERNEL_CS, KERNEL_DS};
use abi::layout::{BOOT_GDT_GPA, BOOT_INFO_GPA, phys_to_virt};
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};

use super::gdt::{boot_gdt, kvm_segment_from_entry};

/// CR0.PE: protected mode.
const CR0_PE: u64 = 1 << 0;
/// CR0.MP: `wait`/`fwait` honour TS (needed for lazy FPU and for `fxsave` use).
const CR0_MP: u64 = 1 << 1;
/// CR0.ET: 387-class FPU (always 1 on modern CPUs).
const CR0_ET: u64 = 1 << 4;
/// CR0.NE: native x87 error reporting (#MF, not IRQ 13).
const CR0_NE: u64 = 1 << 5;
/// CR0.WP: ring 0 honours read-only pages (needed for copy-on-write).
const CR0_WP: u64 = 1 << 16;
/// CR0.PG: paging.
const CR0_PG: u64 = 1 << 31;
/// CR4.PAE: physical address extension (required for long mode).
const CR4_PAE: u64 = 1 << 5;
/// CR4.PGE: global pages (the kernel half survives CR3 reloads).
const CR4_PGE: u64 = 1 << 7;
/// CR4.OSFXSR: `fxsave`/`fxrstor` and SSE are enabled.
const CR4_OSFXSR: u64 = 1 << 9;
/// CR4.OSXMMEXCPT: unmasked SSE exceptions raise #XM.
const CR4_OSXMMEXCPT: u64 = 1 << 10;
/// EFER.LME: long mode enabled.
const EFER_LME: u64 = 1 << 8;
/// EFER.LMA: long mode active.
const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE: no-execute bit in page tables.
const EFER_NXE: u64 = 1 << 11;
/// RFLAGS bit 1 is reserved and always set; everything else (IF included) is clear.
const RFLAGS_RESERVED: u64 = 1 << 1;
/// x87 control word after `fninit`: all exceptions masked, 64-bit precision.
const FPU_CONTROL_DEFAULT: u16 = 0x37f;
/// MXCSR after reset: all SSE exceptions masked.
const MXCSR_DEFAULT: u32 = 0x1f80;

/// Special registers for 64-bit mode with `pml4_gpa` in CR3. Fields not set here (the APIC
/// base, for one) keep their values from `current`.
pub fn long_mode_sregs(current: &kvm_sregs, pml4_gpa: u64) -> kvm_sregs {
    let gdt = boot_gdt();
    let code = kvm_segment_from_entry(gdt[usize::from(KERNEL_CS / 8)], KERNEL_CS);
    let data = kvm_segment_from_entry(gdt[usize::from(KERNEL_DS / 8)], KERNEL_DS);
    let mut sregs = *current;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    // The GDT is reached through the direct map, the only mapping there is.
    sregs.gdt.base = phys_to_virt(BOOT_GDT_GPA);
    sregs.gdt.limit = (BOOT_GDT_ENTRIES * 8 - 1) as u16;
    // No IDT until the kernel loads its own; an exception before that shuts the VM down,
    // which the VMM reports as a triple fault.
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    sregs.cr3 = pml4_gpa;
    sregs.cr4 = CR4_PAE | CR4_PGE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    sregs.efer = EFER_LME | EFER_LMA | EFER_NXE;
    sregs
}

/// General registers at entry: `rip` at the kernel entry, `rdi` = the `BootInfo` address,
/// interrupts off. The kernel sets its own stack.
pub fn entry_regs(entry: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rdi: BOOT_INFO_GPA,
        rflags: RFLAGS_RESERVED,
        ..Default::default()
    }
}

/// FPU state after `fninit`, with SSE exceptions masked.
pub fn initial_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: FPU_CONTROL_DEFAULT,
        mxcsr: MXCSR_DEFAULT,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sregs_enter_long_mode() {
        let current = kvm_sregs {
            apic_base: 0xfee0_0900,
            ..Default::default()
        };
        let s = long_mode_sregs(&current, 0x1_0000);
        assert_eq!(s.cr3, 0x1_0000);
        assert_eq!(s.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
        assert_eq!(s.cr0 & (1 << 2), 0, "CR0.EM clear so SSE works");
        assert_ne!(s.cr4 & CR4_PAE, 0);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(
            (s.cs.l, s.cs.selector, s.ss.selector),
            (1, KERNEL_CS, KERNEL_DS)
        );
        assert_eq!(s.apic_base, 0xfee0_0900, "untouched fields are kept");
        assert_eq!(s.gdt.base, phys_to_virt(BOOT_GDT_GPA));
    }

    #[test]
    fn regs_pass_boot_info() {
        let r = entry_regs(0x80_0420_0000);
        assert_eq!((r.rip, r.rdi, r.rflags), (0x80_0420_0000, BOOT_INFO_GPA, 2));
    }
}
