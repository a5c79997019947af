//! Shared pieces of the Rust test programs (each program is a file in `src/bin`).
#![no_std]

/// A deterministic byte pattern for file contents: byte `i` of a file written with `seed`.
pub fn pattern(seed: u32, i: usize) -> u8 {
    ((i as u32)
        .wrapping_mul(7)
        .wrapping_add(seed.wrapping_mul(13))
        % 251) as u8
}

/// A small linear congruential generator, so "random" access is reproducible.
pub struct Lcg(pub u32);

impl Lcg {
    /// The next value in `0..bound`.
    pub fn below(&mut self, bound: u32) -> u32 {
        self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (self.0 >> 8) % bound
    }
}
