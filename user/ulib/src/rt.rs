//! Program start and the panic handler.
//!
//! The kernel enters `_start` (defined by [`entry!`](crate::entry) in the program) with
//! `rdi` = argc, `rsi` = argv and `rsp` at a fake return address, 8-byte aligned
//! (guest-abi §3). `_start` aligns `rsp` to 16 bytes as the System V ABI expects at a call,
//! and calls the program's `__ulib_main`, which calls [`start`].

use core::mem::MaybeUninit;

/// Arguments passed to `main`; further ones are dropped. A one-page command line has at most
/// 2048 words, but programs here use far fewer, and each slot costs 16 bytes of stack.
pub const MAX_ARGS: usize = 1024;

/// Builds `&[&str]` from `argc`/`argv`, runs `main` and exits with its result.
///
/// # Safety
/// `argv` must point to `argc` pointers to NUL-terminated strings, as the kernel sets up.
pub unsafe fn start(
    name: &'static str,
    argc: usize,
    argv: *const *const u8,
    main: fn(&[&str]) -> i32,
) -> ! {
    crate::test::set_test_name(name);
    let argc = argc.min(MAX_ARGS);
    let mut slots: [MaybeUninit<&str>; MAX_ARGS] = [const { MaybeUninit::uninit() }; MAX_ARGS];
    for (i, slot) in slots.iter_mut().take(argc).enumerate() {
        // SAFETY: the caller guarantees argv[0..argc] are valid C strings for the whole run.
        let arg = unsafe { core::ffi::CStr::from_ptr((*argv.add(i)).cast()) };
        slot.write(core::str::from_utf8(arg.to_bytes()).unwrap_or("?"));
    }
    // SAFETY: the first `argc` slots were initialised above.
    let args = unsafe { core::slice::from_raw_parts(slots.as_ptr().cast::<&str>(), argc) };
    crate::sys::exit(main(args))
}

/// Defines the program's entry point: `ulib::entry!("test-name", main)` with
/// `fn main(args: &[&str]) -> i32`.
#[macro_export]
macro_rules! entry {
    ($name:literal, $main:path) => {
        extern "C" fn __ulib_main(argc: usize, argv: *const *const u8) -> ! {
            // SAFETY: called only from `_start` with the kernel's argc/argv (guest-abi §3).
            unsafe { $crate::rt::start($name, argc, argv, $main) }
        }

        /// The ELF entry point.
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub extern "C" fn _start() -> ! {
            core::arch::naked_asm!(
                "xor ebp, ebp",
                "and rsp, -16",
                "call {main}",
                "ud2",
                main = sym __ulib_main,
            )
        }
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::test::msg_with(format_args!("PANIC: {}", info.message()), "");
    crate::sys::exit(1)
}
