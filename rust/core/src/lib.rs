//! personae-core: the pure-Rust engine behind the `personae` Python package.
//!
//! No PyO3 here: every algorithm is plain Rust over slices, unit-tested with `cargo test`, and
//! every failure is an [`error::Error`] value.

// Off x86-64 (or off Linux, for the low-precision passes) the SIMD fast paths compile out, which
// leaves their tables, scratch and helpers unused there; the x86-64 Linux build, the one CI
// lints with `-D warnings`, keeps every such warning.
#![cfg_attr(
    not(all(target_arch = "x86_64", target_os = "linux")),
    allow(dead_code, unused_imports, unused_variables, unused_mut)
)]

pub mod ampcf;
pub mod calibrate;
pub mod checkpoint;
pub mod csr;
pub mod error;
pub mod family;
pub mod filter;
pub mod fused;
pub mod fuzzing;
pub mod gemm;
pub mod isa;
pub mod lowp;
pub mod metrics;
pub mod model;
pub mod multvae;
pub mod popularity;
pub mod similar;
pub mod threads;
pub mod topk;
pub mod vmath;

pub use error::{Error, Result};
