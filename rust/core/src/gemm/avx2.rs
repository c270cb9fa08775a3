//! A hand-written AVX2/FMA f32 GEMM with the AVX-512 kernel's summation order (the blocking of
//! [`super::blocked`], shared): each element of `c` is one FMA chain per equal k block, the
//! blocks added in turn. So its products equal the AVX-512 kernel's bit for bit, and
//! [`crate::lowp`]'s exact rescoring reproduces either (the `gemm` crate's order is its own,
//! which no rescoring could follow).
//!
//! Layout is [`super::avx512`]'s with 256-bit vectors: `MR` broadcast rows (users) times `NV`
//! ymm registers of columns (items), `MR x NV` accumulators of the 16 registers.

use std::arch::x86_64::*;

use super::blocked::{self, Tile};

/// Broadcast rows (users) per microkernel: 6 x 2 accumulators, 2 loads and a broadcast.
pub const MR: usize = 6;
/// ymm vectors along `n` per microkernel row.
const NV: usize = 2;
/// Columns (items) per microkernel: `NV` vectors of 8 floats.
pub const NR: usize = 8 * NV;
/// Columns per packed block of `B`: `NC x KC` floats (480 KiB) stay in a 512 KiB L2.
const NC: usize = 192;

/// Whether this CPU runs the AVX2 path.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// This kernel's tile for the shared blocking.
const TILE: Tile = Tile {
    mr: MR,
    nr: NR,
    nc: NC,
    pack_a,
    pack_b,
    micro,
};

/// `c = a * B` where element `(kk, j)` of `B` is `b[kk * rs + j * cs]`; `a` is `m x k`
/// row-major, `c` is `m x n` row-major.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and `a`, `b`, `c` must hold every element the shapes and
/// strides reach (`m, n, k > 0`).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    b: *const f32,
    rs: usize,
    cs: usize,
    c: *mut f32,
) {
    blocked::gemm(&TILE, m, n, k, a, b, rs, cs, c)
}

/// Packs `a` (`m x k`, row-major) into `MR`-row panels `[k][MR]`, zero rows past `m` (a few
/// users' rows: small beside the product, so plainly).
unsafe fn pack_a(m: usize, k: usize, a: *const f32, out: *mut f32) {
    for p in 0..m.div_ceil(MR) {
        let dst = out.add(p * MR * k);
        for i in 0..MR {
            let row = p * MR + i;
            for kk in 0..k {
                *dst.add(kk * MR + i) = if row < m { *a.add(row * k + kk) } else { 0.0 };
            }
        }
    }
}

/// The lanes of an 8-wide vector below `n` (`n` clipped to 0..=8), as a load/store mask.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn mask8(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n.min(8) as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// Packs the `kc x nc` block of `B` at `b` (element `(kk, j)` at `b[kk * rs + j * cs]`) into
/// `NR`-column panels `[kc][NR]`, zero columns past `nc`.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_b(kc: usize, nc: usize, b: *const f32, rs: usize, cs: usize, out: *mut f32) {
    let mut jr = 0;
    while jr < nc {
        let cols = NR.min(nc - jr);
        let dst = out.add(jr * kc);
        if cs == 1 {
            // Rows of B are contiguous: copy NR-wide slices, masked at the edge.
            for kk in 0..kc {
                let src = b.add(kk * rs + jr);
                for v in 0..NV {
                    let x = _mm256_maskload_ps(
                        src.wrapping_add(8 * v),
                        mask8(cols.saturating_sub(8 * v)),
                    );
                    _mm256_store_ps(dst.add(kk * NR + 8 * v), x);
                }
            }
        } else if rs == 1 {
            // Columns of B are contiguous (B^T row-major): transpose 8 x 8 blocks.
            for v in 0..NV {
                let n8 = cols.saturating_sub(8 * v).min(8);
                let mut kk = 0;
                while kk < kc {
                    let kn = (kc - kk).min(8);
                    let kmask = mask8(kn);
                    let mut r = [_mm256_setzero_ps(); 8];
                    for (j, row) in r.iter_mut().enumerate().take(n8) {
                        *row = _mm256_maskload_ps(b.add((jr + 8 * v + j) * cs + kk), kmask);
                    }
                    let t = transpose8(r);
                    for (t, x) in t.iter().enumerate().take(kn) {
                        _mm256_store_ps(dst.add((kk + t) * NR + 8 * v), *x);
                    }
                    kk += 8;
                }
            }
        } else {
            for kk in 0..kc {
                for j in 0..NR {
                    *dst.add(kk * NR + j) = if j < cols {
                        *b.add(kk * rs + (jr + j) * cs)
                    } else {
                        0.0
                    };
                }
            }
        }
        jr += NR;
    }
}

/// Transposes an 8 x 8 block held as 8 rows.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    let u = [
        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
        _mm256_shuffle_ps::<0xee>(t[0], t[2]),
        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
        _mm256_shuffle_ps::<0xee>(t[1], t[3]),
        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
        _mm256_shuffle_ps::<0xee>(t[4], t[6]),
        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
        _mm256_shuffle_ps::<0xee>(t[5], t[7]),
    ];
    [
        _mm256_permute2f128_ps::<0x20>(u[0], u[4]),
        _mm256_permute2f128_ps::<0x20>(u[1], u[5]),
        _mm256_permute2f128_ps::<0x20>(u[2], u[6]),
        _mm256_permute2f128_ps::<0x20>(u[3], u[7]),
        _mm256_permute2f128_ps::<0x31>(u[0], u[4]),
        _mm256_permute2f128_ps::<0x31>(u[1], u[5]),
        _mm256_permute2f128_ps::<0x31>(u[2], u[6]),
        _mm256_permute2f128_ps::<0x31>(u[3], u[7]),
    ]
}

/// Dispatches to the microkernel for `rows` (1..=MR) rows.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro(
    rows: usize,
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    acc: bool,
) {
    match rows {
        6 => kernel::<6>(kc, a, b, c, ldc, cols, acc),
        5 => kernel::<5>(kc, a, b, c, ldc, cols, acc),
        4 => kernel::<4>(kc, a, b, c, ldc, cols, acc),
        3 => kernel::<3>(kc, a, b, c, ldc, cols, acc),
        2 => kernel::<2>(kc, a, b, c, ldc, cols, acc),
        _ => kernel::<1>(kc, a, b, c, ldc, cols, acc),
    }
}

/// `c[R x cols] (+)= apanel[R x kc] * bpanel[kc x NR]`: `R x NV` ymm accumulators, each one FMA
/// chain from zero (the AVX-512 kernel's order), added to `c` after the first k block.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn kernel<const R: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    acc: bool,
) {
    let mut s = [[_mm256_setzero_ps(); NV]; R];
    for kk in 0..kc {
        let bk = b.add(kk * NR);
        let mut bv = [_mm256_setzero_ps(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = _mm256_load_ps(bk.add(8 * v));
        }
        let ak = a.add(kk * MR);
        for (r, sr) in s.iter_mut().enumerate() {
            let x = _mm256_broadcast_ss(&*ak.add(r));
            for v in 0..NV {
                sr[v] = _mm256_fmadd_ps(x, bv[v], sr[v]);
            }
        }
    }
    for (r, sr) in s.iter().enumerate() {
        let row = c.add(r * ldc);
        for (v, &x) in sr.iter().enumerate() {
            let n = cols.saturating_sub(8 * v);
            if n == 0 {
                break;
            }
            let (p, mask) = (row.add(8 * v), mask8(n));
            let x = if acc {
                _mm256_add_ps(x, _mm256_maskload_ps(p, mask))
            } else {
                x
            };
            _mm256_maskstore_ps(p, mask, x);
        }
    }
}
