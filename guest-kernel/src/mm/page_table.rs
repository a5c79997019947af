//! Address spaces: 4-level page tables that share the kernel half.
//!
//! ```text
//! PML4[0]      user       0 .. 512 GiB                 private per address space
//! PML4[1]      mixed      512 GiB .. KERN_BASE         user (64 MiB window)
//!                         KERN_BASE ..                 kernel direct map (shared)
//! ```
//! `KERN_BASE` sits inside PML4 slot 1 (PDPT slot 0, PD slot 32), so slot 1 holds both the
//! last 64 MiB of user space and the kernel. A new address space points its slot 1 at the
//! kernel's own PDPT; only when a user page in the window is mapped does it get private
//! copies of that PDPT and of the PD below KERN_BASE (1024 entries, a rare event).
//!
//! Page-table pages come from the kernel pool; user frames are the caller's business.
//! Nothing here allocates from the heap, so the fault path may use it.

use abi::layout::{KERN_BASE, PAGE_SIZE};
use spin::Once;
use x86_64::PhysAddr;
use x86_64::instructions::tlb;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::page_table::PageTableEntry;
use x86_64::structures::paging::{PageTable, PageTableFlags as Flags, PhysFrame};

use super::frame::{self, Frame, Pool, Zero};

/// The kernel's page tables (the VMM's boot tables), which every address space shares.
static KERNEL_PML4: Once<Frame> = Once::new();

/// PML4 slot holding both the user window and the kernel.
const SHARED_SLOT: usize = 1;
/// First PD slot of the kernel in the PD under PDPT slot 0 of [`SHARED_SLOT`].
const KERNEL_PD_SLOT: usize = ((KERN_BASE >> 21) & 0x1ff) as usize;
/// Flags of a table entry that leads to user pages.
const TABLE_FLAGS: Flags = Flags::PRESENT
    .union(Flags::WRITABLE)
    .union(Flags::USER_ACCESSIBLE);

/// Records the running page tables as the kernel's. Call once at boot.
pub fn init() {
    let (frame, _) = Cr3::read();
    KERNEL_PML4.call_once(|| Frame::from_gpa(frame.start_address().as_u64()));
}

fn kernel_pml4() -> Frame {
    *KERNEL_PML4.get().expect("page_table: used before init")
}

/// Why a mapping operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The address is not a page-aligned user address.
    NotUserPage,
    /// Something is mapped there already.
    AlreadyMapped,
    /// No kernel frame for a page-table page.
    OutOfMemory,
}

/// Permissions of a user page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFlags {
    pub writable: bool,
}

/// What a user virtual address maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub frame: Frame,
    pub writable: bool,
    pub accessed: bool,
    pub dirty: bool,
}

/// A page table of its own for user space, sharing the kernel half.
#[derive(Debug)]
pub struct AddressSpace {
    pml4: Frame,
}

fn table(frame: Frame) -> &'static mut PageTable {
    // SAFETY: page-table frames are owned by their address space (or are the kernel's,
    // never freed), reached through the direct map; callers hold `&mut AddressSpace` or run
    // with the single CPU's interrupts off, so no other reference is live.
    unsafe { &mut *(frame.virt() as *mut PageTable) }
}

fn entry_frame(entry: &PageTableEntry) -> Frame {
    Frame::from_gpa(entry.addr().as_u64())
}

fn set_table(entry: &mut PageTableEntry, frame: Frame) {
    entry.set_addr(PhysAddr::new(frame.gpa()), TABLE_FLAGS);
}

/// Slot of `va` at a level (level 4 = PML4 .. 1 = PT).
fn slot(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

fn is_user_page(va: u64) -> bool {
    va.is_multiple_of(PAGE_SIZE) && va < KERN_BASE
}

impl AddressSpace {
    /// A new address space with no user pages. `None` if no kernel frame is free.
    pub fn new() -> Option<Self> {
        let pml4 = frame::alloc(Pool::Kernel, Zero::Yes)?;
        table(pml4)[SHARED_SLOT] = table(kernel_pml4())[SHARED_SLOT].clone();
        Some(AddressSpace { pml4 })
    }

    /// The level-1 entry for `va`, creating the tables on the way if `create`.
    fn leaf(
        &mut self,
        va: u64,
        create: bool,
    ) -> Result<Option<&'static mut PageTableEntry>, MapError> {
        if !is_user_page(va) {
            return Err(MapError::NotUserPage);
        }
        if create && slot(va, 4) == SHARED_SLOT {
            self.make_window_private()?;
        }
        let mut t = table(self.pml4);
        for level in [4, 3, 2] {
            let entry = &mut t[slot(va, level)];
            if entry.is_unused() {
                if !create {
                    return Ok(None);
                }
                let new = frame::alloc(Pool::Kernel, Zero::Yes).ok_or(MapError::OutOfMemory)?;
                set_table(entry, new);
            }
            t = table(entry_frame(entry));
        }
        Ok(Some(&mut t[slot(va, 1)]))
    }

    /// Gives this space private copies of the shared slot's PDPT and of the PD below
    /// KERN_BASE, so user pages in the window do not appear in other spaces.
    fn make_window_private(&mut self) -> Result<(), MapError> {
        let kernel_pdpt = entry_frame(&table(kernel_pml4())[SHARED_SLOT]);
        if entry_frame(&table(self.pml4)[SHARED_SLOT]) != kernel_pdpt {
            return Ok(());
        }
        let pdpt = frame::alloc(Pool::Kernel, Zero::No).ok_or(MapError::OutOfMemory)?;
        let Some(pd) = frame::alloc(Pool::Kernel, Zero::No) else {
            frame::free(pdpt);
            return Err(MapError::OutOfMemory);
        };
        table(pdpt).clone_from(table(kernel_pdpt));
        table(pd).clone_from(table(entry_frame(&table(kernel_pdpt)[0])));
        set_table(&mut table(pdpt)[0], pd);
        set_table(&mut table(self.pml4)[SHARED_SLOT], pdpt);
        Ok(())
    }

    /// Maps user page `va` to `frame`.
    pub fn map(&mut self, va: u64, frame: Frame, flags: PageFlags) -> Result<(), MapError> {
        let entry = self.leaf(va, true)?.expect("leaf with create");
        if !entry.is_unused() {
            return Err(MapError::AlreadyMapped);
        }
        let mut f = Flags::PRESENT | Flags::USER_ACCESSIBLE;
        if flags.writable {
            f |= Flags::WRITABLE;
        }
        entry.set_addr(PhysAddr::new(frame.gpa()), f);
        Ok(())
    }

    /// Unmaps user page `va`, returning the frame it mapped (the caller frees it). Flushes
    /// the TLB entry if this space is active.
    pub fn unmap(&mut self, va: u64) -> Option<Frame> {
        let entry = self.leaf(va, false).ok()??;
        if entry.is_unused() {
            return None;
        }
        let frame = entry_frame(entry);
        entry.set_unused();
        self.flush(va);
        Some(frame)
    }

    /// What user page `va` maps to.
    pub fn translate(&mut self, va: u64) -> Option<Mapping> {
        let entry = self.leaf(va & !(PAGE_SIZE - 1), false).ok()??;
        let f = entry.flags();
        f.contains(Flags::PRESENT).then(|| Mapping {
            frame: entry_frame(entry),
            writable: f.contains(Flags::WRITABLE),
            accessed: f.contains(Flags::ACCESSED),
            dirty: f.contains(Flags::DIRTY),
        })
    }

    /// Clears the accessed and dirty bits of `va`'s mapping; returns them as they were.
    pub fn take_accessed_dirty(&mut self, va: u64) -> Option<(bool, bool)> {
        let entry = self.leaf(va, false).ok()??;
        let f = entry.flags();
        if !f.contains(Flags::PRESENT) {
            return None;
        }
        entry.set_flags(f - Flags::ACCESSED - Flags::DIRTY);
        self.flush(va);
        Some((f.contains(Flags::ACCESSED), f.contains(Flags::DIRTY)))
    }

    /// Whether this space's tables are the ones loaded in CR3.
    pub fn is_active(&self) -> bool {
        Cr3::read().0.start_address().as_u64() == self.pml4.gpa()
    }

    fn flush(&self, va: u64) {
        if self.is_active() {
            tlb::flush(x86_64::VirtAddr::new(va));
        }
    }

    /// Loads this space into CR3 unless it is loaded already.
    pub fn activate_if_needed(&self) {
        if !self.is_active() {
            self.activate();
        }
    }

    /// Calls `f(va, mapping)` for every mapped user page, in address order.
    pub fn for_each_user_page(&mut self, mut f: impl FnMut(u64, Mapping)) {
        let kernel_pdpt = entry_frame(&table(kernel_pml4())[SHARED_SLOT]);
        for l4 in 0..=SHARED_SLOT {
            let e4 = &table(self.pml4)[l4];
            if e4.is_unused() || (l4 == SHARED_SLOT && entry_frame(e4) == kernel_pdpt) {
                continue;
            }
            let pdpt = table(entry_frame(e4));
            for (l3, e3) in pdpt.iter().enumerate() {
                if e3.is_unused() || (l4 == SHARED_SLOT && l3 > 0) {
                    continue;
                }
                let pd = table(entry_frame(e3));
                let pd_slots = if l4 == SHARED_SLOT {
                    KERNEL_PD_SLOT
                } else {
                    512
                };
                for (l2, e2) in pd.iter().enumerate().take(pd_slots) {
                    if e2.is_unused() {
                        continue;
                    }
                    for (l1, e1) in table(entry_frame(e2)).iter().enumerate() {
                        let flags = e1.flags();
                        if flags.contains(Flags::PRESENT) {
                            let va = ((l4 as u64) << 39)
                                | ((l3 as u64) << 30)
                                | ((l2 as u64) << 21)
                                | ((l1 as u64) << 12);
                            f(
                                va,
                                Mapping {
                                    frame: entry_frame(e1),
                                    writable: flags.contains(Flags::WRITABLE),
                                    accessed: flags.contains(Flags::ACCESSED),
                                    dirty: flags.contains(Flags::DIRTY),
                                },
                            );
                        }
                    }
                }
            }
        }
    }

    /// Loads this space into CR3.
    pub fn activate(&self) {
        let frame = PhysFrame::containing_address(PhysAddr::new(self.pml4.gpa()));
        // SAFETY: the PML4 maps the kernel half exactly like the running tables, so kernel
        // code, data and stacks stay mapped across the switch.
        unsafe { Cr3::write(frame, Cr3Flags::empty()) };
    }
}

/// Loads the kernel's own page tables unless they are loaded already (a CR3 write flushes
/// the TLB, which costs).
pub fn activate_kernel_if_needed() {
    if Cr3::read().0.start_address().as_u64() != kernel_pml4().gpa() {
        activate_kernel();
    }
}

/// Loads the kernel's own page tables (no user pages).
pub fn activate_kernel() {
    let frame = PhysFrame::containing_address(PhysAddr::new(kernel_pml4().gpa()));
    // SAFETY: the kernel's tables map the whole kernel half.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
}

impl Drop for AddressSpace {
    /// Frees every page-table page that belongs to this space (not the mapped frames, and
    /// not the kernel's shared tables). Must not be the active space.
    fn drop(&mut self) {
        assert!(
            !self.is_active(),
            "page_table: dropping the active address space"
        );
        let kernel_pdpt = entry_frame(&table(kernel_pml4())[SHARED_SLOT]);
        let pml4 = table(self.pml4);
        free_subtree(&mut pml4[0], 3, usize::MAX);
        let shared = &table(self.pml4)[SHARED_SLOT];
        if entry_frame(shared) != kernel_pdpt {
            let pdpt = entry_frame(shared);
            let pd_entry = &mut table(pdpt)[0];
            // Only the PD's user slots lead to private tables; the rest is the kernel's.
            free_subtree(pd_entry, 2, KERNEL_PD_SLOT);
            frame::free(pdpt);
        }
        frame::free(self.pml4);
    }
}

/// Frees the table `entry` points to (a table of `level`) and the tables below it, looking
/// at the first `slots` entries only (the rest is shared with the kernel).
fn free_subtree(entry: &mut PageTableEntry, level: u32, slots: usize) {
    if entry.is_unused() {
        return;
    }
    let frame = entry_frame(entry);
    if level > 1 {
        for child in table(frame).iter_mut().take(slots) {
            free_subtree(child, level - 1, usize::MAX);
        }
    }
    frame::free(frame);
    entry.set_unused();
}
