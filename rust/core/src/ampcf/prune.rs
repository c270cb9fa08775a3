//! Certified pruned top-N for AMP-CF: the fused scorer's lists, with the personas' low-rank
//! votes and attention computed only for items that can enter them.
//!
//! The score splits as `s_j = (1 - mix) t_j + mix A_j` (module docs of [`super`]), where
//! `t_j = sum_k v_jk = x F_j` is the filter's own score (one low-rank product per user, not
//! per persona) and `A_j = sum_k a_jk w_k v_jk` with `w_k = pi_k^-gamma > 0`. The attention
//! is a distribution over the personas, so `A_j <= max_k w_k v_jk`, and each
//! persona's vote is its item-item part (exact and cheap: sparse, one pass over the history's
//! rows of `S` for all personas together) plus a low-rank part bounded by Cauchy-Schwarz:
//! `|(x_k L) . R_j| <= |x_k L| |R_j|`. Per chunk of users, one GEMM of their `x L` with `R`
//! gives `t`'s low-rank part; then per user:
//!
//! 1. **bounds**: with sparse votes a tile of [`TILE`] items at a time (its votes stay in L2;
//!    each history item's row of `S` is walked on from where the last tile left it), the personas'
//!    item-item votes, `t`, and per item the upper bound
//!    `(1 - mix) t_j + mix max_k w_k (vS_jk + |x_k L| |R_j|)`. A user with one persona (every
//!    user when `mix = 0` or K = 1) has `s = t`, exact: their list is `t`'s.
//! 2. **seeds**: the N best items by `t`, scored exactly (the personas' full low-rank votes
//!    and cosines, then the fused scorer's `combine`): their N-th exact score `theta` is at most
//!    the list's N-th score.
//! 3. **candidates**: the items whose upper bound reaches `theta` are bounded again with each
//!    persona's low-rank vote split along `x L` ([`Split`]: `t`'s own low-rank part gives the
//!    component along it, Cauchy-Schwarz bounds only the rest); those still reaching `theta`
//!    are scored exactly by decreasing bound, in blocks, until the next bound is below the
//!    list's current N-th score: no later item can enter. The exact pass reads each
//!    candidate's rows of `R` and of the item space in place ([`gemm::a_rows_t`]).
//!
//! Every item whose exact score reaches the list's N-th is scored exactly, so the list is the
//! exact one (ties aside: the scores may differ from the fused scorer's in the last bits, as
//! the sums run in another order). Bounds are widened by [`SLACK`] times the magnitudes they
//! add, against rounding.
//!
//! **Low-precision first pass of `t`** (where [`lowp::first_pass`] is not fp32: bf16 on AMX or
//! AVX512-BF16, int16 on AVX-512 VNNI or AVX2; the CPU and OS allow it, one of our GEMM kernels
//! runs, `PERSONAE_FIRST_PASS` is not `fp32`): `t`'s low-rank part is computed by that kernel from
//! low-precision copies of `x L` and `R` (users as A rows, items as B columns:
//! [`lowp::Layout`]), off the fp32 product by at most the certified
//! `E_j = alpha p_j + beta q_j + abs` of [`lowp`] (per-user `alpha`, `beta` from the rounding
//! residual of `x L`, per-item `p`, `q` of `R`). The bound of step 1 becomes
//! `(1 - mix)(t'_j + E_j) + mix max_k ...`, the seeds are the best items by `t'` (any items give
//! a valid `theta`), and the exact pass of step 3 never reads `t`. A one-persona user's list
//! is `t`'s: the items whose `t'_j + E_j` reaches the N-th best `t'_j - E_j` are rescored
//! exactly, the low-rank dot in our GEMM kernels' order ([`lowp::exact_dots`]) and the
//! votes added entry by entry, so their scores are the fused scorer's bit for bit. A user whose
//! `x L` is not finite or too large for a bound gets `t` exactly. On Gowalla's default model a
//! user with several personas has ~100 seeds and ~66 more of 41k items scored exactly (~320
//! more with the first bound alone; BENCHMARKS.md); `Exact` needs no `users x K x items`
//! tensor, and the bound pass holds `np x items` votes for one user at a time.

use std::ops::Range;
use std::sync::OnceLock;

use super::{blend, combine, AmpCf, Mix, Scorer};
use crate::csr::CsrView;
use crate::error::Result;
use crate::filter::{axpy, Entry};
use crate::fused::{self, Filters, Recommended, TileScorer};
use crate::gemm::{self, PackedBt};
use crate::lowp::{self, FirstPass, Layout};
use crate::threads::Stop;
use crate::topk::TopK;

/// Floats of `t` a chunk of users holds (`users x n_items`, 32 MiB per thread): the chunk's
/// users are one GEMM with `R`, so more users amortise streaming `R` from memory (with the bf16
/// pass, whole blocks of 32 users).
const CHUNK_FLOATS: usize = 1 << 23;
/// Candidates scored together in the exact pass.
const BLOCK: usize = 64;
/// Items whose votes and bounds are computed together with sparse votes (`np x TILE` votes
/// stay in L2). Dense votes take every item at once: each history item's row of `S` is then
/// read whole (cut in tiles, the prefetcher restarts on every piece: on ML-latest-small the
/// votes took 59% of the samples against 53%).
const TILE: usize = 2048;
/// Relative widening of the bounds against rounding (f32 sums of a few hundred products).
const SLACK: f32 = 1e-4;

/// What the pruned top-N reads of the model besides its tensors, each computed on first use.
#[derive(Debug, Default)]
pub(super) struct Tables {
    /// `|R_j|` per item, rounded up.
    norms: OnceLock<Vec<f32>>,
    /// `R` packed for the AVX-512 kernel of `t` (None without AVX-512F or a low-rank part).
    packed: OnceLock<Option<PackedBt>>,
    /// `R` in bf16 and in int16 as B tiles, for the certified first passes of `t`, each built
    /// at its first use (None where `R` is not certifiable).
    lowp: [OnceLock<Option<lowp::Packed>>; 2],
}

/// The tables one call reads: `t`'s low-rank part in low precision with `lowp` (by `pass`'s
/// kernel), else exactly (with `packed` where the AVX-512 kernel runs).
#[derive(Clone, Copy)]
struct View<'a> {
    norms: &'a [f32],
    packed: Option<&'a PackedBt>,
    lowp: Option<&'a lowp::Packed>,
    pass: FirstPass,
}

/// Top-`n` of every row of `users` (checked, unit rows), as [`fused::top_n`] with the fused
/// AMP-CF scorer would give them; with `explain`, also each listed item's dominant persona
/// (the one with the largest part of its score, as [`AmpCf::explain`] names it; -1 for
/// padding), from the exact pass's own votes and attention. Needs `mix != 0` when `explain`
/// and K > 1 (with `mix = 0` every user is scored as one persona, without the parts).
pub(super) fn top_n(
    md: &AmpCf,
    users: &CsrView,
    n: i64,
    filters: &Filters,
    explain: bool,
    stop: &Stop,
) -> Result<Recommended> {
    let n = fused::list_len(n)?;
    let b = users.n_rows;
    let (mut ids, mut scores) = fused::result_buffers("recommend", b, n)?;
    if b == 0 {
        return Ok((ids, scores, explain.then(Vec::new)));
    }
    let tables = md.prune_tables.get_or_init(Box::default);
    let f = &md.filter;
    let pass = lowp::first_pass();
    let low = pass.enc().filter(|_| f.rank > 0).and_then(|enc| {
        tables.lowp[enc as usize]
            .get_or_init(|| {
                lowp::Packed::with_layout(
                    f.right_tile(0..f.n_items),
                    f.n_items,
                    f.rank,
                    Layout::Cols,
                    enc,
                )
            })
            .as_ref()
    });
    let view = View {
        norms: tables.norms.get_or_init(|| f.right_norms()),
        packed: match low {
            Some(_) => None,
            None => tables.packed.get_or_init(|| f.packed_right()).as_ref(),
        },
        lowp: low,
        pass,
    };
    let scorer = Scorer::new(md);
    let job = Job {
        sc: &scorer,
        view,
        users,
        n,
        filters,
        explain,
    };
    let mut chunk = (CHUNK_FLOATS / md.n_items).clamp(8, 256);
    if low.is_some() {
        // Whole low-precision blocks of 32 users.
        chunk = (chunk / lowp::BLOCK * lowp::BLOCK).max(lowp::BLOCK);
    }
    let doms = fused::by_user_chunks(
        b,
        n,
        chunk,
        &mut ids,
        &mut scores,
        stop,
        |rows, ids_c, scores_c| {
            let (heaps, records) = chunk_top_n(&job, rows);
            let mut dom = if explain {
                vec![-1i64; ids_c.len()]
            } else {
                Vec::new()
            };
            for (u, (mut heap, mut rec)) in heaps.into_iter().zip(records).enumerate() {
                let out = &mut ids_c[u * n..(u + 1) * n];
                heap.drain_into(out, &mut scores_c[u * n..(u + 1) * n]);
                if explain {
                    rec.sort_unstable();
                    for (d, &j) in dom[u * n..(u + 1) * n].iter_mut().zip(out.iter()) {
                        if j >= 0 {
                            // Users scored as one persona (no records): persona 0.
                            let at = rec.binary_search_by_key(&(j as u32), |&(i, _)| i);
                            *d = at.map_or(0, |t| rec[t].1 as i64);
                        }
                    }
                }
            }
            Ok(dom)
        },
    )?;
    Ok((ids, scores, explain.then(|| doms.concat())))
}

/// The heaps of one chunk of users (rows `rows` of `users`): both passes of the module docs,
/// user by user after one GEMM for the chunk's `t`; with `explain`, per user the dominant
/// persona of every exactly scored item, `(item, persona)` (none for one-persona users).
type Chunk = (Vec<TopK>, Vec<Vec<(u32, u16)>>);

/// What every chunk of one call shares: the scorer, the tables, the users and the request.
struct Job<'a> {
    sc: &'a Scorer<'a>,
    view: View<'a>,
    users: &'a CsrView<'a>,
    n: usize,
    filters: &'a Filters<'a>,
    explain: bool,
}

/// [`chunk_impl`] compiled for the widest vector unit this CPU has (its loops over items
/// vectorise; the default build targets baseline x86-64).
fn chunk_top_n(job: &Job, rows: Range<usize>) -> Chunk {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::isa::avx512f() {
            // SAFETY: the features chunk_avx512 is compiled for were detected on this CPU.
            return unsafe { chunk_avx512(job, rows) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { chunk_avx2(job, rows) };
        }
    }
    chunk_impl(job, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn chunk_avx512(job: &Job, rows: Range<usize>) -> Chunk {
    chunk_impl(job, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2(job: &Job, rows: Range<usize>) -> Chunk {
    chunk_impl(job, rows)
}

#[inline(always)]
fn chunk_impl(job: &Job, rows: Range<usize>) -> Chunk {
    let &Job {
        sc,
        view,
        users,
        n,
        filters,
        explain,
    } = job;
    let md = sc.model;
    let (r, a, n_items) = (md.filter.rank, md.space.att_dim, md.n_items);
    let st = sc.prepare(users, rows.clone());
    let m = st.m;
    // Per user: the history's x L (the sum of its personas' rows), then t's low-rank part.
    let mut total = vec![0f32; m * r];
    for u in 0..m {
        for p in st.first[u]..st.first[u + 1] {
            axpy(
                &mut total[u * r..(u + 1) * r],
                1.0,
                &st.low[p * r..(p + 1) * r],
            );
        }
    }
    // t's rows are `ldt` apart; per user, `(alpha, beta, abs)` bound its low-rank part's error:
    // `|t'_j - t_j| <= alpha p_j + beta q_j + abs` ([`lowp::Users::affine_bound`]), all zero
    // where t is exact.
    let mut t_buf = T_BUF.take();
    let (ldt, errs) = low_rank_t(md, view, &total, m, &mut t_buf);
    let t_all = &mut t_buf[..];
    let (pj, qj) = view
        .lowp
        .map_or((view.norms, view.norms), |w| (&w.p[..], &w.q[..]));
    let mut heaps: Vec<TopK> = (0..m).map(|_| TopK::new(n, n_items)).collect();
    let mut records: Vec<Vec<(u32, u16)>> = vec![Vec::new(); m];
    let mut ex = Exact::new(md, n_items);
    let mut votes: Vec<f32> = Vec::new();
    let mut eps: Vec<f32> = Vec::new();
    let mut at: Vec<usize> = Vec::new();
    // t's low-rank part (for Split), or lower bounds (one-persona users).
    let mut tl = vec![0f32; n_items];
    let mut entries: Vec<Entry> = Vec::new();
    let mut hi = vec![0f32; n_items];
    let mut cand: Vec<u32> = Vec::new();
    let mut exact: Vec<f32> = Vec::new();
    let mut entry0 = 0;
    let (mix, keep) = (md.mix, 1.0 - md.mix);
    let tile_width = match md.filter.sparse_votes() {
        true => TILE,
        false => n_items.max(1),
    };
    for (u, (heap, rec)) in heaps.iter_mut().zip(records.iter_mut()).enumerate() {
        let rec = explain.then_some(rec);
        let row = rows.start + u;
        let len = users.row(row).len();
        let ps = st.first[u]..st.first[u + 1];
        let np = ps.len();
        // The personas' item-item votes over every item (np x n_items), one pass over each
        // history item's row of S.
        entries.clear();
        entries.extend(
            st.entries[entry0..entry0 + len]
                .iter()
                .map(|&(i, p, x)| (i, p - ps.start as u32, x)),
        );
        entry0 += len;
        let t = &mut t_all[u * ldt..u * ldt + n_items];
        let (alpha, beta, abs) = errs[u];
        // The error bound of t's entry j (with `t` = t'_j): the low-rank part's, and the
        // widening against the roundings of adding the votes.
        let err = |t: f32, p: f32, q: f32| alpha * p + beta * q + abs + SLACK * t.abs();
        let mask = |t: &mut [f32]| {
            // Masked items are NaN from here on: TopK never keeps NaN.
            if let Some(ex) = &filters.exclude_items {
                for (s, &x) in t.iter_mut().zip(ex.iter()) {
                    if x {
                        *s = f32::NAN;
                    }
                }
            }
            if filters.exclude_seen {
                for &j in users.row(row) {
                    t[j as usize] = f32::NAN;
                }
            }
        };
        if sc.collapse || np < 2 {
            // s = t, summed in the fused scorer's order (the low-rank part, then the entries'
            // rows of S one by one): where t is exact, the same scores to the bit.
            md.filter.add_item_votes(&entries, 0..n_items, t, n_items);
            mask(t);
            #[cfg(target_arch = "x86_64")]
            if abs > 0.0 && np == 1 {
                // t' within err of t: rescore exactly the items whose upper bound reaches the
                // n-th best lower bound, the low-rank part in the fused scorer's order (our
                // kernels', which a low-precision pass requires) and the votes in the entries'
                // order: the fused scorer's scores, bit for bit.
                // Lower bounds in `tl`, upper in `hi` (loops that vectorise).
                for ((((lo, up), &t), &p), &q) in tl
                    .iter_mut()
                    .zip(hi.iter_mut())
                    .zip(t.iter())
                    .zip(pj)
                    .zip(qj)
                {
                    let e = err(t, p, q);
                    (*lo, *up) = (t - e, t + e);
                }
                let mut lower = TopK::new(n, n_items);
                lower.scan(&tl, 0);
                let cut = lower.threshold().unwrap_or(f32::NEG_INFINITY);
                cand.clear();
                at_least(&hi, cut, &mut cand);
                exact.resize(cand.len(), 0.0);
                // SAFETY: a low-precision pass runs only on CPUs with AVX2 and FMA; `cand`
                // indexes R's rows and `exact` holds one value per candidate.
                unsafe {
                    lowp::exact_dots(
                        &st.low[ps.start * r..ps.end * r],
                        md.filter.right_tile(0..n_items),
                        r,
                        None,
                        &cand,
                        &mut exact,
                    )
                };
                for (&j, &s) in cand.iter().zip(&exact) {
                    heap.push(md.filter.add_votes_of_item(&entries, j as usize, s), j);
                }
                continue;
            }
            heap.scan(t, 0);
            continue;
        }
        // Item by item tile, while the tile's votes stay in L2: the personas' item-item votes
        // (np rows n_items apart, kept for the exact pass), t's (in the fused scorer's order:
        // the low-rank part, then the personas' votes one by one; masked items NaN
        // throughout), and the upper bounds into `hi`:
        // keep (t + err) + mix max_k w_k (vS_k + |x_k L| |R_j|), widened.
        if votes.len() < np * n_items {
            votes.resize(np * n_items, 0.0);
        }
        mask(t);
        at.clear();
        eps.clear();
        eps.extend(ps.clone().map(|p| {
            let low = &st.low[p * r..(p + 1) * r];
            let s: f64 = low.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            (s.sqrt() * (1.0 + 1e-6)) as f32
        }));
        let eps_sum: f32 = eps.iter().sum();
        let norms = view.norms;
        for j0 in (0..n_items).step_by(tile_width) {
            let tile = j0..(j0 + tile_width).min(n_items);
            for k in 0..np {
                votes[k * n_items + tile.start..k * n_items + tile.end].fill(0.0);
            }
            md.filter.add_item_votes_from(
                &entries,
                tile.clone(),
                &mut votes[j0..],
                n_items,
                &mut at,
            );
            let (t, h) = (&mut t[tile.clone()], &mut hi[tile.clone()]);
            if r > 0 {
                tl[tile.clone()].copy_from_slice(t);
            }
            for k in 0..np {
                axpy(
                    t,
                    1.0,
                    &votes[k * n_items + tile.start..k * n_items + tile.end],
                );
            }
            h.fill(f32::NEG_INFINITY);
            let nt = &norms[tile.clone()];
            for (k, p) in ps.clone().enumerate() {
                let (wk, e) = (st.weight[p], eps[k]);
                let v = &votes[k * n_items + tile.start..k * n_items + tile.end];
                for ((h, &v), &nj) in h.iter_mut().zip(v).zip(nt) {
                    *h = h.max(wk * (v + e * nj));
                }
            }
            for (((h, &tj), &nj), (&p, &q)) in h
                .iter_mut()
                .zip(t.iter())
                .zip(nt)
                .zip(pj[tile.clone()].iter().zip(&qj[tile.clone()]))
            {
                let e = alpha * p + beta * q + abs;
                let slack = SLACK * (keep * (tj.abs() + e + eps_sum * nj) + mix * h.abs());
                // NaN (masked) stays NaN: no comparison admits it.
                *h = keep * (tj + e) + mix * *h + slack;
            }
        }
        let user = User {
            np,
            low: &st.low[ps.start * r..ps.end * r],
            emb: &st.emb[ps.start * a..ps.end * a],
            votes: &votes,
            mix: Mix {
                shift: &st.logit_shift[ps.clone()],
                weight: &st.weight[ps.clone()],
                inv_tau: 1.0 / md.tau,
                mix,
            },
        };
        // The seeds, the best items by t, first: their N-th exact score bounds the list's
        // from below.
        let mut seeds = TopK::new(n, n_items);
        seeds.scan(t, 0);
        let mut ids = vec![-1i64; n.min(n_items)];
        let mut top = vec![0f32; ids.len()];
        seeds.drain_into(&mut ids, &mut top);
        let first: Vec<u32> = ids.iter().filter(|&&j| j >= 0).map(|&j| j as u32).collect();
        let mut rec = rec;
        ex.score(&user, &first, heap, None, rec.as_deref_mut());
        for &j in &first {
            hi[j as usize] = f32::NAN;
        }
        let theta = heap.threshold().unwrap_or(f32::NEG_INFINITY);
        cand.clear();
        at_least(&hi, theta, &mut cand);
        if r > 0 {
            // The few items past the first bound, bounded again along x L (Split).
            let split = Split::new(&total[u * r..(u + 1) * r], user.low, r);
            let (lo_slack, mix64, keep64) = (split.dot_slack(r), f64::from(mix), f64::from(keep));
            cand.retain(|&j| {
                let j = j as usize;
                let (tj, nj) = (f64::from(t[j]), f64::from(view.norms[j]));
                let e = f64::from(alpha * pj[j] + beta * qj[j] + abs);
                let mut best = f64::NEG_INFINITY;
                let low = split.votes(f64::from(tl[j]), e + lo_slack * nj, nj);
                for (k, lk) in low.enumerate() {
                    let v = f64::from(votes[k * n_items + j]) + lk;
                    best = best.max(f64::from(st.weight[ps.start + k]) * v);
                }
                let slack = f64::from(SLACK)
                    * (keep64 * (tj.abs() + e + f64::from(eps_sum) * nj) + mix64 * best.abs());
                let b = (keep64 * (tj + e) + mix64 * best + slack) as f32;
                hi[j] = hi[j].min(b);
                hi[j] >= theta
            });
        }
        cand.sort_unstable_by(|&x, &y| hi[y as usize].total_cmp(&hi[x as usize]));
        ex.score(&user, &cand, heap, Some(&hi), rec);
    }
    T_BUF.set(t_buf);
    (heaps, records)
}

/// Appends to `out` the indices of the entries of `xs` at least `theta` (never NaN), in
/// increasing order: blocks of 16 tested by one vector compare, as few hold one.
#[inline(always)]
fn at_least(xs: &[f32], theta: f32, out: &mut Vec<u32>) {
    let mut j0 = 0;
    for block in xs.chunks(16) {
        if block.iter().fold(false, |any, &x| any | (x >= theta)) {
            for (g, &x) in block.iter().enumerate() {
                if x >= theta {
                    out.push((j0 + g) as u32);
                }
            }
        }
        j0 += block.len();
    }
}

thread_local! {
    /// `t` for a chunk (32 MiB), kept per thread across chunks: a fresh one costs a page fault
    /// per 4 KiB.
    static T_BUF: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `t`'s low-rank part `(x L) R^T` for a chunk's `m` users (`total`: their `x L` rows), its rows
/// `ldt` apart (returned second), and per user the coefficients `(alpha, beta, abs)` of its
/// error bound: `|t'_j - t_j| <= alpha p_j + beta q_j + abs` against the fp32 product in any
/// summation order, with `p`, `q` the low-precision table's per-item factors ([`lowp`]); all
/// zero where the part is exact (fp32: without that table, for a user whose bound does not
/// hold, and for everyone without a low-rank part).
fn low_rank_t(
    md: &AmpCf,
    view: View,
    total: &[f32],
    m: usize,
    t: &mut Vec<f32>,
) -> (usize, Vec<(f32, f32, f32)>) {
    let (r, n_items) = (md.filter.rank, md.n_items);
    let right = md.filter.right_tile(0..n_items);
    #[allow(unused_mut)]
    let mut errs = vec![(0f32, 0f32, 0f32); m];
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if let Some(w) = view.lowp {
        let ldt = w.w.len() / w.kp;
        let us = lowp::Users::with_layout(total, m, r, w.kp, Layout::Rows, w.enc);
        // Every value is written (the kernels store whole padded blocks).
        t.resize(us.m_pad * ldt, 0.0);
        // SAFETY: the table is used only where first_pass() chose `pass`, i.e. where it
        // runs.
        let pass = view.pass;
        unsafe { lowp::kernels::with_kernel(pass, || lowp::kernels::a_bt(pass, &us, w, t, ldt)) };
        for (u, e) in errs.iter_mut().enumerate() {
            let (alpha, beta) = us.affine_bound(u);
            // Both products stay far from f32's range (|h . w|, |h' . w'| <= c_u max |w|, |w'|),
            // or the user has no bound (a state that is not finite or past 1e30): exact then.
            if alpha.is_finite() && beta.is_finite() && f64::from(us.c[u]) * w.norm_max <= 1e30 {
                *e = (alpha, beta, lowp::ABS_SLACK);
            } else {
                let row = &mut t[u * ldt..u * ldt + n_items];
                gemm::a_bt(1, n_items, r, &total[u * r..(u + 1) * r], right, row);
            }
        }
        return (ldt, errs);
    }
    t.resize(m * n_items, 0.0);
    // Every value is written.
    match view.packed {
        Some(p) if r > 0 => p.a_bt(m, total, t),
        _ => gemm::a_bt(m, n_items, r, total, right, t),
    }
    (n_items, errs)
}

/// A user's personas' rows of `x L` split along their sum `u` (the `x L` of `t`):
/// `u_k = c_k u + w_k` with `w_k` orthogonal to `u`. Then `u_k . R_j = c_k (u . R_j) + w_k . R_j`,
/// where `u . R_j` is `t`'s low-rank part (computed for every item anyway) and `|w_k . R_j| <=
/// |w_k| |R_j'|` with `R_j'` the part of `R_j` orthogonal to `u`, of norm
/// `sqrt(|R_j|^2 - (u . R_j)^2 / |u|^2)`: Cauchy-Schwarz in the orthogonal complement only. Never
/// looser than `|u_k| |R_j|` (Cauchy-Schwarz in each part), and on Gowalla's default model it
/// leaves ~66 candidates past the seeds where the first bound left ~320. In f64, rounded outwards.
struct Split {
    /// `|u|`, rounded up (0 when `u` is 0).
    norm: f64,
    /// `(c_k, |w_k|)` per persona, `|w_k|` rounded up.
    parts: Vec<(f64, f64)>,
}

impl Split {
    fn new(u: &[f32], low: &[f32], r: usize) -> Self {
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum()
        };
        let uu = dot(u, u);
        let parts = low
            .chunks_exact(r)
            .map(|uk| {
                let c = if uu > 0.0 { dot(uk, u) / uu } else { 0.0 };
                let w: f64 = uk
                    .iter()
                    .zip(u)
                    .map(|(&x, &y)| (f64::from(x) - c * f64::from(y)).powi(2))
                    .sum();
                (c, w.sqrt() * (1.0 + 1e-9))
            })
            .collect();
        Self {
            norm: uu.sqrt() * (1.0 + 1e-9),
            parts,
        }
    }

    /// The bound on `|u . R_j|`'s f32 product against the exact one, per unit of `|R_j|`:
    /// at most `r` roundings of `2^-24` each of `|u| |R_j|`, doubled (and never below the
    /// bounds' own [`SLACK`]).
    fn dot_slack(&self, r: usize) -> f64 {
        self.norm * (r as f64 * f64::from(f32::EPSILON)).max(f64::from(SLACK))
    }

    /// Upper bounds of the personas' low-rank votes `u_k . R_j` for an item whose `u . R_j` is
    /// within `err` of `tl`, with `nj >= |R_j|`.
    fn votes(&self, tl: f64, err: f64, nj: f64) -> impl Iterator<Item = f64> + '_ {
        // |u . R_j| is at least `lo`, so |R_j'|^2 <= nj^2 - lo^2 / |u|^2.
        let lo = (tl.abs() - err).max(0.0);
        let perp = match self.norm > 0.0 {
            true => (nj * nj - (lo / self.norm).powi(2)).max(0.0).sqrt(),
            false => nj,
        };
        self.parts
            .iter()
            .map(move |&(c, w)| c * tl + c.abs() * err + w * perp)
    }
}

/// One bounded user as the exact pass reads them.
struct User<'a> {
    np: usize,
    low: &'a [f32],   // [np, r]: x_k L
    emb: &'a [f32],   // [np, a]: e_k
    votes: &'a [f32], // [np, n_items]: the personas' item-item votes
    mix: Mix<'a>,
}

/// The exact pass's scratch.
struct Exact<'a> {
    md: &'a AmpCf,
    val: Vec<f32>,
    cos: Vec<f32>,
}

impl<'a> Exact<'a> {
    fn new(md: &'a AmpCf, _n_items: usize) -> Self {
        Self {
            md,
            val: Vec::new(),
            cos: Vec::new(),
        }
    }

    /// Scores `items` exactly for `user` into `heap`, in order and block by block; with
    /// `upper`, stops at the first block whose first item's upper bound is below the heap's
    /// N-th score (`items` sorted by decreasing upper bound). With `rec`, records every scored
    /// item's dominant persona: the largest part `(1 - mix) v_k + mix a_k w_k v_k`, the first
    /// on ties, as [`AmpCf::explain`] computes it.
    #[inline(always)]
    fn score(
        &mut self,
        user: &User,
        items: &[u32],
        heap: &mut TopK,
        upper: Option<&[f32]>,
        mut rec: Option<&mut Vec<(u32, u16)>>,
    ) {
        let (md, np) = (self.md, user.np);
        let (r, a, n_items) = (md.filter.rank, md.space.att_dim, md.n_items);
        self.val.resize(np * BLOCK, 0.0);
        self.cos.resize(np * BLOCK, 0.0);
        let right = md.filter.right_tile(0..n_items);
        let space = &md.space.item_space;
        let mut out = [0f32; BLOCK];
        for block in items.chunks(BLOCK) {
            if let (Some(ub), Some(th)) = (upper, heap.threshold()) {
                if ub[block[0] as usize] < th {
                    break;
                }
            }
            let bl = block.len();
            let (val, cos) = (&mut self.val[..np * bl], &mut self.cos[..np * bl]);
            if r > 0 {
                gemm::a_rows_t(np, r, user.low, right, block, val);
            } else {
                val.fill(0.0);
            }
            for k in 0..np {
                let vs = &user.votes[k * n_items..(k + 1) * n_items];
                for (v, &j) in val[k * bl..(k + 1) * bl].iter_mut().zip(block) {
                    *v += vs[j as usize];
                }
            }
            gemm::a_rows_t(np, a, user.emb, space, block, cos);
            let row = &mut out[..bl];
            combine(row, cos, val, &user.mix);
            for (&s, &j) in row.iter().zip(block) {
                heap.push(s, j);
            }
            if let Some(rec) = rec.as_deref_mut() {
                // `combine` left the logits in `cos`.
                let m = &user.mix;
                for (g, &j) in block.iter().enumerate() {
                    let lg = |k: usize| cos[k * bl + g];
                    let mx = (0..np).map(lg).fold(f32::NEG_INFINITY, f32::max);
                    let den: f32 = (0..np).map(|k| (lg(k) - mx).exp()).sum();
                    let mut best = (f32::NEG_INFINITY, 0u16);
                    for k in 0..np {
                        let v = val[k * bl + g];
                        let a = (lg(k) - mx).exp() / den;
                        let part = blend(m.mix, v, a * m.weight[k] * v);
                        if part > best.0 {
                            best = (part, k as u16);
                        }
                    }
                    rec.push((j, best.1));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tests::rand_vec;

    /// The Split bound holds for every persona and item, and is tight where it should be:
    /// items along `u`, against it, along a persona's orthogonal part (where the bound is
    /// attained), nearly parallel to `u` (the cancellation in `|R_j'|`), and random ones; with
    /// `t`'s low-rank part in f32 or within a low-precision error. Never looser than
    /// Cauchy-Schwarz.
    #[test]
    fn split_bounds_every_persona_vote() {
        let mut seed = 17;
        for &(np, r) in &[(1usize, 1usize), (2, 3), (3, 16), (5, 64), (8, 448)] {
            let low = rand_vec(np * r, &mut seed);
            let mut u = vec![0f32; r];
            for uk in low.chunks_exact(r) {
                axpy(&mut u, 1.0, uk);
            }
            let sp = Split::new(&u, &low, r);
            let dot = |a: &[f32], b: &[f32]| -> f64 {
                a.iter()
                    .zip(b)
                    .map(|(&x, &y)| f64::from(x) * f64::from(y))
                    .sum()
            };
            let uu = dot(&u, &u);
            let mut items: Vec<Vec<f32>> = vec![u.clone(), u.iter().map(|x| -2.0 * x).collect()];
            for uk in low.chunks_exact(r) {
                let c = dot(uk, &u) / uu;
                let w: Vec<f32> = uk
                    .iter()
                    .zip(&u)
                    .map(|(&x, &y)| x - (c as f32) * y)
                    .collect();
                items.push(w.clone());
                items.push(w.iter().zip(&u).map(|(a, b)| 0.5 * a + 3.0 * b).collect());
                let tiny = rand_vec(r, &mut seed);
                items.push(u.iter().zip(&tiny).map(|(a, b)| a + 1e-4 * b).collect());
            }
            for _ in 0..20 {
                items.push(rand_vec(r, &mut seed));
            }
            for rj in &items {
                let nj = (dot(rj, rj).sqrt() * (1.0 + 1e-6)) as f32;
                let tl: f32 = u.iter().zip(rj).map(|(a, b)| a * b).sum();
                for lowp_err in [0.0f64, 1e-3] {
                    // A first pass off by at most lowp_err: t' anywhere within it.
                    for shift in [-1.0, 0.0, 1.0] {
                        let t = f64::from(tl) + shift * lowp_err;
                        let err = lowp_err + sp.dot_slack(r) * f64::from(nj);
                        let bounds: Vec<f64> = sp.votes(t, err, f64::from(nj)).collect();
                        for (k, uk) in low.chunks_exact(r).enumerate() {
                            let exact = dot(uk, rj);
                            let cs = dot(uk, uk).sqrt() * f64::from(nj);
                            assert!(bounds[k] >= exact, "{np} {r} {k}: {} < {exact}", bounds[k]);
                            assert!(bounds[k] <= cs + 2.0 * err + 1e-9 * cs, "{np} {r} {k}");
                        }
                    }
                }
            }
        }
    }
}
