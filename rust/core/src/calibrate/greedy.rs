//! Steck's greedy calibrated reranking: [`Reranker::rerank`], with the per-reranker category
//! keys and the per-user flat term arrays that make each step cost one logarithm per distinct
//! (category, weight) in play and a few additions per candidate (see the parent module).

use rayon::prelude::*;

use super::first_pass;
use super::metrics::{list_kl, rank_weight};
use super::{check_lambdas, AttrScratch, Attribute, Normalize, Reranker, Scratch, Target};
use crate::error::{buffer, Result};
use crate::fused::{list_len, result_buffers};
use crate::threads::Stop;
use crate::{invalid, vmath};

/// Tests: every step exact (no f32 first pass), to compare the two.
#[cfg(test)]
pub(super) static EXACT_ONLY: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Whether a test asked for the f64 steps alone (never outside tests).
fn exact_only() -> bool {
    #[cfg(test)]
    return EXACT_ONLY.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(test))]
    false
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

/// The catalogue's category vectors, precomputed once per reranker for the greedy: every
/// distinct (attribute, category, weight) is a key, every distinct vector of keys (an item's
/// categories in all attributes) a signature, stored once. A candidate's gain at a greedy
/// step is its relevance plus one term per key of its signature.
#[derive(Clone, Debug, Default)]
pub(super) struct Signatures {
    of_item: Vec<u32>,
    /// Keys of signature k: `keys[start[k]..start[k + 1]]`.
    start: Vec<u32>,
    keys: Vec<u32>,
    key_attr: Vec<u16>,
    key_cat: Vec<u32>,
    key_c: Vec<f64>,
    /// (1 - s) c of each key: its addition to its category's base argument per unit of rank
    /// weight, with the reranker's smoothing s.
    key_c1s: Vec<f64>,
    /// Each key's category counted over all attributes (attribute a's first is the number of
    /// categories of attributes before it).
    key_gcat: Vec<u32>,
    /// The most keys any signature has.
    max_keys: usize,
    /// Signature k's term ids when every key is a term (key + 1), padded with the zero term
    /// to `max_keys`: `all_terms[k * max_keys..(k + 1) * max_keys]`. Empty when the padding
    /// would hold over four times the keys (a few items with many categories among many
    /// signatures); the greedy then looks each user's terms up instead.
    all_terms: Vec<u32>,
}

impl Signatures {
    pub(super) fn new(attrs: &[Attribute], smoothing: f64) -> Self {
        use std::collections::HashMap;
        let n_items = attrs.first().map_or(0, |a| a.cats.n_items());
        let mut s = Signatures {
            start: vec![0],
            ..Default::default()
        };
        let mut key_ids: HashMap<(u16, u32, u64), u32> = HashMap::new();
        let mut sig_ids: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut keys = Vec::new();
        let first_cat: Vec<usize> = attrs
            .iter()
            .scan(0, |n, a| {
                let first = *n;
                *n += a.cats.n_categories();
                Some(first)
            })
            .collect();
        for i in 0..n_items {
            keys.clear();
            for (a, attr) in attrs.iter().enumerate() {
                for (g, c) in attr.cats.item(i) {
                    let k = *key_ids
                        .entry((a as u16, g as u32, c.to_bits()))
                        .or_insert_with(|| {
                            s.key_attr.push(a as u16);
                            s.key_cat.push(g as u32);
                            s.key_gcat.push((first_cat[a] + g) as u32);
                            s.key_c.push(c);
                            s.key_c1s.push((1.0 - smoothing) * c);
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
            s.max_keys = s.max_keys.max(keys.len());
        }
        let mk = s.max_keys;
        let padded = (s.start.len() - 1) * mk;
        if padded > 4 * s.keys.len() + 1024 {
            return s;
        }
        s.all_terms = vec![0; padded];
        for (k, row) in s.all_terms.chunks_exact_mut(mk.max(1)).enumerate() {
            let keys = &s.keys[s.start[k] as usize..s.start[k + 1] as usize];
            for (t, &key) in row.iter_mut().zip(keys) {
                *t = key + 1;
            }
        }
        s
    }

    fn n_keys(&self) -> usize {
        self.key_c.len()
    }

    #[inline]
    fn n_keys_of(&self, sig: usize) -> usize {
        (self.start[sig + 1] - self.start[sig]) as usize
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
        if width > u32::MAX as usize {
            return Err(invalid!(
                "candidates: {width} columns; at most {} per user",
                u32::MAX
            ));
        }
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
        // Repeats: one bit per item, set here and cleared below (only the words this user
        // touched), instead of sorting the user's ids; any repeat is only noted here (no
        // branch on it), and looked for again on the error path.
        let mut repeats = 0u64;
        if sc.seen.is_empty() {
            sc.seen = vec![0; self.n_items().div_ceil(64)];
        }
        for (j, (&id, &s)) in cands.iter().zip(scores).enumerate() {
            if id < 0 {
                continue;
            }
            if !s.is_finite() {
                sc.clear_seen(cands);
                return Err(invalid!(
                    "scores: row {u}, column {j} is {s}; scores of real candidates must be \
                     finite (use id -1 for padding)"
                ));
            }
            let (word, bit) = (id as usize / 64, 1u64 << (id % 64));
            repeats |= sc.seen[word] & bit;
            sc.seen[word] |= bit;
            sc.valid.push(j);
        }
        sc.clear_seen(cands);
        if repeats != 0 {
            let mut seen = std::collections::HashSet::new();
            let id = cands.iter().find(|&&id| id >= 0 && !seen.insert(id));
            return Err(invalid!(
                "candidates: row {u} lists item {} more than once",
                id.copied().unwrap_or(-1)
            ));
        }
        let has_target = self.fill_target(target, u, sc)?;
        // Plain order: by raw score, descending, ties to the earlier column; only the first
        // k_max are needed, so select them before sorting.
        let k_max = n.min(sc.valid.len());
        // One integer key per candidate, ascending = score descending (in f32::total_cmp's
        // order), then column ascending: selection compares plain integers.
        let keys = &mut sc.plain_keys;
        keys.clear();
        keys.extend(sc.valid.iter().map(|&j| {
            let bits = scores[j].to_bits();
            let ascending = bits ^ (((bits as i32 >> 31) as u32) | 0x8000_0000);
            (u64::from(!ascending) << 32) | j as u64
        }));
        if k_max > 0 && k_max < keys.len() {
            keys.select_nth_unstable(k_max - 1);
        }
        keys.truncate(k_max);
        keys.sort_unstable();
        sc.plain.clear();
        sc.plain
            .extend(keys.iter().map(|&key| (key & u64::from(u32::MAX)) as usize));
        for (a, (attr, s)) in self.attrs.iter().zip(sc.attrs.iter_mut()).enumerate() {
            let items = sc.plain.iter().map(|&j| cands[j]);
            before[a] = list_kl(items, s, &attr.cats, &self.cfg);
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
            after[a] = list_kl(items, s, &attr.cats, &self.cfg);
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
    /// category and its weight c(g|i) (a key). So each step computes every distinct term in
    /// play once, over flat arrays: the list's base for each category in play, then each
    /// term's new value, one batch of logarithms ([`vmath::ln_in_place`], vectorised), with
    /// lambda and p(g) folded into the terms; then every candidate's gain is its relevance plus
    /// its few looked-up terms. With AVX-512 or AVX2 each step first runs in f32
    /// ([`Greedy::fast_step`]), which decides the step as the f64 arithmetic would (certified
    /// by an error bound; near ties are left to the f64 step).
    ///
    /// Ties in the objective go to the earliest column.
    fn greedy(&self, cands: &[i64], lambdas: &[f64], k_max: usize, sc: &mut Scratch) {
        let s = self.cfg.smoothing;
        let rel_weight = 1.0 - lambdas.iter().sum::<f64>();
        sc.rel.iter_mut().for_each(|r| *r *= rel_weight);
        let sigs = &self.sigs;
        let g = &mut sc.greedy;
        // Each candidate's signature, and the most keys any of them has (the term columns).
        g.sig.clear();
        g.sig
            .extend(sc.valid.iter().map(|&j| sigs.of_item[cands[j] as usize]));
        let (mut width, mut refs) = (0, 0);
        for &k in &g.sig {
            let n = sigs.n_keys_of(k as usize);
            (width, refs) = (width.max(n), refs + n);
        }
        let nv = g.sig.len();
        g.cols.clear();
        g.cols.resize(width * nv, 0);
        let padded = !sigs.all_terms.is_empty() || sigs.max_keys == 0;
        if padded && sigs.n_keys() + sc.attrs.iter().map(|a| a.p.len()).sum::<usize>() <= refs {
            // Few keys for these candidates: every key of the catalogue is a term (those not
            // in play weigh 0), so no per-user lookups.
            g.all_keys(sigs, &sc.attrs, lambdas);
            // Every candidate copies `width` columns of its signature's padded term ids: the
            // same trip count for every candidate and no data-dependent branch. (With a branch
            // on the key count, 1-3 at random on the bench, mispredictions made this fill cost
            // a sixth of the call.)
            let mk = sigs.max_keys;
            for t in 0..nv {
                let first = g.sig[t] as usize * mk;
                for (col, &id) in sigs.all_terms[first..first + width].iter().enumerate() {
                    g.cols[col * nv + t] = id;
                }
            }
        } else {
            g.start(sigs.n_keys());
            sc.attrs.iter_mut().for_each(AttrScratch::reset_slots);
            for t in 0..nv {
                for (col, &key) in sigs.keys_of(g.sig[t] as usize).iter().enumerate() {
                    let a = sigs.key_attr[key as usize] as usize;
                    let id = g.term(key, sigs, &mut sc.attrs[a], lambdas[a]);
                    g.cols[col * nv + t] = id;
                }
            }
        }
        // What the steps read without bounds checks: every term id indexes `val` (the terms
        // plus the zero term), every term's slot the slots.
        debug_assert!(g.cols.iter().all(|&id| id as usize <= g.term_slot.len()));
        debug_assert!(g.term_slot.iter().all(|&j| (j as usize) < g.slot_p.len()));
        g.prepare_first_pass(&sc.rel);
        let mut wsum = 0f64;
        for k in 0..k_max {
            let w = rank_weight(k, self.cfg.rank_weighting);
            let ws = wsum + w;
            let t = match g.fast_step(s, w, ws) {
                Some(t) => t,
                None => {
                    g.values(s, w, ws);
                    g.best(&sc.rel)
                }
            };
            for col in g.cols.chunks_exact(nv) {
                if let Some(i) = (col[t] as usize).checked_sub(1) {
                    g.slot_m[g.term_slot[i] as usize] += w * g.term_c[i];
                }
            }
            sc.rel[t] = f64::NEG_INFINITY;
            if g.fast {
                g.rel32[t] = f32::NEG_INFINITY;
            }
            wsum = ws;
            sc.chosen.push(sc.valid[t]);
        }
        #[cfg(test)]
        for (total, n) in self
            .first_pass_steps
            .iter()
            .zip(std::mem::take(&mut g.steps))
        {
            total.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
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
            let (lo, hi) = range_of(rel);
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

/// The greedy's state for one user, structure of arrays: the categories in play ("slots"),
/// the distinct terms over them, and every candidate's terms. Term `i` is `val[i + 1]`;
/// `val[0]` is the zero term, which pads the candidates' term columns.
#[derive(Default)]
pub(super) struct Greedy {
    /// Per key: the user (stamp) it was last looked up for, and its term id then (0: none).
    key_stamp: Vec<u32>,
    key_term: Vec<u32>,
    stamp: u32,
    slot_p: Vec<f64>,
    slot_m: Vec<f64>,
    /// Logarithms of a step: the slots' base arguments, then the terms' arguments.
    ln: Vec<f64>,
    term_slot: Vec<u32>,
    term_c: Vec<f64>,
    /// (1 - s) c, the term's addition to its slot's base argument per unit of rank weight.
    term_c1s: Vec<f64>,
    /// lambda p(g), the term's weight in the objective.
    term_lp: Vec<f64>,
    /// lambda p(g) of every category of every attribute (0 when not in play).
    cat_lp: Vec<f64>,
    val: Vec<f64>,
    /// Per candidate (input order): its signature; its term ids, column j at
    /// `cols[j * nv..(j + 1) * nv]`; its objective at this step.
    sig: Vec<u32>,
    cols: Vec<u32>,
    obj: Vec<f64>,
    /// The f32 first pass ([`Greedy::fast_step`]): whether it runs for this user; the terms
    /// padded for it; the candidates' f32 relevance (-inf once taken) and objectives; the
    /// largest |relevance|, lambda p(g) and (1 - s) c.
    fast: bool,
    terms: first_pass::Terms,
    rel32: Vec<f32>,
    obj32: Vec<f32>,
    rel_max: f64,
    lp_max: f64,
    c1s_max: f64,
    /// Tests: first-pass steps run to their end and deferred, since the reranker last took
    /// them (`Reranker::first_pass_steps`).
    #[cfg(test)]
    steps: [u64; 2],
}

impl Greedy {
    /// Forgets the last user, for a catalogue of `n_keys` keys.
    fn start(&mut self, n_keys: usize) {
        self.stamp = self.stamp.wrapping_add(1);
        if self.key_stamp.len() != n_keys || self.stamp == 0 {
            self.key_stamp = vec![0; n_keys];
            self.key_term = vec![0; n_keys];
            self.stamp = 1;
        }
        self.slot_p.clear();
        self.slot_m.clear();
        self.term_slot.clear();
        self.term_c.clear();
        self.term_c1s.clear();
        self.term_lp.clear();
    }

    /// Every key of the catalogue as term `key + 1`, every category of every attribute as a
    /// slot (those not in play with p = 1 and a zero weight, so their terms are 0).
    fn all_keys(&mut self, sigs: &Signatures, attrs: &[AttrScratch], lambdas: &[f64]) {
        self.slot_p.clear();
        self.slot_m.clear();
        self.cat_lp.clear();
        for (st, &lambda) in attrs.iter().zip(lambdas) {
            for &p in &st.p {
                let play = st.has && lambda != 0.0 && p > 0.0;
                self.slot_p.push(if play { p } else { 1.0 });
                self.slot_m.push(0.0);
                self.cat_lp.push(if play { lambda * p } else { 0.0 });
            }
        }
        self.term_slot.clone_from(&sigs.key_gcat);
        self.term_c.clone_from(&sigs.key_c);
        self.term_c1s.clone_from(&sigs.key_c1s);
        self.term_lp.clear();
        self.term_lp
            .extend(sigs.key_gcat.iter().map(|&g| self.cat_lp[g as usize]));
    }

    /// The term id of `key` (0 when its category is not in play: no target, lambda 0 or
    /// p(g) = 0), adding the term, and its category's slot, when new.
    #[inline]
    fn term(&mut self, key: u32, sigs: &Signatures, st: &mut AttrScratch, lambda: f64) -> u32 {
        let k = key as usize;
        if self.key_stamp[k] == self.stamp {
            return self.key_term[k];
        }
        self.key_stamp[k] = self.stamp;
        let g = sigs.key_cat[k] as usize;
        let id = if st.has && lambda != 0.0 && st.p[g] > 0.0 {
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
            self.term_slot.push(slot);
            self.term_c.push(sigs.key_c[k]);
            self.term_c1s.push(sigs.key_c1s[k]);
            self.term_lp.push(lambda * st.p[g]);
            self.term_slot.len() as u32
        } else {
            0
        };
        self.key_term[k] = id;
        id
    }

    /// Every term's value at a step adding rank weight `w` to a list of total weight `ws - w`.
    fn values(&mut self, s: f64, w: f64, ws: f64) {
        // One buffer, one batch of logarithms: W' q~(g) of the current list for every slot
        // under the new total weight W', then every term's argument.
        let (ns, nt) = (self.slot_m.len(), self.term_slot.len());
        let ln = &mut self.ln;
        ln.resize(ns + nt, 0.0);
        let (base, args) = ln.split_at_mut(ns);
        for ((b, &m), &p) in base.iter_mut().zip(&self.slot_m).zip(&self.slot_p) {
            *b = (1.0 - s) * m + s * ws * p;
        }
        for ((a, &j), &c) in args.iter_mut().zip(&self.term_slot).zip(&self.term_c1s) {
            // SAFETY: every term's slot is below ns = base.len(): slots are handed out with
            // their terms (`term`), or are every category (`all_keys`; asserted in debug
            // builds at set-up). Unchecked so that the loop stays tight.
            *a = unsafe { *base.get_unchecked(j as usize) } + w * c;
        }
        // A term's argument is its slot's base argument plus a non-negative amount, so
        // base arguments in the log's fast domain put every term there too.
        if vmath::all_normal(base) {
            vmath::ln_normal_in_place(ln);
        } else {
            vmath::ln_in_place(ln);
        }
        let (base_ln, new_ln) = ln.split_at(ns);
        self.val.resize(nt + 1, 0.0);
        self.val[0] = 0.0;
        for (((v, &new), &j), &lp) in self.val[1..]
            .iter_mut()
            .zip(new_ln)
            .zip(&self.term_slot)
            .zip(&self.term_lp)
        {
            // SAFETY: j < ns = base_ln.len() (as above).
            *v = lp * (new - unsafe { *base_ln.get_unchecked(j as usize) });
        }
    }

    /// Set-up of the f32 first pass for this user's candidates: it runs where the CPU has
    /// AVX-512 or AVX2 and the user's slots (at least one) and terms fit its tables.
    fn prepare_first_pass(&mut self, rel: &[f64]) {
        self.fast = !exact_only()
            && (1..=first_pass::SLOTS).contains(&self.slot_m.len())
            && self.term_slot.len() < first_pass::TERMS
            && first_pass::available();
        if !self.fast {
            return;
        }
        self.rel32.clear();
        self.rel32.extend(rel.iter().map(|&r| r as f32));
        self.obj32.resize(rel.len(), 0.0);
        let (lo, hi) = range_of(rel);
        self.rel_max = hi.max(-lo);
        self.terms
            .fill(&self.term_slot, &self.term_c1s, &self.term_lp);
        // (lambda p(g) and (1 - s) c are never negative.)
        self.lp_max = range_of(&self.term_lp).1.max(0.0);
        self.c1s_max = range_of(&self.term_c1s).1.max(0.0);
    }

    /// One greedy step by an f32 first pass, certified: every candidate's objective in f32
    /// (f32 logarithms, twice the lanes of f64 and a cheaper division), within a bound `eps`
    /// of its f64 objective that [`Greedy::values`] and [`Greedy::best`] would compute. Only
    /// candidates within `2 eps` of the best f32 objective can be the f64 argmax; when that
    /// is one candidate it is the step's choice, so the lists are those of the f64 steps.
    /// `None` (the caller runs the f64 step) when several are that close, or when a base
    /// argument is outside [1e-30, 1e30], where f32 loses its precision or the f64 step's
    /// logarithm takes another route.
    fn fast_step(&mut self, s: f64, w: f64, ws: f64) -> Option<usize> {
        if !self.fast {
            return None;
        }
        // SAFETY: `fast` means the first pass's CPU features were detected and the slots fit
        // (slot_m and slot_p grow together).
        let (base32, lo, hi) = unsafe { first_pass::bases(&self.slot_m, &self.slot_p, s, ws) };
        if !(lo >= 1e-30 && hi <= 1e30) {
            return None;
        }
        // Every |ln| of the step is at most L: the arguments lie in [lo, hi + w max c], and
        // |ln x| <= (|binary exponent of x| + 1) ln 2.
        let exponent = |x: f64| ((x.to_bits() >> 52) as i64 - 1023).unsigned_abs() as f64;
        let big =
            (exponent(lo).max(exponent(hi + w * self.c1s_max)) + 1.0) * std::f64::consts::LN_2;
        // SAFETY: `fast` means the first pass's features were detected and the slots and terms
        // fit; term ids are at most the number of terms (see `values`); cols holds whole
        // columns.
        let top = unsafe {
            first_pass::scores(
                &base32,
                &self.terms,
                w as f32,
                &self.rel32,
                &self.cols,
                &mut self.obj32,
            )
        };
        if top == f32::NEG_INFINITY {
            return None;
        }
        // |f32 objective - f64 objective| <= eps. Per term, the f32 value is lp ln(1 + x), x =
        // (w c) / base, one logarithm where the f64 step takes two (the same quantity):
        // x carries the base's, w's and c's rounding and the product's and quotient's (under
        // 5 2^-24 relative), which moves ln(1 + x) by at most that, absolutely, as x >= 0 (rank
        // weights and category weights are never negative, bases positive); 1 + x rounded
        // adds 2^-24; the f32 log's 1 ulp (pinned by a vmath test) is 2^-23 ln(1 + x), and
        // ln(1 + x) = ln(base + w c) - ln(base) <= 2L; lambda p(g) rounded and the product
        // add 2^-24 each, relative: under 2^-21 lp (L + 1) in all, with L the largest |ln|
        // (`big`, bounded from the exponents; plus 2 to spare); taken as 2^-18.
        // Then the relevance rounded and `width` additions, each 2^-24 of the partial sums,
        // under (R + 2 width lp (L + 1)); taken as 2^-23 per operation. The f64 objectives'
        // own rounding (2^-52 relative) is far inside both margins.
        let width = (self.cols.len() / self.rel32.len().max(1)) as f64;
        let l1 = big + 2.0;
        const E18: f64 = 1.0 / 262_144.0; // 2^-18
        const E23: f64 = 1.0 / 8_388_608.0; // 2^-23
        let eps = width * self.lp_max * l1 * E18
            + (width + 2.0) * (self.rel_max + 2.0 * width * self.lp_max * l1) * E23;
        // The f32 at or below the f64 floor: `o >= floor` in f32 is `o >= floor` in f64.
        let floor = top as f64 - 2.0 * eps;
        let mut floor32 = floor as f32;
        if floor32 as f64 > floor {
            floor32 = floor32.next_down();
        }
        // SAFETY: the first pass's features were detected (`fast`).
        let (count, first) = unsafe { first_pass::at_least(&self.obj32, floor32) };
        #[cfg(test)]
        {
            self.steps[0] += 1;
            self.steps[1] += u64::from(count > 1);
        }
        // Near ties (a few steps in 100,000 on the bench) are left to the f64 step.
        (count == 1).then_some(first)
    }

    /// The candidate with the highest `relevance + sum of its terms' values` (`rel` is
    /// -inf for those taken), ties to the earliest.
    fn best(&mut self, rel: &[f64]) -> usize {
        sum_terms(&mut self.obj, rel, &self.cols, &self.val);
        // The maximum over independent lanes (no NaN here: relevance and terms are finite),
        // then its first position.
        let mut lanes = [f64::NEG_INFINITY; 8];
        for chunk in self.obj.chunks(8) {
            for (m, &o) in lanes.iter_mut().zip(chunk) {
                *m = if o > *m { o } else { *m };
            }
        }
        let top = lanes.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        self.obj.iter().position(|&o| o == top).unwrap_or(0)
    }
}

/// The smallest and largest of `xs` (finite), over independent lanes so that it vectorises.
fn range_of(xs: &[f64]) -> (f64, f64) {
    let (mut lo, mut hi) = ([f64::INFINITY; 8], [f64::NEG_INFINITY; 8]);
    for chunk in xs.chunks(8) {
        for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(chunk) {
            *l = if x < *l { x } else { *l };
            *h = if x > *h { x } else { *h };
        }
    }
    let lo = lo.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = hi.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// `obj[t] = rel[t] + val[cols[0][t]] + val[cols[1][t]] + ...`, `cols` holding columns of
/// `rel.len()` ids that index `val`, added in that order.
fn sum_terms(obj: &mut Vec<f64>, rel: &[f64], cols: &[u32], val: &[f64]) {
    let nv = rel.len();
    obj.clear();
    match cols.len().checked_div(nv).unwrap_or(0) {
        1 => sum_fixed::<1>(obj, rel, cols, val),
        2 => sum_fixed::<2>(obj, rel, cols, val),
        3 => sum_fixed::<3>(obj, rel, cols, val),
        4 => sum_fixed::<4>(obj, rel, cols, val),
        _ => {
            obj.extend_from_slice(rel);
            for col in cols.chunks_exact(nv.max(1)) {
                for (o, &id) in obj.iter_mut().zip(col) {
                    // SAFETY: ids index val: the greedy hands out at most as many term ids
                    // as it has terms (`Greedy::term`, `all_keys`; asserted in debug builds
                    // at set-up), and val holds the terms plus the zero term.
                    *o += unsafe { *val.get_unchecked(id as usize) };
                }
            }
        }
    }
}

/// [`sum_terms`] for `J` columns, one candidate at a time (its sum kept in a register).
#[inline(always)]
fn sum_fixed<const J: usize>(obj: &mut Vec<f64>, rel: &[f64], cols: &[u32], val: &[f64]) {
    let nv = rel.len();
    let cols: [&[u32]; J] = std::array::from_fn(|j| &cols[j * nv..(j + 1) * nv]);
    obj.extend(rel.iter().enumerate().map(|(t, &r)| {
        let mut v = r;
        for col in &cols {
            // SAFETY: ids index val (see sum_terms), t < nv; unchecked because the bounds checks
            // cost more than the adds. (Gathers were slower still on the Xeon measured.)
            v += unsafe { *val.get_unchecked(*col.get_unchecked(t) as usize) };
        }
        v
    }));
}

#[cfg(test)]
mod tests {
    use super::super::testing::{cats, cfg, reranker, run, xorshift};
    use super::*;
    use crate::calibrate::ItemCategories;
    use crate::csr::{CsrView, Index};

    /// The all-keys path's padded term rows are kept only while their padding stays within a
    /// few times the keys: 300 items of 3 of 60 categories pad nothing, one more item with all
    /// 60 would pad every row to 60 (tests/test_rerank.py checks the lists do not change).
    #[test]
    fn padded_term_rows_are_bounded() {
        let sigs_of = |rows: &[Vec<i32>]| {
            let mut indptr = vec![0i64];
            let indices: Vec<i32> = rows.iter().flatten().copied().collect();
            for r in rows {
                indptr.push(indptr.last().unwrap() + r.len() as i64);
            }
            let data = vec![1f32; indices.len()];
            let csr = CsrView::new(
                "c",
                60,
                Index::I64(&indptr),
                Index::I32(&indices),
                Some(&data),
            );
            let cats = ItemCategories::new("c", csr.unwrap(), true).unwrap();
            Signatures::new(&[Attribute::new(cats, 0.5, None).unwrap()], 0.01)
        };
        let mut rows: Vec<Vec<i32>> = (0..300)
            .map(|i| vec![i % 60, (i / 60) % 60, 59 - i % 7])
            .collect();
        rows.iter_mut().for_each(|r| {
            r.sort_unstable();
            r.dedup();
        });
        let few = sigs_of(&rows);
        assert_eq!(few.all_terms.len(), (few.start.len() - 1) * few.max_keys);
        rows.push((0..60).collect());
        let every = sigs_of(&rows);
        assert_eq!(every.max_keys, 60);
        assert!(every.all_terms.is_empty());
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

    /// Random problems whose objectives often tie or nearly tie (few distinct scores, items
    /// sharing categories and weights, raw scores whose f32 rounding is as large as the
    /// gaps), with 3 to 45 categories (past the first pass's 32
    /// slots and 63 terms too), weighted categories, rank weighting, both normalisations and
    /// zeros in the targets: the first pass's lists, scores and C_KL are the exact steps'
    /// bits.
    #[test]
    fn first_pass_gives_the_exact_steps_lists() {
        use std::sync::atomic::Ordering::Relaxed;
        let mut next = xorshift(0x1234_5678_9abc_def1u64);
        // Steps and deferrals of the AVX2 kernels alone (run here even where AVX-512 is).
        let (mut avx2_steps, mut avx2_deferred) = (0, 0);
        let (mut fast_steps, mut deferred) = (0, 0);
        for case in 0..40 {
            let g = [3usize, 8, 20, 31, 45][case % 5];
            let n_items = 300usize;
            let (mut indptr, mut indices, mut data) = (vec![0i64], vec![], vec![]);
            for _ in 0..n_items {
                let k = 1 + (next() % 3) as usize;
                let mut row: Vec<i32> = (0..k).map(|_| (next() % g as u64) as i32).collect();
                row.sort_unstable();
                row.dedup();
                for &c in &row {
                    indices.push(c);
                    data.push(if case % 2 == 0 {
                        1.0
                    } else {
                        1.0 + (next() % 3) as f32
                    });
                }
                indptr.push(indices.len() as i64);
            }
            let csr = CsrView::new(
                "c",
                g,
                Index::I64(&indptr),
                Index::I32(&indices),
                Some(&data),
            )
            .unwrap();
            let cats = ItemCategories::new("c", csr, true).unwrap();
            let mut c = cfg();
            c.rank_weighting = case % 3 == 0;
            if case % 4 == 1 {
                c.normalize = Normalize::None;
            }
            let lam = [0.3, 0.5, 0.9][case % 3];
            let r = Reranker::new(vec![Attribute::new(cats, lam, None).unwrap()], c).unwrap();
            let (users, width) = (30usize, 50usize);
            let mut cand = Vec::new();
            let mut scores = Vec::new();
            let mut p = Vec::new();
            for _ in 0..users {
                let mut items: Vec<i64> = (0..n_items as i64).collect();
                for i in 0..width {
                    let j = i + (next() % (n_items - i) as u64) as usize;
                    items.swap(i, j);
                }
                cand.extend_from_slice(&items[..width]);
                for _ in 0..width {
                    scores.push(if case % 4 == 1 {
                        // Raw scores near 1e4: their f32 objectives round at ~1e-3, the size
                        // of the gaps between candidates, so the f32 order is often wrong.
                        10_000.0 + (next() % 500) as f32 * 1e-3
                    } else if case % 2 == 0 {
                        [0.0f32, 0.25, 0.5, 1.0][(next() % 4) as usize]
                    } else {
                        (next() % 1000) as f32 / 1000.0
                    });
                }
                let row: Vec<f32> = (0..g)
                    .map(|_| {
                        if next().is_multiple_of(3) {
                            0.0
                        } else {
                            (next() % 100) as f32
                        }
                    })
                    .collect();
                let sum: f32 = row.iter().sum::<f32>().max(1.0);
                p.extend(row.iter().map(|v| v / sum));
            }
            let t = Target::Dense(vec![&p]);
            let n = [10, 20, 50][case % 3];
            EXACT_ONLY.store(true, Relaxed);
            let exact = run(&r, &cand, &scores, users, &t, n);
            EXACT_ONLY.store(false, Relaxed);
            let steps = || r.first_pass_steps.each_ref().map(|c| c.load(Relaxed));
            let before = steps();
            let mut fasts = vec![run(&r, &cand, &scores, users, &t, n)];
            let after = steps();
            (fast_steps, deferred) = (
                fast_steps + after[0] - before[0],
                deferred + after[1] - before[1],
            );
            if first_pass::available() {
                first_pass::FORCE_AVX2.store(true, Relaxed);
                fasts.push(run(&r, &cand, &scores, users, &t, n));
                first_pass::FORCE_AVX2.store(false, Relaxed);
                let avx2 = steps();
                avx2_steps += avx2[0] - after[0];
                avx2_deferred += avx2[1] - after[1];
            }
            for fast in fasts {
                assert_eq!(fast.ids, exact.ids, "case {case}");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast.scores), bits(&exact.scores), "case {case}");
                let bits64 = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits64(&fast.ckl_after),
                    bits64(&exact.ckl_after),
                    "case {case}"
                );
            }
        }
        // On a CPU with the first pass both of its outcomes ran, with the AVX2 kernels too.
        if first_pass::available() {
            assert!(fast_steps > 0 && deferred > 0);
            assert!(avx2_steps > 0 && avx2_deferred > 0);
        }
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
        // The first id seen twice, padding skipped; a bad score anywhere in the row first.
        assert!(err(&[3, 1, -1, 1, 3], &[1.0; 5], 1).contains("item 1 more than once"));
        assert!(err(&[1, 1, 2], &[1.0, 1.0, f32::NAN], 1).contains("column 2"));
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
