//! The one place that calls the GEMM crate. `gemm` dispatches at run time to the best SIMD
//! kernel for the CPU at hand (AVX2/FMA, AVX-512, NEON); threading is ours (rayon over users), so
//! each call here runs single-threaded.

use gemm::{gemm, Parallelism};

/// `c[m x n] = a[m x k] * b[k x n]`, all row-major and contiguous.
pub fn a_b(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(b.len() >= k * n);
    // Element (kk, j) of b sits at kk * n + j.
    product(m, n, k, a, b, (n as isize, 1), c)
}

/// `c[m x n] = a[m x k] * bt[n x k]^T`: `bt` holds one row per output column (item-major
/// weights), so a tile of items is a contiguous block of rows.
pub fn a_bt(m: usize, n: usize, k: usize, a: &[f32], bt: &[f32], c: &mut [f32]) {
    assert!(bt.len() >= n * k);
    // Element (kk, j) of the right operand sits at j * k + kk.
    product(m, n, k, a, bt, (1, k as isize), c)
}

/// `c = a * B` where element (kk, j) of B is `b[kk * rs + j * cs]`.
fn product(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    (rs, cs): (isize, isize),
    c: &mut [f32],
) {
    assert!(a.len() >= m * k && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].fill(0.0);
        return;
    }
    // SAFETY: the callers' asserts and the one above bound every index the strides can reach.
    unsafe {
        gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            cs,
            rs,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c1 = vec![0.0; m * n];
        let mut c2 = vec![0.0; m * n];
        a_b(m, n, k, &a, &b, &mut c1);
        a_bt(m, n, k, &a, &bt, &mut c2);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum();
                assert!((c1[i * n + j] - want).abs() < 1e-5);
                assert!((c2[i * n + j] - want).abs() < 1e-5);
            }
        }
    }
}
