//! End-to-end test of `vmm run --gdb`: real GDB in batch mode drives the guest through the
//! stub: a breakpoint at a kernel function, registers, a kernel variable, a memory write
//! the guest then sees, a single step, user memory read through the process's page
//! tables, a breakpoint and a single step in the user program, and the run to power-off.
//!
//! The kernel runs in classic mode here (see `vmm/src/gdb/mod.rs`: on PVM, the debug
//! registers stop only ring-0 code, and user programs stop through the kernel).

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use abi::layout::{CMDLINE_GPA, KERN_BASE};
use tests::{TempDir, repo_root, require_kvm, user_program, vmm_path};

/// Whether this pass of `make test` runs these tests. They pin the kernel mode themselves
/// (classic), so the pass with `VMM_KERNEL_MODE=fast` would repeat the very same runs:
/// they run once, in the classic pass (or with no mode set).
fn this_pass() -> bool {
    let once = std::env::var("VMM_KERNEL_MODE").as_deref() != Ok("fast");
    if !once {
        eprintln!("gdb tests: run in the classic pass (they pin --kernel-mode classic)");
    }
    once
}

/// The address of the one kernel symbol matching `pattern` (GDB's `info functions` or
/// `info variables`), from the kernel ELF's symbol table.
fn symbol(kernel: &str, kind: &str, pattern: &str) -> u64 {
    let out = Command::new("gdb")
        .args(["-batch", "-nx", "-iex", "set debuginfod enabled off"])
        .args(["-ex", &format!("file {kernel}")])
        .args(["-ex", &format!("info {kind} {pattern}")])
        .output()
        .expect("gdb runs (install it: apt-get install gdb)");
    let text = String::from_utf8_lossy(&out.stdout);
    let addresses: Vec<u64> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("0x")?.split_whitespace().next())
        .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
        .collect();
    assert_eq!(addresses.len(), 1, "{pattern}: {text}");
    addresses[0]
}

/// The 8 bytes of the ELF file `path` at virtual address `vaddr` (in a loaded segment).
fn elf_bytes_at(path: &std::path::Path, vaddr: u64) -> u64 {
    let d = std::fs::read(path).expect("read ELF");
    let u16_at = |o: usize| u16::from_le_bytes([d[o], d[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(d[o..o + 8].try_into().expect("8 bytes"));
    let (phoff, phnum) = (u64_at(32) as usize, u16_at(56));
    for i in 0..phnum {
        let ph = phoff + i * 56;
        let (offset, start, filesz) = (u64_at(ph + 8), u64_at(ph + 16), u64_at(ph + 32));
        if u32::from_le_bytes(d[ph..ph + 4].try_into().expect("4 bytes")) == 1
            && (start..start + filesz).contains(&vaddr)
        {
            return u64_at((offset + vaddr - start) as usize);
        }
    }
    panic!("{vaddr:#x} is in no segment of {}", path.display());
}

/// Starts `vmm run --gdb 0 OPTIONS PROGRAM ARGS` under a time limit (a stuck stub fails
/// the test instead of hanging it) and reads its first stderr line, which names the port
/// it waits on: the child, the rest of its stderr, that line, and the port.
fn vmm_under_gdb(
    options: &[&str],
    program: &std::path::Path,
    args: &[&str],
    stdout: Stdio,
) -> (
    std::process::Child,
    BufReader<std::process::ChildStderr>,
    String,
    u16,
) {
    let mut child = Command::new("timeout")
        .args(["-s", "KILL", "120"])
        .arg(vmm_path())
        .args(["run", "--gdb", "0"])
        .args(options)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vmm");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    stderr.read_line(&mut first).expect("vmm's first line");
    let port: u16 = first
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first:?}"));
    assert!(
        first.starts_with(&format!(
            "vmm: gdb: waiting for a debugger on 127.0.0.1:{port}"
        )),
        "{first}"
    );
    (child, stderr, first, port)
}

/// The value GDB printed after `label=`.
fn printed(out: &str, label: &str) -> u64 {
    let at = out
        .find(&format!("{label}="))
        .unwrap_or_else(|| panic!("no {label}= in GDB's output:\n{out}"));
    let value = out[at + label.len() + 1..]
        .split_whitespace()
        .next()
        .expect("a value");
    match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    }
    .unwrap_or_else(|e| panic!("{label}={value}: {e}"))
}

#[test]
fn gdb_breaks_in_the_kernel_reads_and_writes_and_runs_to_power_off() {
    if !require_kvm() || !this_pass() {
        return;
    }
    let kernel = repo_root().join("target/x86_64-unknown-none/release/guest-kernel");
    let kernel = kernel.display().to_string();
    let kmain = symbol(&kernel, "functions", "^guest_kernel::kmain::");
    let dispatch = symbol(&kernel, "functions", "^guest_kernel::syscall::dispatch::");
    let next_pid = symbol(&kernel, "variables", "^guest_kernel::proc::NEXT_PID::");
    let program = user_program("args");
    let entry = u64::from_le_bytes(
        std::fs::read(&program).expect("read args")[24..32]
            .try_into()
            .expect("e_entry"),
    );

    let (mut child, mut stderr, first, port) = vmm_under_gdb(
        &["--kernel-mode", "classic"],
        &program,
        &["hello", "world"],
        Stdio::piped(),
    );

    let dir = TempDir::new("gdb");
    let script = dir.path().join("script.gdb");
    let cmdline_h = KERN_BASE + CMDLINE_GPA + "args ".len() as u64;
    std::fs::write(
        &script,
        format!(
            "set pagination off
file {kernel}
target remote 127.0.0.1:{port}
break *{kmain:#x}
continue
printf \"kmain rip=%#lx rdi=%#lx\\n\", $rip, $rdi
printf \"next_pid=%lu\\n\", *(unsigned long *){next_pid:#x}
set {{char}}{cmdline_h:#x} = 'J'
stepi
printf \"stepped=%#lx\\n\", $rip
delete
break *{dispatch:#x}
continue
printf \"dispatch rip=%#lx cs=%#lx\\n\", $rip, $cs
printf \"user_code=%#lx\\n\", *(unsigned long *){entry:#x}
set $urip = *(unsigned long *)($rdi + 17 * 8)
printf \"syscall_return=%#lx\\n\", $urip
delete
break *$urip
continue
printf \"user_stop rip=%#lx ucs=%#lx\\n\", $rip, $cs
stepi
printf \"user_step=%#lx ucs2=%#lx\\n\", $rip, $cs
delete
continue
"
        ),
    )
    .expect("write the script");
    let gdb = Command::new("timeout")
        // No debuginfod: nothing of GDB's own may wait on the network.
        .args(["-s", "KILL", "120", "gdb", "-batch", "-nx"])
        .args(["-iex", "set debuginfod enabled off", "-x"])
        .arg(&script)
        .output()
        .expect("gdb runs (install it: apt-get install gdb)");
    let out =
        String::from_utf8_lossy(&gdb.stdout).into_owned() + &String::from_utf8_lossy(&gdb.stderr);
    let status = child.wait().expect("vmm ends");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).expect("read stderr");
    // The VMM's side too, for a failure's message.
    let out = format!(
        "{out}\n--- vmm (exit {:?}) ---\n{first}{rest}",
        status.code()
    );

    assert_eq!(printed(&out, "kmain rip"), kmain, "{out}");
    assert_eq!(
        printed(&out, "rdi"),
        abi::layout::BOOT_INFO_GPA,
        "kmain's argument"
    );
    assert_eq!(printed(&out, "next_pid"), 1, "no process yet");
    let stepped = printed(&out, "stepped");
    assert!(stepped > kmain && stepped < kmain + 16, "{out}");
    assert_eq!(printed(&out, "dispatch rip"), dispatch, "{out}");
    assert_eq!(printed(&out, "cs"), u64::from(abi::gdt::KERNEL_CS), "{out}");
    assert_eq!(
        printed(&out, "user_code"),
        elf_bytes_at(&program, entry),
        "the program's first bytes, through its page tables"
    );
    // A breakpoint in user code (where the first system call returns to) and a single
    // step there: the kernel reports them (the first argument of `dispatch` is the trap
    // frame; its rip is at slot 17).
    let syscall_return = printed(&out, "syscall_return");
    assert!(syscall_return < KERN_BASE, "{out}");
    assert_eq!(printed(&out, "user_stop rip"), syscall_return, "{out}");
    assert_eq!(printed(&out, "ucs") & 3, 3, "stopped in user mode: {out}");
    let user_step = printed(&out, "user_step");
    assert!(
        user_step != syscall_return && user_step < KERN_BASE,
        "{out}"
    );
    assert_eq!(printed(&out, "ucs2") & 3, 3, "{out}");
    assert!(
        out.contains("[Inferior 1 (process 1) exited normally]"),
        "{out}"
    );
    assert_eq!(status.code(), Some(0), "{stdout}{rest}");
    // The guest saw the debugger's write to its command line.
    assert!(stdout.contains("(args) argv[1] = 'Jello'"), "{stdout}");
    assert!(stdout.contains("(args) argv[2] = 'world'"), "{stdout}");
}

/// A GDB remote-protocol client, just enough to speak to the stub without GDB's own
/// batch mode (which cannot send Ctrl-C to a running target).
struct Remote(std::net::TcpStream);

impl Remote {
    fn send(&mut self, body: &str) {
        use std::io::Write;
        let sum = body.bytes().fold(0u8, u8::wrapping_add);
        write!(self.0, "${body}#{sum:02x}").expect("send a packet");
    }

    fn raw(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.0.write_all(bytes).expect("send");
    }

    /// What arrives within `wait` (acknowledgements and packets as they come).
    fn receive(&mut self, wait: std::time::Duration) -> String {
        let deadline = std::time::Instant::now() + wait;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while std::time::Instant::now() < deadline {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            self.0
                .set_read_timeout(Some(left.max(std::time::Duration::from_millis(1))))
                .expect("timeout");
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    // A whole packet: `$...#xx`.
                    if let Some(hash) = got.iter().rposition(|&b| b == b'#')
                        && got.len() >= hash + 3
                        && got.contains(&b'$')
                    {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }
}

#[test]
fn ctrl_c_stops_a_running_guest_and_kill_ends_the_run() {
    if !require_kvm() || !this_pass() {
        return;
    }
    // A program that runs for minutes.
    let (mut child, mut stderr, _, port) = vmm_under_gdb(
        &["--kernel-mode", "classic", "--user-pages", "48"],
        &user_program("paging-stats"),
        &["hot-cold", "24", "200", "1000000"],
        Stdio::null(),
    );
    let mut gdb = Remote(std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    let second = std::time::Duration::from_secs(1);
    gdb.send("?");
    let halted = gdb.receive(second * 5);
    assert!(
        halted.contains("$T05") || halted.contains("$S05"),
        "{halted:?}"
    );
    gdb.raw(b"+");
    gdb.send("c");
    let running = gdb.receive(second);
    assert!(
        !running.contains('$'),
        "the guest stopped by itself: {running:?}"
    );
    gdb.raw(&[0x03]);
    let interrupted = gdb.receive(second * 10);
    assert!(
        interrupted.contains("$S02") || interrupted.contains("$T02"),
        "Ctrl-C did not stop the guest: {interrupted:?}"
    );
    gdb.raw(b"+");
    gdb.send("k");
    let status = child.wait().expect("vmm ends");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).expect("read stderr");
    assert!(
        rest.contains("vmm: the debugger killed the guest"),
        "{rest}"
    );
    assert_eq!(status.code(), Some(125), "{rest}");
}
