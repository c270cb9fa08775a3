//! Calibrated reranking (Steck, "Calibrated Recommendations", RecSys 2018) and calibration
//! metrics, over one or several category attributes (genre, decade, source...).
//!
//! Definitions, stated once (natural logarithms throughout), per attribute a:
//! - Item categories: an items x categories matrix whose row i is item i's category
//!   distribution c_a(g|i) (non-negative, summing to 1; an empty row means "no category"). With
//!   `normalize_rows`, rows of 0/1 flags are divided by their sums (three genres: 1/3 each).
//! - Target p_a(g|u): given directly (dense, rows summing to 1, or all zero), or from the user's
//!   history H(u) with per-interaction weights h_ui >= 0: p_a(g|u) = sum_i h_ui c_a(g|i),
//!   normalised. Users whose history holds fewer than `min_history` interactions (of positive
//!   weight) get no target; with `prior_weight` = beta > 0, a history target becomes Steck's
//!   p~ = beta p0 + (1 - beta) p, where p0 is the attribute's prior (default: the catalogue's
//!   category distribution).
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
//!
//! Layout: `categories.rs` holds the category data, `greedy.rs` the reranker's greedy (with
//! `first_pass.rs`, its AVX-512 / AVX2 f32 first pass, certified to choose as the f64 steps do)
//! and `metrics.rs` the calibration metrics; this module holds the reranker itself, its
//! settings and the per-user target both of them read.

mod categories;
mod first_pass;
mod greedy;
mod metrics;

pub use categories::{Attribute, ItemCategories, Normalize};

/// How the greedy's steps run on this CPU: "avx512" or "avx2", a certified f32 first pass with
/// those kernels (for users whose categories in play and terms fit its tables: at most 32 and
/// 63; other users' steps run in f64), or "f64" (every step in f64). `PERSONAE_ISA=avx2` caps
/// it at "avx2".
pub fn first_pass_path() -> &'static str {
    first_pass::path()
}
pub use greedy::Reranked;
pub use metrics::rank_weight;

use greedy::{Greedy, Signatures};

use crate::csr::{first_in, CsrView};
use crate::error::Result;
use crate::invalid;

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
    /// Tests: this reranker's f32 first-pass steps run to their end, and those of them left to
    /// the f64 step (its own counts, whatever other tests run beside it).
    #[cfg(test)]
    first_pass_steps: std::sync::Arc<[std::sync::atomic::AtomicU64; 2]>,
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
        let sigs = Signatures::new(&attrs, cfg.smoothing);
        Ok(Self {
            attrs,
            cfg,
            sigs,
            #[cfg(test)]
            first_pass_steps: Default::default(),
        })
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
        // Interactions of positive weight (a stored zero is not one), counted once per user
        // and only when min_history asks.
        let too_few = match target {
            Target::History(h) if self.cfg.min_history > 0 => {
                let held = h.row_iter(u).filter(|&(_, w)| w > 0.0).count();
                (held as i64) < self.cfg.min_history
            }
            _ => false,
        };
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
                    if too_few {
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
        // One unsigned compare: -1 (padding) maps to 0, ids below -1 wrap past any n_items.
        if let Some(pos) = first_in(ids, |&x| x.wrapping_add(1) as u64 > n_items as u64) {
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
    plain_keys: Vec<u64>,
    rel: Vec<f64>,
    greedy: Greedy,
    chosen: Vec<usize>,
    /// One bit per item, all clear between users (see [`Scratch::clear_seen`]); allocated by
    /// the reranker's first user on this scratch (the metrics never need it).
    seen: Vec<u64>,
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
            plain_keys: Vec::new(),
            rel: Vec::new(),
            greedy: Greedy::default(),
            chosen: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Clears the bits of `ids` (-1 skipped) in `seen`, whole words at a time: between users
    /// only the current user's bits are set.
    fn clear_seen(&mut self, ids: &[i64]) {
        for &id in ids.iter().filter(|&&id| id >= 0) {
            self.seen[id as usize / 64] = 0;
        }
    }
}

/// Shared fixtures of the calibrate tests.
#[cfg(test)]
mod testing {
    use super::*;
    use crate::csr::Index;
    use crate::threads::Stop;

    // Items: 0 drama, 1 drama, 2 doc, 3 half drama half doc, 4 no category.
    const CP: [i64; 6] = [0, 1, 2, 3, 5, 5];
    const CI: [i32; 5] = [0, 0, 1, 0, 1];
    const CD: [f32; 5] = [1.0, 1.0, 1.0, 0.5, 0.5];

    /// A seeded xorshift64 stream for the tests' random problems.
    pub(super) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    pub(super) fn cats() -> ItemCategories {
        let csr = CsrView::new("c", 2, Index::I64(&CP), Index::I32(&CI), Some(&CD)).unwrap();
        ItemCategories::new("item_categories", csr, false).unwrap()
    }

    pub(super) fn cfg() -> Config {
        Config {
            smoothing: 0.01,
            rank_weighting: false,
            normalize: Normalize::MinMax,
            min_history: 0,
            prior_weight: 0.0,
        }
    }

    pub(super) fn reranker(lambda: f64) -> Reranker {
        Reranker::new(vec![Attribute::new(cats(), lambda, None).unwrap()], cfg()).unwrap()
    }

    pub(super) fn run(
        r: &Reranker,
        cand: &[i64],
        s: &[f32],
        rows: usize,
        t: &Target,
        n: i64,
    ) -> Reranked {
        r.rerank(cand, s, rows, t, n, None, &Stop::new()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{cats, cfg, reranker, run};
    use super::*;
    use crate::csr::Index;

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
        assert!(out.ckl_before[1].is_nan()); // no target: C_KL undefined
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
    fn rejects_bad_settings() {
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
    }
}
