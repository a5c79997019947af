//! Which slots of the swap disk are in use, and by how many guest pages each (see
//! `abi::devices`: the system-control block's swap operations).
//!
//! A bitmap finds a free slot (searched a word at a time from a rotating cursor); a count
//! per slot tells how many pages hold it (one, or several when a page in swap is shared
//! copy-on-write). Every slot number comes from the guest: one out of range or not in use
//! is refused, never trusted.

/// The slots of one swap disk.
#[derive(Debug)]
pub struct SwapSlots {
    /// Bit `s % 64` of word `s / 64` is set while slot `s` is in use (and for the
    /// nonexistent slots past the end of the last word).
    used: Vec<u64>,
    /// Pages holding each slot; 0 for a free slot.
    holders: Vec<u32>,
    /// Word of `used` where the next search starts.
    cursor: usize,
    free: u64,
    peak: u64,
}

impl SwapSlots {
    /// `count` free slots.
    pub fn new(count: u64) -> Self {
        let len = usize::try_from(count).expect("swap slots fit the address space");
        let words = len.div_ceil(64);
        let mut used = vec![0u64; words];
        if !count.is_multiple_of(64) {
            used[words - 1] = !0u64 << (count % 64);
        }
        SwapSlots {
            used,
            holders: vec![0; len],
            cursor: 0,
            free: count,
            peak: 0,
        }
    }

    /// Slots on the disk.
    pub fn count(&self) -> u64 {
        self.holders.len() as u64
    }

    /// Slots no page holds.
    pub fn free(&self) -> u64 {
        self.free
    }

    /// Slots in use now.
    pub fn used(&self) -> u64 {
        self.count() - self.free
    }

    /// Most slots in use at once.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// A free slot, left free until [`SwapSlots::take`] (the page is written first); `None`
    /// if every slot is in use.
    pub fn find_free(&mut self) -> Option<u64> {
        if self.free == 0 {
            return None;
        }
        let words = self.used.len();
        (0..words)
            .map(|step| (self.cursor + step) % words)
            .find(|&w| self.used[w] != !0)
            .map(|w| {
                self.cursor = w;
                w as u64 * 64 + u64::from((!self.used[w]).trailing_zeros())
            })
    }

    /// Marks free slot `slot` (from [`SwapSlots::find_free`]) held by `holders` pages.
    pub fn take(&mut self, slot: u64, holders: u32) {
        let s = slot as usize;
        debug_assert!(self.holders[s] == 0 && holders > 0);
        self.used[s / 64] |= 1 << (s % 64);
        self.holders[s] = holders;
        self.free -= 1;
        self.peak = self.peak.max(self.used());
    }

    /// One more page holds `slot`; false (nothing changes) if it is not in use or its count
    /// is full.
    pub fn share(&mut self, slot: u64) -> bool {
        match self.holder_count(slot) {
            Some(n) if *n > 0 && *n < u32::MAX => {
                *n += 1;
                true
            }
            _ => false,
        }
    }

    /// One page fewer holds `slot`, which is free once none does; false (nothing changes)
    /// if it is not in use.
    pub fn release(&mut self, slot: u64) -> bool {
        let Some(n) = self.holder_count(slot).filter(|n| **n > 0) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            let s = slot as usize;
            self.used[s / 64] &= !(1 << (s % 64));
            self.free += 1;
        }
        true
    }

    fn holder_count(&mut self, slot: u64) -> Option<&mut u32> {
        self.holders.get_mut(usize::try_from(slot).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_shared_and_freed() {
        let mut s = SwapSlots::new(3);
        assert_eq!((s.count(), s.free(), s.used(), s.peak()), (3, 3, 0, 0));
        let a = s.find_free().unwrap();
        assert_eq!(s.find_free(), Some(a), "not taken until `take`");
        s.take(a, 1);
        let b = s.find_free().unwrap();
        s.take(b, 2);
        let c = s.find_free().unwrap();
        s.take(c, 1);
        assert_eq!(vec![a, b, c], vec![0, 1, 2]);
        assert_eq!((s.free(), s.peak()), (0, 3));
        assert_eq!(s.find_free(), None, "full");
        // Slot b has two holders: the first release keeps it.
        assert!(s.release(b));
        assert_eq!(s.free(), 0);
        assert!(s.release(b));
        assert_eq!(s.free(), 1);
        assert!(!s.release(b), "no longer in use");
        assert_eq!(s.find_free(), Some(b));
        assert!(s.share(a));
        assert!(s.release(a) && s.release(a));
        assert!(!s.share(a), "a free slot cannot be shared");
        assert_eq!((s.free(), s.used(), s.peak()), (2, 1, 3));
    }

    #[test]
    fn hostile_slot_numbers_are_refused() {
        let mut s = SwapSlots::new(70);
        for slot in [70, 127, 128, u64::MAX] {
            assert!(!s.share(slot) && !s.release(slot), "{slot}");
        }
        // Slots past the count in the last word are never handed out.
        for _ in 0..70 {
            let slot = s.find_free().unwrap();
            assert!(slot < 70);
            s.take(slot, 1);
        }
        assert_eq!(s.find_free(), None);
        assert_eq!(s.free(), 0);
    }

    #[test]
    fn search_starts_where_the_last_one_found_room() {
        let mut s = SwapSlots::new(200);
        for _ in 0..130 {
            let slot = s.find_free().unwrap();
            s.take(slot, 1);
        }
        assert!(s.release(3));
        // The cursor is on word 2 now; it wraps round to find slot 3 once word 2..3 is full.
        assert_eq!(s.find_free(), Some(130));
        for _ in 130..200 {
            let slot = s.find_free().unwrap();
            s.take(slot, 1);
        }
        assert_eq!(s.find_free(), Some(3));
        s.take(3, 1);
        assert_eq!(s.find_free(), None);
        assert!(s.release(3) && !s.release(3));
    }
}
