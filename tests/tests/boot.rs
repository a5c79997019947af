//! End-to-end tests of booting: the kernel's self-tests, a plain boot, and every way a run
//! can fail, each checked by exit status and the exact lines printed.

use std::time::Duration;

use tests::{TempDir, boot_line, kernel_elf, require_kvm, user_program, vmm, vmm_in};

/// The kernel's self-tests, in the order they run.
const SELF_TESTS: &[&str] = &[
    "boot_info_consistent",
    "direct_map_covers_usable_ram",
    "direct_map_ends_at_ram_top",
    "invalid_opcode_is_caught",
    "page_fault_reports_address",
    "tsc_advances",
    "kernel_code_runs_at_cpl3",
    "interrupts_wait_while_kernel_code_runs_at_cpl3",
    "cpl3_port_reads_go_through_the_shim",
    "portable_kernel_code_runs_at_cpl3",
    "kernel_at_cpl3_reaches_a_process_user_pages",
    "user_events_reach_kernel_code_at_cpl3",
    "user_page_faults_resolved_by_the_fault_path_at_cpl3",
    "pools_split_as_configured",
    "user_pool_alloc_all_free_all",
    "frames_zeroed_only_when_asked",
    "frame_copy_is_exact",
    "heap_stress",
    "heap_reuses_freed_small_blocks",
    "heap_gives_a_stack_run_from_its_free_memory",
    "map_translate_unmap",
    "unmap_range_hands_back_frames_and_unlists_its_pages",
    "user_window_below_kern_base",
    "accessed_and_dirty_bits",
    "a_fault_maps_its_page_when_the_kernel_pool_is_dry",
    "irq_guards_nest",
    "timer_ticks_while_sleeping",
    "sleepers_wake_in_order",
    "lock_serialises_counter",
    "semaphore_ping_pong",
    "condition_signal_and_broadcast",
    "busy_thread_is_preempted",
    "fpu_state_is_per_thread",
    "exited_threads_are_reaped",
    "fs_disk_sectors_round_trip",
    "swap_disk_pages_round_trip",
    "bad_request_fails_cleanly",
    "disk_ids_and_interrupts",
    "fs_create_read_write",
    "fs_names_and_directory_size",
    "fs_independent_positions",
    "fs_remove_while_open",
    "fs_deny_write",
    "fs_writes_reach_the_disk_at_close",
    "fs_put_file_is_uppercased",
];

fn expected_self_test_output(extra: &[&str], failed: usize) -> String {
    let mut out = String::new();
    for name in SELF_TESTS {
        out.push_str(&format!("test {name} ... ok\n"));
    }
    for line in extra {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!(
        "self-test: {} passed, {failed} failed\n",
        SELF_TESTS.len()
    ));
    out
}

#[test]
fn self_tests_pass() {
    if !require_kvm() {
        return;
    }
    let run = vmm(&["run", "--self-test"]);
    assert_eq!(run.stdout, expected_self_test_output(&[], 0), "{run:?}");
    assert_eq!(run.stderr, "");
    assert_eq!(run.status, Some(0));
}

#[test]
fn self_tests_pass_with_ram_above_4_gib_and_a_user_page_cap() {
    if !require_kvm() {
        return;
    }
    // The user pool is capped: allocating every frame of a 2 GiB pool one by one would take
    // minutes where ring 0 is emulated. `pools_split_as_configured` checks the cap.
    let run = vmm(&[
        "run",
        "--self-test",
        "--mem",
        "4608",
        "--user-pages",
        "1000",
    ]);
    assert_eq!(run.stdout, expected_self_test_output(&[], 0), "{run:?}");
    assert_eq!(run.status, Some(0));
}

#[test]
fn failing_self_test_is_reported_and_exits_1() {
    if !require_kvm() {
        return;
    }
    let run = vmm(&["run", "--self-test", "--test-hook", "fail-self-test"]);
    let failure = "test forced_failure ... FAILED: forced by the fail-self-test hook";
    assert_eq!(
        run.stdout,
        expected_self_test_output(&[failure], 1),
        "{run:?}"
    );
    assert_eq!(run.stderr, "");
    assert_eq!(run.status, Some(1));
}

#[test]
fn plain_boot_powers_off_cleanly() {
    if !require_kvm() {
        return;
    }
    for mem in [64, 4096] {
        let run = vmm(&[
            "run",
            "--mem",
            &mem.to_string(),
            "--fs-mib",
            "4",
            "--swap-mib",
            "16",
        ]);
        assert_eq!(
            run.stdout,
            boot_line(mem, 4096, "16384 KiB swap"),
            "{run:?}"
        );
        assert_eq!(run.stderr, "");
        assert_eq!(run.status, Some(0));
    }
}

#[test]
fn runs_from_any_directory_with_the_built_in_kernel() {
    if !require_kvm() {
        return;
    }
    let dir = TempDir::new("anydir");
    let run = vmm_in(
        &["run", "--fs-mib", "2", "--swap-mib", "0"],
        Some(dir.path()),
    );
    assert_eq!(run.stdout, boot_line(64, 2048, "no swap"), "{run:?}");
    assert_eq!(run.status, Some(0));
}

#[test]
fn kernel_option_boots_a_kernel_file() {
    if !require_kvm() {
        return;
    }
    let elf = kernel_elf();
    let run = vmm(&[
        "run",
        "--mem",
        "32",
        "--fs-mib",
        "1",
        "--kernel",
        elf.to_str().unwrap(),
    ]);
    assert_eq!(run.stdout, boot_line(32, 1024, "65536 KiB swap"), "{run:?}");
    assert_eq!(run.status, Some(0));
}

#[test]
fn bench_mode_reports_each_benchmark() {
    if !require_kvm() {
        return;
    }
    let run = vmm(&["run", "--bench"]);
    let lines = run.stdout_lines();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.split(':').next().unwrap_or(""))
        .collect();
    let kernel = [
        "bench context_switch",
        "bench semaphore_round_trip",
        "bench timer_tick",
        "bench vm_exit",
        "bench cpl3_round_trip",
        "bench cpl3_port_read",
        "bench user_event_round_trip",
        "bench cpl3_zero_fill_fault",
        "bench page_zero_4k",
        "bench page_copy_4k",
        "bench fs_disk_write_4k",
        "bench fs_disk_read_4k",
        "bench swap_disk_write_4k",
        "bench swap_disk_read_4k",
        "bench swap_page_out_4k",
        "bench swap_page_in_4k",
    ];
    let vmm_lines = [
        "bench fs_disk_exits_per_request",
        "bench swap_disk_exits_per_request",
    ];
    assert_eq!(
        names,
        kernel.iter().chain(&vmm_lines).copied().collect::<Vec<_>>(),
        "{run:?}"
    );
    let value = |line: &str| {
        line.split(": ")
            .nth(1)
            .and_then(|v| v.split(' ').next())
            .unwrap_or("")
            .to_string()
    };
    for line in &lines[..kernel.len()] {
        assert!(
            value(line).parse::<u64>().is_ok_and(|ns| ns > 0),
            "no positive number in {line:?}"
        );
        assert!(line.contains(" ns"), "{line:?}");
    }
    // After device setup, every disk request costs exactly one VM exit (its notification).
    for line in &lines[kernel.len()..] {
        assert_eq!(value(line), "1.00", "{line:?}");
    }
    assert_eq!(run.status, Some(0));
}

#[test]
fn kernel_panic_is_reported_with_message_and_location() {
    if !require_kvm() {
        return;
    }
    let run = vmm(&["run", "--test-hook", "panic"]);
    assert_eq!(run.stdout, "");
    let lines = run.stderr_lines();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(
        lines[0].starts_with(
            "vmm: guest kernel panic: test hook: forced panic (at guest-kernel/src/main.rs:"
        ),
        "{run:?}"
    );
    assert_eq!(run.status, Some(125));
}

/// Checks the report of a kernel page fault at cr2 0x7fffdead0000 raised by `hook`: the
/// six-line register dump on stdout, with `error` (the error code) and `selectors` (the
/// end of its last line), then the VMM's one panic line on stderr, exit status 125.
fn check_kernel_page_fault_report(hook: &str, error: &str, selectors: &str) -> tests::Run {
    check_kernel_page_fault_report_of(&["run", "--test-hook", hook], error, selectors)
}

/// [`check_kernel_page_fault_report`] for the `vmm` command line `args`.
fn check_kernel_page_fault_report_of(args: &[&str], error: &str, selectors: &str) -> tests::Run {
    let run = vmm(args);
    let out = run.stdout_lines();
    assert_eq!(out.len(), 6, "{run:?}");
    assert!(
        out[0].starts_with(&format!(
            "kernel fault: #PF page fault (vector 14), error {error}, rip 0x80042"
        )),
        "{run:?}"
    );
    assert!(out[0].ends_with(", cr2 0x7fffdead0000"), "{run:?}");
    assert!(
        out[5].starts_with("rflags ") && out[5].ends_with(selectors),
        "{run:?}"
    );
    let err = run.stderr_lines();
    assert_eq!(err.len(), 1, "{run:?}");
    assert!(
        err[0].starts_with(
            "vmm: guest kernel panic: kernel fault: #PF page fault (vector 14) at rip 0x80042"
        ),
        "{run:?}"
    );
    assert!(
        err[0].contains(&format!(
            ", error {error}, cr2 0x7fffdead0000 (at guest-kernel/src/arch/x86_64/trap.rs:"
        )),
        "{run:?}"
    );
    assert_eq!(run.status, Some(125));
    run
}

/// The register dump leaves in one exit, not one per byte through the UART: the run's
/// only exits are the UART's set-up (four register writes) and the system-control block's
/// console and panic registers.
#[test]
fn kernel_fault_dump_leaves_in_one_exit() {
    if !require_kvm() {
        return;
    }
    let dir = TempDir::new("fault-dump-exits");
    let json = dir.path().join("stats.json");
    let json_arg = json.display().to_string();
    check_kernel_page_fault_report_of(
        &[
            "run",
            "--stats-json",
            &json_arg,
            "--test-hook",
            "page-fault",
        ],
        "0x0",
        " cs 0x8 ss 0x10",
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let exits = &doc["vm_exits"];
    assert_eq!(exits["by_device"]["serial"], 4, "{exits}");
    assert_eq!(exits["by_device"]["sysctl"], 2, "{exits}");
    assert_eq!(exits["total"], 6, "{exits}");
}

#[test]
fn kernel_page_fault_dumps_registers_then_panics() {
    if !require_kvm() {
        return;
    }
    let run = check_kernel_page_fault_report("page-fault", "0x0", " cs 0x8 ss 0x10");
    let out = run.stdout_lines();
    assert!(out[1].starts_with("rax 0x00007fffdead0000 rbx "), "{run:?}");
}

/// Kernel code running at CPL 3 (the fast kernel mode's building block) that faults is a
/// kernel bug like a ring-0 fault: the dump shows the user-mode selectors and a user-mode
/// error code, and the VMM reports the panic with the kernel RIP.
#[test]
fn kernel_fault_at_cpl3_is_reported_with_its_rip() {
    if !require_kvm() {
        return;
    }
    check_kernel_page_fault_report("cpl3-page-fault", "0x4", " cs 0x23 ss 0x1b");
}

/// A kernel bug in a system call's handler is reported with its RIP in either kernel mode:
/// at CPL 3 behind the fast mode's shim (user-mode selectors and error code) on PVM, in
/// ring 0 in the classic mode and on hardware KVM, where `syscall` enters ring 0.
#[test]
fn kernel_fault_in_a_system_call_is_reported_with_its_rip() {
    if !require_kvm() {
        return;
    }
    let pvm = vmm::stats::KvmKind::detect().host_kind() == Some(abi::boot::HostKind::Pvm);
    let (error, selectors) = match (tests::expected_kernel_mode(), pvm) {
        ("fast", true) => ("0x4", " cs 0x23 ss 0x1b"),
        // Entered from user mode through an exception (the trampoline's #GP): a null SS.
        (_, true) => ("0x0", " cs 0x8 ss 0x0"),
        // Entered through `syscall`, which loads the kernel's SS.
        (_, false) => ("0x0", " cs 0x8 ss 0x10"),
    };
    let program = user_program("unsupported");
    let args = [
        "run",
        "--test-hook",
        "syscall-page-fault",
        program.to_str().expect("UTF-8 path"),
    ];
    check_kernel_page_fault_report_of(&args, error, selectors);
}

#[test]
fn double_fault_is_handled_on_its_own_stack() {
    if !require_kvm() {
        return;
    }
    // The stack pointer is unusable, so only a handler on the IST stack can report this;
    // without it the CPU would shut down (a triple fault).
    let run = vmm(&["run", "--test-hook", "double-fault"]);
    let out = run.stdout_lines();
    assert!(
        out[0].starts_with("kernel fault: #DF double fault (vector 8), error 0x0, rip "),
        "{run:?}"
    );
    assert!(out[2].ends_with("rsp 0x00007fffdead0000"), "{run:?}");
    assert!(
        run.stderr
            .starts_with("vmm: guest kernel panic: kernel fault: #DF double fault (vector 8)")
    );
    assert_eq!(run.status, Some(125));
}

#[test]
fn triple_fault_is_reported_with_registers() {
    if !require_kvm() {
        return;
    }
    let run = vmm(&["run", "--test-hook", "triple-fault"]);
    assert_eq!(run.stdout, "");
    let err = run.stderr_lines();
    assert_eq!(err.len(), 1, "{run:?}");
    assert!(
        err[0].starts_with("vmm: guest triple fault: rip=0x80042"),
        "{run:?}"
    );
    for register in [" rsp=0x", " cr3=0x10000 ", " efer=0xd00 ", " idt=0x0/0x0"] {
        assert!(err[0].contains(register), "{register} missing: {run:?}");
    }
    assert_eq!(run.status, Some(125));
}

#[test]
fn spinning_guest_is_stopped_by_the_timeout() {
    if !require_kvm() {
        return;
    }
    let run = vmm(&["run", "--test-hook", "spin", "--timeout", "1"]);
    assert_eq!(run.stderr, "vmm: timeout after 1 s\n", "{run:?}");
    assert_eq!(run.status, Some(124));
    assert!(
        run.elapsed < Duration::from_secs(3),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn missing_kernel_file() {
    let run = vmm(&["run", "--kernel", "/nonexistent/kernel.elf"]);
    assert_eq!(
        run.stderr,
        "vmm: kernel file /nonexistent/kernel.elf does not exist: pass an existing file to --kernel, \
         or omit --kernel to use the built-in kernel\n"
    );
    assert_eq!(run.status, Some(125));
}

#[test]
fn kernel_file_that_is_not_an_x86_64_elf() {
    let dir = TempDir::new("badelf");
    let text = dir.file("kernel.txt", "not a kernel\n");
    let run = vmm(&["run", "--kernel", text.to_str().unwrap()]);
    assert_eq!(
        run.stderr,
        format!(
            "vmm: {} is not an x86-64 ELF kernel: not an ELF file\n",
            text.display()
        )
    );
    assert_eq!(run.status, Some(125));

    // The real kernel with its machine field changed to AArch64 (183).
    let mut elf = std::fs::read(kernel_elf()).unwrap();
    elf[18..20].copy_from_slice(&183u16.to_le_bytes());
    let arm = dir.file("kernel.arm", elf);
    let run = vmm(&["run", "--kernel", arm.to_str().unwrap()]);
    assert_eq!(
        run.stderr,
        format!(
            "vmm: {} is not an x86-64 ELF kernel: ELF machine 183 is not x86-64\n",
            arm.display()
        )
    );
    assert_eq!(run.status, Some(125));
}

#[test]
fn memory_too_small_for_the_kernel() {
    if !require_kvm() {
        return;
    }
    for mem in ["0", "2", "4"] {
        let run = vmm(&["run", "--mem", mem]);
        assert_eq!(
            run.stderr,
            format!("vmm: --mem {mem} MiB is too small for the kernel: it needs at least 5 MiB\n"),
            "{run:?}"
        );
        assert_eq!(run.status, Some(125));
    }
}

#[test]
fn memory_too_large() {
    if !require_kvm() {
        return;
    }
    let run = vmm(&["run", "--mem", "65537"]);
    assert_eq!(
        run.stderr,
        "vmm: --mem 65537 MiB is too large: the maximum is 65536 MiB\n"
    );
    assert_eq!(run.status, Some(125));

    let host_mib = host_ram_mib();
    if host_mib < 65536 {
        let run = vmm(&["run", "--mem", "65536"]);
        assert_eq!(
            run.stderr,
            format!(
                "vmm: --mem 65536 MiB is more than this host's {host_mib} MiB of RAM: choose a smaller --mem\n"
            )
        );
        assert_eq!(run.status, Some(125));
    }
}

#[test]
fn missing_kvm_device() {
    let run = vmm(&["run", "--kvm-path", "/nonexistent/kvm"]);
    assert_eq!(
        run.stderr,
        "vmm: /nonexistent/kvm does not exist: this host has no KVM. Load the kvm_intel or kvm_amd \
         module, or enable nested virtualisation for this VM\n"
    );
    assert_eq!(run.status, Some(125));
}

#[test]
fn a_file_that_is_not_a_kvm_device() {
    let dir = TempDir::new("notkvm");
    let fake = dir.file("kvm", "");
    let run = vmm(&["run", "--kvm-path", fake.to_str().unwrap()]);
    assert_eq!(
        run.stderr,
        format!("vmm: {} is not a KVM device\n", fake.display())
    );
    assert_eq!(run.status, Some(125));
}

#[test]
fn kvm_device_without_access() {
    // Root can open anything, so drop to an unprivileged user to see the permission error.
    // The effective uid is read from /proc to avoid a libc dependency.
    let uid_line = std::fs::read_to_string("/proc/self/status").unwrap();
    let is_root = uid_line
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let dev = std::fs::metadata("/dev/kvm");
    let world_rw = dev
        .as_ref()
        .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 == 0o006);
    if !is_root
        || dev.is_err()
        || world_rw
        || std::process::Command::new("setpriv")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!("skipping: needs root, setpriv and a /dev/kvm that other users cannot open");
        return;
    }
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(tests::vmm_path())
        .args(["run"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "vmm: /dev/kvm is not readable and writable by this user: add the user to the group that \
         owns it (often `kvm`), or run as root\n"
    );
    assert_eq!(output.status.code(), Some(125));
}

#[test]
fn usage_errors_exit_2() {
    let run = vmm(&["run", "--mem", "lots"]);
    assert!(
        run.stderr
            .contains("invalid value 'lots' for '--mem <MIB>'"),
        "{run:?}"
    );
    assert_eq!(run.status, Some(2));
}

fn host_ram_mib() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

#[test]
fn kvm_emulation_failure_is_reported_with_suberror_and_rip() {
    if !require_kvm() {
        return;
    }
    let run = vmm(&["run", "--test-hook", "emulation-failure"]);
    let err = run.stderr_lines();
    assert_eq!(err.len(), 1, "{run:?}");
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        // PVM emulates ring 0 and cannot emulate xgetbv: KVM_EXIT_INTERNAL_ERROR.
        assert!(
            err[0].starts_with(
                "vmm: KVM internal error: suberror 1 (emulation failure) at rip 0x80042"
            ),
            "{run:?}"
        );
        assert!(
            err[0].ends_with("; `dmesg | grep kvm` may say more"),
            "{run:?}"
        );
    } else {
        // Hardware runs xgetbv itself and raises #UD (XSAVE is off): a kernel fault.
        assert!(
            err[0].starts_with(
                "vmm: guest kernel panic: kernel fault: #UD invalid opcode (vector 6)"
            ),
            "{run:?}"
        );
    }
    assert_eq!(run.status, Some(125));
}

/// `vmm run` checks a program before it boots (`abi::elf`, the checks the kernel's loader
/// runs too) and says what is wrong with it and what to do, with status 125: a directory,
/// a missing file, text, a 32-bit or position-independent ELF, a dynamically linked one
/// (naming its interpreter), a truncated header, a segment outside user memory, and
/// overlapping segments. Nothing boots (no console output).
#[test]
fn programs_the_kernel_would_not_load_are_refused_before_boot() {
    let dir = TempDir::new("not-loadable");
    let exit = std::fs::read(user_program("exit")).expect("make user builds exit");
    let phdr = |i: usize| 64 + 56 * i;
    let patched = |name: &str, patch: &dyn Fn(&mut Vec<u8>)| {
        let mut elf = exit.clone();
        patch(&mut elf);
        dir.file(name, elf)
    };
    let dynamic = patched("dynamic", &|elf| {
        let at = elf.len() as u64;
        elf.extend_from_slice(b"/lib/ld-test.so\0");
        let ph = phdr(0);
        elf[ph..ph + 4].copy_from_slice(&3u32.to_le_bytes());
        elf[ph + 8..ph + 16].copy_from_slice(&at.to_le_bytes());
        elf[ph + 32..ph + 40].copy_from_slice(&16u64.to_le_bytes());
    });
    let i386 = patched("i386", &|elf| elf[4] = 1);
    let pie = patched("pie", &|elf| elf[16] = 3);
    let truncated = patched("truncated", &|elf| elf.truncate(40));
    let outside = patched("outside", &|elf| {
        let vaddr = 0x80_0400_0268u64;
        elf[phdr(2) + 16..phdr(2) + 24].copy_from_slice(&vaddr.to_le_bytes());
    });
    let overlap = patched("overlap", &|elf| {
        elf[phdr(1) + 16..phdr(1) + 24].copy_from_slice(&0x3f_f480u64.to_le_bytes());
    });
    let text = dir.file("text", "#!/bin/sh\necho hello\n");
    let directory = dir.path().to_path_buf();
    let missing = dir.path().join("missing");
    let user = "give the path of a user program (an x86-64 ELF executable), e.g. target/user/NAME";
    let guest = "give an x86-64 ELF executable built for the guest (e.g. target/user/NAME)";
    let statically = "the kernel loads static executables only: link with -static -no-pie \
                      (user/user.ld links at 0x400000)";
    let damaged = "the file is damaged or was not made by a linker: build it again";
    for (path, message) in [
        (&directory, format!("is a directory: {user}")),
        (&missing, format!("does not exist: {user}")),
        (&text, format!(": not an ELF file: {guest}")),
        (&i386, format!(": not a 64-bit x86-64 executable: {guest}")),
        (
            &pie,
            format!(": not a static executable (ET_EXEC): {statically}"),
        ),
        (
            &dynamic,
            format!(": dynamically linked (interpreter /lib/ld-test.so): {statically}"),
        ),
        (
            &truncated,
            format!(": bad or truncated ELF header: {damaged}"),
        ),
        (
            &outside,
            ": a segment lies outside user memory: link it into user memory, \
             [0x1000, 0x8004000000), e.g. at 0x400000 as user/user.ld does"
                .to_string(),
        ),
        (&overlap, format!(": two segments overlap: {damaged}")),
    ] {
        let shown = path.display().to_string();
        let run = vmm(&["run", "--timeout", "30", &shown]);
        let separator = if message.starts_with(':') { "" } else { " " };
        assert_eq!(
            run.stderr,
            format!("vmm: program {shown}{separator}{message}\n"),
            "{run:?}"
        );
        assert_eq!(run.stdout, "");
        assert_eq!(run.status, Some(125));
    }
}

/// Each of the VMM's threads runs under a seccomp filter: a call its filter forbids (here
/// one the vCPU thread makes on purpose) ends the VMM with a line naming the thread and the
/// call, exit status 125; `--no-seccomp` lets the same run finish.
#[test]
fn a_forbidden_system_call_ends_the_vmm_with_a_clear_message() {
    if !require_kvm() {
        return;
    }
    let program = user_program("bench-true").display().to_string();
    let run = vmm(&["run", "--test-seccomp-violation", &program]);
    assert_eq!(
        run.stderr,
        "vmm: seccomp: the vcpu0 thread made system call 110, which its filter forbids: a bug in the VMM (please report it); --no-seccomp runs without the filters\n",
        "{run:?}"
    );
    assert_eq!(run.stdout, "", "{run:?}");
    assert_eq!(run.status, Some(125), "{run:?}");
    let run = vmm(&["run", "--no-seccomp", "--test-seccomp-violation", &program]);
    assert_eq!(run.stdout, "bench-true: exit(0)\n", "{run:?}");
    assert_eq!(run.status, Some(0), "{run:?}");
}
