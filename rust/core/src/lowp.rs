//! A certified low-precision first pass for exact top-N over item-major weights: Mult-VAE's
//! decoder (here, with its bias) and AMP-CF's `t = (x L) R^T` ([`crate::ampcf`]'s pruned path:
//! no bias, states of any size, the per-user bound in [`Users::affine_bound`]'s form).
//!
//! Scores `s_j = h . w_j + b_j` are first computed with `h` and `w_j` in low precision: rounded
//! to bf16 with fp32 accumulation (AMX `tdpbf16ps`, 16 x 16 x 32 per instruction, or AVX-512
//! `vdpbf16ps`, 16 x 2 per instruction: both sum exact bf16 products in fp32), or scaled per
//! row to int16 and summed exactly in i32 (AVX-512 VNNI `vpdpwssd` or AVX2 `vpmaddwd`, the same
//! integers; [`Enc::Int16`]). Against the fp32 path's score the low-precision score is off by at
//! most (Cauchy-Schwarz on `h.w - h'.w' = (h - h').w + h'.(w - w')`, plus the accumulation error
//! of both paths, any order, any rounding with unit <= 2^-23)
//!
//! ```text
//! E_uj = ||h - h'|| ||w_j|| + max(||h||, ||h'||) (||w_j - w'_j|| + 2 g max(||w_j||, ||w'_j||))
//! ```
//!
//! with `g = gamma_n(2^-23) = n 2^-23 / (1 - n 2^-23)`, `n` = padded hidden size plus the fp32
//! kernel's k blocks (for int16 the second `g` covers the three f32 roundings of scaling the
//! exact integer sum). The residual norms are those of the actual roundings (bf16: round to
//! nearest even, subnormals flushed, exactly what the hardware reads; int16: the integers times
//! the row's f32 scale, exact in f64), so the bound is certified, not estimated, and about 2.5x
//! tighter than the worst case `2^-7 ||h|| ||w_j||` for bf16. The bias add and the f32
//! arithmetic of the bound itself are covered by inflating each factor by `1 + 2^-16` and
//! adding `2^-20 |s'_j| + 1e-30` (the last for flushed subnormals: at most a few thousand
//! `2^-126`s).
//!
//! A user's list can then hold only items whose upper bound reaches the N-th best lower bound
//! among the items it may list; those few (0.35% of Gowalla's items for N = 100 in bf16) are
//! rescored exactly, with our GEMM kernels' own summation order ([`exact_dots`]), so the scores
//! and the lists are bit for bit the fp32 path's.
//!
//! Only where it pays and is safe: x86-64 Linux, one of our GEMM kernels in use (their
//! summation order is the one rescoring reproduces; the `gemm` crate's is its own), weights
//! whose scores cannot overflow, and a kernel: AMX-BF16 (the OS must grant the tile state:
//! `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`) or else AVX512-BF16 or else
//! AVX512-VNNI int16 with the AVX-512 GEMM kernel; AVX2 int16 with the AVX2 one, or with the
//! AVX-512 one where nothing better runs. All kernels read the same tile layout
//! and write the same 32 x 32 blocks ([`kernels::block`]), so everything around them is shared.
//! `PERSONAE_FIRST_PASS` (read once: `fp32`, or a pass's name) or [`set_first_pass`] forces a
//! pass, for both models.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use crate::gemm;

/// Which first pass top-N runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstPass {
    /// The plain fp32 GEMM over every item.
    Fp32,
    /// bf16 on AMX tiles, then exact fp32 rescoring of the survivors.
    Amx,
    /// bf16 dot products on AVX-512 (`vdpbf16ps`: AMD Zen 4 and later, Intel from Cooper Lake
    /// where AMX is absent or not granted), then the same rescoring.
    Avx512Bf16,
    /// int16 dot products on AVX2 (`vpmaddwd`, exact integer sums), then the same rescoring:
    /// for CPUs with AVX2 and no AVX-512 (AMD Zen 2/3, Intel client cores).
    Avx2Int16,
    /// The same int16 sums on AVX-512 (`vpdpwssd`, AVX512-VNNI), twice the lanes: the AVX2
    /// pass's numbers bit for bit, for AVX-512 CPUs without BF16 (Intel Cascade Lake, Ice
    /// Lake).
    Avx512Int16,
}

impl FirstPass {
    /// Every pass, the plain one first.
    pub const ALL: [FirstPass; 5] = [
        FirstPass::Fp32,
        FirstPass::Amx,
        FirstPass::Avx512Bf16,
        FirstPass::Avx512Int16,
        FirstPass::Avx2Int16,
    ];

    /// The pass of a [`FirstPass::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            FirstPass::Fp32 => "fp32",
            FirstPass::Amx => "amx",
            FirstPass::Avx512Bf16 => "avx512bf16",
            FirstPass::Avx2Int16 => "avx2int16",
            FirstPass::Avx512Int16 => "avx512int16",
        }
    }
}

/// 0: not chosen yet, else 1 + the chosen pass's index in [`FirstPass::ALL`].
static PASS: AtomicU8 = AtomicU8::new(0);

/// Whether this machine runs a pass (each needs one of our GEMM kernels to rescore against,
/// checked where the pass is read).
pub(crate) fn runs(p: FirstPass) -> bool {
    match p {
        FirstPass::Fp32 => true,
        FirstPass::Amx => amx_ready(),
        FirstPass::Avx512Bf16 => dp_ready(),
        FirstPass::Avx2Int16 => int16_ready(),
        FirstPass::Avx512Int16 => vnni_ready(),
    }
}

/// The best pass this machine runs with the GEMM kernel in use: AMX's tiles do 16 x 16 x 32
/// per instruction; `vdpbf16ps` and `vpdpwssd` twice AVX-512's fp32 rate; `vpmaddwd` on ymm
/// twice AVX2's. With the AVX-512 kernel and neither BF16 nor VNNI (Skylake-SP) the fp32 path
/// stays: there 512-bit FMAs match `vpmaddwd` on ymm (unmeasured on such a CPU; on Zen 4, which
/// splits 512-bit operations, the AVX2 int16 pass was 20% ahead of fp32).
pub fn best() -> FirstPass {
    match gemm::kernel() {
        gemm::Kernel::Avx512 if amx_ready() => FirstPass::Amx,
        gemm::Kernel::Avx512 if dp_ready() => FirstPass::Avx512Bf16,
        gemm::Kernel::Avx512 if vnni_ready() => FirstPass::Avx512Int16,
        gemm::Kernel::Avx2 if int16_ready() => FirstPass::Avx2Int16,
        _ => FirstPass::Fp32,
    }
}

/// The pass in use: the best one unless `PERSONAE_FIRST_PASS` names another (read once: "fp32",
/// "amx", "avx512bf16", "avx512int16" or "avx2int16"; one this machine cannot run falls back to
/// fp32), or unless the GEMM kernel has since been switched to one rescoring cannot reproduce
/// (the `gemm` crate's).
pub fn first_pass() -> FirstPass {
    let p = match PASS.load(Ordering::Relaxed) {
        0 => {
            // A pass named in PERSONAE_FIRST_PASS (fp32 where this machine cannot run it), else
            // the best one; a name that is no pass is reported once and ignored.
            let named = std::env::var("PERSONAE_FIRST_PASS").ok();
            let p = named.as_deref().and_then(FirstPass::from_name);
            if let (Some(name), None) = (&named, p) {
                let names: Vec<&str> = FirstPass::ALL.iter().map(|p| p.name()).collect();
                eprintln!("personae: PERSONAE_FIRST_PASS={name:?} is none of {names:?}; ignored");
            }
            set_first_pass(p.unwrap_or_else(best))
        }
        i => FirstPass::ALL[usize::from(i - 1) % FirstPass::ALL.len()],
    };
    if p != FirstPass::Fp32 && !ours() {
        return FirstPass::Fp32;
    }
    p
}

/// Whether the GEMM kernel in use is one of ours, whose summation order [`exact_dots`]
/// reproduces (not the `gemm` crate's).
fn ours() -> bool {
    gemm::kernel() != gemm::Kernel::Portable
}

/// Forces a pass (tests and benches compare them); one this machine cannot run falls back to
/// fp32. Returns the pass now chosen.
pub fn set_first_pass(p: FirstPass) -> FirstPass {
    let p = if runs(p) { p } else { FirstPass::Fp32 };
    let i = FirstPass::ALL.iter().position(|&q| q == p).unwrap_or(0);
    PASS.store(1 + i as u8, Ordering::Relaxed);
    p
}

/// Whether the int16 pass runs here (AVX2 and FMA, the latter for its rescoring).
pub fn int16_ready() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        gemm::avx2::available()
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// Whether the AVX-512 int16 pass runs here: `vpdpwssd` (AVX512-VNNI) and the int16 pass's
/// AVX2 needs (the OS state is AVX-512's).
pub fn vnni_ready() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        int16_ready() && crate::isa::avx512f() && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// Whether `vdpbf16ps` runs here (AVX-512F and AVX512-BF16; the OS state is AVX-512's).
pub fn dp_ready() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        crate::isa::avx512f() && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// Whether AMX-BF16 runs here: the CPU has it, the OS saves the tile state, and this process was
/// granted it (asked once).
pub fn amx_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            kernels::request()
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        {
            false
        }
    })
}

/// Items per AMX block (two 16-row tiles) and users per block (two 16-user tiles).
pub const BLOCK: usize = 32;

/// `x` rounded to the nearest bf16 (ties to even), subnormal results flushed to zero as AMX
/// reads them. `x` must be finite and below `f32::MAX` by a bf16 ulp.
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    let r = (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16;
    if r & 0x7f80 == 0 {
        r & 0x8000
    } else {
        r
    }
}

/// The f32 value of a bf16.
#[inline]
pub fn from_bf16(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// `1 + 2^-16`: the inflation of each bound factor (covers the f32 arithmetic of the bound).
const INFLATE: f64 = 1.0 + 1.0 / 65536.0;
/// Relative slack on the low-precision score for the bias add and the bound's own roundings.
pub const REL_SLACK: f32 = 1.0 / (1u32 << 20) as f32;
/// Absolute slack for flushed subnormal products and partial sums.
pub const ABS_SLACK: f32 = 1e-30;

/// `x` (>= 0) as the smallest-or-next f32 at or above it.
fn up(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) < x {
        f32::from_bits(f.to_bits() + 1)
    } else {
        f
    }
}

/// `g = gamma_n(2^-23)` for a hidden size `k`: `n` covers the padded AMX accumulation and the
/// fp32 kernel's k blocks.
fn gamma(k: usize) -> f64 {
    let n = (k.next_multiple_of(BLOCK) + k.div_ceil(gemm_kc()) + 2) as f64;
    let u = n * 2f64.powi(-23);
    u / (1.0 - u)
}

fn gemm_kc() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        gemm::blocked::KC
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        640
    }
}

/// Where a matrix's rows go in the AMX tiles (1 KiB each, one per 16 rows and k block of 32):
/// as the rows of A tiles (`[16 rows][k block][row 16][32]`) or as the columns of B tiles, in the
/// pairs `tdpbf16ps` reads (`[16 rows][k block][pair 16][row 16][2]`). A product tile is `A rows x
/// B columns`: Mult-VAE's items are A rows (items x users), AMP-CF's B columns (users x items, as
/// its per-user passes read them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Rows,
    Cols,
}

/// How a pass stores its low-precision values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enc {
    /// bf16 bits (round to nearest even, subnormals flushed).
    Bf16,
    /// int16 `round(x / scale)` with one f32 scale per row (`max |x| / INT_MAX`), so every
    /// integer is within `INT_MAX` and sums of `kp` products cannot overflow i32.
    Int16,
}

impl FirstPass {
    /// The encoding this pass reads (None for fp32).
    pub fn enc(self) -> Option<Enc> {
        match self {
            FirstPass::Fp32 => None,
            FirstPass::Amx | FirstPass::Avx512Bf16 => Some(Enc::Bf16),
            FirstPass::Avx2Int16 | FirstPass::Avx512Int16 => Some(Enc::Int16),
        }
    }
}

/// The largest int16 magnitude for rows `kp` wide: `kp` products of two such values sum within
/// i32 (`kp INT_MAX^2 < 2^31`), so the integer dot products are exact.
fn int_max(kp: usize) -> f64 {
    (((i32::MAX as f64) / kp as f64).sqrt().floor()).min(32767.0)
}

/// Rows whose largest value is below this are not scaled to int16 (their scale product could
/// leave f32's normal range): an item makes the weights uncertifiable, a user gets no bound.
const INT_TINY: f32 = 1e-12;

/// Row `j` of a matrix (`x`, `nkb` k blocks of 32 wide) encoded as `enc` into its place in
/// `out`; returns `[||x||, ||x'||, ||x - x'||]` (`x'` the encoded values as reals) and the
/// row's int16 scale (1 for bf16), or None when a value is not finite or past 1e30, or an
/// int16 row's largest value is below [`INT_TINY`] but not zero.
fn pack_row(
    out: &mut [u16],
    layout: Layout,
    enc: Enc,
    nkb: usize,
    j: usize,
    x: &[f32],
) -> Option<([f64; 3], f32)> {
    let (g, r) = (j / 16, j % 16);
    let mut amax = 0f32;
    for &v in x {
        if !v.is_finite() || v.abs() > 1e30 {
            return None;
        }
        amax = amax.max(v.abs());
    }
    let lim = int_max(nkb * 32);
    let scale = match enc {
        Enc::Bf16 => 1.0,
        Enc::Int16 if amax == 0.0 => 1.0,
        Enc::Int16 if amax < INT_TINY => return None,
        Enc::Int16 => (amax as f64 / lim) as f32,
    };
    let (mut n, mut n16, mut d) = (0f64, 0f64, 0f64);
    for (kk, &v) in x.iter().enumerate() {
        let (b, y) = match enc {
            Enc::Bf16 => {
                let b = to_bf16(v);
                (b, from_bf16(b) as f64)
            }
            Enc::Int16 => {
                // The f32 scale may round below amax / lim: clamp so |q| stays within lim.
                let q = (v as f64 / scale as f64).round().clamp(-lim, lim);
                (q as i16 as u16, q * scale as f64)
            }
        };
        let at = match layout {
            Layout::Rows => r * 32 + kk % 32,
            Layout::Cols => (kk % 32) / 2 * 32 + r * 2 + kk % 2,
        };
        out[(g * nkb + kk / 32) * 512 + at] = b;
        let v = v as f64;
        n += v * v;
        n16 += y * y;
        d += (v - y) * (v - y);
    }
    Some(([n.sqrt(), n16.sqrt(), d.sqrt()], scale))
}

/// The item weights in low precision (item-major, `rows` padded to [`BLOCK`] and `k` to 32 with
/// zeros), beside the per-item factors of the bound.
pub struct Packed {
    /// bf16 or int16 bits (`enc`) as AMX tiles laid out as `layout` says (Mult-VAE:
    /// [`Layout::Rows`]), items padded to [`BLOCK`] and `k` to `kp` with zeros.
    pub w: Vec<u16>,
    pub layout: Layout,
    pub enc: Enc,
    /// Int16: each item's scale (its values are `w * scale`); empty for bf16.
    pub scale: Vec<f32>,
    pub k: usize,
    pub kp: usize,
    pub rows: usize,
    /// `||w_j||`, inflated.
    pub p: Vec<f32>,
    /// `||w_j - w'_j|| + 2 g max(||w_j||, ||w'_j||)`, inflated.
    pub q: Vec<f32>,
    /// The largest `max(||w_j||, ||w'_j||)`.
    pub norm_max: f64,
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Packed({} x {} {:?}, {:?})",
            self.rows, self.k, self.enc, self.layout
        )
    }
}

impl Packed {
    /// Packs Mult-VAE's `w` (`rows x k`, item-major) with biases `bias`, as A tiles in `enc`;
    /// `None` when some score could overflow or a value is not finite (the fp32 path then serves
    /// the model).
    pub fn new(w: &[f32], bias: &[f32], rows: usize, k: usize, enc: Enc) -> Option<Self> {
        if bias.len() != rows || bias.iter().any(|b| !b.is_finite() || b.abs() > 1e30) {
            return None;
        }
        let pk = Self::with_layout(w, rows, k, Layout::Rows, enc)?;
        // |h_i| <= 1 (a tanh), so |h . w_j| <= sqrt(k) ||w_j||: keep every score, in either
        // precision, far from f32's range.
        (pk.norm_max <= 1e30 / (k as f64).sqrt()).then_some(pk)
    }

    /// Packs `w` (`rows x k`, item-major) as `layout` in `enc`; `None` when a value is not
    /// finite or past 1e30, or an int16 row is all but zero (the caller bounds the scores' range
    /// with [`Packed::norm_max`]).
    pub fn with_layout(w: &[f32], rows: usize, k: usize, layout: Layout, enc: Enc) -> Option<Self> {
        if rows == 0 || k == 0 || w.len() != rows * k {
            return None;
        }
        let kp = k.next_multiple_of(BLOCK);
        let g = gamma(k);
        let mut out = vec![0u16; rows.next_multiple_of(BLOCK) * kp];
        let (mut p, mut q) = (vec![0f32; rows], vec![0f32; rows]);
        let mut scale = match enc {
            Enc::Bf16 => Vec::new(),
            Enc::Int16 => vec![0f32; rows.next_multiple_of(BLOCK)],
        };
        let mut norm_max = 0f64;
        for (j, row) in w.chunks_exact(k).enumerate() {
            let ([nw, nw16, dw], sc) = pack_row(&mut out, layout, enc, kp / 32, j, row)?;
            if let Some(x) = scale.get_mut(j) {
                *x = sc;
            }
            norm_max = norm_max.max(nw.max(nw16));
            p[j] = up(nw * INFLATE);
            q[j] = up((dw + 2.0 * g * nw.max(nw16)) * INFLATE);
        }
        Some(Self {
            w: out,
            layout,
            enc,
            scale,
            k,
            kp,
            rows,
            p,
            q,
            norm_max,
        })
    }
}

/// A chunk of users' hidden states in low precision, packed as AMX tiles, with the per-user
/// factors.
pub struct Users {
    /// bf16 or int16 bits (`enc`) laid out as `layout` says (Mult-VAE: [`Layout::Cols`]).
    pub bits: Vec<u16>,
    pub layout: Layout,
    pub enc: Enc,
    /// Int16: each (padded) user's scale; empty for bf16.
    pub scale: Vec<f32>,
    pub kp: usize,
    /// Users padded to [`BLOCK`].
    pub m_pad: usize,
    /// `||h - h'||`, inflated (NaN for a user whose state is not finite or past 1e30: no bound
    /// holds).
    pub a: Vec<f32>,
    /// `max(||h||, ||h'||)`, inflated.
    pub c: Vec<f32>,
}

impl Users {
    /// Packs Mult-VAE's `h` (`m x k` row-major) as B tiles in `enc`, for weights packed with
    /// `kp`-wide rows.
    pub fn new(h: &[f32], m: usize, k: usize, kp: usize, enc: Enc) -> Self {
        Self::with_layout(h, m, k, kp, Layout::Cols, enc)
    }

    /// Packs `h` (`m x k` row-major) as `layout` in `enc`, for weights packed with `kp`-wide
    /// rows.
    pub fn with_layout(h: &[f32], m: usize, k: usize, kp: usize, layout: Layout, enc: Enc) -> Self {
        let m_pad = m.next_multiple_of(BLOCK);
        let mut bits = vec![0u16; m_pad * kp];
        let (mut a, mut c) = (vec![0f32; m_pad], vec![0f32; m_pad]);
        let mut scale = match enc {
            Enc::Bf16 => Vec::new(),
            Enc::Int16 => vec![0f32; m_pad],
        };
        for (u, row) in h[..m * k].chunks_exact(k).enumerate() {
            match pack_row(&mut bits, layout, enc, kp / 32, u, row) {
                Some(([nh, nh16, dh], sc)) => {
                    a[u] = up(dh * INFLATE);
                    c[u] = up(nh.max(nh16) * INFLATE);
                    if let Some(x) = scale.get_mut(u) {
                        *x = sc;
                    }
                }
                None => {
                    // What was packed of the row stays: its scores are ignored.
                    a[u] = f32::NAN;
                    c[u] = f32::NAN;
                }
            }
        }
        Self {
            bits,
            layout,
            enc,
            scale,
            kp,
            m_pad,
            a,
            c,
        }
    }

    /// Per-user coefficients `(alpha, beta)` of a bound without bias: for a low-precision score
    /// `s'_uj = h'_u . w'_j`, `E_uj <= alpha p_j + beta q_j + ABS_SLACK`, the relative slack
    /// folded in by Cauchy-Schwarz (`|s'| <= ||h'|| ||w'_j|| <= c_u (p_j + q_j)`), so that a
    /// pass over items needs no `|s'|`. NaN where the user has no bound.
    pub fn affine_bound(&self, u: usize) -> (f32, f32) {
        let (a, c) = (self.a[u], self.c[u]);
        (a + REL_SLACK * c, c * (1.0 + REL_SLACK))
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod kernels {
    //! The low-precision product kernels (bf16 on AMX tiles, in inline assembly: the AMX
    //! intrinsics are not stable Rust; bf16 `vdpbf16ps` and int16 `vpdpwssd` on AVX-512, int16
    //! `vpmaddwd` on AVX2, in intrinsics), their common entry points, and the scans of their
    //! output (AVX-512, AVX2).

    use std::arch::asm;
    use std::arch::x86_64::*;

    use super::{FirstPass, Layout, Packed, Users, ABS_SLACK, REL_SLACK};

    /// Asks Linux for the AMX tile state once (the CPUID and XCR0 checks first).
    pub(super) fn request() -> bool {
        // SAFETY: cpuid exists on every x86-64 CPU (the intrinsic is safe in newer Rust, hence
        // the allow: the crate's minimum Rust still marks it unsafe).
        #[allow(unused_unsafe)]
        let l7 = unsafe { __cpuid_count(7, 0) };
        let (amx_bf16, amx_tile) = (l7.edx >> 22 & 1 == 1, l7.edx >> 24 & 1 == 1);
        // SAFETY: as above.
        #[allow(unused_unsafe)]
        let osxsave = unsafe { __cpuid(1) }.ecx >> 27 & 1 == 1;
        if !(amx_bf16 && amx_tile && osxsave && crate::isa::avx512f()) {
            return false;
        }
        // SAFETY: OSXSAVE is set, so xgetbv is enabled.
        let xcr0 = unsafe { xcr0() };
        if xcr0 >> 17 & 3 != 3 {
            return false; // the OS does not manage the tile state
        }
        const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
        const XFEATURE_XTILEDATA: usize = 18;
        const SYS_ARCH_PRCTL: usize = 158;
        let ret: isize;
        // SAFETY: the arch_prctl system call with these arguments only changes this process's
        // permission to use the tile state; rcx and r11 are clobbered by `syscall`.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL as isize => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack)
            );
        }
        ret == 0
    }

    #[target_feature(enable = "xsave")]
    unsafe fn xcr0() -> u64 {
        _xgetbv(0)
    }

    /// The tile configuration: palette 1, eight 16-row x 64-byte tiles.
    #[repr(C, align(64))]
    struct TileCfg {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
    }

    /// Runs `f`, in which `pass`'s kernel may run on this thread: for AMX, with the tiles
    /// configured, released after.
    ///
    /// # Safety
    /// `pass` must run here ([`super::first_pass`] returned it).
    pub unsafe fn with_kernel<R>(pass: FirstPass, f: impl FnOnce() -> R) -> R {
        match pass {
            // SAFETY: the caller's contract.
            FirstPass::Amx => unsafe { with_tiles(f) },
            _ => f(),
        }
    }

    /// Runs `f` with the tiles configured on this thread, and releases them after.
    ///
    /// # Safety
    /// [`super::amx_ready`] must have returned true.
    unsafe fn with_tiles<R>(f: impl FnOnce() -> R) -> R {
        let mut cfg = TileCfg {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        cfg.colsb[..8].fill(64);
        cfg.rows[..8].fill(16);
        // SAFETY: the configuration is valid for palette 1 and the caller checked AMX.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack, readonly)) };
        let r = f();
        // SAFETY: as above.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
        r
    }

    /// `c[32 items][32 users]` = items `item0..item0 + 32` of `w` times users `32 gp..32 gp + 32`
    /// of `u`, fp32 (each of the two user groups and two item halves one 16 x 16 tile).
    ///
    /// # Safety
    /// Inside [`with_kernel`] for `pass`; `item0 + 32 <= w.w.len() / w.kp`; `32 gp + 32 <=
    /// u.m_pad`; `u` packed with `w.kp`, `w` as rows and `u` as columns.
    #[inline]
    pub unsafe fn block(
        pass: FirstPass,
        w: &Packed,
        item0: usize,
        u: &Users,
        gp: usize,
        c: &mut [f32; 1024],
    ) {
        let nkb = w.kp / 32;
        debug_assert!((item0 + 32) * w.kp <= w.w.len() && (gp + 1) * 32 * w.kp <= u.bits.len());
        debug_assert!(w.layout == Layout::Rows && u.layout == Layout::Cols && u.kp == w.kp);
        debug_assert!(pass.enc() == Some(w.enc) && w.enc == u.enc);
        tiles(
            pass,
            w.w.as_ptr().add(item0 * w.kp),
            u.bits.as_ptr().add(2 * gp * nkb * 512),
            nkb,
            c.as_mut_ptr(),
            32,
            (scales(&w.scale, item0), scales(&u.scale, 32 * gp)),
        );
    }

    /// The 32 int16 scales of a block's rows or columns from `start` (empty for bf16).
    fn scales(all: &[f32], start: usize) -> &[f32] {
        all.get(start..start + 32).unwrap_or(&[])
    }

    /// `c[i][j] = a_i . b_j` for the 32 rows packed as A tiles from `a` (two 16-row groups of
    /// `nkb` tiles) and the 32 packed as B tiles from `b`, by `pass`'s kernel: bf16 summed in
    /// fp32 (AMX, `vdpbf16ps`), or int16 summed exactly and scaled by the rows' and columns'
    /// `scales`; `c`'s rows are `ldc` floats apart.
    ///
    /// # Safety
    /// Inside [`with_kernel`] for `pass`, not fp32; `a` and `b` point at `2 nkb` tiles (1 KiB
    /// each), `c` at 32 rows of 32 floats, `ldc` apart; for int16, 32 scales each.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tiles(
        pass: FirstPass,
        a: *const u16,
        b: *const u16,
        nkb: usize,
        c: *mut f32,
        ldc: usize,
        (a_scale, b_scale): (&[f32], &[f32]),
    ) {
        match pass {
            FirstPass::Amx => amx_tiles(a, b, nkb, c, ldc),
            FirstPass::Avx512Bf16 => dp_tiles(a, b, nkb, c, ldc),
            FirstPass::Avx2Int16 => int16_tiles(a, b, nkb, c, ldc, a_scale, b_scale),
            FirstPass::Avx512Int16 => vnni_tiles(a, b, nkb, c, ldc, a_scale, b_scale),
            // Never: fp32 runs no tiles.
            FirstPass::Fp32 => debug_assert!(false, "no tiles for fp32"),
        }
    }

    /// [`tiles`] with AVX2 `vpmaddwd` on int16: per k pair, 16 B columns' pairs are two vectors
    /// of the B tile, each A row's pair one broadcast; the products of a pair summed in i32 and
    /// added in i32, exactly (|q| <= `int_max(kp)`); then `c = sum * (row scale * column
    /// scale)`.
    ///
    /// # Safety
    /// AVX2; `a`, `b`, `c`, `ldc` as for [`tiles`] (int16 values); `wsc` and `usc` hold the 32
    /// A rows' and B columns' scales.
    #[target_feature(enable = "avx2")]
    unsafe fn int16_tiles(
        a: *const u16,
        b: *const u16,
        nkb: usize,
        c: *mut f32,
        ldc: usize,
        wsc: &[f32],
        usc: &[f32],
    ) {
        let (wsc, usc) = (&wsc[..32], &usc[..32]);
        for uh in 0..2 {
            let bg = b.add(uh * nkb * 512);
            let us = [
                _mm256_loadu_ps(usc.as_ptr().add(uh * 16)),
                _mm256_loadu_ps(usc.as_ptr().add(uh * 16 + 8)),
            ];
            // Each 16-row group of A as 6 + 6 + 4 rows: 12 accumulators and B's two vectors
            // in registers, so each B half (in L1) is read three times a group.
            for r0 in [0, 6, 12, 16, 22, 28] {
                let rows = if r0 % 16 == 12 || r0 == 28 { 4 } else { 6 };
                let row = |i: usize| c.add((r0 + i) * ldc + uh * 16);
                let ws = &wsc[r0..r0 + rows];
                let a0 = a.add((r0 / 16) * nkb * 512 + (r0 % 16) * 32) as *const i32;
                if rows == 6 {
                    int16_rows::<6>(a0, bg, nkb, ws, us, row);
                } else {
                    int16_rows::<4>(a0, bg, nkb, ws, us, row);
                }
            }
        }
    }

    /// `R` rows of [`int16_tiles`] from `a0` against one 16-column half `bg` of B.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn int16_rows<const R: usize>(
        a0: *const i32,
        bg: *const u16,
        nkb: usize,
        ws: &[f32],
        us: [__m256; 2],
        row: impl Fn(usize) -> *mut f32,
    ) {
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        for kb in 0..nkb {
            let (ak, bk) = (a0.add(kb * 256), bg.add(kb * 512));
            for p in 0..16 {
                // SAFETY (all loads): inside the k block's tiles, as the caller promised.
                let v0 = _mm256_loadu_si256(bk.add(p * 32).cast());
                let v1 = _mm256_loadu_si256(bk.add(p * 32 + 16).cast());
                for (i, acc) in acc.iter_mut().enumerate() {
                    // (The u16 tiles promise 2-byte alignment only.)
                    let w = _mm256_set1_epi32(ak.add(i * 16 + p).read_unaligned());
                    acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(v0, w));
                    acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(v1, w));
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            let wsi = _mm256_set1_ps(ws[i]);
            for h in 0..2 {
                let x = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[h]), _mm256_mul_ps(wsi, us[h]));
                _mm256_storeu_ps(row(i).add(8 * h), x);
            }
        }
    }

    /// Items per pass of the AVX-512 tile loops: `2 DP_ROWS` accumulators stay in registers.
    const DP_ROWS: usize = 8;

    /// The loop of [`dp_tiles`] and [`vnni_tiles`]: per k pair, the 32 B columns' pairs are two
    /// vectors (the B-tile layout is exactly `vdpbf16ps`'s and `vpdpwssd`'s operand), each A
    /// row's pair one broadcast, so rows `r..r + DP_ROWS` keep `2 DP_ROWS` accumulators (from
    /// `$zero`, through `$dot(acc, b_pairs, a_pair)` on `__m512i` operands) over all of `k`;
    /// `$store(row, &[acc; 2])` takes each row's two. A macro, not a generic function, so that
    /// each kernel's instructions are inlined under its own target features.
    macro_rules! pair_rows {
        ($a:expr, $b:expr, $nkb:expr, $zero:expr, $dot:expr, $store:expr) => {{
            let (a, nkb) = ($a, $nkb);
            let (b0, b1) = ($b, $b.add(nkb * 512));
            for r0 in (0..32).step_by(DP_ROWS) {
                // Rows r0.. sit in one 16-row group of A (DP_ROWS divides 16).
                let a0 = a.add((r0 / 16) * nkb * 512 + (r0 % 16) * 32) as *const i32;
                let mut acc = [[$zero; 2]; DP_ROWS];
                for kb in 0..nkb {
                    let (ak, bk0, bk1) = (a0.add(kb * 256), b0.add(kb * 512), b1.add(kb * 512));
                    for p in 0..16 {
                        // SAFETY (all loads): inside the k block's tiles, as the caller promised.
                        let v0 = _mm512_loadu_si512(bk0.add(p * 32).cast());
                        let v1 = _mm512_loadu_si512(bk1.add(p * 32).cast());
                        for (i, acc) in acc.iter_mut().enumerate() {
                            // (The u16 tiles promise 2-byte alignment only.)
                            let w = _mm512_set1_epi32(ak.add(i * 16 + p).read_unaligned());
                            acc[0] = $dot(acc[0], v0, w);
                            acc[1] = $dot(acc[1], v1, w);
                        }
                    }
                }
                for (i, acc) in acc.iter().enumerate() {
                    $store(r0 + i, acc);
                }
            }
        }};
    }

    /// [`int16_tiles`] with AVX-512 `vpdpwssd` (the `pair_rows!` loop on integers), with
    /// [`int16_tiles`]'s exact i32 sums and its scaling: the same floats.
    ///
    /// # Safety
    /// AVX-512F and AVX512-VNNI; the arguments as for [`int16_tiles`].
    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn vnni_tiles(
        a: *const u16,
        b: *const u16,
        nkb: usize,
        c: *mut f32,
        ldc: usize,
        wsc: &[f32],
        usc: &[f32],
    ) {
        let (wsc, usc) = (&wsc[..32], &usc[..32]);
        let us = [
            _mm512_loadu_ps(usc.as_ptr()),
            _mm512_loadu_ps(usc.as_ptr().add(16)),
        ];
        pair_rows!(
            a,
            b,
            nkb,
            _mm512_setzero_si512(),
            |acc, v, w| _mm512_dpwssd_epi32(acc, v, w),
            |r: usize, acc: &[__m512i; 2]| {
                let ws = _mm512_set1_ps(wsc[r]);
                for h in 0..2 {
                    let x = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[h]), _mm512_mul_ps(ws, us[h]));
                    _mm512_storeu_ps(c.add(r * ldc + 16 * h), x);
                }
            }
        );
    }

    /// [`tiles`] with `vdpbf16ps` (the `pair_rows!` loop). Each lane sums exact products in fp32
    /// like AMX does (the bound's `n` counts its additions).
    ///
    /// # Safety
    /// AVX-512F and AVX512-BF16; the pointers as for [`tiles`].
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn dp_tiles(a: *const u16, b: *const u16, nkb: usize, c: *mut f32, ldc: usize) {
        let bh = |v: __m512i| -> __m512bh { std::mem::transmute(v) };
        pair_rows!(
            a,
            b,
            nkb,
            _mm512_setzero_ps(),
            |acc, v, w| _mm512_dpbf16_ps(acc, bh(v), bh(w)),
            |r: usize, acc: &[__m512; 2]| {
                let row = c.add(r * ldc);
                _mm512_storeu_ps(row, acc[0]);
                _mm512_storeu_ps(row.add(16), acc[1]);
            }
        );
    }

    /// [`tiles`] on AMX.
    ///
    /// # Safety
    /// Inside [`with_tiles`]; the pointers as for [`tiles`].
    #[inline]
    unsafe fn amx_tiles(a: *const u16, b: *const u16, nkb: usize, c: *mut f32, ldc: usize) {
        let (a0, b0) = (a, b);
        let a1 = a0.add(nkb * 512);
        let b1 = b0.add(nkb * 512);
        let c1 = c.add(16 * ldc);
        // SAFETY: every tile is 1 KiB, contiguous, one per k block, for `nkb` blocks: all
        // inside the buffers (the caller's contract). The tile registers are ours alone (the
        // compiler never uses them). Loads are interleaved with the products (tiles are not
        // renamed: a load waits for the products still reading its register).
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a0} + {s64}*1]",
            "tileloadd tmm6, [{b0} + {s64}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloadd tmm7, [{b1} + {s64}*1]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {s64}*1]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a0}, 1024",
            "add {a1}, 1024",
            "add {b0}, 1024",
            "add {b1}, 1024",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c0} + {ldc}*1], tmm0",
            "tilestored [{c0} + {ldc}*1 + 64], tmm1",
            "tilestored [{c1} + {ldc}*1], tmm2",
            "tilestored [{c1} + {ldc}*1 + 64], tmm3",
            a0 = inout(reg) a0 => _,
            a1 = inout(reg) a1 => _,
            b0 = inout(reg) b0 => _,
            b1 = inout(reg) b1 => _,
            n = inout(reg) nkb => _,
            s64 = in(reg) 64usize,
            c0 = in(reg) c,
            c1 = in(reg) c1,
            ldc = in(reg) ldc * 4,
            options(nostack)
        );
    }

    /// `c[u][j] = h'_u . w'_j` for every padded user of `u` (packed as rows) and every padded
    /// item of `w` (packed as columns): `c` is `u.m_pad x ldc` with `ldc` at least `w`'s padded
    /// items. Items outermost: one block of `w` is read once from memory while the users' tiles
    /// stay in cache.
    ///
    /// # Safety
    /// Inside [`with_kernel`] for `pass`.
    pub unsafe fn a_bt(pass: FirstPass, u: &Users, w: &Packed, c: &mut [f32], ldc: usize) {
        let nkb = w.kp / 32;
        let items = w.w.len() / w.kp;
        assert!(pass.enc() == Some(w.enc) && w.enc == u.enc);
        assert!(u.layout == Layout::Rows && w.layout == Layout::Cols && u.kp == w.kp);
        assert!(ldc >= items && c.len() >= u.m_pad * ldc && u.bits.len() >= u.m_pad * u.kp);
        for item0 in (0..items).step_by(32) {
            for u0 in (0..u.m_pad).step_by(32) {
                // SAFETY: users u0..u0 + 32 and items item0..item0 + 32 are inside the padded
                // buffers (their scales too), the output block inside `c` (asserted above).
                let (ap, bp) = (
                    u.bits.as_ptr().add(u0 * u.kp),
                    w.w.as_ptr().add(item0 * w.kp),
                );
                let cp = c.as_mut_ptr().add(u0 * ldc + item0);
                let sc = (scales(&u.scale, u0), scales(&w.scale, item0));
                tiles(pass, ap, bp, nkb, cp, ldc, sc);
            }
        }
    }

    /// The body of [`scan`]'s kernels: the 32 user lanes in `32 / $lanes` vectors, per item row
    /// the score `t`, its bound `e` (the same fused operations either way) and the lanes whose
    /// `t + e` reaches their threshold (`at_least`: a bit mask). A macro, not a generic function,
    /// so that each kernel's intrinsics inline under its own target features.
    macro_rules! scan_in {
        (
            ($s:expr, $rows:expr, $bias:expr, $p:expr, $q:expr, $a:expr, $c:expr, $thr:expr,
             $hit:expr),
            $lanes:literal,
            load: $load:expr,
            set1: $set1:expr,
            add: $add:expr,
            fmadd: $fmadd:expr,
            abs: $abs:expr,
            at_least: $at_least:expr,
            store: $store:expr
        ) => {{
            const G: usize = 32 / $lanes;
            let (s, rows, hit) = ($s, $rows, $hit);
            let (bias, p, q) = (&$bias[..rows], &$p[..rows], &$q[..rows]);
            let (a, c, thr) = (&$a[..32], &$c[..32], &mut $thr[..32]);
            let av: [_; G] = std::array::from_fn(|g| $load(a.as_ptr().add($lanes * g)));
            let cv: [_; G] = std::array::from_fn(|g| $load(c.as_ptr().add($lanes * g)));
            let mut tv: [_; G] = std::array::from_fn(|g| $load(thr.as_ptr().add($lanes * g)));
            let rel = $set1(REL_SLACK);
            let abs = $set1(ABS_SLACK);
            for ii in 0..rows {
                let (bj, pj, qj) = ($set1(bias[ii]), $set1(p[ii]), $set1(q[ii]));
                for g in 0..G {
                    let x = $load(s.as_ptr().add(ii * 32 + g * $lanes));
                    let t = $add(x, bj);
                    let e = $fmadd(av[g], pj, $fmadd(cv[g], qj, abs));
                    let e = $fmadd($abs(t), rel, e);
                    let ub = $add(t, e);
                    let mut m = $at_least(ub, tv[g]);
                    if m != 0 {
                        let mut ts = [0f32; $lanes];
                        let mut es = [0f32; $lanes];
                        $store(ts.as_mut_ptr(), t);
                        $store(es.as_mut_ptr(), e);
                        while m != 0 {
                            let l = m.trailing_zeros() as usize;
                            m &= m - 1;
                            hit(ii, g * $lanes + l, ts[l], es[l], thr);
                        }
                        tv[g] = $load(thr.as_ptr().add(g * $lanes));
                    }
                }
            }
        }};
    }

    /// Scans a block's scores: for item row `ii < rows` (item `j = item0 + ii`, its `bias`,
    /// `p`, `q` at `ii`) and user lane `l < 32` (factors `a[l]`, `c[l]`), computes the
    /// low-precision score `t = s + b_j` and its bound `e`, and calls `hit(ii, l, t, e, thr)`
    /// where `t + e >= thr[l]` (never for a NaN bound); `hit` may raise `thr`.
    ///
    /// # Safety
    /// `pass` runs here (AVX-512F for the bf16 passes and AVX-512 int16, AVX2 and FMA for AVX2
    /// int16); `bias`, `p`, `q` hold `rows` values, `a`, `c`, `thr` 32.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn scan(
        pass: FirstPass,
        s: &[f32; 1024],
        rows: usize,
        bias: &[f32],
        p: &[f32],
        q: &[f32],
        a: &[f32],
        c: &[f32],
        thr: &mut [f32],
        hit: &mut impl FnMut(usize, usize, f32, f32, &mut [f32]),
    ) {
        if pass == FirstPass::Avx2Int16 {
            scan_avx2(s, rows, bias, p, q, a, c, thr, hit)
        } else {
            scan_avx512(s, rows, bias, p, q, a, c, thr, hit)
        }
    }

    /// [`scan`] with AVX2: four groups of 8 users.
    ///
    /// # Safety
    /// AVX2 and FMA; the slices as for [`scan`].
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn scan_avx2(
        s: &[f32; 1024],
        rows: usize,
        bias: &[f32],
        p: &[f32],
        q: &[f32],
        a: &[f32],
        c: &[f32],
        thr: &mut [f32],
        hit: &mut impl FnMut(usize, usize, f32, f32, &mut [f32]),
    ) {
        scan_in!(
            (s, rows, bias, p, q, a, c, thr, hit),
            8,
            load: |x: *const f32| _mm256_loadu_ps(x),
            set1: |x| _mm256_set1_ps(x),
            add: |x, y| _mm256_add_ps(x, y),
            fmadd: |x, y, z| _mm256_fmadd_ps(x, y, z),
            abs: |x| _mm256_andnot_ps(_mm256_set1_ps(-0.0), x),
            at_least: |x, y| _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(x, y)) as u32,
            store: |x: *mut f32, v| _mm256_storeu_ps(x, v)
        )
    }

    /// [`scan`] with AVX-512: two groups of 16 users.
    ///
    /// # Safety
    /// AVX-512F; the slices as for [`scan`].
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn scan_avx512(
        s: &[f32; 1024],
        rows: usize,
        bias: &[f32],
        p: &[f32],
        q: &[f32],
        a: &[f32],
        c: &[f32],
        thr: &mut [f32],
        hit: &mut impl FnMut(usize, usize, f32, f32, &mut [f32]),
    ) {
        scan_in!(
            (s, rows, bias, p, q, a, c, thr, hit),
            16,
            load: |x: *const f32| _mm512_loadu_ps(x),
            set1: |x| _mm512_set1_ps(x),
            add: |x, y| _mm512_add_ps(x, y),
            fmadd: |x, y, z| _mm512_fmadd_ps(x, y, z),
            abs: |x| _mm512_abs_ps(x),
            at_least: |x, y| _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, y),
            store: |x: *mut f32, v| _mm512_storeu_ps(x, v)
        )
    }
}

/// Exact fp32 scores `h . w_j + b_j` (`h . w_j` without `bias`) of items `items` (rows of `w`,
/// `k` wide), each summed in our GEMM kernels' order (one FMA chain per k block of
/// [`gemm_kc`], blocks added in turn), so equal bit for bit to [`gemm::a_bt`] (plus the bias) on
/// the AVX-512 and AVX2 kernels; 16 items at a time with AVX-512, else 8 with AVX2.
///
/// # Safety
/// AVX2 and FMA must be available; `h` holds `k` values, every item indexes a row of `w` and
/// `bias`, and `out` holds `items.len()` values.
#[cfg(target_arch = "x86_64")]
pub unsafe fn exact_dots(
    h: &[f32],
    w: &[f32],
    k: usize,
    bias: Option<&[f32]>,
    items: &[u32],
    out: &mut [f32],
) {
    if gemm::avx512::available() {
        exact_dots_avx512(h, w, k, bias, items, out)
    } else {
        exact_dots_avx2(h, w, k, bias, items, out)
    }
}

/// The body of [`exact_dots`]' kernels: items `$lanes` at a time, their rows transposed
/// `$lanes` k values at a time, one FMA chain per k block of [`gemm_kc`] (the GEMM kernels'
/// order), the blocks added in turn. A macro, not a generic function, so that each kernel's
/// intrinsics inline under its own target features.
macro_rules! exact_dots_in {
    (
        ($h:expr, $w:expr, $k:expr, $bias:expr, $items:expr, $out:expr),
        $lanes:literal,
        zero: $zero:expr,
        mask: $mask:expr,
        load: $load:expr,
        transpose: $transpose:expr,
        fmadd: $fmadd:expr,
        set1: $set1:expr,
        add: $add:expr,
        store: $store:expr
    ) => {{
        let (w, k, bias) = ($w, $k, $bias);
        let h = &$h[..k];
        let kb = k.div_ceil(gemm_kc());
        let kc_max = k.div_ceil(kb);
        for (grp, o) in $items.chunks($lanes).zip($out.chunks_mut($lanes)) {
            let rows: Vec<&[f32]> = grp
                .iter()
                .map(|&j| &w[j as usize * k..(j as usize + 1) * k])
                .collect();
            let mut total = $zero;
            let mut pc = 0;
            while pc < k {
                let kc = kc_max.min(k - pc);
                let mut acc = $zero;
                let mut kk = pc;
                while kk < pc + kc {
                    let kn = (pc + kc - kk).min($lanes);
                    let kmask = $mask(kn);
                    let mut r = [$zero; $lanes];
                    for (x, row) in r.iter_mut().zip(&rows) {
                        // SAFETY: the mask keeps the load inside the row (kk + kn <= k).
                        *x = $load(row.as_ptr().add(kk), kmask);
                    }
                    let t = $transpose(r);
                    for (s, col) in t.iter().enumerate().take(kn) {
                        acc = $fmadd($set1(h[kk + s]), *col, acc);
                    }
                    kk += $lanes;
                }
                total = if pc == 0 { acc } else { $add(acc, total) };
                pc += kc;
            }
            let mut sums = [0f32; $lanes];
            $store(sums.as_mut_ptr(), total);
            match bias {
                Some(bias) => {
                    for ((o, &s), &j) in o.iter_mut().zip(&sums).zip(grp) {
                        *o = s + bias[j as usize];
                    }
                }
                None => o.copy_from_slice(&sums[..o.len()]),
            }
        }
    }};
}

/// [`exact_dots`] with AVX2, 8 items a group.
///
/// # Safety
/// As [`exact_dots`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exact_dots_avx2(
    h: &[f32],
    w: &[f32],
    k: usize,
    bias: Option<&[f32]>,
    items: &[u32],
    out: &mut [f32],
) {
    use gemm::avx2::{mask8, transpose8};
    use std::arch::x86_64::*;
    exact_dots_in!(
        (h, w, k, bias, items, out),
        8,
        zero: _mm256_setzero_ps(),
        mask: mask8,
        load: |p, m| _mm256_maskload_ps(p, m),
        transpose: transpose8,
        fmadd: |a, b, c| _mm256_fmadd_ps(a, b, c),
        set1: |x| _mm256_set1_ps(x),
        add: |a, b| _mm256_add_ps(a, b),
        store: |p, v| _mm256_storeu_ps(p, v)
    );
}

/// [`exact_dots`] with AVX-512, 16 items a group.
///
/// # Safety
/// As [`exact_dots`], and AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exact_dots_avx512(
    h: &[f32],
    w: &[f32],
    k: usize,
    bias: Option<&[f32]>,
    items: &[u32],
    out: &mut [f32],
) {
    use gemm::avx512::{lane_mask, transpose16};
    use std::arch::x86_64::*;
    exact_dots_in!(
        (h, w, k, bias, items, out),
        16,
        zero: _mm512_setzero_ps(),
        mask: |kn| lane_mask(kn, 0),
        load: |p, m| _mm512_maskz_loadu_ps(m, p),
        transpose: transpose16,
        fmadd: |a, b, c| _mm512_fmadd_ps(a, b, c),
        set1: |x| _mm512_set1_ps(x),
        add: |a, b| _mm512_add_ps(a, b),
        store: |p, v| _mm512_storeu_ps(p, v)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: &mut u64, scale: f32) -> Vec<f32> {
        (0..len)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
            })
            .collect()
    }

    #[test]
    fn bf16_rounding_is_nearest_even_and_flushes_subnormals() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even (1.0).
        assert_eq!(to_bf16(1.0 + 2f32.powi(-8)), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
        assert_eq!(to_bf16(-2.5), 0xc020);
        assert_eq!(to_bf16(1e-40), 0);
        assert_eq!(to_bf16(-1e-40), 0x8000);
        let mut s = 3;
        for x in values(10_000, &mut s, 100.0) {
            let y = from_bf16(to_bf16(x));
            assert!((y - x).abs() <= x.abs() * 2f32.powi(-8), "{x} -> {y}");
        }
    }

    #[test]
    fn packing_refuses_weights_that_could_overflow() {
        for enc in [Enc::Bf16, Enc::Int16] {
            assert!(Packed::new(&[1.0, 2.0], &[0.0], 1, 2, enc).is_some());
            assert!(Packed::new(&[1.0, f32::NAN], &[0.0], 1, 2, enc).is_none());
            assert!(Packed::new(&[1.0, 2.0], &[f32::INFINITY], 1, 2, enc).is_none());
            assert!(Packed::new(&[1e31, 2.0], &[0.0], 1, 2, enc).is_none());
        }
        // int16: an all-but-zero row could leave its scale products subnormal; a zero row is
        // fine.
        assert!(Packed::new(&[1e-13, 0.0], &[0.0], 1, 2, Enc::Int16).is_none());
        assert!(Packed::new(&[1e-13, 0.0], &[0.0], 1, 2, Enc::Bf16).is_some());
        assert!(Packed::new(&[0.0, 0.0, 1.0, 2.0], &[0.0; 2], 2, 2, Enc::Int16).is_some());
        // A user whose state is all but zero gets no bound (every item is rescored).
        let us = Users::new(&[1e-13, 0.0, 0.5, 0.25], 2, 2, 32, Enc::Int16);
        assert!(us.a[0].is_nan() && us.a[1].is_finite());
    }

    /// The int16 sums at their limit: every value at its row's largest magnitude (all
    /// `q = +-lim`, signs matching or opposed), k a whole number of k blocks, so each i32 sum is
    /// `+-kp lim^2`, the most `int_max` allows: exact, no wrap-around.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn int16_sums_at_their_limit_do_not_overflow() {
        if !int16_ready() {
            eprintln!("no AVX2 here: the kernel test is skipped");
            return;
        }
        for (pass, k) in int16_passes().flat_map(|p| [(p, 32usize), (p, 1312)]) {
            let lim = int_max(k);
            assert!(k as f64 * lim * lim <= i32::MAX as f64);
            let (items, m) = (32usize, 32usize);
            // Item j: +3 or -3 everywhere; user u: +0.5 or -0.5 everywhere.
            let w: Vec<f32> = (0..items * k)
                .map(|i| if (i / k) % 2 == 0 { 3.0 } else { -3.0 })
                .collect();
            let h: Vec<f32> = (0..m * k)
                .map(|i| if (i / k) % 3 == 0 { 0.5 } else { -0.5 })
                .collect();
            let pk = Packed::new(&w, &vec![0.0; items], items, k, Enc::Int16).unwrap();
            let us = Users::new(&h, m, k, pk.kp, Enc::Int16);
            let mut c = [0f32; 1024];
            // SAFETY: the pass runs here; one block inside the padded buffers.
            unsafe { kernels::block(pass, &pk, 0, &us, 0, &mut c) };
            for j in 0..items {
                for u in 0..m {
                    let sign = if (j % 2 == 0) == (u % 3 == 0) {
                        1.0
                    } else {
                        -1.0
                    };
                    let want =
                        sign * k as f64 * lim * lim * pk.scale[j] as f64 * us.scale[u] as f64;
                    let got = c[j * 32 + u] as f64;
                    assert!(
                        (got - want).abs() <= want.abs() * 4.0 * 2f64.powi(-24),
                        "{pass:?} k={k} item {j} user {u}: {got} vs {want}"
                    );
                    // And the score itself: 1.5 k in magnitude, to the scales' rounding.
                    assert!((got.abs() - 1.5 * k as f64).abs() <= 1e-3 * k as f64);
                }
            }
        }
    }

    /// The int16 kernels this machine runs (AVX2, and AVX-512 VNNI where present).
    fn int16_passes() -> impl Iterator<Item = FirstPass> {
        [FirstPass::Avx2Int16, FirstPass::Avx512Int16]
            .into_iter()
            .filter(|&p| runs(p))
    }

    /// int16 values stay within the exact-sum limit and round to nearest, and each int16
    /// kernel's sums are the integer dot products times the two scales (three f32 roundings at
    /// most), the AVX-512 kernel's the AVX2 kernel's bit for bit.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn int16_kernel_sums_exactly() {
        if !int16_ready() {
            eprintln!("no AVX2 here: the kernel test is skipped");
            return;
        }
        let mut seed = 23;
        for &(items, m, k, scale) in &[(64usize, 40usize, 600usize, 1.0f32), (33, 3, 5, 1e-3)] {
            let w = values(items * k, &mut seed, scale);
            let h = values(m * k, &mut seed, 1.0);
            let pk = Packed::new(&w, &vec![0.0; items], items, k, Enc::Int16).unwrap();
            let us = Users::new(&h, m, k, pk.kp, Enc::Int16);
            let lim = int_max(pk.kp);
            // The integers behind row j (Rows layout) and user u (Cols layout).
            let wq = |j: usize, t: usize| {
                pk.w[((j / 16) * (pk.kp / 32) + t / 32) * 512 + (j % 16) * 32 + t % 32] as i16
            };
            let hq = |u: usize, t: usize| {
                let at = (t % 32) / 2 * 32 + (u % 16) * 2 + t % 2;
                us.bits[((u / 16) * (pk.kp / 32) + t / 32) * 512 + at] as i16
            };
            for j in 0..items {
                for t in 0..k {
                    let q = wq(j, t) as f64;
                    assert!(q.abs() <= lim);
                    let x = w[j * k + t] as f64;
                    assert!(
                        (q * pk.scale[j] as f64 - x).abs()
                            <= 0.5 * pk.scale[j] as f64 * (1.0 + 1e-6)
                    );
                }
            }
            let mut c = [0f32; 1024];
            for item0 in (0..items).step_by(32) {
                // SAFETY: AVX2 checked; the block stays inside the padded buffers.
                unsafe { kernels::block(FirstPass::Avx2Int16, &pk, item0, &us, 0, &mut c) };
                if runs(FirstPass::Avx512Int16) {
                    let mut c512 = [0f32; 1024];
                    // SAFETY: VNNI checked; the same block.
                    unsafe {
                        kernels::block(FirstPass::Avx512Int16, &pk, item0, &us, 0, &mut c512)
                    };
                    let bits = |c: &[f32; 1024]| c.map(f32::to_bits);
                    assert_eq!(bits(&c512), bits(&c), "items {item0}..: AVX-512 vs AVX2");
                }
                for ii in 0..32.min(items - item0) {
                    for u in 0..m.min(32) {
                        let j = item0 + ii;
                        let dot: i64 = (0..k).map(|t| wq(j, t) as i64 * hq(u, t) as i64).sum();
                        let want = dot as f64 * pk.scale[j] as f64 * us.scale[u] as f64;
                        let got = c[ii * 32 + u] as f64;
                        assert!(
                            (got - want).abs() <= want.abs() * 4.0 * 2f64.powi(-24),
                            "k={k} item {j} user {u}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// Exact scores in f64 of h . w_j + b_j.
    fn exact(h: &[f32], w: &[f32], b: &[f32], k: usize, j: usize) -> f64 {
        (0..k)
            .map(|t| h[t] as f64 * w[j * k + t] as f64)
            .sum::<f64>()
            + b[j] as f64
    }

    /// The low-precision passes this machine runs.
    fn passes() -> Vec<FirstPass> {
        [
            FirstPass::Amx,
            FirstPass::Avx512Bf16,
            FirstPass::Avx512Int16,
            FirstPass::Avx2Int16,
        ]
        .into_iter()
        .filter(|&p| runs(p))
        .collect()
    }

    /// Each low-precision kernel's block against exact scores: every score within its certified
    /// bound of the fp32 one, and the bound tight enough to be useful.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn low_precision_scores_stay_within_the_bound() {
        if passes().is_empty() {
            eprintln!("no low-precision kernel here: the kernel test is skipped");
            return;
        }
        for pass in passes() {
            let enc = pass.enc().unwrap();
            let mut seed = 9;
            for &(items, m, k, scale) in &[
                (64usize, 32usize, 600usize, 0.1f32),
                (40, 50, 33, 3.0),
                (32, 7, 1300, 1.0),
                (96, 64, 17, 1e-3),
            ] {
                let w = values(items * k, &mut seed, scale);
                let bias = values(items, &mut seed, scale);
                // tanh-like states in [-1, 1]
                let h = values(m * k, &mut seed, 1.0);
                let pk = Packed::new(&w, &bias, items, k, enc).unwrap();
                let us = Users::new(&h, m, k, pk.kp, enc);
                let mut worst = 0f64;
                // SAFETY: the pass runs here; the blocks stay inside the padded buffers.
                unsafe {
                    kernels::with_kernel(pass, || {
                        let mut c = [0f32; 1024];
                        for item0 in (0..items).step_by(32) {
                            for gp in 0..us.m_pad / 32 {
                                kernels::block(pass, &pk, item0, &us, gp, &mut c);
                                for ii in 0..32.min(items - item0) {
                                    for l in 0..32 {
                                        let (j, u) = (item0 + ii, gp * 32 + l);
                                        if u >= m {
                                            continue;
                                        }
                                        let t = c[ii * 32 + l] + bias[j];
                                        let e = us.a[u] * pk.p[j]
                                            + us.c[u] * pk.q[j]
                                            + REL_SLACK * t.abs()
                                            + ABS_SLACK;
                                        let want = exact(&h[u * k..], &w, &bias, k, j);
                                        let err = (t as f64 - want).abs();
                                        assert!(
                                            err <= e as f64,
                                            "{pass:?} k={k} item {j} user {u}: {t} vs {want} \
                                             (bound {e})"
                                        );
                                        worst = worst.max(err / e as f64);
                                    }
                                }
                            }
                        }
                    })
                };
                // The bound is a worst case, but not a vacuous one.
                eprintln!("{pass:?} k={k}: worst error / bound {worst:.3}");
                assert!(worst > 0.01, "{pass:?} k={k}: worst error / bound {worst}");
            }
        }
    }

    /// The `vdpbf16ps` kernel's block against a plain sum of the bf16 products in f64 (within
    /// fp32 accumulation of exact products).
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn dp_kernel_sums_the_bf16_products() {
        if !dp_ready() {
            eprintln!("no AVX512-BF16 here: the kernel test is skipped");
            return;
        }
        let mut seed = 21;
        for &(items, m, k) in &[(32usize, 32usize, 64usize), (64, 40, 600), (33, 3, 5)] {
            let w = values(items * k, &mut seed, 1.0);
            let h = values(m * k, &mut seed, 1.0);
            let pk = Packed::new(&w, &vec![0.0; items], items, k, Enc::Bf16).unwrap();
            let us = Users::new(&h, m, k, pk.kp, Enc::Bf16);
            let mut c = [0f32; 1024];
            for item0 in (0..items).step_by(32) {
                // SAFETY: dp_ready() said yes; the block stays inside the padded buffers.
                unsafe {
                    kernels::block(FirstPass::Avx512Bf16, &pk, item0, &us, 0, &mut c);
                }
                for ii in 0..32.min(items - item0) {
                    for u in 0..m.min(32) {
                        let j = item0 + ii;
                        let want: f64 = (0..k)
                            .map(|t| {
                                from_bf16(to_bf16(h[u * k + t])) as f64
                                    * from_bf16(to_bf16(w[j * k + t])) as f64
                            })
                            .sum();
                        let got = c[ii * 32 + u] as f64;
                        // fp32 accumulation of k exact products of magnitude <= 1.
                        assert!(
                            (got - want).abs() <= k as f64 * 1.2e-7,
                            "k={k} item {j} user {u}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// AMP-CF's layout (users as A rows, items as B columns, the whole product at once, no
    /// bias, states of any size) against exact scores and the fp32 kernel, for each
    /// low-precision kernel: every score within the per-user affine bound of both, and the bound
    /// not vacuous.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn low_precision_product_stays_within_the_affine_bound() {
        if passes().is_empty() {
            eprintln!("no low-precision kernel here: the kernel test is skipped");
            return;
        }
        for pass in passes() {
            let enc = pass.enc().unwrap();
            let mut seed = 11;
            for &(items, m, k, scale) in &[
                (70usize, 40usize, 448usize, 0.05f32),
                (33, 5, 3, 10.0),
                (96, 64, 100, 1.0),
                (1, 1, 1, 1e-3),
            ] {
                let w = values(items * k, &mut seed, scale);
                let h = values(m * k, &mut seed, 30.0);
                let zero = vec![0f32; items];
                let pk = Packed::with_layout(&w, items, k, Layout::Cols, enc).unwrap();
                let us = Users::with_layout(&h, m, k, pk.kp, Layout::Rows, enc);
                let ldt = pk.w.len() / pk.kp;
                let mut c = vec![f32::NAN; us.m_pad * ldt];
                // SAFETY: the pass runs here.
                unsafe {
                    kernels::with_kernel(pass, || kernels::a_bt(pass, &us, &pk, &mut c, ldt))
                };
                let mut fp32 = vec![0f32; m * items];
                gemm::a_bt(m, items, k, &h, &w, &mut fp32);
                let mut worst = 0f64;
                for u in 0..m {
                    let (alpha, beta) = us.affine_bound(u);
                    for j in 0..items {
                        let t = c[u * ldt + j];
                        let e = alpha * pk.p[j] + beta * pk.q[j] + ABS_SLACK;
                        let want = exact(&h[u * k..], &w, &zero, k, j);
                        let err = (t as f64 - want).abs();
                        assert!(
                            err <= e as f64,
                            "{pass:?} k={k} item {j} user {u}: {t} vs {want} ({e})"
                        );
                        let f = fp32[u * items + j];
                        assert!(
                            (t - f).abs() <= e,
                            "{pass:?} k={k} item {j} user {u}: {t} vs fp32 {f}"
                        );
                        worst = worst.max(err / e as f64);
                    }
                }
                eprintln!("{pass:?} k={k}: worst error / bound {worst:.3}");
                // (A one-value int16 row is its own scale: nothing is lost to observe.)
                assert!(
                    worst > 0.01 || (enc == Enc::Int16 && k == 1),
                    "{pass:?} k={k}: worst error / bound {worst}"
                );
            }
        }
    }

    /// Rescoring, AVX-512 or AVX2, reproduces our GEMM kernels bit for bit (the two kernels
    /// share one order).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn exact_dots_equal_the_gemm_kernel() {
        if !gemm::avx2::available() {
            eprintln!("no AVX2 here: nothing to compare");
            return;
        }
        let mut seed = 4;
        for &(items, k) in &[(50usize, 600usize), (17, 1300), (33, 5), (3, 641)] {
            let w = values(items * k, &mut seed, 1.0);
            let bias = values(items, &mut seed, 1.0);
            let h = values(k, &mut seed, 1.0);
            let mut c = vec![0f32; items];
            // SAFETY: avx2 and fma checked; `w` holds items x k (element (kk, j) at j * k + kk).
            unsafe { gemm::avx2::gemm(1, items, k, h.as_ptr(), w.as_ptr(), 1, k, c.as_mut_ptr()) };
            let want: Vec<f32> = c.iter().zip(&bias).map(|(c, b)| c + b).collect();
            let ids: Vec<u32> = (0..items as u32).rev().collect();
            let mut got = vec![0f32; items];
            // SAFETY: avx2 and fma checked; ids index w and bias.
            unsafe { exact_dots_avx2(&h, &w, k, Some(&bias), &ids, &mut got) };
            let mut both = vec![got.clone()];
            if gemm::avx512::available() {
                let mut c5 = vec![0f32; items];
                // SAFETY: avx512f checked, the same shapes.
                unsafe {
                    gemm::avx512::gemm(1, items, k, h.as_ptr(), w.as_ptr(), 1, k, c5.as_mut_ptr());
                    exact_dots_avx512(&h, &w, k, Some(&bias), &ids, &mut got);
                }
                assert_eq!(c5, c, "the kernels' orders differ");
                both.push(got);
            }
            for got in both {
                for (i, &j) in ids.iter().enumerate() {
                    assert_eq!(
                        got[i].to_bits(),
                        want[j as usize].to_bits(),
                        "k={k} item {j}"
                    );
                }
            }
        }
    }
}
