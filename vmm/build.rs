//! Embeds the guest kernel in the `vmm` binary, so `vmm` runs from anywhere with no
//! `--kernel` option.
//!
//! The kernel is built separately for `x86_64-unknown-none` (the Makefile does it first);
//! `GUEST_KERNEL_ELF` may point elsewhere.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=GUEST_KERNEL_ELF");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let kernel = std::env::var_os("GUEST_KERNEL_ELF")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target/x86_64-unknown-none/release/guest-kernel"));
    println!("cargo:rerun-if-changed={}", kernel.display());
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("guest-kernel.elf");
    if let Err(e) = std::fs::copy(&kernel, &out) {
        panic!(
            "the guest kernel {} is not built ({e}): run `make` at the top of the repository \
             (it builds the kernel before the VMM), or set GUEST_KERNEL_ELF",
            kernel.display()
        );
    }
}
