//! Elementary functions written so that loops over them vectorise: no branches, no libm calls.
//!
//! Each is plain IEEE arithmetic (no fused multiply-add), so the AVX2 build of a loop and its
//! baseline build round identically and give bit-identical results: which path ran never
//! changes an answer.

/// `e^x` for `x <= 0` (softmax arguments after subtracting the max), to about 2e-7 relative:
/// `x = n ln 2 + f` with an integer `n` (built in the exponent bits) and `|f| <= ln(2) / 2`,
/// whose `e^f` is a degree-7 Taylor polynomial; `ln 2` is split in two (Cody-Waite) so that `f`
/// keeps its precision for large `|x|`. Arguments below -87 (where e^x < 2^-125) give about
/// 2^-126, not a denormal: a weight that small cannot change a sum that holds the max term's
/// weight of 1.
#[inline(always)]
pub fn exp_neg_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4; // exactly representable, few bits: n * LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 0.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let f = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0
                    + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0 + f / 5040.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// Natural log of a positive normal `x`, to under 1 ulp: the algorithm of FreeBSD's / musl's
/// `log` without its special cases. `x = 2^k (1 + f)` with `1 + f` in [sqrt(2)/2, sqrt(2)),
/// `s = f / (2 + f)` and `log(1 + f) = f - hfsq + s (hfsq + R(s^2))` with R a degree-7 minimax
/// polynomial.
#[inline(always)]
fn ln_normal(x: f64) -> f64 {
    // The constants of musl's log.c, by their exact bit patterns.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    const LG1: f64 = f64::from_bits(0x3fe5_5555_5555_5593);
    const LG2: f64 = f64::from_bits(0x3fd9_9999_9997_fa04);
    const LG3: f64 = f64::from_bits(0x3fd2_4924_9422_9359);
    const LG4: f64 = f64::from_bits(0x3fcc_71c5_1d8e_78af);
    const LG5: f64 = f64::from_bits(0x3fc7_4664_96cb_03de);
    const LG6: f64 = f64::from_bits(0x3fc3_9a09_d078_c69f);
    const LG7: f64 = f64::from_bits(0x3fc2_f112_df3e_5244);
    let bits = x.to_bits();
    // Shift the mantissa range so that the exponent rounds at sqrt(2) instead of 2.
    let hx = ((bits >> 32) as u32).wrapping_add(0x3ff0_0000 - 0x3fe6_a09e);
    let k = (hx >> 20) as i32 - 0x3ff;
    let hx = (hx & 0x000f_ffff) + 0x3fe6_a09e;
    let m = f64::from_bits(((hx as u64) << 32) | (bits & 0xffff_ffff));
    let f = m - 1.0;
    let hfsq = 0.5 * f * f;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    let dk = k as f64;
    s * (hfsq + (t2 + t1)) + dk * LN2_LO - hfsq + f + dk * LN2_HI
}

#[inline(always)]
fn ln_slice(xs: &mut [f64]) {
    for x in xs.iter_mut() {
        *x = ln_normal(*x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn ln_slice_avx2(xs: &mut [f64]) {
    ln_slice(xs)
}

/// Natural log of a positive normal f32 `x`, to under 1 ulp (musl's `logf` without its special
/// cases, the f32 sibling of [`ln_normal`]; checked against the f64 log in the tests to 1 ulp
/// of the result). For first passes whose results are certified by an error bound; inlined
/// into their vectorised loops.
#[inline(always)]
pub(crate) fn ln_normal_f32(x: f32) -> f32 {
    const LN2_HI: f32 = f32::from_bits(0x3f31_7180);
    const LN2_LO: f32 = f32::from_bits(0x3717_f7d1);
    const LG1: f32 = f32::from_bits(0x3f2a_aaaa);
    const LG2: f32 = f32::from_bits(0x3ecc_ce13);
    const LG3: f32 = f32::from_bits(0x3e91_e9ee);
    const LG4: f32 = f32::from_bits(0x3e78_9e26);
    let ix = x.to_bits().wrapping_add(0x3f80_0000 - 0x3f35_04f3);
    let k = (ix >> 23) as i32 - 0x7f;
    let m = f32::from_bits((ix & 0x007f_ffff) + 0x3f35_04f3);
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * LG4);
    let t2 = z * (LG1 + w * LG3);
    let hfsq = 0.5 * f * f;
    let dk = k as f32;
    s * (hfsq + (t2 + t1)) + dk * LN2_LO - hfsq + f + dk * LN2_HI
}

/// Scales `v` to unit L2 norm in place; a zero vector stays zero.
pub fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Whether every value of `xs` is positive, normal and finite: the domain of the vectorised
/// log. (A non-short-circuiting fold, so that the check vectorises too.)
pub fn all_normal(xs: &[f64]) -> bool {
    xs.iter().fold(true, |ok, &x| {
        ok & (f64::MIN_POSITIVE..f64::INFINITY).contains(&x)
    })
}

/// Replaces every value of `xs`, all positive normal and finite (see [`all_normal`]), by its
/// natural log, vectorised (AVX2 when the CPU has it). Outside that domain the results are
/// not logs (never undefined behaviour): callers check the domain first, or call
/// [`ln_in_place`].
pub fn ln_normal_in_place(xs: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the feature ln_slice_avx2 is compiled for was detected on this CPU.
        return unsafe { ln_slice_avx2(xs) };
    }
    ln_slice(xs)
}

/// Replaces every value of `xs` by its natural log: vectorised when all are positive normal
/// and finite, through `f64::ln` otherwise (zero, subnormal, negative, infinite, NaN).
pub fn ln_in_place(xs: &mut [f64]) {
    if all_normal(xs) {
        ln_normal_in_place(xs);
    } else {
        xs.iter_mut().for_each(|x| *x = x.ln());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_is_within_one_ulp_of_std() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut xs = vec![1.0, 2.0, 0.5, 1e-300, 1e300, f64::MIN_POSITIVE, 1.0 + 1e-15];
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // Random exponent and mantissa: every binade from 1e-300 to 1e300.
            let e = (s % 1990) as i32 - 995;
            xs.push(f64::from_bits((s >> 12) | 0x3ff0_0000_0000_0000) * 2f64.powi(e));
        }
        let want: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
        let mut got = xs.clone();
        ln_in_place(&mut got);
        for (x, (g, w)) in xs.iter().zip(got.iter().zip(&want)) {
            let ulp = (w.abs() * f64::EPSILON).max(f64::MIN_POSITIVE);
            assert!((g - w).abs() <= ulp, "ln({x}) = {g}, std says {w}");
        }
        assert_eq!(got[0], 0.0);
        // The baseline build rounds exactly as the dispatched one.
        let mut base = xs.clone();
        ln_slice(&mut base);
        assert_eq!(base, got);
        // Values outside the normal range go through std.
        let mut odd = [0.0, -1.0, 1e-310, f64::INFINITY, 2.0];
        ln_in_place(&mut odd);
        assert!(odd[0] == f64::NEG_INFINITY && odd[1].is_nan() && odd[3] == f64::INFINITY);
        assert!((odd[2] - 1e-310f64.ln()).abs() < 1e-12 && odd[4] == 2f64.ln());
    }

    #[test]
    fn f32_ln_is_within_one_ulp_of_the_f64_log() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut xs = vec![
            1.0f32,
            2.0,
            0.5,
            1e-37,
            1e38,
            f32::MIN_POSITIVE,
            1.0 + 1e-7,
            0.999_999_9,
        ];
        for _ in 0..400_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // Random exponent and mantissa: every binade of the normal f32.
            let e = (s % 250) as i32 - 125;
            xs.push(f32::from_bits(((s >> 41) as u32) | 0x3f80_0000) * 2f32.powi(e));
        }
        let got: Vec<f32> = xs.iter().map(|&x| ln_normal_f32(x)).collect();
        for (&x, &g) in xs.iter().zip(&got) {
            let want = (x as f64).ln();
            // One ulp of the result (the bound the reranker's certificate assumes, halved).
            let ulp = want.abs().max(f32::MIN_POSITIVE as f64) * f32::EPSILON as f64;
            assert!(
                (g as f64 - want).abs() <= ulp,
                "ln({x}) = {g}, f64 says {want}"
            );
        }
    }

    #[test]
    fn exp_is_accurate_on_softmax_arguments() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -(i as f32) * 87.0 / 200_000.0;
            let want = (x as f64).exp();
            let got = exp_neg_f32(x) as f64;
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 5e-7, "max relative error {worst}");
        assert_eq!(exp_neg_f32(0.0), 1.0);
        assert!(exp_neg_f32(-1e6) > 0.0 && exp_neg_f32(-1e6) < 2e-38);
        assert!(exp_neg_f32(f32::NEG_INFINITY) > 0.0);
    }
}
