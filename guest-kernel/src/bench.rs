//! Micro-benchmarks (`vmm run --bench`): the cost of kernel mechanisms measured with the
//! TSC, printed as `bench NAME: VALUE UNIT` lines for `make bench` to collect.
//!
//! On hosts that emulate ring 0, these costs are dominated by the emulation, which is the
//! point: they show what each mechanism costs the guest there.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::x86_64::{cpl3, cpu, trap};
use abi::devices::{SYSCTL_EXIT, SYSCTL_PORT};
use abi::fs::SECTORS_PER_BLOCK;
use abi::layout::PAGE_SIZE;

use crate::drivers::block;
use crate::mm::frame::{self, Pool, Zero};
use crate::sync::{IrqGuard, Semaphore};
use crate::vm::swap;
use crate::{boot, fs, platform, println, thread};

/// TSC cycles to nanoseconds.
fn ns(cycles: u64) -> u64 {
    cycles * 1_000_000 / boot::info().tsc_khz
}

/// Runs every benchmark and prints one line each.
pub fn run_all() {
    context_switch();
    semaphore_round_trip();
    timer_tick();
    vm_exit();
    cpl3_round_trip();
    cpl3_port_read();
    user_event_round_trip();
    cpl3_zero_fill_fault();
    page_zero_copy();
    disk_pages();
}

/// A kernel function run at CPL 3 and back (`arch::x86_64::cpl3::call`): ring 0 switches
/// to the kernel view and `iretq`s, the function returns to a `ud2`, and its #UD brings
/// the CPU back through the trap stubs. This is the round trip the fast kernel mode pays
/// per event; where ring 0 is emulated it is mostly the two ring changes.
fn cpl3_round_trip() {
    extern "C" fn nothing(arg: u64) -> u64 {
        arg
    }
    const ROUNDS: u64 = 16;
    let kview = boot::info().kview_pml4_gpa;
    // The first run at CPL 3 also fills its IDTs: not part of a round trip.
    cpl3::call(nothing, 0, kview);
    let tsc0 = cpu::rdtsc();
    for i in 0..ROUNDS {
        cpl3::call(nothing, i, kview);
    }
    println!(
        "bench cpl3_round_trip: {} ns",
        ns(cpu::rdtsc() - tsc0) / ROUNDS
    );
}

/// A port read by kernel code at CPL 3, where `in` faults and the shim's #GP entry does it
/// in ring 0: the bounce there and back plus the VM exit of the read, without the call
/// around it. The register read is the bare exit of [`vm_exit`].
fn cpl3_port_read() {
    extern "C" fn reads(rounds: u64) -> u64 {
        for _ in 0..rounds {
            platform::inl_with_args(SYSCTL_PORT + SYSCTL_EXIT, 0, 0, 0, 0);
        }
        0
    }
    const ROUNDS: u64 = 16;
    let kview = boot::info().kview_pml4_gpa;
    let tsc0 = cpu::rdtsc();
    cpl3::call(reads, 0, kview);
    let tsc1 = cpu::rdtsc();
    cpl3::call(reads, ROUNDS, kview);
    let tsc2 = cpu::rdtsc();
    let per_read = (tsc2 - tsc1).saturating_sub(tsc1 - tsc0) / ROUNDS;
    println!("bench cpl3_port_read: {} ns", ns(per_read));
}

/// A user program's event handled by kernel code at CPL 3 and back to the user
/// (`arch::x86_64::events`): user `ud2` -> shim -> the kernel's event entry at CPL 3 (save
/// registers, call a handler that moves `rip` on, restore) -> shim -> user. What a system
/// call or a fault would cost in the fast kernel mode before its own work; compare
/// `int 0x42` in the process benchmarks (the same round trip in classic mode).
fn user_event_round_trip() {
    use crate::arch::x86_64::{events, trap::TrapFrame};
    use crate::mm::page_table::{AddressSpace, PageFlags};
    extern "C" fn skip_ud2(frame: &mut TrapFrame) {
        frame.rip += 2;
    }
    /// User code: `mov ecx, ROUNDS; again: ud2; dec ecx; jnz again; int3`.
    fn code(rounds: u32) -> [u8; 12] {
        let n = rounds.to_le_bytes();
        [
            0xb9, n[0], n[1], n[2], n[3], 0x0f, 0x0b, 0xff, 0xc9, 0x75, 0xfa, 0xcc,
        ]
    }
    const ROUNDS: u32 = 16;
    const VA: u64 = 0x40_0000;
    let kview = boot::info().kview_pml4_gpa;
    let (Some(f), Some(mut space)) = (frame::alloc(Pool::User, Zero::Yes), AddressSpace::new())
    else {
        println!("bench user_event_round_trip: no memory");
        return;
    };
    if space.map(VA, f, PageFlags { writable: false }).is_err() {
        println!("bench user_event_round_trip: no memory");
        return;
    }
    cpl3::set_user_half(kview, space.user_half());
    let root = space.root().gpa();
    let run = |rounds: u32| {
        let bytes = code(rounds);
        // SAFETY: the frame is ours (mapped read-only for the user, who is not running).
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), f.as_ptr(), bytes.len()) };
        let tsc0 = cpu::rdtsc();
        events::run_user(VA, root, VA + bytes.len() as u64, kview, skip_ud2);
        cpu::rdtsc() - tsc0
    };
    let one = run(1);
    let many = run(ROUNDS + 1);
    cpl3::set_user_half(kview, 0);
    space.unmap(VA);
    drop(space);
    frame::free(f);
    println!(
        "bench user_event_round_trip: {} ns",
        ns(many.saturating_sub(one) / u64::from(ROUNDS))
    );
}

/// The memory whose faults [`cpl3_zero_fill_fault`]'s handler resolves.
static BENCH_MEMORY: core::sync::atomic::AtomicPtr<crate::vm::Memory> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// A user zero-fill fault resolved by the kernel's own fault path running at CPL 3
/// (`arch::x86_64::events`): the event round trip plus `vm::fault::resolve`, whose
/// privileged instructions (the frame pool's interrupt guard, the page operation's `in`)
/// the shim emulates for now. Compare `zero_fill_fault` in the process benchmarks.
fn cpl3_zero_fill_fault() {
    use crate::arch::x86_64::{events, trap::TrapFrame};
    use crate::mm::page_table::PageFlags;
    extern "C" fn resolve(frame: &mut TrapFrame) {
        let mem = BENCH_MEMORY.load(Ordering::Relaxed);
        // SAFETY: the benchmark stored a live `Memory` it leaves alone while the user runs.
        if let Some(mem) = unsafe { mem.as_mut() } {
            let addr = events::fault_address();
            crate::vm::fault::resolve(mem, addr, frame.rsp, crate::vm::Access::Missing, false);
        }
    }
    /// User code: `mov ecx, PAGES; mov edi, DATA; again: mov byte [rdi], 1;
    /// add rdi, 4096; dec ecx; jnz again; int3`.
    fn code(pages: u32) -> [u8; 25] {
        let n = pages.to_le_bytes();
        [
            0xb9, n[0], n[1], n[2], n[3], 0xbf, 0x00, 0x00, 0x50, 0x00, 0xc6, 0x07, 0x01, 0x48,
            0x81, 0xc7, 0x00, 0x10, 0x00, 0x00, 0xff, 0xc9, 0x75, 0xf2, 0xcc,
        ]
    }
    const CODE_VA: u64 = 0x40_0000;
    const DATA_VA: u64 = 0x50_0000;
    const PAGES: u32 = 16;
    let kview = boot::info().kview_pml4_gpa;
    let run = |pages: u32| -> Option<u64> {
        let mut mem = crate::vm::Memory::new()?;
        let code_frame = frame::alloc(Pool::User, Zero::Yes)?;
        let bytes = code(pages);
        // SAFETY: the frame is ours; the direct map covers it.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), code_frame.as_ptr(), 25) };
        let mapped = mem
            .space
            .map(CODE_VA, code_frame, PageFlags { writable: false });
        let room = mem.spt.make_room(u64::from(pages), u64::from(pages));
        for page in 0..u64::from(pages) {
            mem.spt.add_anon(DATA_VA + page * PAGE_SIZE, true);
        }
        let mut cycles = None;
        if mapped.is_ok() && room && mem.reserve_mappings() {
            cpl3::set_user_half(kview, mem.space.user_half());
            BENCH_MEMORY.store(&mut *mem, Ordering::Relaxed);
            let root = mem.space.root().gpa();
            let tsc0 = cpu::rdtsc();
            events::run_user(CODE_VA, root, CODE_VA + 25, kview, resolve);
            cycles = Some(cpu::rdtsc() - tsc0);
            BENCH_MEMORY.store(core::ptr::null_mut(), Ordering::Relaxed);
            cpl3::set_user_half(kview, 0);
        }
        mem.space.unmap(CODE_VA);
        frame::free(code_frame);
        mem.release();
        cycles
    };
    match (run(1), run(PAGES + 1)) {
        (Some(one), Some(many)) => println!(
            "bench cpl3_zero_fill_fault: {} ns",
            ns(many.saturating_sub(one) / u64::from(PAGES))
        ),
        _ => println!("bench cpl3_zero_fill_fault: no memory"),
    }
}

/// One bare VM exit, as the guest sees it: a read of a system-control register that does
/// nothing (the power-off register reads as zero). What a page operation costs beyond it is
/// the VMM's work and the kernel's few instructions around the read. Eight reads per loop
/// round: where ring 0 is emulated, the loop's own instructions would otherwise add about
/// a third.
fn vm_exit() {
    const ROUNDS: u64 = 16;
    let port = SYSCTL_PORT + SYSCTL_EXIT;
    let tsc0 = cpu::rdtsc();
    for _ in 0..ROUNDS {
        for _ in 0..8 {
            platform::inl(port);
        }
    }
    println!(
        "bench vm_exit: {} ns",
        ns(cpu::rdtsc() - tsc0) / (ROUNDS * 8)
    );
}

/// Clearing and copying a 4 KiB frame (a page operation done by the VMM): what a
/// zero-fill fault pays for a reused frame and a copy-on-write fault for its copy.
fn page_zero_copy() {
    const ROUNDS: u64 = 64;
    let (Some(a), Some(b)) = (
        frame::alloc(Pool::Kernel, Zero::No),
        frame::alloc(Pool::Kernel, Zero::No),
    ) else {
        return;
    };
    let tsc0 = cpu::rdtsc();
    for _ in 0..ROUNDS {
        frame::zero_frame(a);
    }
    println!(
        "bench page_zero_4k: {} ns",
        ns(cpu::rdtsc() - tsc0) / ROUNDS
    );
    let tsc0 = cpu::rdtsc();
    for _ in 0..ROUNDS {
        frame::copy_frame(a, b);
    }
    println!(
        "bench page_copy_4k: {} ns",
        ns(cpu::rdtsc() - tsc0) / ROUNDS
    );
    frame::free(a);
    frame::free(b);
}

/// 4 KiB page writes and reads on each disk, straight from and into one frame: the latency
/// of a request through the driver, the VM exit and the VMM's pread/pwrite.
fn disk_pages() {
    const PAGES: u64 = 64;
    let Some(frame) = frame::alloc(Pool::Kernel, Zero::Yes) else {
        return;
    };
    // SAFETY: the benchmark owns the frame until it frees it below.
    let page = unsafe { core::slice::from_raw_parts_mut(frame.as_ptr(), PAGE_SIZE as usize) };
    fn time(name: &str, page: &mut [u8], mut transfer: impl FnMut(u64, &mut [u8])) {
        let tsc0 = cpu::rdtsc();
        for i in 0..PAGES {
            transfer(i, page);
        }
        println!("bench {name}: {} ns", ns(cpu::rdtsc() - tsc0) / PAGES);
    }
    if let (Some(disk), Some(first)) = (block::fs_disk(), fs::unused_blocks(PAGES)) {
        let sector = |i: u64| (first + i) * SECTORS_PER_BLOCK;
        time("fs_disk_write_4k", page, |i, p| {
            let _ = disk.write(sector(i), p);
        });
        time("fs_disk_read_4k", page, |i, p| {
            let _ = disk.read(sector(i), p);
        });
        page.fill(0);
        for i in 0..PAGES {
            let _ = disk.write(sector(i), page);
        }
    }
    if let Some(disk) = block::swap_disk()
        && swap::slot_count() >= PAGES
    {
        // The virtio device, as the file-system disk above; paging moves pages with page
        // operations instead (next).
        time("swap_disk_write_4k", page, |i, p| {
            let _ = disk.write(i * SECTORS_PER_BLOCK, p);
        });
        time("swap_disk_read_4k", page, |i, p| {
            let _ = disk.read(i * SECTORS_PER_BLOCK, p);
        });
        // Out to PAGES slots, then each read back (which frees it).
        let mut slots = [0u32; PAGES as usize];
        time("swap_page_out_4k", page, |i, _| {
            slots[i as usize] = swap::swap_out(frame, 1).unwrap_or(u32::MAX);
        });
        time("swap_page_in_4k", page, |i, _| {
            let _ = swap::swap_in(slots[i as usize], frame);
        });
    }
    frame::free(frame);
}

/// Two threads yielding to each other: each `yield_now` is one switch.
fn context_switch() {
    const SWITCHES: u64 = 2000;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let done = Arc::new(Semaphore::new(0));
    let done2 = done.clone();
    thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            thread::yield_now();
        }
        done2.up();
    })
    .expect("spawn");
    thread::yield_now(); // let the partner start
    let (switches0, tsc0) = (thread::context_switches(), cpu::rdtsc());
    for _ in 0..SWITCHES / 2 {
        thread::yield_now();
    }
    let (switches1, tsc1) = (thread::context_switches(), cpu::rdtsc());
    stop.store(true, Ordering::Relaxed);
    done.down();
    println!(
        "bench context_switch: {} ns",
        ns(tsc1 - tsc0) / (switches1 - switches0).max(1)
    );
}

/// A wake-up through two semaphores and back: two blocks, two unblocks, two switches.
fn semaphore_round_trip() {
    const ROUNDS: u64 = 500;
    let ping = Arc::new(Semaphore::new(0));
    let pong = Arc::new(Semaphore::new(0));
    let (ping2, pong2) = (ping.clone(), pong.clone());
    thread::spawn(move || {
        for _ in 0..ROUNDS {
            ping2.down();
            pong2.up();
        }
    })
    .expect("spawn");
    let tsc0 = cpu::rdtsc();
    for _ in 0..ROUNDS {
        ping.up();
        pong.down();
    }
    println!(
        "bench semaphore_round_trip: {} ns",
        ns(cpu::rdtsc() - tsc0) / ROUNDS
    );
}

/// What a timer tick costs the interrupted thread: one trap entry and exit (measured with
/// an invalid-opcode probe, which takes the same stub and return path as an interrupt) plus
/// the handler body (EOI and the scheduler's tick, run directly with interrupts off).
fn timer_tick() {
    const ROUNDS: u64 = 200;
    let tsc0 = cpu::rdtsc();
    for _ in 0..ROUNDS {
        trap::try_invalid_opcode();
    }
    let trap_ns = ns(cpu::rdtsc() - tsc0) / ROUNDS;
    let handler_ns = {
        let _irq = IrqGuard::new();
        let tsc0 = cpu::rdtsc();
        for _ in 0..ROUNDS {
            platform::end_of_interrupt();
            thread::tick_without_preemption();
        }
        ns(cpu::rdtsc() - tsc0) / ROUNDS
    };
    println!(
        "bench timer_tick: {} ns (trap entry and exit {trap_ns} ns, handler {handler_ns} ns)",
        trap_ns + handler_ns
    );
}
