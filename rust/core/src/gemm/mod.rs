//! The one place that multiplies dense matrices. On x86-64 CPUs with AVX-512F it runs our own
//! kernel ([`avx512`]): the `gemm` crate's AVX-512 kernels need its `nightly` feature, so on
//! stable Rust it would run AVX2 kernels there, at about 40% of the CPU's SGEMM peak. With
//! AVX2/FMA only, our [`avx2`] kernel, in the same summation order (so the certified first
//! passes of [`crate::lowp`] can rescore against either). Everywhere else the `gemm` crate
//! dispatches at run time to the best SIMD kernel for the CPU at hand (NEON, scalar). Threading
//! is ours (rayon over users), so each call here runs single-threaded.
//!
//! `PERSONAE_GEMM=portable` in the environment (read once, at the first product) forces the
//! `gemm` crate everywhere, and `PERSONAE_GEMM=avx2` our AVX2 kernel (with its int16 first pass)
//! on an AVX-512 CPU, so the paths can be compared on one machine.

use std::sync::atomic::{AtomicU8, Ordering};

use gemm::{gemm, Parallelism};

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "x86_64")]
pub(crate) mod blocked;
mod gathered;
mod packed;

pub use gathered::a_rows_t;

pub use packed::PackedBt;

/// Which kernel the products run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The `gemm` crate (AVX2/FMA, NEON, scalar).
    Portable,
    /// Our AVX-512F kernel.
    Avx512,
    /// Our AVX2/FMA kernel (the AVX-512 kernel's summation order, so its products are bit for
    /// bit the same and the certified first passes can rescore against it).
    Avx2,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
        }
    }
}

/// 0: not chosen yet, else 1 + the chosen kernel's index.
static KERNEL: AtomicU8 = AtomicU8::new(0);

/// Whether this CPU runs kernel `k`.
fn runs(k: Kernel) -> bool {
    match k {
        Kernel::Portable => true,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => avx512::available(),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => avx2::available(),
        #[cfg(not(target_arch = "x86_64"))]
        _ => false,
    }
}

/// The best kernel this CPU runs.
pub fn best() -> Kernel {
    [Kernel::Avx512, Kernel::Avx2]
        .into_iter()
        .find(|&k| runs(k))
        .unwrap_or(Kernel::Portable)
}

/// The kernel in use: the best one for this CPU unless `PERSONAE_GEMM` says `portable` or
/// `avx2`.
pub fn kernel() -> Kernel {
    match KERNEL.load(Ordering::Relaxed) {
        1 => Kernel::Portable,
        2 => Kernel::Avx512,
        3 => Kernel::Avx2,
        _ => {
            // A kernel the CPU lacks falls back to the best it has (set_kernel).
            let k = match std::env::var("PERSONAE_GEMM").as_deref() {
                Ok("portable") => Kernel::Portable,
                Ok("avx2") => Kernel::Avx2,
                _ => best(),
            };
            set_kernel(k)
        }
    }
}

/// Forces a kernel (tests and benches compare them); one this CPU cannot run falls back to the
/// best it can. Returns the kernel now in use.
pub fn set_kernel(k: Kernel) -> Kernel {
    let k = if runs(k) { k } else { best() };
    KERNEL.store(
        match k {
            Kernel::Portable => 1,
            Kernel::Avx512 => 2,
            Kernel::Avx2 => 3,
        },
        Ordering::Relaxed,
    );
    k
}

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
    run(kernel(), m, n, k, a, b, (rs, cs), c)
}

/// [`product`] on kernel `kern`, past the checks (`m, n, k > 0`, every index in bounds).
#[allow(clippy::too_many_arguments)]
fn run(
    kern: Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    (rs, cs): (isize, isize),
    c: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        type Ours = unsafe fn(usize, usize, usize, *const f32, *const f32, usize, usize, *mut f32);
        let ours: Option<Ours> = match kern {
            Kernel::Avx512 if avx512::available() => Some(avx512::gemm),
            Kernel::Avx2 if avx2::available() => Some(avx2::gemm),
            _ => None,
        };
        if let Some(f) = ours {
            // SAFETY: the kernel's CPU features were just detected; the callers' asserts bound
            // every index the strides can reach.
            unsafe {
                f(
                    m,
                    n,
                    k,
                    a.as_ptr(),
                    b.as_ptr(),
                    rs as usize,
                    cs as usize,
                    c.as_mut_ptr(),
                )
            };
            return;
        }
    }
    let _ = kern;
    // SAFETY: the callers' asserts bound every index the strides can reach.
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

    /// Deterministic values in [-1, 1).
    fn values(len: usize, seed: &mut u64) -> Vec<f32> {
        (0..len)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// `a_b` and `a_bt` through kernel `kern`, written over a NaN-filled `c` (so every element
    /// must be stored), against a naive f64 triple loop.
    fn check(kern: Kernel, m: usize, n: usize, k: usize, seed: &mut u64) {
        let a = values(m * k, seed);
        let b = values(k * n, seed);
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        for (right, strides) in [(&b, (n as isize, 1)), (&bt, (1, k as isize))] {
            let mut c = vec![f32::NAN; m * n + 3];
            if m > 0 && n > 0 && k > 0 {
                run(kern, m, n, k, &a, right, strides, &mut c);
            } else {
                product(m, n, k, &a, right, strides, &mut c);
            }
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|t| a[i * k + t] as f64 * b[t * n + j] as f64)
                        .sum();
                    let got = c[i * n + j] as f64;
                    assert!(
                        (got - want).abs() <= 1e-5 * (k as f64).sqrt().max(1.0),
                        "{kern:?} m={m} n={n} k={k} strides={strides:?} ({i}, {j}): {got} vs {want}"
                    );
                }
            }
            // Nothing past m x n is written.
            assert!(c[m * n..].iter().all(|x| x.is_nan()));
        }
    }

    fn kernels() -> Vec<Kernel> {
        [Kernel::Portable, Kernel::Avx2, Kernel::Avx512]
            .into_iter()
            .filter(|&k| runs(k))
            .collect()
    }

    /// The AVX2 kernel keeps the AVX-512 kernel's summation order: their products are equal
    /// bit for bit (what lets one exact rescoring serve both), across k blocks and edges.
    #[test]
    fn avx2_and_avx512_products_are_bitwise_equal() {
        if !(runs(Kernel::Avx2) && runs(Kernel::Avx512)) {
            eprintln!("not both kernels here: nothing to compare");
            return;
        }
        let mut seed = 17;
        for &(m, n, k) in &[(19, 800, 1300), (37, 421, 600), (7, 33, 641), (1, 5, 3)] {
            let a = values(m * k, &mut seed);
            let bt = values(n * k, &mut seed);
            let mut c = [vec![0f32; m * n], vec![0f32; m * n]];
            for (kern, c) in [Kernel::Avx2, Kernel::Avx512].into_iter().zip(&mut c) {
                run(kern, m, n, k, &a, &bt, (1, k as isize), c);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&c[0]), bits(&c[1]), "m={m} n={n} k={k}");
        }
    }

    #[test]
    fn matches_naive_on_edge_sizes() {
        let sizes = [0, 1, 2, 7, 8, 9, 15, 16, 17, 33, 47, 48, 49];
        let mut seed = 11;
        for kern in kernels() {
            for &m in &sizes {
                for &n in &sizes {
                    for &k in &[0, 1, 15, 16, 17, 33] {
                        check(kern, m, n, k, &mut seed);
                    }
                }
            }
        }
    }

    #[test]
    fn matches_naive_across_blocks() {
        // Past one packed column block (384), one k block (640), and the Mult-VAE shapes'
        // kinds: k = 600 hidden, a partial last user panel.
        let mut seed = 5;
        for kern in kernels() {
            for &(m, n, k) in &[
                (19, 800, 1300),
                (37, 421, 600),
                (3, 1000, 641),
                (9, 97, 200),
            ] {
                check(kern, m, n, k, &mut seed);
            }
        }
    }

    #[test]
    fn forcing_the_portable_kernel_sticks() {
        let before = kernel();
        assert_eq!(set_kernel(Kernel::Portable), Kernel::Portable);
        assert_eq!(kernel(), Kernel::Portable);
        assert_eq!(set_kernel(Kernel::Avx512), best());
        let avx2 = set_kernel(Kernel::Avx2);
        assert!(avx2 == Kernel::Avx2 || (!runs(Kernel::Avx2) && avx2 == best()));
        set_kernel(before);
    }

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
