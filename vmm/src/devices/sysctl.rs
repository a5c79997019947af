//! The system-control block (see `abi::devices`): power-off, the kernel's panic report,
//! console output from the console page, and page operations: clearing and copying guest
//! pages, and the swap disk's slots (which are in use, and moving pages between guest
//! memory and the swap disk's file), for the kernel.

use abi::devices::{
    DIAGNOSTIC_MAX, EVICT_FILL_FAILED, EVICT_MAX_SLOTS, MAP_WRITABLE, MAX_SWAP_SLOTS, PAGE_OP_DONE,
    PAGE_OP_FAILED, PAGE_OP_MAPPED_NEW, PAGE_OP_NOT_MAPPED, PAGE_OP_SWAP_FULL, PANIC_MESSAGE_MAX,
    PTE_LISTED, SYSCTL_CONSOLE, SYSCTL_DEBUG_STOP, SYSCTL_DIAGNOSTIC, SYSCTL_EVICT_SWAP_IN_MAP,
    SYSCTL_EVICT_ZERO_MAP, SYSCTL_EXIT, SYSCTL_PAGE_COPY, SYSCTL_PAGE_MAP, SYSCTL_PAGE_ZERO,
    SYSCTL_PANIC, SYSCTL_SWAP_DROP, SYSCTL_SWAP_FREE, SYSCTL_SWAP_IN, SYSCTL_SWAP_IN_MAP,
    SYSCTL_SWAP_OUT, SYSCTL_SWAP_SHARE, SYSCTL_ZERO_LIST, SYSCTL_ZERO_MAP, ZERO_LIST_MAX,
};
use abi::fs::SECTORS_PER_BLOCK;
use abi::stats::StatsPage;
use std::fs::File;
use std::io::Write;
use std::mem::offset_of;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use abi::layout::{CONSOLE_PAGE_GPA, KERN_BASE, PAGE_SIZE, PANIC_PAGE_GPA, STATS_PAGE_GPA};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};

use super::GuestRequest;
use super::bus::{ArgRegs, BusDevice};
use super::swap_slots::SwapSlots;
use crate::arch::x86_64::page_tables::{
    PTE_ADDR_MASK, PTE_HUGE, PTE_PRESENT, PTE_USER, PTE_WRITABLE,
};
use crate::stats::PageOpCounters;

/// The system-control registers. Holds guest memory to read the panic and console pages
/// and to do page operations.
pub struct SysCtl {
    memory: GuestMemoryMmap,
    /// Where console text goes (shared with the UART).
    console: Box<dyn Write + Send>,
    /// Where the kernel's diagnostics go (`SYSCTL_DIAGNOSTIC`): nowhere unless
    /// [`SysCtl::with_diagnostics`] says.
    diagnostics: Box<dyn Write + Send>,
    /// The swap disk's file (the same one the virtio device serves) and its slots.
    swap: Option<Swap>,
    /// Operations done, by kind.
    counters: Arc<PageOpCounters>,
}

struct Swap {
    file: File,
    slots: SwapSlots,
}

impl SysCtl {
    /// A block that reads panic reports and console text from `memory` (the text goes to
    /// `console`) and keeps the slots of the swap disk file `swap`, if any, moving pages
    /// between it and `memory`. Sets the stats page's `swap_slots_total`.
    pub fn new(
        memory: GuestMemoryMmap,
        console: Box<dyn Write + Send>,
        swap: Option<File>,
    ) -> Self {
        let swap = swap.and_then(|file| {
            let slots = (file.metadata().ok()?.len() / PAGE_SIZE).min(MAX_SWAP_SLOTS);
            Some(Swap {
                file,
                slots: SwapSlots::new(slots),
            })
        });
        let device = SysCtl {
            memory,
            console,
            diagnostics: Box::new(std::io::sink()),
            swap,
            counters: Arc::default(),
        };
        let total = device.swap.as_ref().map_or(0, |s| s.slots.count());
        device.set_stat(offset_of!(StatsPage, swap_slots_total), total);
        device
    }

    /// The page-operation counters (shared: readable while the guest runs).
    pub fn counters(&self) -> Arc<PageOpCounters> {
        Arc::clone(&self.counters)
    }
}

/// Whether `register` is a page operation's (a 32-bit read).
fn is_page_op(register: u16) -> bool {
    matches!(
        register,
        SYSCTL_PAGE_ZERO
            | SYSCTL_PAGE_COPY
            | SYSCTL_SWAP_OUT
            | SYSCTL_SWAP_IN
            | SYSCTL_SWAP_SHARE
            | SYSCTL_SWAP_DROP
            | SYSCTL_SWAP_FREE
            | SYSCTL_PAGE_MAP
            | SYSCTL_ZERO_MAP
            | SYSCTL_SWAP_IN_MAP
            | SYSCTL_ZERO_LIST
            | SYSCTL_EVICT_ZERO_MAP
            | SYSCTL_EVICT_SWAP_IN_MAP
    )
}

impl BusDevice for SysCtl {
    fn read(&mut self, offset: u64, data: &mut [u8], args: ArgRegs) {
        match u16::try_from(offset) {
            Ok(register) if is_page_op(register) => {
                if data.len() == 4 {
                    data.copy_from_slice(&self.page_op(register, args).to_le_bytes());
                } else {
                    data.fill(0xff);
                }
            }
            // Write-only registers.
            _ => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Option<GuestRequest> {
        let value: [u8; 4] = data.try_into().ok()?;
        match u16::try_from(offset).ok()? {
            SYSCTL_EXIT => Some(GuestRequest::PowerOff(i32::from_le_bytes(value))),
            SYSCTL_PANIC => {
                let mut page = vec![0u8; 8 + PANIC_MESSAGE_MAX];
                let message = match self
                    .memory
                    .read_slice(&mut page, GuestAddress(PANIC_PAGE_GPA))
                {
                    Ok(()) => panic_message(&page),
                    Err(_) => "(the panic page is outside guest memory)".to_string(),
                };
                Some(GuestRequest::Panic(message))
            }
            SYSCTL_CONSOLE => {
                self.console_write(u32::from_le_bytes(value));
                None
            }
            SYSCTL_DIAGNOSTIC => {
                self.diagnostic(u32::from_le_bytes(value));
                None
            }
            SYSCTL_DEBUG_STOP => self
                .memory
                .read_obj::<u64>(GuestAddress(CONSOLE_PAGE_GPA))
                .ok()
                .map(GuestRequest::DebugStop),
            _ => None,
        }
    }
}

impl SysCtl {
    /// Sends the kernel's diagnostics (`SYSCTL_DIAGNOSTIC`) to `out` (the VMM's stderr).
    pub fn with_diagnostics(mut self, out: Box<dyn Write + Send>) -> Self {
        self.diagnostics = out;
        self
    }

    /// Writes the first `len` bytes of the console page (at most `DIAGNOSTIC_MAX`) as one
    /// line `vmm: guest: TEXT`, after the console text so far. The text is the guest's: it
    /// is made one printable line as a panic message is ([`one_line`]), so it cannot forge
    /// lines or move the terminal's cursor.
    fn diagnostic(&mut self, len: u32) {
        let mut text = [0u8; DIAGNOSTIC_MAX];
        let text = &mut text[..(len as usize).min(DIAGNOSTIC_MAX)];
        if self
            .memory
            .read_slice(text, GuestAddress(CONSOLE_PAGE_GPA))
            .is_err()
        {
            return;
        }
        let line = one_line(text);
        let _ = self.console.flush();
        let _ = writeln!(self.diagnostics, "vmm: guest: {line}")
            .and_then(|()| self.diagnostics.flush());
    }

    /// Writes the first `len` bytes of the console page (at most a page) to the console.
    fn console_write(&mut self, len: u32) {
        let mut text = [0u8; PAGE_SIZE as usize];
        let text = &mut text[..(len as usize).min(PAGE_SIZE as usize)];
        if self
            .memory
            .read_slice(text, GuestAddress(CONSOLE_PAGE_GPA))
            .is_ok()
        {
            // A closed stdout (say, the reader of a pipe went away) must not stop the guest.
            let _ = self
                .console
                .write_all(text)
                .and_then(|()| self.console.flush());
        }
    }

    /// Does the page operation of `register` with the arguments the guest passed in its
    /// registers, and its map request if it has one; returns its result. Every argument is
    /// the guest's: anything but whole RAM pages (distinct, for a copy), a slot in use and a
    /// known operation is refused.
    fn page_op(&mut self, register: u16, ArgRegs { a, b, c, d }: ArgRegs) -> u32 {
        if matches!(register, SYSCTL_EVICT_ZERO_MAP | SYSCTL_EVICT_SWAP_IN_MAP) {
            return self.evict_then_fill(register, ArgRegs { a, b, c, d });
        }
        let (result, counter) = match register {
            SYSCTL_PAGE_ZERO | SYSCTL_ZERO_MAP => (self.zero(a), Some(&self.counters.zero)),
            SYSCTL_PAGE_COPY => (self.copy(a, b), Some(&self.counters.copy)),
            SYSCTL_ZERO_LIST => (self.zero_list(a, b), None),
            SYSCTL_SWAP_OUT => (self.swap_out(a, b), Some(&self.counters.swap_out)),
            SYSCTL_SWAP_IN | SYSCTL_SWAP_IN_MAP => {
                (self.swap_in(a, b), Some(&self.counters.swap_in))
            }
            SYSCTL_SWAP_SHARE => (self.swap_slots(|s| s.share(a)), None),
            SYSCTL_SWAP_DROP => (self.swap_slots(|s| s.release(a)), None),
            SYSCTL_SWAP_FREE => {
                let free = self.swap.as_ref().map_or(0, |s| s.slots.free());
                (free as u32, None)
            }
            SYSCTL_PAGE_MAP => match self.page(a) {
                Some(_) => (PAGE_OP_DONE, None),
                None => (PAGE_OP_FAILED, None),
            },
            _ => (PAGE_OP_FAILED, None),
        };
        let counter = match result {
            PAGE_OP_FAILED => Some(&self.counters.failed),
            // Nothing moved.
            PAGE_OP_SWAP_FULL if register == SYSCTL_SWAP_OUT => None,
            _ => counter,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let maps = matches!(
            register,
            SYSCTL_PAGE_MAP | SYSCTL_ZERO_MAP | SYSCTL_SWAP_IN_MAP
        );
        if result == PAGE_OP_DONE && maps {
            return self.map(a, c, d);
        }
        result
    }

    /// `SYSCTL_EVICT_ZERO_MAP` and `SYSCTL_EVICT_SWAP_IN_MAP`: `SYSCTL_SWAP_OUT` of page `a`
    /// (one holder), then `SYSCTL_ZERO_MAP` or `SYSCTL_SWAP_IN_MAP` with the same
    /// arguments, each counted as on its own; the slot and the map's result in one value
    /// (`abi::devices::evicted_slot`).
    fn evict_then_fill(&mut self, register: u16, args: ArgRegs) -> u32 {
        if self.swap.as_ref().map_or(0, |s| s.slots.count()) > EVICT_MAX_SLOTS {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            return PAGE_OP_FAILED;
        }
        let out = ArgRegs { b: 1, ..args };
        let slot = self.page_op(SYSCTL_SWAP_OUT, out);
        if slot == PAGE_OP_FAILED || slot == PAGE_OP_SWAP_FULL {
            return slot;
        }
        let fill = if register == SYSCTL_EVICT_ZERO_MAP {
            SYSCTL_ZERO_MAP
        } else {
            SYSCTL_SWAP_IN_MAP
        };
        match self.page_op(fill, args) {
            PAGE_OP_FAILED => slot << 2 | EVICT_FILL_FAILED,
            mapped => slot << 2 | mapped,
        }
    }

    /// Carries out a map request (`abi::devices`): page `page` (RAM, checked by the caller)
    /// at the user address in `request` (bit 0: writable), in the address space whose PML4
    /// is page `root`. Every value is the guest's: a walk that leaves RAM or meets a missing
    /// or huge table, or a leaf entry in use, maps nothing.
    fn map(&self, page: u64, request: u64, root: u64) -> u32 {
        let va = request & !(PAGE_SIZE - 1);
        let Some(at) = (va < KERN_BASE)
            .then(|| self.leaf_entry(root, va))
            .flatten()
        else {
            return PAGE_OP_NOT_MAPPED;
        };
        let old = match self.memory.load::<u64>(at, Ordering::Relaxed) {
            Ok(old) if old == 0 || old == PTE_LISTED => old,
            _ => return PAGE_OP_NOT_MAPPED,
        };
        let mut entry = (page * PAGE_SIZE) | PTE_PRESENT | PTE_USER | PTE_LISTED;
        if request & MAP_WRITABLE != 0 {
            entry |= PTE_WRITABLE;
        }
        // One aligned store: the entry goes from not present to present, so no TLB holds
        // it, and the vCPU is stopped in this exit.
        if self.memory.store(entry, at, Ordering::Relaxed).is_err() {
            return PAGE_OP_NOT_MAPPED;
        }
        self.counters.map.fetch_add(1, Ordering::Relaxed);
        if old == 0 {
            PAGE_OP_MAPPED_NEW
        } else {
            PAGE_OP_DONE
        }
    }

    /// The guest-physical address of the leaf entry for user address `va` in the page
    /// tables rooted at page `root`, if every table on the way is present, user-accessible
    /// and not a huge page.
    fn leaf_entry(&self, root: u64, va: u64) -> Option<GuestAddress> {
        let mut table = root.checked_mul(PAGE_SIZE)?;
        for level in [4, 3, 2] {
            let index = (va >> (12 + 9 * (level - 1))) & 0x1ff;
            let entry = self
                .memory
                .load::<u64>(GuestAddress(table + index * 8), Ordering::Relaxed)
                .ok()?;
            if entry & (PTE_PRESENT | PTE_USER) != PTE_PRESENT | PTE_USER || entry & PTE_HUGE != 0 {
                return None;
            }
            table = entry & PTE_ADDR_MASK;
        }
        Some(GuestAddress(table + ((va >> 12) & 0x1ff) * 8))
    }

    /// Guest page number `n` as a slice of guest memory, if it is all RAM.
    fn page(&self, n: u64) -> Option<VolatileSlice<'_, vm_memory::bitmap::BS<'_, ()>>> {
        let gpa = n.checked_mul(PAGE_SIZE)?;
        self.memory
            .get_slice(GuestAddress(gpa), PAGE_SIZE as usize)
            .ok()
    }

    fn zero(&self, dst: u64) -> u32 {
        match self.page(dst) {
            Some(to) => {
                to.copy_from(&[0u8; PAGE_SIZE as usize]);
                PAGE_OP_DONE
            }
            None => PAGE_OP_FAILED,
        }
    }

    /// Clears the `count` pages listed at the start of page `list` (`SYSCTL_ZERO_LIST`),
    /// all or none: each listed page must be RAM.
    fn zero_list(&self, list: u64, count: u64) -> u32 {
        let Some(listed) = self.page(list) else {
            return PAGE_OP_FAILED;
        };
        if count > ZERO_LIST_MAX {
            return PAGE_OP_FAILED;
        }
        let mut raw = [0u8; 4 * ZERO_LIST_MAX as usize];
        let raw = &mut raw[..4 * count as usize];
        listed.copy_to(raw);
        let mut pages = Vec::with_capacity(count as usize);
        for n in raw.chunks_exact(4) {
            let n = u32::from_le_bytes(n.try_into().expect("4 bytes"));
            match self.page(u64::from(n)) {
                Some(page) => pages.push(page),
                None => return PAGE_OP_FAILED,
            }
        }
        for page in pages {
            page.copy_from(&[0u8; PAGE_SIZE as usize]);
        }
        self.counters.zero.fetch_add(count, Ordering::Relaxed);
        PAGE_OP_DONE
    }

    fn copy(&self, dst: u64, src: u64) -> u32 {
        match (self.page(dst), self.page(src)) {
            (Some(to), Some(from)) if dst != src => {
                from.copy_to_volatile_slice(to);
                PAGE_OP_DONE
            }
            _ => PAGE_OP_FAILED,
        }
    }

    /// Writes page `src` to a free slot held by `holders` pages; the slot, or why not.
    fn swap_out(&mut self, src: u64, holders: u64) -> u32 {
        let mut bounce = [0u8; PAGE_SIZE as usize];
        match self.page(src) {
            Some(from) => from.copy_to(&mut bounce[..]),
            None => return PAGE_OP_FAILED,
        };
        let (Some(swap), Some(holders)) = (
            self.swap.as_mut(),
            u32::try_from(holders).ok().filter(|&h| h > 0),
        ) else {
            return PAGE_OP_FAILED;
        };
        let Some(slot) = swap.slots.find_free() else {
            return PAGE_OP_SWAP_FULL;
        };
        if let Err(error) = swap.file.write_all_at(&bounce, slot * PAGE_SIZE) {
            self.counters.swap_failed("a write", &error);
            return PAGE_OP_FAILED;
        }
        swap.slots.take(slot, holders);
        self.count_transfer(offset_of!(StatsPage, swap_writes));
        self.publish_slots();
        slot as u32
    }

    /// Reads `slot` into page `dst`; the page no longer holds the slot, also if the read
    /// fails (the kernel then ends the process, whose page no longer names the slot).
    fn swap_in(&mut self, dst: u64, slot: u64) -> u32 {
        let Some(swap) = self.swap.as_mut() else {
            return PAGE_OP_FAILED;
        };
        if !swap.slots.release(slot) {
            return PAGE_OP_FAILED;
        }
        let mut bounce = [0u8; PAGE_SIZE as usize];
        let read = swap.file.read_exact_at(&mut bounce, slot * PAGE_SIZE);
        if let Err(error) = &read {
            self.counters.swap_failed("a read", error);
        }
        let result = match (read, self.page(dst)) {
            (Ok(()), Some(to)) => {
                to.copy_from(&bounce);
                self.count_transfer(offset_of!(StatsPage, swap_reads));
                PAGE_OP_DONE
            }
            _ => PAGE_OP_FAILED,
        };
        self.publish_slots();
        result
    }

    /// Runs `change` on the slots (share or release one); done if it did.
    fn swap_slots(&mut self, change: impl FnOnce(&mut SwapSlots) -> bool) -> u32 {
        let changed = self
            .swap
            .as_mut()
            .is_some_and(|swap| change(&mut swap.slots));
        if !changed {
            return PAGE_OP_FAILED;
        }
        self.publish_slots();
        PAGE_OP_DONE
    }

    /// Counts one page moved to or from swap on the stats page (`pages`: the offset of
    /// `swap_reads` or `swap_writes`).
    fn count_transfer(&self, pages: usize) {
        self.add_stat(pages, 1);
        self.add_stat(offset_of!(StatsPage, swap_disk_requests), 1);
        self.add_stat(offset_of!(StatsPage, swap_disk_sectors), SECTORS_PER_BLOCK);
    }

    /// Writes the slots in use now, and the most at once, to the stats page.
    fn publish_slots(&self) {
        if let Some(swap) = &self.swap {
            self.set_stat(offset_of!(StatsPage, swap_slots_used), swap.slots.used());
            self.set_stat(offset_of!(StatsPage, swap_slots_peak), swap.slots.peak());
        }
    }

    /// Adds `n` to the stats page's counter at `offset`. The vCPU is stopped in this exit,
    /// so the kernel does not update the page meanwhile.
    fn add_stat(&self, offset: usize, n: u64) {
        let at = GuestAddress(STATS_PAGE_GPA + offset as u64);
        if let Ok(v) = self.memory.load::<u64>(at, Ordering::Relaxed) {
            let _ = self.memory.store(v.wrapping_add(n), at, Ordering::Relaxed);
        }
    }

    /// Sets the stats page's field at `offset` (one aligned store: readers never see it
    /// torn).
    fn set_stat(&self, offset: usize, value: u64) {
        let at = GuestAddress(STATS_PAGE_GPA + offset as u64);
        let _ = self.memory.store(value, at, Ordering::Relaxed);
    }
}

/// Decodes a panic page (`abi::devices::PanicReport`) into one printable line. The page is
/// guest data: the length is clamped, invalid UTF-8 becomes U+FFFD, and control characters
/// (newlines included) become spaces so the report stays on its line; trailing blanks go.
pub fn panic_message(page: &[u8]) -> String {
    let Some((header, body)) = page.split_at_checked(8) else {
        return String::new();
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    one_line(&body[..len.min(PANIC_MESSAGE_MAX).min(body.len())])
}

/// Guest text as one printable line: invalid UTF-8 becomes U+FFFD, control characters
/// (newlines and escapes included) become spaces, trailing blanks go.
fn one_line(text: &[u8]) -> String {
    let line: String = String::from_utf8_lossy(text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::devices::evicted_slot;

    fn page(len: u32, text: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 8 + PANIC_MESSAGE_MAX];
        p[..4].copy_from_slice(&len.to_le_bytes());
        p[8..8 + text.len()].copy_from_slice(text);
        p
    }

    #[test]
    fn decodes_message() {
        assert_eq!(panic_message(&page(5, b"boom!")), "boom!");
        assert_eq!(panic_message(&page(2, b"boom!")), "bo");
        assert_eq!(panic_message(&page(0, b"boom!")), "");
    }

    #[test]
    fn hostile_pages_stay_one_line() {
        assert_eq!(panic_message(&page(6, b"a\nb\x1bc\xff")), "a b c\u{fffd}");
        // The length is clamped to the page; the zero padding becomes spaces, then trimmed.
        assert_eq!(panic_message(&page(u32::MAX, &[b'x'; 10])), "x".repeat(10));
        assert_eq!(panic_message(&[1, 2, 3]), "");
    }

    #[test]
    fn registers() {
        let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        memory
            .write_slice(&page(3, b"bad"), GuestAddress(PANIC_PAGE_GPA))
            .unwrap();
        let mut dev = SysCtl::new(memory, Box::new(std::io::sink()), None);
        assert_eq!(
            dev.write(0, &(-1i32).to_le_bytes()),
            Some(GuestRequest::PowerOff(-1))
        );
        assert_eq!(
            dev.write(4, &[0; 4]),
            Some(GuestRequest::Panic("bad".into()))
        );
        assert_eq!(dev.write(0, &[1]), None, "narrow writes are ignored");
        assert_eq!(dev.write(2, &[0; 4]), None, "no register at offset 2");
    }

    /// A writer whose bytes the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn diagnostics_are_one_clean_line_on_their_own_stream() {
        let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let (console, diagnostics) = (Captured::default(), Captured::default());
        let mut dev = SysCtl::new(memory.clone(), Box::new(console.clone()), None)
            .with_diagnostics(Box::new(diagnostics.clone()));
        memory
            .write_slice(&[b'x'; 4096], GuestAddress(CONSOLE_PAGE_GPA))
            .unwrap();
        memory
            .write_slice(b"load: x: bad\n\x1b[2Jfake", GuestAddress(CONSOLE_PAGE_GPA))
            .unwrap();
        let register = u64::from(SYSCTL_DIAGNOSTIC);
        assert_eq!(dev.write(register, &21u32.to_le_bytes()), None);
        // A count past the limit is clamped, not trusted.
        assert_eq!(dev.write(register, &u32::MAX.to_le_bytes()), None);
        let text = String::from_utf8(diagnostics.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "vmm: guest: load: x: bad  [2Jfake");
        assert_eq!(lines[1].len(), "vmm: guest: ".len() + DIAGNOSTIC_MAX);
        assert_eq!(lines.len(), 2);
        assert!(
            console.0.lock().unwrap().is_empty(),
            "nothing on the console"
        );
    }

    #[test]
    fn console_text_keeps_order_with_the_uart() {
        use crate::devices::serial::{ConsoleOut, SerialDevice};
        let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let captured = Captured::default();
        let out = ConsoleOut::new(Box::new(captured.clone()));
        let irq = vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let mut uart = SerialDevice::new(irq, out.clone());
        let mut dev = SysCtl::new(memory.clone(), Box::new(out), None);
        let console = |dev: &mut SysCtl, len: u32| {
            assert_eq!(
                dev.write(u64::from(SYSCTL_CONSOLE), &len.to_le_bytes()),
                None
            );
        };
        memory
            .write_slice(b"bcd\n", GuestAddress(CONSOLE_PAGE_GPA))
            .unwrap();
        uart.write(0, b"a");
        console(&mut dev, 4);
        uart.write(0, b"e");
        console(&mut dev, 2);
        console(&mut dev, 0);
        assert_eq!(captured.0.lock().unwrap().as_slice(), b"abcd\nebc");
        // A hostile count is clamped to the page.
        memory
            .write_slice(&[b'x'; 4096], GuestAddress(CONSOLE_PAGE_GPA))
            .unwrap();
        captured.0.lock().unwrap().clear();
        console(&mut dev, u32::MAX);
        assert_eq!(captured.0.lock().unwrap().as_slice(), [b'x'; 4096]);
    }

    /// Reads `register` with arguments `a` and `b` and returns the result.
    fn page_op(dev: &mut SysCtl, register: u16, a: u64, b: u64) -> u32 {
        page_op_map(dev, register, a, b, 0, 0)
    }

    /// Guest memory of 64 KiB with a stats page set up (a device writes it).
    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap()
    }

    fn stat(memory: &GuestMemoryMmap, name: &str) -> u64 {
        let field = &abi::stats::FIELDS[abi::stats::field_index(name).unwrap()];
        memory
            .read_obj(GuestAddress(STATS_PAGE_GPA + field.offset as u64))
            .unwrap()
    }

    #[test]
    fn page_operations() {
        let memory = memory();
        let mut dev = SysCtl::new(memory.clone(), Box::new(std::io::sink()), None);
        let byte = |gpa: u64| memory.read_obj::<u8>(GuestAddress(gpa)).unwrap();
        memory
            .write_slice(&[7u8; 4096], GuestAddress(0x8000))
            .unwrap();
        memory
            .write_slice(&[9u8; 4096], GuestAddress(0x9000))
            .unwrap();
        assert_eq!(page_op(&mut dev, SYSCTL_PAGE_COPY, 0xa, 0x8), PAGE_OP_DONE);
        assert_eq!((byte(0xa000), byte(0xafff), byte(0xb000)), (7, 7, 0));
        assert_eq!(page_op(&mut dev, SYSCTL_PAGE_ZERO, 0x9, 0), PAGE_OP_DONE);
        assert_eq!((byte(0x8fff), byte(0x9000), byte(0x9fff)), (7, 0, 0));
        // Hostile arguments do nothing (and do not panic), and are reported failed.
        memory
            .write_slice(&[5u8; 4096], GuestAddress(0x9000))
            .unwrap();
        for (register, a, b) in [
            (SYSCTL_PAGE_ZERO, 0x10, 0),
            (SYSCTL_PAGE_ZERO, 0xffff_ffff, 0),
            // Whole registers: a page number whose address does not fit in 64 bits.
            (SYSCTL_PAGE_ZERO, 1 << 52, 0),
            (SYSCTL_PAGE_ZERO, u64::MAX, 0),
            (SYSCTL_PAGE_COPY, 0x9, u64::MAX),
            (SYSCTL_PAGE_COPY, 0x9, 0x10),
            (SYSCTL_PAGE_COPY, 0x10, 0x9),
            (SYSCTL_PAGE_COPY, 0x9, 0x9),
            // No swap disk.
            (SYSCTL_SWAP_IN, 0x9, 0),
            (SYSCTL_SWAP_OUT, 0x9, 1),
            (SYSCTL_SWAP_SHARE, 0, 0),
            (SYSCTL_SWAP_DROP, 0, 0),
        ] {
            assert_eq!(
                page_op(&mut dev, register, a, b),
                PAGE_OP_FAILED,
                "{register} {a:#x} {b:#x}"
            );
        }
        assert_eq!(page_op(&mut dev, SYSCTL_SWAP_FREE, 0, 0), 0);
        assert_eq!((byte(0x9000), byte(0x9fff)), (5, 5));
        // A narrow read of a page-operation register does nothing and reads all ones;
        // other registers read as zero.
        let mut narrow = [0u8; 2];
        dev.read(
            u64::from(SYSCTL_PAGE_ZERO),
            &mut narrow,
            ArgRegs {
                a: 0x9,
                ..ArgRegs::default()
            },
        );
        assert_eq!(narrow, [0xff; 2]);
        assert_eq!(page_op(&mut dev, SYSCTL_EXIT, 0x9, 0), 0);
        assert_eq!(page_op(&mut dev, 8, 0x9, 0), 0);
        assert_eq!(byte(0x9000), 5);
        let counters = dev.counters();
        assert_eq!(counters.copy.load(Ordering::Relaxed), 1);
        assert_eq!(counters.zero.load(Ordering::Relaxed), 1);
        assert_eq!(counters.failed.load(Ordering::Relaxed), 12);
    }

    /// A zero list clears every page it lists, or none if one is not RAM.
    #[test]
    fn zero_list_clears_all_or_nothing() {
        let memory = memory();
        let mut dev = SysCtl::new(memory.clone(), Box::new(std::io::sink()), None);
        let byte = |gpa: u64| memory.read_obj::<u8>(GuestAddress(gpa)).unwrap();
        for page in [0x8u64, 0x9, 0xa] {
            memory
                .write_slice(&[7u8; 4096], GuestAddress(page * PAGE_SIZE))
                .unwrap();
        }
        let list = |pages: &[u32]| {
            let bytes: Vec<u8> = pages.iter().flat_map(|n| n.to_le_bytes()).collect();
            memory.write_slice(&bytes, GuestAddress(0xb000)).unwrap();
        };
        list(&[0x8, 0xa]);
        assert_eq!(page_op(&mut dev, SYSCTL_ZERO_LIST, 0xb, 2), PAGE_OP_DONE);
        assert_eq!((byte(0x8000), byte(0x8fff)), (0, 0));
        assert_eq!((byte(0x9000), byte(0xa000), byte(0xafff)), (7, 0, 0));
        memory
            .write_slice(&[7u8; 4096], GuestAddress(0x8000))
            .unwrap();
        // Hostile lists and arguments: nothing cleared.
        list(&[0x8, 0xffff_ffff]);
        assert_eq!(page_op(&mut dev, SYSCTL_ZERO_LIST, 0xb, 2), PAGE_OP_FAILED);
        list(&[0x8, 0x10]);
        assert_eq!(page_op(&mut dev, SYSCTL_ZERO_LIST, 0xb, 2), PAGE_OP_FAILED);
        assert_eq!(
            page_op(&mut dev, SYSCTL_ZERO_LIST, 0xb, ZERO_LIST_MAX + 1),
            PAGE_OP_FAILED
        );
        assert_eq!(page_op(&mut dev, SYSCTL_ZERO_LIST, 0x10, 1), PAGE_OP_FAILED);
        assert_eq!(
            page_op(&mut dev, SYSCTL_ZERO_LIST, u64::MAX, 1),
            PAGE_OP_FAILED
        );
        assert_eq!(byte(0x8000), 7);
        assert_eq!(page_op(&mut dev, SYSCTL_ZERO_LIST, 0xb, 0), PAGE_OP_DONE);
        assert_eq!(dev.counters().zero.load(Ordering::Relaxed), 2);
    }

    /// Reads `register` with arguments `a` and `b` and the map request `va` (with
    /// [`MAP_WRITABLE`]) in the tables rooted at page `root`.
    fn page_op_map(dev: &mut SysCtl, register: u16, a: u64, b: u64, va: u64, root: u64) -> u32 {
        let mut result = [0u8; 4];
        let args = ArgRegs {
            a,
            b,
            c: va,
            d: root,
        };
        dev.read(u64::from(register), &mut result, args);
        u32::from_le_bytes(result)
    }

    #[test]
    fn map_requests() {
        const P: u64 = PTE_PRESENT | PTE_USER | PTE_WRITABLE;
        // Tables at pages 0xa (PML4), 0xb, 0xc, 0xd (PT) for user address 0x40_0000.
        const VA: u64 = 0x40_0000;
        let memory = memory();
        let mut dev = SysCtl::new(memory.clone(), Box::new(std::io::sink()), None);
        let entry = |gpa: u64| memory.read_obj::<u64>(GuestAddress(gpa)).unwrap();
        let set = |gpa: u64, value: u64| memory.write_obj(value, GuestAddress(gpa)).unwrap();
        // No tables yet: nothing is mapped, and the kernel is told to map it itself.
        let w = MAP_WRITABLE;
        assert_eq!(
            page_op_map(&mut dev, SYSCTL_PAGE_MAP, 0x8, 0, VA | w, 0xa),
            PAGE_OP_NOT_MAPPED
        );
        set(0xa000, 0xb000 | P);
        set(0xb000, 0xc000 | P);
        set(0xc000 + 2 * 8, 0xd000 | P);
        assert_eq!(
            page_op_map(&mut dev, SYSCTL_PAGE_MAP, 0x8, 0, VA | w, 0xa),
            PAGE_OP_MAPPED_NEW
        );
        assert_eq!(entry(0xd000), 0x8000 | P | PTE_LISTED);
        // An entry in use is never changed.
        assert_eq!(
            page_op_map(&mut dev, SYSCTL_PAGE_MAP, 0x9, 0, VA, 0xa),
            PAGE_OP_NOT_MAPPED
        );
        assert_eq!(entry(0xd000), 0x8000 | P | PTE_LISTED);
        // An evicted page's entry (the listed bit alone), cleared and mapped read-only.
        set(0xd008, PTE_LISTED);
        memory
            .write_slice(&[5u8; 4096], GuestAddress(0x9000))
            .unwrap();
        assert_eq!(
            page_op_map(&mut dev, SYSCTL_ZERO_MAP, 0x9, 0, VA + 0x1000, 0xa),
            PAGE_OP_DONE
        );
        assert_eq!(entry(0xd008), 0x9000 | PTE_PRESENT | PTE_USER | PTE_LISTED);
        assert_eq!(memory.read_obj::<u8>(GuestAddress(0x9fff)).unwrap(), 0);
        // A plain fill ignores the map registers.
        set(0xd010, PTE_LISTED);
        assert_eq!(
            page_op_map(&mut dev, SYSCTL_PAGE_ZERO, 0x9, 0, VA + 0x2000, 0xa),
            PAGE_OP_DONE
        );
        assert_eq!(entry(0xd010), PTE_LISTED);
        // Hostile requests map nothing: a kernel address, a root or a table outside RAM,
        // a table without the user bit, a huge page on the way, a page that is not RAM.
        let before: Vec<u64> = (0..4).map(|i| entry(0xd000 + 8 * i)).collect();
        for (page, va, root) in [
            (0x9, KERN_BASE | w, 0xa),
            (0x9, VA + 0x2000, u64::MAX),
            (0x9, VA + 0x2000, 0x100),
        ] {
            assert_eq!(
                page_op_map(&mut dev, SYSCTL_PAGE_MAP, page, 0, va, root),
                PAGE_OP_NOT_MAPPED,
                "{va:#x} {root:#x}"
            );
        }
        set(0xc000 + 2 * 8, 0x10_0000 | P);
        assert_eq!(
            page_op_map(&mut dev, SYSCTL_PAGE_MAP, 0x9, 0, VA + 0x2000, 0xa),
            PAGE_OP_NOT_MAPPED
        );
        for bad in [0xd000 | PTE_PRESENT | PTE_WRITABLE, 0xd000 | P | PTE_HUGE] {
            set(0xc000 + 2 * 8, bad);
            assert_eq!(
                page_op_map(&mut dev, SYSCTL_PAGE_MAP, 0x9, 0, VA + 0x2000, 0xa),
                PAGE_OP_NOT_MAPPED
            );
        }
        set(0xc000 + 2 * 8, 0xd000 | P);
        assert_eq!(
            page_op_map(&mut dev, SYSCTL_PAGE_MAP, 0x10, 0, VA + 0x2000, 0xa),
            PAGE_OP_FAILED
        );
        assert_eq!(
            (0..4).map(|i| entry(0xd000 + 8 * i)).collect::<Vec<_>>(),
            before
        );
        assert_eq!(dev.counters().map.load(Ordering::Relaxed), 2);
    }

    /// An eviction and a fill in one operation: the page goes to a free slot, then the
    /// frame is cleared (or filled from another slot) and mapped; the result carries both.
    /// With swap full nothing happens.
    #[test]
    fn eviction_rides_on_the_fill() {
        let dir = crate::testutil::TempDir::new("sysctl-evict");
        let file = dir.sparse_file("swap", 2 * PAGE_SIZE);
        let path = dir.join("swap");
        let memory = memory();
        let mut dev = SysCtl::new(memory.clone(), Box::new(std::io::sink()), Some(file));
        let byte = |gpa: u64| memory.read_obj::<u8>(GuestAddress(gpa)).unwrap();
        let table = |gpa: u64, value: u64| memory.write_obj(value, GuestAddress(gpa)).unwrap();
        let up = PTE_PRESENT | PTE_USER | PTE_WRITABLE;
        table(0xc000, 0xd000 | up);
        table(0xd000, 0xe000 | up);
        table(0xe000, 0xf000 | up);
        memory
            .write_slice(&[3u8; 4096], GuestAddress(0x8000))
            .unwrap();
        // Page 8 (a victim's) to slot 0, then cleared and mapped at 0x1000.
        let result = page_op_map(&mut dev, SYSCTL_EVICT_ZERO_MAP, 0x8, 0, 0x1000, 0xc);
        assert_eq!(evicted_slot(result), Some((0, PAGE_OP_MAPPED_NEW)));
        assert_eq!((byte(0x8000), byte(0x8fff)), (0, 0));
        let entry: u64 = memory.read_obj(GuestAddress(0xf008)).unwrap();
        assert_eq!(entry, 0x8000 | PTE_PRESENT | PTE_USER | PTE_LISTED);
        assert!(
            std::fs::read(&path).unwrap()[..4096]
                .iter()
                .all(|&b| b == 3)
        );
        // Page 9 to slot 1, then slot 0 read into it and mapped at 0x2000 (an evicted
        // page's entry); slot 0 is free again.
        memory
            .write_slice(&[4u8; 4096], GuestAddress(0x9000))
            .unwrap();
        table(0xf010, PTE_LISTED);
        let result = page_op_map(&mut dev, SYSCTL_EVICT_SWAP_IN_MAP, 0x9, 0, 0x2000, 0xc);
        assert_eq!(evicted_slot(result), Some((1, PAGE_OP_DONE)));
        assert_eq!((byte(0x9000), byte(0x9fff)), (3, 3));
        assert!(
            std::fs::read(&path).unwrap()[4096..]
                .iter()
                .all(|&b| b == 4)
        );
        assert_eq!(stat(&memory, "swap_slots_used"), 1);
        // Slot 0 taken again; a fill from a slot that does not exist fails after the
        // write-out.
        let result = page_op_map(&mut dev, SYSCTL_EVICT_SWAP_IN_MAP, 0x9, 7, 0x3000, 0xc);
        assert_eq!(evicted_slot(result), Some((0, EVICT_FILL_FAILED)));
        // Swap full: nothing written, nothing cleared or mapped.
        memory
            .write_slice(&[5u8; 4096], GuestAddress(0xa000))
            .unwrap();
        let result = page_op_map(&mut dev, SYSCTL_EVICT_ZERO_MAP, 0xa, 0, 0x4000, 0xc);
        assert_eq!(result, PAGE_OP_SWAP_FULL);
        assert_eq!(evicted_slot(result), None);
        assert_eq!(byte(0xa000), 5);
        assert_eq!(memory.read_obj::<u64>(GuestAddress(0xf020)).unwrap(), 0);
        // A page that is not RAM: refused before anything.
        assert_eq!(
            page_op_map(&mut dev, SYSCTL_EVICT_ZERO_MAP, 0x100, 0, 0x4000, 0xc),
            PAGE_OP_FAILED
        );
    }

    #[test]
    fn swap_operations() {
        let dir = crate::testutil::TempDir::new("sysctl-swap");
        let file = dir.sparse_file("swap", 2 * PAGE_SIZE);
        let path = dir.join("swap");
        let memory = memory();
        let mut dev = SysCtl::new(memory.clone(), Box::new(std::io::sink()), Some(file));
        let mut op = |register, a, b| page_op(&mut dev, register, a, b);
        let byte = |gpa: u64| memory.read_obj::<u8>(GuestAddress(gpa)).unwrap();
        assert_eq!(stat(&memory, "swap_slots_total"), 2);
        memory
            .write_slice(&[3u8; 4096], GuestAddress(0x8000))
            .unwrap();
        memory
            .write_slice(&[4u8; 4096], GuestAddress(0x9000))
            .unwrap();
        // Two pages out: slots 0 and 1 (the second held by two pages); then swap is full.
        assert_eq!(op(SYSCTL_SWAP_OUT, 0x8, 1), 0);
        assert_eq!(op(SYSCTL_SWAP_OUT, 0x9, 2), 1);
        assert_eq!(op(SYSCTL_SWAP_FREE, 0, 0), 0);
        assert_eq!(stat(&memory, "swap_slots_used"), 2);
        assert_eq!(op(SYSCTL_SWAP_OUT, 0x9, 1), PAGE_OP_SWAP_FULL);
        assert_eq!(op(SYSCTL_SWAP_OUT, 0x9, 0), PAGE_OP_FAILED, "no holder");
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk[..4096].iter().all(|&b| b == 3));
        assert!(on_disk[4096..].iter().all(|&b| b == 4));
        // Back in: slot 0 is free after its one reader, slot 1 after its second. The first
        // is also mapped at address 0, an evicted page (tables at pages 0xc to 0xf).
        let table = |gpa: u64, value: u64| memory.write_obj(value, GuestAddress(gpa)).unwrap();
        let up = PTE_PRESENT | PTE_USER | PTE_WRITABLE;
        table(0xc000, 0xd000 | up);
        table(0xd000, 0xe000 | up);
        table(0xe000, 0xf000 | up);
        table(0xf000, PTE_LISTED);
        assert_eq!(
            page_op_map(&mut dev, SYSCTL_SWAP_IN_MAP, 0xa, 0, MAP_WRITABLE, 0xc),
            PAGE_OP_DONE
        );
        let mut op = |register, a, b| page_op(&mut dev, register, a, b);
        assert_eq!(
            memory.read_obj::<u64>(GuestAddress(0xf000)).unwrap(),
            0xa000 | up | PTE_LISTED
        );
        assert_eq!((byte(0xa000), byte(0xafff)), (3, 3));
        assert_eq!(op(SYSCTL_SWAP_FREE, 0, 0), 1);
        assert_eq!(op(SYSCTL_SWAP_IN, 0xa, 0), PAGE_OP_FAILED, "slot 0 is free");
        assert_eq!(op(SYSCTL_SWAP_IN, 0xb, 1), PAGE_OP_DONE);
        assert_eq!(byte(0xb000), 4);
        assert_eq!(op(SYSCTL_SWAP_FREE, 0, 0), 1);
        // Shared once more, then dropped twice (a process ending): free.
        assert_eq!(op(SYSCTL_SWAP_SHARE, 1, 0), PAGE_OP_DONE);
        assert_eq!(op(SYSCTL_SWAP_DROP, 1, 0), PAGE_OP_DONE);
        assert_eq!(op(SYSCTL_SWAP_DROP, 1, 0), PAGE_OP_DONE);
        assert_eq!(op(SYSCTL_SWAP_DROP, 1, 0), PAGE_OP_FAILED);
        assert_eq!(op(SYSCTL_SWAP_FREE, 0, 0), 2);
        // Slots past the end, and pages that are not RAM, are refused; a refused read
        // does not take the slot from its page.
        assert_eq!(op(SYSCTL_SWAP_SHARE, 2, 0), PAGE_OP_FAILED);
        assert_eq!(op(SYSCTL_SWAP_IN, 0xa, 2), PAGE_OP_FAILED);
        assert_eq!(op(SYSCTL_SWAP_IN, 0xa, 1 << 32), PAGE_OP_FAILED);
        assert_eq!(op(SYSCTL_SWAP_OUT, 0x8, 1 << 32), PAGE_OP_FAILED, "holders");
        assert_eq!(op(SYSCTL_SWAP_OUT, 0x10, 1), PAGE_OP_FAILED);
        assert_eq!(op(SYSCTL_SWAP_FREE, 0, 0), 2);
        // The stats page has what moved: 2 pages out, 2 in, 4 requests of 8 sectors.
        for (name, value) in [
            ("swap_writes", 2),
            ("swap_reads", 2),
            ("swap_disk_requests", 4),
            ("swap_disk_sectors", 32),
            ("swap_slots_used", 0),
            ("swap_slots_peak", 2),
        ] {
            assert_eq!(stat(&memory, name), value, "{name}");
        }
        let counters = dev.counters();
        assert_eq!(counters.swap_out.load(Ordering::Relaxed), 2);
        assert_eq!(counters.swap_in.load(Ordering::Relaxed), 2);
    }
}
