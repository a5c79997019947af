//! End-to-end tests of `vmm disk`: each command run through the built binary, checked by
//! exit status and the exact lines printed. No KVM needed.

use tests::{TempDir, vmm, vmm_in};

/// Exit status of every `vmm` failure.
const EXIT_FAILURE: Option<i32> = Some(125);

/// Runs `vmm disk ARGS...` and asserts it succeeded silently on stderr; returns stdout.
fn disk_ok(args: &[&str]) -> String {
    let run = vmm(&[&["disk"], args].concat());
    assert_eq!(run.status, Some(0), "{args:?}: {}", run.stderr);
    assert_eq!(run.stderr, "", "{args:?}");
    run.stdout
}

/// Runs `vmm disk ARGS...`, asserts it failed with status 125 and nothing on stdout;
/// returns the stderr lines.
fn disk_err(args: &[&str]) -> Vec<String> {
    let run = vmm(&[&["disk"], args].concat());
    assert_eq!(run.status, EXIT_FAILURE, "{args:?}: {}", run.stderr);
    assert_eq!(run.stdout, "", "{args:?}");
    run.stderr_lines().iter().map(|l| l.to_string()).collect()
}

fn text(path: &std::path::Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

#[test]
fn create_put_ls_get_rm() {
    let dir = TempDir::new("disk-cli");
    let image = dir.path().join("disk.img");
    let image = text(&image);
    let blob: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let host_a = dir.file("hello.txt", b"hello, disk\n");
    let host_b = dir.file("blob.bin", &blob);

    assert_eq!(disk_ok(&["create", image, "--mib", "2"]), "");
    assert_eq!(std::fs::metadata(image).unwrap().len(), 2 * 1024 * 1024);
    assert_eq!(disk_ok(&["ls", image]), "");

    let b_arg = format!("{}:data", text(&host_b));
    assert_eq!(disk_ok(&["put", image, text(&host_a), &b_arg]), "");
    assert_eq!(disk_ok(&["ls", image]), "data 10000\nhello.txt 12\n");

    // GUEST alone lands in the current directory; GUEST:HOST goes where it says.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let run = vmm_in(&["disk", "get", image, "hello.txt"], Some(&out));
    assert_eq!((run.status, run.stderr.as_str()), (Some(0), ""));
    assert_eq!(
        std::fs::read(out.join("hello.txt")).unwrap(),
        b"hello, disk\n"
    );
    let copy = dir.path().join("copy.bin");
    disk_ok(&["get", image, &format!("data:{}", text(&copy))]);
    assert_eq!(std::fs::read(&copy).unwrap(), blob);

    assert_eq!(disk_ok(&["rm", image, "hello.txt"]), "");
    assert_eq!(disk_ok(&["ls", image]), "data 10000\n");
    disk_ok(&["put", image, &format!("{}:again", text(&host_a))]);
    assert_eq!(disk_ok(&["ls", image]), "again 12\ndata 10000\n");
}

#[test]
fn default_size_is_8_mib() {
    let dir = TempDir::new("disk-cli-default");
    let image = dir.path().join("disk.img");
    disk_ok(&["create", text(&image)]);
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 8 * 1024 * 1024);
}

#[test]
fn errors() {
    let dir = TempDir::new("disk-cli-errors");
    let missing = dir.path().join("missing.img");
    assert_eq!(
        disk_err(&["ls", text(&missing)]),
        [format!(
            "vmm: cannot open disk image {}: No such file or directory (os error 2)",
            text(&missing)
        )]
    );

    let image = dir.path().join("disk.img");
    let image = text(&image);
    disk_ok(&["create", image, "--mib", "1"]);
    let host = dir.file("f", b"x");
    assert_eq!(
        disk_err(&["put", image, &format!("{}:fifteen15bytes!", text(&host))]),
        [
            "vmm: file name \"fifteen15bytes!\" is 15 bytes long, but the disk format holds \
          names of at most 14 bytes"
        ]
    );
    let long_host = dir.file("a-long-host-name.txt", b"x");
    assert_eq!(
        disk_err(&["put", image, text(&long_host)]),
        [
            "vmm: file name \"a-long-host-name.txt\" is 20 bytes long, but the disk format \
          holds names of at most 14 bytes"
        ],
        "the default guest name is checked too"
    );
    assert_eq!(
        disk_err(&["get", image, "nope"]),
        [format!("vmm: no file named \"nope\" in disk image {image}")]
    );
    assert_eq!(
        disk_err(&["rm", image, "nope"]),
        [format!("vmm: no file named \"nope\" in disk image {image}")]
    );
    let absent = dir.path().join("absent");
    assert_eq!(
        disk_err(&["put", image, text(&absent)]),
        [format!(
            "vmm: cannot read {}: No such file or directory (os error 2)",
            text(&absent)
        )]
    );
    disk_ok(&["put", image, text(&host)]);
    assert_eq!(
        disk_err(&["put", image, text(&host)]),
        [format!(
            "vmm: disk image {image} already holds a file named \"f\"; remove it first"
        )]
    );
    assert_eq!(
        disk_ok(&["ls", image]),
        "f 1\n",
        "failed commands change nothing"
    );

    std::fs::write(&host, b"not an image, just some text").unwrap();
    let not_image = text(&host);
    assert_eq!(
        disk_err(&["ls", not_image]),
        [format!(
            "vmm: corrupt disk image {not_image}: the file is 28 bytes, smaller than the \
             smallest disk (16384 bytes)"
        )]
    );
}

#[test]
fn usage_errors_are_clap_errors() {
    // Bad arguments are reported by the parser with its usual status, not 125.
    let run = vmm(&["disk", "create", "x.img", "--mib", "0"]);
    assert_eq!(run.status, Some(2), "{}", run.stderr);
    let run = vmm(&["disk", "put", "x.img"]);
    assert_eq!(run.status, Some(2), "{}", run.stderr);
}
