//! Kernel micro-benchmarks: boots `vmm run --bench` and reports what the kernel measured
//! (context switch, semaphore wake-up round trip, timer tick), with the kind of KVM.

use std::process::{Command, Stdio};

use tests::{kvm_kind, kvm_usable, vmm_path};

fn main() {
    assert!(
        kvm_usable(),
        "the kernel benchmarks need a read-write /dev/kvm"
    );
    let output = Command::new(vmm_path())
        .args(["run", "--bench"])
        .stdin(Stdio::null())
        .output()
        .expect("spawn vmm");
    assert!(
        output.status.success(),
        "vmm run --bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("kernel micro-benchmarks (ring 0), KVM: {}", kvm_kind());
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        println!("  {}", line.trim_start_matches("bench "));
    }
}
