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
use crate::invalid;
use crate::threads::Stop;

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

    /// Whether items `a` and `b` have the same category vector.
    fn same_row(&self, a: usize, b: usize) -> bool {
        self.csr.row(a) == self.csr.row(b) && self.row_values(a) == self.row_values(b)
    }

    /// FNV-1a step over item `i`'s category vector (indices and value bits).
    fn hash_into(&self, i: usize, mut h: u64) -> u64 {
        for (g, c) in self.item(i) {
            for x in [g as u64, c.to_bits()] {
                h = (h ^ x).wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
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
        Ok(Self { attrs, cfg })
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
        // Plain order: by raw score, descending, ties in input order (stable sort).
        sc.valid.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let k_max = n.min(sc.valid.len());
        for (a, (attr, s)) in self.attrs.iter().zip(sc.attrs.iter_mut()).enumerate() {
            let items = sc.valid[..k_max].iter().map(|&j| cands[j]);
            before[a] = list_kl(items, &s.p, &attr.cats, &self.cfg, &mut s.m);
        }
        sc.chosen.clear();
        if !has_target || lambdas.iter().all(|&l| l == 0.0) {
            sc.chosen.extend_from_slice(&sc.valid[..k_max]);
        } else {
            // Back to input order so that ties in the objective go to the earlier column.
            sc.valid.sort_unstable();
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

    /// Steck's greedy over `sc.valid` (input order), relevance `sc.rel`; fills `sc.chosen` with
    /// candidate columns.
    ///
    /// Candidates whose items have identical category vectors (in every attribute) get identical
    /// KL deltas, so within such a group only the best remaining member (highest relevance,
    /// then earliest column) can win a step: the candidates are grouped once per user and each
    /// step evaluates one leader per group. Ties in the objective go to the earliest column,
    /// exactly as without grouping.
    fn greedy(&self, cands: &[i64], lambdas: &[f64], k_max: usize, sc: &mut Scratch) {
        let s = self.cfg.smoothing;
        let nv = sc.valid.len();
        let item = |sc: &Scratch, t: usize| cands[sc.valid[t]] as usize;
        sc.order.clear();
        for t in 0..nv {
            let i = item(sc, t);
            let h = self
                .attrs
                .iter()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, a| a.cats.hash_into(i, h));
            sc.order.push((h, t));
        }
        let rel = &sc.rel;
        sc.order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then(rel[b.1].total_cmp(&rel[a.1]))
                .then(a.1.cmp(&b.1))
        });
        sc.groups.clear();
        for k in 0..nv {
            let (i, prev) = (item(sc, sc.order[k].1), k.checked_sub(1));
            let same = prev.is_some_and(|p| {
                let j = item(sc, sc.order[p].1);
                sc.order[k].0 == sc.order[p].0 && self.attrs.iter().all(|a| a.cats.same_row(i, j))
            });
            match sc.groups.last_mut() {
                Some(g) if same => g.1 = k + 1,
                _ => sc.groups.push((k, k + 1)),
            }
        }
        let rel_weight = 1.0 - lambdas.iter().sum::<f64>();
        for (attr, st) in self.attrs.iter().zip(sc.attrs.iter_mut()) {
            let items = sc.valid.iter().map(|&j| cands[j] as usize);
            st.terms.build(items, &attr.cats, &st.p);
            st.m.fill(0.0);
        }
        let mut wsum = 0f64;
        for k in 0..k_max {
            let w = rank_weight(k, self.cfg.rank_weighting);
            let ws = wsum + w;
            for st in sc.attrs.iter_mut().filter(|st| st.has) {
                // W' q~(g) of the current list, under the new total weight W'.
                for ((b, &pg), &mg) in st.base.iter_mut().zip(&st.p).zip(&st.m) {
                    if pg > 0.0 {
                        *b = ((1.0 - s) * mg + s * ws * pg).ln();
                    }
                }
                let t = &mut st.terms;
                for ((v, &g), &c) in t.val.iter_mut().zip(&t.g).zip(&t.c) {
                    let pg = st.p[g];
                    let new = ((1.0 - s) * (st.m[g] + w * c) + s * ws * pg).ln();
                    *v = pg * (new - st.base[g]);
                }
            }
            let mut best = usize::MAX; // index into groups
            let mut best_t = usize::MAX;
            let mut best_val = f64::NEG_INFINITY;
            for (gi, &(ptr, end)) in sc.groups.iter().enumerate() {
                if ptr == end {
                    continue;
                }
                let t = sc.order[ptr].1;
                let mut val = rel_weight * sc.rel[t];
                for (st, &l) in sc.attrs.iter().zip(lambdas) {
                    if st.has {
                        val += l * st.terms.delta(t);
                    }
                }
                if best == usize::MAX || val > best_val || (val == best_val && t < best_t) {
                    best = gi;
                    best_t = t;
                    best_val = val;
                }
            }
            sc.groups[best].0 += 1;
            let i = item(sc, best_t);
            for (attr, st) in self.attrs.iter().zip(sc.attrs.iter_mut()) {
                for (g, c) in attr.cats.item(i) {
                    st.m[g] += w * c;
                }
            }
            wsum = ws;
            sc.chosen.push(sc.valid[best_t]);
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

/// The distinct (category, weight) terms of one user's candidates in one attribute. Within a
/// greedy step a candidate's KL delta is a sum of terms that depend only on (g, c(g|i)), and
/// normalised genre flags take few values (1, 1/2, 1/3, ...): each step computes one logarithm
/// per distinct term, then each candidate's delta is a sum of table look-ups (in the item's
/// category order, so the values are bit-identical to evaluating every candidate directly).
struct Terms {
    keys: Vec<[u64; TERM_SLOTS]>,
    ids: Vec<[u32; TERM_SLOTS]>,
    len: Vec<u8>,
    g: Vec<usize>,
    c: Vec<f64>,
    val: Vec<f64>,
    /// Term ids of valid candidate t: `of[off[t]..off[t + 1]]`.
    off: Vec<usize>,
    of: Vec<u32>,
}

const TERM_SLOTS: usize = 4;

impl Terms {
    fn new(g: usize) -> Self {
        Self {
            keys: vec![[0; TERM_SLOTS]; g],
            ids: vec![[0; TERM_SLOTS]; g],
            len: vec![0; g],
            g: Vec::new(),
            c: Vec::new(),
            val: Vec::new(),
            off: Vec::new(),
            of: Vec::new(),
        }
    }

    fn build(&mut self, items: impl Iterator<Item = usize>, cats: &ItemCategories, p: &[f64]) {
        self.len.fill(0);
        self.g.clear();
        self.c.clear();
        self.of.clear();
        self.off.clear();
        self.off.push(0);
        for item in items {
            for (g, c) in cats.item(item) {
                if p[g] > 0.0 {
                    let id = self.id(g, c);
                    self.of.push(id);
                }
            }
            self.off.push(self.of.len());
        }
        self.val.clear();
        self.val.resize(self.g.len(), 0.0);
    }

    fn id(&mut self, g: usize, c: f64) -> u32 {
        let key = c.to_bits();
        let n = self.len[g] as usize;
        if let Some(s) = self.keys[g][..n].iter().position(|&k| k == key) {
            return self.ids[g][s];
        }
        let id = self.g.len() as u32;
        self.g.push(g);
        self.c.push(c);
        if n < TERM_SLOTS {
            self.keys[g][n] = key;
            self.ids[g][n] = id;
            self.len[g] += 1;
        }
        id
    }

    #[inline]
    fn delta(&self, t: usize) -> f64 {
        let mut d = 0f64;
        for &k in &self.of[self.off[t]..self.off[t + 1]] {
            d += self.val[k as usize];
        }
        d
    }
}

/// Per-attribute scratch of one worker thread.
struct AttrScratch {
    terms: Terms,
    p: Vec<f64>,
    m: Vec<f64>,
    base: Vec<f64>,
    has: bool,
}

struct Scratch {
    attrs: Vec<AttrScratch>,
    valid: Vec<usize>,
    rel: Vec<f64>,
    order: Vec<(u64, usize)>,
    groups: Vec<(usize, usize)>,
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
                        terms: Terms::new(g),
                        p: vec![0.0; g],
                        m: vec![0.0; g],
                        base: vec![0.0; g],
                        has: false,
                    }
                })
                .collect(),
            valid: Vec::new(),
            rel: Vec::new(),
            order: Vec::new(),
            groups: Vec::new(),
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
