//! Calibrated reranking (Steck, "Calibrated Recommendations", RecSys 2018) and calibration
//! metrics.
//!
//! Definitions, stated once (natural logarithms throughout):
//! - Item categories: an items x categories CSR matrix whose row i is item i's category
//!   distribution c(g|i) (non-negative, summing to 1; an empty row means "no category").
//! - Target p(g|u): either given directly (dense, rows summing to 1, or all zero) or computed from
//!   the user's history H(u) with optional per-interaction weights h_ui >= 0 as
//!   p(g|u) = sum_i h_ui c(g|i) / sum_g sum_i h_ui c(g|i). A user with an all-zero p has no target:
//!   the list passes through in relevance order.
//! - List distribution q(g|u) of a list L (positions r = 0, 1, ...; -1 padding skipped) with rank
//!   weights w_r (1, or 1 / log2(r + 2) with rank weighting): q(g|u) = sum_r w_r c(g|L_r) / sum_r w_r.
//!   Items without categories therefore dilute q (they count as "no category").
//! - Smoothed q~ = (1 - alpha) q + alpha p; miscalibration C_KL = KL(p || q~) =
//!   sum over g with p(g) > 0 of p(g) ln(p(g) / q~(g)). The empty list has q = 0, C_KL = -ln alpha.
//! - Objective of a list: (1 - lambda) * sum of relevance - lambda * C_KL, maximised greedily: at
//!   each step the candidate maximising the objective of the list so far plus that candidate is
//!   appended (ties go to the earlier candidate column). Relevance is the score after the chosen
//!   per-user normalisation ([`Normalize`]), so one lambda means the same across models.
//! - lambda = 0 (or a user without target) returns the plain top-n: the candidates sorted by raw
//!   score, descending, ties in input order.
//!
//! Speed: writing W for the total rank weight and m(g) for the list's category mass,
//! W q~(g) = (1 - alpha) m(g) + alpha W p(g). Every candidate at step k gets the same rank weight,
//! so W after the step is the same for all of them and only the terms of the candidate's own
//! categories differ: each step costs O(categories of the item) logarithms per candidate.

use rayon::prelude::*;

use crate::csr::CsrView;
use crate::error::Result;
use crate::invalid;

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

/// Parameters of the greedy reranker.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Length of the output lists.
    pub n: usize,
    /// Weight of miscalibration, in [0, 1].
    pub lambda: f64,
    /// Smoothing of q, in (0, 1).
    pub alpha: f64,
    /// Weight list positions by 1 / log2(r + 2) in q.
    pub rank_weighting: bool,
    pub normalize: Normalize,
}

impl Params {
    pub fn validate(&self) -> Result<()> {
        if self.n == 0 {
            return Err(invalid!("n must be positive, got 0"));
        }
        check_alpha(self.alpha)?;
        if !(0.0..=1.0).contains(&self.lambda) {
            return Err(invalid!("lambda must lie in [0, 1], got {}", self.lambda));
        }
        Ok(())
    }
}

fn check_alpha(alpha: f64) -> Result<()> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(invalid!("alpha must lie in (0, 1), got {alpha}"));
    }
    Ok(())
}

/// A validated items x categories matrix.
#[derive(Clone, Copy, Debug)]
pub struct ItemCategories<'a> {
    csr: CsrView<'a>,
}

impl<'a> ItemCategories<'a> {
    /// Checks that every row is non-negative and sums to 1 within 1e-4 (or is empty / all zero).
    pub fn new(csr: CsrView<'a>) -> Result<Self> {
        for i in 0..csr.n_rows {
            let mut sum = 0f64;
            for (_, v) in row_iter(&csr, i) {
                if v < 0.0 {
                    return Err(invalid!(
                        "item_categories: item {i} has a negative category weight {v}"
                    ));
                }
                sum += v;
            }
            if sum != 0.0 && (sum - 1.0).abs() > 1e-4 {
                return Err(invalid!(
                    "item_categories: the row of item {i} sums to {sum}, not 1 (each row must be \
                     the item's category distribution; normalise 0/1 flags first)"
                ));
            }
        }
        Ok(Self { csr })
    }

    pub fn n_items(&self) -> usize {
        self.csr.n_rows
    }

    pub fn n_categories(&self) -> usize {
        self.csr.n_cols
    }

    /// FNV-1a hash of item `i`'s category vector (indices and value bits).
    fn row_hash(&self, i: usize) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for (g, c) in self.item(i) {
            for x in [g as u64, c.to_bits()] {
                h = (h ^ x).wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }

    /// Whether items `a` and `b` have the same category vector.
    fn same_row(&self, a: usize, b: usize) -> bool {
        self.csr.row(a) == self.csr.row(b) && self.csr.row_values(a) == self.csr.row_values(b)
    }

    #[inline]
    fn item(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + 'a {
        row_iter(&self.csr, i)
    }
}

#[inline]
fn row_iter<'a>(csr: &CsrView<'a>, r: usize) -> impl Iterator<Item = (usize, f64)> + 'a {
    let idx = csr.row(r);
    let vals = csr.row_values(r);
    idx.iter()
        .enumerate()
        .map(move |(k, &g)| (g as usize, vals.map_or(1.0, |v| v[k] as f64)))
}

/// Where p(g|u) comes from.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// Dense `rows x n_categories`, row-major.
    Dense { p: &'a [f32], rows: usize },
    /// Users x items history, with optional per-interaction weights (>= 0).
    History(CsrView<'a>),
}

impl Target<'_> {
    fn check(&self, batch: usize, cats: &ItemCategories) -> Result<()> {
        let g = cats.n_categories();
        match self {
            Target::Dense { p, rows } => {
                if *rows != batch || p.len() != batch * g {
                    return Err(invalid!(
                        "p: expected shape ({batch}, {g}) (users x categories), got {rows} rows \
                         and {} values",
                        p.len()
                    ));
                }
            }
            Target::History(h) => {
                if h.n_rows != batch {
                    return Err(invalid!(
                        "history has {} rows but there are {batch} users",
                        h.n_rows
                    ));
                }
                if h.n_cols != cats.n_items() {
                    return Err(invalid!(
                        "history has {} columns but item_categories has {} items",
                        h.n_cols,
                        cats.n_items()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Writes p(g|u) into `out` (length n_categories); returns its sum (1 or 0).
    fn row(&self, u: usize, cats: &ItemCategories, out: &mut [f64]) -> Result<f64> {
        let g = out.len();
        out.fill(0.0);
        match self {
            Target::Dense { p, .. } => {
                let row = &p[u * g..(u + 1) * g];
                let mut sum = 0f64;
                for (k, &v) in row.iter().enumerate() {
                    if !v.is_finite() || v < 0.0 {
                        return Err(invalid!(
                            "p: row {u}, category {k} is {v}; p must be finite and non-negative"
                        ));
                    }
                    sum += v as f64;
                }
                if sum == 0.0 {
                    return Ok(0.0);
                }
                if (sum - 1.0).abs() > 1e-4 {
                    return Err(invalid!(
                        "p: row {u} sums to {sum}, not 1 (or 0 for a user without a target)"
                    ));
                }
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = v as f64 / sum;
                }
                Ok(1.0)
            }
            Target::History(h) => {
                for (i, w) in row_iter(h, u) {
                    if w < 0.0 {
                        return Err(invalid!(
                            "history: user {u}, item {i} has a negative weight {w}"
                        ));
                    }
                    for (c, v) in cats.item(i) {
                        out[c] += w * v;
                    }
                }
                let sum: f64 = out.iter().sum();
                if sum <= 0.0 {
                    out.fill(0.0);
                    return Ok(0.0);
                }
                out.iter_mut().for_each(|v| *v /= sum);
                Ok(1.0)
            }
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

/// KL(p || q~) from the list's category mass `m` and total rank weight `wsum`.
fn kl(p: &[f64], m: &[f64], wsum: f64, alpha: f64) -> f64 {
    let mut s = 0f64;
    for (&pg, &mg) in p.iter().zip(m) {
        if pg > 0.0 {
            let q = if wsum > 0.0 { mg / wsum } else { 0.0 };
            s += pg * (pg / ((1.0 - alpha) * q + alpha * pg)).ln();
        }
    }
    s
}

/// C_KL of a list of item ids (-1 skipped, but positions still count for rank weights).
fn list_kl(
    items: impl Iterator<Item = i64>,
    p: &[f64],
    cats: &ItemCategories,
    alpha: f64,
    rank_weighting: bool,
    m: &mut [f64],
) -> f64 {
    m.fill(0.0);
    let mut wsum = 0f64;
    for (r, id) in items.enumerate() {
        if id < 0 {
            continue;
        }
        let w = rank_weight(r, rank_weighting);
        wsum += w;
        for (g, c) in cats.item(id as usize) {
            m[g] += w * c;
        }
    }
    kl(p, m, wsum, alpha)
}

/// Reranked lists (`batch x n`, row-major, padded with -1 / -inf) with the original scores, and
/// per-user C_KL of the plain top-n and of the reranked list.
#[derive(Debug, Clone, Default)]
pub struct Reranked {
    pub ids: Vec<i64>,
    pub scores: Vec<f32>,
    pub ckl_before: Vec<f64>,
    pub ckl_after: Vec<f64>,
}

fn check_ids(name: &str, ids: &[i64], batch: usize, width: usize, n_items: usize) -> Result<()> {
    if ids.len() != batch * width {
        return Err(invalid!(
            "{name}: expected {batch} rows of {width}, got {} values",
            ids.len()
        ));
    }
    if let Some(pos) = ids.iter().position(|&x| x < -1 || x >= n_items as i64) {
        return Err(invalid!(
            "{name}: row {}, column {} has item id {}, outside 0..{n_items} (the rows of \
             item_categories); use -1 for padding",
            pos / width.max(1),
            pos % width.max(1),
            ids[pos]
        ));
    }
    Ok(())
}

/// Greedy calibrated reranking of `batch` users with `width` candidates each.
pub fn rerank(
    candidates: &[i64],
    scores: &[f32],
    batch: usize,
    width: usize,
    target: &Target,
    cats: &ItemCategories,
    params: &Params,
) -> Result<Reranked> {
    params.validate()?;
    check_ids("candidates", candidates, batch, width, cats.n_items())?;
    if scores.len() != candidates.len() {
        return Err(invalid!(
            "scores: expected the shape of candidates ({batch}, {width}), got {} values",
            scores.len()
        ));
    }
    target.check(batch, cats)?;
    let n = params.n;
    let mut ids = vec![-1i64; batch * n];
    let mut out = vec![f32::NEG_INFINITY; batch * n];
    let results: Vec<Result<(f64, f64)>> = ids
        .par_chunks_mut(n)
        .zip(out.par_chunks_mut(n))
        .enumerate()
        .map_init(
            || Scratch::new(cats.n_categories()),
            |sc, (u, (ids_u, out_u))| {
                let c = &candidates[u * width..(u + 1) * width];
                let s = &scores[u * width..(u + 1) * width];
                rerank_user(u, c, s, target, cats, params, sc, ids_u, out_u)
            },
        )
        .collect();
    let mut res = Reranked {
        ids,
        scores: out,
        ckl_before: Vec::with_capacity(batch),
        ckl_after: Vec::with_capacity(batch),
    };
    for r in results {
        let (b, a) = r?;
        res.ckl_before.push(b);
        res.ckl_after.push(a);
    }
    Ok(res)
}

/// The distinct (category, weight) terms of one user's candidates. Within a greedy step a
/// candidate's KL delta is a sum of terms that depend only on (g, c(g|i)), and normalised genre
/// flags take few values (1, 1/2, 1/3, ...): each step computes one logarithm per distinct term,
/// then each candidate's delta is a sum of table look-ups (in the item's category order, so the
/// values are bit-identical to evaluating every candidate directly).
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

struct Scratch {
    terms: Terms,
    p: Vec<f64>,
    m: Vec<f64>,
    base: Vec<f64>,
    valid: Vec<usize>,
    rel: Vec<f64>,
    order: Vec<(u64, usize)>,
    groups: Vec<(usize, usize)>,
    chosen: Vec<usize>,
    sorted: Vec<i64>,
}

impl Scratch {
    fn new(g: usize) -> Self {
        Self {
            terms: Terms::new(g),
            p: vec![0.0; g],
            m: vec![0.0; g],
            base: vec![0.0; g],
            valid: Vec::new(),
            rel: Vec::new(),
            order: Vec::new(),
            groups: Vec::new(),
            chosen: Vec::new(),
            sorted: Vec::new(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn rerank_user(
    u: usize,
    cands: &[i64],
    scores: &[f32],
    target: &Target,
    cats: &ItemCategories,
    params: &Params,
    sc: &mut Scratch,
    ids_u: &mut [i64],
    out_u: &mut [f32],
) -> Result<(f64, f64)> {
    // Validate the row and collect the valid candidate columns.
    sc.valid.clear();
    sc.sorted.clear();
    for (j, (&id, &s)) in cands.iter().zip(scores).enumerate() {
        if id < 0 {
            continue;
        }
        if !s.is_finite() {
            return Err(invalid!(
                "scores: row {u}, column {j} is {s}; scores of real candidates must be finite \
                 (use id -1 for padding)"
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
    let psum = target.row(u, cats, &mut sc.p)?;
    // Plain order: by raw score, descending, ties in input order (stable sort).
    sc.valid.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let nv = sc.valid.len();
    let k_max = params.n.min(nv);
    let (alpha, rw) = (params.alpha, params.rank_weighting);
    let before = list_kl(
        sc.valid[..k_max].iter().map(|&j| cands[j]),
        &sc.p,
        cats,
        alpha,
        rw,
        &mut sc.m,
    );
    sc.chosen.clear();
    if params.lambda == 0.0 || psum == 0.0 {
        sc.chosen.extend_from_slice(&sc.valid[..k_max]);
    } else {
        // Back to input order so that ties in the objective go to the earlier column.
        sc.valid.sort_unstable();
        normalise(
            params.normalize,
            sc.valid.iter().map(|&j| scores[j]),
            &mut sc.rel,
        );
        greedy(cands, cats, params, k_max, sc);
    }
    let after = list_kl(
        sc.chosen.iter().map(|&j| cands[j]),
        &sc.p,
        cats,
        alpha,
        rw,
        &mut sc.m,
    );
    for (k, &j) in sc.chosen.iter().enumerate() {
        ids_u[k] = cands[j];
        out_u[k] = scores[j];
    }
    Ok((before, after))
}

fn normalise(how: Normalize, s: impl Iterator<Item = f32> + Clone, rel: &mut Vec<f64>) {
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

/// Steck's greedy over `sc.valid` (input order), relevance `sc.rel`; fills `sc.chosen` with
/// candidate columns.
///
/// Candidates whose items have identical category vectors get identical KL deltas, so within
/// such a group only the best remaining member (highest relevance, then earliest column) can
/// win a step: the candidates are grouped once per user and each step evaluates one leader per
/// group. Ties in the objective go to the earliest column, exactly as without grouping.
fn greedy(cands: &[i64], cats: &ItemCategories, params: &Params, k_max: usize, sc: &mut Scratch) {
    let (lam, alpha) = (params.lambda, params.alpha);
    let nv = sc.valid.len();
    // Group by category vector: sort by (hash, relevance desc, column), split where rows differ.
    sc.order.clear();
    sc.order
        .extend((0..nv).map(|t| (cats.row_hash(cands[sc.valid[t]] as usize), t)));
    let rel = &sc.rel;
    sc.order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then(rel[b.1].total_cmp(&rel[a.1]))
            .then(a.1.cmp(&b.1))
    });
    sc.groups.clear();
    for k in 0..nv {
        let item = |k: usize| cands[sc.valid[sc.order[k].1]] as usize;
        if k == 0 || sc.order[k].0 != sc.order[k - 1].0 || !cats.same_row(item(k), item(k - 1)) {
            sc.groups.push((k, k + 1));
        } else if let Some(g) = sc.groups.last_mut() {
            g.1 = k + 1;
        }
    }
    let items = sc.valid.iter().map(|&j| cands[j] as usize);
    sc.terms.build(items, cats, &sc.p);
    sc.m.fill(0.0);
    let mut wsum = 0f64;
    for k in 0..k_max {
        let w = rank_weight(k, params.rank_weighting);
        let ws = wsum + w;
        // W' q~(g) of the current list, under the new total weight W'.
        for ((b, &pg), &mg) in sc.base.iter_mut().zip(&sc.p).zip(&sc.m) {
            if pg > 0.0 {
                *b = ((1.0 - alpha) * mg + alpha * ws * pg).ln();
            }
        }
        for ((v, &g), &c) in sc.terms.val.iter_mut().zip(&sc.terms.g).zip(&sc.terms.c) {
            let pg = sc.p[g];
            let new = ((1.0 - alpha) * (sc.m[g] + w * c) + alpha * ws * pg).ln();
            *v = pg * (new - sc.base[g]);
        }
        let mut best = usize::MAX; // index into groups
        let mut best_t = usize::MAX;
        let mut best_val = f64::NEG_INFINITY;
        for (gi, &(ptr, end)) in sc.groups.iter().enumerate() {
            if ptr == end {
                continue;
            }
            let t = sc.order[ptr].1;
            let val = (1.0 - lam) * sc.rel[t] + lam * sc.terms.delta(t);
            if best == usize::MAX || val > best_val || (val == best_val && t < best_t) {
                best = gi;
                best_t = t;
                best_val = val;
            }
        }
        sc.groups[best].0 += 1;
        let item = cands[sc.valid[best_t]] as usize;
        for (g, c) in cats.item(item) {
            sc.m[g] += w * c;
        }
        wsum = ws;
        sc.chosen.push(sc.valid[best_t]);
    }
}

/// p(g|u) for every user, `batch x n_categories` row-major.
pub fn target_distribution(
    target: &Target,
    batch: usize,
    cats: &ItemCategories,
) -> Result<Vec<f64>> {
    target.check(batch, cats)?;
    let g = cats.n_categories();
    let mut out = vec![0f64; batch * g];
    if g == 0 {
        return Ok(out);
    }
    out.par_chunks_mut(g)
        .enumerate()
        .map(|(u, row)| target.row(u, cats, row).map(|_| ()))
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<()>>()?;
    Ok(out)
}

fn per_user<F>(
    ids: &[i64],
    batch: usize,
    width: usize,
    target: &Target,
    cats: &ItemCategories,
    f: F,
) -> Result<Vec<f64>>
where
    F: Fn(&[i64], &[f64], &mut [f64]) -> f64 + Sync,
{
    check_ids("ids", ids, batch, width, cats.n_items())?;
    target.check(batch, cats)?;
    let g = cats.n_categories();
    let results: Vec<Result<f64>> = (0..batch)
        .into_par_iter()
        .map_init(
            || (vec![0f64; g], vec![0f64; g]),
            |(p, m), u| {
                target.row(u, cats, p)?;
                Ok(f(&ids[u * width..(u + 1) * width], p, m))
            },
        )
        .collect();
    results.into_iter().collect::<Result<Vec<f64>>>()
}

/// Per-user C_KL = KL(p || q~) of the lists `ids` (`batch x width`, -1 padding skipped).
pub fn miscalibration(
    ids: &[i64],
    batch: usize,
    width: usize,
    target: &Target,
    cats: &ItemCategories,
    alpha: f64,
    rank_weighting: bool,
) -> Result<Vec<f64>> {
    check_alpha(alpha)?;
    per_user(ids, batch, width, target, cats, |list, p, m| {
        list_kl(list.iter().copied(), p, cats, alpha, rank_weighting, m)
    })
}

/// Per-user share of the user's interests that appear in the list. The interests are the
/// categories with p(g|u) >= `threshold` (with `threshold` = 0: p(g|u) > 0), minus the user's top
/// category (the largest p, lowest index on ties) when `exclude_top`; a category appears when some
/// listed item has c(g|i) > 0. NaN for users with no such interests.
///
/// Minority-interest recall is `(threshold = 0.1, exclude_top = true)`; category coverage of the
/// user's profile is `(0, false)`.
pub fn interest_recall(
    ids: &[i64],
    batch: usize,
    width: usize,
    target: &Target,
    cats: &ItemCategories,
    threshold: f64,
    exclude_top: bool,
) -> Result<Vec<f64>> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(invalid!("threshold must lie in [0, 1], got {threshold}"));
    }
    per_user(ids, batch, width, target, cats, |list, p, present| {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Items: 0 drama, 1 drama, 2 doc, 3 half drama half doc, 4 no category.
    const CP: [i64; 6] = [0, 1, 2, 3, 5, 5];
    const CI: [i32; 5] = [0, 0, 1, 0, 1];
    const CD: [f32; 5] = [1.0, 1.0, 1.0, 0.5, 0.5];

    fn cats() -> ItemCategories<'static> {
        ItemCategories::new(CsrView::new("item_categories", 2, &CP, &CI, Some(&CD)).unwrap())
            .unwrap()
    }

    fn params(n: usize, lambda: f64) -> Params {
        Params {
            n,
            lambda,
            alpha: 0.01,
            rank_weighting: false,
            normalize: Normalize::MinMax,
        }
    }

    #[test]
    fn lambda_zero_is_score_order_with_stable_ties() {
        let c = cats();
        let p = [0.7f32, 0.3];
        let t = Target::Dense { p: &p, rows: 1 };
        let cand = [0, 1, 2, 4, -1];
        let s = [0.5, 0.9, 0.5, 0.1, f32::NEG_INFINITY];
        let r = rerank(&cand, &s, 1, 5, &t, &c, &params(6, 0.0)).unwrap();
        assert_eq!(r.ids, vec![1, 0, 2, 4, -1, -1]);
        assert_eq!(r.scores[..4], [0.9, 0.5, 0.5, 0.1]);
        assert!(r.scores[4] == f32::NEG_INFINITY);
        assert_eq!(r.ckl_before, r.ckl_after);
    }

    #[test]
    fn calibration_restores_minority_interest() {
        let c = cats();
        // History: 7 drama-ish, 3 doc -> p = (0.7, 0.3).
        let p = [0.7f32, 0.3];
        let t = Target::Dense { p: &p, rows: 1 };
        let cand = [0, 1, 2];
        let s = [1.0, 0.9, 0.1];
        let plain = rerank(&cand, &s, 1, 3, &t, &c, &params(2, 0.0)).unwrap();
        assert_eq!(plain.ids, vec![0, 1]);
        let cal = rerank(&cand, &s, 1, 3, &t, &c, &params(2, 0.9)).unwrap();
        assert_eq!(cal.ids, vec![0, 2]);
        assert!(cal.ckl_after[0] < cal.ckl_before[0]);
        // Hand-computed C_KL of [0, 1]: q = (1, 0), q~ = (0.99 + 0.007, 0.003).
        let q0 = 0.99 + 0.01 * 0.7;
        let q1 = 0.01 * 0.3;
        let want = 0.7 * (0.7f64 / q0).ln() + 0.3 * (0.3f64 / q1).ln();
        assert!((plain.ckl_after[0] - want).abs() < 1e-6);
        let mir = interest_recall(&cal.ids, 1, 2, &t, &c, 0.1, true).unwrap();
        assert_eq!(mir, vec![1.0]);
        let mir = interest_recall(&plain.ids, 1, 2, &t, &c, 0.1, true).unwrap();
        assert_eq!(mir, vec![0.0]);
        let m = miscalibration(&plain.ids, 1, 2, &t, &c, 0.01, false).unwrap();
        assert!((m[0] - plain.ckl_after[0]).abs() < 1e-12);
    }

    #[test]
    fn history_target_and_pass_through() {
        let c = cats();
        // User 0: items 0 and 3 -> mass (1.5, 0.5); user 1: only item 4 -> no target.
        let h = CsrView::new("history", 5, &[0, 2, 3], &[0, 3, 4], None).unwrap();
        let t = Target::History(h);
        let p = target_distribution(&t, 2, &c).unwrap();
        assert_eq!(p, vec![0.75, 0.25, 0.0, 0.0]);
        let cand = [1, 2, 4, 1, 2, 4];
        let s = [0.3, 0.2, 0.9, 0.3, 0.2, 0.9];
        let r = rerank(&cand, &s, 2, 3, &t, &c, &params(2, 1.0)).unwrap();
        assert_eq!(&r.ids[2..], &[4, 1]);
        assert_eq!(r.ckl_before[1], 0.0);
        assert!(interest_recall(&r.ids, 2, 2, &t, &c, 0.1, true).unwrap()[1].is_nan());
    }

    #[test]
    fn rejects_bad_input() {
        let c = cats();
        let p = [0.7f32, 0.3];
        let t = Target::Dense { p: &p, rows: 1 };
        let err = |cand: &[i64], s: &[f32], prm: Params| {
            rerank(cand, s, 1, cand.len(), &t, &c, &prm)
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[0, 5], &[1.0, 1.0], params(1, 0.5)).contains("row 0, column 1"));
        assert!(err(&[0, -2], &[1.0, 1.0], params(1, 0.5)).contains("outside"));
        assert!(err(&[0, 1], &[1.0, f32::NAN], params(1, 0.5)).contains("column 1"));
        assert!(err(&[0, 0], &[1.0, 1.0], params(1, 0.5)).contains("more than once"));
        assert!(err(&[0, 1], &[1.0, 1.0], params(1, 1.5)).contains("lambda"));
        assert!(err(&[0, 1], &[1.0, 1.0], params(0, 0.5)).contains("n must"));
        let mut prm = params(1, 0.5);
        prm.alpha = 0.0;
        assert!(err(&[0, 1], &[1.0, 1.0], prm).contains("alpha"));
        let bad = CsrView::new("item_categories", 2, &[0, 2], &[0, 1], Some(&[0.5, 0.6])).unwrap();
        assert!(ItemCategories::new(bad)
            .unwrap_err()
            .to_string()
            .contains("item 0"));
        let neg = CsrView::new("item_categories", 2, &[0, 2], &[0, 1], Some(&[1.5, -0.5])).unwrap();
        assert!(ItemCategories::new(neg)
            .unwrap_err()
            .to_string()
            .contains("negative"));
        let bp = [0.5f32, 0.3];
        let bt = Target::Dense { p: &bp, rows: 1 };
        assert!(rerank(&[0], &[1.0], 1, 1, &bt, &c, &params(1, 0.5))
            .unwrap_err()
            .to_string()
            .contains("sums to"));
        assert!(Normalize::parse("zscore").is_err());
    }
}
