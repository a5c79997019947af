//! CPU control and port I/O wrappers: the only places that execute these instructions.

use x86_64::instructions::port::Port;

/// Writes a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: the kernel only names ports of devices the VMM described (abi::devices);
    // writing them has no memory-safety effect on the kernel.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// Writes `bytes` to an I/O port with one `rep outsb` (one instruction; KVM may still exit
/// once per byte).
pub fn outsb(port: u16, bytes: &[u8]) {
    // SAFETY: reads exactly `bytes.len()` bytes from the slice (the direction flag is clear,
    // as the ABI guarantees) and writes them to a device port the VMM described.
    unsafe {
        core::arch::asm!(
            "rep outsb",
            in("dx") port,
            inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _,
            options(nostack, preserves_flags, readonly)
        );
    }
}

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    // SAFETY: as for `outb`; reads of the VMM's device registers have no side effect on
    // kernel memory.
    unsafe { Port::<u8>::new(port).read() }
}

/// Reads a 32-bit value from an I/O port.
#[inline]
pub fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: as for `inb`.
    unsafe {
        core::arch::asm!("in eax, dx", out("eax") value, in("dx") port, options(nomem, nostack, preserves_flags));
    }
    value
}

/// Reads a 32-bit value from an I/O port with `a` in `rdi`, `b` in `rsi`, `c` in `rcx` and
/// `d` in `r8`, where the VMM reads them at the exit: the arguments of a page operation and
/// its map request (`abi::devices`).
#[inline]
pub fn inl_with_args(port: u16, a: u32, b: u32, c: u64, d: u32) -> u32 {
    let value: u32;
    // SAFETY: as for `inb`. The VMM may read and write guest memory during the read (the
    // pages a page operation names, and a page-table entry not present before), so unlike
    // `inl` this is not `nomem`: the compiler keeps memory accesses on their side of it.
    unsafe {
        core::arch::asm!(
            "in eax, dx",
            out("eax") value,
            in("dx") port,
            // Whole registers: the VMM reads all 64 bits, and a 32-bit operand leaves the
            // upper half of its register to whatever the compiler had there.
            in("rdi") u64::from(a),
            in("rsi") u64::from(b),
            in("rcx") c,
            in("r8") u64::from(d),
            options(nostack, preserves_flags)
        );
    }
    value
}

/// Writes a 32-bit value to an I/O port.
pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe { Port::<u32>::new(port).write(value) }
}

/// Stops the CPU for good: interrupts off, then `hlt` in a loop.
pub fn halt_forever() -> ! {
    x86_64::instructions::interrupts::disable();
    loop {
        x86_64::instructions::hlt();
    }
}

/// Spins with interrupts off, never yielding the CPU (the VMM's timeout must catch it).
pub fn spin_forever() -> ! {
    x86_64::instructions::interrupts::disable();
    loop {
        core::hint::spin_loop();
    }
}

/// Control register 2: the faulting linear address of the last page fault.
pub fn read_cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc reads a counter; it has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Turns interrupts off; returns whether they were on.
#[inline]
pub fn disable_interrupts() -> bool {
    let was_enabled = x86_64::instructions::interrupts::are_enabled();
    // Only when they are on: where ring 0 is emulated `cli` is one more emulated
    // instruction.
    if was_enabled {
        cli();
    }
    was_enabled
}

/// Turns interrupts off (`cli`).
#[inline]
pub fn cli() {
    x86_64::instructions::interrupts::disable();
}

/// Turns interrupts on.
#[inline]
pub fn enable_interrupts() {
    x86_64::instructions::interrupts::enable();
}

/// Turns interrupts on and halts until the next one, atomically (no wake-up is lost
/// between the two instructions, thanks to `sti`'s one-instruction delay).
#[inline]
pub fn enable_interrupts_and_halt() {
    x86_64::instructions::interrupts::enable_and_hlt();
}

/// Guest-physical address of the loaded page-table root, kept in memory beside CR3
/// (`crate::platform` stores it with every CR3 load): a memory load is what CPL-3 code can
/// do, cheaper than an emulated read of CR3 where ring 0 is emulated, and what the fast
/// mode's shim loads on its way back to the user (`fast`).
pub static LOADED_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Guest-physical address of the page-table root in CR3.
pub fn read_cr3() -> u64 {
    x86_64::registers::control::Cr3::read()
        .0
        .start_address()
        .as_u64()
}

/// Loads CR3 with the page tables rooted at `pml4_gpa` (no PCID: all non-global TLB
/// entries go).
///
/// # Safety
/// The new tables must map the kernel half exactly as the running ones do, so that kernel
/// code, data and stacks stay mapped across the switch.
#[inline]
pub unsafe fn write_cr3(pml4_gpa: u64) {
    use x86_64::registers::control::{Cr3, Cr3Flags};
    use x86_64::structures::paging::PhysFrame;
    let frame = PhysFrame::containing_address(x86_64::PhysAddr::new(pml4_gpa));
    // SAFETY: the caller's contract.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
}

/// Drops the TLB's translation of `va` (`invlpg`).
#[inline]
pub fn invlpg(va: u64) {
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(va));
}

/// Whether interrupts are on.
#[inline]
pub fn interrupts_enabled() -> bool {
    x86_64::instructions::interrupts::are_enabled()
}

/// The privilege level the CPU runs at now (0 for ring 0, 3 for user mode): the low bits
/// of `cs`, which any privilege level may read.
#[inline]
pub fn privilege_level() -> u8 {
    let cs: u16;
    // SAFETY: reads a segment register into a general register; no memory, no side effect.
    unsafe {
        core::arch::asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
    };
    (cs & 3) as u8
}

/// Turns global pages on or off (CR4.PGE). Turning them off flushes every TLB entry,
/// global ones included.
pub fn set_global_pages(on: bool) {
    use x86_64::registers::control::{Cr4, Cr4Flags};
    // SAFETY: PGE only decides whether global translations survive CR3 loads; the page
    // tables stay the same, so every mapping the kernel uses stays as it was.
    unsafe {
        Cr4::update(|flags| flags.set(Cr4Flags::PAGE_GLOBAL, on));
    }
}
