//! The blocking both of our kernels share (BLIS's, for row-major `c`): `a` packed once per call
//! into `MR`-row panels (`[k][MR]`), `B` packed per `NC x KC` block into `NR`-column panels
//! (`[KC][NR]`), which stays in L2 while every `a` panel streams it through the microkernel.
//! `k` is split into equal blocks of at most [`KC`], and `c` accumulates them in turn, so every
//! element of `c` is one FMA chain per k block, the blocks added in order: the summation order
//! [`crate::lowp::exact_dots`] reproduces, whichever kernel ran.

use std::cell::RefCell;

/// Largest `k` slice per packed block: `MR x KC` floats of `a` stay in L1.
pub(crate) const KC: usize = 640;

/// 64 bytes, aligned for either kernel's vector loads.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

thread_local! {
    /// Packing buffers, reused across calls on each thread: (`a` panels, `B` block).
    static SCRATCH: RefCell<(Vec<Line>, Vec<Line>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A zero-initialised 64-byte aligned buffer of at least `len` floats.
fn scratch(buf: &mut Vec<Line>, len: usize) -> *mut f32 {
    let lines = len.div_ceil(16);
    if buf.len() < lines {
        buf.resize(lines, Line([0.0; 16]));
    }
    buf.as_mut_ptr().cast()
}

/// Packs `a` (`m x k`, row-major) into `MR`-row panels `[k][MR]`, zero rows past `m`.
/// Safety: the kernel's CPU features; `out` holds `ceil(m / MR) * MR * k` floats, `a` `m * k`.
pub(crate) type PackA = unsafe fn(m: usize, k: usize, a: *const f32, out: *mut f32);

/// Packs the `kc x nc` block of `B` at `b` (element `(kk, j)` at `b[kk * rs + j * cs]`) into
/// `NR`-column panels `[kc][NR]`, zero columns past `nc`. Safety: the kernel's CPU features;
/// `out` holds `kc x nc` rounded up to whole panels, 64-byte aligned; `b` every element the
/// strides reach.
pub(crate) type PackB =
    unsafe fn(kc: usize, nc: usize, b: *const f32, rs: usize, cs: usize, out: *mut f32);

/// `c[rows x cols] (+)= apanel[rows x kc] * bpanel[kc x NR]`, added to `c` when `acc`.
/// Safety: the kernel's CPU features; the panels hold `kc` steps; `c` holds `rows x cols` with
/// row stride `ldc`.
pub(crate) type Micro = unsafe fn(
    rows: usize,
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    acc: bool,
);

/// A register-tiled kernel: its tile sizes (`mr` broadcast rows, `nr` columns, `nc` columns per
/// packed block of `B`), packing and microkernel.
pub(crate) struct Tile {
    pub mr: usize,
    pub nr: usize,
    pub nc: usize,
    pub pack_a: PackA,
    pub pack_b: PackB,
    pub micro: Micro,
}

/// `c = a * B` with tile `t`, where element `(kk, j)` of `B` is `b[kk * rs + j * cs]`; `a` is
/// `m x k` row-major, `c` is `m x n` row-major.
///
/// # Safety
/// `t`'s CPU features must be available, and `a`, `b`, `c` must hold every element the shapes
/// and strides reach (`m, n, k > 0`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn gemm(
    t: &Tile,
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    b: *const f32,
    rs: usize,
    cs: usize,
    c: *mut f32,
) {
    SCRATCH.with(|s| {
        let (abuf, bbuf) = &mut *s.borrow_mut();
        let panels = m.div_ceil(t.mr);
        let ap = scratch(abuf, panels * t.mr * k);
        let bp = scratch(bbuf, KC.min(k) * t.nc.next_multiple_of(t.nr));
        // SAFETY: `ap` holds `panels * MR * k` floats and `a` holds `m * k`.
        unsafe { (t.pack_a)(m, k, a, ap) };
        let kb = k.div_ceil(KC);
        let kc_max = k.div_ceil(kb);
        let mut jc = 0;
        while jc < n {
            let nc = t.nc.min(n - jc);
            let mut pc = 0;
            while pc < k {
                let kc = kc_max.min(k - pc);
                // SAFETY: `bp` holds `KC x NC` rounded up to whole panels; the caller bounds b.
                unsafe { (t.pack_b)(kc, nc, b.add(pc * rs + jc * cs), rs, cs, bp) };
                for p in 0..panels {
                    let rows = t.mr.min(m - p * t.mr);
                    let apanel = ap.add(p * t.mr * k + pc * t.mr);
                    let mut jr = 0;
                    while jr < nc {
                        let cols = t.nr.min(nc - jr);
                        let cptr = c.add(p * t.mr * n + jc + jr);
                        let bpanel = bp.add(jr * kc);
                        // SAFETY: the panels hold `kc` steps; `c` holds `rows x cols` at `cptr`
                        // with row stride `n`.
                        unsafe { (t.micro)(rows, kc, apanel, bpanel, cptr, n, cols, pc > 0) };
                        jr += t.nr;
                    }
                }
                pc += kc;
            }
            jc += nc;
        }
    })
}

/// A kernel's `micro` (the [`Micro`] of its [`Tile`]: dispatch on the panel's row count,
/// `1..=MR`) and `kernel::<R>`: `c[R x cols] (+)= apanel[R x kc] * bpanel[kc x NR]` in
/// `R x NV` accumulators, each one FMA chain from zero, added to `c` after the first k block
/// (the order [`crate::lowp::exact_dots`] reproduces). Expanded in each kernel's module (which
/// defines `MR`, `NR` and `NV`); a macro, not a generic function, so that each kernel's
/// intrinsics inline under its own target features. `mask(cols, v)` is vector `v`'s store
/// mask, `None` past the last column.
macro_rules! microkernel {
    (
        features: $feat:literal,
        rows: [$($r:literal),+],
        lanes: $lanes:literal,
        zero: $zero:expr,
        load: $load:expr,
        broadcast: $broadcast:expr,
        fmadd: $fmadd:expr,
        add: $add:expr,
        mask: $mask:expr,
        load_masked: $load_masked:expr,
        store_masked: $store_masked:expr $(,)?
    ) => {
        /// Dispatches to the microkernel for `rows` (1..=MR) rows.
        #[target_feature(enable = $feat)]
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
                $($r => kernel::<$r>(kc, a, b, c, ldc, cols, acc),)+
                _ => kernel::<1>(kc, a, b, c, ldc, cols, acc),
            }
        }

        /// `c[R x cols] (+)= apanel[R x kc] * bpanel[kc x NR]` (see `blocked::microkernel`).
        #[target_feature(enable = $feat)]
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
            let mut s = [[$zero; NV]; R];
            for kk in 0..kc {
                let bk = b.add(kk * NR);
                let mut bv = [$zero; NV];
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = $load(bk.add($lanes * v));
                }
                let ak = a.add(kk * MR);
                for (r, sr) in s.iter_mut().enumerate() {
                    let x = $broadcast(ak.add(r));
                    for v in 0..NV {
                        sr[v] = $fmadd(x, bv[v], sr[v]);
                    }
                }
            }
            for (r, sr) in s.iter().enumerate() {
                let row = c.add(r * ldc);
                for (v, &x) in sr.iter().enumerate() {
                    let Some(mask) = $mask(cols, v) else {
                        break;
                    };
                    let p = row.add($lanes * v);
                    let x = if acc { $add(x, $load_masked(p, mask)) } else { x };
                    $store_masked(p, mask, x);
                }
            }
        }
    };
}
pub(crate) use microkernel;

/// A kernel's `pack_b` (the [`PackB`] of its [`Tile`]): the `kc x nc` block of `B` into
/// `NR`-column panels `[kc][NR]`, zero columns past `nc`; rows of `B` contiguous (`cs == 1`):
/// `NV` masked vector copies a row; columns contiguous (`rs == 1`, `B^T` row-major):
/// `$lanes x $lanes` blocks transposed in registers (`$fetch_next` may prefetch the same columns
/// of the next rows); else element by element. Expanded in each kernel's module, as
/// [`microkernel`]; `mask(n, v)` is the load mask of vector `v` of `n` values.
macro_rules! pack_b {
    (
        features: $feat:literal,
        lanes: $lanes:literal,
        zero: $zero:expr,
        mask: $mask:expr,
        load_masked: $load_masked:expr,
        store: $store:expr,
        transpose: $transpose:expr,
        fetch_next: $fetch_next:expr $(,)?
    ) => {
        /// Packs the `kc x nc` block of `B` at `b` (element `(kk, j)` at `b[kk * rs + j * cs]`)
        /// into `NR`-column panels `[kc][NR]`, zero columns past `nc` (see `blocked::pack_b`).
        #[target_feature(enable = $feat)]
        unsafe fn pack_b(kc: usize, nc: usize, b: *const f32, rs: usize, cs: usize, out: *mut f32) {
            let mut jr = 0;
            while jr < nc {
                let cols = NR.min(nc - jr);
                let dst = out.add(jr * kc);
                if cs == 1 {
                    for kk in 0..kc {
                        let src = b.add(kk * rs + jr);
                        for v in 0..NV {
                            let x = $load_masked(src.wrapping_add($lanes * v), $mask(cols, v));
                            $store(dst.add(kk * NR + $lanes * v), x);
                        }
                    }
                } else if rs == 1 {
                    for v in 0..NV {
                        let nv = cols.saturating_sub($lanes * v).min($lanes);
                        let mut kk = 0;
                        while kk < kc {
                            let kn = (kc - kk).min($lanes);
                            let kmask = $mask(kn, 0);
                            let mut r = [$zero; $lanes];
                            for (j, row) in r.iter_mut().enumerate().take(nv) {
                                let src = b.add((jr + $lanes * v + j) * cs + kk);
                                *row = $load_masked(src, kmask);
                                $fetch_next(src.wrapping_add($lanes * cs));
                            }
                            let t = $transpose(r);
                            for (t, x) in t.iter().enumerate().take(kn) {
                                $store(dst.add((kk + t) * NR + $lanes * v), *x);
                            }
                            kk += $lanes;
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
    };
}
pub(crate) use pack_b;
