//! The `virtio-drivers` glue: a [`Hal`] over the kernel's direct map.
//!
//! Every kernel buffer lives in the direct map (`KERN_BASE + gpa`: heap, stacks, frames, the
//! kernel image), so "sharing" a buffer with a device is just subtracting `KERN_BASE`: the
//! device reads and writes the caller's memory directly, with no bounce copy. DMA rings come
//! from kernel frames.

use core::ptr::NonNull;

use abi::layout::{KERN_BASE, PAGE_SIZE, phys_to_virt};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::mm::frame::{self, Frame, Pool, Zero};

/// The kernel's [`Hal`].
#[derive(Debug)]
pub struct KernelHal;

/// Guest-physical address of a direct-map pointer.
fn virt_to_phys(ptr: *const u8) -> u64 {
    let virt = ptr as u64;
    assert!(
        virt >= KERN_BASE,
        "virtio: buffer {virt:#x} is not in the direct map"
    );
    virt - KERN_BASE
}

// SAFETY: dma_alloc returns fresh, zeroed, page-aligned frames owned by the caller until
// dma_dealloc; share returns the true physical address of memory the direct map covers,
// which the device may access while the driver holds the buffer.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let first = if pages == 1 {
            frame::alloc(Pool::Kernel, Zero::Yes)
        } else {
            frame::alloc_fresh_run(Pool::Kernel, pages as u64)
        };
        let first = first.expect("virtio: no kernel memory for a DMA ring");
        let ptr = NonNull::new(first.as_ptr()).expect("direct-map pointers are not null");
        (first.gpa() as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        for i in 0..pages as u64 {
            frame::free(Frame::from_gpa(paddr + i * PAGE_SIZE));
        }
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(phys_to_virt(paddr) as *mut u8).expect("direct-map pointers are not null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        virt_to_phys(buffer.as_ptr().cast::<u8>()) as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
