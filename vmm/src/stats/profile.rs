//! `vmm run --profile FILE`: where the guest's time goes, by sampling.
//!
//! Every [`PERIOD`] of wall time the VMM's main thread asks for a sample and interrupts
//! `KVM_RUN` with the kick signal; the vCPU thread, at its next return from `KVM_RUN`
//! (that interruption, or an exit that came first), reads the guest's RIP and CS. A sample
//! is attributed to one of three places:
//!
//! - `user`: a user program (CPL 3, an address below `KERN_BASE`);
//! - `kernel`: kernel code at CPL 3 (the fast kernel mode's work);
//! - `ring0`: kernel code in ring 0 (all of the classic mode's kernel; the fast mode's
//!   shim, interrupts, scheduler and idle loop).
//!
//! and, for kernel addresses, to the kernel symbol that holds it (the kernel ELF's symbol
//! table: the built-in kernel's or `--kernel`'s). The time the host spends on the guest's
//! behalf lands on the guest instruction it serves: a port access's VM exit on the `in`,
//! an emulated ring-0 instruction on itself, a shadow page-table fill on the user's access.
//! Each sample costs an interruption of the guest (one exit, 10-50 us on PVM), about 2-10%
//! at this period.
//!
//! The report is text:
//!
//! ```text
//! # vmm profile: pressure-mix, 10 MiB, kernel mode fast, host PVM (software KVM: ...)
//! # 1602 samples, one every 500 us of wall time
//! # user 31.5%, kernel 32.1%, ring0 36.4%
//! # samples  percent  where   symbol
//!      504    31.5%   user    -
//!      130     8.1%   ring0   fast_page_fault
//!      106     6.6%   kernel  guest_kernel::mm::page_table::AddressSpace::evict_fill_and_map
//! ```
//!
//! User code is one row: the VMM cannot tell which program a process runs (`exec`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use abi::layout::KERN_BASE;

/// Wall time between samples.
pub const PERIOD: Duration = Duration::from_micros(500);

/// One sample: the guest's RIP and privilege level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sample {
    pub rip: u64,
    /// CS's requested privilege level: 0 or 3.
    pub cpl: u8,
}

/// Samples shared between the thread that asks for them and the vCPU thread that takes
/// them, counted by address as they come (user code's all as one), so that a long run's
/// profile takes no more memory than a short one's.
#[derive(Debug, Default)]
pub struct Samples {
    wanted: AtomicBool,
    taken: Mutex<HashMap<Sample, u64>>,
}

impl Samples {
    /// Asks the vCPU thread for a sample at its next return from `KVM_RUN` (the caller then
    /// interrupts `KVM_RUN`).
    pub fn request(&self) {
        self.wanted.store(true, Ordering::Release);
    }

    /// Whether a sample was asked for since the last one; clears the request.
    pub fn take_request(&self) -> bool {
        self.wanted.swap(false, Ordering::AcqRel)
    }

    /// Records a sample.
    pub fn record(&self, sample: Sample) {
        let sample = match Place::of(sample) {
            Place::User => Sample { rip: 0, cpl: 3 },
            Place::Kernel | Place::Ring0 => sample,
        };
        if let Ok(mut taken) = self.taken.lock() {
            *taken.entry(sample).or_default() += 1;
        }
    }

    /// The samples taken so far, each with how many times it was taken.
    pub fn taken(&self) -> Vec<(Sample, u64)> {
        self.taken
            .lock()
            .map(|t| t.iter().map(|(s, n)| (*s, *n)).collect())
            .unwrap_or_default()
    }
}

/// Where a sample ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Place {
    User,
    Kernel,
    Ring0,
}

impl Place {
    pub fn of(sample: Sample) -> Place {
        match (sample.cpl, sample.rip >= KERN_BASE) {
            (0, _) => Place::Ring0,
            (_, true) => Place::Kernel,
            (_, false) => Place::User,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Place::User => "user",
            Place::Kernel => "kernel",
            Place::Ring0 => "ring0",
        }
    }
}

/// The function and label symbols of an ELF file, by address.
#[derive(Debug, Default)]
pub struct Symbols {
    /// (address, size, demangled name without its hash), sorted by address.
    entries: Vec<(u64, u64, String)>,
}

/// `SHT_SYMTAB`.
const SYMTAB: u32 = 2;
/// Bytes of an `Elf64_Sym`.
const SYM_BYTES: usize = 24;

impl Symbols {
    /// Reads the symbol table of the ELF64 image `elf`. An image without one, or one that
    /// does not parse, gives no symbols (samples then show addresses).
    pub fn parse(elf: &[u8]) -> Symbols {
        Symbols {
            entries: Self::entries(elf).unwrap_or_default(),
        }
    }

    fn entries(elf: &[u8]) -> Option<Vec<(u64, u64, String)>> {
        let shoff = usize::try_from(le(elf, 0x28, 8)?).ok()?;
        let shentsize = usize::try_from(le(elf, 0x3a, 2)?).ok()?;
        let shnum = usize::try_from(le(elf, 0x3c, 2)?).ok()?;
        let section = |i: usize| -> Option<(u32, usize, usize, usize)> {
            let base = shoff.checked_add(i.checked_mul(shentsize)?)?;
            Some((
                le(elf, base + 4, 4)? as u32,
                usize::try_from(le(elf, base + 24, 8)?).ok()?,
                usize::try_from(le(elf, base + 32, 8)?).ok()?,
                usize::try_from(le(elf, base + 40, 4)?).ok()?,
            ))
        };
        let (_, offset, size, link) = (0..shnum)
            .filter_map(section)
            .find(|(kind, ..)| *kind == SYMTAB)?;
        let (_, str_offset, str_size, _) = section(link)?;
        let strings = elf.get(str_offset..str_offset.checked_add(str_size)?)?;
        let table = elf.get(offset..offset.checked_add(size)?)?;
        let mut entries: Vec<(u64, u64, String)> = table
            .chunks_exact(SYM_BYTES)
            .filter_map(|sym| {
                let kind = sym[4] & 0xf;
                let shndx = u16::from_le_bytes([sym[6], sym[7]]);
                let value = u64::from_le_bytes(sym[8..16].try_into().ok()?);
                let size = u64::from_le_bytes(sym[16..24].try_into().ok()?);
                // Functions and the assembly's labels (no type), defined in a section (not
                // undefined, absolute or common), with an address.
                if !(kind == 0 || kind == 2) || shndx == 0 || shndx >= 0xff00 || value == 0 {
                    return None;
                }
                let name_at = u32::from_le_bytes(sym[0..4].try_into().ok()?) as usize;
                let name = strings.get(name_at..)?;
                let name = &name[..name.iter().position(|&b| b == 0)?];
                let name = std::str::from_utf8(name).ok()?;
                if name.is_empty() || name.starts_with(".L") || name.starts_with('$') {
                    return None;
                }
                Some((value, size, format!("{:#}", rustc_demangle::demangle(name))))
            })
            .collect();
        entries.sort_by_key(|e| e.0);
        Some(entries)
    }

    /// The symbol that holds `address`: the nearest one at or below it, unless that one's
    /// size says it ends before `address`.
    pub fn lookup(&self, address: u64) -> Option<&str> {
        let i = self.entries.partition_point(|e| e.0 <= address);
        let (start, size, name) = self.entries.get(i.checked_sub(1)?)?;
        (*size == 0 || address - start < *size).then_some(name.as_str())
    }

    /// The address of the symbol called `name` (for tests).
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.entries.iter().find(|e| e.2 == name).map(|e| e.0)
    }
}

/// The `len`-byte little-endian integer at `at` in `bytes`.
fn le(bytes: &[u8], at: usize, len: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(len)?)?;
    Some(
        field
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
    )
}

/// The report of `samples` (each with its count; see the module documentation); `about` is
/// the first line's description of the run.
pub fn report(about: &str, samples: &[(Sample, u64)], symbols: &Symbols) -> String {
    let total: u64 = samples.iter().map(|(_, n)| n).sum();
    let mut rows: HashMap<(Place, String), u64> = HashMap::new();
    let mut places: HashMap<Place, u64> = HashMap::new();
    for &(sample, n) in samples {
        let place = Place::of(sample);
        let name = match place {
            Place::User => "-".to_string(),
            Place::Kernel | Place::Ring0 => symbols
                .lookup(sample.rip)
                .map_or_else(|| format!("{:#x}", sample.rip), str::to_string),
        };
        *rows.entry((place, name)).or_default() += n;
        *places.entry(place).or_default() += n;
    }
    let percent = |n: u64| {
        if total == 0 {
            0.0
        } else {
            100.0 * n as f64 / total as f64
        }
    };
    let mut out = format!(
        "# vmm profile: {about}\n# {total} samples, one every {} us of wall time\n# {}\n# samples  percent  where   symbol\n",
        PERIOD.as_micros(),
        [Place::User, Place::Kernel, Place::Ring0]
            .iter()
            .map(|p| format!(
                "{} {:.1}%",
                p.name(),
                percent(places.get(p).copied().unwrap_or(0))
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for ((place, name), n) in rows {
        out.push_str(&format!(
            "{n:8}  {:6.1}%  {:<6}  {name}\n",
            percent(n),
            place.name()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel `vmm` embeds (built by the Makefile before the VMM).
    fn kernel() -> Vec<u8> {
        std::fs::read(concat!(env!("OUT_DIR"), "/guest-kernel.elf")).expect("the built kernel")
    }

    #[test]
    fn kernel_symbols_are_found_by_address() {
        let symbols = Symbols::parse(&kernel());
        let kmain = symbols.address_of("guest_kernel::kmain").expect("kmain");
        assert!(kmain >= KERN_BASE);
        assert_eq!(symbols.lookup(kmain), Some("guest_kernel::kmain"));
        assert_eq!(symbols.lookup(kmain + 1), Some("guest_kernel::kmain"));
        // An assembly label (no size) holds the code after it.
        let shim = symbols
            .address_of("fast_page_fault")
            .expect("the shim's #PF entry");
        assert_eq!(symbols.lookup(shim + 3), Some("fast_page_fault"));
        assert_eq!(symbols.lookup(0x1000), None);
    }

    #[test]
    fn a_bad_image_has_no_symbols() {
        assert_eq!(Symbols::parse(b"not an ELF").lookup(KERN_BASE), None);
        let mut elf = kernel();
        elf.truncate(0x40);
        assert_eq!(Symbols::parse(&elf).lookup(KERN_BASE), None);
        let mut elf = kernel();
        // Section headers far past the end.
        elf[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Symbols::parse(&elf).lookup(KERN_BASE), None);
    }

    #[test]
    fn the_report_counts_each_place_and_symbol() {
        let symbols = Symbols::parse(&kernel());
        let kmain = symbols.address_of("guest_kernel::kmain").expect("kmain");
        let taken = Samples::default();
        for (rip, cpl) in [
            (0x40_1000, 3),
            (0x40_2000, 3),
            (0x40_3000, 3),
            (kmain, 0),
            (kmain + 4, 3),
            (KERN_BASE + 0x10, 0),
        ] {
            taken.record(Sample { rip, cpl });
        }
        // User code counts as one address.
        assert_eq!(taken.taken().len(), 4);
        let text = report("test", &taken.taken(), &symbols);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# vmm profile: test");
        assert_eq!(lines[1], "# 6 samples, one every 500 us of wall time");
        assert_eq!(lines[2], "# user 50.0%, kernel 16.7%, ring0 33.3%");
        assert_eq!(
            &lines[4..],
            [
                "       3    50.0%  user    -",
                "       1    16.7%  kernel  guest_kernel::kmain",
                &format!("       1    16.7%  ring0   {:#x}", KERN_BASE + 0x10),
                "       1    16.7%  ring0   guest_kernel::kmain",
            ]
        );
    }
}
