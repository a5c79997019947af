//! Virtual memory: a process's user pages, demand paging, eviction and swap (Pintos-KAIST's
//! `vm/`).
//!
//! A page's life:
//! ```text
//!             exec registers it (spt: Uninit)        mmap registers it (spt: Mapped)
//!                        |                                      |
//!                  first touch: fault.rs                  first touch: fault.rs
//!                  the executable's bytes                 the file's bytes
//!                  (or zeros) into a frame                into a frame
//!                        |                                      |
//!                        v                                      v
//!   stack growth --> in a frame (Anon once written) <--> in a frame (Mapped)
//!   (spt: Anon)         |            ^                   |             ^
//!                 evicted (dirty)    | fault: swap-in    | evicted:    | fault:
//!                       v            |                   | written     | read again
//!                  in a swap slot ---+                   | back if     |
//!                  (spt: Anon, slot)                     v dirty       |
//!                                                     not in memory ---+
//!   An Uninit page evicted while clean is dropped and read from the executable again.
//! ```
//! - [`fault`]: the one entry for a page fault, deciding by the page's kind.
//! - [`spt`]: the supplemental page table: what each user page should hold.
//! - [`frame_table`]: which page each user frame backs, and eviction.
//! - [`swap`]: page-sized slots on the swap disk.
//! - [`mmap`]: file mappings.
//! - [`cow`]: fork's copy-on-write sharing and its write faults.
//!
//! The machine-level pieces (frame pools, page tables, the heap) are `crate::mm`'s. A
//! process holds its user memory as one [`Memory`] and calls in through it: create, copy
//! for fork, release; faults come through [`fault::resolve`].

pub mod cow;
pub mod fault;
pub mod frame_table;
pub mod mmap;
pub mod spt;
pub mod swap;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;

use abi::layout::PAGE_SIZE;

use self::spt::Spt;
use crate::arch::x86_64::fast;
use crate::arch::x86_64::user::{self, TRAMPOLINE_VA};
use crate::fs;
use crate::mm::frame::{self, Frame, Pool};
use crate::mm::page_table::{AddressSpace, PageFlags};

/// Top of the user stack: the first stack page is `[USER_STACK - 4096, USER_STACK)`.
pub const USER_STACK: u64 = 0x4748_0000;
/// Lowest address the stack may grow to: 1 MiB below its top.
pub const STACK_LIMIT: u64 = USER_STACK - (1 << 20);
/// End of the user addresses a zero-fill run may reach: PML4 slot 0, which the shim's
/// self-map indexes.
pub const ZERO_RUN_LIMIT: u64 = 1 << 39;
/// Pages the stack may grow to.
pub const STACK_PAGES: u64 = (USER_STACK - STACK_LIMIT) / PAGE_SIZE;

/// What a user page fault (or a system call's touch of user memory) found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No page is mapped at the address.
    Missing,
    /// A write to a page mapped read-only.
    Write,
    /// Any other access to a mapped page: never allowed.
    Denied,
}

/// One process's user memory: its page tables, what each page should hold, its file
/// mappings and the executable its program pages come from.
///
/// Always boxed ([`Memory::new`], [`Memory::fork`]): the frame table names a frame's
/// owners by their `Memory`'s address, which therefore never changes while it owns frames.
pub struct Memory {
    pub space: AddressSpace,
    /// What each page of the program should hold (loaded on first touch).
    pub spt: Spt,
    /// File mappings made with `mmap`, by first page.
    pub mappings: BTreeMap<u64, mmap::Mapping>,
    /// The running executable, open with writes denied while it runs: program pages not
    /// loaded yet (or dropped while clean) are read from it.
    pub exe: Option<fs::File>,
    /// A page fault found no memory (no free frame and nothing to evict): the process's
    /// exit line is preceded by `NAME: out of memory`.
    pub out_of_memory: bool,
    /// Pages `[lo, hi)` that are writable zero-fill pages of the program (`Page::Uninit`
    /// with no range) whenever their page-table entry is all zero (never mapped: loaded
    /// and evicted pages keep a listed entry). The fast mode's shim maps them itself
    /// (`fault::settle_shim_faults`). Set by exec; `(0, 0)` for none, and for a forked
    /// child (whose entries are zero for the parent's evicted pages too).
    pub zero_run: (u64, u64),
    /// The process's id, for the fault trace (`crate::trace`); set by `proc` once the
    /// process has one.
    pub pid: u32,
}

impl Memory {
    /// Empty user memory: no pages but the system-call trampoline. `None` if the kernel
    /// pool has no frame for the page tables.
    pub fn new() -> Option<Box<Memory>> {
        Some(Box::new(Memory {
            space: new_space()?,
            spt: Spt::new(),
            mappings: BTreeMap::new(),
            exe: None,
            out_of_memory: false,
            zero_run: (0, 0),
            pid: 0,
        }))
    }

    /// A copy of `parent` for a forked child: the same pages (shared copy-on-write, see
    /// [`cow`]), swap slots, mappings and executable. `None` if kernel memory for the copy
    /// ran out (nothing of the copy is left then).
    pub fn fork(parent: &mut Memory) -> Option<Box<Memory>> {
        let spt = parent.spt.try_clone()?;
        let mut child = Box::new(Memory {
            space: new_space()?,
            spt,
            mappings: parent
                .mappings
                .iter()
                .map(|(&addr, m)| (addr, m.duplicate()))
                .collect(),
            exe: parent.exe.as_ref().map(|exe| {
                let mut copy = exe.duplicate();
                copy.deny_write();
                copy
            }),
            out_of_memory: false,
            zero_run: (0, 0),
            pid: 0,
        });
        // Pages in swap: the child's entries name the same slots.
        for slot in child.spt.slots() {
            swap::share_slot(slot);
        }
        if !child.reserve_mappings() || cow::share_pages(parent, &mut child).is_err() {
            child.release_pages();
            return None;
        }
        Some(child)
    }

    /// Loads these page tables if they are not loaded (on every switch to the process),
    /// and tells the fast mode's shim the zero-fill run.
    pub fn activate(&self) {
        self.space.activate_if_needed();
        self.publish_zero_run();
    }

    /// Sets the zero-fill run ([`Memory::zero_run`]) of the running process, after exec.
    pub fn set_zero_run(&mut self, run: (u64, u64)) {
        self.zero_run = run;
        self.publish_zero_run();
    }

    fn publish_zero_run(&self) {
        if fault::shim_zero_fill() {
            fast::set_zero_fill_run(self.zero_run.0, self.zero_run.1);
        }
    }

    /// Prepares the page tables to map every page the SPT registers plus a full stack and
    /// the trampoline without allocating on the fault path (design rule: the fault path
    /// allocates nothing). Called whenever pages are registered (exec, mmap) and for a
    /// forked child. False if the kernel heap has no room.
    pub fn reserve_mappings(&mut self) -> bool {
        reserve_mappings(&mut self.space, &self.spt)
    }

    /// Releases everything: mappings first (dirty pages go back to their files), then the
    /// executable, then every frame (freed when no other process shares it), swap slot and
    /// page-table entry. Must not be the loaded address space.
    pub fn release(&mut self) {
        mmap::unmap_all(self);
        self.exe = None;
        self.release_pages();
        crate::trace::release(self.pid, abi::trace::Release::Exit);
    }

    /// Replaces the program: `space` and `spt` (loaded by exec, with `exe` its executable)
    /// become this memory's and are loaded; the old program's mappings are written back and
    /// dropped, and its pages, slots and executable released.
    pub fn replace_program(&mut self, space: AddressSpace, spt: Spt, exe: fs::File) {
        // Mappings are not inherited across exec.
        mmap::unmap_all(self);
        let mut old_space = core::mem::replace(&mut self.space, space);
        let old_spt = core::mem::replace(&mut self.spt, spt);
        self.space.activate();
        let owner: *mut Memory = self;
        release_space(owner, &mut old_space, &old_spt);
        crate::trace::release(self.pid, abi::trace::Release::Exec);
        drop(old_space);
        self.exe = Some(exe);
    }

    /// Releases every frame and swap slot and clears the page-table entries (not the
    /// mappings' files: see [`Memory::release`]).
    fn release_pages(&mut self) {
        let owner: *mut Memory = self;
        release_space(owner, &mut self.space, &self.spt);
    }
}

/// Releases the user pages that `owner` holds in `space` and `spt` (its own, or at exec
/// the old program's): every frame (freed when no other process shares it), every swap
/// slot, and the page-table entries. The trampoline is shared by all: kept.
fn release_space(owner: *mut Memory, space: &mut AddressSpace, spt: &Spt) {
    space.unmap_all(|va, f| {
        if va != TRAMPOLINE_VA {
            frame_table::release(f, owner);
        }
    });
    for slot in spt.slots() {
        swap::release_slot(slot);
    }
}

/// A fresh address space with the system-call trampoline mapped.
pub fn new_space() -> Option<AddressSpace> {
    let mut space = AddressSpace::new()?;
    let trampoline = Frame::from_gpa(user::trampoline_frame_gpa());
    space
        .map(TRAMPOLINE_VA, trampoline, PageFlags { writable: false })
        .ok()?;
    Some(space)
}

/// [`Memory::reserve_mappings`] for a space and table not yet a process's (exec).
pub fn reserve_mappings(space: &mut AddressSpace, spt: &Spt) -> bool {
    space.reserve_for(spt.len() + STACK_PAGES + 1)
}

/// Most pages one process may register (program, mappings): what memory and swap together
/// can hold. Registering costs kernel heap even before a page is touched, so a program
/// asking for more (a huge bss or mmap) is refused instead of exhausting the kernel.
pub fn page_budget() -> u64 {
    frame::stats(Pool::User).total + swap::slot_count()
}
