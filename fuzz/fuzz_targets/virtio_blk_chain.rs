//! The virtio-blk device's request path on guest memory the fuzzer writes: a split
//! virtqueue whose descriptor table and rings lie anywhere in a 64 KiB guest, walked as
//! the device walks it (virtio-queue's iterator, then the device's own chain bound), and
//! every chain parsed as a block request against a disk of any size. Never a panic; a
//! request it accepts names only guest memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm::devices::virtio::block::request::{collect_chain, parse, status_address};

const MEMORY_BYTES: usize = 0x10000;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<16>() else {
        return;
    };
    let word = |i: usize| u32::from(u16::from_le_bytes([head[i], head[i + 1]]));
    let size = 1u16 << (head[0] % 9);
    let capacity_sectors = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
    let memory: GuestMemoryMmap =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEMORY_BYTES)]).expect("memory");
    let n = rest.len().min(MEMORY_BYTES);
    memory
        .write_slice(&rest[..n], GuestAddress(0))
        .expect("inside memory");
    let mut queue = Queue::new(256).expect("queue");
    queue.set_size(size);
    queue.set_desc_table_address(Some(word(1) & !15), Some(0));
    queue.set_avail_ring_address(Some(word(3) & !1), Some(0));
    queue.set_used_ring_address(Some(word(5) & !3), Some(0));
    queue.set_ready(true);
    if !queue.is_valid(&memory) {
        return;
    }
    let Ok(chains) = queue.iter(&memory) else {
        return;
    };
    for chain in chains {
        let Ok(descriptors) = collect_chain(chain) else {
            continue;
        };
        let _ = status_address(&descriptors, &memory);
        if let Ok(request) = parse(&descriptors, &memory, capacity_sectors) {
            assert!(memory.check_address(request.status).is_some());
        }
    }
});
