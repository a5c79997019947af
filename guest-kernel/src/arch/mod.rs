//! Architecture code. Only x86-64 exists; portable code calls into `arch::x86_64` through
//! small wrappers that turn hardware state into plain values, and reaches every privileged
//! operation through `crate::platform`.
pub mod x86_64;
