//! A hand-written AVX-512 f32 GEMM: `c[m x n] = a[m x k] * B[k x n]`, single-threaded, for the
//! CPUs where the `gemm` crate (on stable Rust) only runs its AVX2 kernels.
//!
//! Layout is BLIS's (the SKX `sgemm` kernel, transposed for row-major `c`): the vector dimension
//! is `n` (items), `NV` zmm registers wide, and the broadcast dimension is `m` (users), `MR` rows,
//! so the microkernel keeps `MR x NV` accumulators and per step of `k` loads `NV` vectors of
//! packed `B` and broadcasts `MR` values of packed `a`.
//!
//! Blocking: [`super::blocked`]'s, shared with the AVX2 kernel. `c` is written directly (masked
//! at the right edge), accumulated over `KC` blocks.

use std::arch::x86_64::*;

use super::blocked::{self, Tile};

/// Broadcast rows (users) per microkernel.
pub const MR: usize = 8;
/// zmm vectors along `n` per microkernel row.
const NV: usize = 3;
/// Columns (items) per microkernel: `NV` vectors of 16 floats.
pub const NR: usize = 16 * NV;
/// Columns per packed block of `B`: `NC x KC` floats stay in L2.
const NC: usize = 384;

/// Whether this CPU runs the AVX-512 path (and `PERSONAE_ISA` allows it: [`crate::isa`]).
pub fn available() -> bool {
    crate::isa::avx512f()
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
/// The CPU must support AVX-512F, and `a`, `b`, `c` must hold every element the shapes and
/// strides reach (`m, n, k > 0`).
#[target_feature(enable = "avx512f")]
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

/// Packs `a` (`m x k`, row-major) into `MR`-row panels `[k][MR]`, zero rows past `m`: each
/// `MR x 16` block is transposed in registers.
#[target_feature(enable = "avx512f")]
unsafe fn pack_a(m: usize, k: usize, a: *const f32, out: *mut f32) {
    const { assert!(MR <= 16) };
    let lanes: __mmask16 = ((1u32 << MR) - 1) as u16;
    for p in 0..m.div_ceil(MR) {
        let dst = out.add(p * MR * k);
        let rows = MR.min(m - p * MR);
        let mut kk = 0;
        while kk < k {
            let kn = (k - kk).min(16);
            let kmask = lane_mask(kn, 0);
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, row) in r.iter_mut().enumerate().take(rows) {
                *row = _mm512_maskz_loadu_ps(kmask, a.add((p * MR + i) * k + kk));
            }
            let t = transpose16(r);
            for (j, x) in t.iter().enumerate().take(kn) {
                _mm512_mask_storeu_ps(dst.add((kk + j) * MR), lanes, *x);
            }
            kk += 16;
        }
    }
}

blocked::pack_b! {
    features: "avx512f",
    lanes: 16,
    zero: _mm512_setzero_ps(),
    mask: |n: usize, v: usize| lane_mask(n, v),
    load_masked: |p, m| _mm512_maskz_loadu_ps(m, p),
    store: |p, x| _mm512_store_ps(p, x),
    transpose: transpose16,
    // The same columns of the next 16 rows (read from memory, the weights stream through once
    // per user chunk): their line, fetched ahead.
    fetch_next: |p: *const f32| _mm_prefetch::<_MM_HINT_T0>(p.cast()),
}

/// The lanes of vector `v` (columns `16 v..16 v + 16`) that fall inside `cols` columns.
#[inline(always)]
pub(crate) fn lane_mask(cols: usize, v: usize) -> __mmask16 {
    let n = cols.saturating_sub(16 * v).min(16);
    if n == 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as u16
    }
}

/// Transposes a 16 x 16 block held as 16 rows.
#[target_feature(enable = "avx512f")]
pub(crate) fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    let lo = |a, b| _mm512_unpacklo_ps(a, b);
    let hi = |a, b| _mm512_unpackhi_ps(a, b);
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = lo(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = hi(r[2 * i], r[2 * i + 1]);
    }
    let pd_lo = |a: __m512, b: __m512| {
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)))
    };
    let pd_hi = |a: __m512, b: __m512| {
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)))
    };
    // u[4g + c] holds column c (mod 4) of rows 4g..4g+4, one 128-bit lane per column group.
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (t0, t1, t2, t3) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
        u[4 * g] = pd_lo(t0, t2);
        u[4 * g + 1] = pd_hi(t0, t2);
        u[4 * g + 2] = pd_lo(t1, t3);
        u[4 * g + 3] = pd_hi(t1, t3);
    }
    let mut w = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        w[c] = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
        w[4 + c] = _mm512_shuffle_f32x4::<0xdd>(u[c], u[4 + c]);
        w[8 + c] = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
        w[12 + c] = _mm512_shuffle_f32x4::<0xdd>(u[8 + c], u[12 + c]);
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..8 {
        out[c] = _mm512_shuffle_f32x4::<0x88>(w[c], w[8 + c]);
        out[8 + c] = _mm512_shuffle_f32x4::<0xdd>(w[c], w[8 + c]);
    }
    out
}

blocked::microkernel! {
    features: "avx512f",
    rows: [8, 7, 6, 5, 4, 3, 2],
    lanes: 16,
    zero: _mm512_setzero_ps(),
    load: |p| _mm512_load_ps(p),
    broadcast: |p: *const f32| _mm512_set1_ps(*p),
    fmadd: |x, y, z| _mm512_fmadd_ps(x, y, z),
    add: |x, y| _mm512_add_ps(x, y),
    mask: |cols: usize, v: usize| {
        let m = lane_mask(cols, v);
        (m != 0).then_some(m)
    },
    load_masked: |p, m| _mm512_maskz_loadu_ps(m, p),
    store_masked: |p, m, x| _mm512_mask_storeu_ps(p, m, x),
}
