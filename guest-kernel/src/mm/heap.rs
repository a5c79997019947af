//! The kernel heap: a buddy allocator (`buddy_system_allocator`) as the global allocator,
//! fed from the kernel frame pool.
//!
//! Why buddy: each allocation is a power-of-two size class whose free list is popped (and a
//! larger block split when the list is empty). Where ring 0 is emulated every instruction
//! counts: measured on PVM, `talc` (tried first) took 160-200 us per small allocation and
//! the buddy allocator 90-110 us. The price is rounding sizes up to a power of two.
//!
//! In front of it, a quick list per small size class (8 bytes to 2 KiB) keeps a few freed
//! blocks of that class for the next allocation of it: a pop and a push instead of the
//! buddy's path, whose free is a scan of the class's whole free list for the buddy to merge
//! with (on PVM the kernel's allocations and frees in ring 0, at `exit` and `wait`, were a
//! quarter of a fork-heavy program's time). A quick list holds at most 8 KiB or 32 blocks;
//! beyond that a freed block goes back to the buddy. Its blocks count as free.
//!
//! The heap starts empty. When an allocation fails, a run of fresh, contiguous kernel frames
//! (at least [`GROW_PAGES`], more for a large request) is added and the allocation retried.
//! Allocation runs with interrupts off, so an interrupt never finds the heap half-updated.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use abi::layout::PAGE_SIZE;
use buddy_system_allocator::Heap;

use super::frame::{self, Frame, Pool, Zero};
use crate::sync::IrqSpinLock;

/// Smallest growth step, in pages (64 KiB): few steps for a typical boot.
const GROW_PAGES: u64 = 16;
/// Size classes up to 2^(ORDER-1) bytes.
const ORDER: usize = 32;

/// Largest size class with a quick list: 2 KiB blocks.
const QUICK_MAX_CLASS: usize = 11;
/// Bytes a quick list holds at most (and at most [`QUICK_MAX_BLOCKS`] blocks).
const QUICK_MAX_BYTES: usize = 8 * 1024;
const QUICK_MAX_BLOCKS: usize = 32;

/// Freed blocks of one size class, linked through their first word.
#[derive(Clone, Copy)]
struct QuickList {
    /// Address of the first block, or 0.
    head: usize,
    len: usize,
}

/// The buddy heap and the quick lists in front of it.
struct Inner {
    buddy: Heap<ORDER>,
    quick: [QuickList; QUICK_MAX_CLASS + 1],
    /// Bytes in the quick lists.
    quick_bytes: usize,
}

/// The buddy allocator's size class of `layout` (its block is `1 << class` bytes, aligned
/// to its size): the same rounding as `Heap::alloc` and `Heap::dealloc`.
#[inline(always)]
fn class_of(layout: Layout) -> usize {
    layout
        .size()
        .next_power_of_two()
        .max(layout.align())
        .max(size_of::<usize>())
        .trailing_zeros() as usize
}

/// The global allocator.
struct KernelHeap(IrqSpinLock<Inner>);

impl KernelHeap {
    /// Adds kernel frames enough for `layout`; false if the pool has none. A run of fresh
    /// contiguous frames is preferred; once those are gone, a single free frame serves any
    /// allocation that fits a page.
    fn grow(heap: &mut Heap<ORDER>, layout: Layout) -> bool {
        // A block of the rounded-up size must fit, aligned, in the new run.
        let block = layout.size().max(layout.align()).next_power_of_two() as u64;
        let pages = (block * 2).div_ceil(PAGE_SIZE).max(GROW_PAGES);
        let (first, pages) = match frame::alloc_fresh_run(Pool::Kernel, pages) {
            Some(first) => (first, pages),
            None if block <= PAGE_SIZE => match frame::alloc(Pool::Kernel, Zero::No) {
                Some(one) => (one, 1),
                None => return false,
            },
            None => return false,
        };
        let start = first.virt() as usize;
        // SAFETY: the frames were just taken from the pool: owned by the heap from now on,
        // mapped by the direct map, contiguous, used by nothing else.
        unsafe { heap.add_to_heap(start, start + (pages * PAGE_SIZE) as usize) };
        true
    }
}

// SAFETY: every call is serialised by the lock; the buddy heap only hands out blocks of at
// least the requested size and alignment from memory it owns, and takes back exactly the
// blocks it handed out (the caller passes the same layout to dealloc).
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let class = class_of(layout);
        let mut inner = self.0.lock();
        if let Some(list) = inner.quick.get_mut(class)
            && list.head != 0
        {
            let block = list.head;
            // SAFETY: a block on a quick list is a free buddy block of this class (at
            // least a word, word-aligned) that the list owns; its first word is the link.
            list.head = unsafe { (block as *const usize).read() };
            list.len -= 1;
            inner.quick_bytes -= 1 << class;
            return block as *mut u8;
        }
        let heap = &mut inner.buddy;
        loop {
            if let Ok(block) = heap.alloc(layout) {
                return block.as_ptr();
            }
            if !Self::grow(heap, layout) {
                return core::ptr::null_mut();
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(block) = NonNull::new(ptr) else {
            return;
        };
        let class = class_of(layout);
        let mut inner = self.0.lock();
        if let Some(list) = inner.quick.get_mut(class)
            && list.len < QUICK_MAX_BLOCKS.min(QUICK_MAX_BYTES >> class)
        {
            // SAFETY: the caller passes a block this allocator handed out with its layout:
            // a buddy block of `class` (at least a word, word-aligned), no longer used, so
            // the list may own it and keep its link in its first word.
            unsafe { (ptr as *mut usize).write(list.head) };
            list.head = ptr as usize;
            list.len += 1;
            inner.quick_bytes += 1 << class;
            return;
        }
        // SAFETY: the caller passes a block this allocator handed out, with its layout
        // (a block from a quick list was handed out by the buddy with the same class).
        unsafe { inner.buddy.dealloc(block, layout) };
    }
}

/// A run of `pages` contiguous kernel frames carved out of the heap's free memory (for a
/// kernel stack once the pool has no run of fresh frames left: the heap may hold plenty of
/// free memory by then, and it never gives memory back to the pool). The run is never given
/// back to the heap either: the caller owns it for good. `None` if the heap has no free
/// block that large.
pub fn take_run(pages: u64) -> Option<Frame> {
    let bytes = usize::try_from(pages.checked_mul(PAGE_SIZE)?).ok()?;
    let layout = Layout::from_size_align(bytes, PAGE_SIZE as usize).ok()?;
    let mut inner = HEAP.0.lock();
    // Only what the heap holds: growing it would take the pool's frames, which the caller
    // asked for first.
    let block = inner.buddy.alloc(layout).ok()?;
    Some(Frame::from_gpa(
        block.as_ptr() as u64 - abi::layout::KERN_BASE,
    ))
}

/// Bytes the heap holds but has not handed out (reusable without growing).
pub fn free_bytes() -> u64 {
    let inner = HEAP.0.lock();
    let buddy = &inner.buddy;
    (buddy.stats_total_bytes() - buddy.stats_alloc_actual() + inner.quick_bytes) as u64
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(IrqSpinLock::new(
    "kernel heap",
    Inner {
        buddy: Heap::new(),
        quick: [QuickList { head: 0, len: 0 }; QUICK_MAX_CLASS + 1],
        quick_bytes: 0,
    },
));
