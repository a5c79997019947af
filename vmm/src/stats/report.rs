//! The end-of-run report: `--stats` prints it as a table on stderr, `--stats-json PATH`
//! writes it as one JSON document. Both hold the same numbers; the JSON also holds the
//! configuration and the fault-time histogram. The sections of the document are
//! [`SECTIONS`]; the README documents every key.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{ExitReason, GuestStats, KvmKind};
use crate::devices::virtio::block::BlockMetrics;
use crate::machine::{MachineConfig, RunStats};
use crate::run::RunReport;
use crate::storage::SwapSource;

/// Format name of the JSON document (its `format` key).
pub const FORMAT: &str = "vmm-stats";
/// Version of the JSON document's layout (its `version` key).
pub const VERSION: u64 = 1;
/// The top-level keys of the JSON document, in order.
pub const SECTIONS: [&str; 10] = [
    "format", "version", "config", "host", "outcome", "time", "guest", "vm_exits", "disks",
    "page_ops",
];

/// The swap disk's size in MiB as configured (0: none).
fn swap_mib(swap: &SwapSource) -> u64 {
    match swap {
        SwapSource::None => 0,
        SwapSource::Temp { mib } | SwapSource::File { mib, .. } => *mib,
    }
}

/// The report as a JSON document.
pub fn json(config: &MachineConfig, run: &RunReport, kvm: KvmKind) -> Value {
    let stats = &run.stats;
    let mut words = config.cmdline.split(' ').filter(|w| !w.is_empty());
    let program = words.next();
    let args: Vec<&str> = words.collect();
    let guest = stats.guest.as_ref().map(|g| {
        let mut map: serde_json::Map<String, Value> = g
            .named()
            .map(|(name, v)| (name.to_string(), v.into()))
            .collect();
        map.insert("fault_cycles_log2".into(), json!(g.histogram));
        map.insert("tsc_khz".into(), stats.tsc_khz.into());
        Value::Object(map)
    });
    let by_reason: serde_json::Map<String, Value> = ExitReason::ALL
        .iter()
        .map(|&r| (r.name().to_string(), stats.exits.get(r).into()))
        .collect();
    let by_device: serde_json::Map<String, Value> = run
        .devices
        .iter()
        .map(|d| (d.name.to_string(), d.exits.into()))
        .collect();
    let disks: serde_json::Map<String, Value> = run
        .devices
        .iter()
        .filter_map(|d| Some((d.name, d.disk.as_ref()?)))
        .map(|(name, m)| {
            // The swap disk also moves pages by page operations (see abi::devices).
            let (ops_in, ops_out) = if name == "swap-disk" {
                (
                    BlockMetrics::get(&stats.page_ops.swap_in),
                    BlockMetrics::get(&stats.page_ops.swap_out),
                )
            } else {
                (0, 0)
            };
            let page = abi::layout::PAGE_SIZE;
            let reads = BlockMetrics::get(&m.read_requests) + ops_in;
            let writes = BlockMetrics::get(&m.write_requests) + ops_out;
            let other = BlockMetrics::get(&m.flush_requests)
                + BlockMetrics::get(&m.get_id_requests)
                + BlockMetrics::get(&m.unsupported_requests);
            let disk = json!({
                "requests": reads + writes + other,
                "read_requests": reads,
                "write_requests": writes,
                "bytes_read": BlockMetrics::get(&m.bytes_read) + ops_in * page,
                "bytes_written": BlockMetrics::get(&m.bytes_written) + ops_out * page,
                "malformed_requests": BlockMetrics::get(&m.malformed_requests),
                "io_errors": BlockMetrics::get(&m.io_errors),
            });
            (name.to_string(), disk)
        })
        .collect();
    json!({
        "format": FORMAT,
        "version": VERSION,
        "config": {
            "mem_mib": config.mem_mib,
            "user_pages_limit": config.user_pages,
            "user_frames": stats.guest.as_ref().map(|g| g.get("user_frames_total")),
            "swap_mib": swap_mib(&config.swap),
            "program": program,
            "args": args,
            "cmdline": config.cmdline,
            "evict": config.evict.name(),
            "fault_counters": config.fault_counters,
            "fault_around": config.fault_around,
        },
        "host": {
            "kvm": kvm.name,
            "hardware_assisted": kvm.hardware_assisted,
            "description": kvm.description,
            "kernel_mode": stats.guest.as_ref().and_then(GuestStats::kernel_mode),
        },
        "outcome": {
            "exit_status": run.outcome.exit_code(),
            "message": run.outcome.message(),
        },
        "time": {
            "wall_ms": stats.wall.as_secs_f64() * 1e3,
            "vcpu_ms": stats.vcpu_time.as_secs_f64() * 1e3,
        },
        "guest": guest,
        "vm_exits": {
            "total": stats.exits.total(),
            "by_reason": by_reason,
            "by_device": by_device,
        },
        "disks": disks,
        "page_ops": {
            "zero": BlockMetrics::get(&stats.page_ops.zero),
            "copy": BlockMetrics::get(&stats.page_ops.copy),
            "swap_in": BlockMetrics::get(&stats.page_ops.swap_in),
            "swap_out": BlockMetrics::get(&stats.page_ops.swap_out),
            "map": BlockMetrics::get(&stats.page_ops.map),
            "failed": BlockMetrics::get(&stats.page_ops.failed),
        },
    })
}

/// TSC cycles as microseconds at `tsc_khz`.
/// An upper bound on the `q` quantile (0 < q <= 1) of the fault times the log2
/// `histogram` counts (bucket `i`: `[2^i, 2^(i+1))` cycles): the end of the bucket it
/// falls in, or the longest fault `max` if that is less. `None` without faults.
fn percentile_bound(histogram: &[u64], q: f64, max: u64) -> Option<u64> {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the quantile, 1-based: at least 1, at most every fault.
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    let bucket = histogram.iter().position(|&n| {
        seen += n;
        seen >= rank
    })?;
    let end = 1u64.checked_shl(bucket as u32 + 1).unwrap_or(u64::MAX);
    Some(end.min(max.max(1)))
}

fn micros(cycles: u64, tsc_khz: u64) -> f64 {
    cycles as f64 * 1e3 / tsc_khz.max(1) as f64
}

/// Headings of the table's field groups, in order.
const GROUPS: [&str; 7] = [
    "page faults",
    "evictions",
    "disks",
    "file cache",
    "swap",
    "user frames",
    "kernel",
];

/// The group a field is listed under (`None`: not listed: the fault-time fields, shown
/// as a summary line instead, and the kernel mode and host kind, named in the heading).
fn group(name: &str) -> Option<&'static str> {
    Some(match name {
        n if n.starts_with("fault_cycles") => return None,
        "kernel_mode" | "host_kind" => return None,
        n if n.starts_with("faults") || n == "pages_mapped_around" => "page faults",
        n if n.starts_with("evict_") => "evictions",
        n if n.contains("_disk_") => "disks",
        n if n.starts_with("fs_cache_") => "file cache",
        n if n.starts_with("swap_") => "swap",
        n if n.starts_with("user_frames_") => "user frames",
        _ => "kernel",
    })
}

/// The report as a table for people.
pub fn table(config: &MachineConfig, run: &RunReport, kvm: KvmKind) -> String {
    let stats: &RunStats = &run.stats;
    let mut out = String::new();
    let name = if config.cmdline.is_empty() {
        "(no program)"
    } else {
        &config.cmdline
    };
    let mode = stats
        .guest
        .as_ref()
        .and_then(GuestStats::kernel_mode)
        .unwrap_or("unknown");
    let _ = writeln!(
        out,
        "stats for `{name}`: {} MiB RAM, {} MiB swap, {} eviction; KVM: {}; kernel mode: {mode}",
        config.mem_mib,
        swap_mib(&config.swap),
        config.evict.name(),
        kvm.description
    );
    if !config.fault_counters {
        let _ = writeln!(
            out,
            "  (--no-fault-counters: the faults_* and fault time counters stayed at 0)"
        );
    }
    if config.fault_around > 0 {
        let _ = writeln!(
            out,
            "  (--fault-around {}: pages_mapped_around pages came in without faults of their own)",
            config.fault_around
        );
    }
    match &stats.guest {
        None => {
            let _ = writeln!(out, "  (the kernel did not set its stats page up)");
        }
        Some(g) => {
            for heading in GROUPS {
                let _ = writeln!(out, "  {heading}");
                for (name, value) in g.named() {
                    if group(name) == Some(heading) {
                        let _ = writeln!(out, "    {name:<24} {value:>12}");
                    }
                }
            }
            // The shim's faults are not timed.
            let in_shim = g.get("faults_in_shim");
            let timed = g.get("faults") - in_shim.min(g.get("faults"));
            let shim_note = if in_shim > 0 {
                format!("; {in_shim} more resolved in the fast mode's shim, untimed")
            } else {
                String::new()
            };
            let max = g.get("fault_cycles_max");
            let bound = |q| {
                percentile_bound(&g.histogram, q, max).map_or("-".to_string(), |c| {
                    format!("{:.1}", micros(c, stats.tsc_khz))
                })
            };
            let _ = writeln!(
                out,
                "  fault time: mean {:.1} us, p50 <= {} us, p99 <= {} us, max {:.1} us ({} faults{shim_note}, TSC {} kHz)",
                micros(g.get("fault_cycles_sum") / timed.max(1), stats.tsc_khz),
                bound(0.5),
                bound(0.99),
                micros(max, stats.tsc_khz),
                timed,
                stats.tsc_khz
            );
        }
    }
    let _ = writeln!(out, "  VM exits {:>27}", stats.exits.total());
    for r in ExitReason::ALL {
        let n = stats.exits.get(r);
        if n > 0 {
            let _ = writeln!(out, "    {:<24} {n:>12}", r.name());
        }
    }
    for d in &run.devices {
        let _ = writeln!(out, "    {:<24} {:>12}", format!("at {}", d.name), d.exits);
    }
    let _ = writeln!(
        out,
        "  time: wall {:.1} ms, vCPU {:.1} ms",
        stats.wall.as_secs_f64() * 1e3,
        stats.vcpu_time.as_secs_f64() * 1e3
    );
    out
}

#[cfg(test)]
mod tests {
    use super::percentile_bound;

    #[test]
    fn percentile_bounds_come_from_the_histogram() {
        // 90 faults in [2^10, 2^11), 9 in [2^14, 2^15), 1 in [2^20, 2^21); longest 1.5M.
        let mut h = vec![0u64; 48];
        h[10] = 90;
        h[14] = 9;
        h[20] = 1;
        assert_eq!(percentile_bound(&h, 0.5, 1_500_000), Some(2048));
        assert_eq!(percentile_bound(&h, 0.9, 1_500_000), Some(2048));
        assert_eq!(percentile_bound(&h, 0.99, 1_500_000), Some(32768));
        assert_eq!(percentile_bound(&h, 1.0, 1_500_000), Some(1_500_000));
        // Capped by the longest fault; none without faults.
        assert_eq!(percentile_bound(&h, 0.5, 1500), Some(1500));
        assert_eq!(percentile_bound(&[0; 48], 0.5, 0), None);
    }
}
