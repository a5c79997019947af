//! `--stats-series PATH --stats-interval MS`: a thread that samples the stats page while
//! the guest runs, without stopping it, and appends one JSON object per line:
//!
//! ```text
//! {"time_ms":12.503,"vm_exits":1834,"faults":40,"faults_zero_fill":12,...}
//! ```
//!
//! `time_ms` is the time since the vCPU started; `vm_exits` counts every VM exit so far;
//! the other keys are every field of `abi::stats::FIELDS` (zeros until the kernel has set
//! its page up). A last sample is written when the guest stops, so the final line holds
//! the final counts.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use abi::stats::FIELDS;
use vm_memory::GuestMemoryMmap;

use super::{ExitCounters, GuestStats};

/// Where and how often to sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesConfig {
    pub path: PathBuf,
    pub interval: Duration,
}

/// A running sampler; [`Sampler::finish`] stops it.
#[derive(Debug)]
pub struct Sampler {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<std::io::Result<()>>,
}

impl Sampler {
    /// Starts sampling `memory`'s stats page and `exits` every `interval` into `file`, with
    /// times counted from `start`.
    pub fn start(
        file: File,
        interval: Duration,
        memory: GuestMemoryMmap,
        exits: Arc<ExitCounters>,
        start: Instant,
        seccomp: bool,
    ) -> std::io::Result<Sampler> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("stats-series".into())
            .spawn(move || {
                if seccomp {
                    crate::seccomp::install_or_exit(crate::seccomp::Thread::Series);
                }
                let mut out = BufWriter::new(file);
                loop {
                    let last = match stopped.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => false,
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                    };
                    let guest = GuestStats::read(&memory);
                    let line = sample_line(start.elapsed(), guest.as_ref(), exits.total());
                    writeln!(out, "{line}")?;
                    // Each line reaches the file as it is taken, so the series can be
                    // followed while the guest runs.
                    out.flush()?;
                    if last {
                        return Ok(());
                    }
                }
            })?;
        Ok(Sampler { stop, thread })
    }

    /// Takes the last sample and stops.
    pub fn finish(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the sampler thread panicked")))
    }
}

/// One line of the series (without the newline).
pub fn sample_line(time: Duration, guest: Option<&GuestStats>, vm_exits: u64) -> String {
    let mut line = serde_json::Map::new();
    line.insert(
        "time_ms".into(),
        serde_json::json!(time.as_nanos() as f64 / 1e6),
    );
    line.insert("vm_exits".into(), vm_exits.into());
    for (i, field) in FIELDS.iter().enumerate() {
        let value = guest.and_then(|g| g.values.get(i).copied()).unwrap_or(0);
        line.insert(field.name.into(), value.into());
    }
    serde_json::Value::Object(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_holds_every_field() {
        let guest = GuestStats {
            values: (1..=FIELDS.len() as u64).collect(),
            histogram: vec![0; abi::stats::FAULT_HISTOGRAM_BUCKETS],
        };
        let line = sample_line(Duration::from_micros(1500), Some(&guest), 9);
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["time_ms"], 1.5);
        assert_eq!(v["vm_exits"], 9);
        assert_eq!(v["faults"], 1);
        assert_eq!(v.as_object().expect("object").len(), FIELDS.len() + 2);
        let empty: serde_json::Value =
            serde_json::from_str(&sample_line(Duration::ZERO, None, 0)).expect("JSON");
        assert_eq!(
            empty["faults"], 0,
            "zeros before the kernel sets its page up"
        );
    }
}
