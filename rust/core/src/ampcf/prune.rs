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
//! 1. **bounds**: the personas' item-item votes over every item (each history item's row of
//!    `S` read once, sequentially), `t`, and per item the upper bound
//!    `(1 - mix) t_j + mix max_k w_k (vS_jk + |x_k L| |R_j|)`. A user with one persona (every
//!    user when `mix = 0` or K = 1) has `s = t`, exact: their list is `t`'s.
//! 2. **seeds**: the N best items by `t`, scored exactly (the personas' full low-rank votes
//!    and cosines, then the fused scorer's `combine`): their N-th exact score `theta` is at most
//!    the list's N-th score.
//! 3. **candidates**: the items whose upper bound reaches `theta`, by decreasing bound, scored
//!    exactly in blocks until the next bound is below the list's current N-th score: no later
//!    item can enter.
//!
//! Every item whose exact score reaches the list's N-th is scored exactly, so the list is the
//! exact one (ties aside: the scores may differ from the fused scorer's in the last bits, as
//! the sums run in another order). Bounds are widened by [`SLACK`] times the magnitudes they
//! add, against rounding. On Gowalla's default model ~380 of 41k items per user reach step 3
//! (BENCHMARKS.md); `Exact` needs no `users x K x items` tensor, and the bound pass holds
//! `np x items` votes for one user at a time.

use std::ops::Range;

use super::{blend, combine, AmpCf, Mix, Scorer};
use crate::csr::CsrView;
use crate::error::Result;
use crate::filter::{axpy, Entry};
use crate::fused::{self, Filters, Recommended, TileScorer};
use crate::gemm::{self, PackedBt};
use crate::threads::Stop;
use crate::topk::TopK;

/// Floats of `t` a chunk of users holds (`users x n_items`, 32 MiB per thread): the chunk's
/// users are one GEMM with `R`, so more users amortise streaming `R` from memory.
const CHUNK_FLOATS: usize = 1 << 23;
/// Candidates scored together in the exact pass.
const BLOCK: usize = 64;
/// Relative widening of the bounds against rounding (f32 sums of a few hundred products).
const SLACK: f32 = 1e-4;

/// What the pruned top-N reads of the model besides its tensors, computed on first use.
#[derive(Debug)]
pub(super) struct Tables {
    /// `|R_j|` per item, rounded up.
    norms: Vec<f32>,
    /// `R` packed for the AVX-512 kernel of `t` (None without AVX-512F or a low-rank part).
    packed: Option<PackedBt>,
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
    let tables = md.prune_tables.get_or_init(|| {
        Box::new(Tables {
            norms: md.filter.right_norms(),
            packed: md.filter.packed_right(),
        })
    });
    let (norms, packed) = (&tables.norms[..], tables.packed.as_ref());
    let scorer = Scorer::new(md);
    let chunk = (CHUNK_FLOATS / md.n_items).clamp(8, 256);
    let doms = fused::by_user_chunks(
        b,
        n,
        chunk,
        &mut ids,
        &mut scores,
        stop,
        |rows, ids_c, scores_c| {
            let (heaps, records) =
                chunk_top_n(&scorer, norms, packed, users, rows, n, filters, explain);
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

/// [`chunk_impl`] compiled for the widest vector unit this CPU has (its loops over items
/// vectorise; the default build targets baseline x86-64).
#[allow(clippy::too_many_arguments)]
fn chunk_top_n(
    sc: &Scorer,
    norms: &[f32],
    packed: Option<&PackedBt>,
    users: &CsrView,
    rows: Range<usize>,
    n: usize,
    filters: &Filters,
    explain: bool,
) -> Chunk {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the features chunk_avx512 is compiled for were detected on this CPU.
            return unsafe { chunk_avx512(sc, norms, packed, users, rows, n, filters, explain) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { chunk_avx2(sc, norms, packed, users, rows, n, filters, explain) };
        }
    }
    chunk_impl(sc, norms, packed, users, rows, n, filters, explain)
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn chunk_avx512(
    sc: &Scorer,
    norms: &[f32],
    packed: Option<&PackedBt>,
    users: &CsrView,
    rows: Range<usize>,
    n: usize,
    filters: &Filters,
    explain: bool,
) -> Chunk {
    chunk_impl(sc, norms, packed, users, rows, n, filters, explain)
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2(
    sc: &Scorer,
    norms: &[f32],
    packed: Option<&PackedBt>,
    users: &CsrView,
    rows: Range<usize>,
    n: usize,
    filters: &Filters,
    explain: bool,
) -> Chunk {
    chunk_impl(sc, norms, packed, users, rows, n, filters, explain)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn chunk_impl(
    sc: &Scorer,
    norms: &[f32],
    packed: Option<&PackedBt>,
    users: &CsrView,
    rows: Range<usize>,
    n: usize,
    filters: &Filters,
    explain: bool,
) -> Chunk {
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
    let mut t_all = vec![0f32; m * n_items];
    if r > 0 {
        match packed {
            Some(p) => p.a_bt(m, &total, &mut t_all),
            None => gemm::a_bt(
                m,
                n_items,
                r,
                &total,
                md.filter.right_tile(0..n_items),
                &mut t_all,
            ),
        }
    }
    let mut heaps: Vec<TopK> = (0..m).map(|_| TopK::new(n, n_items)).collect();
    let mut records: Vec<Vec<(u32, u16)>> = vec![Vec::new(); m];
    let mut ex = Exact::new(md, n_items);
    let mut votes: Vec<f32> = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut hi = vec![0f32; n_items];
    let mut entry0 = 0;
    let (mix, keep) = (md.mix, 1.0 - md.mix);
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
        let t = &mut t_all[u * n_items..(u + 1) * n_items];
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
            // s = t, exact, summed in the fused scorer's order (the low-rank part, then the
            // entries' rows of S one by one): the same scores to the bit.
            md.filter.add_item_votes(&entries, 0..n_items, t);
            mask(t);
            heap.scan(t, 0);
            continue;
        }
        votes.clear();
        votes.resize(np * n_items, 0.0);
        md.filter.add_item_votes(&entries, 0..n_items, &mut votes);
        for k in 0..np {
            axpy(t, 1.0, &votes[k * n_items..(k + 1) * n_items]);
        }
        mask(t);
        // Upper bounds, into `hi`: keep t + mix max_k w_k (vS_k + |x_k L| |R_j|), widened.
        hi.fill(f32::NEG_INFINITY);
        let mut eps_sum = 0f32;
        for (k, p) in ps.clone().enumerate() {
            let low = &st.low[p * r..(p + 1) * r];
            let s: f64 = low.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            let e = (s.sqrt() * (1.0 + 1e-6)) as f32;
            eps_sum += e;
            let wk = st.weight[p];
            let v = &votes[k * n_items..(k + 1) * n_items];
            for ((h, &v), &nj) in hi.iter_mut().zip(v).zip(norms) {
                *h = h.max(wk * (v + e * nj));
            }
        }
        for ((h, &tj), &nj) in hi.iter_mut().zip(t.iter()).zip(norms) {
            let slack = SLACK * (keep * (tj.abs() + eps_sum * nj) + mix * h.abs());
            // NaN (masked) stays NaN: no comparison admits it.
            *h = keep * tj + mix * *h + slack;
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
        let mut cand: Vec<u32> = (0..n_items as u32)
            .filter(|&j| hi[j as usize] >= theta)
            .collect();
        cand.sort_unstable_by(|&x, &y| hi[y as usize].total_cmp(&hi[x as usize]));
        ex.score(&user, &cand, heap, Some(&hi), rec);
    }
    (heaps, records)
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
    gr: Vec<f32>,
    gz: Vec<f32>,
    val: Vec<f32>,
    cos: Vec<f32>,
}

impl<'a> Exact<'a> {
    fn new(md: &'a AmpCf, _n_items: usize) -> Self {
        Self {
            md,
            gr: vec![0f32; BLOCK * md.filter.rank],
            gz: vec![0f32; BLOCK * md.space.att_dim],
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
            for (g, &j) in block.iter().enumerate() {
                let j = j as usize;
                self.gr[g * r..(g + 1) * r].copy_from_slice(&right[j * r..(j + 1) * r]);
                self.gz[g * a..(g + 1) * a].copy_from_slice(&space[j * a..(j + 1) * a]);
            }
            let (val, cos) = (&mut self.val[..np * bl], &mut self.cos[..np * bl]);
            if r > 0 {
                gemm::a_bt(np, bl, r, user.low, &self.gr[..bl * r], val);
            } else {
                val.fill(0.0);
            }
            for k in 0..np {
                let vs = &user.votes[k * n_items..(k + 1) * n_items];
                for (v, &j) in val[k * bl..(k + 1) * bl].iter_mut().zip(block) {
                    *v += vs[j as usize];
                }
            }
            gemm::a_bt(np, bl, a, user.emb, &self.gz[..bl * a], cos);
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
