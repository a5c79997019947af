//! Kernel and disk benchmarks, from one `vmm run --bench`:
//! - what the kernel measured in ring 0 (context switch, semaphore wake-up round trip,
//!   timer tick, 4 KiB disk requests), as reported;
//! - the guest's 4 KiB page read and write latency on each disk beside the host's own 4 KiB
//!   `pread`/`pwrite` on the same kind of file (sparse, in the temporary directory)
//!   measured in the same run, with the ratio, and the VM exits per request (target: one).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::Instant;

use tests::{TempDir, kvm_kind, kvm_usable, vmm_path};

const PAGE: usize = 4096;
const PAGES: u64 = 64;
const ROUNDS: u32 = 20;

/// Mean ns of a 4 KiB pwrite and of a 4 KiB pread on a sparse file like the VMM's disks.
fn host_latency_ns() -> (f64, f64) {
    let dir = TempDir::new("disk-bench");
    let path = dir.path().join("disk.img");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.set_len(64 << 20).unwrap();
    let mut page = vec![0x5au8; PAGE];
    let (mut write_ns, mut read_ns) = (0u128, 0u128);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for i in 0..PAGES {
            file.write_all_at(&page, i * PAGE as u64).unwrap();
        }
        write_ns += start.elapsed().as_nanos();
        let start = Instant::now();
        for i in 0..PAGES {
            file.read_exact_at(&mut page, i * PAGE as u64).unwrap();
        }
        read_ns += start.elapsed().as_nanos();
    }
    let ops = (ROUNDS as u64 * PAGES) as f64;
    (write_ns as f64 / ops, read_ns as f64 / ops)
}

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
    let (host_write, host_read) = host_latency_ns();
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
