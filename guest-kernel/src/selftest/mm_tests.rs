//! Self-tests of memory management: frame pools, zero tracking, the heap, page tables.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use abi::layout::PAGE_SIZE;

use super::{Test, TestResult};
use crate::arch::x86_64::trap;
use crate::boot;
use crate::mm::frame::{self, Frame, Pool, Zero};
use crate::mm::page_table::{self, AddressSpace, MapError, PageFlags};
use crate::{check, check_eq};

pub const TESTS: &[Test] = &[
    Test {
        name: "pools_split_as_configured",
        run: pools_split_as_configured,
    },
    Test {
        name: "user_pool_alloc_all_free_all",
        run: user_pool_alloc_all_free_all,
    },
    Test {
        name: "frames_zeroed_only_when_asked",
        run: frames_zeroed_only_when_asked,
    },
    Test {
        name: "frame_copy_is_exact",
        run: frame_copy_is_exact,
    },
    Test {
        name: "heap_stress",
        run: heap_stress,
    },
    Test {
        name: "heap_reuses_freed_small_blocks",
        run: heap_reuses_freed_small_blocks,
    },
    Test {
        name: "heap_gives_a_stack_run_from_its_free_memory",
        run: heap_gives_a_stack_run_from_its_free_memory,
    },
    Test {
        name: "map_translate_unmap",
        run: map_translate_unmap,
    },
    Test {
        name: "unmap_range_hands_back_frames_and_unlists_its_pages",
        run: unmap_range_hands_back_frames_and_unlists_its_pages,
    },
    Test {
        name: "user_window_below_kern_base",
        run: user_window_below_kern_base,
    },
    Test {
        name: "accessed_and_dirty_bits",
        run: accessed_and_dirty_bits,
    },
    Test {
        name: "a_fault_maps_its_page_when_the_kernel_pool_is_dry",
        run: a_fault_maps_its_page_when_the_kernel_pool_is_dry,
    },
];

/// The user pool is half the usable frames, or the VMM's `--user-pages` if smaller; the
/// kernel pool has the rest.
fn pools_split_as_configured() -> TestResult {
    let info = boot::info();
    let usable: u64 = info.usable().iter().map(|r| r.len() / PAGE_SIZE).sum();
    let limit = info.user_page_limit;
    let expected_user = if limit != 0 && limit < usable / 2 {
        limit
    } else {
        usable / 2
    };
    check_eq!(frame::stats(Pool::User).total, expected_user);
    check_eq!(frame::stats(Pool::Kernel).total, usable - expected_user);
    Ok(())
}

/// Index of `frame` in a bitmap over all RAM.
fn bit(frame: Frame) -> (usize, u64) {
    let n = (frame.gpa() / PAGE_SIZE) as usize;
    (n / 64, 1 << (n % 64))
}

/// Allocates every user frame, checking none comes twice; returns them.
fn take_all_user_frames(seen: &mut [u64]) -> Result<Vec<Frame>, super::Failure> {
    seen.fill(0);
    let mut frames = Vec::with_capacity(frame::stats(Pool::User).free as usize);
    while let Some(f) = frame::alloc(Pool::User, Zero::No) {
        let (word, mask) = bit(f);
        check!(
            seen[word] & mask == 0,
            "frame {:#x} handed out twice",
            f.gpa()
        );
        seen[word] |= mask;
        frames.push(f);
    }
    Ok(frames)
}

/// Allocating every user frame gives exactly the pool's free count, each frame once;
/// freeing them all restores the count, and a second round gives the same number.
fn user_pool_alloc_all_free_all() -> TestResult {
    let before = frame::stats(Pool::User);
    let mut seen = vec![0u64; (boot::info().ram_top / PAGE_SIZE).div_ceil(64) as usize];
    for round in 0..2 {
        let frames = take_all_user_frames(&mut seen)?;
        check!(
            frames.len() as u64 == before.free,
            "round {round}: got {} frames, pool had {}",
            frames.len(),
            before.free
        );
        check_eq!(frame::stats(Pool::User).free, 0);
        for f in frames {
            frame::free(f);
        }
        check_eq!(frame::stats(Pool::User).free, before.free);
    }
    check_eq!(frame::stats(Pool::User).fresh, 0);
    Ok(())
}

fn words(f: Frame) -> &'static mut [u64] {
    // SAFETY: the test owns the frame while it uses this slice; the direct map covers it.
    unsafe { core::slice::from_raw_parts_mut(f.virt() as *mut u64, (PAGE_SIZE / 8) as usize) }
}

/// A never-used frame reads as zero without being cleared; a reused one keeps its old
/// contents unless zeros are asked for. A caller that wants zeros gets a never-used frame
/// while there is one; any other caller gets a used one first.
fn frames_zeroed_only_when_asked() -> TestResult {
    let fresh = frame::alloc_fresh_run(Pool::Kernel, 1);
    check!(fresh.is_some(), "no fresh kernel frame");
    let f = fresh.unwrap_or(Frame::from_gpa(0));
    check!(
        words(f).iter().all(|&w| w == 0),
        "fresh frame {:#x} is not zero",
        f.gpa()
    );
    words(f).fill(0x5a5a_5a5a_5a5a_5a5a);
    frame::free(f);
    // The free list is last-in, first-out: the same frame comes back.
    let again = frame::alloc(Pool::Kernel, Zero::No);
    check_eq!(again, Some(f));
    // Its first word holds the free-list link; the rest is untouched.
    check!(
        words(f)[1..].iter().all(|&w| w == 0x5a5a_5a5a_5a5a_5a5a),
        "reused frame was cleared"
    );
    frame::free(f);
    // Zeros asked for while never-used frames remain: one of those, not the used frame.
    let fresh_before = frame::stats(Pool::Kernel).fresh;
    let zero = frame::alloc(Pool::Kernel, Zero::Yes);
    check!(
        zero.is_some_and(|z| z != f),
        "got {zero:?}, not a never-used frame"
    );
    check_eq!(frame::stats(Pool::Kernel).fresh, fresh_before - 1);
    let z = zero.unwrap_or(f);
    check!(
        words(z).iter().all(|&w| w == 0),
        "never-used frame not zero"
    );
    frame::free(z);
    // With no never-used frame left (user_pool_alloc_all_free_all used the whole user
    // pool), a used frame is cleared on request.
    check_eq!(frame::stats(Pool::User).fresh, 0);
    let used = frame::alloc(Pool::User, Zero::No);
    check!(used.is_some(), "no user frame");
    let u = used.unwrap_or(f);
    words(u).fill(0x5a5a_5a5a_5a5a_5a5a);
    frame::free(u);
    let zeroed = frame::alloc(Pool::User, Zero::Yes);
    check_eq!(zeroed, Some(u));
    check!(
        words(u).iter().all(|&w| w == 0),
        "frame not zeroed on request"
    );
    frame::free(u);
    Ok(())
}

/// A frame copy (done by the VMM) reproduces every word and leaves the source alone.
fn frame_copy_is_exact() -> TestResult {
    let (a, b) = (
        frame::alloc(Pool::Kernel, Zero::No),
        frame::alloc(Pool::Kernel, Zero::No),
    );
    check!(a.is_some() && b.is_some(), "no kernel frames");
    let (a, b) = (
        a.unwrap_or(Frame::from_gpa(0)),
        b.unwrap_or(Frame::from_gpa(0)),
    );
    for (i, w) in words(a).iter_mut().enumerate() {
        *w = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    }
    words(b).fill(0);
    frame::copy_frame(a, b);
    let same = words(a) == words(b);
    let source_kept = words(a)
        .iter()
        .enumerate()
        .all(|(i, &w)| w == (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    frame::free(a);
    frame::free(b);
    check!(same, "the copy differs from the source");
    check!(source_kept, "the copy changed the source");
    Ok(())
}

/// Many allocations of many sizes and alignments keep their contents and can be freed in
/// any order; a large one (128 KiB, beyond one growth step) makes the heap grow.
/// A freed small block is the next one of its size handed out (its class's quick list),
/// and the heap counts freed blocks as free to the byte, whether a quick list keeps them
/// (at most 32) or the buddy takes them back.
fn heap_reuses_freed_small_blocks() -> TestResult {
    // No interrupt handler allocates in between.
    let _irq = crate::sync::IrqGuard::new();
    let first = Box::new([1u8; 64]);
    let at = core::ptr::from_ref(&*first) as usize;
    drop(first);
    let again = Box::new([2u8; 64]);
    check_eq!(core::ptr::from_ref(&*again) as usize, at);
    drop(again);

    const BLOCKS: usize = 40;
    let mut blocks: Vec<Box<[u8; 64]>> = Vec::with_capacity(BLOCKS);
    for i in 0..BLOCKS {
        blocks.push(Box::new([i as u8; 64]));
    }
    let held = crate::mm::heap::free_bytes();
    blocks.clear();
    check_eq!(crate::mm::heap::free_bytes() - held, (BLOCKS * 64) as u64);
    Ok(())
}

/// When the kernel pool has no run of fresh frames left, a thread's stack comes out of the
/// heap's free memory (`heap::take_run`): a run of whole frames, aligned, usable through
/// the direct map, and no longer counted as the heap's. (It is kept for good, as stacks
/// are: this test leaves its 16 KiB behind.)
fn heap_gives_a_stack_run_from_its_free_memory() -> TestResult {
    let _irq = crate::sync::IrqGuard::new();
    // A free 16 KiB block in the heap (blocks this large go back to the buddy).
    drop(vec![0u8; 16 * 1024]);
    let before = crate::mm::heap::free_bytes();
    let run = crate::mm::heap::take_run(4).ok_or_else(super::Failure::new)?;
    check_eq!(crate::mm::heap::free_bytes(), before - 16 * 1024);
    check_eq!(run.gpa() % (16 * 1024), 0);
    let words = run.virt() as *mut u64;
    for i in 0..(16 * 1024 / 8) {
        // SAFETY: the run is 16 KiB of kernel memory this test owns, in the direct map.
        unsafe { words.add(i).write_volatile(i as u64) };
    }
    // SAFETY: as above.
    let last = unsafe { words.add(16 * 1024 / 8 - 1).read_volatile() };
    check_eq!(last, (16 * 1024 / 8 - 1) as u64);
    Ok(())
}

fn heap_stress() -> TestResult {
    let mut blocks: Vec<Box<[u8]>> = Vec::new();
    for i in 0..200usize {
        let size = 1 + (i * 37) % 500;
        let mut block = vec![0u8; size].into_boxed_slice();
        block.fill(i as u8);
        blocks.push(block);
    }
    // Free every third block, then allocate again into the holes.
    let mut i = 0;
    blocks.retain(|_| {
        i += 1;
        i % 3 != 0
    });
    for j in 0..100usize {
        blocks.push(vec![0xee; 8 + j * 13].into_boxed_slice());
    }
    let big = vec![7u64; 16 * 1024];
    check!(big.iter().all(|&w| w == 7), "large block corrupted");
    let aligned =
        alloc::alloc::Layout::from_size_align(4096, 4096).map_err(|_| super::Failure::new());
    if let Ok(layout) = aligned {
        // SAFETY: non-zero size; freed right below with the same layout.
        let p = unsafe { alloc::alloc::alloc(layout) };
        check!(
            !p.is_null() && (p as u64).is_multiple_of(4096),
            "page-aligned allocation failed: {p:?}"
        );
        // SAFETY: `p` came from `alloc` with `layout`.
        unsafe { alloc::alloc::dealloc(p, layout) };
    }
    let mut n = 0usize;
    for (k, block) in blocks.iter().enumerate() {
        let expected = block[0];
        check!(block.iter().all(|&b| b == expected), "block {k} corrupted");
        n += block.len();
    }
    check!(n > 0, "no blocks");
    Ok(())
}

/// Maps a user page, sees it through the page tables and through its address, unmaps it,
/// and frees the address space with nothing leaked.
fn map_translate_unmap() -> TestResult {
    let kernel_free = frame::stats(Pool::Kernel).free;
    let user_frame = frame::alloc(Pool::User, Zero::Yes);
    check!(user_frame.is_some(), "no user frame");
    let user_frame = user_frame.unwrap_or(Frame::from_gpa(0));
    {
        let mut space = AddressSpace::new().ok_or_else(super::Failure::new)?;
        let va = 0x40_0000;
        check_eq!(space.translate(va), None);
        check_eq!(
            space.map(va, user_frame, PageFlags { writable: true }),
            Ok(())
        );
        check_eq!(
            space.map(va, user_frame, PageFlags { writable: true }),
            Err(MapError::AlreadyMapped)
        );
        check_eq!(
            space.map(va + 1, user_frame, PageFlags { writable: true }),
            Err(MapError::NotUserPage)
        );
        let m = space.translate(va + 123);
        check_eq!(m.map(|m| (m.frame, m.writable)), Some((user_frame, true)));

        space.activate();
        // SAFETY: the page is mapped writable in the active space.
        unsafe { ((va + 8) as *mut u64).write_volatile(0x1234_5678) };
        page_table::activate_kernel();
        check_eq!(words(user_frame)[1], 0x1234_5678);

        check_eq!(space.unmap(va), Some(user_frame));
        check_eq!(space.translate(va), None);
        check_eq!(space.unmap(va), None);
        space.activate();
        let after = trap::try_read_u64(va);
        page_table::activate_kernel();
        check_eq!(after, Err(trap::vector::PAGE_FAULT));
    }
    frame::free(user_frame);
    check_eq!(frame::stats(Pool::Kernel).free, kernel_free);
    Ok(())
}

/// `unmap_range` (munmap) clears every page of its range, hands back the frames of those
/// in memory with what `before` noted, skips an evicted one, takes them all off the
/// mapped list and leaves a page outside the range alone.
fn unmap_range_hands_back_frames_and_unlists_its_pages() -> TestResult {
    let kernel_free = frame::stats(Pool::Kernel).free;
    let mut frames = Vec::new();
    for _ in 0..4 {
        frames.push(frame::alloc(Pool::User, Zero::Yes).ok_or_else(super::Failure::new)?);
    }
    let result = (|| {
        let base = 0x2000_0000;
        let va = |i: u64| base + i * PAGE_SIZE;
        let rw = PageFlags { writable: true };
        let mut space = AddressSpace::new().ok_or_else(super::Failure::new)?;
        for (i, &f) in frames.iter().enumerate() {
            check_eq!(space.map(va(i as u64), f, rw), Ok(()));
        }
        check_eq!(space.evict(va(1)), Some(frames[1]));
        let mut noted = Vec::new();
        let mut handed = Vec::new();
        space.unmap_range(
            va(0)..va(3),
            |_, v| {
                noted.push(v);
                v / PAGE_SIZE
            },
            |v, f, note| handed.push((v, f, note)),
        );
        check_eq!(noted, vec![va(0), va(1), va(2)]);
        check_eq!(
            handed,
            vec![
                (va(0), frames[0], va(0) / PAGE_SIZE),
                (va(2), frames[2], va(2) / PAGE_SIZE)
            ]
        );
        let mut listed = Vec::new();
        space.for_each_user_page(|v, m| listed.push((v, m.frame)));
        check_eq!(listed, vec![(va(3), frames[3])]);
        // Mapped again, a page is listed once.
        check_eq!(space.map(va(1), frames[1], rw), Ok(()));
        let mut again = Vec::new();
        space.for_each_user_page(|v, _| again.push(v));
        again.sort_unstable();
        check_eq!(again, vec![va(1), va(3)]);
        check_eq!(space.unmap(va(1)), Some(frames[1]));
        check_eq!(space.unmap(va(3)), Some(frames[3]));
        Ok(())
    })();
    for f in frames {
        frame::free(f);
    }
    check_eq!(frame::stats(Pool::Kernel).free, kernel_free);
    result
}

/// A user page just below KERN_BASE (sharing PML4 slot 1 with the kernel) is private to
/// its space: the kernel's tables and other spaces do not see it, and the kernel half still
/// works in that space.
fn user_window_below_kern_base() -> TestResult {
    let kernel_free = frame::stats(Pool::Kernel).free;
    let f = frame::alloc(Pool::User, Zero::Yes).ok_or_else(super::Failure::new)?;
    {
        let va = abi::layout::KERN_BASE - PAGE_SIZE;
        let mut a = AddressSpace::new().ok_or_else(super::Failure::new)?;
        let mut b = AddressSpace::new().ok_or_else(super::Failure::new)?;
        check_eq!(a.map(va, f, PageFlags { writable: true }), Ok(()));
        check_eq!(a.translate(va).map(|m| m.frame), Some(f));
        check_eq!(b.translate(va), None);
        a.activate();
        let seen = trap::try_read_u64(va);
        let kernel_still_mapped =
            trap::try_read_u64(abi::layout::phys_to_virt(boot::info().kernel.start));
        page_table::activate_kernel();
        check_eq!(seen, Ok(0));
        check!(
            kernel_still_mapped.is_ok(),
            "kernel image unmapped in the space"
        );
        check_eq!(trap::try_read_u64(va), Err(trap::vector::PAGE_FAULT));
        check_eq!(a.unmap(va), Some(f));
    }
    frame::free(f);
    check_eq!(frame::stats(Pool::Kernel).free, kernel_free);
    Ok(())
}

/// Reading a page sets its accessed bit, writing sets dirty; taking the bits clears them.
fn accessed_and_dirty_bits() -> TestResult {
    let f = frame::alloc(Pool::User, Zero::Yes).ok_or_else(super::Failure::new)?;
    let va = 0x1000_0000;
    let result = (|| {
        let mut space = AddressSpace::new().ok_or_else(super::Failure::new)?;
        check_eq!(space.map(va, f, PageFlags { writable: true }), Ok(()));
        check_eq!(
            space.translate(va).map(|m| (m.accessed, m.dirty)),
            Some((false, false))
        );
        space.activate();
        let _ = trap::try_read_u64(va);
        page_table::activate_kernel();
        check_eq!(
            space.translate(va).map(|m| (m.accessed, m.dirty)),
            Some((true, false))
        );
        space.activate();
        // SAFETY: mapped writable in the active space.
        unsafe { (va as *mut u64).write_volatile(1) };
        page_table::activate_kernel();
        check_eq!(space.take_accessed_dirty(va), Some((true, true)));
        check_eq!(
            space.translate(va).map(|m| (m.accessed, m.dirty)),
            Some((false, false))
        );
        check_eq!(space.unmap(va), Some(f));
        Ok(())
    })();
    frame::free(f);
    result
}

/// A fault whose page needs a new page-table page while the kernel pool is empty (the
/// kernel heap can hold every kernel frame) still maps it: the table comes from the user
/// pool, and goes back there with the address space. It used to kill the process.
fn a_fault_maps_its_page_when_the_kernel_pool_is_dry() -> TestResult {
    use crate::vm::{Access, Memory, fault};
    // A 2 MiB region no table covers yet.
    const VA: u64 = 0x1000_0000;
    let user_free = frame::stats(Pool::User).free;
    let mut mem = Memory::new().ok_or_else(super::Failure::new)?;
    check!(mem.spt.make_room(1, 16), "no room in the SPT");
    mem.spt.add_anon(VA, true);
    check!(mem.reserve_mappings(), "no room for the mappings");
    let kernel_free = frame::stats(Pool::Kernel).free;
    page_table::TEST_DRY_KERNEL_POOL.store(true, Ordering::Relaxed);
    let resolved = fault::resolve(&mut mem, VA + 8, 0, Access::Missing, false);
    page_table::TEST_DRY_KERNEL_POOL.store(false, Ordering::Relaxed);
    let kernel_taken = kernel_free - frame::stats(Pool::Kernel).free;
    let mapped = mem.space.translate(VA).is_some();
    mem.release();
    drop(mem);
    check_eq!(kernel_taken, 0);
    check!(resolved, "the fault failed with the kernel pool empty");
    check!(mapped, "the page is not mapped");
    check_eq!(frame::stats(Pool::User).free, user_free);
    Ok(())
}
