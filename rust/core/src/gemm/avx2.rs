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

blocked::pack_b! {
    features: "avx2,fma",
    lanes: 8,
    zero: _mm256_setzero_ps(),
    mask: |n: usize, v: usize| mask8(n.saturating_sub(8 * v)),
    load_masked: |p, m| _mm256_maskload_ps(p, m),
    store: |p, x| _mm256_store_ps(p, x),
    transpose: transpose8,
    fetch_next: |_: *const f32| {},
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

blocked::microkernel! {
    features: "avx2,fma",
    rows: [6, 5, 4, 3, 2],
    lanes: 8,
    zero: _mm256_setzero_ps(),
    load: |p| _mm256_load_ps(p),
    broadcast: |p: *const f32| _mm256_broadcast_ss(&*p),
    fmadd: |x, y, z| _mm256_fmadd_ps(x, y, z),
    add: |x, y| _mm256_add_ps(x, y),
    mask: |cols: usize, v: usize| {
        let n = cols.saturating_sub(8 * v);
        (n > 0).then(|| mask8(n))
    },
    load_masked: |p, m| _mm256_maskload_ps(p, m),
    store_masked: |p, m, x| _mm256_maskstore_ps(p, m, x),
}
