//! Helpers for the end-to-end tests and benchmarks: find the `vmm` binary and the user
//! programs, check that KVM is usable, run `vmm` capturing what it prints, make files in a
//! temporary directory, and show how output differs from what was expected.
//!
//! The binary is the one `make` builds (`target/release/vmm`); set `VMM_BIN` to test another.
//! Tests that need KVM call [`require_kvm`]: without a usable `/dev/kvm` they are skipped
//! with a notice, except when `CI` is set, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Path of the `vmm` binary under test.
pub fn vmm_path() -> PathBuf {
    let path = std::env::var_os("VMM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/vmm"));
    assert!(
        path.is_file(),
        "{} does not exist: run the tests with `make test`, which builds it first",
        path.display()
    );
    path
}

/// The repository's root (`--put` paths in the tests are relative to it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path of user program `name` as `make user` builds it (`target/user/NAME`).
pub fn user_program(name: &str) -> PathBuf {
    repo_root().join("target/user").join(name)
}

/// Whether `/dev/kvm` can be opened for reading and writing.
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// The kind of KVM this host has, for benchmark reports: what `vmm --stats` reports.
pub fn kvm_kind() -> &'static str {
    vmm::stats::KvmKind::detect().description
}

/// The short name of this host's kind of KVM (`pvm`, `vmx`, `svm` or `unknown`), as
/// reports name it in tables.
pub fn kvm_kind_name() -> &'static str {
    vmm::stats::KvmKind::detect().name
}

/// The kernel mode `vmm run` picks here without `--kernel-mode`: the one `VMM_KERNEL_MODE`
/// names (`make test` runs the end-to-end tests once per mode), or the host's best.
pub fn expected_kernel_mode() -> &'static str {
    match std::env::var("VMM_KERNEL_MODE").as_deref() {
        Ok("fast") => "fast",
        Ok("classic") => "classic",
        _ => abi::boot::KernelMode::best_for(vmm::stats::KvmKind::detect().host_kind()).name(),
    }
}

/// True if KVM tests can run. Without KVM: panics when `CI` is set (CI must run them),
/// otherwise prints a notice and returns false so the caller can return early.
pub fn require_kvm() -> bool {
    if kvm_usable() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "/dev/kvm is missing or not read-write, and CI is set: KVM tests must run in CI"
    );
    eprintln!("skipping: /dev/kvm is missing or not read-write");
    false
}

/// What one `vmm` run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Standard output split into lines.
    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Standard error split into lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

/// Runs `vmm ARGS...` with no standard input and waits for it.
pub fn vmm(args: &[&str]) -> Run {
    vmm_in(args, None)
}

/// Runs `vmm ARGS...` in directory `dir` (if given).
pub fn vmm_in(args: &[&str], dir: Option<&Path>) -> Run {
    let mut command = Command::new(vmm_path());
    command.args(args).stdin(Stdio::null());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let start = Instant::now();
    let output = command.output().expect("spawn vmm");
    finished(&output, start)
}

/// Runs `vmm ARGS...` with `input` on its standard input (the guest's console input),
/// which then ends.
pub fn vmm_with_input(args: &[&str], input: &[u8]) -> Run {
    use std::io::Write;
    let mut child = Command::new(vmm_path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vmm");
    let start = Instant::now();
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input).expect("write the console input");
    drop(stdin);
    let output = child.wait_with_output().expect("wait for vmm");
    finished(&output, start)
}

/// The [`Run`] of a finished `vmm` that started at `start`.
fn finished(output: &std::process::Output, start: Instant) -> Run {
    Run {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// A fresh, empty directory for one test's files, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/vmm-test-NAME-PID`.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vmm-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to a new file `name` in the directory; returns its path.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write a test file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Expected and actual output side by side, line by line, marking the differing lines with
/// `!` (for assertion messages).
pub fn line_diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i).copied(), a.get(i).copied());
        let mark = if x == y { ' ' } else { '!' };
        out += &format!(
            "{mark} expected {:<50} | got {}\n",
            x.unwrap_or("<none>"),
            y.unwrap_or("<none>")
        );
    }
    if !actual.is_empty() && !actual.ends_with('\n') {
        out += "! output does not end with a newline\n";
    }
    out
}

/// Path of the guest kernel ELF that `make` builds.
pub fn kernel_elf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/x86_64-unknown-none/release/guest-kernel")
}

/// The kernel's line for a plain boot (no program): a guest of `mem_mib` MiB with a
/// `fs_kib` KiB file-system disk and `swap` ("N KiB swap" or "no swap").
pub fn boot_line(mem_mib: u64, fs_kib: u64, swap: &str) -> String {
    format!("kernel: {mem_mib} MiB RAM, {fs_kib} KiB fs disk, {swap}; no program\n")
}

/// Mean ns of the host's own 4 KiB pwrite and 4 KiB pread on a sparse file like the VMM's
/// disks (the benchmarks' yardstick for guest disk and fault costs).
pub fn host_page_io_ns() -> (f64, f64) {
    use std::os::unix::fs::FileExt;
    const PAGE: usize = 4096;
    const PAGES: u64 = 64;
    const ROUNDS: u32 = 20;
    let dir = TempDir::new("disk-bench");
    let path = dir.path().join("disk.img");
    let file = std::fs::OpenOptions::new()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_diff_marks_only_the_differing_lines() {
        assert_eq!(
            line_diff("a\nb\n", "a\nc"),
            format!(
                "  expected {:<50} | got a\n! expected {:<50} | got c\n\
                 ! output does not end with a newline\n",
                "a", "b"
            )
        );
        assert_eq!(
            line_diff("a\n", "a\nextra\n"),
            format!(
                "  expected {:<50} | got a\n! expected {:<50} | got extra\n",
                "a", "<none>"
            )
        );
    }

    #[test]
    fn temp_dir_files_hold_their_contents_and_go_with_the_dir() {
        let dir = TempDir::new("lib-self-check");
        let path = dir.file("f.txt", "abc");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abc");
        let root = dir.path().to_path_buf();
        drop(dir);
        assert!(!root.exists());
    }
}
