//! Boot benchmark: wall time from starting `vmm run` to its exit after the idle kernel
//! powers off (process start, VM creation, kernel boot, power-off and VM teardown), the
//! median of 20 runs, for a small and a large guest. Target: median at most 10 ms for both,
//! i.e. boot cost does not grow with RAM. Exits 1 if a target is missed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{kvm_kind, kvm_usable, vmm_path};

const RUNS: usize = 20;
const WARMUP_RUNS: usize = 2;
const TARGET: Duration = Duration::from_millis(10);

fn boot_once(mem_mib: u64) -> Duration {
    let start = Instant::now();
    let status = Command::new(vmm_path())
        .args(["run", "--mem", &mem_mib.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("spawn vmm");
    let elapsed = start.elapsed();
    assert!(status.success(), "vmm run --mem {mem_mib} failed: {status}");
    elapsed
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no options.
    assert!(
        kvm_usable(),
        "the boot benchmark needs a read-write /dev/kvm"
    );
    println!(
        "boot-to-power-off of an idle kernel, {RUNS} runs each, KVM: {}",
        kvm_kind()
    );
    let mut missed = false;
    for mem_mib in [64, 4096] {
        for _ in 0..WARMUP_RUNS {
            boot_once(mem_mib);
        }
        let mut times: Vec<Duration> = (0..RUNS).map(|_| boot_once(mem_mib)).collect();
        times.sort();
        let median = (times[RUNS / 2 - 1] + times[RUNS / 2]) / 2;
        let verdict = if median <= TARGET { "ok" } else { "MISSED" };
        missed |= median > TARGET;
        println!(
            "  --mem {mem_mib:>5}: median {:6.2} ms  min {:6.2} ms  max {:6.2} ms  (target <= {} ms: {verdict})",
            ms(median),
            ms(times[0]),
            ms(times[RUNS - 1]),
            TARGET.as_millis()
        );
    }
    if missed {
        std::process::exit(1);
    }
}
