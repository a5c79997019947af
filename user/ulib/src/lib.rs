//! `ulib`: the runtime for Rust user programs on the guest kernel (Pintos-KAIST x86-64 ABI,
//! see `shared/docs/guest-abi.md`).
//!
//! A program is a `#![no_std] #![no_main]` binary that names its test and its `main`:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! ulib::entry!("hello", main);
//! fn main(args: &[&str]) -> i32 {
//!     ulib::msg!("{} args", args.len());
//!     0
//! }
//! ```
//!
//! - [`entry!`] defines `_start`: it aligns the stack, turns `argc`/`argv` into `&[&str]`
//!   (at most [`rt::MAX_ARGS`] arguments; invalid UTF-8 becomes `"?"`), calls `main`, and
//!   passes its result to [`exit`].
//! - [`print!`]/[`println!`] format into a stack buffer and issue one `write(1, ..)` per
//!   call (a line is never split unless it exceeds [`io::BUF_SIZE`] bytes).
//! - [`msg!`] prints `(NAME) text`, [`fail!`] prints `(NAME) text: FAILED` and exits with 1,
//!   [`check!`] prints like `msg!` and then fails if its condition is false (Pintos style).
//! - A panic prints `(NAME) PANIC: message` and exits with status 1, so a test that panics
//!   fails the same way as one that calls `fail!`.
//!
//! System calls take strings as `&CStr` (write `c"name"`; build dynamic ones with
//! [`io::CBuf`]) so the exact bytes the kernel sees are under the program's control; the raw
//! `syscall` instruction is in [`sys::raw`] for tests that pass bad pointers on purpose.
#![no_std]

pub mod io;
pub mod rt;
pub mod sys;
pub mod test;

pub use sys::*;
pub use test::{set_test_name, test_name};
