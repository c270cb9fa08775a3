//! GFLOP/s of `gemm::a_bt` on the Mult-VAE decoder's shapes, per kernel, one thread.
//!
//! `cargo run --release -p personae-core --example gemm_speed [-- m n k reps]`

use std::time::Instant;

use personae_core::gemm::{self, Kernel};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("m n k reps"))
        .collect();
    let (m, n, k, reps) = match args[..] {
        [m, n, k, r] => (m, n, k, r),
        _ => (256, 2048, 600, 20),
    };
    let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
    let bt: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
    let mut c = vec![0f32; m * n];
    for kern in [Kernel::Portable, Kernel::Avx512] {
        let used = gemm::set_kernel(kern);
        if used != kern {
            println!("{}: not available on this CPU", kern.name());
            continue;
        }
        let mut best = f64::INFINITY;
        for _ in 0..reps {
            let t = Instant::now();
            gemm::a_bt(m, n, k, &a, &bt, &mut c);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let gflops = 2.0 * (m * n * k) as f64 / best / 1e9;
        println!("{:>8}  m={m} n={n} k={k}: {gflops:.1} GFLOP/s", kern.name());
    }
}
