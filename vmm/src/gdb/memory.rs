//! Guest-virtual addresses as the debugger sees them, turned into guest-physical ones.
//!
//! Kernel addresses are the direct map (`abi::layout`: `KERN_BASE + gpa` for all RAM, the
//! kernel image included), the same in every address space, so they are read whatever the
//! vCPU stopped in. User addresses go through the page tables the vCPU has loaded (its
//! CR3): the running process's. Both are read from guest memory, which the guest may have
//! filled with anything: a walk that leaves RAM just fails.

use abi::layout::{KERN_BASE, PAGE_SIZE, ram_top};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Address bits of a page-table entry.
const ENTRY_ADDRESS: u64 = 0x000f_ffff_ffff_f000;
const PRESENT: u64 = 1;
/// A large page (1 GiB in a PDPT entry, 2 MiB in a PD entry).
const HUGE: u64 = 1 << 7;

/// The guest-physical address of `vaddr`, with `cr3` the loaded page tables and
/// `mem_bytes` the guest's RAM; `None` if nothing maps it.
pub fn translate(memory: &GuestMemoryMmap, cr3: u64, mem_bytes: u64, vaddr: u64) -> Option<u64> {
    if let Some(offset) = vaddr.checked_sub(KERN_BASE)
        && offset < ram_top(mem_bytes)
    {
        return Some(offset);
    }
    let mut table = cr3 & ENTRY_ADDRESS;
    // PML4 (bits 47..39), PDPT (38..30), PD (29..21), PT (20..12).
    for (level, shift) in [39u32, 30, 21, 12].into_iter().enumerate() {
        let index = (vaddr >> shift) & 0x1ff;
        let entry: u64 = memory.read_obj(GuestAddress(table + index * 8)).ok()?;
        if entry & PRESENT == 0 {
            return None;
        }
        let base = entry & ENTRY_ADDRESS;
        if shift == 12 || (level > 0 && entry & HUGE != 0) {
            let size = 1u64 << shift;
            return Some((base & !(size - 1)) | (vaddr & (size - 1)));
        }
        table = base;
    }
    None
}

/// Calls `each(gpa, range)` for the pieces of `len` bytes at virtual `vaddr`, page by
/// page, until it returns false or a page is not mapped; returns the bytes it went over.
fn by_page(
    memory: &GuestMemoryMmap,
    cr3: u64,
    mem_bytes: u64,
    vaddr: u64,
    len: usize,
    mut each: impl FnMut(u64, std::ops::Range<usize>) -> bool,
) -> usize {
    let mut done = 0;
    while done < len {
        let at = vaddr.wrapping_add(done as u64);
        let in_page = ((PAGE_SIZE - at % PAGE_SIZE) as usize).min(len - done);
        let Some(gpa) = translate(memory, cr3, mem_bytes, at) else {
            break;
        };
        if !each(gpa, done..done + in_page) {
            break;
        }
        done += in_page;
    }
    done
}

/// Copies guest memory at virtual `vaddr` into `data`, page by page; returns how many
/// bytes it could read (it stops at the first unmapped page).
pub fn read(
    memory: &GuestMemoryMmap,
    cr3: u64,
    mem_bytes: u64,
    vaddr: u64,
    data: &mut [u8],
) -> usize {
    by_page(memory, cr3, mem_bytes, vaddr, data.len(), |gpa, piece| {
        memory
            .read_slice(&mut data[piece], GuestAddress(gpa))
            .is_ok()
    })
}

/// Writes `data` into guest memory at virtual `vaddr`; false if a page is not mapped (the
/// pages before it are written).
pub fn write(memory: &GuestMemoryMmap, cr3: u64, mem_bytes: u64, vaddr: u64, data: &[u8]) -> bool {
    let done = by_page(memory, cr3, mem_bytes, vaddr, data.len(), |gpa, piece| {
        memory.write_slice(&data[piece], GuestAddress(gpa)).is_ok()
    });
    done == data.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// 4 MiB of guest memory with a PML4 at 0x1000, a PDPT at 0x2000, a PD at 0x3000 and
    /// a PT at 0x4000: user page 0x40_0000 -> frame 0x10_0000, and the 2 MiB page at
    /// 0x4000_0000 + 2 MiB -> 0x20_0000.
    fn tables() -> GuestMemoryMmap {
        let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 4 << 20)]).expect("memory");
        let entry = |at: u64, value: u64| memory.write_obj(value, GuestAddress(at)).expect("write");
        entry(0x1000, 0x2000 | 7);
        entry(0x2000, 0x3000 | 7); // PDPT[0]: 0..1 GiB
        entry(0x2000 + 8, 0x3000 | 7); // PDPT[1]: 1..2 GiB, same PD
        entry(0x3000 + 2 * 8, 0x4000 | 7); // PD[2]: 4 MiB..6 MiB
        entry(0x3000 + 8, 0x20_0000 | 7 | HUGE); // PD[1]: 2 MiB page
        entry(0x4000, 0x10_0000 | 7); // PT[0]
        memory
    }

    #[test]
    fn walks_four_levels_and_large_pages() {
        let m = tables();
        assert_eq!(translate(&m, 0x1000, 4 * MIB, 0x40_0123), Some(0x10_0123));
        assert_eq!(
            translate(&m, 0x1000, 4 * MIB, 0x40_1000),
            None,
            "PT[1] empty"
        );
        assert_eq!(
            translate(&m, 0x1000, 4 * MIB, (1 << 30) + 2 * MIB + 0x1234),
            Some(0x20_1234)
        );
        assert_eq!(
            translate(&m, 0x1000, 4 * MIB, 1 << 39),
            None,
            "PML4[1] empty"
        );
    }

    #[test]
    fn kernel_addresses_are_the_direct_map() {
        let m = tables();
        assert_eq!(translate(&m, 0, 4 * MIB, KERN_BASE + 0x2000), Some(0x2000));
        assert_eq!(
            translate(&m, 0, 4 * MIB, KERN_BASE + 4 * MIB),
            None,
            "past RAM"
        );
    }

    #[test]
    fn reads_and_writes_stop_at_unmapped_pages() {
        let m = tables();
        assert!(write(&m, 0x1000, 4 * MIB, 0x40_0ffe, b"ab"));
        let mut two = [0u8; 2];
        assert_eq!(read(&m, 0x1000, 4 * MIB, 0x40_0ffe, &mut two), 2);
        assert_eq!(&two, b"ab");
        // Two bytes in the mapped page, then the unmapped one.
        let mut four = [0u8; 4];
        assert_eq!(read(&m, 0x1000, 4 * MIB, 0x40_0ffe, &mut four), 2);
        assert!(!write(&m, 0x1000, 4 * MIB, 0x40_0fff, b"xy"));
        // A hostile table pointing outside RAM fails the walk, it does not panic.
        m.write_obj(0x7fff_f000u64 | 7, GuestAddress(0x1000 + 8))
            .expect("write");
        assert_eq!(translate(&m, 0x1000, 4 * MIB, 1 << 39), None);
    }
}
