//! What the run did: the guest kernel's counters (its stats page, `abi::stats`) and the
//! VMM's own (VM exits, devices, time, the kind of KVM).
//!
//! ```text
//! mod.rs      reading the stats page, VM-exit counters, the kind of KVM
//! report.rs   the end-of-run report: the `--stats` table and the `--stats-json` document
//! series.rs   the `--stats-series` sampler thread (JSON lines while the guest runs)
//! plot.rs     `vmm plot`: a series drawn as SVG
//! sweep.rs    `vmm sweep`: one run per RAM size, one table
//! trace.rs    `--trace-faults`: the fault trace ring drained into JSON lines
//! replay.rs   `vmm replay`: a fault trace replayed against OPT, LRU, clock, FIFO, random
//! ```

pub mod plot;
pub mod profile;
pub mod replay;
pub mod report;
pub mod series;
pub mod sweep;
pub mod trace;

use std::sync::atomic::{AtomicU64, Ordering};

use abi::layout::STATS_PAGE_GPA;
use abi::stats::{
    FAULT_HISTOGRAM_BUCKETS, FIELDS, STATS_MAGIC, STATS_VERSION, field_index, histogram_offset,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// One reading of the guest's stats page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestStats {
    /// One value per `abi::stats::FIELDS` entry, in that order.
    pub values: Vec<u64>,
    /// The fault-time histogram (`FAULT_HISTOGRAM_BUCKETS` buckets).
    pub histogram: Vec<u64>,
}

impl GuestStats {
    /// Reads the page without stopping the vCPU: each field is one aligned 8-byte load, so
    /// no value is torn. `None` until the kernel has set the page up, or if it speaks
    /// another layout version.
    pub fn read(memory: &GuestMemoryMmap) -> Option<Self> {
        let load = |offset: usize| -> Option<u64> {
            memory
                .load::<u64>(
                    GuestAddress(STATS_PAGE_GPA + offset as u64),
                    Ordering::Relaxed,
                )
                .ok()
        };
        if load(0)? != STATS_MAGIC || load(8)? != STATS_VERSION {
            return None;
        }
        let values = FIELDS
            .iter()
            .map(|f| load(f.offset))
            .collect::<Option<Vec<_>>>()?;
        let histogram = (0..FAULT_HISTOGRAM_BUCKETS)
            .map(|b| load(histogram_offset(b)))
            .collect::<Option<Vec<_>>>()?;
        Some(GuestStats { values, histogram })
    }

    /// The value of the field named `name` (0 for a name the page does not have).
    pub fn get(&self, name: &str) -> u64 {
        field_index(name)
            .and_then(|i| self.values.get(i).copied())
            .unwrap_or(0)
    }

    /// The kernel mode the kernel ran in (`classic` or `fast`), from its `kernel_mode`
    /// constant; `None` if the value is not one this VMM knows.
    pub fn kernel_mode(&self) -> Option<&'static str> {
        let raw = u32::try_from(self.get("kernel_mode")).ok()?;
        abi::boot::KernelMode::from_raw(raw).map(abi::boot::KernelMode::name)
    }

    /// Every field with its name, in layout order.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        FIELDS
            .iter()
            .map(|f| f.name)
            .zip(self.values.iter().copied())
    }
}

/// Why the vCPU left guest mode, as the run loop sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// A port write (`out`), string writes included.
    PioWrite,
    /// A port read (`in`).
    PioRead,
    /// A store to a device's MMIO window.
    MmioWrite,
    /// A load from a device's MMIO window.
    MmioRead,
    /// `KVM_RUN` returned early for a signal (the watchdog, or a host signal).
    Interrupted,
    /// `hlt` without an in-kernel interrupt controller.
    Hlt,
    /// The guest triple-faulted.
    Shutdown,
    /// KVM could not handle or emulate something.
    InternalError,
    /// KVM could not enter the guest.
    FailEntry,
    /// Any other exit.
    Other,
}

impl ExitReason {
    /// Every reason, in report order.
    pub const ALL: [ExitReason; 10] = [
        ExitReason::PioWrite,
        ExitReason::PioRead,
        ExitReason::MmioWrite,
        ExitReason::MmioRead,
        ExitReason::Interrupted,
        ExitReason::Hlt,
        ExitReason::Shutdown,
        ExitReason::InternalError,
        ExitReason::FailEntry,
        ExitReason::Other,
    ];

    /// The name in reports and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            ExitReason::PioWrite => "pio_write",
            ExitReason::PioRead => "pio_read",
            ExitReason::MmioWrite => "mmio_write",
            ExitReason::MmioRead => "mmio_read",
            ExitReason::Interrupted => "interrupted",
            ExitReason::Hlt => "hlt",
            ExitReason::Shutdown => "shutdown",
            ExitReason::InternalError => "internal_error",
            ExitReason::FailEntry => "fail_entry",
            ExitReason::Other => "other",
        }
    }
}

/// VM exits by reason, counted by the vCPU thread and readable from any thread while it
/// runs.
#[derive(Debug, Default)]
pub struct ExitCounters {
    counts: [AtomicU64; ExitReason::ALL.len()],
}

impl ExitCounters {
    /// Counts one exit.
    pub fn count(&self, reason: ExitReason) {
        self.counts[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Exits for `reason` so far.
    pub fn get(&self, reason: ExitReason) -> u64 {
        self.counts[reason as usize].load(Ordering::Relaxed)
    }

    /// Exits for every reason so far.
    pub fn total(&self) -> u64 {
        ExitReason::ALL.iter().map(|&r| self.get(r)).sum()
    }
}

/// Page operations the system-control device did for the guest (`abi::devices::PAGE_OP_*`).
#[derive(Debug, Default)]
pub struct PageOpCounters {
    /// Pages cleared.
    pub zero: AtomicU64,
    /// Pages copied.
    pub copy: AtomicU64,
    /// Pages read from the swap file.
    pub swap_in: AtomicU64,
    /// Pages written to the swap file.
    pub swap_out: AtomicU64,
    /// User pages mapped (a map request, with or without a fill; see `abi::devices`).
    pub map: AtomicU64,
    /// Operations refused or failed.
    pub failed: AtomicU64,
    /// The first error of the swap file (a full disk, an I/O error), for the VMM's report:
    /// the kernel ends the processes that needed the page.
    pub swap_error: std::sync::Mutex<Option<String>>,
}

impl PageOpCounters {
    /// Keeps `error` if it is the swap file's first.
    pub fn swap_failed(&self, what: &str, error: &std::io::Error) {
        let mut first = self.swap_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(|| format!("{what} failed: {error}"));
    }
}

/// The kind of KVM the VMM runs on: measurements mean different things on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvmKind {
    /// Short name: `vmx`, `svm`, `pvm` or `unknown`.
    pub name: &'static str,
    /// Whether the CPU runs guest code natively (VMX/SVM); false for software KVMs such as
    /// PVM, which emulate ring-0 guest code.
    pub hardware_assisted: bool,
    /// One line for people.
    pub description: &'static str,
}

impl KvmKind {
    /// The kind as the kernel is told it (`abi::boot::HostKind`); `None` if unknown.
    pub fn host_kind(&self) -> Option<abi::boot::HostKind> {
        match self.name {
            "pvm" => Some(abi::boot::HostKind::Pvm),
            "vmx" | "svm" => Some(abi::boot::HostKind::Hardware),
            _ => None,
        }
    }

    /// Detects the kind from the loaded KVM modules (`/sys/module`).
    pub fn detect() -> KvmKind {
        let loaded = |m: &str| std::path::Path::new("/sys/module").join(m).exists();
        if loaded("kvm_pvm") {
            KvmKind {
                name: "pvm",
                hardware_assisted: false,
                description: "PVM (software KVM: ring-0 guest code is emulated)",
            }
        } else if loaded("kvm_intel") {
            KvmKind {
                name: "vmx",
                hardware_assisted: true,
                description: "hardware-assisted (Intel VMX)",
            }
        } else if loaded("kvm_amd") {
            KvmKind {
                name: "svm",
                hardware_assisted: true,
                description: "hardware-assisted (AMD SVM)",
            }
        } else {
            KvmKind {
                name: "unknown",
                hardware_assisted: false,
                description: "unknown (no kvm_intel, kvm_amd or kvm_pvm module)",
            }
        }
    }
}

/// CPU time the calling thread has used.
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vstate::memory;
    use abi::stats::histogram_bucket;

    #[test]
    fn page_is_read_only_once_valid() {
        let mem = memory::create(4).expect("guest memory");
        assert_eq!(GuestStats::read(&mem), None, "no magic yet");
        let store = |offset: usize, v: u64| {
            mem.write_obj(v, GuestAddress(STATS_PAGE_GPA + offset as u64))
                .expect("in RAM")
        };
        store(0, STATS_MAGIC);
        store(8, STATS_VERSION + 1);
        assert_eq!(GuestStats::read(&mem), None, "another layout version");
        store(8, STATS_VERSION);
        let offset = |name| FIELDS[field_index(name).expect("field")].offset;
        store(offset("faults"), 42);
        store(offset("evict_swap"), 7);
        store(histogram_offset(histogram_bucket(1000)), 3);
        let stats = GuestStats::read(&mem).expect("valid page");
        assert_eq!(stats.get("faults"), 42);
        assert_eq!(stats.get("evict_swap"), 7);
        assert_eq!(stats.get("no_such_field"), 0);
        assert_eq!(stats.histogram[9], 3);
        assert_eq!(stats.values.len(), FIELDS.len());
        assert_eq!(stats.named().count(), FIELDS.len());
    }

    #[test]
    fn exits_are_counted_by_reason() {
        let exits = ExitCounters::default();
        exits.count(ExitReason::PioWrite);
        exits.count(ExitReason::PioWrite);
        exits.count(ExitReason::MmioRead);
        assert_eq!(exits.get(ExitReason::PioWrite), 2);
        assert_eq!(exits.get(ExitReason::MmioRead), 1);
        assert_eq!(exits.get(ExitReason::Hlt), 0);
        assert_eq!(exits.total(), 3);
        let names: std::collections::HashSet<_> =
            ExitReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), ExitReason::ALL.len());
    }

    #[test]
    fn this_machine_has_a_known_kvm() {
        let kind = KvmKind::detect();
        if std::path::Path::new("/dev/kvm").exists() {
            assert_ne!(kind.name, "unknown", "{kind:?}");
        }
    }
}
