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
