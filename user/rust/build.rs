//! Links every program with the user linker script (`user/user.ld`) as a non-PIE static
//! executable at 0x400000; only this crate's binaries, not its dependencies.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/../user.ld");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rerun-if-changed=../user.ld");
}
