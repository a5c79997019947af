//! Argument passing through ulib's entry code: prints every argument `main` receives.
#![no_std]
#![no_main]

ulib::entry!("args-rs", main);

fn main(args: &[&str]) -> i32 {
    ulib::msg!("{} args", args.len());
    for (i, arg) in args.iter().enumerate() {
        ulib::msg!("args[{i}] = '{arg}'");
    }
    0
}
