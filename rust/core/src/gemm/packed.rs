//! The right operand of a product packed once: AMP-CF multiplies its users' `x L` (a few rows
//! per call) by the same `R` (items x rank) chunk after chunk, so packing `R` once saves the
//! general kernel's per-call packing. Used only while the AVX-512 kernel is (see the parent
//! module); [`PackedBt::new`] returns None otherwise and callers use [`super::a_bt`].

use super::Kernel;

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
    /// Packs `bt` (`n x k`), or None when the AVX-512 kernel is not in use (use [`a_bt`] then).
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

    /// `c[m x n] = a[m x k] * bt^T`, as [`super::a_bt`].
    pub fn a_bt(&self, m: usize, a: &[f32], c: &mut [f32]) {
        assert!(a.len() >= m * self.k && c.len() >= m * self.n);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `new` only builds a PackedBt when the AVX-512 kernel is in use, i.e. on a CPU with AVX-512F; the asserts above bound
        // every index the kernel reads or writes.
        unsafe {
            avx512::product(self, m, a, c)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("PackedBt::new returns None off x86_64")
    }
}

/// Whether the products run our AVX-512 kernel (so `PERSONAE_GEMM=portable` turns the packed
/// path off too).
fn avx512() -> bool {
    super::kernel() == Kernel::Avx512
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PackedBt, KC, PANEL, ROWS};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(b: &PackedBt, m: usize, a: &[f32], c: &mut [f32]) {
        let (n, k) = (b.n, b.k);
        // The left operand interleaved by blocks of ROWS rows (`[block][k][ROWS]`, zero rows
        // padding the last block): the kernel's broadcasts then read one contiguous stream
        // instead of ROWS strided ones, which kept it waiting on loads.
        let blocks = m.div_ceil(ROWS);
        let mut pa = vec![0f32; blocks * k * ROWS];
        for (u, row) in a[..m * k].chunks_exact(k).enumerate() {
            let (ub, r) = (u / ROWS, u % ROWS);
            let dst = &mut pa[ub * k * ROWS..(ub + 1) * k * ROWS];
            for (kk, &x) in row.iter().enumerate() {
                dst[kk * ROWS + r] = x;
            }
        }
        for p in 0..n.div_ceil(PANEL) {
            let panel = &b.data[p * k * PANEL..(p + 1) * k * PANEL];
            let (j0, w) = (p * PANEL, (n - p * PANEL).min(PANEL));
            let mut k0 = 0;
            while k0 < k {
                let kc = (k - k0).min(KC);
                let part = &panel[k0 * PANEL..(k0 + kc) * PANEL];
                let mut u = 0;
                while u < m {
                    let a = &pa[(u / ROWS * k + k0) * ROWS..];
                    let c = &mut c[u * n + j0..];
                    let add = k0 > 0;
                    macro_rules! rows {
                        ($($r:literal)*) => {
                            match (m - u).min(ROWS) {
                                $($r => block::<$r>(part, a, kc, c, n, w, add),)*
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

    /// `R` rows of a packed block of `a` (element (r, kk) at `kk * ROWS + r`, `kc` deep) times
    /// one panel part, into `c` (row stride `ldc`, `w` columns; added to what `c` holds when
    /// `add`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const R: usize>(
        part: &[f32],
        a: &[f32],
        kc: usize,
        c: &mut [f32],
        ldc: usize,
        w: usize,
        add: bool,
    ) {
        assert!(part.len() >= kc * PANEL && a.len() >= kc * ROWS);
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let bp = part.as_ptr();
        let ap = a.as_ptr();
        for kk in 0..kc {
            // SAFETY: kk < kc and r < R <= ROWS: the part holds kc x PANEL floats and a holds
            // kc x ROWS (asserted above).
            let (b0, b1) = unsafe {
                (
                    _mm512_loadu_ps(bp.add(kk * PANEL)),
                    _mm512_loadu_ps(bp.add(kk * PANEL + 16)),
                )
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(unsafe { *ap.add(kk * ROWS + r) });
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
            super::super::a_bt(m, n, k, &a, &bt, &mut want);
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
}
