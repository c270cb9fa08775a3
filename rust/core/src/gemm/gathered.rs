//! `c[m x b] = a[m x k] * w[items]^T` for a few rows of `a` (a user's personas) and scattered
//! rows of an item-major `w`: AMP-CF's exact pass scores a few hundred candidates a user, each a
//! row of the low-rank factor read from memory once. Gathering the rows into a block for the
//! blocked GEMM copies every row twice (the gather, then the GEMM's packing) for a product whose
//! `m` is at most a handful; here each row is read in place, once, into `m` FMA chains (with
//! several items at a time when `m` is small, so that enough chains run to hide the FMA
//! latency), and the next rows are prefetched while these are summed.
//!
//! The sums run in their own order (not the blocked kernels'): callers that need the GEMM's
//! bits use [`crate::lowp::exact_dots`].

/// `c[i * b + g] = a[i] . w[items[g]]` for the `m` rows of `a` (each `k` wide, row-major) and
/// the `b = items.len()` rows of `w` (item-major, `k` wide) that `items` names.
///
/// # Panics
/// If `a`, `c` are shorter than `m x k`, `m x b`, or an item is not a row of `w` (callers pass
/// checked items: an internal error).
pub fn a_rows_t(m: usize, k: usize, a: &[f32], w: &[f32], items: &[u32], c: &mut [f32]) {
    let b = items.len();
    assert!(a.len() >= m * k && c.len() >= m * b);
    assert!(items.iter().all(|&j| (j as usize + 1) * k <= w.len()));
    if m == 0 || b == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if k > 0 && super::kernel() != super::Kernel::Portable && super::avx2::available() {
        // SAFETY: AVX2 and FMA were just detected; the asserts bound every row read and written.
        unsafe { avx2::a_rows_t(m, k, a, w, items, c) };
        return;
    }
    gathered_gemm(m, k, a, w, items, c)
}

/// [`a_rows_t`] elsewhere (and under `PERSONAE_GEMM=portable`): the rows gathered for the GEMM,
/// whose kernels (NEON, say) beat a scalar loop.
fn gathered_gemm(m: usize, k: usize, a: &[f32], w: &[f32], items: &[u32], c: &mut [f32]) {
    let mut rows = Vec::with_capacity(items.len() * k);
    for &j in items {
        rows.extend_from_slice(&w[j as usize * k..(j as usize + 1) * k]);
    }
    super::a_bt(m, items.len(), k, a, &rows, c);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::gemm::avx2::mask8;

    /// [`super::a_rows_t`] past its checks: rows of `a` in groups of at most 8, each group by
    /// the kernel whose `M x G` accumulators (`G` items at a time) fill the FMA units.
    ///
    /// # Safety
    /// AVX2 and FMA; every index in bounds (checked by the caller); `k > 0`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn a_rows_t(
        m: usize,
        k: usize,
        a: &[f32],
        w: &[f32],
        items: &[u32],
        c: &mut [f32],
    ) {
        let b = items.len();
        let mut i0 = 0;
        while i0 < m {
            let rows = (m - i0).min(8);
            let (a, c) = (a[i0 * k..].as_ptr(), c[i0 * b..].as_mut_ptr());
            let (w, it) = (w.as_ptr(), items);
            match rows {
                1 => rows_t::<1, 6>(k, a, w, it, c),
                2 => rows_t::<2, 4>(k, a, w, it, c),
                3 => rows_t::<3, 3>(k, a, w, it, c),
                4 => rows_t::<4, 2>(k, a, w, it, c),
                5 => rows_t::<5, 2>(k, a, w, it, c),
                6 => rows_t::<6, 2>(k, a, w, it, c),
                7 => rows_t::<7, 1>(k, a, w, it, c),
                _ => rows_t::<8, 1>(k, a, w, it, c),
            }
            i0 += rows;
        }
    }

    /// `M` rows of `a` against the items, `G` items at a time: per 8 values of `k`, `G` loads of
    /// the items' rows and `M` of `a` feed `M x G` FMAs; the last partial 8 is a masked load.
    /// `c`'s rows are `items.len()` apart.
    ///
    /// # Safety
    /// As [`a_rows_t`]; `a` holds `M x k` values and `c` `M x items.len()`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_t<const M: usize, const G: usize>(
        k: usize,
        a: *const f32,
        w: *const f32,
        items: &[u32],
        c: *mut f32,
    ) {
        let b = items.len();
        let full = k / 8 * 8;
        let tail = mask8(k - full);
        let mut g0 = 0;
        while g0 < b {
            let g = (b - g0).min(G);
            let mut row = [w; G];
            for (x, r) in row.iter_mut().enumerate().take(g) {
                *r = w.add(items[g0 + x] as usize * k);
            }
            // Past the last item, the spare lanes re-read the last row (results dropped).
            for x in g..G {
                row[x] = row[g - 1];
            }
            // The next group's rows, one line in 16 floats, while this one is summed.
            for &j in items[(g0 + G).min(b)..(g0 + 2 * G).min(b)].iter() {
                let p = w.add(j as usize * k) as *const i8;
                let mut off = 0;
                while off < k * 4 {
                    _mm_prefetch::<_MM_HINT_T0>(p.add(off));
                    off += 64;
                }
            }
            let mut acc = [[_mm256_setzero_ps(); G]; M];
            let mut kk = 0;
            while kk < full {
                let mut x = [_mm256_setzero_ps(); G];
                for (v, r) in x.iter_mut().zip(&row) {
                    *v = _mm256_loadu_ps(r.add(kk));
                }
                for (i, acc) in acc.iter_mut().enumerate() {
                    let ai = _mm256_loadu_ps(a.add(i * k + kk));
                    for (s, v) in acc.iter_mut().zip(&x) {
                        *s = _mm256_fmadd_ps(ai, *v, *s);
                    }
                }
                kk += 8;
            }
            if full < k {
                let mut x = [_mm256_setzero_ps(); G];
                for (v, r) in x.iter_mut().zip(&row) {
                    *v = _mm256_maskload_ps(r.add(full), tail);
                }
                for (i, acc) in acc.iter_mut().enumerate() {
                    let ai = _mm256_maskload_ps(a.add(i * k + full), tail);
                    for (s, v) in acc.iter_mut().zip(&x) {
                        *s = _mm256_fmadd_ps(ai, *v, *s);
                    }
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                for (x, s) in acc.iter().enumerate().take(g) {
                    *c.add(i * b + g0 + x) = hsum(*s);
                }
            }
            g0 += g;
        }
    }

    /// The sum of a vector's 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row count (the kernels' M from 1 to 8 and groups past 8), item counts that leave
    /// partial groups, widths with and without a tail, repeated items: the f64 dot products,
    /// on this CPU's path and on the portable one.
    #[test]
    fn gathered_rows_are_the_dot_products() {
        for path in [a_rows_t as Path, gathered_gemm] {
            gathered_rows_on(path);
        }
    }

    /// A signature of [`a_rows_t`].
    type Path = fn(usize, usize, &[f32], &[f32], &[u32], &mut [f32]);

    fn gathered_rows_on(path: Path) {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for &(m, k, n) in &[
            (1, 1, 3),
            (2, 7, 5),
            (3, 8, 9),
            (4, 9, 4),
            (5, 64, 11),
            (6, 13, 2),
            (7, 448, 9),
            (8, 17, 10),
            (9, 33, 7),
            (17, 5, 6),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
            let w: Vec<f32> = (0..n * k).map(|_| next()).collect();
            for b in [0usize, 1, 2, 3, 5, 7, 13] {
                let items: Vec<u32> = (0..b).map(|g| ((g * 5 + 3) % n) as u32).collect();
                let mut c = vec![f32::NAN; m * b];
                path(m, k, &a, &w, &items, &mut c);
                for i in 0..m {
                    for (g, &j) in items.iter().enumerate() {
                        let want: f64 = (0..k)
                            .map(|x| f64::from(a[i * k + x]) * f64::from(w[j as usize * k + x]))
                            .sum();
                        let got = f64::from(c[i * b + g]);
                        assert!((got - want).abs() <= 1e-5 * (1.0 + k as f64), "{m} {k} {b}");
                    }
                }
            }
        }
    }
}
