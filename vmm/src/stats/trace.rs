//! `vmm run --trace-faults FILE`: a thread that drains the kernel's fault trace ring
//! (`abi::trace`) while the guest runs, without stopping it, into JSON lines:
//!
//! ```text
//! {"trace":"faults","version":1,"program":"sort","mem_mib":10,"evict":"clock",...}
//! {"t_ns":81234567,"pid":1,"page":4214784,"cause":"file","ns":61250}
//! {"t_ns":81301112,"pid":1,"evict":4202496,"to":"swap"}
//! {"t_ns":92000100,"pid":2,"release":"exit"}
//! {"end":true,"records":5984,"dropped":0,"invalid":0,"faults":3535,"user_frames":1087,...}
//! ```
//!
//! The first line describes the run; then one line per record in the kernel's order: a
//! fault (`cause` one of `zero file mmap swap stack cow kill`; `ns` the time the kernel
//! took, `null` for a zero-fill fault the fast mode's shim resolved untimed), a page that
//! left memory (`to` `swap`, `file` or `drop`), or every page of a process released
//! (`exit`, or `exec` for the old program's). `t_ns` is the time since the kernel booted,
//! by the guest's TSC; a fault's is when it started, so an eviction it made, which comes
//! just before its line, has a later time. The last line, written when the guest stops, gives the totals: records
//! written, records the kernel dropped because the ring was full (the trace is then
//! incomplete; the VMM also says so on stderr), records it could not decode, and the
//! stats page's `faults` and `user_frames_total`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use abi::layout::{TRACE_HEADER_GPA, TRACE_RING_GPA};
use abi::trace::{
    Cause, EvictTo, RecordKind, Release, TRACE_CAPACITY, TRACE_MAGIC, TRACE_VERSION, UNTIMED,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::GuestStats;

/// How often the ring is drained: at the fastest fault rates seen on hardware KVM (a few
/// hundred thousand a second) the 1024-record ring holds a few milliseconds.
const DRAIN_INTERVAL: Duration = Duration::from_millis(1);

/// Offsets in `abi::trace::TraceHeader`.
const MAGIC: u64 = 0;
const VERSION: u64 = 8;
const HEAD: u64 = 16;
const TAIL: u64 = 24;
const DROPPED: u64 = 32;
const START_TSC: u64 = 40;
/// Bytes per `abi::trace::TraceRecord`.
const RECORD_BYTES: usize = 32;

/// What a finished trace holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceTotals {
    /// Records written to the file.
    pub records: u64,
    /// Records the kernel dropped because the ring was full.
    pub dropped: u64,
    /// Records that did not decode (a kind or detail this VMM does not know).
    pub invalid: u64,
}

/// A running drain; [`Drainer::finish`] stops it.
#[derive(Debug)]
pub struct Drainer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<std::io::Result<(Ring, BufWriter<File>)>>,
}

impl Drainer {
    /// Writes `header` (one JSON object) as the first line of `file`, then drains
    /// `memory`'s ring into it until [`Drainer::finish`]; times use `tsc_khz`.
    pub fn start(
        file: File,
        header: &serde_json::Value,
        memory: GuestMemoryMmap,
        tsc_khz: u64,
        seccomp: bool,
    ) -> std::io::Result<Drainer> {
        let mut out = BufWriter::new(file);
        writeln!(out, "{header}")?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("fault-trace".into())
            .spawn(move || {
                if seccomp {
                    crate::seccomp::install_or_exit(crate::seccomp::Thread::Series);
                }
                let mut ring = Ring {
                    memory,
                    tsc_khz,
                    totals: TraceTotals::default(),
                };
                loop {
                    let last = match stopped.recv_timeout(DRAIN_INTERVAL) {
                        Err(RecvTimeoutError::Timeout) => false,
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                    };
                    ring.drain(&mut out)?;
                    if last {
                        return Ok((ring, out));
                    }
                }
            })?;
        Ok(Drainer { stop, thread })
    }

    /// Drains what is left (call once the vCPU has stopped), writes the last line with
    /// `guest`'s final counts, and returns the totals.
    pub fn finish(self, guest: Option<&GuestStats>) -> std::io::Result<TraceTotals> {
        let _ = self.stop.send(());
        let (ring, mut out) = self
            .thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the fault-trace thread panicked")))?;
        let t = ring.totals;
        let end = serde_json::json!({
            "end": true,
            "records": t.records,
            "dropped": t.dropped,
            "invalid": t.invalid,
            "faults": guest.map(|g| g.get("faults")),
            "user_frames": guest.map(|g| g.get("user_frames_total")),
            "kernel_mode": guest.and_then(GuestStats::kernel_mode),
        });
        writeln!(out, "{end}")?;
        out.flush()?;
        Ok(t)
    }
}

/// The reader's side of the ring.
#[derive(Debug)]
struct Ring {
    memory: GuestMemoryMmap,
    tsc_khz: u64,
    totals: TraceTotals,
}

impl Ring {
    fn load(&self, offset: u64) -> Option<u64> {
        self.memory
            .load::<u64>(GuestAddress(TRACE_HEADER_GPA + offset), Ordering::Acquire)
            .ok()
    }

    /// Writes every record from `tail` to `head` and gives their slots back. Nothing
    /// before the kernel has set the ring up. The guest is untrusted: a `head` more than a
    /// ring ahead of `tail` is read as one ring's worth, and a record that does not decode
    /// is counted, not written.
    fn drain(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.load(MAGIC) != Some(TRACE_MAGIC) || self.load(VERSION) != Some(TRACE_VERSION) {
            return Ok(());
        }
        let (Some(head), Some(tail)) = (self.load(HEAD), self.load(TAIL)) else {
            return Ok(());
        };
        let first = tail.max(head.saturating_sub(TRACE_CAPACITY));
        let start_tsc = self.load(START_TSC).unwrap_or(0);
        let mut bytes = [0u8; RECORD_BYTES];
        for index in first..head {
            let gpa = TRACE_RING_GPA + (index % TRACE_CAPACITY) * RECORD_BYTES as u64;
            if self
                .memory
                .read_slice(&mut bytes, GuestAddress(gpa))
                .is_err()
            {
                self.totals.invalid += 1;
                continue;
            }
            match line(&bytes, start_tsc, self.tsc_khz) {
                Some(text) => {
                    writeln!(out, "{text}")?;
                    self.totals.records += 1;
                }
                None => self.totals.invalid += 1,
            }
        }
        let _ = self.memory.store(
            head,
            GuestAddress(TRACE_HEADER_GPA + TAIL),
            Ordering::Release,
        );
        self.totals.dropped = self.load(DROPPED).unwrap_or(self.totals.dropped);
        Ok(())
    }
}

/// The JSON line of one record (`abi::trace::TraceRecord`'s bytes), with times counted
/// from `start_tsc`, or `None` if it does not decode.
fn line(bytes: &[u8; RECORD_BYTES], start_tsc: u64, tsc_khz: u64) -> Option<String> {
    let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let (tsc, page, cycles) = (word(0), word(1), word(2));
    let pid = u32::from_le_bytes(bytes[24..28].try_into().unwrap_or([0; 4]));
    let (kind, detail) = (bytes[28], bytes[29]);
    let t_ns = ns(tsc.saturating_sub(start_tsc), tsc_khz);
    Some(match kind {
        k if k == RecordKind::Fault as u8 => {
            let cause = Cause::from_raw(detail)?.name();
            let took = if cycles == UNTIMED {
                "null".to_string()
            } else {
                ns(cycles, tsc_khz).to_string()
            };
            format!(r#"{{"t_ns":{t_ns},"pid":{pid},"page":{page},"cause":"{cause}","ns":{took}}}"#)
        }
        k if k == RecordKind::Evict as u8 => {
            let to = EvictTo::from_raw(detail)?.name();
            format!(r#"{{"t_ns":{t_ns},"pid":{pid},"evict":{page},"to":"{to}"}}"#)
        }
        k if k == RecordKind::Release as u8 => {
            let why = Release::from_raw(detail)?.name();
            format!(r#"{{"t_ns":{t_ns},"pid":{pid},"release":"{why}"}}"#)
        }
        _ => return None,
    })
}

/// `cycles` of a `tsc_khz` TSC in nanoseconds.
fn ns(cycles: u64, tsc_khz: u64) -> u64 {
    (u128::from(cycles) * 1_000_000 / u128::from(tsc_khz.max(1))) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tsc: u64, page: u64, cycles: u64, pid: u32, kind: u8, detail: u8) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&tsc.to_le_bytes());
        b[8..16].copy_from_slice(&page.to_le_bytes());
        b[16..24].copy_from_slice(&cycles.to_le_bytes());
        b[24..28].copy_from_slice(&pid.to_le_bytes());
        b[28] = kind;
        b[29] = detail;
        b
    }

    #[test]
    fn offsets_are_the_abi_s() {
        use abi::trace::{TraceHeader, TraceRecord};
        use core::mem::{offset_of, size_of};
        assert_eq!(offset_of!(TraceHeader, magic) as u64, MAGIC);
        assert_eq!(offset_of!(TraceHeader, version) as u64, VERSION);
        assert_eq!(offset_of!(TraceHeader, head) as u64, HEAD);
        assert_eq!(offset_of!(TraceHeader, tail) as u64, TAIL);
        assert_eq!(offset_of!(TraceHeader, dropped) as u64, DROPPED);
        assert_eq!(offset_of!(TraceHeader, start_tsc) as u64, START_TSC);
        assert_eq!(size_of::<TraceRecord>(), RECORD_BYTES);
        assert_eq!(offset_of!(TraceRecord, pid), 24);
        assert_eq!(offset_of!(TraceRecord, kind), 28);
        assert_eq!(offset_of!(TraceRecord, detail), 29);
    }

    #[test]
    fn records_become_lines() {
        let khz = 2_000_000; // 2 GHz: 2 cycles a nanosecond
        assert_eq!(
            line(&record(3000, 0x40_1000, 500, 3, 1, 1), 1000, khz).as_deref(),
            Some(r#"{"t_ns":1000,"pid":3,"page":4198400,"cause":"file","ns":250}"#)
        );
        assert_eq!(
            line(&record(3000, 0x40_1000, UNTIMED, 3, 1, 0), 1000, khz).as_deref(),
            Some(r#"{"t_ns":1000,"pid":3,"page":4198400,"cause":"zero","ns":null}"#)
        );
        assert_eq!(
            line(&record(5000, 0x1000, 0, 1, 2, 0), 1000, khz).as_deref(),
            Some(r#"{"t_ns":2000,"pid":1,"evict":4096,"to":"swap"}"#)
        );
        assert_eq!(
            line(&record(5000, 0, 0, 7, 3, 1), 1000, khz).as_deref(),
            Some(r#"{"t_ns":2000,"pid":7,"release":"exec"}"#)
        );
        for line_text in [
            line(&record(1, 0, 0, 1, 1, 0), 1000, khz).expect("line"),
            line(&record(1, 0, 0, 1, 2, 2), 1000, khz).expect("line"),
        ] {
            serde_json::from_str::<serde_json::Value>(&line_text).expect("valid JSON");
        }
    }

    #[test]
    fn records_that_do_not_decode_are_refused() {
        assert_eq!(line(&record(1, 0, 0, 1, 0, 0), 0, 1000), None, "kind 0");
        assert_eq!(line(&record(1, 0, 0, 1, 9, 0), 0, 1000), None, "kind 9");
        assert_eq!(line(&record(1, 0, 0, 1, 1, 7), 0, 1000), None, "cause 7");
        assert_eq!(line(&record(1, 0, 0, 1, 2, 3), 0, 1000), None, "evict to 3");
        assert_eq!(line(&record(1, 0, 0, 1, 3, 2), 0, 1000), None, "release 2");
    }

    #[test]
    fn a_hostile_head_reads_at_most_one_ring() {
        let memory: GuestMemoryMmap =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("memory");
        let header = |offset: u64, value: u64| {
            memory
                .write_obj(value, GuestAddress(TRACE_HEADER_GPA + offset))
                .expect("write");
        };
        header(MAGIC, TRACE_MAGIC);
        header(VERSION, TRACE_VERSION);
        header(HEAD, u64::MAX);
        header(DROPPED, 5);
        for i in 0..TRACE_CAPACITY {
            memory
                .write_slice(
                    &record(i, i << 12, 1, 1, 1, 0),
                    GuestAddress(TRACE_RING_GPA + i * 32),
                )
                .expect("write");
        }
        let mut ring = Ring {
            memory: memory.clone(),
            tsc_khz: 1000,
            totals: TraceTotals::default(),
        };
        let mut out = Vec::new();
        ring.drain(&mut out).expect("drain");
        assert_eq!(
            ring.totals,
            TraceTotals {
                records: TRACE_CAPACITY,
                dropped: 5,
                invalid: 0
            }
        );
        assert_eq!(
            String::from_utf8(out).expect("utf-8").lines().count() as u64,
            TRACE_CAPACITY
        );
        assert_eq!(
            memory
                .read_obj::<u64>(GuestAddress(TRACE_HEADER_GPA + TAIL))
                .expect("read"),
            u64::MAX,
            "the slots are given back"
        );
    }
}
