//! The system-control block (see `abi::devices`): power-off and the kernel's panic report.

use abi::devices::{PANIC_MESSAGE_MAX, SYSCTL_EXIT, SYSCTL_PANIC};
use abi::layout::PANIC_PAGE_GPA;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::GuestRequest;
use super::bus::BusDevice;

/// The system-control registers. Holds guest memory to read the panic page.
pub struct SysCtl {
    memory: GuestMemoryMmap,
}

impl SysCtl {
    /// A block that reads panic reports from `memory`.
    pub fn new(memory: GuestMemoryMmap) -> Self {
        SysCtl { memory }
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
            _ => None,
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
        let mut dev = SysCtl::new(memory);
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
}
