//! The system-control block (see `abi::devices`): power-off, the kernel's panic report,
//! console output from the console page, and page operations (clearing and copying guest
//! pages, and moving pages between guest memory and the swap disk's file, for the kernel).

use abi::devices::{
    PAGE_OP_COPY, PAGE_OP_DONE, PAGE_OP_FAILED, PAGE_OP_SWAP_IN, PAGE_OP_SWAP_OUT, PAGE_OP_ZERO,
    PANIC_MESSAGE_MAX, SYSCTL_CONSOLE, SYSCTL_EXIT, SYSCTL_PAGE_OP, SYSCTL_PANIC,
};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use abi::layout::{CONSOLE_PAGE_GPA, PAGE_OP_GPA, PAGE_SIZE, PANIC_PAGE_GPA};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use super::GuestRequest;
use super::bus::BusDevice;
use crate::stats::PageOpCounters;

/// The system-control registers. Holds guest memory to read the panic and console pages
/// and to do page operations.
pub struct SysCtl {
    memory: GuestMemoryMmap,
    /// Where console text goes (shared with the UART).
    console: Box<dyn Write + Send>,
    /// The swap disk's file (the same one the virtio device serves), for the swap page
    /// operations, and its size in 4 KiB slots.
    swap: Option<(File, u64)>,
    /// Operations done, by kind.
    counters: Arc<PageOpCounters>,
}

impl SysCtl {
    /// A block that reads panic reports and console text from `memory` (the text goes to
    /// `console`) and moves pages between it and the swap disk file `swap`, if any.
    pub fn new(
        memory: GuestMemoryMmap,
        console: Box<dyn Write + Send>,
        swap: Option<File>,
    ) -> Self {
        let swap = swap.and_then(|f| {
            let slots = f.metadata().ok()?.len() / PAGE_SIZE;
            Some((f, slots))
        });
        SysCtl {
            memory,
            console,
            swap,
            counters: Arc::default(),
        }
    }

    /// The page-operation counters (shared: readable while the guest runs).
    pub fn counters(&self) -> Arc<PageOpCounters> {
        Arc::clone(&self.counters)
    }
}

impl BusDevice for SysCtl {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // Write-only registers.
        data.fill(0);
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
            SYSCTL_PAGE_OP => {
                self.page_op(u32::from_le_bytes(value));
                None
            }
            SYSCTL_CONSOLE => {
                self.console_write(u32::from_le_bytes(value));
                None
            }
            _ => None,
        }
    }
}

impl SysCtl {
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

    /// Does page operation `op` with the arguments in the page-operation block and writes
    /// its status there. Every argument is the guest's: anything but whole, page-aligned RAM
    /// pages (distinct, for a copy), a slot on the swap disk and a known operation is
    /// refused.
    fn page_op(&self, op: u32) {
        let mut args = [0u8; 16];
        if self
            .memory
            .read_slice(&mut args, GuestAddress(PAGE_OP_GPA))
            .is_err()
        {
            return;
        }
        let word = |at: usize| u64::from_le_bytes(args[at..at + 8].try_into().expect("8 bytes"));
        let (dst, src) = (word(0), word(8));
        let done = self.run_page_op(op, dst, src);
        let counter = match op {
            _ if !done => &self.counters.failed,
            PAGE_OP_ZERO => &self.counters.zero,
            PAGE_OP_COPY => &self.counters.copy,
            PAGE_OP_SWAP_IN => &self.counters.swap_in,
            _ => &self.counters.swap_out,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let status = if done { PAGE_OP_DONE } else { PAGE_OP_FAILED };
        // The block is guest RAM (it was just read); a failure here leaves the status the
        // guest preset (failed).
        let _ = self
            .memory
            .write_slice(&status.to_le_bytes(), GuestAddress(PAGE_OP_GPA + 16));
    }

    fn run_page_op(&self, op: u32, dst: u64, src: u64) -> bool {
        let page = |gpa: u64| {
            gpa.is_multiple_of(PAGE_SIZE)
                .then(|| {
                    self.memory
                        .get_slice(GuestAddress(gpa), PAGE_SIZE as usize)
                        .ok()
                })
                .flatten()
        };
        let slot = |slot: u64| {
            self.swap
                .as_ref()
                .filter(|(_, slots)| slot < *slots)
                .map(|(file, _)| (file, slot * PAGE_SIZE))
        };
        let mut bounce = [0u8; PAGE_SIZE as usize];
        match op {
            PAGE_OP_ZERO => page(dst).map(|to| to.copy_from(&bounce)).is_some(),
            PAGE_OP_COPY if dst != src => match (page(dst), page(src)) {
                (Some(to), Some(from)) => {
                    from.copy_to_volatile_slice(to);
                    true
                }
                _ => false,
            },
            PAGE_OP_SWAP_IN => match (page(dst), slot(src)) {
                (Some(to), Some((file, offset))) => {
                    file.read_exact_at(&mut bounce, offset).is_ok() && {
                        to.copy_from(&bounce);
                        true
                    }
                }
                _ => false,
            },
            PAGE_OP_SWAP_OUT => match (slot(dst), page(src)) {
                (Some((file, offset)), Some(from)) => {
                    from.copy_to(&mut bounce[..]);
                    file.write_all_at(&bounce, offset).is_ok()
                }
                _ => false,
            },
            _ => false,
        }
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
    let body = &body[..len.min(PANIC_MESSAGE_MAX).min(body.len())];
    let line: String = String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Writes the page-operation block, runs `op` and returns whether the VMM reported it
    /// done.
    fn page_op(dev: &mut SysCtl, memory: &GuestMemoryMmap, dst: u64, src: u64, op: u32) -> bool {
        let mut args = dst.to_le_bytes().to_vec();
        args.extend_from_slice(&src.to_le_bytes());
        args.extend_from_slice(&PAGE_OP_FAILED.to_le_bytes());
        memory
            .write_slice(&args, GuestAddress(PAGE_OP_GPA))
            .unwrap();
        assert_eq!(
            dev.write(u64::from(SYSCTL_PAGE_OP), &op.to_le_bytes()),
            None
        );
        memory
            .read_obj::<u64>(GuestAddress(PAGE_OP_GPA + 16))
            .unwrap()
            == PAGE_OP_DONE
    }

    #[test]
    fn page_operations() {
        let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let mut dev = SysCtl::new(memory.clone(), Box::new(std::io::sink()), None);
        let byte = |gpa: u64| memory.read_obj::<u8>(GuestAddress(gpa)).unwrap();
        memory
            .write_slice(&[7u8; 4096], GuestAddress(0x8000))
            .unwrap();
        memory
            .write_slice(&[9u8; 4096], GuestAddress(0x9000))
            .unwrap();
        assert!(page_op(&mut dev, &memory, 0xa000, 0x8000, PAGE_OP_COPY));
        assert_eq!((byte(0xa000), byte(0xafff), byte(0xb000)), (7, 7, 0));
        assert!(page_op(&mut dev, &memory, 0x9000, 0, PAGE_OP_ZERO));
        assert_eq!((byte(0x8fff), byte(0x9000), byte(0x9fff)), (7, 0, 0));
        // Hostile arguments do nothing (and do not panic), and are reported failed.
        memory
            .write_slice(&[5u8; 4096], GuestAddress(0x9000))
            .unwrap();
        for (dst, src, op) in [
            (0x9001, 0, PAGE_OP_ZERO),
            (0xf000 + PAGE_SIZE, 0, PAGE_OP_ZERO),
            (!0xfff, 0, PAGE_OP_ZERO),
            (0x9000, 0x10000, PAGE_OP_COPY),
            (0x9000, 0x8800, PAGE_OP_COPY),
            (0x9000, 0x9000, PAGE_OP_COPY),
            (0x9000, 0x8000, 99),
            // No swap disk.
            (0x9000, 0, PAGE_OP_SWAP_IN),
            (0, 0x9000, PAGE_OP_SWAP_OUT),
        ] {
            assert!(
                !page_op(&mut dev, &memory, dst, src, op),
                "{dst:#x} {src:#x} {op}"
            );
        }
        assert_eq!((byte(0x9000), byte(0x9fff)), (5, 5));
    }

    #[test]
    fn swap_operations() {
        let dir = crate::testutil::TempDir::new("sysctl-swap");
        let file = dir.sparse_file("swap", 2 * PAGE_SIZE);
        let path = dir.join("swap");
        let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let mut dev = SysCtl::new(memory.clone(), Box::new(std::io::sink()), Some(file));
        let byte = |gpa: u64| memory.read_obj::<u8>(GuestAddress(gpa)).unwrap();
        memory
            .write_slice(&[3u8; 4096], GuestAddress(0x8000))
            .unwrap();
        // Out to slot 1, back into another page: the same bytes, at slot 1's offset.
        assert!(page_op(&mut dev, &memory, 1, 0x8000, PAGE_OP_SWAP_OUT));
        assert!(page_op(&mut dev, &memory, 0xa000, 1, PAGE_OP_SWAP_IN));
        assert_eq!((byte(0xa000), byte(0xafff)), (3, 3));
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk.len(), 2 * PAGE_SIZE as usize);
        assert!(on_disk[..4096].iter().all(|&b| b == 0));
        assert!(on_disk[4096..].iter().all(|&b| b == 3));
        // Slots past the end, and pages that are not whole RAM pages, are refused.
        assert!(!page_op(&mut dev, &memory, 2, 0x8000, PAGE_OP_SWAP_OUT));
        assert!(!page_op(&mut dev, &memory, 0xa000, 2, PAGE_OP_SWAP_IN));
        let counters = dev.counters();
        assert_eq!(counters.swap_out.load(Ordering::Relaxed), 1);
        assert_eq!(counters.swap_in.load(Ordering::Relaxed), 1);
        assert_eq!(counters.failed.load(Ordering::Relaxed), 2);
        assert!(!page_op(&mut dev, &memory, 0xa001, 1, PAGE_OP_SWAP_IN));
        assert!(!page_op(&mut dev, &memory, 1, 0x10000, PAGE_OP_SWAP_OUT));
    }
}
