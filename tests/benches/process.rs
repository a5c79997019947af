//! Process benchmarks: runs `target/user/bench-proc` (null system call, empty `write()`, a
//! one-byte `read()` from the block cache, `int 0x42` round trip, fork + exec + wait of a
//! program that does nothing, page faults of each kind),
//! which reports TSC cycles measured in user mode, and converts them to time with the TSC
//! rate measured on the host (the guest reads the host's TSC: KVM applies no offset here).
//! Each fault is also given as a ratio to the `int 0x42` round trip of the same run and to
//! the host's own anonymous page fault and 4 KiB `pread`, in a 64 MiB and a 2 GiB guest.
//! Every program runs in both kernel modes (`--kernel-mode classic` and `fast`), runs
//! interleaved, and each figure of the fast mode is given as a ratio to classic's of the
//! same run, beside the fast-mode issue's targets; so is the wall time of the `make run`
//! demo. The kernel's own figure of a user event handled at CPL 3 (`vmm run --bench`) is
//! the floor of a fast-mode system call.
//!
//! One run of a nested guest varies by tens of microseconds per fault, as much as the
//! swap-in target itself, so each program runs several times and the results are medians
//! (a target that compares two faults takes the median of their per-run difference).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{host_page_io_ns, kvm_kind, kvm_usable, user_program, vmm_path};

/// TSC ticks per second, measured against the host clock.
fn tsc_hz() -> f64 {
    // SAFETY: rdtsc only reads a counter.
    let (t0, c0) = (Instant::now(), unsafe { core::arch::x86_64::_rdtsc() });
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: as above.
    let (c1, t1) = (unsafe { core::arch::x86_64::_rdtsc() }, Instant::now());
    (c1 - c0) as f64 / (t1 - t0).as_secs_f64()
}

/// Runs `program` in a guest of `mem_mib` MiB (with `options`); returns its
/// `(name, cycles)` results.
fn guest_results(program: &str, mem_mib: u32, options: &[&str]) -> Vec<(String, f64)> {
    let output = Command::new(vmm_path())
        .arg("run")
        .args(options)
        .arg("--mem")
        .arg(mem_mib.to_string())
        .arg("--put")
        .arg(user_program("bench-true"))
        .arg(user_program(program))
        .stdin(Stdio::null())
        .output()
        .expect("spawn vmm");
    assert!(
        output.status.success(),
        "{program} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.strip_prefix("bench ")?.split_once(": ")?;
            let cycles = value.trim_end_matches(" cycles").parse().ok()?;
            Some((name.to_string(), cycles))
        })
        .collect()
}

/// The host's own anonymous page fault, in seconds: the median of 7 runs (one run varies
/// several-fold on a nested host).
fn host_anon_fault() -> f64 {
    median((0..7).map(|_| host_anon_fault_once()).collect())
}

/// One measurement of the host's anonymous page fault: first touches of fresh memory.
fn host_anon_fault_once() -> f64 {
    const PAGES: usize = 16384;
    let layout = std::alloc::Layout::from_size_align(PAGES * 4096, 4096).expect("layout");
    // SAFETY: the layout is not zero-sized; the memory is freed below with the same layout.
    let base = unsafe { std::alloc::alloc(layout) };
    assert!(!base.is_null(), "host allocation failed");
    let t0 = Instant::now();
    for i in 0..PAGES {
        // SAFETY: inside the allocation; a volatile store keeps the touch.
        unsafe { base.add(i * 4096).write_volatile(1) };
    }
    let per_page = t0.elapsed().as_secs_f64() / PAGES as f64;
    // SAFETY: allocated above with this layout.
    unsafe { std::alloc::dealloc(base, layout) };
    per_page
}

fn main() {
    assert!(
        kvm_usable(),
        "the process benchmark needs a read-write /dev/kvm"
    );
    let hz = tsc_hz();
    let anon = host_anon_fault();
    let pread = host_page_io_ns().1 / 1e9;
    println!(
        "process benchmarks (user mode, TSC at {:.0} MHz), KVM: {}",
        hz / 1e6,
        kvm_kind()
    );
    println!(
        "  host: anonymous page fault {:.2} us, 4 KiB pread {:.2} us",
        anon * 1e6,
        pread * 1e6
    );
    let kernel = kernel_bench_seconds(&["vm_exit", "user_event_round_trip", "cpl3_port_read"]);
    let (exit, user_event, cpl3_exit) = (kernel[0], kernel[1], kernel[2]);
    println!(
        "  guest: one bare VM exit {:.1} us from ring 0, {:.1} us from kernel code at CPL 3 (through the shim)",
        exit * 1e6,
        cpl3_exit * 1e6
    );
    let mut missed = Vec::new();
    // Fault costs must not grow with guest memory: measure a small and a large guest. Then
    // paging under pressure in a 16 MiB guest (eviction to swap, swap-in). Each program
    // runs in both kernel modes, runs interleaved so that drift hits both alike.
    for (program, mem_mib, runs) in [
        ("bench-proc", 64, 3),
        ("bench-proc", 2048, 3),
        ("bench-swap", 16, 5),
    ] {
        let mut classic_runs = Vec::new();
        let mut fast_runs = Vec::new();
        for _ in 0..runs {
            classic_runs.push(guest_results(program, mem_mib, &CLASSIC));
            fast_runs.push(guest_results(program, mem_mib, &FAST));
        }
        let (classic, fast) = (medians(&classic_runs), medians(&fast_runs));
        let get = |results: &[(String, f64)], name: &str| cycles_of(results, name) / hz;
        let int42 = get(&classic, "int42_round_trip");
        println!(
            "  {program} in a guest with {mem_mib} MiB (medians of {runs} runs per mode; ratios to the classic int 0x42 round trip and the host's own operations are classic mode's):"
        );
        for (name, cycles) in &classic {
            let s = cycles / hz;
            let f = get(&fast, name);
            let versus = format!("fast {:.1} us = {:.2}x classic", f * 1e6, f / s);
            if name.ends_with("_fault") {
                println!(
                    "    {name}: classic {:.1} us ({cycles:.0} cycles) = {:.2}x int 0x42, {:.0}x host fault, {:.0}x host pread; {versus}",
                    s * 1e6,
                    s / int42,
                    s / anon,
                    s / pread
                );
            } else {
                println!(
                    "    {name}: classic {:.1} us ({cycles:.0} cycles); {versus}",
                    s * 1e6
                );
            }
        }
        let zero = get(&classic, "zero_fill_fault");
        if program == "bench-proc" && mem_mib == 64 {
            let ratio = |name: &str| get(&fast, name) / get(&classic, name);
            println!(
                "    fast mode against classic (issue targets; host: {}):",
                kvm_kind()
            );
            for (name, target, what) in [
                ("null_syscall", 0.25, "null system call"),
                ("zero_fill_fault", 0.25, "zero-fill fault"),
                ("fork_exec_wait", 0.1, "fork+exec+wait"),
            ] {
                let r = ratio(name);
                println!("      {what}: fast {r:.2}x classic (target: at most {target}x)");
                if r.is_nan() || r > target {
                    missed.push(format!("fast {what} {r:.2}x classic > {target}x"));
                }
            }
            println!(
                "      floor of a fast-mode system call (a user event to the kernel at CPL 3 and back, vmm run --bench): {:.1} us = {:.2}x classic null system call",
                user_event * 1e6,
                user_event / get(&classic, "null_syscall")
            );
        }
        if program == "bench-proc" && mem_mib == 64 {
            // The performance issue's block-cache target, in each mode against the same
            // run's empty write().
            for (mode, results) in [("classic", &classic), ("fast", &fast)] {
                let r = get(results, "fs_read_1b") / get(results, "empty_write");
                println!(
                    "    {mode}: one-byte read() from the block cache {:.1} us = {r:.2}x an empty write() (target: at most 2x)",
                    get(results, "fs_read_1b") * 1e6
                );
                if r.is_nan() || r > 2.0 {
                    missed.push(format!(
                        "{mode} cached one-byte read {r:.2}x an empty write"
                    ));
                }
            }
        }
        if program == "bench-proc" {
            let ratio = zero / int42;
            println!("    classic zero-fill fault: {ratio:.2}x int 0x42 (target: at most 2x)");
            if ratio.is_nan() || ratio > 2.0 {
                missed.push(format!(
                    "zero-fill fault {ratio:.2}x int 0x42 ({mem_mib} MiB)"
                ));
            }
        } else {
            // The zero-fill fault the kernel resolves, as swap-in and eviction are: in the
            // fast mode the shim resolves the program's own (`zero_fill_fault`) itself.
            for (mode, all, zero) in [
                ("classic", &classic_runs, "zero_fill_fault"),
                ("fast", &fast_runs, "kernel_zero_fill_fault"),
            ] {
                let differences = |name: &str| {
                    let per_run: Vec<f64> = all
                        .iter()
                        .map(|r| (cycles_of(r, name) - cycles_of(r, zero)) / hz)
                        .collect();
                    (median(per_run.clone()), per_run)
                };
                let (extra, per_run) = differences("swap_in_fault");
                // One VM exit from where the kernel runs: ring 0, or CPL 3 in the fast mode.
                let allowed = if mode == "fast" { cpl3_exit } else { exit } + 2.0 * pread;
                println!(
                    "    {mode}: eviction (evict_fault - {zero}): {:.1} us",
                    differences("evict_fault").0 * 1e6
                );
                println!(
                    "    {mode}: swap-in - zero-fill ({zero}): {:.1} us (runs: {}; target: one VM exit + 2 host preads = {:.1} us)",
                    extra * 1e6,
                    per_run
                        .iter()
                        .map(|d| format!("{:.1}", d * 1e6))
                        .collect::<Vec<_>>()
                        .join(", "),
                    allowed * 1e6
                );
                if extra.is_nan() || extra > allowed {
                    missed.push(format!(
                        "{mode} swap-in - zero-fill {:.1} us > {:.1} us",
                        extra * 1e6,
                        allowed * 1e6
                    ));
                }
            }
        }
    }
    demo_wall_time(&mut missed);
    counter_cost();
    trace_cost();
    if !missed.is_empty() {
        println!("  MISSED: {}", missed.join("; "));
        std::process::exit(1);
    }
}

/// `vmm run` options of each kernel mode.
const CLASSIC: [&str; 2] = ["--kernel-mode", "classic"];
const FAST: [&str; 2] = ["--kernel-mode", "fast"];

/// The `make run` demo (`pressure-mix` in 10 MiB) and the heaviest paging program of the
/// end-to-end tests (`sort-seq` in 8 MiB, as the tests run it), each in both modes, runs
/// interleaved: wall time of the whole `vmm run`, medians of 3 each. Target: fast at least
/// 5x faster.
fn demo_wall_time(missed: &mut Vec<String>) {
    for (what, program, mem) in [
        ("make run demo", "pressure-mix", "10"),
        ("heaviest paging test", "sort-seq", "8"),
    ] {
        wall_time_in_both_modes(what, program, mem, missed);
    }
}

/// [`demo_wall_time`] for one program; also its worst single fault against its median
/// fault (the performance issue's bound: at most 20x), from each run's statistics: the
/// median of the runs' figures, so that one host hiccup in one run (a fast-mode fault is
/// ~100 us, a host preemption milliseconds) does not decide it, while a long fault the
/// kernel makes (a clock sweep) shows in every run.
fn wall_time_in_both_modes(what: &str, program: &str, mem: &str, missed: &mut Vec<String>) {
    const RUNS: usize = 3;
    let json =
        std::env::temp_dir().join(format!("vmm-bench-{}-{program}.json", std::process::id()));
    let run = |mode: &[&str]| {
        let t0 = Instant::now();
        let output = Command::new(vmm_path())
            .arg("run")
            .args(mode)
            .args(["--mem", mem, "--stats-json"])
            .arg(&json)
            .arg(user_program(program))
            .stdin(Stdio::null())
            .output()
            .expect("spawn vmm");
        let seconds = t0.elapsed().as_secs_f64();
        assert!(output.status.success(), "{program} failed");
        let text = std::fs::read_to_string(&json).expect("the stats document");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        (seconds, worst_over_median(&doc["guest"]))
    };
    let (mut classic, mut fast) = (Vec::new(), Vec::new());
    let (mut classic_worst, mut fast_worst) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (seconds, worst) = run(&CLASSIC);
        classic.push(seconds);
        classic_worst.push(worst);
        let (seconds, worst) = run(&FAST);
        fast.push(seconds);
        fast_worst.push(worst);
    }
    let _ = std::fs::remove_file(&json);
    let list = |runs: &[f64]| {
        runs.iter()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  {what} ({program}, {mem} MiB): worst single fault over the median fault, median of {RUNS} runs: classic {:.1}x ({}), fast {:.1}x ({}) (target: at most 20x)",
        median(classic_worst.clone()),
        list(&classic_worst),
        median(fast_worst.clone()),
        list(&fast_worst)
    );
    let (classic_worst, fast_worst) = (median(classic_worst), median(fast_worst));
    for (mode, worst) in [("classic", classic_worst), ("fast", fast_worst)] {
        if worst.is_nan() || worst > 20.0 {
            missed.push(format!(
                "{what}: {mode} worst fault {worst:.1}x the median > 20x"
            ));
        }
    }
    let (c, f) = (median(classic), median(fast));
    let speedup = c / f;
    println!(
        "  {what} ({program}, {mem} MiB; medians of {RUNS} runs each): classic {c:.2} s, fast {f:.2} s: fast {speedup:.2}x faster (target: at least 5x)"
    );
    if speedup.is_nan() || speedup < 5.0 {
        missed.push(format!(
            "{what}: fast {speedup:.2}x faster than classic < 5x"
        ));
    }
}

/// The longest fault of a run over its median fault (`guest` of `--stats-json`). The
/// median comes from the log2 histogram: within its bucket `[2^i, 2^(i+1))` it is placed
/// by its rank among the bucket's faults, spread evenly on a log scale.
fn worst_over_median(guest: &serde_json::Value) -> f64 {
    let buckets: Vec<u64> = guest["fault_cycles_log2"]
        .as_array()
        .expect("histogram")
        .iter()
        .map(|n| n.as_u64().expect("count"))
        .collect();
    let half = buckets.iter().sum::<u64>() as f64 / 2.0;
    let mut before = 0.0;
    for (i, &n) in buckets.iter().enumerate() {
        let n = n as f64;
        if n > 0.0 && before + n >= half {
            let median = 2f64.powf(i as f64 + (half - before) / n);
            return guest["fault_cycles_max"].as_u64().expect("max") as f64 / median;
        }
        before += n;
    }
    f64::NAN
}

/// Figures of the kernel's own benchmarks (`vmm run --bench`), in seconds, for `names`
/// (`bench NAME: N ns` lines): the median of 3 runs each.
fn kernel_bench_seconds(names: &[&str]) -> Vec<f64> {
    let runs: Vec<String> = (0..3)
        .map(|_| {
            let output = Command::new(vmm_path())
                .args(["run", "--bench"])
                .stdin(Stdio::null())
                .output()
                .expect("spawn vmm");
            String::from_utf8_lossy(&output.stdout).into_owned()
        })
        .collect();
    names
        .iter()
        .map(|name| {
            let prefix = format!("bench {name}: ");
            median(
                runs.iter()
                    .map(|out| {
                        out.lines()
                            .find_map(|l| l.strip_prefix(&prefix))
                            .and_then(|v| v.trim_end_matches(" ns").parse::<f64>().ok())
                            .map_or(f64::NAN, |ns| ns / 1e9)
                    })
                    .collect(),
            )
        })
        .collect()
}

/// The median of `values` (NaN if there are none).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The cycles `results` (one run) gives for `name`, or NaN.
fn cycles_of(results: &[(String, f64)], name: &str) -> f64 {
    results
        .iter()
        .find(|(n, _)| n == name)
        .map_or(f64::NAN, |(_, c)| *c)
}

/// Per-name medians over `runs`, in the first run's order.
fn medians(runs: &[Vec<(String, f64)>]) -> Vec<(String, f64)> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|(name, _)| {
            let values = runs.iter().map(|r| cycles_of(r, name)).collect();
            (name.clone(), median(values))
        })
        .collect()
}

/// The cost of the stats page's counters on the fault path: the zero-fill and lazy-load
/// faults of `bench-proc` with the counters on and off (`--no-fault-counters`), runs
/// interleaved so that drift on a noisy host hits both alike; medians of each.
fn counter_cost() {
    const RUNS: usize = 5;
    let mut on: Vec<Vec<(String, f64)>> = Vec::new();
    let mut off: Vec<Vec<(String, f64)>> = Vec::new();
    for _ in 0..RUNS {
        on.push(guest_results("bench-proc", 64, &[]));
        off.push(guest_results("bench-proc", 64, &["--no-fault-counters"]));
    }
    let median = |runs: &[Vec<(String, f64)>], name: &str| {
        median(runs.iter().map(|r| cycles_of(r, name)).collect())
    };
    println!(
        "  fault-path counters (bench-proc, 64 MiB, kernel mode {}, median of {RUNS} interleaved runs each):",
        tests::expected_kernel_mode()
    );
    for name in ["zero_fill_fault", "lazy_load_fault", "int42_round_trip"] {
        let (with, without) = (median(&on, name), median(&off, name));
        println!(
            "    {name}: {with:.0} cycles with counters, {without:.0} without: {:+.1}% (target: at most +5% for faults)",
            (with / without - 1.0) * 100.0
        );
    }
}

/// The cost of `--trace-faults` on the fault path: `bench-proc`'s faults with a trace and
/// without, in each kernel mode, runs interleaved; medians of each. (Off, the fault path
/// pays one load and branch; the A/B in the commit that added it measured that.)
fn trace_cost() {
    const RUNS: usize = 3;
    let trace = std::env::temp_dir().join(format!("bench-trace-{}.jsonl", std::process::id()));
    let trace_arg = trace.display().to_string();
    for mode in [CLASSIC, FAST] {
        let mut on: Vec<Vec<(String, f64)>> = Vec::new();
        let mut off: Vec<Vec<(String, f64)>> = Vec::new();
        for _ in 0..RUNS {
            let mut traced = mode.to_vec();
            traced.extend(["--trace-faults", &trace_arg]);
            on.push(guest_results("bench-proc", 64, &traced));
            off.push(guest_results("bench-proc", 64, &mode));
        }
        let median = |runs: &[Vec<(String, f64)>], name: &str| {
            median(runs.iter().map(|r| cycles_of(r, name)).collect())
        };
        println!(
            "  fault trace (bench-proc, 64 MiB, kernel mode {}, median of {RUNS} interleaved runs each):",
            mode[1]
        );
        for name in ["zero_fill_fault", "lazy_load_fault", "cow_copy_fault"] {
            let (with, without) = (median(&on, name), median(&off, name));
            println!(
                "    {name}: {with:.0} cycles traced, {without:.0} untraced: {:+.1}%",
                (with / without - 1.0) * 100.0
            );
        }
    }
    let _ = std::fs::remove_file(&trace);
}
