//! The kernel's first page tables, built on the host.
//!
//! Host code is fast and ring-0 guest code may be emulated, so the VMM maps all of guest RAM
//! at `KERN_BASE` before the first guest instruction runs. The map uses 2 MiB pages only (1 GiB
//! pages fault on some KVMs) and covers the RAM ranges plus the 32-bit device hole (mapped
//! uncached); everything else, including the low identity range, stays unmapped, since the
//! vCPU starts at the kernel's virtual entry point with paging already on.
//!
//! ```text
//! BOOT_PT_START           PML4          slot 1 -> PDPT
//! BOOT_PT_START + 0x1000  PDPT          slots for KERN_BASE.. -> PDs
//! BOOT_PT_START + 0x2000  PD, PD, ...   2 MiB entries, one PD per GiB of virtual space
//! then                    the kernel view: a PML4, a PDPT and the PDs again
//! ```
//! The kernel keeps these tables as its own: they live in reserved memory below
//! `LOW_USABLE_START`.
//!
//! The kernel view maps the same addresses to the same frames, but with the user bit set at
//! every level and no global pages: it is the address space the kernel's work runs in at
//! CPL 3 in the fast kernel mode (`abi::boot::BootInfo::kview_pml4_gpa`). The boot tables
//! stay supervisor-only, and user address spaces never point at the kernel view.

use abi::layout::{
    BOOT_PT_END, BOOT_PT_START, HIGH_RAM_START, HOLE_START, KERN_BASE, LARGE_PAGE_SIZE, PAGE_SIZE,
};

/// Entries per table page.
const ENTRIES: usize = 512;
/// Present.
pub const PTE_PRESENT: u64 = 1 << 0;
/// Writable.
pub const PTE_WRITABLE: u64 = 1 << 1;
/// Page-table entry bit: user mode may use the mapping.
pub const PTE_USER: u64 = 1 << 2;
/// Write-through caching (with `PTE_CACHE_DISABLE`: uncached, for device registers).
pub const PTE_WRITE_THROUGH: u64 = 1 << 3;
/// Caching disabled.
pub const PTE_CACHE_DISABLE: u64 = 1 << 4;
/// In a PD or PDPT entry: this entry maps a large page, not a table.
pub const PTE_HUGE: u64 = 1 << 7;
/// Global: kept in the TLB across address-space switches (needs CR4.PGE).
pub const PTE_GLOBAL: u64 = 1 << 8;
/// Physical-address bits of an entry.
pub const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Why the tables could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PageTableError {
    /// The direct map needs more table pages than the reserved area holds (or more virtual
    /// space than one PML4 slot; `needed` is then `usize::MAX`).
    #[error(
        "the direct map of {ram_top_mib} MiB does not fit the boot page-table area ({available} pages)"
    )]
    AreaTooSmall {
        ram_top_mib: u64,
        needed: usize,
        available: usize,
    },
}

/// One 4 KiB table page to be written at `gpa`.
#[derive(Clone)]
pub struct TablePage {
    pub gpa: u64,
    pub entries: [u64; ENTRIES],
}

/// The built tables: write every page, then load `pml4_gpa` into CR3.
pub struct BootPageTables {
    pub pml4_gpa: u64,
    /// The kernel view's PML4 (see the module documentation).
    pub kview_pml4_gpa: u64,
    pub pages: Vec<TablePage>,
}

impl BootPageTables {
    /// Builds the direct map for `ram_ranges` (half-open guest-physical ranges; empty ones
    /// are ignored) plus the device hole.
    pub fn build(ram_ranges: &[(u64, u64)]) -> Result<Self, PageTableError> {
        let available = ((BOOT_PT_END - BOOT_PT_START) / PAGE_SIZE) as usize;
        let mut tables = BootPageTables {
            pml4_gpa: BOOT_PT_START,
            kview_pml4_gpa: 0,
            pages: vec![
                TablePage {
                    gpa: BOOT_PT_START,
                    entries: [0; ENTRIES],
                },
                TablePage {
                    gpa: BOOT_PT_START + PAGE_SIZE,
                    entries: [0; ENTRIES],
                },
            ],
        };
        tables.pages[0].entries[pml4_index(KERN_BASE)] =
            tables.pages[1].gpa | PTE_PRESENT | PTE_WRITABLE;

        let ram = ram_ranges
            .iter()
            .filter(|(start, end)| end > start)
            .map(|&(s, e)| (s, e, false));
        let hole = core::iter::once((HOLE_START, HIGH_RAM_START, true));
        let mut ranges: Vec<(u64, u64, bool)> = ram.chain(hole).collect();
        ranges.sort_unstable();

        let ram_top = ranges.iter().map(|r| r.1).max().unwrap_or(0);
        let too_small = |needed| PageTableError::AreaTooSmall {
            ram_top_mib: ram_top >> 20,
            needed,
            available,
        };
        // Index in `pages` of the PD behind each PDPT slot.
        let mut pd_of_slot = [None::<usize>; ENTRIES];
        for (start, end, uncached) in ranges {
            let mut gpa = start - start % LARGE_PAGE_SIZE;
            while gpa < end {
                let virt = KERN_BASE + gpa;
                if pml4_index(virt) != pml4_index(KERN_BASE) {
                    return Err(too_small(usize::MAX));
                }
                let slot = pdpt_index(virt);
                let pd = match pd_of_slot[slot] {
                    Some(pd) => pd,
                    None => {
                        if tables.pages.len() == available {
                            return Err(too_small(available + 1));
                        }
                        let pd_gpa = BOOT_PT_START + tables.pages.len() as u64 * PAGE_SIZE;
                        tables.pages[1].entries[slot] = pd_gpa | PTE_PRESENT | PTE_WRITABLE;
                        tables.pages.push(TablePage {
                            gpa: pd_gpa,
                            entries: [0; ENTRIES],
                        });
                        pd_of_slot[slot] = Some(tables.pages.len() - 1);
                        tables.pages.len() - 1
                    }
                };
                let cache = if uncached {
                    PTE_CACHE_DISABLE | PTE_WRITE_THROUGH
                } else {
                    0
                };
                tables.pages[pd].entries[pd_index_of(virt)] =
                    gpa | PTE_PRESENT | PTE_WRITABLE | PTE_HUGE | PTE_GLOBAL | cache;
                gpa += LARGE_PAGE_SIZE;
            }
        }
        let needed = 2 * tables.pages.len();
        if needed > available {
            return Err(too_small(needed));
        }
        tables.add_kernel_view();
        Ok(tables)
    }

    /// Appends the kernel view: a copy of every table built so far, placed right after
    /// them, with its table entries pointing at the copies, the user bit set everywhere and
    /// no global pages.
    fn add_kernel_view(&mut self) {
        let count = self.pages.len();
        let offset = count as u64 * PAGE_SIZE;
        let is_table = |gpa: u64| (BOOT_PT_START..BOOT_PT_START + offset).contains(&gpa);
        for i in 0..count {
            let mut copy = self.pages[i].clone();
            copy.gpa += offset;
            for e in copy.entries.iter_mut().filter(|e| **e & PTE_PRESENT != 0) {
                let leaf = *e & PTE_HUGE != 0 || !is_table(*e & PTE_ADDR_MASK);
                if !leaf {
                    *e += offset;
                }
                *e = (*e | PTE_USER) & !PTE_GLOBAL;
            }
            self.pages.push(copy);
        }
        self.kview_pml4_gpa = self.pml4_gpa + offset;
    }

    /// Walks the tables like the MMU: the guest-physical address `virt` maps to, if any.
    pub fn translate(&self, virt: u64) -> Option<u64> {
        self.walk(self.pml4_gpa, virt).map(|(gpa, _)| gpa)
    }

    /// Walks the tables from `pml4_gpa` like the MMU: the guest-physical address `virt`
    /// maps to and the flags that apply to it (the user bit ANDed over the levels, the
    /// leaf's other bits), if it is mapped.
    pub fn walk(&self, pml4_gpa: u64, virt: u64) -> Option<(u64, u64)> {
        let page = |gpa: u64| self.pages.iter().find(|p| p.gpa == gpa);
        let pml4e = page(pml4_gpa)?.entries[pml4_index(virt)];
        if pml4e & PTE_PRESENT == 0 {
            return None;
        }
        let pdpte = page(pml4e & PTE_ADDR_MASK)?.entries[pdpt_index(virt)];
        if pdpte & PTE_PRESENT == 0 {
            return None;
        }
        let pde = page(pdpte & PTE_ADDR_MASK)?.entries[pd_index_of(virt)];
        if pde & PTE_PRESENT == 0 || pde & PTE_HUGE == 0 {
            return None;
        }
        let gpa = (pde & PTE_ADDR_MASK & !(LARGE_PAGE_SIZE - 1)) + virt % LARGE_PAGE_SIZE;
        let flags = (pde & !PTE_ADDR_MASK & !PTE_USER) | (pml4e & pdpte & pde & PTE_USER);
        Some((gpa, flags))
    }
}

fn pml4_index(virt: u64) -> usize {
    ((virt >> 39) & 0x1ff) as usize
}

fn pdpt_index(virt: u64) -> usize {
    ((virt >> 30) & 0x1ff) as usize
}

fn pd_index_of(virt: u64) -> usize {
    ((virt >> 21) & 0x1ff) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::layout::{MAX_MEM_MIB, ram_ranges};

    const MIB: u64 = 1 << 20;

    fn build(mem: u64) -> BootPageTables {
        BootPageTables::build(&ram_ranges(mem)).expect("tables fit")
    }

    #[test]
    fn maps_all_ram_at_kern_base() {
        let t = build(64 * MIB);
        for gpa in [0, 0x1000, 0x20_0000, 0x20_1234, 63 * MIB, 64 * MIB - 8] {
            assert_eq!(t.translate(KERN_BASE + gpa), Some(gpa), "gpa {gpa:#x}");
        }
        assert_eq!(t.translate(KERN_BASE + 64 * MIB), None, "nothing past RAM");
        assert_eq!(
            t.translate(KERN_BASE - 4096),
            None,
            "nothing below KERN_BASE"
        );
    }

    #[test]
    fn no_identity_map_and_only_slot_one() {
        let t = build(64 * MIB);
        assert_eq!(t.translate(0x20_0000), None);
        let used: Vec<usize> = (0..ENTRIES)
            .filter(|&i| t.pages[0].entries[i] != 0)
            .collect();
        assert_eq!(used, vec![1]);
    }

    #[test]
    fn large_pages_only_and_hole_uncached() {
        let t = build(64 * MIB);
        let hole = KERN_BASE + HOLE_START;
        assert_eq!(t.translate(hole), Some(HOLE_START));
        assert_eq!(
            t.translate(KERN_BASE + HIGH_RAM_START - 1),
            Some(HIGH_RAM_START - 1)
        );
        assert_eq!(
            t.translate(KERN_BASE + 1024 * MIB),
            None,
            "gap between RAM and hole"
        );
        // The PDs: after the PML4 and the PDPT, in the boot tables and in the kernel view.
        let half = t.pages.len() / 2;
        for page in t.pages[2..half].iter().chain(&t.pages[half + 2..]) {
            for &e in page.entries.iter().filter(|&&e| e != 0) {
                assert_ne!(e & PTE_HUGE, 0, "every PD entry is a 2 MiB page");
                let gpa = e & PTE_ADDR_MASK;
                let uncached = e & PTE_CACHE_DISABLE != 0;
                assert_eq!(
                    uncached,
                    (HOLE_START..HIGH_RAM_START).contains(&gpa),
                    "gpa {gpa:#x}"
                );
            }
        }
    }

    #[test]
    fn ram_above_the_hole() {
        let t = build(4096 * MIB);
        assert_eq!(
            t.translate(KERN_BASE + HOLE_START - 8),
            Some(HOLE_START - 8)
        );
        assert_eq!(
            t.translate(KERN_BASE + HIGH_RAM_START),
            Some(HIGH_RAM_START)
        );
        let top = HIGH_RAM_START + 1024 * MIB;
        assert_eq!(t.translate(KERN_BASE + top - 8), Some(top - 8));
        assert_eq!(t.translate(KERN_BASE + top), None);
        // PML4 + PDPT + one PD per GiB of [KERN_BASE, KERN_BASE + 5 GiB): 64 MiB offset -> 6;
        // twice, with the kernel view.
        assert_eq!(t.pages.len(), 2 * (2 + 6));
    }

    #[test]
    fn largest_memory_fits_and_pages_are_in_the_area() {
        let t = build(MAX_MEM_MIB * MIB);
        for (i, p) in t.pages.iter().enumerate() {
            assert_eq!(p.gpa, BOOT_PT_START + i as u64 * PAGE_SIZE);
            assert!(p.gpa + PAGE_SIZE <= BOOT_PT_END);
        }
        let last = HIGH_RAM_START + (MAX_MEM_MIB * MIB - HOLE_START) - 8;
        assert_eq!(t.translate(KERN_BASE + last), Some(last));
    }

    #[test]
    fn kernel_view_maps_the_same_frames_for_user_mode_without_global_pages() {
        for mem in [64 * MIB, 4096 * MIB] {
            let t = build(mem);
            let tables = t.pages.len() / 2;
            assert_eq!(
                t.kview_pml4_gpa,
                BOOT_PT_START + tables as u64 * PAGE_SIZE,
                "right after the boot tables"
            );
            let top = layout_top(mem);
            for gpa in [0, 0x20_1234, HOLE_START, mem.min(HOLE_START) - 8, top - 8] {
                let boot = t.walk(t.pml4_gpa, KERN_BASE + gpa);
                let kview = t.walk(t.kview_pml4_gpa, KERN_BASE + gpa);
                let (boot_gpa, boot_flags) = boot.expect("mapped in the boot tables");
                let (kview_gpa, kview_flags) = kview.expect("mapped in the kernel view");
                assert_eq!(kview_gpa, boot_gpa, "gpa {gpa:#x}");
                assert_eq!(boot_flags & (PTE_USER | PTE_GLOBAL), PTE_GLOBAL);
                assert_eq!(kview_flags & (PTE_USER | PTE_GLOBAL), PTE_USER);
                assert_eq!(
                    kview_flags & !(PTE_USER | PTE_GLOBAL),
                    boot_flags & !(PTE_USER | PTE_GLOBAL),
                    "same caching and permissions"
                );
            }
            // No kernel-view entry points into the boot tables, and the other way round.
            let (boot, kview) = t.pages.split_at(tables);
            let in_range = |e: u64, pages: &[TablePage]| {
                e & PTE_HUGE == 0 && pages.iter().any(|p| p.gpa == e & PTE_ADDR_MASK)
            };
            for p in kview {
                assert!(p.entries.iter().all(|&e| !in_range(e, boot)));
            }
            for p in boot {
                assert!(p.entries.iter().all(|&e| !in_range(e, kview)));
            }
        }
    }

    /// The end of guest RAM for `mem` bytes (above the hole when it is that large).
    fn layout_top(mem: u64) -> u64 {
        abi::layout::ram_top(mem)
    }

    #[test]
    fn too_much_memory_is_an_error() {
        let err = BootPageTables::build(&[(0, 1 << 40)])
            .err()
            .expect("1 TiB cannot fit");
        assert!(matches!(err, PageTableError::AreaTooSmall { .. }));
    }
}
