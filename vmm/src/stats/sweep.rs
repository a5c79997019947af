//! `vmm sweep --mem 8,16,32,64 [--evict clock,fifo,...] [-j N] [RUN OPTIONS] PROGRAM
//! [ARGS]`: the same run once per RAM size (and eviction policy), each on fresh disks,
//! with the guest's console discarded, N guests at a time (default: one per processor);
//! then one table (or JSON document) of what paging did in each run, in the order of the
//! sizes. Progress goes to stderr as each run ends. `--matrix` and `--merge` split the
//! grid across machines.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use super::KvmKind;
use crate::cli::{EvictArg, SweepArgs};
use crate::run::{self, RunReport};

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("sweep: {0}")]
    Options(String),
}

/// One size's result: the run's report, or why it could not run (such as a size too
/// small for the kernel), which does not stop the sweep.
#[derive(Debug)]
pub struct Row {
    pub mem_mib: u64,
    /// The eviction policy of the run.
    pub evict: &'static str,
    pub report: Result<RunReport, String>,
}

impl Row {
    /// The exit status `vmm run` would have had.
    fn exit_code(&self) -> u8 {
        self.report
            .as_ref()
            .map_or(crate::EXIT_VMM_FAILURE, |r| r.outcome.exit_code())
    }

    /// The kernel mode the run's kernel reported, if it ran.
    fn kernel_mode(&self) -> Option<&'static str> {
        let r = self.report.as_ref().ok()?;
        r.stats.guest.as_ref()?.kernel_mode()
    }

    fn wall_ms(&self) -> Option<f64> {
        let r = self.report.as_ref().ok()?;
        Some(r.stats.wall.as_secs_f64() * 1e3)
    }

    /// A column's value; `None` if the run did not happen or the kernel kept no stats.
    fn column(&self, stats: &[&str]) -> Option<u64> {
        let g = self.report.as_ref().ok()?.stats.guest.as_ref()?;
        Some(stats.iter().map(|name| g.get(name)).sum())
    }
}

/// The columns of the table and the JSON rows: a name and the guest counters it adds up.
const COLUMNS: [(&str, &[&str]); 9] = [
    ("user_frames", &["user_frames_total"]),
    ("faults", &["faults"]),
    ("zero_fill", &["faults_zero_fill"]),
    ("elf_load", &["faults_elf_load"]),
    ("swap_in", &["faults_swap_in"]),
    (
        "evictions",
        &["evict_swap", "evict_writeback", "evict_drop"],
    ),
    ("swap_writes", &["swap_writes"]),
    ("swap_reads", &["swap_reads"]),
    ("oom_kills", &["faults_out_of_memory"]),
];

/// The sweep's cells: every size with every policy of `--evict` (or the run options'
/// one: `None`), sizes first.
fn grid(args: &SweepArgs) -> Vec<(u64, Option<EvictArg>)> {
    let policies: Vec<Option<EvictArg>> = if args.evict.is_empty() {
        vec![None]
    } else {
        args.evict.iter().copied().map(Some).collect()
    };
    args.mem
        .iter()
        .flat_map(|&mem| policies.iter().map(move |&p| (mem, p)))
        .collect()
}

/// Runs the sweep, reporting progress on stderr; returns one row per size, in order.
pub fn run(args: &SweepArgs) -> Result<Vec<Row>, SweepError> {
    // Check the options once, before the first run.
    let cells = grid(args);
    let first = args
        .run_args(cells[0].0, cells[0].1)
        .map_err(|e| SweepError::Options(e.to_string()))?;
    if first.program.is_none() {
        return Err(SweepError::Options(
            "give the program to run (a user program, e.g. target/user/NAME)".into(),
        ));
    }
    if first.gdb.is_some() || first.trace_faults.is_some() || first.profile.is_some() {
        return Err(SweepError::Options(
            "--gdb, --trace-faults and --profile serve one run: use them with `vmm run` at the size and policy to look at".into(),
        ));
    }
    let total = cells.len();
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        |j| j as usize,
    );
    // Each worker takes the next size until none is left (or SIGINT/SIGTERM stops the
    // sweep); rows keep the order of the sizes.
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Row>>> = cells.iter().map(|_| Mutex::new(None)).collect();
    let work = || -> Result<(), SweepError> {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= total || crate::machine::interrupted().is_some() {
                return Ok(());
            }
            let (mem, policy) = cells[i];
            let run_args = args
                .run_args(mem, policy)
                .map_err(|e| SweepError::Options(e.to_string()))?;
            let mut config = run_args.machine_config();
            let evict = config.evict.name();
            config.quiet = true;
            config.series = None;
            // This thread goes on to build the next machine: only the machine's threads
            // are filtered.
            if config.seccomp == crate::seccomp::Seccomp::All {
                config.seccomp = crate::seccomp::Seccomp::Threads;
            }
            let started = Instant::now();
            let report = run::run(&config).map_err(|e| e.to_string());
            let status = match &report {
                Err(error) => format!("not run: {error}"),
                Ok(r) => match r.outcome.message() {
                    Some(message) => format!("{message} (exit {})", r.outcome.exit_code()),
                    None => format!("exit {}", r.outcome.exit_code()),
                },
            };
            let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
            let cell = match policy {
                Some(_) => format!("--mem {mem} --evict {evict}"),
                None => format!("--mem {mem}"),
            };
            eprintln!(
                "vmm sweep: [{finished}/{total}] {cell} ... {status}, {:.1} s",
                started.elapsed().as_secs_f64()
            );
            *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(Row {
                mem_mib: mem,
                evict,
                report,
            });
        }
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs.min(total)).map(|_| scope.spawn(work)).collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })?;
    // SIGINT or SIGTERM: the rows of the runs that ended.
    Ok(slots
        .into_iter()
        .filter_map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect())
}

/// One row as JSON: the size, policy and exit status, the error if it did not run, the
/// columns, the wall time, the kernel mode and the host's kind of KVM (so rows merged
/// from several machines keep theirs).
fn row_value(row: &Row, kvm: KvmKind) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("mem_mib".into(), row.mem_mib.into());
    map.insert("evict".into(), row.evict.into());
    map.insert("exit_status".into(), row.exit_code().into());
    let error = row.report.as_ref().err().cloned();
    map.insert("error".into(), error.into());
    for (name, stat) in COLUMNS {
        map.insert(name.into(), row.column(stat).into());
    }
    map.insert("wall_ms".into(), row.wall_ms().into());
    map.insert("kernel_mode".into(), row.kernel_mode().into());
    map.insert("host".into(), kvm.name.into());
    Value::Object(map)
}

/// The rows as a table.
pub fn table(rows: &[Row], kvm: KvmKind) -> String {
    let rows: Vec<Value> = rows.iter().map(|row| row_value(row, kvm)).collect();
    table_of(&rows)
}

/// JSON rows ([`row_value`]) as a table.
fn table_of(rows: &[Value]) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:>8} {:>7} {:>6}", "mem_mib", "evict", "exit");
    for (name, _) in COLUMNS {
        let _ = write!(out, " {name:>12}");
    }
    let _ = writeln!(out, " {:>10} {:>8} {:>8}", "wall_ms", "mode", "host");
    let cell = |row: &Value, name: &str| match &row[name] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(ms) if name == "wall_ms" => format!("{ms:.1}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    };
    for row in rows {
        let _ = write!(
            out,
            "{:>8} {:>7} {:>6}",
            cell(row, "mem_mib"),
            cell(row, "evict"),
            cell(row, "exit_status")
        );
        for (name, _) in COLUMNS {
            let _ = write!(out, " {:>12}", cell(row, name));
        }
        let _ = writeln!(
            out,
            " {:>10} {:>8} {:>8}",
            cell(row, "wall_ms"),
            cell(row, "kernel_mode"),
            cell(row, "host")
        );
    }
    out
}

/// The rows as one JSON document.
pub fn json(args: &SweepArgs, rows: &[Row], kvm: KvmKind) -> Value {
    let rows: Vec<Value> = rows.iter().map(|row| row_value(row, kvm)).collect();
    json!({
        "format": "vmm-sweep",
        "version": 1,
        "run": args.run,
        "host": { "kvm": kvm.name, "hardware_assisted": kvm.hardware_assisted },
        "rows": rows,
    })
}

/// `vmm sweep --matrix`: the grid as a list of jobs, one per size and policy, each the
/// `vmm` arguments of a one-cell sweep whose `--json` document `vmm sweep --merge` joins:
/// for a CI matrix or a batch scheduler to fan out beyond one machine.
pub fn matrix(args: &SweepArgs) -> Value {
    let jobs: Vec<Value> = grid(args)
        .into_iter()
        .map(|(mem, evict)| {
            let policy = evict.map(|e| abi::stats::EvictPolicy::from(e).name());
            let mut argv = vec!["sweep".to_string(), "--mem".into(), mem.to_string()];
            if let Some(p) = policy {
                argv.extend(["--evict".to_string(), p.to_string()]);
            }
            argv.push("--json".into());
            argv.extend(args.run.iter().cloned());
            json!({ "mem_mib": mem, "evict": policy, "args": argv })
        })
        .collect();
    json!({ "format": "vmm-sweep-matrix", "version": 1, "jobs": jobs })
}

/// Why `--merge` could not join its documents.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("sweep --merge: cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("sweep --merge: {0} is not the JSON document of a vmm sweep (--json): {1}")]
    Format(String, String),
}

/// `vmm sweep --merge FILE...`: the rows of several sweeps' `--json` documents in one
/// document, ordered by size then policy (each row keeps its host and kernel mode); the
/// `run` of the first.
pub fn merge(files: &[String]) -> Result<Value, MergeError> {
    let mut rows = Vec::new();
    let mut run = Value::Null;
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| MergeError::Read(file.clone(), e))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| MergeError::Format(file.clone(), e.to_string()))?;
        if doc["format"] != "vmm-sweep" || doc["version"] != 1 {
            return Err(MergeError::Format(
                file.clone(),
                "no \"format\": \"vmm-sweep\", \"version\": 1".into(),
            ));
        }
        let Some(found) = doc["rows"].as_array() else {
            return Err(MergeError::Format(file.clone(), "no \"rows\" list".into()));
        };
        if run.is_null() {
            run = doc["run"].clone();
        }
        rows.extend(found.iter().cloned());
    }
    rows.sort_by(|a, b| {
        (a["mem_mib"].as_u64(), a["evict"].as_str())
            .cmp(&(b["mem_mib"].as_u64(), b["evict"].as_str()))
    });
    Ok(json!({ "format": "vmm-sweep", "version": 1, "run": run, "rows": rows }))
}

/// The rows of a merged document as a table.
pub fn merged_table(doc: &Value) -> String {
    table_of(doc["rows"].as_array().map_or(&[][..], Vec::as_slice))
}

/// The sweep's miss-ratio curve (`--plot`): page faults against RAM in MiB, one line per
/// eviction policy, from the runs that ended with counters.
pub fn curves_svg(rows: &[Row]) -> String {
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for row in rows {
        let Some(faults) = row.column(&["faults"]) else {
            continue;
        };
        let point = (row.mem_mib as f64, faults as f64);
        match lines.iter_mut().find(|(name, _)| name == row.evict) {
            Some((_, points)) => points.push(point),
            None => lines.push((row.evict.to_string(), vec![point])),
        }
    }
    super::plot::render_curves_svg("Page faults against RAM", "RAM (MiB)", &lines)
}
