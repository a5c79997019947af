//! The self-test runner (`vmm run --self-test`).
//!
//! Each test is a plain function returning `Ok(())` or a failure message. The runner prints
//! `test NAME ... ok` or `test NAME ... FAILED: reason` per test and then
//! `self-test: N passed, M failed`; the caller powers off with status 0 only if M is 0.
//! Tests run in ring 0 on the boot thread with interrupts on and the timer running.
//!
//! A failure carries its message inline (no heap is needed to report one), which makes the
//! `Err` variant large; test functions are not on any hot path, so that is fine.
#![allow(clippy::result_large_err)]

mod boot_tests;
mod disk_tests;
mod mm_tests;
mod thread_tests;

use crate::println;
use crate::util::fixed_buf::FixedBuf;

/// Why a test failed.
pub type Failure = FixedBuf<256>;
/// What a test returns.
pub type TestResult = Result<(), Failure>;

/// Fails the current test with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            let mut failure = $crate::selftest::Failure::new();
            let _ = core::fmt::Write::write_fmt(&mut failure, format_args!($($arg)*));
            return Err(failure);
        }
    };
}

/// Fails the current test unless `left == right`, showing both values.
#[macro_export]
macro_rules! check_eq {
    ($left:expr, $right:expr) => {{
        let (left, right) = (&$left, &$right);
        $crate::check!(
            left == right,
            "{} == {:?}, expected {:?}",
            stringify!($left),
            left,
            right
        );
    }};
}

/// A named test.
pub struct Test {
    pub name: &'static str,
    pub run: fn() -> TestResult,
}

/// Every self-test, in the order they run.
const TESTS: &[&[Test]] = &[
    boot_tests::TESTS,
    mm_tests::TESTS,
    thread_tests::TESTS,
    disk_tests::TESTS,
];

/// Runs every test (plus the deliberately failing one if the test hook asks) and prints
/// the results. Returns the number of failures.
pub fn run_all() -> usize {
    let forced = crate::boot::info().test_hook == abi::boot::TestHook::FailSelfTest as u32;
    let forced_failure = Test {
        name: "forced_failure",
        run: forced_failure,
    };
    let extra: &[Test] = if forced {
        core::slice::from_ref(&forced_failure)
    } else {
        &[]
    };

    let (mut passed, mut failed) = (0, 0);
    for test in TESTS.iter().flat_map(|group| group.iter()).chain(extra) {
        match (test.run)() {
            Ok(()) => {
                passed += 1;
                println!("test {} ... ok", test.name);
            }
            Err(reason) => {
                failed += 1;
                println!("test {} ... FAILED: {}", test.name, reason);
            }
        }
    }
    println!("self-test: {passed} passed, {failed} failed");
    failed
}

fn forced_failure() -> TestResult {
    check!(false, "forced by the fail-self-test hook");
    Ok(())
}
