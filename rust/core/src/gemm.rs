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

/// The right operand of [`a_bt`] packed once for an AVX-512 kernel: `bt` (`n x k`,
/// row-major) as panels of [`PANEL`] rows, k-major (`[panel][k][PANEL]`, zero-padded). For a
/// large weight matrix multiplied by many small left operands (AMP-CF's users' `x L` times `R`)
/// it saves the per-call packing of a general GEMM and uses the 512-bit FMA the `gemm` crate
/// leaves unused on stable Rust.
#[derive(Debug)]
pub struct PackedBt {
    n: usize,
    k: usize,
    data: Vec<f32>,
}

/// Rows of `bt` per panel: two AVX-512 registers.
pub const PANEL: usize = 32;
/// Left-operand rows per kernel call: 12 x 2 accumulators of the 32 registers.
const ROWS: usize = 12;
/// Depth per pass: a panel's `KC x PANEL` floats (32 KiB) stay in L1 across the row blocks.
const KC: usize = 256;

impl PackedBt {
    /// Packs `bt` (`n x k`), or None when this CPU lacks AVX-512F (use [`a_bt`] then).
    pub fn new(n: usize, k: usize, bt: &[f32]) -> Option<Self> {
        if !avx512() || k == 0 {
            return None;
        }
        assert!(bt.len() >= n * k);
        let panels = n.div_ceil(PANEL);
        let mut data = vec![0f32; panels * k * PANEL];
        for (j, row) in bt[..n * k].chunks_exact(k).enumerate() {
            let (p, l) = (j / PANEL, j % PANEL);
            let panel = &mut data[p * k * PANEL..(p + 1) * k * PANEL];
            for (kk, &x) in row.iter().enumerate() {
                panel[kk * PANEL + l] = x;
            }
        }
        Some(Self { n, k, data })
    }

    /// `c[m x n] = a[m x k] * bt^T`, as [`a_bt`].
    pub fn a_bt(&self, m: usize, a: &[f32], c: &mut [f32]) {
        assert!(a.len() >= m * self.k && c.len() >= m * self.n);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `new` only builds a PackedBt on a CPU with AVX-512F; the asserts above bound
        // every index the kernel reads or writes.
        unsafe {
            avx512::product(self, m, a, c)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("PackedBt::new returns None off x86_64")
    }
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PackedBt, KC, PANEL, ROWS};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(b: &PackedBt, m: usize, a: &[f32], c: &mut [f32]) {
        let (n, k) = (b.n, b.k);
        for p in 0..n.div_ceil(PANEL) {
            let panel = &b.data[p * k * PANEL..(p + 1) * k * PANEL];
            let (j0, w) = (p * PANEL, (n - p * PANEL).min(PANEL));
            let mut k0 = 0;
            while k0 < k {
                let kc = (k - k0).min(KC);
                let part = &panel[k0 * PANEL..(k0 + kc) * PANEL];
                let mut u = 0;
                while u < m {
                    let a = &a[u * k + k0..];
                    let c = &mut c[u * n + j0..];
                    let add = k0 > 0;
                    macro_rules! rows {
                        ($($r:literal)*) => {
                            match (m - u).min(ROWS) {
                                $($r => block::<$r>(part, a, k, kc, c, n, w, add),)*
                                _ => unreachable!(),
                            }
                        };
                    }
                    rows!(1 2 3 4 5 6 7 8 9 10 11 12);
                    u += ROWS;
                }
                k0 += kc;
            }
        }
    }

    /// `R` rows of `a` (stride `lda`, `kc` deep) times one panel part, into `c` (row stride
    /// `ldc`, `w` columns; added to what `c` holds when `add`).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const R: usize>(
        part: &[f32],
        a: &[f32],
        lda: usize,
        kc: usize,
        c: &mut [f32],
        ldc: usize,
        w: usize,
        add: bool,
    ) {
        assert!(part.len() >= kc * PANEL && a.len() >= (R - 1) * lda + kc);
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let bp = part.as_ptr();
        let ap = a.as_ptr();
        for kk in 0..kc {
            // SAFETY: kk < kc, the part holds kc x PANEL floats and a holds R rows of kc at
            // stride lda (asserted above).
            let (b0, b1) = unsafe {
                (
                    _mm512_loadu_ps(bp.add(kk * PANEL)),
                    _mm512_loadu_ps(bp.add(kk * PANEL + 16)),
                )
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(unsafe { *ap.add(r * lda + kk) });
                acc[0] = _mm512_fmadd_ps(x, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(x, b1, acc[1]);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let mut out = [0f32; PANEL];
            // SAFETY: out holds PANEL = 32 floats.
            unsafe {
                _mm512_storeu_ps(out.as_mut_ptr(), acc[0]);
                _mm512_storeu_ps(out.as_mut_ptr().add(16), acc[1]);
            }
            let dst = &mut c[r * ldc..r * ldc + w];
            if add {
                dst.iter_mut().zip(&out).for_each(|(d, x)| *d += x);
            } else {
                dst.copy_from_slice(&out[..w]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_matches_a_bt() {
        for (m, n, k) in [
            (1, 1, 1),
            (7, 33, 5),
            (13, 64, 17),
            (6, 95, 448),
            (2, 31, 3),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let bt: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut want = vec![0.0; m * n];
            a_bt(m, n, k, &a, &bt, &mut want);
            let Some(p) = PackedBt::new(n, k, &bt) else {
                return; // no AVX-512 here: a_bt serves
            };
            let mut got = vec![f32::NAN; m * n];
            p.a_bt(m, &a, &mut got);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{m}x{n}x{k}: {g} vs {w}"
                );
            }
        }
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
