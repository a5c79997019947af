//! End-to-end tests of the disks: files put into the guest and got back, persistent images
//! with `--disk`, the swap disk options, and the errors caught before boot.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{TempDir, boot_line, require_kvm, user_program, vmm, vmm_path};

#[test]
fn put_file_is_changed_by_the_guest_and_got_back() {
    if !require_kvm() {
        return;
    }
    let dir = TempDir::new("putget");
    let input = dir.file("input.txt", "Hello, disk! 123\n");
    let output = dir.path().join("output.txt");
    let put = format!("{}:selftest.io", input.display());
    let get = format!("selftest.io:{}", output.display());
    let run = vmm(&["run", "--self-test", "--put", &put, "--get", &get]);
    assert!(run.stdout.ends_with(" 0 failed\n"), "{run:?}");
    assert_eq!(run.status, Some(0), "{run:?}");
    // fs_put_file_is_uppercased rewrote the file in place.
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "HELLO, DISK! 123\n"
    );
}

#[test]
fn files_are_got_back_even_when_the_guest_fails() {
    if !require_kvm() {
        return;
    }
    let dir = TempDir::new("getfail");
    let input = dir.file("keep", "kept\n");
    let output = dir.path().join("back");
    let put = input.display().to_string();
    let get = format!("keep:{}", output.display());
    let run = vmm(&["run", "--test-hook", "panic", "--put", &put, "--get", &get]);
    assert_eq!(run.status, Some(125), "{run:?}");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "kept\n");
}

#[test]
fn put_files_land_on_the_disk_under_their_names() {
    if !require_kvm() {
        return;
    }
    let dir = TempDir::new("putnames");
    let a = dir.file("a", vec![1u8; 5000]);
    let b = dir.file("b", "b");
    let (a_back, b_back) = (dir.path().join("a.back"), dir.path().join("b.back"));
    let run = vmm(&[
        "run",
        "--fs-mib",
        "3",
        "--swap-mib",
        "0",
        "--put",
        a.to_str().unwrap(),
        "--put",
        &format!("{}:renamed", b.display()),
        "--get",
        &format!("a:{}", a_back.display()),
        "--get",
        &format!("renamed:{}", b_back.display()),
    ]);
    assert_eq!(run.stdout, boot_line(64, 3072, "no swap"), "{run:?}");
    assert_eq!(run.status, Some(0), "{run:?}");
    assert_eq!(std::fs::read(&a_back).unwrap(), vec![1u8; 5000]);
    assert_eq!(std::fs::read(&b_back).unwrap(), b"b");
}

#[test]
fn missing_guest_file_in_get_is_an_error() {
    if !require_kvm() {
        return;
    }
    let dir = TempDir::new("getmissing");
    let out = dir.path().join("nothing");
    let get = format!("nothing:{}", out.display());
    let run = vmm(&["run", "--fs-mib", "1", "--get", &get]);
    assert_eq!(run.stdout, boot_line(64, 1024, "65536 KiB swap"));
    let lines = run.stderr_lines();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(
        lines[0].starts_with("vmm: ") && lines[0].contains("nothing"),
        "{run:?}"
    );
    assert_eq!(run.status, Some(125));
    assert!(!out.exists());
}

#[test]
fn disk_option_uses_an_image_in_place() {
    if !require_kvm() {
        return;
    }
    let dir = TempDir::new("diskopt");
    let image = dir.path().join("fs.img");
    let image_arg = image.to_str().unwrap();
    let host = dir.file("selftest.io", "abc");

    let create = vmm(&["disk", "create", image_arg, "--mib", "2"]);
    assert_eq!(create.status, Some(0), "{create:?}");
    // --put with --disk adds the file to the image, and the guest's change persists.
    let run = vmm(&[
        "run",
        "--self-test",
        "--disk",
        image_arg,
        "--put",
        host.to_str().unwrap(),
    ]);
    assert_eq!(run.status, Some(0), "{run:?}");
    let ls = vmm(&["disk", "ls", image_arg]);
    assert_eq!(ls.stdout, "selftest.io 3\n", "{ls:?}");
    let got = dir.path().join("got");
    let get = vmm(&[
        "disk",
        "get",
        image_arg,
        &format!("selftest.io:{}", got.display()),
    ]);
    assert_eq!(get.status, Some(0), "{get:?}");
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "ABC");
    // A plain boot of the same image.
    let run = vmm(&["run", "--disk", image_arg, "--swap-mib", "0"]);
    assert_eq!(run.stdout, boot_line(64, 2048, "no swap"), "{run:?}");
}

#[test]
fn swap_file_option_creates_and_keeps_the_file() {
    if !require_kvm() {
        return;
    }
    let dir = TempDir::new("swapfile");
    let swap = dir.path().join("swap.img");
    let run = vmm(&[
        "run",
        "--fs-mib",
        "1",
        "--swap-file",
        swap.to_str().unwrap(),
        "--swap-mib",
        "8",
    ]);
    assert_eq!(run.stdout, boot_line(64, 1024, "8192 KiB swap"), "{run:?}");
    assert_eq!(std::fs::metadata(&swap).unwrap().len(), 8 << 20);
    // An existing file is used at its own size.
    let run = vmm(&[
        "run",
        "--fs-mib",
        "1",
        "--swap-file",
        swap.to_str().unwrap(),
    ]);
    assert_eq!(run.stdout, boot_line(64, 1024, "8192 KiB swap"), "{run:?}");
}

#[test]
fn bad_put_files_are_refused_before_boot() {
    let dir = TempDir::new("badput");
    let small = dir.file("small", "x");
    let big = dir.file("big", vec![0u8; 3 << 20]);

    let long_name = format!("{}:fifteen-bytes!!", small.display());
    let missing = dir.path().join("missing");
    let cases: [(Vec<String>, &str); 3] = [
        (vec!["--put".into(), long_name], "fifteen-bytes!!"),
        (
            vec!["--put".into(), missing.display().to_string()],
            "missing",
        ),
        (
            vec![
                "--fs-mib".into(),
                "1".into(),
                "--put".into(),
                big.display().to_string(),
            ],
            "do not fit in a 1 MiB disk",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["run".to_string()];
        all.extend(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let run = vmm(&all);
        assert_eq!(run.stdout, "", "{run:?}");
        let lines = run.stderr_lines();
        assert_eq!(lines.len(), 1, "{run:?}");
        assert!(
            lines[0].starts_with("vmm: ") && lines[0].contains(needle),
            "{run:?}"
        );
        assert_eq!(run.status, Some(125));
    }
}

/// Byte `i` of what `fs-cache write` writes.
fn fs_cache_pattern(i: u32) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 24) as u8
}

/// The block cache writes behind, and still nothing a program wrote is lost: 300 KiB (more
/// than the cache holds) written in 509-byte pieces, read back and written over, then the
/// file closed, the machine halted with the file open, or the process killed with it
/// open: `--get` gives every byte of the second pass back each time (the cache still held
/// the last part of it, dirty), and each of the file's 75 blocks went to the disk exactly
/// once per pass (its pieces are written in order, so a block is complete before the
/// cache lets it go).
#[test]
fn written_bytes_reach_the_disk_on_close_halt_and_kill() {
    if !require_kvm() {
        return;
    }
    const BYTES: u32 = 307_200;
    let expected: Vec<u8> = (0..BYTES).map(fs_cache_pattern).collect();
    let dir = TempDir::new("fs-cache-ends");
    let program = user_program("fs-cache").display().to_string();
    let bytes = BYTES.to_string();
    for (end, last_lines, status) in [
        ("close", "fs-cache: exit(0)\n", 0),
        ("halt", "(fs-cache) halting with the file open\n", 0),
        (
            "kill",
            "(fs-cache) a bad access with the file open\nfs-cache: exit(-1)\n",
            255,
        ),
    ] {
        let back = dir.path().join(format!("big-{end}"));
        let json = dir.path().join(format!("{end}.json"));
        let get = format!("big:{}", back.display());
        let json_arg = json.display().to_string();
        let run = vmm(&[
            "run",
            "--get",
            &get,
            "--stats-json",
            &json_arg,
            &program,
            "write",
            "big",
            &bytes,
            end,
        ]);
        assert_eq!(
            run.stdout,
            format!(
                "(fs-cache) create big, {BYTES} bytes\n(fs-cache) open big\n(fs-cache) wrote {BYTES} bytes in pieces of 509\n(fs-cache) read back {BYTES} bytes in pieces of 1021\n(fs-cache) wrote every byte again, changed\n{last_lines}"
            ),
            "{end}: {run:?}"
        );
        assert_eq!(run.status, Some(status), "{end}: {run:?}");
        let got = std::fs::read(&back).unwrap();
        assert_eq!(got.len(), expected.len(), "{end}");
        let first_bad = got.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(first_bad, None, "{end}: the first wrong byte");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(doc["guest"]["fs_cache_writebacks"], 150, "{end}");
    }
}

/// SIGINT and SIGTERM stop the guest instead of killing the VMM: it still copies the
/// `--get` files out and writes its statistics, says what happened in one line, and exits
/// 128 + the signal (130, 143), as a shell reports a command the signal ended.
#[test]
fn sigint_and_sigterm_stop_the_guest_and_files_still_come_back() {
    if !require_kvm() {
        return;
    }
    let dir = TempDir::new("signals");
    let kept = dir.file("kept", "kept across the signal\n");
    let program = user_program("read-stdin").display().to_string();
    for (signal, name, status) in [("-INT", "SIGINT", 130), ("-TERM", "SIGTERM", 143)] {
        let back = dir.path().join(format!("back-{name}"));
        let json = dir.path().join(format!("{name}.json"));
        let series = dir.path().join(format!("{name}.jsonl"));
        // read-stdin waits for input that never comes (stdin stays open, empty).
        let mut child = Command::new(vmm_path())
            .args(["run", "--timeout", "60", "--put"])
            .arg(&kept)
            .arg("--get")
            .arg(format!("kept:{}", back.display()))
            .arg("--stats-json")
            .arg(&json)
            .arg("--stats-series")
            .arg(&series)
            .args(["--stats-interval", "20", &program, "5"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vmm");
        // The guest runs once the series has a line.
        let start = Instant::now();
        while std::fs::read_to_string(&series).map_or(true, |s| s.lines().next().is_none()) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{name}: the guest never ran"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let killed = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(killed.success());
        let stdin = child.stdin.take();
        let output = child.wait_with_output().expect("wait for vmm");
        drop(stdin);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr,
            format!(
                "vmm: stopped the guest on {name}; --get files and statistics are written as usual\n"
            )
        );
        assert_eq!(output.status.code(), Some(status), "{name}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(&back).unwrap(),
            "kept across the signal\n",
            "{name}"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert!(
            doc["guest"]["syscalls"].as_u64().unwrap() > 0,
            "{name}: {doc}"
        );
    }
}

/// Runs `vmm ARGS` where writes past 2 MiB of any file fail with EFBIG (`ulimit -f 2048`,
/// SIGXFSZ ignored), as a full disk would refuse them; returns its stdout, stderr and
/// exit status.
fn vmm_with_file_size_limit(args: &str) -> (String, String, Option<i32>) {
    let script = format!(
        "trap '' XFSZ; ulimit -f 2048; exec {} {args}",
        vmm_path().display()
    );
    let output = Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.code(),
    )
}

/// A swap file the host cannot write (here: past the file-size limit, as a full disk
/// would refuse it) ends the process that needed the page, at once, as out of memory (it
/// was a livelock that ran into the timeout: every eviction tried every page, one failing
/// write each), and the VMM names the file and the host's error.
#[test]
fn a_swap_file_the_host_cannot_write_ends_the_process_and_is_named() {
    if !require_kvm() {
        return;
    }
    let dir = TempDir::new("swap-efbig");
    let swap = dir.path().join("swap.img");
    std::fs::File::create(&swap)
        .and_then(|f| f.set_len(32 << 20))
        .unwrap();
    let image = dir.path().join("fs.img");
    let made = vmm(&["disk", "create", image.to_str().unwrap(), "--mib", "4"]);
    assert_eq!(made.status, Some(0), "{made:?}");
    // Swap slots from 512 on lie past 2 MiB.
    let (stdout, stderr, status) = vmm_with_file_size_limit(&format!(
        "run --timeout 60 --mem 6 --disk {} --swap-file {} {} touch 2048",
        image.display(),
        swap.display(),
        user_program("paging-stats").display()
    ));
    assert_eq!(
        stdout, "paging-stats: out of memory\npaging-stats: exit(-1)\n",
        "{stderr}"
    );
    assert_eq!(
        stderr,
        format!(
            "vmm: swap file {}: a write failed: File too large (os error 27); the guest processes that needed swap were ended (give swap room on a disk with space, or --swap-mib 0)\n",
            swap.display()
        )
    );
    assert_eq!(status, Some(255));
}

/// A disk image the host cannot write fails the guest's file operation (here `create`,
/// whose clearing of the new file's blocks goes past the limit), and the VMM names the
/// image and the host's error.
#[test]
fn a_disk_image_the_host_cannot_write_fails_the_file_operation_and_is_named() {
    if !require_kvm() {
        return;
    }
    let dir = TempDir::new("disk-efbig");
    let swap = dir.path().join("swap.img");
    std::fs::File::create(&swap)
        .and_then(|f| f.set_len(4 << 20))
        .unwrap();
    let image = dir.path().join("fs.img");
    let made = vmm(&["disk", "create", image.to_str().unwrap(), "--mib", "8"]);
    assert_eq!(made.status, Some(0), "{made:?}");
    // The file needs 3 MB: its blocks past 2 MiB cannot be cleared.
    let (stdout, stderr, status) = vmm_with_file_size_limit(&format!(
        "run --timeout 60 --disk {} --swap-file {} {} write big 3000000 close",
        image.display(),
        swap.display(),
        user_program("fs-cache").display()
    ));
    assert_eq!(
        stdout,
        "(fs-cache) create big, 3000000 bytes\n(fs-cache) create big, 3000000 bytes: FAILED\nfs-cache: exit(1)\n",
        "{stderr}"
    );
    let prefix = format!("vmm: disk image {}: writing ", image.display());
    assert!(
        stderr.starts_with(&prefix)
            && stderr.ends_with(
                ": File too large (os error 27); the guest's file operations that needed it failed\n"
            )
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert_eq!(status, Some(1));
}
