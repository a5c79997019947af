//! The local APIC (xAPIC mode, registers at `KERN_BASE + LAPIC_GPA`): the 100 Hz timer and
//! end-of-interrupt.
//!
//! xAPIC MMIO is used rather than x2APIC MSRs because each access is about 5x cheaper on
//! emulating hosts (EOI 1.1 us versus 6.5 us, measured on PVM).

use abi::devices::LAPIC_TIMER_HZ;
use abi::layout::{LAPIC_GPA, phys_to_virt};

/// Spurious-interrupt vector register; bit 8 enables the APIC.
const SVR: u64 = 0xf0;
/// End of interrupt.
const EOI: u64 = 0xb0;
/// The EOI register in the direct map (the fast mode's shim writes it).
pub const EOI_ADDRESS: u64 = abi::layout::KERN_BASE + LAPIC_GPA + EOI;
/// LVT timer register: vector, mask (bit 16), periodic mode (bit 17).
const LVT_TIMER: u64 = 0x320;
/// Timer initial count.
const TIMER_INITIAL: u64 = 0x380;
/// Timer divide configuration.
const TIMER_DIVIDE: u64 = 0x3e0;

const SVR_ENABLE: u32 = 1 << 8;
const LVT_PERIODIC: u32 = 1 << 17;
const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration value for divide-by-1.
const DIVIDE_BY_1: u32 = 0b1011;

/// Timer interrupts per second.
pub const TIMER_HZ: u64 = 100;
/// Vector of the timer interrupt (above the device lines `IRQ_VECTOR_BASE..+24`).
pub const TIMER_VECTOR: u8 = 0x40;
/// Vector the APIC uses for spurious interrupts (needs no EOI).
pub const SPURIOUS_VECTOR: u8 = 0x4f;

fn write(register: u64, value: u32) {
    let addr = phys_to_virt(LAPIC_GPA) + register;
    // SAFETY: the direct map covers the APIC page (uncached); the register offsets are
    // architectural and 32-bit aligned; writes only affect the APIC.
    unsafe { (addr as *mut u32).write_volatile(value) };
}

/// Enables the APIC and starts the periodic timer at [`TIMER_HZ`].
pub fn init() {
    write(SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
    write(TIMER_DIVIDE, DIVIDE_BY_1);
    write(LVT_TIMER, LVT_PERIODIC | u32::from(TIMER_VECTOR));
    write(TIMER_INITIAL, (LAPIC_TIMER_HZ / TIMER_HZ) as u32);
}

/// Stops the timer (before power-off or when measuring without it).
pub fn stop_timer() {
    write(LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(TIMER_INITIAL, 0);
}

/// Signals the end of the interrupt being handled.
pub fn eoi() {
    write(EOI, 0);
}
