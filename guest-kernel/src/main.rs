//! The guest kernel.
//!
//! The VMM loads this image at guest-physical `KERNEL_PHYS_BASE`, builds the first page
//! tables (all RAM at `KERN_BASE`), and enters [`arch::x86_64::entry::_start`] in long mode
//! with `rdi` holding the address of the `BootInfo` block. [`kmain`] brings the subsystems up
//! in dependency order, then runs the self-tests or the command line's work and powers off.
//!
//! Ring-0 code is emulated instruction by instruction on some KVM hosts, so start-up does a
//! fixed amount of work: nothing here touches memory in proportion to RAM size.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod bench;
mod boot;
mod console;
mod dispatch;
mod drivers;
mod fs;
mod mm;
mod panic;
mod platform;
mod proc;
mod selftest;
mod stats;
mod sync;
mod syscall;
mod thread;
mod trace;
mod util;
mod vm;

use abi::boot::{DeviceKind, TestHook};
use boot::BootInfoExt;

/// Entered once from `_start` on the boot stack, with interrupts off.
///
/// Never returns: the machine powers off at the end.
extern "C" fn kmain(boot_info_gpa: u64) -> ! {
    let info = boot::init(boot_info_gpa);
    stats::init(info);
    trace::init(info);
    arch::x86_64::init(info);
    stats::set_kernel_mode(platform::init(info));
    console::init();
    run_test_hook(TestHook::from_raw(info.test_hook));

    mm::init(info);
    thread::init();
    platform::start_timer();
    platform::enable_interrupts();
    console::enable_input();

    if info.bench() {
        bench::run_all();
        platform::stop_timer();
        drivers::sysctl::power_off(0);
    }
    if info.self_test() {
        let failed = selftest::run_all();
        platform::stop_timer();
        drivers::sysctl::power_off(if failed == 0 { 0 } else { 1 });
    }

    let cmdline = info.cmdline();
    if proc::load::program_name(cmdline).is_some() {
        let status = proc::start_first(cmdline);
        if TestHook::from_raw(info.test_hook) == Some(TestHook::MemoryReport) {
            let frames = mm::frame::stats(mm::frame::Pool::User);
            let (slots_free, slots) = vm::swap::slot_usage();
            println!(
                "kernel: free user frames {}/{}, free swap slots {slots_free}/{slots}",
                frames.free, frames.total
            );
        }
        platform::stop_timer();
        fs::sync_before_power_off();
        drivers::sysctl::power_off(status);
    }
    let fs_kib = info
        .device(DeviceKind::FsDisk)
        .map_or(0, |d| d.capacity_sectors / 2);
    println!(
        "kernel: {} MiB RAM, {fs_kib} KiB fs disk, {}; no program",
        info.ram_bytes >> 20,
        swap_summary()
    );
    drivers::sysctl::power_off(0);
}

/// "N KiB swap" or "no swap".
fn swap_summary() -> alloc::string::String {
    match vm::swap::slot_count() {
        0 => "no swap".into(),
        slots => alloc::format!("{} KiB swap", slots * 4),
    }
}

/// Forces the failure a test asked for (see `abi::boot::TestHook`); returns for `None`.
fn run_test_hook(hook: Option<TestHook>) {
    match hook {
        // Takes effect later (`syscall`).
        Some(
            TestHook::None
            | TestHook::FailSelfTest
            | TestHook::MemoryReport
            | TestHook::SyscallPageFault,
        ) => {}
        Some(TestHook::Panic) => panic!("test hook: forced panic"),
        Some(TestHook::TripleFault) => arch::x86_64::trap::force_triple_fault(),
        Some(TestHook::Spin) => arch::x86_64::cpu::spin_forever(),
        Some(TestHook::PageFault) => arch::x86_64::trap::force_kernel_page_fault(),
        Some(TestHook::DoubleFault) => arch::x86_64::trap::force_double_fault(),
        Some(TestHook::EmulationFailure) => arch::x86_64::trap::force_emulation_failure(),
        Some(TestHook::Cpl3PageFault) => arch::x86_64::trap::force_cpl3_page_fault(),
        None => panic!("boot: unknown test hook"),
    }
}
