//! Self-tests of the boot environment: the VMM's `BootInfo`, its page tables, and the
//! kernel's exception handling.

use abi::layout::{self, KERN_BASE, LARGE_PAGE_SIZE, PAGE_SIZE, phys_to_virt};

use super::{Test, TestResult};
use crate::arch::x86_64::trap::{self, vector};
use crate::arch::x86_64::{cpl3, cpu, entry};
use crate::boot::{self, BootInfoExt};
use crate::{check, check_eq};

pub const TESTS: &[Test] = &[
    Test {
        name: "boot_info_consistent",
        run: boot_info_consistent,
    },
    Test {
        name: "direct_map_covers_usable_ram",
        run: direct_map_covers_usable_ram,
    },
    Test {
        name: "direct_map_ends_at_ram_top",
        run: direct_map_ends_at_ram_top,
    },
    Test {
        name: "invalid_opcode_is_caught",
        run: invalid_opcode_is_caught,
    },
    Test {
        name: "page_fault_reports_address",
        run: page_fault_reports_address,
    },
    Test {
        name: "tsc_advances",
        run: tsc_advances,
    },
    Test {
        name: "kernel_code_runs_at_cpl3",
        run: kernel_code_runs_at_cpl3,
    },
    Test {
        name: "interrupts_wait_while_kernel_code_runs_at_cpl3",
        run: interrupts_wait_while_kernel_code_runs_at_cpl3,
    },
    Test {
        name: "cpl3_port_reads_go_through_the_shim",
        run: cpl3_port_reads_go_through_the_shim,
    },
    Test {
        name: "portable_kernel_code_runs_at_cpl3",
        run: portable_kernel_code_runs_at_cpl3,
    },
    Test {
        name: "kernel_at_cpl3_reaches_a_process_user_pages",
        run: kernel_at_cpl3_reaches_a_process_user_pages,
    },
    Test {
        name: "user_events_reach_kernel_code_at_cpl3",
        run: user_events_reach_kernel_code_at_cpl3,
    },
    Test {
        name: "user_page_faults_resolved_by_the_fault_path_at_cpl3",
        run: user_page_faults_resolved_by_the_fault_path_at_cpl3,
    },
];

/// The usable ranges are sorted, disjoint, inside RAM, and miss the kernel image and the
/// reserved low pages; the kernel range holds the code that is running.
fn boot_info_consistent() -> TestResult {
    let info = boot::info();
    check!(
        info.ram_top >= info.ram_bytes,
        "ram_top {:#x} below ram_bytes {:#x}",
        info.ram_top,
        info.ram_bytes
    );
    check!(!info.usable().is_empty(), "no usable RAM");
    let mut previous_end = 0;
    for r in info.usable() {
        check!(
            r.start >= previous_end,
            "usable range {:#x}.. overlaps or is unsorted",
            r.start
        );
        check!(
            r.start >= layout::LOW_USABLE_START,
            "usable range {:#x}.. covers reserved pages",
            r.start
        );
        check!(
            r.end <= info.kernel.start || r.start >= info.kernel.end,
            "usable range {:#x}..{:#x} overlaps the kernel",
            r.start,
            r.end
        );
        previous_end = r.end;
    }
    let entry = entry::_start as *const () as u64;
    check!(
        (phys_to_virt(info.kernel.start)..phys_to_virt(info.kernel.end)).contains(&entry),
        "_start {entry:#x} outside the kernel range {:#x}..{:#x}",
        info.kernel.start,
        info.kernel.end
    );
    check_eq!(info.kernel.start, layout::KERNEL_PHYS_BASE);
    check!(
        info.cmdline().len() <= layout::CMDLINE_MAX,
        "command line too long"
    );
    Ok(())
}

/// The first and last word of every usable range read through the direct map without a fault.
fn direct_map_covers_usable_ram() -> TestResult {
    for r in boot::info().usable() {
        for gpa in [r.start, r.end - 8] {
            let result = trap::try_read_u64(phys_to_virt(gpa));
            check!(
                result.is_ok(),
                "reading gpa {gpa:#x} faulted with vector {:?}",
                result.err()
            );
        }
    }
    Ok(())
}

/// Past the last RAM large page the direct map stops: a read there is a page fault.
fn direct_map_ends_at_ram_top() -> TestResult {
    let top = boot::info().ram_top.next_multiple_of(LARGE_PAGE_SIZE);
    check_eq!(
        trap::try_read_u64(phys_to_virt(top)),
        Err(vector::PAGE_FAULT)
    );
    Ok(())
}

/// `ud2` raises #UD, the IDT delivers it, and execution resumes at the fixup.
fn invalid_opcode_is_caught() -> TestResult {
    check_eq!(trap::try_invalid_opcode(), vector::INVALID_OPCODE);
    // A second time, to show the handler returned cleanly.
    check_eq!(trap::try_invalid_opcode(), vector::INVALID_OPCODE);
    Ok(())
}

/// A read of an unmapped address raises #PF with CR2 holding that address.
fn page_fault_reports_address() -> TestResult {
    let unmapped = KERN_BASE - 16 * PAGE_SIZE;
    check_eq!(trap::try_read_u64(unmapped), Err(vector::PAGE_FAULT));
    check_eq!(cpu::read_cr2(), unmapped);
    Ok(())
}

/// The VMM passed a TSC frequency and the counter moves forward.
fn tsc_advances() -> TestResult {
    let khz = boot::info().tsc_khz;
    check!(
        (100_000..=10_000_000).contains(&khz),
        "implausible TSC frequency {khz} kHz"
    );
    let first = cpu::rdtsc();
    let second = cpu::rdtsc();
    check!(second > first, "TSC went from {first} to {second}");
    Ok(())
}

/// What the function run at CPL 3 found: written there, read back in ring 0.
static SEEN_AT_CPL3: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Run at CPL 3: reports the privilege level it runs at and reads and writes kernel data.
extern "C" fn at_cpl3(arg: u64) -> u64 {
    let before = SEEN_AT_CPL3.load(core::sync::atomic::Ordering::Relaxed);
    SEEN_AT_CPL3.store(
        u64::from(cpu::privilege_level()) << 32 | arg,
        core::sync::atomic::Ordering::Relaxed,
    );
    before + arg
}

/// A kernel function runs at CPL 3 in the kernel view (the VMM's user-accessible copy of
/// the direct map) and returns through the ring-0 shim, twice, with its result, its stores
/// to kernel data, and the ring-0 state (privilege level, page tables, interrupts) as they
/// were before.
fn kernel_code_runs_at_cpl3() -> TestResult {
    use core::sync::atomic::Ordering::Relaxed;
    let kview = boot::info().kview_pml4_gpa;
    check!(kview != 0, "the VMM built no kernel view");
    let root = cpu::read_cr3();
    let interrupts = crate::platform::interrupts_enabled();
    SEEN_AT_CPL3.store(100, Relaxed);
    check_eq!(cpl3::call(at_cpl3, 7, kview), 107);
    check_eq!(SEEN_AT_CPL3.load(Relaxed), 3 << 32 | 7);
    check_eq!(cpl3::call(at_cpl3, 5, kview), (3 << 32 | 7) + 5);
    check_eq!(SEEN_AT_CPL3.load(Relaxed), 3 << 32 | 5);
    check_eq!(cpu::privilege_level(), 0);
    check_eq!(cpu::read_cr3(), root);
    check_eq!(crate::platform::interrupts_enabled(), interrupts);
    check!(!cpl3::active(), "a call is still marked active");
    Ok(())
}

/// Run at CPL 3: spins for `cycles` TSC cycles.
extern "C" fn spin_at_cpl3(cycles: u64) -> u64 {
    let start = cpu::rdtsc();
    while cpu::rdtsc() - start < cycles {
        core::hint::spin_loop();
    }
    0
}

/// An interrupt that comes while kernel code runs at CPL 3 (interrupts off there: the
/// frame's IF is 0) waits until ring 0 turns them on again: five timer periods spent at
/// CPL 3 raise no interrupt there (the CPL-3 IDT has no gate for the timer, so one would
/// stop the kernel), and the timer's tick comes after. The fast kernel mode relies on
/// this: on PVM, where `pushf` at CPL 3 always shows the flag on, this is the way to see
/// that the flag still holds.
fn interrupts_wait_while_kernel_code_runs_at_cpl3() -> TestResult {
    let kview = boot::info().kview_pml4_gpa;
    check!(crate::platform::interrupts_enabled(), "interrupts are off");
    let period = boot::info().tsc_khz * 1000 / crate::arch::x86_64::lapic::TIMER_HZ;
    // The count is read with interrupts off, so that a tick between the read and the
    // call's own `cli` cannot look like one delivered during the call.
    crate::platform::disable_interrupts();
    let ticks = crate::thread::ticks();
    cpl3::call(spin_at_cpl3, 5 * period, kview);
    let after_call = crate::thread::ticks();
    crate::platform::enable_interrupts();
    // Interrupts are on again: the pending tick arrives (within a few periods).
    let start = cpu::rdtsc();
    while crate::thread::ticks() == after_call && cpu::rdtsc() - start < 20 * period {
        core::hint::spin_loop();
    }
    check_eq!(after_call, ticks);
    check!(
        crate::thread::ticks() > after_call,
        "no timer tick after the call"
    );
    Ok(())
}

/// Run at CPL 3: the free swap slots, asked from the VMM with a page operation (a port read
/// with arguments, which the shim does in ring 0); the privilege level in the high half.
extern "C" fn free_slots_at_cpl3(_: u64) -> u64 {
    use abi::devices::{SYSCTL_PORT, SYSCTL_SWAP_FREE};
    let free = crate::platform::inl_with_args(SYSCTL_PORT + SYSCTL_SWAP_FREE, 0, 0, 0, 0);
    u64::from(cpu::privilege_level()) << 32 | u64::from(free)
}

/// Kernel code at CPL 3, where `in` faults, reads a VMM register through the shim and gets
/// what ring 0 gets.
fn cpl3_port_reads_go_through_the_shim() -> TestResult {
    use abi::devices::{SYSCTL_PORT, SYSCTL_SWAP_FREE};
    let kview = boot::info().kview_pml4_gpa;
    let in_ring0 = crate::platform::inl_with_args(SYSCTL_PORT + SYSCTL_SWAP_FREE, 0, 0, 0, 0);
    check!(
        in_ring0 > 0,
        "the self-test run has a swap disk with free slots"
    );
    check_eq!(
        cpl3::call(free_slots_at_cpl3, 0, kview),
        3 << 32 | u64::from(in_ring0)
    );
    Ok(())
}

/// What [`kernel_services_at_cpl3`] found, bit by bit: 0 = interrupt guards ran, 1 = a heap vector held what was put in, 2 = a zeroed kernel frame read as zero, 3 = the
/// swap-slot count (a page operation: an emulated `in`) matched ring 0's, passed as the
/// argument, 4 = ran at CPL 3.
extern "C" fn kernel_services_at_cpl3(slots_in_ring0: u64) -> u64 {
    use crate::mm::frame::{self, Pool, Zero};
    use crate::platform;
    use crate::sync::IrqGuard;
    let mut found = 0;
    // Guards, and an explicit enable and disable, run without faulting (a fault would be a
    // kernel fault: the run would end) and leave the flag as they found it: at CPL 3 the
    // platform layer leaves it alone (and the shim would step over a `cli` or `sti`). What
    // the flag reads is not checked: on PVM, `pushf` at CPL 3 shows the host's IF (on),
    // not the guest's (off).
    let before = platform::interrupts_enabled();
    {
        let _outer = IrqGuard::new();
        let _inner = IrqGuard::new();
    }
    let after_guards = platform::interrupts_enabled();
    platform::enable_interrupts();
    platform::disable_interrupts();
    if after_guards == before {
        found |= 1;
    }
    let v: alloc::vec::Vec<u64> = (1..=1000).collect();
    if v.iter().sum::<u64>() == 500_500 {
        found |= 2;
    }
    drop(v);
    if let Some(f) = frame::alloc(Pool::Kernel, Zero::Yes) {
        // SAFETY: the frame is ours until freed just below; the direct map covers it.
        let words = unsafe { core::slice::from_raw_parts(f.as_ptr().cast::<u64>(), 512) };
        if words.iter().all(|&w| w == 0) {
            found |= 4;
        }
        frame::free(f);
    }
    if crate::vm::swap::slot_usage().0 == slots_in_ring0 {
        found |= 8;
    }
    if cpu::privilege_level() == 3 {
        found |= 16;
    }
    found
}

/// The portable kernel's own services run unchanged at CPL 3, the shim emulating the
/// privileged instructions they use: interrupt guards, the heap, the frame pools and the
/// swap slots (page operations: port reads with argument registers).
fn portable_kernel_code_runs_at_cpl3() -> TestResult {
    let kview = boot::info().kview_pml4_gpa;
    let slots = crate::vm::swap::slot_usage().0;
    let free_before = crate::mm::frame::stats(crate::mm::frame::Pool::Kernel).free;
    check_eq!(cpl3::call(kernel_services_at_cpl3, slots, kview), 0b11111);
    check_eq!(
        crate::mm::frame::stats(crate::mm::frame::Pool::Kernel).free,
        free_before
    );
    Ok(())
}

/// Run at CPL 3 with a process's user half in the kernel view: adds one to the word at
/// user address `va`, returns what it found.
extern "C" fn bump_user_word(va: u64) -> u64 {
    let word = va as *mut u64;
    // SAFETY: the test mapped a writable user page at `va` and put its address space's
    // user half in the kernel view; nothing else uses the page meanwhile.
    unsafe {
        let old = word.read_volatile();
        word.write_volatile(old + 1);
        old
    }
}

/// With a process's user half placed in the kernel view (`cpl3::set_user_half`), kernel
/// code at CPL 3 reads and writes that process's pages at their user addresses, as system
/// calls will in the fast mode.
fn kernel_at_cpl3_reaches_a_process_user_pages() -> TestResult {
    use crate::mm::frame::{self, Pool, Zero};
    use crate::mm::page_table::{AddressSpace, PageFlags};
    let kview = boot::info().kview_pml4_gpa;
    let va = 0x40_0008;
    let f = frame::alloc(Pool::User, Zero::Yes).ok_or_else(super::Failure::new)?;
    // SAFETY: the frame is ours; the direct map covers it.
    let words = unsafe { core::slice::from_raw_parts_mut(f.as_ptr().cast::<u64>(), 512) };
    words[1] = 41;
    let result = {
        let mut space = AddressSpace::new().ok_or_else(super::Failure::new)?;
        check_eq!(
            space.map(va & !0xfff, f, PageFlags { writable: true }),
            Ok(())
        );
        cpl3::set_user_half(kview, space.user_half());
        let found = cpl3::call(bump_user_word, va, kview);
        cpl3::set_user_half(kview, 0);
        space.unmap(va & !0xfff);
        found
    };
    check_eq!(result, 41);
    check_eq!(words[1], 42);
    frame::free(f);
    Ok(())
}

/// The privilege level the event handler ran at, and how many events it handled.
static EVENTS_SEEN: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The event handler of [`user_events_reach_kernel_code_at_cpl3`], at CPL 3: adds 35 to
/// the user's `rax` and moves its `rip` past the `ud2`.
extern "C" fn add_35(frame: &mut trap::TrapFrame) {
    use core::sync::atomic::Ordering::Relaxed;
    EVENTS_SEEN.store(
        (u64::from(cpu::privilege_level()) << 32) | ((EVENTS_SEEN.load(Relaxed) & 0xffff_ffff) + 1),
        Relaxed,
    );
    frame.rax += 35;
    frame.rip += 2;
}

/// A user program's `ud2` is an event handled by kernel code at CPL 3 through the shim
/// (`arch::x86_64::events`): the user's `rax` is 7, the handler adds 35, the user's final
/// `int3` ends the run with 42, twice in a row.
fn user_events_reach_kernel_code_at_cpl3() -> TestResult {
    use crate::arch::x86_64::events;
    use crate::mm::frame::{self, Pool, Zero};
    use crate::mm::page_table::{AddressSpace, PageFlags};
    /// `mov eax, 7; ud2; int3`.
    const CODE: [u8; 8] = [0xb8, 7, 0, 0, 0, 0x0f, 0x0b, 0xcc];
    const VA: u64 = 0x40_0000;
    let kview = boot::info().kview_pml4_gpa;
    let f = frame::alloc(Pool::User, Zero::Yes).ok_or_else(super::Failure::new)?;
    // SAFETY: the frame is ours; the direct map covers it.
    unsafe { core::ptr::copy_nonoverlapping(CODE.as_ptr(), f.as_ptr(), CODE.len()) };
    let results = {
        let mut space = AddressSpace::new().ok_or_else(super::Failure::new)?;
        check_eq!(space.map(VA, f, PageFlags { writable: false }), Ok(()));
        cpl3::set_user_half(kview, space.user_half());
        let root = space.root().gpa();
        let finish = VA + CODE.len() as u64;
        let first = events::run_user(VA, root, finish, kview, add_35);
        let second = events::run_user(VA, root, finish, kview, add_35);
        cpl3::set_user_half(kview, 0);
        space.unmap(VA);
        (first, second)
    };
    frame::free(f);
    check_eq!(results, (42, 42));
    check_eq!(
        EVENTS_SEEN.load(core::sync::atomic::Ordering::Relaxed),
        3 << 32 | 2
    );
    Ok(())
}

/// The user memory whose faults [`fault_at_cpl3`] resolves.
static FAULTING_MEMORY: core::sync::atomic::AtomicPtr<crate::vm::Memory> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// The page-fault handler of [`user_page_faults_resolved_by_the_fault_path_at_cpl3`], at
/// CPL 3: the kernel's own fault path (`vm::fault::resolve`) on the faulting address.
extern "C" fn fault_at_cpl3(frame: &mut trap::TrapFrame) {
    let mem = FAULTING_MEMORY.load(core::sync::atomic::Ordering::Relaxed);
    // SAFETY: the test stored a live `Memory` it does not touch while the user runs.
    let Some(mem) = (unsafe { mem.as_mut() }) else {
        return;
    };
    let addr = crate::arch::x86_64::events::fault_address();
    let access = if frame.error_code & 1 == 0 {
        crate::vm::Access::Missing
    } else {
        crate::vm::Access::Write
    };
    if !crate::vm::fault::resolve(mem, addr, frame.rsp, access, false) {
        // Not resolvable: jump to the user's final `int3` with a result the test rejects.
        frame.rip = FAULT_TEST_END.load(core::sync::atomic::Ordering::Relaxed);
        frame.rax = u64::MAX;
    }
}

/// The address of the user's final `int3` in the fault test.
static FAULT_TEST_END: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// A user page fault delivered through the shim to kernel code at CPL 3 is resolved there
/// by the kernel's own fault path: a zero-fill page registered in the SPT gets a frame
/// (the page operation's `in` emulated by the shim), the user's retried load and store
/// work, and the counters count one zero-fill fault.
fn user_page_faults_resolved_by_the_fault_path_at_cpl3() -> TestResult {
    use crate::arch::x86_64::events;
    use crate::mm::frame::{self, Pool, Zero};
    use crate::mm::page_table::PageFlags;
    use core::sync::atomic::Ordering::Relaxed;
    /// `mov rax, [0x500000]; add rax, 5; mov [0x500000], rax; int3`.
    const CODE: [u8; 21] = [
        0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x50, 0x00, 0x48, 0x83, 0xc0, 0x05, 0x48, 0x89, 0x04,
        0x25, 0x00, 0x00, 0x50, 0x00, 0xcc,
    ];
    const CODE_VA: u64 = 0x40_0000;
    const DATA_VA: u64 = 0x50_0000;
    let kview = boot::info().kview_pml4_gpa;
    let zero_fills = crate::stats::page().faults_zero_fill.load(Relaxed);
    let mut mem = crate::vm::Memory::new().ok_or_else(super::Failure::new)?;
    let code = frame::alloc(Pool::User, Zero::Yes).ok_or_else(super::Failure::new)?;
    // SAFETY: the frame is ours; the direct map covers it.
    unsafe { core::ptr::copy_nonoverlapping(CODE.as_ptr(), code.as_ptr(), CODE.len()) };
    check_eq!(
        mem.space.map(CODE_VA, code, PageFlags { writable: false }),
        Ok(())
    );
    check!(mem.spt.make_room(1, 16), "no room in the SPT");
    mem.spt.add_anon(DATA_VA, true);
    check!(mem.reserve_mappings(), "no room for the mappings");
    cpl3::set_user_half(kview, mem.space.user_half());
    FAULTING_MEMORY.store(&mut *mem, Relaxed);
    FAULT_TEST_END.store(CODE_VA + CODE.len() as u64 - 1, Relaxed);
    let root = mem.space.root().gpa();
    let rax = events::run_user(
        CODE_VA,
        root,
        CODE_VA + CODE.len() as u64,
        kview,
        fault_at_cpl3,
    );
    FAULTING_MEMORY.store(core::ptr::null_mut(), Relaxed);
    cpl3::set_user_half(kview, 0);
    let data = mem.space.translate(DATA_VA);
    // SAFETY: a frame mapped in `mem`, which nothing else uses; the direct map covers it.
    let stored = data.map(|m| unsafe { m.frame.as_ptr().cast::<u64>().read() });
    mem.space.unmap(CODE_VA);
    frame::free(code);
    mem.release();
    drop(mem);
    check_eq!(rax, 5);
    check_eq!(stored, Some(5));
    check_eq!(
        crate::stats::page().faults_zero_fill.load(Relaxed),
        zero_fills + 1
    );
    Ok(())
}
