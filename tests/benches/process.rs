//! Process benchmarks: runs `target/user/bench-proc` (null system call, `int 0x42` round
//! trip, fork + exec + wait of a program that does nothing), which reports TSC cycles
//! measured in user mode, and converts them to time with the TSC rate measured on the host
//! (the guest reads the host's TSC: KVM applies no offset here).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{kvm_kind, kvm_usable, vmm_path};

/// TSC ticks per second, measured against the host clock.
fn tsc_hz() -> f64 {
    // SAFETY: rdtsc only reads a counter.
    let (t0, c0) = (Instant::now(), unsafe { core::arch::x86_64::_rdtsc() });
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: as above.
    let (c1, t1) = (unsafe { core::arch::x86_64::_rdtsc() }, Instant::now());
    (c1 - c0) as f64 / (t1 - t0).as_secs_f64()
}

fn main() {
    assert!(
        kvm_usable(),
        "the process benchmark needs a read-write /dev/kvm"
    );
    let user = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/user");
    let output = Command::new(vmm_path())
        .arg("run")
        .arg("--put")
        .arg(user.join("bench-true"))
        .arg(user.join("bench-proc"))
        .stdin(Stdio::null())
        .output()
        .expect("spawn vmm");
    assert!(
        output.status.success(),
        "bench-proc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hz = tsc_hz();
    println!(
        "process benchmarks (user mode, TSC at {:.0} MHz), KVM: {}",
        hz / 1e6,
        kvm_kind()
    );
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(rest) = line.strip_prefix("bench ") else {
            continue;
        };
        let Some((name, value)) = rest.split_once(": ") else {
            continue;
        };
        let cycles: f64 = value
            .trim_end_matches(" cycles")
            .parse()
            .unwrap_or(f64::NAN);
        println!("  {name}: {:.1} us ({cycles:.0} cycles)", cycles / hz * 1e6);
    }
}
