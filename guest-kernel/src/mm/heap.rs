//! The kernel heap: `talc` as the global allocator, fed from the kernel frame pool.
//!
//! The heap starts empty. When `talc` runs out it asks [`FrameSource::acquire`], which
//! claims a run of fresh, contiguous kernel frames (at least [`GROW_PAGES`], more for a big
//! request) through the direct map. Allocation runs with interrupts off, so an interrupt
//! can never find the heap half-updated (the scheduler's queues may grow from the timer).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use abi::layout::PAGE_SIZE;
use talc::base::Talc;
use talc::base::binning::{Binning, DefaultBinning};
use talc::source::Source;

use super::frame::{self, Pool};
use crate::sync::IrqSpinLock;

/// Smallest growth step, in pages (64 KiB): few steps for a typical boot.
const GROW_PAGES: u64 = 16;

/// Gives `talc` memory from the kernel pool.
#[derive(Debug)]
struct FrameSource;

// SAFETY: `acquire` only claims frames it has just taken out of the kernel pool (so no one
// else uses them) and never touches the allocator other than through `talc`.
unsafe impl Source for FrameSource {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        // Room for the request, its alignment, and talc's per-heap metadata.
        let needed = (layout.size() + layout.align()) as u64 + 4 * PAGE_SIZE;
        let pages = needed.div_ceil(PAGE_SIZE).max(GROW_PAGES);
        let first = frame::alloc_fresh_run(Pool::Kernel, pages).ok_or(())?;
        // SAFETY: the run is `pages` frames we own exclusively, mapped by the direct map.
        unsafe { talc.claim(first.as_ptr(), (pages * PAGE_SIZE) as usize) }
            .map(|_| ())
            .ok_or(())
    }
}

/// The global allocator.
struct KernelHeap(IrqSpinLock<Talc<FrameSource, DefaultBinning>>);

// SAFETY: every call is serialised by the lock and forwarded to talc, which upholds the
// GlobalAlloc contract for pointers it returned.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: talc's contract matches GlobalAlloc's: layout has non-zero size.
        unsafe { self.0.lock().allocate(layout) }.map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a pointer this allocator returned, with its layout.
        unsafe { self.0.lock().deallocate(ptr, layout) }
    }
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(IrqSpinLock::new("kernel heap", Talc::new(FrameSource)));
