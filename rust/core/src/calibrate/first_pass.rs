//! The greedy's f32 first pass (see `Greedy::fast_step`): every candidate's objective at a step
//! in f32. With AVX-512 the slots' and terms' values are looked up by permutes over registers
//! instead of loads; with AVX2 (and FMA) by permutes and blends over eight registers. The same f32
//! operations either way, so the same error bound. Sizes: at most [`SLOTS`] slots and
//! `TERMS - 1` terms (the zero term is entry 0 of the values).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::vmath::ln_normal_f32;

/// Slots (categories in play) one permute reaches: two registers of 16.
pub(super) const SLOTS: usize = 32;
/// Term values (the zero term included) two permutes reach: four registers of 16.
pub(super) const TERMS: usize = 64;

/// Tests: the AVX2 kernels even where AVX-512 runs, to check them on any x86-64 CPU.
#[cfg(test)]
pub(super) static FORCE_AVX2: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Whether this CPU runs the first pass (AVX-512, or AVX2 with FMA).
pub(super) fn available() -> bool {
    avx512() || avx2()
}

/// The kernels the first pass runs here: "avx512", "avx2" (look-ups by permute trees), or "f64"
/// (no first pass: every step in f64).
pub(super) fn path() -> &'static str {
    if avx512() {
        "avx512"
    } else if avx2() {
        "avx2"
    } else {
        "f64"
    }
}

/// Whether the AVX-512 kernels run.
fn avx512() -> bool {
    #[cfg(test)]
    if FORCE_AVX2.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        crate::isa::avx512f()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the AVX2 kernels run.
fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The slots' base arguments `(1 - s) m + s ws p` in f64 (`slot_m`, `slot_p`: at most
/// [`SLOTS`]), their smallest and largest, and the same in f32, padded with `s ws` (positive).
///
/// # Safety
/// [`available`] must be true; `slot_m` and `slot_p` have the same length, at most `SLOTS`.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn bases(
    slot_m: &[f64],
    slot_p: &[f64],
    s: f64,
    ws: f64,
) -> ([f32; SLOTS], f64, f64) {
    if avx512() {
        bases_avx512(slot_m, slot_p, s, ws)
    } else {
        bases_avx2(slot_m, slot_p, s, ws)
    }
}

/// `obj[t] = rel[t] + sum_j val[cols[j][t]]` with every term's f32 value
/// `lp ln(1 + (w c) / base[slot])`, the sums in `sum_terms`'s order; returns the largest
/// `obj`. `base`: the slots' base arguments in f32 as [`bases`] gives them (padded
/// with positive values).
///
/// # Safety
/// [`available`] must be true; every id in `cols` is at most the number of terms (< `TERMS`);
/// `cols` holds whole columns of `rel.len()` ids; `obj` is as long as `rel`.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn scores(
    base: &[f32; SLOTS],
    terms: &Terms,
    w: f32,
    rel: &[f32],
    cols: &[u32],
    obj: &mut [f32],
) -> f32 {
    if avx512() {
        scores_avx512(base, terms, w, rel, cols, obj)
    } else {
        scores_avx2(base, terms, w, rel, cols, obj)
    }
}

/// How many of `obj` are `>= floor`, and the first of them (0 when none).
///
/// # Safety
/// [`available`] must be true.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn at_least(obj: &[f32], floor: f32) -> (u32, usize) {
    if avx512() {
        at_least_avx512(obj, floor)
    } else {
        at_least_avx2(obj, floor)
    }
}

/// Every term's f32 value, `val[1 + i] = lp_i ln(1 + (w c_i) / base[slot_i])` (`val[0]`, the
/// zero term, and the padding 0), `$lanes` terms at a time: the operations of [`scores`] in
/// the same order for both kernels (`base_of` looks up the terms' slots' bases). A macro, not a
/// generic function, so that each kernel's intrinsics inline under its own target features.
macro_rules! term_values {
    (
        $terms:expr,
        $w:expr,
        $lanes:literal,
        load: $load:expr,
        base_of: $base_of:expr,
        set1: $set1:expr,
        mul: $mul:expr,
        div: $div:expr,
        add: $add:expr,
        store: $store:expr
    ) => {{
        let terms: &Terms = $terms;
        let (wv, one) = ($set1($w), $set1(1.0));
        let mut args = [0f32; TERMS];
        for blk in 0..TERMS / $lanes {
            let c = $load(terms.c1s.as_ptr().add($lanes * blk));
            let x = $div($mul(wv, c), $base_of(terms.slot.as_ptr().add($lanes * blk)));
            $store(args.as_mut_ptr().add($lanes * blk), $add(one, x));
        }
        for x in args.iter_mut() {
            *x = ln_normal_f32(*x);
        }
        let mut val = [0f32; TERMS + 16];
        for blk in 0..TERMS / $lanes {
            let ln = $load(args.as_ptr().add($lanes * blk));
            let lp = $load(terms.lp.as_ptr().add($lanes * blk));
            $store(val.as_mut_ptr().add(1 + $lanes * blk), $mul(lp, ln));
        }
        val
    }};
}

/// [`bases`] with AVX2: four slots at a time, the AVX-512 kernel's operations.
///
/// # Safety
/// AVX2 and FMA must be available; the slices as for [`bases`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bases_avx2(slot_m: &[f64], slot_p: &[f64], s: f64, ws: f64) -> ([f32; SLOTS], f64, f64) {
    let ns = slot_m.len().min(slot_p.len()).min(SLOTS);
    let (a, b) = (1.0 - s, s * ws);
    let (av, bv) = (_mm256_set1_pd(a), _mm256_set1_pd(b));
    let (mut lo, mut hi) = (
        _mm256_set1_pd(f64::INFINITY),
        _mm256_set1_pd(f64::NEG_INFINITY),
    );
    let mut out = [b as f32; SLOTS];
    let mut i = 0;
    while i + 4 <= ns {
        let m = _mm256_loadu_pd(slot_m.as_ptr().add(i));
        let p = _mm256_loadu_pd(slot_p.as_ptr().add(i));
        // Two products and a sum, unfused, as the AVX-512 kernel and the f64 step do.
        let base = _mm256_add_pd(_mm256_mul_pd(av, m), _mm256_mul_pd(bv, p));
        lo = _mm256_min_pd(lo, base);
        hi = _mm256_max_pd(hi, base);
        _mm_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtpd_ps(base));
        i += 4;
    }
    let (mut l, mut h) = ([0f64; 4], [0f64; 4]);
    _mm256_storeu_pd(l.as_mut_ptr(), lo);
    _mm256_storeu_pd(h.as_mut_ptr(), hi);
    let (mut lo, mut hi) = (
        l.iter().copied().fold(f64::INFINITY, f64::min),
        h.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    for g in i..ns {
        let base = a * slot_m[g] + b * slot_p[g];
        lo = lo.min(base);
        hi = hi.max(base);
        out[g] = base as f32;
    }
    (out, lo, hi)
}

/// [`scores`] with AVX2: the term values in eight registers, each candidate's looked up by
/// permutes and blends ([`look_up64`]).
///
/// # Safety
/// AVX2 and FMA must be available; the slices as for [`scores`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_avx2(
    base: &[f32; SLOTS],
    terms: &Terms,
    w: f32,
    rel: &[f32],
    cols: &[u32],
    obj: &mut [f32],
) -> f32 {
    let btab: [__m256; SLOTS / 8] =
        std::array::from_fn(|k| _mm256_loadu_ps(base.as_ptr().add(8 * k)));
    let val = term_values!(
        terms,
        w,
        8,
        load: |p: *const f32| _mm256_loadu_ps(p),
        base_of: |slot: *const u32| look_up32(&btab, _mm256_loadu_si256(slot.cast())),
        set1: |x| _mm256_set1_ps(x),
        mul: |x, y| _mm256_mul_ps(x, y),
        div: |x, y| _mm256_div_ps(x, y),
        add: |x, y| _mm256_add_ps(x, y),
        store: |p: *mut f32, v| _mm256_storeu_ps(p, v)
    );
    let nv = rel.len();
    let width = cols.len().checked_div(nv).unwrap_or(0);
    let mut top = _mm256_set1_ps(f32::NEG_INFINITY);
    let table: [__m256; TERMS / 8] =
        std::array::from_fn(|k| _mm256_loadu_ps(val.as_ptr().add(8 * k)));
    let mut i = 0;
    while i + 8 <= nv {
        let mut acc = _mm256_loadu_ps(rel.as_ptr().add(i));
        for j in 0..width {
            let idx = _mm256_loadu_si256(cols.as_ptr().add(j * nv + i) as *const __m256i);
            acc = _mm256_add_ps(acc, look_up64(&table, idx));
        }
        _mm256_storeu_ps(obj.as_mut_ptr().add(i), acc);
        top = _mm256_max_ps(top, acc);
        i += 8;
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), top);
    let mut best = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for t in i..nv {
        let mut v = rel[t];
        for j in 0..width {
            v += val[cols[j * nv + t] as usize % (TERMS + 16)];
        }
        obj[t] = v;
        best = best.max(v);
    }
    best
}

/// `table[idx]` for 8 ids below 64 (the table in 8 registers of 8): one `vpermps` a register
/// on the id's low 3 bits, then a tree of blends on bits 3, 4 and 5 (their sign-bit copies).
/// On the Zen 4 measured, 7% faster for the whole rerank than gathers from memory, which wait
/// on their loads.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn look_up64(table: &[__m256; TERMS / 8], idx: __m256i) -> __m256 {
    const { assert!(TERMS == 64) };
    let p: [__m256; 8] = std::array::from_fn(|k| _mm256_permutevar8x32_ps(table[k], idx));
    let bit = |m: __m256i| _mm256_castsi256_ps(m);
    let m3 = bit(_mm256_slli_epi32::<28>(idx));
    let q = [
        _mm256_blendv_ps(p[0], p[1], m3),
        _mm256_blendv_ps(p[2], p[3], m3),
        _mm256_blendv_ps(p[4], p[5], m3),
        _mm256_blendv_ps(p[6], p[7], m3),
    ];
    let m4 = bit(_mm256_slli_epi32::<27>(idx));
    let r0 = _mm256_blendv_ps(q[0], q[1], m4);
    let r1 = _mm256_blendv_ps(q[2], q[3], m4);
    _mm256_blendv_ps(r0, r1, bit(_mm256_slli_epi32::<26>(idx)))
}

/// `table[idx]` for 8 ids below 32 (the table in 4 registers of 8), as [`look_up64`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn look_up32(table: &[__m256; SLOTS / 8], idx: __m256i) -> __m256 {
    const { assert!(SLOTS == 32) };
    let p: [__m256; 4] = std::array::from_fn(|k| _mm256_permutevar8x32_ps(table[k], idx));
    let m3 = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx));
    let q0 = _mm256_blendv_ps(p[0], p[1], m3);
    let q1 = _mm256_blendv_ps(p[2], p[3], m3);
    _mm256_blendv_ps(q0, q1, _mm256_castsi256_ps(_mm256_slli_epi32::<27>(idx)))
}

/// [`at_least`] with AVX2.
///
/// # Safety
/// AVX2 must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn at_least_avx2(obj: &[f32], floor: f32) -> (u32, usize) {
    let f = _mm256_set1_ps(floor);
    let (mut count, mut first) = (0u32, usize::MAX);
    let mut i = 0;
    while i + 8 <= obj.len() {
        let x = _mm256_loadu_ps(obj.as_ptr().add(i));
        let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(x, f)) as u32;
        count += hit.count_ones();
        if hit != 0 && first == usize::MAX {
            first = i + hit.trailing_zeros() as usize;
        }
        i += 8;
    }
    for (t, &x) in obj.iter().enumerate().skip(i) {
        if x >= floor {
            count += 1;
            if first == usize::MAX {
                first = t;
            }
        }
    }
    (count, if first == usize::MAX { 0 } else { first })
}

/// The per-user inputs of [`scores`], padded: term `i`'s slot, (1 - s) c and lambda p(g)
/// in f32, `TERMS` each (padding: slot 0, c 0, lambda p 0, whose value is 0).
#[derive(Default)]
pub(super) struct Terms {
    pub slot: Vec<u32>,
    pub c1s: Vec<f32>,
    pub lp: Vec<f32>,
}

impl Terms {
    /// This user's terms (fewer than `TERMS`), from the greedy's f64 term arrays.
    pub fn fill(&mut self, slot: &[u32], c1s: &[f64], lp: &[f64]) {
        debug_assert!(slot.len() < TERMS);
        self.slot.clear();
        self.slot.extend_from_slice(slot);
        self.slot.resize(TERMS, 0);
        self.c1s.clear();
        self.c1s.extend(c1s.iter().map(|&c| c as f32));
        self.c1s.resize(TERMS, 0.0);
        self.lp.clear();
        self.lp.extend(lp.iter().map(|&l| l as f32));
        self.lp.resize(TERMS, 0.0);
    }
}

/// [`bases`] with AVX-512.
///
/// # Safety
/// avx512f must be available; the slices as for [`bases`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn bases_avx512(
    slot_m: &[f64],
    slot_p: &[f64],
    s: f64,
    ws: f64,
) -> ([f32; SLOTS], f64, f64) {
    let ns = slot_m.len();
    let (a, b) = (_mm512_set1_pd(1.0 - s), _mm512_set1_pd(s * ws));
    let one = _mm512_set1_pd(1.0);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut out = [0f32; SLOTS];
    for blk in 0..SLOTS / 8 {
        let k = block_mask(ns.saturating_sub(8 * blk).min(8)) as u8;
        let m = _mm512_maskz_loadu_pd(k, slot_m.as_ptr().wrapping_add(8 * blk));
        let p = _mm512_mask_loadu_pd(one, k, slot_p.as_ptr().wrapping_add(8 * blk));
        let base = _mm512_add_pd(_mm512_mul_pd(a, m), _mm512_mul_pd(b, p));
        if k != 0 {
            lo = lo.min(_mm512_mask_reduce_min_pd(k, base));
            hi = hi.max(_mm512_mask_reduce_max_pd(k, base));
        }
        _mm256_storeu_ps(out.as_mut_ptr().add(8 * blk), _mm512_cvtpd_ps(base));
    }
    (out, lo, hi)
}

/// [`scores`] with AVX-512: the term values in four registers, looked up by permutes.
///
/// # Safety
/// avx512f must be available; the slices as for [`scores`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scores_avx512(
    base: &[f32; SLOTS],
    terms: &Terms,
    w: f32,
    rel: &[f32],
    cols: &[u32],
    obj: &mut [f32],
) -> f32 {
    let (b0, b1) = (
        _mm512_loadu_ps(base.as_ptr()),
        _mm512_loadu_ps(base.as_ptr().add(16)),
    );
    let val = term_values!(
        terms,
        w,
        16,
        load: |p: *const f32| _mm512_loadu_ps(p),
        base_of: |slot: *const u32| _mm512_permutex2var_ps(b0, _mm512_loadu_si512(slot.cast()), b1),
        set1: |x| _mm512_set1_ps(x),
        mul: |x, y| _mm512_mul_ps(x, y),
        div: |x, y| _mm512_div_ps(x, y),
        add: |x, y| _mm512_add_ps(x, y),
        store: |p: *mut f32, v| _mm512_storeu_ps(p, v)
    );
    let vp = val.as_ptr();
    let (t0, t1) = (_mm512_loadu_ps(vp), _mm512_loadu_ps(vp.add(16)));
    let (t2, t3) = (_mm512_loadu_ps(vp.add(32)), _mm512_loadu_ps(vp.add(48)));
    let bit5 = _mm512_set1_epi32(32);
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let nv = rel.len();
    let width = cols.len().checked_div(nv).unwrap_or(0);
    let mut top = ninf;
    let mut i = 0;
    while i < nv {
        let k = block_mask(nv - i);
        let mut acc = _mm512_mask_loadu_ps(ninf, k, rel.as_ptr().add(i));
        for j in 0..width {
            let idx = _mm512_maskz_loadu_epi32(k, cols.as_ptr().add(j * nv + i) as *const i32);
            let lo = _mm512_permutex2var_ps(t0, idx, t1);
            let hi = _mm512_permutex2var_ps(t2, idx, t3);
            let looked = _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, bit5), lo, hi);
            acc = _mm512_add_ps(acc, looked);
        }
        _mm512_mask_storeu_ps(obj.as_mut_ptr().add(i), k, acc);
        top = _mm512_max_ps(top, acc);
        i += 16;
    }
    _mm512_reduce_max_ps(top)
}

/// [`at_least`] with AVX-512.
///
/// # Safety
/// avx512f must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn at_least_avx512(obj: &[f32], floor: f32) -> (u32, usize) {
    let f = _mm512_set1_ps(floor);
    let (mut count, mut first) = (0u32, usize::MAX);
    let mut i = 0;
    while i < obj.len() {
        let k = block_mask(obj.len() - i);
        let x = _mm512_maskz_loadu_ps(k, obj.as_ptr().add(i));
        let hit = _mm512_mask_cmp_ps_mask::<_CMP_GE_OQ>(k, x, f);
        count += hit.count_ones();
        if hit != 0 && first == usize::MAX {
            first = i + hit.trailing_zeros() as usize;
        }
        i += 16;
    }
    (count, if first == usize::MAX { 0 } else { first })
}

/// The lanes of a block (16, or fewer when `left` is capped) that hold one of the `left`
/// values still to do.
#[inline(always)]
fn block_mask(left: usize) -> u16 {
    if left >= 16 {
        u16::MAX
    } else {
        ((1u32 << left) - 1) as u16
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn scores(
    _: &[f32; SLOTS],
    _: &Terms,
    _: f32,
    _: &[f32],
    _: &[u32],
    _: &mut [f32],
) -> f32 {
    unreachable!("the first pass is x86-64 only ([`available`] is false elsewhere)")
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn bases(_: &[f64], _: &[f64], _: f64, _: f64) -> ([f32; SLOTS], f64, f64) {
    unreachable!("the first pass is x86-64 only ([`available`] is false elsewhere)")
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn at_least(_: &[f32], _: f32) -> (u32, usize) {
    unreachable!("the first pass is x86-64 only ([`available`] is false elsewhere)")
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::super::testing::xorshift;
    use super::*;

    /// The first pass's f32 operations written plainly: every kernel must give these bits.
    fn reference(base: &[f32; SLOTS], t: &Terms, w: f32, rel: &[f32], cols: &[u32]) -> Vec<f32> {
        let mut val = vec![0f32; TERMS + 1];
        for i in 0..TERMS {
            let x = (w * t.c1s[i]) / base[t.slot[i] as usize];
            val[1 + i] = t.lp[i] * ln_normal_f32(1.0 + x);
        }
        let nv = rel.len();
        (0..nv)
            .map(|j| {
                let mut v = rel[j];
                for col in cols.chunks_exact(nv) {
                    v += val[col[j] as usize];
                }
                v
            })
            .collect()
    }

    /// Each kernel this CPU runs (AVX-512, AVX2) against the plain reference, bit for bit, on
    /// random slots, terms (ids up to 63, so every register of the look-up trees), candidate
    /// counts with and without a tail of the vector width, and 1-4 columns; `at_least` against
    /// a plain count.
    #[test]
    fn kernels_compute_the_reference_bits() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        let mut unit = move || (next() >> 40) as f64 / (1u64 << 24) as f64;
        let kernels: Vec<bool> = [true, false]
            .into_iter()
            .filter(|&wide| if wide { avx512() } else { avx2() })
            .collect();
        for case in 0..60 {
            let ns = 1 + case % SLOTS;
            let slot_m: Vec<f64> = (0..ns).map(|_| 3.0 * unit()).collect();
            let slot_p: Vec<f64> = (0..ns).map(|_| unit()).collect();
            let nt = (case * 7) % TERMS;
            let mut t = Terms::default();
            let slots: Vec<u32> = (0..nt).map(|_| (unit() * ns as f64) as u32).collect();
            let c1s: Vec<f64> = (0..nt).map(|_| 0.99 * (0.2 + unit())).collect();
            let lp: Vec<f64> = (0..nt).map(|_| 0.5 * unit()).collect();
            t.fill(&slots, &c1s, &lp);
            let nv = 1 + (case * 13) % 100;
            let width = 1 + case % 4;
            let rel: Vec<f32> = (0..nv)
                .map(|i| {
                    if i % 9 == 4 {
                        f32::NEG_INFINITY
                    } else {
                        unit() as f32
                    }
                })
                .collect();
            let cols: Vec<u32> = (0..width * nv)
                .map(|_| (unit() * (nt + 1) as f64) as u32)
                .collect();
            let (s, ws, w) = (0.01, 1.0 + 5.0 * unit(), (0.5 + unit()) as f32);
            for &wide in &kernels {
                // SAFETY: each kernel only where its features were detected; the sizes are
                // within SLOTS and TERMS, the ids within the terms.
                let (base, lo, hi, obj, top, at) = unsafe {
                    let (base, lo, hi) = if wide {
                        bases_avx512(&slot_m, &slot_p, s, ws)
                    } else {
                        bases_avx2(&slot_m, &slot_p, s, ws)
                    };
                    let mut obj = vec![0f32; nv];
                    let top = if wide {
                        scores_avx512(&base, &t, w, &rel, &cols, &mut obj)
                    } else {
                        scores_avx2(&base, &t, w, &rel, &cols, &mut obj)
                    };
                    let floor = top - 0.05;
                    let at = if wide {
                        at_least_avx512(&obj, floor)
                    } else {
                        at_least_avx2(&obj, floor)
                    };
                    (base, lo, hi, obj, top, at)
                };
                let want_base: Vec<f64> = (0..ns)
                    .map(|g| (1.0 - s) * slot_m[g] + (s * ws) * slot_p[g])
                    .collect();
                let lo_want = want_base.iter().copied().fold(f64::INFINITY, f64::min);
                let hi_want = want_base.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                assert_eq!((lo, hi), (lo_want, hi_want), "case {case} wide {wide}");
                for g in 0..SLOTS {
                    let want = if g < ns {
                        want_base[g] as f32
                    } else {
                        (s * ws) as f32
                    };
                    assert_eq!(base[g].to_bits(), want.to_bits(), "case {case} slot {g}");
                }
                let want = reference(&base, &t, w, &rel, &cols);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&obj), bits(&want), "case {case} wide {wide}");
                let top_want = want.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(top.to_bits(), top_want.to_bits(), "case {case} wide {wide}");
                let hits: Vec<usize> = (0..nv).filter(|&i| obj[i] >= top - 0.05).collect();
                assert_eq!(at, (hits.len() as u32, hits[0]), "case {case} wide {wide}");
            }
        }
    }
}
