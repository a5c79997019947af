//! Kernel and disk benchmarks, from one `vmm run --bench`:
//! - what the kernel measured in ring 0 (context switch, semaphore wake-up round trip,
//!   timer tick, 4 KiB disk requests), as reported;
//! - the guest's 4 KiB page read and write latency on each disk beside the host's own 4 KiB
//!   `pread`/`pwrite` on the same kind of file (sparse, in the temporary directory)
//!   measured in the same run, with the ratio, and the VM exits per request (target: one).

use std::process::{Command, Stdio};

use tests::{host_page_io_ns, kvm_kind, kvm_usable, vmm_path};

/// The number in a `bench NAME: VALUE ...` line.
fn value(lines: &str, name: &str) -> Option<f64> {
    let prefix = format!("bench {name}: ");
    lines
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|v| v.parse().ok())
}

fn main() {
    assert!(
        kvm_usable(),
        "the disk benchmark needs a read-write /dev/kvm"
    );
    let (host_write, host_read) = host_page_io_ns();
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
    let guest = String::from_utf8_lossy(&output.stdout);

    println!("kernel micro-benchmarks (ring 0), KVM: {}", kvm_kind());
    for line in guest.lines() {
        println!("  {}", line.trim_start_matches("bench "));
    }

    println!(
        "disk 4 KiB page latency, guest against host, KVM: {}",
        kvm_kind()
    );
    println!(
        "  host pwrite {:.1} us, host pread {:.1} us (sparse file, page cache)",
        host_write / 1e3,
        host_read / 1e3
    );
    for disk in ["fs_disk", "swap_disk"] {
        for (op, host) in [("write", host_write), ("read", host_read)] {
            let Some(ns) = value(&guest, &format!("{disk}_{op}_4k")) else {
                println!("  {disk} {op}: not measured");
                continue;
            };
            println!(
                "  {disk} {op}: guest {:.1} us = {:.0}x the host's p{op}",
                ns / 1e3,
                ns / host
            );
        }
        if let Some(line) = guest
            .lines()
            .find(|l| l.starts_with(&format!("bench {disk}_exits_per_request")))
        {
            println!("  {}", line.trim_start_matches("bench "));
        }
    }
}
