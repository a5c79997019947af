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

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use abi::devices::{
    MAP_WRITABLE, PAGE_OP_DONE, PAGE_OP_MAPPED_NEW, PAGE_OP_NOT_MAPPED, PTE_LISTED,
    SYSCTL_EVICT_SWAP_IN_MAP, SYSCTL_EVICT_ZERO_MAP, SYSCTL_PAGE_MAP, SYSCTL_SWAP_IN_MAP,
    SYSCTL_ZERO_MAP, evicted_slot,
};
use abi::layout::{KERN_BASE, PAGE_SIZE};
use spin::Once;
use x86_64::PhysAddr;
use x86_64::structures::paging::page_table::PageTableEntry;
use x86_64::structures::paging::{PageTable, PageTableFlags as Flags};

use super::frame::{self, Frame, Pool, Zero};
use crate::drivers::sysctl::{self, MapRequest};
use crate::platform;

/// The kernel's page tables (the VMM's boot tables), which every address space shares.
static KERNEL_PML4: Once<Frame> = Once::new();

/// PML4 slot holding both the user window and the kernel.
const SHARED_SLOT: usize = 1;
/// Flags of a table entry that leads to user pages.
const TABLE_FLAGS: Flags = Flags::PRESENT
    .union(Flags::WRITABLE)
    .union(Flags::USER_ACCESSIBLE);

/// Software bit of a leaf entry: the page is copy-on-write (writable once it has a frame
/// of its own).
const COW: Flags = Flags::BIT_9;
/// Software bit of a leaf entry: `va` is on the space's `mapped` list. An evicted page's
/// entry keeps only this bit, so mapping it again does not list it twice (and eviction
/// need not search the list). The VMM knows it too: it maps pages for faults
/// (`abi::devices`, map requests).
const LISTED: Flags = Flags::from_bits_truncate(PTE_LISTED);

/// Records the running page tables as the kernel's. Call once at boot.
pub fn init() {
    KERNEL_PML4.call_once(platform::active_page_table);
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
    /// The VMM could not fill the frame ([`AddressSpace::fill_and_map`]).
    FillFailed,
}

/// What the VMM puts in a page fault's frame before mapping it
/// ([`AddressSpace::fill_and_map`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Nothing: the frame holds the page's bytes already (or zeros).
    Nothing,
    /// Zeros (the frame is not known to be zero).
    Zeros,
    /// The contents of this swap slot (`vm::swap`), which the page lets go of.
    SwapSlot(u32),
}

/// Why [`AddressSpace::evict_fill_and_map`] did not map its page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictFill {
    /// The evicted page was not written out (swap full, or the VMM refused): nothing
    /// changed.
    NotWrittenOut,
    /// The evicted page went to this slot, but the frame was not filled or mapped.
    NotFilled(u32),
    /// The evicted page went to this slot and the frame was filled, but not mapped: a
    /// page-table page was missing and the kernel pool had none.
    NoTable(u32),
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
    /// Read-only until written: a write gets a private copy (after fork).
    pub cow: bool,
    pub accessed: bool,
    pub dirty: bool,
}

/// A page table of its own for user space, sharing the kernel half.
#[derive(Debug)]
pub struct AddressSpace {
    pml4: Frame,
    /// Every page-table page this space allocated (not the PML4): freed at drop without
    /// walking the tables (a walk visits 512 entries per table, which is slow where ring 0
    /// is emulated).
    tables: Vec<Frame>,
    /// Every user page mapped, for the same reason (fork, exit).
    mapped: Vec<u64>,
    /// A zeroed frame the next new page-table page is taken from before the kernel pool
    /// ([`give_table_frame`](Self::give_table_frame)).
    spare_table: Option<Frame>,
}

/// For a self-test: new page-table pages find the kernel pool empty (only the spare frame
/// serves them), as when the kernel heap holds every kernel frame. Draining the pool for
/// real would use up its never-used frames, which kernel stacks need.
pub static TEST_DRY_KERNEL_POOL: AtomicBool = AtomicBool::new(false);

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
        if let Some(slot) = platform::self_map_slot() {
            // Supervisor-only: the fast mode's shim reaches leaf entries through it.
            table(pml4)[slot].set_addr(PhysAddr::new(pml4.gpa()), Flags::PRESENT | Flags::WRITABLE);
        }
        Some(AddressSpace {
            pml4,
            tables: Vec::new(),
            mapped: Vec::new(),
            spare_table: None,
        })
    }

    /// The level-1 entry for `va`, creating the tables on the way if `create`.
    #[inline(always)]
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
                let new = match self.spare_table.take() {
                    Some(spare) => spare,
                    None if TEST_DRY_KERNEL_POOL.load(Ordering::Relaxed) => {
                        return Err(MapError::OutOfMemory);
                    }
                    None => frame::alloc(Pool::Kernel, Zero::Yes).ok_or(MapError::OutOfMemory)?,
                };
                self.tables.push(new);
                set_table(entry, new);
            }
            t = table(entry_frame(entry));
        }
        Ok(Some(&mut t[slot(va, 1)]))
    }

    /// The level-1 entry of `va` if it maps a page.
    fn present_leaf(&mut self, va: u64) -> Option<&'static mut PageTableEntry> {
        self.leaf(va, false)
            .ok()
            .flatten()
            .filter(|entry| entry.flags().contains(Flags::PRESENT))
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
        self.tables.push(pdpt);
        self.tables.push(pd);
        Ok(())
    }

    /// Maps user page `va` to `frame`.
    #[inline(always)]
    pub fn map(&mut self, va: u64, frame: Frame, flags: PageFlags) -> Result<(), MapError> {
        let entry = self.leaf(va, true)?.expect("leaf with create");
        let listed = entry.flags() == LISTED;
        if !entry.is_unused() && !listed {
            return Err(MapError::AlreadyMapped);
        }
        let mut f = Flags::PRESENT | Flags::USER_ACCESSIBLE | LISTED;
        if flags.writable {
            f |= Flags::WRITABLE;
        }
        entry.set_addr(PhysAddr::new(frame.gpa()), f);
        if !listed {
            self.mapped.push(va);
        }
        Ok(())
    }

    /// Has the VMM fill `frame` as `fill` says and map it at user page `va` with `flags`,
    /// in one VM exit (a page operation with a map request, `abi::devices`): where ring 0
    /// is emulated, the kernel's own page-table walk costs several exits' worth. The VMM
    /// maps only where the tables exist and the entry is unused or evicted, as
    /// [`map`](Self::map) would; where a page-table page is missing (the first page of a
    /// region) the page is mapped here. With nothing to fill, kernel code at CPL 3 maps
    /// the page itself. On an error the frame is still the caller's.
    #[inline(always)]
    pub fn fill_and_map(
        &mut self,
        va: u64,
        frame: Frame,
        flags: PageFlags,
        fill: Fill,
    ) -> Result<(), MapError> {
        let (op, arg) = match fill {
            // Kernel code at CPL 3 (the fast mode) walks and writes the tables natively,
            // far cheaper than the exit; the user's next access sees the entry (the shim
            // reloads CR3 first). Checked only here: classic mode's zero-fill path with a
            // frame to clear does not pay for it.
            Fill::Nothing if platform::kernel_at_cpl3() => return self.map(va, frame, flags),
            Fill::Nothing => (SYSCTL_PAGE_MAP, 0),
            Fill::Zeros => (SYSCTL_ZERO_MAP, 0),
            Fill::SwapSlot(slot) => (SYSCTL_SWAP_IN_MAP, slot),
        };
        let request = MapRequest {
            page: va | if flags.writable { MAP_WRITABLE } else { 0 },
            root: self.pml4.number(),
        };
        match sysctl::page_op_and_map(op, frame.number(), arg, request) {
            PAGE_OP_DONE => Ok(()),
            // Mapped at an entry never used before: list it.
            PAGE_OP_MAPPED_NEW => {
                self.mapped.push(va);
                Ok(())
            }
            PAGE_OP_NOT_MAPPED => self.map_first(va, frame, flags),
            _ => Err(MapError::FillFailed),
        }
    }

    /// [`fill_and_map`](Self::fill_and_map) of `frame`, whose page (another, an evicted
    /// one) the VMM first writes to a free swap slot, in the same exit
    /// (`SYSCTL_EVICT_ZERO_MAP`, `SYSCTL_EVICT_SWAP_IN_MAP`); `fill` is `Zeros` or
    /// `SwapSlot`. Returns the slot, or why not: nothing was written out, or the page
    /// was written out but `frame` not filled or mapped (the caller's then).
    pub fn evict_fill_and_map(
        &mut self,
        va: u64,
        frame: Frame,
        flags: PageFlags,
        fill: Fill,
    ) -> Result<u32, EvictFill> {
        let (op, arg) = match fill {
            Fill::SwapSlot(slot) => (SYSCTL_EVICT_SWAP_IN_MAP, slot),
            Fill::Zeros | Fill::Nothing => (SYSCTL_EVICT_ZERO_MAP, 0),
        };
        let request = MapRequest {
            page: va | if flags.writable { MAP_WRITABLE } else { 0 },
            root: self.pml4.number(),
        };
        let result = sysctl::page_op_and_map(op, frame.number(), arg, request);
        let Some((slot, mapped)) = evicted_slot(result) else {
            return Err(EvictFill::NotWrittenOut);
        };
        match mapped {
            PAGE_OP_DONE => Ok(slot),
            PAGE_OP_MAPPED_NEW => {
                self.mapped.push(va);
                Ok(slot)
            }
            PAGE_OP_NOT_MAPPED => match self.map_first(va, frame, flags) {
                Ok(()) => Ok(slot),
                Err(MapError::OutOfMemory) => Err(EvictFill::NoTable(slot)),
                Err(_) => Err(EvictFill::NotFilled(slot)),
            },
            _ => Err(EvictFill::NotFilled(slot)),
        }
    }

    /// [`map`](Self::map) for [`fill_and_map`](Self::fill_and_map)'s rare case (a missing
    /// page-table page), kept out of line so that the common case stays small.
    #[cold]
    #[inline(never)]
    fn map_first(&mut self, va: u64, frame: Frame, flags: PageFlags) -> Result<(), MapError> {
        self.map(va, frame, flags)
    }

    /// Gives this space zeroed frame `f` for its next new page-table page: the fault path's
    /// way out when the kernel pool has none (`vm::fault` takes one from the user pool).
    /// The space frees it with its tables.
    pub fn give_table_frame(&mut self, f: Frame) {
        if let Some(old) = self.spare_table.replace(f) {
            frame::free(old);
        }
    }

    /// Lists user page `va`, which the fast mode's shim mapped with an entry from
    /// [`zero_fill_entry`] (the kernel settles it at its next entry).
    pub fn note_mapped(&mut self, va: u64) {
        self.mapped.push(va);
    }

    /// Takes user page `va` out of memory (eviction): the entry stops mapping it (the TLB
    /// entry is flushed if this space is active) but `va` stays listed. Returns the frame.
    pub fn evict(&mut self, va: u64) -> Option<Frame> {
        let entry = self.present_leaf(va)?;
        let frame = entry_frame(entry);
        entry.set_addr(PhysAddr::new(0), LISTED);
        self.flush(va);
        Some(frame)
    }

    /// Makes room in the bookkeeping lists for `pages` user pages mapped at once, so that
    /// mapping them (on the fault path) does not allocate. Page-table pages are reserved
    /// for contiguous runs: one per 256 pages plus 64 more (a layout of many scattered runs
    /// could still grow the list). False if the kernel heap has no room.
    pub fn reserve_for(&mut self, pages: u64) -> bool {
        let Ok(pages) = usize::try_from(pages) else {
            return false;
        };
        let tables = pages / 256 + 64;
        self.mapped
            .try_reserve(pages.saturating_sub(self.mapped.len()))
            .is_ok()
            && self
                .tables
                .try_reserve(tables.saturating_sub(self.tables.len()))
                .is_ok()
    }

    /// Unmaps user page `va`, returning the frame it mapped (the caller frees it). Flushes
    /// the TLB entry if this space is active.
    pub fn unmap(&mut self, va: u64) -> Option<Frame> {
        let frame = self.unmap_entry(va)?;
        if let Some(at) = self.mapped.iter().rposition(|&m| m == va) {
            self.mapped.swap_remove(at);
        }
        frame
    }

    /// Unmaps the user pages of `pages` (page-aligned) as [`unmap`](Self::unmap) would,
    /// calling `f(va, frame, note)` for each page that had a frame, after its entry is
    /// cleared, where `note = before(self, va)` ran first for every page (to read its dirty
    /// bit, say). The mapped list loses them in one pass at the end, not one search per
    /// page (a whole `munmap` of a large mapping was quadratic in the process's pages).
    pub fn unmap_range<T>(
        &mut self,
        pages: core::ops::Range<u64>,
        mut before: impl FnMut(&mut Self, u64) -> T,
        mut f: impl FnMut(u64, Frame, T),
    ) {
        let mut any = false;
        for va in pages.clone().step_by(PAGE_SIZE as usize) {
            let note = before(self, va);
            if let Some(frame) = self.unmap_entry(va) {
                any = true;
                if let Some(frame) = frame {
                    f(va, frame, note);
                }
            }
        }
        if any {
            self.mapped.retain(|va| !pages.contains(va));
        }
    }

    /// Clears user page `va`'s entry (flushing its TLB entry): the frame it mapped if
    /// present. `None` if the entry was unused already.
    fn unmap_entry(&mut self, va: u64) -> Option<Option<Frame>> {
        let entry = self.leaf(va, false).ok()??;
        if entry.is_unused() {
            return None;
        }
        let present = entry.flags().contains(Flags::PRESENT);
        let frame = entry_frame(entry);
        entry.set_unused();
        self.flush(va);
        Some(present.then_some(frame))
    }

    /// Unmaps every user page, handing each page and frame to `f` (at exit: no search per
    /// page). Reloads CR3 if this space is active, so no stale translation survives.
    pub fn unmap_all(&mut self, mut f: impl FnMut(u64, Frame)) {
        for va in core::mem::take(&mut self.mapped) {
            if let Ok(Some(entry)) = self.leaf(va, false)
                && !entry.is_unused()
            {
                let present = entry.flags().contains(Flags::PRESENT);
                let frame = entry_frame(entry);
                entry.set_unused();
                if present {
                    f(va, frame);
                }
            }
        }
        if self.is_active() {
            self.activate();
        }
    }

    /// What user page `va` maps to.
    pub fn translate(&mut self, va: u64) -> Option<Mapping> {
        let entry = self.present_leaf(va & !(PAGE_SIZE - 1))?;
        let f = entry.flags();
        Some(Mapping {
            frame: entry_frame(entry),
            writable: f.contains(Flags::WRITABLE),
            cow: f.contains(COW),
            accessed: f.contains(Flags::ACCESSED),
            dirty: f.contains(Flags::DIRTY),
        })
    }

    /// [`translate`](Self::translate) for a write by the kernel through the direct map:
    /// a writable page is also marked accessed and dirty, in the same walk (the kernel's
    /// stores do not set the bits the clock and write-back read).
    pub fn translate_for_write(&mut self, va: u64) -> Option<Mapping> {
        let entry = self.present_leaf(va & !(PAGE_SIZE - 1))?;
        let f = entry.flags();
        let writable = f.contains(Flags::WRITABLE);
        if writable && !f.contains(Flags::ACCESSED | Flags::DIRTY) {
            entry.set_flags(f | Flags::ACCESSED | Flags::DIRTY);
        }
        Some(Mapping {
            frame: entry_frame(entry),
            writable,
            cow: f.contains(COW),
            accessed: true,
            dirty: writable,
        })
    }

    /// The byte at user address `va`, if a frame backs its page now (read through the
    /// direct map, so it cannot fault).
    #[inline(always)]
    pub fn read_byte(&mut self, va: u64) -> Option<u8> {
        if va >= KERN_BASE {
            return None;
        }
        let page = va & !(PAGE_SIZE - 1);
        let frame = entry_frame(self.present_leaf(page)?);
        // SAFETY: the frame backs a mapped user page of this space; the direct map covers
        // it; the offset is inside the page.
        Some(unsafe { *frame.as_ptr().add((va - page) as usize) })
    }

    /// Makes mapped user page `va` copy-on-write: read-only, marked so that a write fault
    /// gives it a private writable frame ([`Self::cow_frame`], [`Self::resolve_cow`]).
    /// False if unmapped.
    pub fn mark_cow(&mut self, va: u64) -> bool {
        let Some(entry) = self.present_leaf(va) else {
            return false;
        };
        entry.set_flags((entry.flags() - Flags::WRITABLE) | COW);
        self.flush(va);
        true
    }

    /// The frame behind copy-on-write page `va`, or None if `va` is not one.
    pub fn cow_frame(&mut self, va: u64) -> Option<Frame> {
        let entry = self.present_leaf(va)?;
        entry.flags().contains(COW).then(|| entry_frame(entry))
    }

    /// Ends copy-on-write for page `va`: it maps `frame` (the old frame or a private copy),
    /// writable. The caller checked [`Self::cow_frame`].
    pub fn resolve_cow(&mut self, va: u64, frame: Frame) {
        if let Ok(Some(entry)) = self.leaf(va, false) {
            let flags = (entry.flags() - COW) | Flags::WRITABLE;
            entry.set_addr(PhysAddr::new(frame.gpa()), flags);
            self.flush(va);
        }
    }

    /// The accessed and dirty bits of `va`'s mapping; with `clear_accessed`, the accessed
    /// bit is also cleared (the clock's second chance), in the same walk.
    pub fn accessed_dirty(&mut self, va: u64, clear_accessed: bool) -> Option<(bool, bool)> {
        let entry = self.present_leaf(va)?;
        let f = entry.flags();
        let accessed = f.contains(Flags::ACCESSED);
        if clear_accessed && accessed {
            entry.set_flags(f - Flags::ACCESSED);
            self.flush(va);
        }
        Some((accessed, f.contains(Flags::DIRTY)))
    }

    /// Marks `va`'s mapping accessed and dirty: the kernel wrote the page through the
    /// direct map, which the CPU does not record in the user mapping.
    pub fn mark_dirty(&mut self, va: u64) {
        if let Some(entry) = self.present_leaf(va) {
            entry.set_flags(entry.flags() | Flags::ACCESSED | Flags::DIRTY);
        }
    }

    /// Clears the accessed and dirty bits of `va`'s mapping; returns them as they were.
    pub fn take_accessed_dirty(&mut self, va: u64) -> Option<(bool, bool)> {
        let entry = self.present_leaf(va)?;
        let f = entry.flags();
        entry.set_flags(f - Flags::ACCESSED - Flags::DIRTY);
        self.flush(va);
        Some((f.contains(Flags::ACCESSED), f.contains(Flags::DIRTY)))
    }

    /// Whether this space's tables are the ones loaded in CR3.
    pub fn is_active(&self) -> bool {
        platform::active_page_table() == self.pml4
    }

    fn flush(&self, va: u64) {
        if self.is_active() {
            platform::flush_tlb_page(va);
        }
    }

    /// The root of this space's page tables (its PML4).
    pub fn root(&self) -> Frame {
        self.pml4
    }

    /// The PML4 entry of this space's user half below 512 GiB (slot 0), to place in the
    /// kernel view so that kernel code at CPL 3 reaches this space's user pages
    /// (`cpl3::set_user_half`).
    pub fn user_half(&self) -> u64 {
        let slot0 = &table(self.pml4)[0];
        slot0.addr().as_u64() | slot0.flags().bits()
    }

    /// Loads this space into CR3 unless it is loaded already.
    pub fn activate_if_needed(&self) {
        if !self.is_active() {
            self.activate();
        }
    }

    /// Calls `f(va, mapping)` for every mapped user page.
    pub fn for_each_user_page(&mut self, mut f: impl FnMut(u64, Mapping)) {
        for va in self.mapped.clone() {
            if let Some(mapping) = self.translate(va) {
                f(va, mapping);
            }
        }
    }

    /// Loads this space into CR3.
    pub fn activate(&self) {
        // SAFETY: the PML4 maps the kernel half exactly like the running tables, so kernel
        // code, data and stacks stay mapped across the switch.
        unsafe { platform::load_page_table(self.pml4) };
    }
}

/// The leaf entry that maps a writable user page to `frame`, listed, as [`AddressSpace::map`]
/// writes it: what the fast mode's shim installs for a zero-fill fault (the kernel then
/// lists the page: [`AddressSpace::note_mapped`]).
pub fn zero_fill_entry(frame: Frame) -> u64 {
    let flags = Flags::PRESENT | Flags::USER_ACCESSIBLE | Flags::WRITABLE | LISTED;
    frame.gpa() | flags.bits()
}

/// Loads the kernel's own page tables unless they are loaded already (a CR3 write flushes
/// the TLB, which costs).
pub fn activate_kernel_if_needed() {
    if platform::active_page_table() != kernel_pml4() {
        activate_kernel();
    }
}

/// Loads the kernel's own page tables (no user pages).
pub fn activate_kernel() {
    // SAFETY: the kernel's tables map the whole kernel half.
    unsafe { platform::load_page_table(kernel_pml4()) };
}

impl Drop for AddressSpace {
    /// Frees every page-table page that belongs to this space (not the mapped frames, and
    /// not the kernel's shared tables). Must not be the active space.
    fn drop(&mut self) {
        assert!(
            !self.is_active(),
            "page_table: dropping the active address space"
        );
        for table_frame in self.tables.drain(..).chain(self.spare_table.take()) {
            frame::free(table_frame);
        }
        frame::free(self.pml4);
    }
}
