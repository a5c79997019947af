//! An address-range bus: maps port or MMIO ranges to devices.
//!
//! The vCPU loop hands every PIO/MMIO exit to a bus and never names a port. An access that
//! hits no device reads as all ones (like an empty ISA/PCI slot) and a write to it is
//! dropped; both are counted.

use std::fmt;

use super::GuestRequest;

/// The guest's argument registers at a read: `rdi`, `rsi`, `rcx` and `r8`, which KVM hands
/// over with the exit (`KVM_CAP_SYNC_REGS`). Page operations take their arguments there
/// (`abi::devices`); other registers ignore them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgRegs {
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
}

/// A device on the bus. `offset` is relative to the base the device was inserted at.
pub trait BusDevice: Send {
    /// Fills `data` with the value of the register at `offset`; `args` are the guest's
    /// argument registers.
    fn read(&mut self, offset: u64, data: &mut [u8], args: ArgRegs);
    /// Writes `data` to the register at `offset`; may ask the VMM to stop the guest.
    fn write(&mut self, offset: u64, data: &[u8]) -> Option<GuestRequest>;
}

/// Why a device could not be inserted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error("device range {base:#x}+{len:#x} is empty or overlaps another device")]
    Overlap { base: u64, len: u64 },
}

struct Entry {
    base: u64,
    len: u64,
    name: &'static str,
    device: Box<dyn BusDevice>,
    /// Reads and writes that reached the device (each one a VM exit).
    accesses: u64,
}

/// The devices of one address space (ports or MMIO), sorted by base address.
#[derive(Default)]
pub struct Bus {
    entries: Vec<Entry>,
    /// Accesses that hit no device.
    pub unhandled: u64,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for e in &self.entries {
            list.entry(&format_args!("{} @ {:#x}+{:#x}", e.name, e.base, e.len));
        }
        list.finish()
    }
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `device` at `[base, base + len)`.
    pub fn insert(
        &mut self,
        base: u64,
        len: u64,
        name: &'static str,
        device: Box<dyn BusDevice>,
    ) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::Overlap { base, len })?;
        let at = self.entries.partition_point(|e| e.base < base);
        let overlaps_prev = at > 0 && self.entries[at - 1].base + self.entries[at - 1].len > base;
        let overlaps_next = at < self.entries.len() && self.entries[at].base < end;
        if overlaps_prev || overlaps_next {
            return Err(BusError::Overlap { base, len });
        }
        self.entries.insert(
            at,
            Entry {
                base,
                len,
                name,
                device,
                accesses: 0,
            },
        );
        Ok(())
    }

    /// The device holding `[addr, addr + size)` entirely, with the offset of `addr` in it.
    fn find(&mut self, addr: u64, size: usize) -> Option<(&mut Entry, u64)> {
        let at = self
            .entries
            .partition_point(|e| e.base <= addr)
            .checked_sub(1)?;
        let entry = &mut self.entries[at];
        let offset = addr - entry.base;
        let end = offset.checked_add(size as u64)?;
        (end <= entry.len).then_some((entry, offset))
    }

    /// Each device's name and how many accesses (VM exits) reached it.
    pub fn accesses(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.entries.iter().map(|e| (e.name, e.accesses))
    }

    /// Dispatches a read, with the guest's argument registers; an access no device claims
    /// reads as all ones.
    pub fn read(&mut self, addr: u64, data: &mut [u8], args: ArgRegs) {
        match self.find(addr, data.len()) {
            Some((entry, offset)) => {
                entry.accesses += 1;
                entry.device.read(offset, data, args);
            }
            None => {
                self.unhandled += 1;
                data.fill(0xff);
            }
        }
    }

    /// Dispatches a write; a write no device claims is dropped.
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Option<GuestRequest> {
        match self.find(addr, data.len()) {
            Some((entry, offset)) => {
                entry.accesses += 1;
                entry.device.write(offset, data)
            }
            None => {
                self.unhandled += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records accesses; a write of 0xee asks for power-off; a read returns the low byte
    /// of argument `a`.
    #[derive(Default, Clone)]
    struct Probe(Arc<Mutex<Vec<(char, u64, usize)>>>);

    impl BusDevice for Probe {
        fn read(&mut self, offset: u64, data: &mut [u8], args: ArgRegs) {
            self.0.lock().unwrap().push(('r', offset, data.len()));
            data.fill(args.a as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) -> Option<GuestRequest> {
            self.0.lock().unwrap().push(('w', offset, data.len()));
            (data[0] == 0xee).then_some(GuestRequest::PowerOff(7))
        }
    }

    #[test]
    fn routes_by_range_with_offsets() {
        let (a, b) = (Probe::default(), Probe::default());
        let mut bus = Bus::new();
        bus.insert(0x3f8, 8, "a", Box::new(a.clone())).unwrap();
        bus.insert(0x500, 8, "b", Box::new(b.clone())).unwrap();
        let mut byte = [0u8; 1];
        let args = ArgRegs {
            a: 0x42,
            ..ArgRegs::default()
        };
        bus.read(0x3fd, &mut byte, args);
        assert_eq!(byte, [0x42]);
        assert_eq!(
            bus.write(0x504, &[0xee, 0, 0, 0]),
            Some(GuestRequest::PowerOff(7))
        );
        assert_eq!(bus.write(0x500, &[1]), None);
        assert_eq!(*a.0.lock().unwrap(), vec![('r', 5, 1)]);
        assert_eq!(*b.0.lock().unwrap(), vec![('w', 4, 4), ('w', 0, 1)]);
        assert_eq!(bus.unhandled, 0);
        assert_eq!(bus.accesses().collect::<Vec<_>>(), vec![("a", 1), ("b", 2)]);
    }

    #[test]
    fn unclaimed_and_straddling_accesses() {
        let mut bus = Bus::new();
        bus.insert(0x100, 4, "a", Box::new(Probe::default()))
            .unwrap();
        let mut word = [0u8; 4];
        bus.read(0x80, &mut word, ArgRegs::default());
        assert_eq!(word, [0xff; 4]);
        // Starts inside the device but runs past its end: not the device's access.
        bus.read(0x102, &mut word, ArgRegs::default());
        assert_eq!(word, [0xff; 4]);
        assert_eq!(bus.write(0x104, &[0xee]), None);
        assert_eq!(bus.unhandled, 3);
    }

    #[test]
    fn rejects_overlaps_and_empty_ranges() {
        let mut bus = Bus::new();
        bus.insert(0x100, 0x10, "a", Box::new(Probe::default()))
            .unwrap();
        for (base, len) in [
            (0x100, 1),
            (0xf8, 0x10),
            (0x10f, 4),
            (0x90, 0x100),
            (0x200, 0),
            (u64::MAX, 2),
        ] {
            assert_eq!(
                bus.insert(base, len, "x", Box::new(Probe::default())),
                Err(BusError::Overlap { base, len }),
                "{base:#x}+{len:#x}"
            );
        }
        bus.insert(0x110, 1, "adjacent", Box::new(Probe::default()))
            .unwrap();
        bus.insert(0xff, 1, "adjacent below", Box::new(Probe::default()))
            .unwrap();
    }
}
