//! Calibrated reranking (Steck, "Calibrated Recommendations", RecSys 2018) and calibration
//! metrics, over one or several category attributes (genre, decade, source...).
//!
//! Definitions, stated once (natural logarithms throughout), per attribute a:
//! - Item categories: an items x categories matrix whose row i is item i's category
//!   distribution c_a(g|i) (non-negative, summing to 1; an empty row means "no category"). With
//!   `normalize_rows`, rows of 0/1 flags are divided by their sums (three genres: 1/3 each).
//! - Target p_a(g|u): given directly (dense, rows summing to 1, or all zero), or from the user's
//!   history H(u) with per-interaction weights h_ui >= 0: p_a(g|u) = sum_i h_ui c_a(g|i),
//!   normalised. Users whose history holds fewer than `min_history` interactions get no target;
//!   with `prior_weight` = beta > 0, a history target becomes Steck's p~ = beta p0 + (1 - beta) p,
//!   where p0 is the attribute's prior (default: the catalogue's category distribution).
//! - List distribution q_a(g|u) of a list L (positions r = 0, 1, ...; -1 padding skipped) with
//!   rank weights w_r (1, or 1 / log2(r + 2) with rank weighting):
//!   q_a(g|u) = sum_r w_r c_a(g|L_r) / sum_r w_r. Items without categories dilute q.
//! - Smoothed q~ = (1 - s) q + s p with the smoothing s in (0, 1); miscalibration
//!   C_KL,a = KL(p_a || q~_a) = sum over g with p(g) > 0 of p(g) ln(p(g) / q~(g)). The empty
//!   list has C_KL = -ln s.
//! - Objective of a list: (1 - sum_a lambda_a) * sum of relevance - sum_a lambda_a * C_KL,a
//!   (sum_a lambda_a <= 1), maximised greedily: each step appends the candidate that maximises
//!   the objective of the list so far plus that candidate (ties go to the earlier candidate
//!   column). Relevance is the score after the per-user normalisation ([`Normalize`]), so one
//!   lambda means the same across models. An attribute without a target for a user (no
//!   categorised history) contributes no term for that user.
//! - All lambdas 0, or a user without any target: the plain top-n, i.e. the candidates sorted by
//!   raw score, descending, ties in input order.
//!
//! Speed: writing W for the total rank weight and m(g) for the list's category mass,
//! W q~(g) = (1 - s) m(g) + s W p(g). Every candidate at step k gets the same rank weight, so W
//! after the step is the same for all of them and only the terms of the candidate's own
//! categories differ: each step costs O(categories of the item) logarithms per candidate.

use rayon::prelude::*;

use crate::csr::CsrView;
use crate::error::{buffer, Result};
use crate::fused::{list_len, result_buffers};
use crate::threads::Stop;
use crate::{invalid, vmath};

/// How raw scores become relevance, per user over that user's valid candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalize {
    /// Relevance = raw score.
    None,
    /// (s - min) / (max - min); all zeros when every score is equal.
    MinMax,
    /// exp(s - max) / sum exp(s - max): relevance sums to 1 over the candidates.
    Softmax,
}

impl Normalize {
    /// "none", "minmax" or "softmax".
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "minmax" => Ok(Self::MinMax),
            "softmax" => Ok(Self::Softmax),
            _ => Err(invalid!(
                "normalize must be 'none', 'minmax' or 'softmax', got {s:?}"
            )),
        }
    }
}

/// An items x categories matrix whose rows are distributions, owned and validated.
#[derive(Clone, Debug)]
pub struct ItemCategories {
    csr: CsrView<'static>,
    values: Vec<f64>,
}

impl ItemCategories {
    /// Checks that every entry is non-negative and every row sums to 1 within 1e-4 (or is empty
    /// or all zero); with `normalize_rows`, rows are first divided by their sums.
    pub fn new(name: &str, csr: CsrView<'_>, normalize_rows: bool) -> Result<Self> {
        let mut values = Vec::with_capacity(csr.nnz());
        for i in 0..csr.n_rows {
            let start = values.len();
            for (_, v) in csr.row_iter(i) {
                if v < 0.0 {
                    return Err(invalid!(
                        "{name}: item {i} has a negative category weight {v}"
                    ));
                }
                values.push(v);
            }
            let sum: f64 = values[start..].iter().sum();
            if normalize_rows && sum > 0.0 {
                values[start..].iter_mut().for_each(|v| *v /= sum);
            } else if sum != 0.0 && (sum - 1.0).abs() > 1e-4 {
                return Err(invalid!(
                    "{name}: the row of item {i} sums to {sum}, not 1 (each row must be the \
                     item's category distribution; pass normalize_rows=True for 0/1 flags)"
                ));
            }
        }
        Ok(Self {
            csr: csr.into_owned(),
            values,
        })
    }

    pub fn n_items(&self) -> usize {
        self.csr.n_rows
    }

    pub fn n_categories(&self) -> usize {
        self.csr.n_cols
    }

    /// `(category, weight)` of item `i`.
    #[inline]
    fn item(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let vals = self.row_values(i);
        self.csr
            .row(i)
            .iter()
            .zip(vals)
            .map(|(&g, &c)| (g as usize, c))
    }

    #[inline]
    fn row_values(&self, i: usize) -> &[f64] {
        &self.values[self.csr.row_range(i)]
    }

    /// The category distribution of the whole catalogue (uniform when no item has one).
    fn catalogue_distribution(&self) -> Vec<f64> {
        let g = self.n_categories();
        let mut mass = vec![0f64; g];
        for i in 0..self.n_items() {
            for (c, v) in self.item(i) {
                mass[c] += v;
            }
        }
        let s: f64 = mass.iter().sum();
        if s > 0.0 {
            mass.iter_mut().for_each(|v| *v /= s);
        } else {
            mass.fill(1.0 / g.max(1) as f64);
        }
        mass
    }
}

/// One category attribute of a reranker.
#[derive(Clone, Debug)]
pub struct Attribute {
    pub cats: ItemCategories,
    /// Weight of this attribute's miscalibration, in [0, 1].
    pub lambda: f64,
    /// p0 of Steck's prior, one weight per category, summing to 1.
    pub prior: Vec<f64>,
}

impl Attribute {
    /// `prior` defaults to the catalogue's category distribution.
    pub fn new(cats: ItemCategories, lambda: f64, prior: Option<Vec<f64>>) -> Result<Self> {
        let g = cats.n_categories();
        let prior = match prior {
            None => cats.catalogue_distribution(),
            Some(p) => {
                let bad = p.len() != g
                    || p.iter().any(|x| !x.is_finite() || *x < 0.0)
                    || (g > 0 && (p.iter().sum::<f64>() - 1.0).abs() > 1e-4);
                if bad {
                    return Err(invalid!(
                        "prior: must hold {g} finite non-negative weights (one per category) \
                         summing to 1"
                    ));
                }
                p
            }
        };
        Ok(Self {
            cats,
            lambda,
            prior,
        })
    }
}

/// Settings shared by every attribute of a reranker.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// s of q~ = (1 - s) q + s p, in (0, 1).
    pub smoothing: f64,
    /// Weight list positions by 1 / log2(r + 2) in q.
    pub rank_weighting: bool,
    pub normalize: Normalize,
    /// Users with fewer history interactions get no target (their lists pass through); >= 0.
    pub min_history: i64,
    /// beta of p~ = beta p0 + (1 - beta) p for history targets, in [0, 1).
    pub prior_weight: f64,
}

/// Where p(g|u) comes from.
#[derive(Clone, Debug)]
pub enum Target<'a> {
    /// Users x items history, with optional per-interaction weights (>= 0).
    History(CsrView<'a>),
    /// Per attribute, dense `rows x n_categories` distributions, row-major.
    Dense(Vec<&'a [f32]>),
}

/// Greedy calibrated reranker: validated attributes and settings, built once, used for many
/// batches.
#[derive(Clone, Debug)]
pub struct Reranker {
    attrs: Vec<Attribute>,
    cfg: Config,
    sigs: Signatures,
}

/// The catalogue's category vectors, precomputed once per reranker for the greedy: every
/// distinct (attribute, category, weight) is a key, every distinct vector of keys (an item's
/// categories in all attributes) a signature. Items with one signature have the same gain at
/// every greedy step, and a signature's keys are its terms.
#[derive(Clone, Debug, Default)]
struct Signatures {
    of_item: Vec<u32>,
    /// Keys of signature k: `keys[start[k]..start[k + 1]]`.
    start: Vec<u32>,
    keys: Vec<u32>,
    key_attr: Vec<u16>,
    key_cat: Vec<u32>,
    key_c: Vec<f64>,
}

impl Signatures {
    fn new(attrs: &[Attribute]) -> Self {
        use std::collections::HashMap;
        let n_items = attrs.first().map_or(0, |a| a.cats.n_items());
        let mut s = Signatures {
            start: vec![0],
            ..Default::default()
        };
        let mut key_ids: HashMap<(u16, u32, u64), u32> = HashMap::new();
        let mut sig_ids: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut keys = Vec::new();
        for i in 0..n_items {
            keys.clear();
            for (a, attr) in attrs.iter().enumerate() {
                for (g, c) in attr.cats.item(i) {
                    let k = *key_ids
                        .entry((a as u16, g as u32, c.to_bits()))
                        .or_insert_with(|| {
                            s.key_attr.push(a as u16);
                            s.key_cat.push(g as u32);
                            s.key_c.push(c);
                            (s.key_c.len() - 1) as u32
                        });
                    keys.push(k);
                }
            }
            let sig = *sig_ids.entry(keys.clone()).or_insert_with(|| {
                s.keys.extend_from_slice(&keys);
                s.start.push(s.keys.len() as u32);
                (s.start.len() - 2) as u32
            });
            s.of_item.push(sig);
        }
        s
    }

    fn n_sigs(&self) -> usize {
        self.start.len() - 1
    }

    #[inline]
    fn keys_of(&self, sig: usize) -> &[u32] {
        &self.keys[self.start[sig] as usize..self.start[sig + 1] as usize]
    }
}

/// Reranked lists (`batch x n`, row-major, padded with -1 / -inf) with the original scores, and
/// per-user, per-attribute C_KL (`batch x attributes`) of the plain top-n and of the reranked
/// list.
#[derive(Debug, Clone, Default)]
pub struct Reranked {
    pub ids: Vec<i64>,
    pub scores: Vec<f32>,
    pub ckl_before: Vec<f64>,
    pub ckl_after: Vec<f64>,
}

fn check_lambdas(lambdas: &[f64]) -> Result<()> {
    for &l in lambdas {
        if !(0.0..=1.0).contains(&l) {
            return Err(invalid!("lambda must lie in [0, 1], got {l}"));
        }
    }
    let s: f64 = lambdas.iter().sum();
    if s > 1.0 + 1e-12 {
        return Err(invalid!(
            "the lambdas of all attributes must sum to at most 1 (relevance keeps 1 - sum), got {s}"
        ));
    }
    Ok(())
}

impl Reranker {
    /// Validates the attributes (at least one, all over the same items) and the settings.
    pub fn new(attrs: Vec<Attribute>, cfg: Config) -> Result<Self> {
        let first = attrs
            .first()
            .ok_or_else(|| invalid!("item_categories: give at least one category attribute"))?;
        let n_items = first.cats.n_items();
        if let Some(a) = attrs.iter().find(|a| a.cats.n_items() != n_items) {
            return Err(invalid!(
                "item_categories: every attribute must cover the same {n_items} items, one has {}",
                a.cats.n_items()
            ));
        }
        check_lambdas(&attrs.iter().map(|a| a.lambda).collect::<Vec<_>>())?;
        if !(cfg.smoothing > 0.0 && cfg.smoothing < 1.0) {
            return Err(invalid!(
                "smoothing must lie in (0, 1), got {}",
                cfg.smoothing
            ));
        }
        if cfg.min_history < 0 {
            return Err(invalid!(
                "min_history must be >= 0, got {}",
                cfg.min_history
            ));
        }
        if !(0.0..1.0).contains(&cfg.prior_weight) {
            return Err(invalid!(
                "prior_weight must lie in [0, 1) (1 would ignore every history), got {}",
                cfg.prior_weight
            ));
        }
        let sigs = Signatures::new(&attrs);
        Ok(Self { attrs, cfg, sigs })
    }

    pub fn n_items(&self) -> usize {
        self.attrs[0].cats.n_items()
    }

    pub fn attributes(&self) -> &[Attribute] {
        &self.attrs
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn check_target(&self, target: &Target, rows: usize) -> Result<()> {
        match target {
            Target::History(h) => {
                if h.n_rows != rows {
                    return Err(invalid!(
                        "history has {} rows but there are {rows} users",
                        h.n_rows
                    ));
                }
                if h.n_cols != self.n_items() {
                    return Err(invalid!(
                        "history has {} columns but item_categories has {} items",
                        h.n_cols,
                        self.n_items()
                    ));
                }
                h.require_non_negative("history")
            }
            Target::Dense(ps) => {
                if ps.len() != self.attrs.len() {
                    return Err(invalid!(
                        "p: expected one matrix per attribute ({}), got {}",
                        self.attrs.len(),
                        ps.len()
                    ));
                }
                for (p, a) in ps.iter().zip(&self.attrs) {
                    let g = a.cats.n_categories();
                    if Some(p.len()) != rows.checked_mul(g) {
                        return Err(invalid!(
                            "p: expected shape ({rows}, {g}) (users x categories), got {} values",
                            p.len()
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// Fills `sc.attrs[a].p` with user `u`'s target of every attribute; returns whether the user
    /// has any target.
    fn fill_target(&self, target: &Target, u: usize, sc: &mut Scratch) -> Result<bool> {
        let mut any = false;
        for (a, (attr, s)) in self.attrs.iter().zip(sc.attrs.iter_mut()).enumerate() {
            let g = attr.cats.n_categories();
            let p = &mut s.p;
            p.fill(0.0);
            s.has = false;
            match target {
                Target::Dense(ps) => {
                    let row = &ps[a][u * g..(u + 1) * g];
                    let mut sum = 0f64;
                    for (k, &v) in row.iter().enumerate() {
                        if !v.is_finite() || v < 0.0 {
                            return Err(invalid!(
                                "p: row {u}, category {k} is {v}; p must be finite and \
                                 non-negative"
                            ));
                        }
                        sum += v as f64;
                    }
                    if sum > 0.0 {
                        if (sum - 1.0).abs() > 1e-4 {
                            return Err(invalid!(
                                "p: row {u} sums to {sum}, not 1 (or 0 for a user without a \
                                 target)"
                            ));
                        }
                        for (o, &v) in p.iter_mut().zip(row) {
                            *o = v as f64 / sum;
                        }
                        s.has = true;
                    }
                }
                Target::History(h) => {
                    if (h.row(u).len() as i64) < self.cfg.min_history {
                        continue;
                    }
                    for (i, w) in h.row_iter(u) {
                        for (c, v) in attr.cats.item(i) {
                            p[c] += w * v;
                        }
                    }
                    let sum: f64 = p.iter().sum();
                    if sum > 0.0 {
                        let beta = self.cfg.prior_weight;
                        for (o, &p0) in p.iter_mut().zip(&attr.prior) {
                            *o = beta * p0 + (1.0 - beta) * (*o / sum);
                        }
                        s.has = true;
                    } else {
                        p.fill(0.0);
                    }
                }
            }
            any |= s.has;
        }
        Ok(any)
    }

    /// Greedy calibrated reranking of `rows` users with `width` candidates each, into lists of
    /// `n`. `lambdas` overrides the attributes' lambdas for this call.
    #[allow(clippy::too_many_arguments)]
    pub fn rerank(
        &self,
        candidates: &[i64],
        scores: &[f32],
        rows: usize,
        target: &Target,
        n: i64,
        lambdas: Option<&[f64]>,
        stop: &Stop,
    ) -> Result<Reranked> {
        let n = list_len(n)?;
        let width = self.check_lists("candidates", candidates, rows)?;
        if scores.len() != candidates.len() {
            return Err(invalid!(
                "scores: expected the shape of candidates ({rows}, {width}), got {} values",
                scores.len()
            ));
        }
        let lambdas: Vec<f64> = match lambdas {
            Some(l) if l.len() != self.attrs.len() => {
                return Err(invalid!(
                    "lam: expected one lambda per attribute ({}), got {}",
                    self.attrs.len(),
                    l.len()
                ))
            }
            Some(l) => l.to_vec(),
            None => self.attrs.iter().map(|a| a.lambda).collect(),
        };
        check_lambdas(&lambdas)?;
        self.check_target(target, rows)?;
        let na = self.attrs.len();
        let (mut ids, mut out) = result_buffers("rerank", rows, n)?;
        let mut before = buffer("rerank", rows.checked_mul(na), 0f64)?;
        let mut after = buffer("rerank", rows.checked_mul(na), 0f64)?;
        if rows == 0 {
            return Ok(Reranked::default_with(ids, out, before, after));
        }
        const BLOCK: usize = 1024;
        ids.par_chunks_mut(BLOCK * n)
            .zip(out.par_chunks_mut(BLOCK * n))
            .zip(before.par_chunks_mut(BLOCK * na))
            .zip(after.par_chunks_mut(BLOCK * na))
            .enumerate()
            .try_for_each_init(
                || Scratch::new(&self.attrs),
                |sc, (b, (((ids_b, out_b), bef_b), aft_b))| {
                    stop.check()?;
                    for k in 0..ids_b.len() / n {
                        let u = b * BLOCK + k;
                        let c = &candidates[u * width..(u + 1) * width];
                        let s = &scores[u * width..(u + 1) * width];
                        self.rerank_user(
                            u,
                            c,
                            s,
                            target,
                            n,
                            &lambdas,
                            sc,
                            (
                                &mut ids_b[k * n..(k + 1) * n],
                                &mut out_b[k * n..(k + 1) * n],
                            ),
                            (
                                &mut bef_b[k * na..(k + 1) * na],
                                &mut aft_b[k * na..(k + 1) * na],
                            ),
                        )?;
                    }
                    Ok(())
                },
            )?;
        Ok(Reranked::default_with(ids, out, before, after))
    }

    /// Width of `rows` lists held in `ids`, checking every id is an item or -1.
    fn check_lists(&self, name: &str, ids: &[i64], rows: usize) -> Result<usize> {
        let width = ids.len().checked_div(rows).unwrap_or(0);
        if rows * width != ids.len() {
            return Err(invalid!(
                "{name}: {} values do not form {rows} rows",
                ids.len()
            ));
        }
        let n_items = self.n_items();
        if let Some(pos) = ids.iter().position(|&x| x < -1 || x >= n_items as i64) {
            return Err(invalid!(
                "{name}: row {}, column {} has item id {}, outside 0..{n_items} (the rows of \
                 item_categories); use -1 for padding",
                pos / width.max(1),
                pos % width.max(1),
                ids[pos]
            ));
        }
        Ok(width)
    }

    #[allow(clippy::too_many_arguments)]
    fn rerank_user(
        &self,
        u: usize,
        cands: &[i64],
        scores: &[f32],
        target: &Target,
        n: usize,
        lambdas: &[f64],
        sc: &mut Scratch,
        (ids_u, out_u): (&mut [i64], &mut [f32]),
        (before, after): (&mut [f64], &mut [f64]),
    ) -> Result<()> {
        sc.valid.clear();
        sc.sorted.clear();
        for (j, (&id, &s)) in cands.iter().zip(scores).enumerate() {
            if id < 0 {
                continue;
            }
            if !s.is_finite() {
                return Err(invalid!(
                    "scores: row {u}, column {j} is {s}; scores of real candidates must be \
                     finite (use id -1 for padding)"
                ));
            }
            sc.valid.push(j);
            sc.sorted.push(id);
        }
        sc.sorted.sort_unstable();
        if let Some(w) = sc.sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid!(
                "candidates: row {u} lists item {} more than once",
                w[0]
            ));
        }
        let has_target = self.fill_target(target, u, sc)?;
        // Plain order: by raw score, descending, ties to the earlier column; only the first
        // k_max are needed, so select them before sorting.
        let k_max = n.min(sc.valid.len());
        let by_score = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
        sc.plain.clear();
        sc.plain.extend_from_slice(&sc.valid);
        if k_max > 0 && k_max < sc.plain.len() {
            sc.plain.select_nth_unstable_by(k_max - 1, by_score);
        }
        sc.plain.truncate(k_max);
        sc.plain.sort_unstable_by(by_score);
        for (a, (attr, s)) in self.attrs.iter().zip(sc.attrs.iter_mut()).enumerate() {
            let items = sc.plain.iter().map(|&j| cands[j]);
            before[a] = list_kl(items, &s.p, &attr.cats, &self.cfg, &mut s.m);
        }
        sc.chosen.clear();
        if !has_target || lambdas.iter().all(|&l| l == 0.0) {
            sc.chosen.extend_from_slice(&sc.plain);
        } else {
            normalise(
                self.cfg.normalize,
                sc.valid.iter().map(|&j| scores[j]),
                &mut sc.rel,
            );
            self.greedy(cands, lambdas, k_max, sc);
        }
        for (a, (attr, s)) in self.attrs.iter().zip(sc.attrs.iter_mut()).enumerate() {
            let items = sc.chosen.iter().map(|&j| cands[j]);
            after[a] = list_kl(items, &s.p, &attr.cats, &self.cfg, &mut s.m);
        }
        for (k, &j) in sc.chosen.iter().enumerate() {
            ids_u[k] = cands[j];
            out_u[k] = scores[j];
        }
        Ok(())
    }

    /// Steck's greedy over `sc.valid` (candidate columns in input order) with relevance
    /// `sc.rel`; fills `sc.chosen` with candidate columns.
    ///
    /// The objective gain of candidate t at a step is `(1 - sum lam) rel_t + delta_t`, where
    /// `delta_t` sums one term per (attribute, category of t's item) that depends only on the
    /// category and its weight c(g|i). So:
    /// - candidates whose items have identical category vectors (in every attribute) form a
    ///   group whose members differ only by relevance: each step evaluates one leader per group
    ///   (highest relevance, then earliest column);
    /// - each step computes every distinct term once, over flat arrays: the list's base for
    ///   each category in play, then each term's new value, two batches of logarithms
    ///   ([`vmath::ln_in_place`], vectorised), with lambda and p(g) folded into the terms.
    ///
    /// Ties in the objective go to the earliest column, exactly as evaluating every candidate.
    fn greedy(&self, cands: &[i64], lambdas: &[f64], k_max: usize, sc: &mut Scratch) {
        let s = self.cfg.smoothing;
        let rel_weight = 1.0 - lambdas.iter().sum::<f64>();
        sc.rel.iter_mut().for_each(|r| *r *= rel_weight);
        let sigs = &self.sigs;
        // Groups: the candidates of one signature, in column order (`next`).
        let c = &mut sc.cand;
        c.start(sigs.n_sigs(), sc.valid.len());
        for (t, &j) in sc.valid.iter().enumerate() {
            c.add(t, sigs.of_item[cands[j] as usize]);
        }
        // Terms: each group's keys in play (p(g) > 0 and lambda > 0), distinct terms shared.
        let f = &mut sc.flat;
        f.clear(sigs.key_c.len());
        sc.attrs.iter_mut().for_each(AttrScratch::reset_slots);
        for gi in 0..c.sig.len() {
            let from = c.terms.len();
            for &key in sigs.keys_of(c.sig[gi] as usize) {
                let a = sigs.key_attr[key as usize] as usize;
                let st = &mut sc.attrs[a];
                let g = sigs.key_cat[key as usize] as usize;
                if st.has && lambdas[a] != 0.0 && st.p[g] > 0.0 {
                    let c_key = sigs.key_c[key as usize];
                    c.terms.push(f.term(st, key, g, c_key, lambdas[a], s));
                }
            }
            c.term_range.push((from as u32, c.terms.len() as u32));
        }
        let zero = f.term_slot.len() as u32;
        c.lead(&sc.rel, zero);
        let mut wsum = 0f64;
        for k in 0..k_max {
            let w = rank_weight(k, self.cfg.rank_weighting);
            let ws = wsum + w;
            // W' q~(g) of the current list for every slot, under the new total weight W'.
            f.base_arg.clear();
            f.base_arg.extend(
                f.slot_m
                    .iter()
                    .zip(&f.slot_p)
                    .map(|(&m, &p)| (1.0 - s) * m + s * ws * p),
            );
            f.base_ln.clear();
            f.base_ln.extend_from_slice(&f.base_arg);
            f.arg.clear();
            f.arg.extend(
                f.term_slot
                    .iter()
                    .zip(&f.term_c1s)
                    .map(|(&j, &c)| f.base_arg[j as usize] + w * c),
            );
            // A term's argument is its slot's base argument plus a non-negative amount, so
            // base arguments in the log's fast domain put every term there too.
            if vmath::all_normal(&f.base_arg) {
                vmath::ln_normal_in_place(&mut f.base_ln);
                vmath::ln_normal_in_place(&mut f.arg);
            } else {
                vmath::ln_in_place(&mut f.base_ln);
                vmath::ln_in_place(&mut f.arg);
            }
            f.val.clear();
            f.val.extend(
                f.arg
                    .iter()
                    .zip(&f.term_slot)
                    .zip(&f.term_lp)
                    .map(|((&new, &j), &lp)| lp * (new - f.base_ln[j as usize])),
            );
            f.val.push(0.0); // the zero term
            let pos = c.best(&f.val);
            let t = c.a_leader[pos] as usize;
            for &id in c.active_terms(pos) {
                let id = id as usize;
                f.slot_m[f.term_slot[id] as usize] += w * f.term_c[id];
            }
            c.take(pos, &sc.rel);
            wsum = ws;
            sc.chosen.push(sc.valid[t]);
        }
    }

    /// Per attribute, p(g|u) of every user (`rows x n_categories`, row-major), after
    /// `min_history` and the prior.
    pub fn target_distribution(&self, target: &Target, rows: usize) -> Result<Vec<Vec<f64>>> {
        self.check_target(target, rows)?;
        let per_user = self.per_user(rows, target, |sc, a| sc.attrs[a].p.clone())?;
        Ok((0..self.attrs.len())
            .map(|a| per_user.iter().flat_map(|u| u[a].iter().copied()).collect())
            .collect())
    }

    /// Per-user, per-attribute C_KL (`rows x attributes`) of the lists `ids` (-1 skipped).
    pub fn miscalibration(&self, ids: &[i64], rows: usize, target: &Target) -> Result<Vec<f64>> {
        let width = self.check_lists("ids", ids, rows)?;
        self.check_target(target, rows)?;
        let per_user = self.per_user_lists(rows, target, |sc, a, u| {
            let list = ids[u * width..(u + 1) * width].iter().copied();
            let st = &mut sc.attrs[a];
            list_kl(list, &st.p, &self.attrs[a].cats, &self.cfg, &mut st.m)
        })?;
        Ok(per_user)
    }

    /// Per-user, per-attribute share of the user's interests that appear in the list
    /// (`rows x attributes`). The interests are the categories with p(g|u) >= `threshold` (with
    /// `threshold` = 0: p(g|u) > 0), minus the user's top category (the largest p, lowest index
    /// on ties) when `exclude_top`; a category appears when some listed item has c(g|i) > 0.
    /// NaN for users with no such interests.
    ///
    /// Minority-interest recall is `(threshold = 0.1, exclude_top = true)`; category coverage of
    /// the user's profile is `(0, false)`.
    pub fn interest_recall(
        &self,
        ids: &[i64],
        rows: usize,
        target: &Target,
        threshold: f64,
        exclude_top: bool,
    ) -> Result<Vec<f64>> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(invalid!("threshold must lie in [0, 1], got {threshold}"));
        }
        let width = self.check_lists("ids", ids, rows)?;
        self.check_target(target, rows)?;
        self.per_user_lists(rows, target, |sc, a, u| {
            let list = &ids[u * width..(u + 1) * width];
            let st = &mut sc.attrs[a];
            interest_share(
                list,
                &st.p,
                &self.attrs[a].cats,
                threshold,
                exclude_top,
                &mut st.m,
            )
        })
    }

    /// Per-user, per-attribute minority-taste recall at `k` (`rows x attributes`): the share
    /// of the user's relevant items (`truth`, one row per user) that are minority-taste items
    /// and appear in the list's first `k`. A minority-taste item has at least one category
    /// (c(g|i) > 0) and p(g|u) < `threshold` for every one of them: the tastes an average model
    /// crushes. NaN for users without a minority-taste relevant item.
    pub fn taste_recall(
        &self,
        ids: &[i64],
        rows: usize,
        target: &Target,
        truth: &CsrView,
        k: i64,
        threshold: f64,
    ) -> Result<Vec<f64>> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(invalid!("threshold must lie in [0, 1], got {threshold}"));
        }
        if k < 1 {
            return Err(invalid!("k must be a positive integer, got {k}"));
        }
        if truth.n_rows != rows || truth.n_cols != self.n_items() {
            return Err(invalid!(
                "truth is {} x {} but there are {rows} users and {} items",
                truth.n_rows,
                truth.n_cols,
                self.n_items()
            ));
        }
        let width = self.check_lists("ids", ids, rows)?;
        self.check_target(target, rows)?;
        let cut = (k as u64).min(width as u64) as usize;
        self.per_user_lists(rows, target, |sc, a, u| {
            let p = &sc.attrs[a].p;
            let cats = &self.attrs[a].cats;
            let minority = |i: usize| {
                let mut any = false;
                let mut top = 0f64;
                for (g, c) in cats.item(i) {
                    if c > 0.0 {
                        any = true;
                        top = top.max(p[g]);
                    }
                }
                any && top < threshold
            };
            let rel = truth.row(u);
            let n_min = rel.iter().filter(|&&i| minority(i as usize)).count();
            if n_min == 0 {
                return f64::NAN;
            }
            let list = &ids[u * width..u * width + cut];
            let hits = list
                .iter()
                .filter(|&&j| {
                    j >= 0 && rel.binary_search(&(j as i32)).is_ok() && minority(j as usize)
                })
                .count();
            hits as f64 / n_min as f64
        })
    }

    fn per_user<T: Send>(
        &self,
        rows: usize,
        target: &Target,
        f: impl Fn(&Scratch, usize) -> T + Sync,
    ) -> Result<Vec<Vec<T>>> {
        (0..rows)
            .into_par_iter()
            .map_init(
                || Scratch::new(&self.attrs),
                |sc, u| {
                    self.fill_target(target, u, sc)?;
                    Ok((0..self.attrs.len()).map(|a| f(sc, a)).collect())
                },
            )
            .collect()
    }

    fn per_user_lists(
        &self,
        rows: usize,
        target: &Target,
        f: impl Fn(&mut Scratch, usize, usize) -> f64 + Sync,
    ) -> Result<Vec<f64>> {
        let na = self.attrs.len();
        let per_user: Vec<Vec<f64>> = (0..rows)
            .into_par_iter()
            .map_init(
                || Scratch::new(&self.attrs),
                |sc, u| {
                    self.fill_target(target, u, sc)?;
                    Ok((0..na).map(|a| f(sc, a, u)).collect())
                },
            )
            .collect::<Result<_>>()?;
        Ok(per_user.concat())
    }
}

impl Reranked {
    fn default_with(ids: Vec<i64>, scores: Vec<f32>, before: Vec<f64>, after: Vec<f64>) -> Self {
        Self {
            ids,
            scores,
            ckl_before: before,
            ckl_after: after,
        }
    }
}

/// Rank weight of list position `r` (0-based).
#[inline]
pub fn rank_weight(r: usize, rank_weighting: bool) -> f64 {
    if rank_weighting {
        1.0 / ((r + 2) as f64).log2()
    } else {
        1.0
    }
}

/// C_KL of a list of item ids (-1 skipped, but positions still count for rank weights).
fn list_kl(
    items: impl Iterator<Item = i64>,
    p: &[f64],
    cats: &ItemCategories,
    cfg: &Config,
    m: &mut [f64],
) -> f64 {
    m.fill(0.0);
    let mut wsum = 0f64;
    for (r, id) in items.enumerate() {
        if id < 0 {
            continue;
        }
        let w = rank_weight(r, cfg.rank_weighting);
        wsum += w;
        for (g, c) in cats.item(id as usize) {
            m[g] += w * c;
        }
    }
    let s = cfg.smoothing;
    let mut kl = 0f64;
    for (&pg, &mg) in p.iter().zip(m.iter()) {
        if pg > 0.0 {
            let q = if wsum > 0.0 { mg / wsum } else { 0.0 };
            kl += pg * (pg / ((1.0 - s) * q + s * pg)).ln();
        }
    }
    kl
}

/// See [`Reranker::interest_recall`].
fn interest_share(
    list: &[i64],
    p: &[f64],
    cats: &ItemCategories,
    threshold: f64,
    exclude_top: bool,
    present: &mut [f64],
) -> f64 {
    present.fill(0.0);
    for &id in list.iter().filter(|&&x| x >= 0) {
        for (g, c) in cats.item(id as usize) {
            if c > 0.0 {
                present[g] = 1.0;
            }
        }
    }
    let mut top = usize::MAX;
    let mut top_p = 0f64;
    for (g, &pg) in p.iter().enumerate() {
        if pg > top_p {
            top = g;
            top_p = pg;
        }
    }
    let (mut total, mut hit) = (0usize, 0usize);
    for (g, &pg) in p.iter().enumerate() {
        let interest = if threshold > 0.0 {
            pg >= threshold
        } else {
            pg > 0.0
        };
        if interest && !(exclude_top && g == top) {
            total += 1;
            hit += (present[g] > 0.0) as usize;
        }
    }
    if total == 0 {
        f64::NAN
    } else {
        hit as f64 / total as f64
    }
}

fn normalise(how: Normalize, s: impl Iterator<Item = f32>, rel: &mut Vec<f64>) {
    rel.clear();
    rel.extend(s.map(|x| x as f64));
    match how {
        Normalize::None => {}
        Normalize::MinMax => {
            let lo = rel.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = rel.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let span = hi - lo;
            rel.iter_mut()
                .for_each(|v| *v = if span > 0.0 { (*v - lo) / span } else { 0.0 });
        }
        Normalize::Softmax => {
            let hi = rel.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            rel.iter_mut().for_each(|v| *v = (*v - hi).exp());
            let z: f64 = rel.iter().sum();
            rel.iter_mut().for_each(|v| *v /= z);
        }
    }
}

/// One user's candidates in the greedy, by group (the candidates of one signature), and the
/// groups that still have members as compact arrays for the per-step scan. Candidates are
/// indexed by `t`, their position in input (column) order.
#[derive(Default)]
struct Candidates {
    /// Group of each signature seen (u32::MAX: none), reset through `sig`.
    group_of_sig: Vec<u32>,
    /// Per group: its signature, first and last member, terms `terms[term_range]`.
    sig: Vec<u32>,
    head: Vec<u32>,
    tail: Vec<u32>,
    term_range: Vec<(u32, u32)>,
    terms: Vec<u32>,
    /// The next member of t's group in column order (u32::MAX: the last), and taken marks.
    next: Vec<u32>,
    taken: Vec<bool>,
    /// Active groups: group id, leader (best remaining member), its relevance, terms (the
    /// first [`TERMS_INLINE`] inline, padded with the zero term; the full range for the rare
    /// wider groups).
    a_group: Vec<u32>,
    a_leader: Vec<u32>,
    a_rel: Vec<f64>,
    a_inline: Vec<[u32; TERMS_INLINE]>,
    a_terms: Vec<(u32, u32)>,
}

/// Terms kept inline per active group: genre-like attributes give items 1-3 categories.
const TERMS_INLINE: usize = 4;

impl Candidates {
    /// Forgets the last user, for `nv` candidates over `n_sigs` signatures.
    fn start(&mut self, n_sigs: usize, nv: usize) {
        if self.group_of_sig.len() != n_sigs {
            self.group_of_sig = vec![u32::MAX; n_sigs];
        }
        for &sig in &self.sig {
            self.group_of_sig[sig as usize] = u32::MAX;
        }
        self.sig.clear();
        self.head.clear();
        self.tail.clear();
        self.term_range.clear();
        self.terms.clear();
        self.next.clear();
        self.next.resize(nv, u32::MAX);
        self.taken.clear();
        self.taken.resize(nv, false);
    }

    /// Adds candidate t (added in column order) of signature `sig`.
    #[inline]
    fn add(&mut self, t: usize, sig: u32) {
        let g = self.group_of_sig[sig as usize];
        if g == u32::MAX {
            self.group_of_sig[sig as usize] = self.sig.len() as u32;
            self.sig.push(sig);
            self.head.push(t as u32);
            self.tail.push(t as u32);
        } else {
            let g = g as usize;
            self.next[self.tail[g] as usize] = t as u32;
            self.tail[g] = t as u32;
        }
    }

    /// Picks every group's leader and fills the active arrays; `zero` is the id of a term
    /// whose value is always 0 (the padding of inline term lists).
    fn lead(&mut self, rel: &[f64], zero: u32) {
        self.a_group.clear();
        self.a_leader.clear();
        self.a_rel.clear();
        self.a_inline.clear();
        self.a_terms.clear();
        for g in 0..self.sig.len() {
            let t = self.best_member(self.head[g], rel);
            let (a, b) = self.term_range[g];
            let mut inline = [zero; TERMS_INLINE];
            let n = (b - a) as usize;
            if n <= TERMS_INLINE {
                inline[..n].copy_from_slice(&self.terms[a as usize..b as usize]);
            }
            self.a_group.push(g as u32);
            self.a_leader.push(t);
            self.a_rel.push(rel[t as usize]);
            self.a_inline.push(inline);
            self.a_terms.push((a, b));
        }
    }

    /// The best untaken member from `t` on: highest relevance, then earliest column
    /// (u32::MAX when none is left).
    fn best_member(&self, mut t: u32, rel: &[f64]) -> u32 {
        let mut best = u32::MAX;
        while t != u32::MAX {
            let tu = t as usize;
            // Members come in column order: a tie keeps the earlier one.
            if !self.taken[tu] && (best == u32::MAX || rel[tu] > rel[best as usize]) {
                best = t;
            }
            t = self.next[tu];
        }
        best
    }

    #[inline]
    fn active_terms(&self, pos: usize) -> &[u32] {
        let (a, b) = self.a_terms[pos];
        &self.terms[a as usize..b as usize]
    }

    /// The position (in the active arrays) of the best leader at this step: the highest
    /// `relevance + sum of its terms' values`, ties to the earliest column.
    fn best(&self, val: &[f64]) -> usize {
        let mut best = usize::MAX;
        let mut best_t = u32::MAX;
        let mut best_val = f64::NEG_INFINITY;
        for (pos, (((&r, inline), &(a, b)), &t)) in self
            .a_rel
            .iter()
            .zip(&self.a_inline)
            .zip(&self.a_terms)
            .zip(&self.a_leader)
            .enumerate()
        {
            let mut v = r;
            if (b - a) as usize <= TERMS_INLINE {
                // Branch-free: the padding adds the zero term's 0.
                for &id in inline {
                    v += val[id as usize];
                }
            } else {
                for &id in &self.terms[a as usize..b as usize] {
                    v += val[id as usize];
                }
            }
            if best == usize::MAX || v > best_val || (v == best_val && t < best_t) {
                best = pos;
                best_t = t;
                best_val = v;
            }
        }
        best
    }

    /// Takes the leader at `pos` and moves its group's lead on (or retires the group).
    fn take(&mut self, pos: usize, rel: &[f64]) {
        self.taken[self.a_leader[pos] as usize] = true;
        let g = self.a_group[pos] as usize;
        let next = self.best_member(self.head[g], rel);
        if next == u32::MAX {
            self.a_group.swap_remove(pos);
            self.a_leader.swap_remove(pos);
            self.a_rel.swap_remove(pos);
            self.a_inline.swap_remove(pos);
            self.a_terms.swap_remove(pos);
        } else {
            self.a_leader[pos] = next;
            self.a_rel[pos] = rel[next as usize];
        }
    }
}

/// The greedy's flat state for one user: the categories in play ("slots"), the distinct terms
/// over them, and the per-step work buffers, structure of arrays.
#[derive(Default)]
struct Flat {
    slot_p: Vec<f64>,
    slot_m: Vec<f64>,
    base_arg: Vec<f64>,
    base_ln: Vec<f64>,
    /// Term of each key seen (u32::MAX: none), reset through `term_key`.
    term_of_key: Vec<u32>,
    term_key: Vec<u32>,
    term_slot: Vec<u32>,
    term_c: Vec<f64>,
    /// (1 - s) c, the term's addition to its slot's base argument per unit of rank weight.
    term_c1s: Vec<f64>,
    /// lambda p(g), the term's weight in the objective.
    term_lp: Vec<f64>,
    arg: Vec<f64>,
    val: Vec<f64>,
}

impl Flat {
    /// Forgets the last user, for a catalogue of `n_keys` keys.
    fn clear(&mut self, n_keys: usize) {
        if self.term_of_key.len() != n_keys {
            self.term_of_key = vec![u32::MAX; n_keys];
        }
        for &k in &self.term_key {
            self.term_of_key[k as usize] = u32::MAX;
        }
        self.slot_p.clear();
        self.slot_m.clear();
        self.term_key.clear();
        self.term_slot.clear();
        self.term_c.clear();
        self.term_c1s.clear();
        self.term_lp.clear();
    }

    /// The term of `key` (category g of weight c in the attribute whose scratch is `st`),
    /// adding it, and its category's slot, when new.
    fn term(
        &mut self,
        st: &mut AttrScratch,
        key: u32,
        g: usize,
        c: f64,
        lambda: f64,
        s: f64,
    ) -> u32 {
        let id = self.term_of_key[key as usize];
        if id != u32::MAX {
            return id;
        }
        let slot = match st.slot_of[g] {
            u32::MAX => {
                let j = self.slot_p.len() as u32;
                st.slot_of[g] = j;
                st.touched.push(g as u32);
                self.slot_p.push(st.p[g]);
                self.slot_m.push(0.0);
                j
            }
            j => j,
        };
        let id = self.term_slot.len() as u32;
        self.term_of_key[key as usize] = id;
        self.term_key.push(key);
        self.term_slot.push(slot);
        self.term_c.push(c);
        self.term_c1s.push((1.0 - s) * c);
        self.term_lp.push(lambda * st.p[g]);
        id
    }
}

/// Per-attribute scratch of one worker thread.
struct AttrScratch {
    p: Vec<f64>,
    m: Vec<f64>,
    has: bool,
    /// The greedy's slot of each category (u32::MAX: none), reset through `touched`.
    slot_of: Vec<u32>,
    touched: Vec<u32>,
}

impl AttrScratch {
    fn reset_slots(&mut self) {
        for &g in &self.touched {
            self.slot_of[g as usize] = u32::MAX;
        }
        self.touched.clear();
    }
}

struct Scratch {
    attrs: Vec<AttrScratch>,
    valid: Vec<usize>,
    plain: Vec<usize>,
    rel: Vec<f64>,
    flat: Flat,
    cand: Candidates,
    chosen: Vec<usize>,
    sorted: Vec<i64>,
}

impl Scratch {
    fn new(attrs: &[Attribute]) -> Self {
        Self {
            attrs: attrs
                .iter()
                .map(|a| {
                    let g = a.cats.n_categories();
                    AttrScratch {
                        p: vec![0.0; g],
                        m: vec![0.0; g],
                        has: false,
                        slot_of: vec![u32::MAX; g],
                        touched: Vec::new(),
                    }
                })
                .collect(),
            valid: Vec::new(),
            plain: Vec::new(),
            rel: Vec::new(),
            flat: Flat::default(),
            cand: Candidates::default(),
            chosen: Vec::new(),
            sorted: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::Index;

    // Items: 0 drama, 1 drama, 2 doc, 3 half drama half doc, 4 no category.
    const CP: [i64; 6] = [0, 1, 2, 3, 5, 5];
    const CI: [i32; 5] = [0, 0, 1, 0, 1];
    const CD: [f32; 5] = [1.0, 1.0, 1.0, 0.5, 0.5];

    fn cats() -> ItemCategories {
        let csr = CsrView::new("c", 2, Index::I64(&CP), Index::I32(&CI), Some(&CD)).unwrap();
        ItemCategories::new("item_categories", csr, false).unwrap()
    }

    fn cfg() -> Config {
        Config {
            smoothing: 0.01,
            rank_weighting: false,
            normalize: Normalize::MinMax,
            min_history: 0,
            prior_weight: 0.0,
        }
    }

    fn reranker(lambda: f64) -> Reranker {
        Reranker::new(vec![Attribute::new(cats(), lambda, None).unwrap()], cfg()).unwrap()
    }

    fn run(r: &Reranker, cand: &[i64], s: &[f32], rows: usize, t: &Target, n: i64) -> Reranked {
        r.rerank(cand, s, rows, t, n, None, &Stop::new()).unwrap()
    }

    #[test]
    fn lambda_zero_is_score_order_with_stable_ties() {
        let p = [0.7f32, 0.3];
        let t = Target::Dense(vec![&p]);
        let cand = [0, 1, 2, 4, -1];
        let s = [0.5, 0.9, 0.5, 0.1, f32::NEG_INFINITY];
        let r = run(&reranker(0.0), &cand, &s, 1, &t, 6);
        assert_eq!(r.ids, vec![1, 0, 2, 4, -1, -1]);
        assert_eq!(r.scores[..4], [0.9, 0.5, 0.5, 0.1]);
        assert!(r.scores[4] == f32::NEG_INFINITY);
        assert_eq!(r.ckl_before, r.ckl_after);
    }

    #[test]
    fn calibration_restores_minority_interest() {
        // History: 7 drama-ish, 3 doc -> p = (0.7, 0.3).
        let p = [0.7f32, 0.3];
        let t = Target::Dense(vec![&p]);
        let cand = [0, 1, 2];
        let s = [1.0, 0.9, 0.1];
        let plain = run(&reranker(0.0), &cand, &s, 1, &t, 2);
        assert_eq!(plain.ids, vec![0, 1]);
        let r = reranker(0.9);
        let cal = run(&r, &cand, &s, 1, &t, 2);
        assert_eq!(cal.ids, vec![0, 2]);
        assert!(cal.ckl_after[0] < cal.ckl_before[0]);
        // Hand-computed C_KL of [0, 1]: q = (1, 0), q~ = (0.99 + 0.007, 0.003).
        let q0 = 0.99 + 0.01 * 0.7;
        let q1 = 0.01 * 0.3;
        let want = 0.7 * (0.7f64 / q0).ln() + 0.3 * (0.3f64 / q1).ln();
        assert!((plain.ckl_after[0] - want).abs() < 1e-6);
        assert_eq!(
            r.interest_recall(&cal.ids, 1, &t, 0.1, true).unwrap(),
            vec![1.0]
        );
        assert_eq!(
            r.interest_recall(&plain.ids, 1, &t, 0.1, true).unwrap(),
            vec![0.0]
        );
        let m = r.miscalibration(&plain.ids, 1, &t).unwrap();
        assert!((m[0] - plain.ckl_after[0]).abs() < 1e-12);
        // A per-call lambda of 0 gives the plain order back.
        let same = r
            .rerank(&cand, &s, 1, &t, 2, Some(&[0.0]), &Stop::new())
            .unwrap();
        assert_eq!(same.ids, plain.ids);
    }

    #[test]
    fn history_target_min_history_and_prior() {
        // User 0: items 0 and 3 -> mass (1.5, 0.5); user 1: only item 4 -> no target.
        let h = CsrView::new(
            "history",
            5,
            Index::I64(&[0, 2, 3]),
            Index::I32(&[0, 3, 4]),
            None,
        )
        .unwrap();
        let t = Target::History(h);
        let r = reranker(1.0);
        assert_eq!(
            r.target_distribution(&t, 2).unwrap(),
            vec![vec![0.75, 0.25, 0.0, 0.0]]
        );
        let cand = [1, 2, 4, 1, 2, 4];
        let s = [0.3, 0.2, 0.9, 0.3, 0.2, 0.9];
        let out = run(&r, &cand, &s, 2, &t, 2);
        assert_eq!(&out.ids[2..], &[4, 1]);
        assert_eq!(out.ckl_before[1], 0.0);
        assert!(r.interest_recall(&out.ids, 2, &t, 0.1, true).unwrap()[1].is_nan());
        // min_history 3: user 0's two interactions are too few, so its list passes through.
        let mut c = cfg();
        c.min_history = 3;
        let strict = Reranker::new(vec![Attribute::new(cats(), 1.0, None).unwrap()], c).unwrap();
        assert_eq!(&run(&strict, &cand, &s, 2, &t, 2).ids[..2], &[4, 1]);
        // The prior: p~ = beta p0 + (1 - beta) p, p0 = catalogue distribution (2.5, 1.5) / 4.
        let mut c = cfg();
        c.prior_weight = 0.5;
        let pr = Reranker::new(vec![Attribute::new(cats(), 1.0, None).unwrap()], c).unwrap();
        let p = pr.target_distribution(&t, 2).unwrap();
        let want = [0.5 * 0.625 + 0.5 * 0.75, 0.5 * 0.375 + 0.5 * 0.25];
        assert!((p[0][0] - want[0]).abs() < 1e-12 && (p[0][1] - want[1]).abs() < 1e-12);
        assert_eq!(&p[0][2..], &[0.0, 0.0]);
    }

    #[test]
    fn two_attributes_each_with_a_lambda() {
        // Attribute b: items 0 and 2 are "new", 1 and 3 "old", 4 none.
        let bp = [0i64, 1, 2, 3, 4, 4];
        let bi = [0i32, 1, 0, 1];
        let bd = [1.0f32; 4];
        let b = CsrView::new("b", 2, Index::I64(&bp), Index::I32(&bi), Some(&bd)).unwrap();
        let b = ItemCategories::new("b", b, true).unwrap();
        let r = Reranker::new(
            vec![
                Attribute::new(cats(), 0.0, None).unwrap(),
                Attribute::new(b, 0.9, None).unwrap(),
            ],
            cfg(),
        )
        .unwrap();
        let pa = [1.0f32, 0.0];
        let pb = [0.5f32, 0.5];
        let t = Target::Dense(vec![&pa, &pb]);
        // Relevance alone picks 0 then 2 (both "new"); the second attribute wants one "old".
        let out = run(&r, &[0, 2, 1], &[1.0, 0.9, 0.1], 1, &t, 2);
        assert_eq!(out.ids, vec![0, 1]);
        assert_eq!(out.ckl_before.len(), 2);
        assert!(out.ckl_after[1] < out.ckl_before[1]);
        let e = Reranker::new(
            vec![
                Attribute::new(cats(), 0.6, None).unwrap(),
                Attribute::new(cats(), 0.6, None).unwrap(),
            ],
            cfg(),
        );
        assert!(e.unwrap_err().to_string().contains("sum to at most 1"));
    }

    #[test]
    fn rejects_bad_input() {
        let p = [0.7f32, 0.3];
        let t = Target::Dense(vec![&p]);
        let r = reranker(0.5);
        let err = |cand: &[i64], s: &[f32], n: i64| {
            r.rerank(cand, s, 1, &t, n, None, &Stop::new())
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[0, 5], &[1.0, 1.0], 1).contains("row 0, column 1"));
        assert!(err(&[0, -2], &[1.0, 1.0], 1).contains("outside"));
        assert!(err(&[0, 1], &[1.0, f32::NAN], 1).contains("column 1"));
        assert!(err(&[0, 0], &[1.0, 1.0], 1).contains("more than once"));
        assert!(err(&[0, 1], &[1.0, 1.0], 0).contains("n must"));
        assert!(err(&[0, 1], &[1.0, 1.0], 1 << 50).contains("would need"));
        assert!(r
            .rerank(&[0, 1], &[1.0, 1.0], 1, &t, 1, Some(&[1.5]), &Stop::new())
            .unwrap_err()
            .to_string()
            .contains("lambda"));
        let mut c = cfg();
        c.smoothing = 0.0;
        let attrs = || vec![Attribute::new(cats(), 0.5, None).unwrap()];
        assert!(Reranker::new(attrs(), c)
            .unwrap_err()
            .to_string()
            .contains("smoothing"));
        let mut c = cfg();
        c.prior_weight = 1.0;
        assert!(Reranker::new(attrs(), c).is_err());
        assert!(Reranker::new(vec![], cfg()).is_err());
        let bad = CsrView::new(
            "c",
            2,
            Index::I64(&[0, 2]),
            Index::I32(&[0, 1]),
            Some(&[0.5, 0.6]),
        )
        .unwrap();
        let e = ItemCategories::new("item_categories", bad.clone(), false).unwrap_err();
        assert!(e.to_string().contains("item 0"));
        assert!(ItemCategories::new("item_categories", bad, true).is_ok());
        let neg = CsrView::new(
            "c",
            2,
            Index::I64(&[0, 2]),
            Index::I32(&[0, 1]),
            Some(&[1.5, -0.5]),
        )
        .unwrap();
        let e = ItemCategories::new("item_categories", neg, true).unwrap_err();
        assert!(e.to_string().contains("negative"));
        assert!(Attribute::new(cats(), 0.5, Some(vec![0.5, 0.6])).is_err());
        let bp = [0.5f32, 0.3];
        let bt = Target::Dense(vec![&bp]);
        assert!(r
            .rerank(&[0], &[1.0], 1, &bt, 1, None, &Stop::new())
            .unwrap_err()
            .to_string()
            .contains("sums to"));
        assert!(Normalize::parse("zscore").is_err());
    }
}
