//! Steck's greedy calibrated reranking: [`Reranker::rerank`], with the per-reranker item
//! signatures and the per-user candidate groups and flat term arrays that make each step cost
//! O(categories of the item) logarithms per candidate (see the parent module).

use rayon::prelude::*;

use super::metrics::{list_kl, rank_weight};
use super::{check_lambdas, AttrScratch, Attribute, Normalize, Reranker, Scratch, Target};
use crate::error::{buffer, Result};
use crate::fused::{list_len, result_buffers};
use crate::threads::Stop;
use crate::{invalid, vmath};

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

/// The catalogue's category vectors, precomputed once per reranker for the greedy: every
/// distinct (attribute, category, weight) is a key, every distinct vector of keys (an item's
/// categories in all attributes) a signature. Items with one signature have the same gain at
/// every greedy step, and a signature's keys are its terms.
#[derive(Clone, Debug, Default)]
pub(super) struct Signatures {
    of_item: Vec<u32>,
    /// Keys of signature k: `keys[start[k]..start[k + 1]]`.
    start: Vec<u32>,
    keys: Vec<u32>,
    key_attr: Vec<u16>,
    key_cat: Vec<u32>,
    key_c: Vec<f64>,
}

impl Signatures {
    pub(super) fn new(attrs: &[Attribute]) -> Self {
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

impl Reranker {
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
pub(super) struct Candidates {
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
pub(super) struct Flat {
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

#[cfg(test)]
mod tests {
    use super::super::testing::{cats, cfg, reranker, run};
    use super::*;
    use crate::calibrate::ItemCategories;
    use crate::csr::{CsrView, Index};

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
        let bp = [0.5f32, 0.3];
        let bt = Target::Dense(vec![&bp]);
        assert!(r
            .rerank(&[0], &[1.0], 1, &bt, 1, None, &Stop::new())
            .unwrap_err()
            .to_string()
            .contains("sums to"));
    }
}
