//! The boot GDT and the matching KVM segment registers.
//!
//! The vCPU starts in 64-bit mode, so KVM needs both the descriptor bytes in guest memory (the
//! kernel may reload a selector) and the same values decoded into `kvm_segment`s. Both come
//! from one encoding here so they cannot disagree.

use abi::gdt::{BOOT_GDT_ENTRIES, KERNEL_CS, KERNEL_DS};
use kvm_bindings::kvm_segment;

/// Descriptor flags in the form `0xFA_AA`: bits 0-7 are the access byte, bits 12-15 the
/// flags nibble (granularity, default size, long mode, available).
/// Kernel code: granularity 4 KiB, long mode; present, ring 0, code, execute/read, accessed.
pub const FLAGS_KERNEL_CODE64: u16 = 0xa09b;
/// Kernel data: granularity 4 KiB, 32-bit default size; present, ring 0, data, read/write,
/// accessed.
pub const FLAGS_KERNEL_DATA: u16 = 0xc093;

/// Encodes one 8-byte segment descriptor.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = base as u64;
    let limit = limit as u64;
    let flags = flags as u64;
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0x0000_ffff)
}

/// Decodes a descriptor into the segment-register form KVM takes.
pub fn kvm_segment_from_entry(entry: u64, selector: u16) -> kvm_segment {
    let access = ((entry >> 40) & 0xff) as u8;
    let flags = ((entry >> 52) & 0xf) as u8;
    let base = ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000);
    let raw_limit = ((entry & 0xffff) | ((entry >> 32) & 0x000f_0000)) as u32;
    let granularity = (flags >> 3) & 1;
    let limit = if granularity == 1 {
        (raw_limit << 12) | 0xfff
    } else {
        raw_limit
    };
    let present = (access >> 7) & 1;
    kvm_segment {
        base,
        limit,
        selector,
        type_: access & 0xf,
        present,
        dpl: (access >> 5) & 3,
        db: (flags >> 2) & 1,
        s: (access >> 4) & 1,
        l: (flags >> 1) & 1,
        g: granularity,
        avl: flags & 1,
        unusable: u8::from(present == 0),
        padding: 0,
    }
}

/// The boot GDT: null, kernel code at `KERNEL_CS`, kernel data at `KERNEL_DS`.
pub fn boot_gdt() -> [u64; BOOT_GDT_ENTRIES] {
    let mut gdt = [0; BOOT_GDT_ENTRIES];
    gdt[usize::from(KERNEL_CS / 8)] = gdt_entry(FLAGS_KERNEL_CODE64, 0, 0xfffff);
    gdt[usize::from(KERNEL_DS / 8)] = gdt_entry(FLAGS_KERNEL_DATA, 0, 0xfffff);
    gdt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_flat_segments() {
        assert_eq!(
            gdt_entry(FLAGS_KERNEL_CODE64, 0, 0xfffff),
            0x00af_9b00_0000_ffff
        );
        assert_eq!(
            gdt_entry(FLAGS_KERNEL_DATA, 0, 0xfffff),
            0x00cf_9300_0000_ffff
        );
        assert_eq!(gdt_entry(0, 0, 0), 0);
    }

    #[test]
    fn encodes_base_and_limit_fields() {
        let e = gdt_entry(0x0089, 0x1234_5678, 0xa_bcde);
        assert_eq!(e & 0xffff, 0xbcde, "limit 15:0");
        assert_eq!((e >> 16) & 0xff_ffff, 0x34_5678, "base 23:0");
        assert_eq!((e >> 40) & 0xff, 0x89, "access byte");
        assert_eq!((e >> 48) & 0xf, 0xa, "limit 19:16");
        assert_eq!(e >> 56, 0x12, "base 31:24");
    }

    #[test]
    fn decodes_to_kvm_segments() {
        let gdt = boot_gdt();
        let cs = kvm_segment_from_entry(gdt[1], KERNEL_CS);
        assert_eq!(
            (cs.selector, cs.base, cs.limit),
            (KERNEL_CS, 0, 0xffff_ffff)
        );
        assert_eq!(
            (cs.type_, cs.present, cs.dpl, cs.s, cs.l, cs.db, cs.g),
            (0xb, 1, 0, 1, 1, 0, 1)
        );
        assert_eq!(cs.unusable, 0);
        let ds = kvm_segment_from_entry(gdt[2], KERNEL_DS);
        assert_eq!(
            (ds.type_, ds.present, ds.s, ds.l, ds.db, ds.g),
            (0x3, 1, 1, 0, 1, 1)
        );
        let null = kvm_segment_from_entry(gdt[0], 0);
        assert_eq!((null.present, null.unusable), (0, 1));
    }

    #[test]
    fn round_trips_a_byte_granular_segment() {
        let s = kvm_segment_from_entry(gdt_entry(0x4093, 0xff00_1000, 0x1_2345), 0x18);
        assert_eq!((s.base, s.limit, s.g, s.db), (0xff00_1000, 0x1_2345, 0, 1));
    }
}
