//! AMP-CF, personae's persona model: each user is a few personas, an item-item filter lets
//! every persona vote on its own, and an attention over personas that depends on the candidate
//! item decides which persona speaks for it.
//!
//! A user's history `H_u` (item `i`, weight `x_ui`) is split into personas. Items belong to
//! global taste clusters (`item_cluster`, fitted once); a user's personas are their `K` heaviest
//! clusters (ties to the lower cluster id), and every other history item joins the persona whose
//! cluster centroid is closest to it (`centroids . z_i`, ties to the lower persona). Persona k:
//!
//! ```text
//! v_ujk = sum_{i in H_uk} x_ui (S_ij + L_i . R_j)       the persona's vote for item j
//! e_uk  = normalise(sum_{i in H_uk} x_ui z_i)           its direction in the item space
//! pi_uk = sum_{i in H_uk} x_ui / sum_{i in H_u} x_ui    its share of the history
//! a_ujk = softmax_k( e_uk . z_j / tau + delta ln pi_uk )
//! s_uj  = (1 - mix) sum_k v_ujk + mix sum_k a_ujk pi_uk^-gamma v_ujk
//! ```
//!
//! `S` (item x item, dense or sparse CSR) and the low-rank pair `L`, `R` (items x r) form the
//! filter, fitted in closed form by the Python side; `z_j` are unit item vectors. With one
//! persona, or `mix = 0`, the score is the filter's `x_u F`. The score splits exactly into the
//! personas' parts `c_ujk = (1 - mix) v_ujk + mix a_ujk pi_uk^-gamma v_ujk`, and the persona
//! behind item j (the dominant one) is `argmax_k c_ujk`: the attention alone is nearly flat
//! where one direction of the item space dominates (popular items), the parts are what the
//! ranking used. A user is their history alone: new users need no retraining.
//!
//! Fused scoring: per user chunk, [`TileScorer::prepare`] splits the histories and builds the
//! persona rows (`e`, `x L`); per item tile, two GEMMs give every persona's cosines and low-rank
//! votes, the item-item votes are added from `S`'s rows, and the softmax over personas and the
//! weighted sum run in place. Scratch is `2 x persona rows x tile` floats per thread; the
//! `users x K x items` tensor never exists.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::checkpoint::{Checkpoint, Tensor, Values};
use crate::csr::CsrView;
use crate::error::{buffer, Result};
use crate::filter::{axpy, dot, Entry, Filter};
use crate::fused::{self, Recommended, Request, TileScorer};
use crate::model::Model;
use crate::threads::Stop;
use crate::vmath::normalise;
use crate::{bad_model, gemm, invalid, out_of_range, vmath};

mod prune;

/// A loaded AMP-CF model (see the module docs).
#[derive(Debug)]
pub struct AmpCf {
    pub n_items: usize,
    pub tau: f32,
    pub mix: f32,
    pub delta: f32,
    pub gamma: f32,
    /// The filter every persona votes through.
    pub filter: Filter,
    /// How histories split into personas.
    pub space: PersonaSpace,
    item_count: Option<Vec<f32>>,
    tastes: Option<Tastes>,
    /// Serve top-N with the fused scorer on every item instead of the certified pruned
    /// top-N ([`prune`]): the reference the pruned lists are tested against.
    exact_top_n: AtomicBool,
    /// The pruned top-N's tables of `R` (its rows' norms, its AVX-512 packing), built on
    /// first use (boxed: the model's enum variant stays small).
    prune_tables: OnceLock<Box<prune::Tables>>,
}

/// What splits a history into personas (module docs): the items' taste clusters and unit
/// vectors, and the clusters' centroids. Needs no filter, so a fit can read its training
/// users' personas before the model exists.
#[derive(Debug)]
pub struct PersonaSpace {
    /// Most personas per user (K).
    pub n_personas: usize,
    /// Number of global taste clusters.
    pub n_clusters: usize,
    /// Dimension of the item space `z`.
    pub att_dim: usize,
    item_space: Vec<f32>,   // [I, a], unit or zero rows
    item_cluster: Vec<i32>, // [I], -1 for none
    centroids: Vec<f32>,    // [C, a]
}

/// The base tastes a fit derives for interviews (see `personae.AMPCF.base_tastes`): per taste
/// cluster and item, the taste's log-lift of the item (`phi`, items x clusters), the item's
/// log-odds for anyone (`offset`), and the distribution of training users' taste shares
/// (`prior_mean`, `prior_cov`).
#[derive(Debug, Clone)]
pub struct Tastes {
    pub phi: Vec<f32>,
    pub offset: Vec<f32>,
    pub prior_mean: Vec<f32>,
    pub prior_cov: Vec<f32>,
}

/// Why pairs of (user, item) are scored as they are, as [`AmpCf::explain`] returns them; `P`
/// pairs, `K` personas, `h` history items per pair.
#[derive(Debug, Default)]
pub struct Explanation {
    /// The attention over the user's personas, `P x K` (0 for personas a user lacks).
    pub attention: Vec<f32>,
    /// Each persona's part of the score, `P x K`: `c_ujk = (1 - mix) v_ujk + mix a_ujk
    /// pi_uk^-gamma v_ujk` (`v_ujk` with one persona or `mix = 0`), so `sum_k c_ujk = s_uj`;
    /// 0 for personas a user lacks.
    pub part: Vec<f32>,
    /// The persona behind the item, the one with the largest part (the first on ties; 0 for
    /// an empty history), `P`.
    pub dominant: Vec<i64>,
    /// That persona's taste cluster (-1 for an empty history), `P`.
    pub taste: Vec<i64>,
    /// The dominant persona's history items that vote most for the item (`x_ui F_ij`, best
    /// first, -1 padded), `P x h`.
    pub because: Vec<i64>,
    /// Their votes (NaN padded), `P x h`.
    pub votes: Vec<f32>,
}

/// Users' personas, as [`AmpCf::personas`] returns them.
#[derive(Debug, Default)]
pub struct Personas {
    /// `rows x K`: the taste cluster of each persona, -1 for none (padding, or a history with
    /// no clustered item).
    pub cluster: Vec<i64>,
    /// `rows x K`: each persona's share of the history weight; 0 for padding.
    pub share: Vec<f32>,
    /// One per stored history entry (in CSR order): the persona it belongs to.
    pub entry: Vec<i64>,
}

fn f32_field(c: &Checkpoint, key: &str) -> Result<f32> {
    let v = c
        .manifest
        .get(key)
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| bad_model!("manifest.json: missing number field '{key}'"))?;
    if !v.is_finite() {
        return Err(bad_model!("ampcf: '{key}' must be finite, got {v}"));
    }
    Ok(v as f32)
}

/// The most personas a user may have: far above any useful K (a user's personas are their
/// heaviest taste clusters), and small enough that per-persona buffers stay bounded.
pub const MAX_PERSONAS: usize = 1024;

impl AmpCf {
    /// Builds the model from a validated checkpoint of kind `ampcf`.
    pub fn from_checkpoint(mut c: Checkpoint) -> Result<Self> {
        c.expect_kind("ampcf")?;
        if c.has("personas") {
            return Err(bad_model!(
                "this file holds an AMP-CF model of personae 0.1 (trained persona vectors), which \
                 this version no longer serves: its AMP-CF is the persona-attentive filter. \
                 Retrain with `personae train --model ampcf` (seconds on MovieLens)"
            ));
        }
        let n = c.usize_field("n_items")?;
        let k = c.usize_field("n_personas")?;
        let tau = f32_field(&c, "tau")?;
        let mix = f32_field(&c, "mix")?;
        let delta = f32_field(&c, "delta")?;
        let gamma = f32_field(&c, "gamma")?;
        if n == 0 || k == 0 {
            return Err(bad_model!("ampcf: n_items and n_personas must be positive"));
        }
        if k > MAX_PERSONAS {
            return Err(bad_model!(
                "ampcf: n_personas must be at most {MAX_PERSONAS}, got {k}"
            ));
        }
        if tau <= 0.0 {
            return Err(bad_model!("ampcf: 'tau' must be positive, got {tau}"));
        }
        if !(0.0..=1.0).contains(&mix) {
            return Err(bad_model!("ampcf: 'mix' must be in [0, 1], got {mix}"));
        }
        let filter = Filter::from_checkpoint(&mut c, n, "ampcf")?;
        let space = PersonaSpace::from_checkpoint(&mut c, n, k)?;
        let item_count = c.take_optional("item_count", &[n])?;
        let cl = space.n_clusters;
        let tastes = match c.take_optional("taste_phi", &[n, cl])? {
            None => None,
            Some(phi) => Some(Tastes {
                phi,
                offset: c.take("taste_offset", &[n])?,
                prior_mean: c.take("taste_prior_mean", &[cl])?,
                prior_cov: c.take("taste_prior_cov", &[cl, cl])?,
            }),
        };
        Ok(Self {
            n_items: n,
            tau,
            mix,
            delta,
            gamma,
            filter,
            space,
            item_count,
            tastes,
            exact_top_n: AtomicBool::new(false),
            prune_tables: OnceLock::new(),
        })
    }

    /// Whether `recommend` runs the fused scorer on every item (true) or the certified pruned
    /// top-N (false, the default); both give the same lists, ties aside.
    pub fn exact_top_n(&self) -> bool {
        self.exact_top_n.load(Ordering::Relaxed)
    }

    /// Switches `recommend` between the fused scorer on every item (the reference) and the
    /// pruned top-N (see [`AmpCf::exact_top_n`]).
    pub fn set_exact_top_n(&self, on: bool) {
        self.exact_top_n.store(on, Ordering::Relaxed);
    }

    /// The base tastes for interviews, when the file has them.
    pub fn tastes(&self) -> Option<&Tastes> {
        self.tastes.as_ref()
    }

    fn check_users(&self, users: &CsrView) -> Result<()> {
        fused::check_users(users, self.n_items)
    }

    /// Each user's personas (see [`Personas`]).
    pub fn personas(&self, users: &CsrView) -> Result<Personas> {
        self.check_users(users)?;
        self.space.personas(&users.unit_rows())
    }

    /// Why each pair `(row pair_user[p] of users, item pair_item[p])` is scored as it is (see
    /// [`Explanation`]), every paired row's personas built once. `n_because` history items
    /// are listed per pair.
    pub fn explain(
        &self,
        users: &CsrView,
        pair_user: &[i64],
        pair_item: &[i64],
        n_because: i64,
    ) -> Result<Explanation> {
        let h = usize::try_from(n_because)
            .map_err(|_| invalid!("n_history must be >= 0, got {n_because}"))?;
        let len = pair_user.len().checked_mul(h);
        let mut because = buffer("because", len, -1i64)?;
        let mut votes = buffer("because", len, f32::NAN)?;
        self.check_users(users)?;
        let users = &users.unit_rows();
        self.check_pairs(users.n_rows, pair_user, pair_item)?;
        let states = self.pair_states(users, pair_user);
        let (attention, part, dominant) = self.parts_of(users, &states, pair_user, pair_item);
        let state = |p: usize| {
            states[pair_user[p] as usize]
                .as_ref()
                .expect("a state for every paired row")
        };
        let taste = (0..pair_user.len())
            .map(|p| {
                let c = state(p).cluster.get(dominant[p] as usize);
                c.map_or(-1, |&c| c as i64)
            })
            .collect();
        if h > 0 {
            because
                .par_chunks_mut(h)
                .zip(votes.par_chunks_mut(h))
                .enumerate()
                .for_each(|(p, (ids, votes))| {
                    let (r, j) = (pair_user[p] as usize, pair_item[p] as usize);
                    let dom = dominant[p] as usize;
                    let mut cand: Vec<(f32, i64)> = users
                        .row_iter(r)
                        .zip(&state(p).entry)
                        .filter(|(_, &e)| e == dom)
                        .map(|((i, x), _)| (x as f32 * self.filter_entry(i, j), i as i64))
                        .collect();
                    // Largest vote first, ties to the lower item index.
                    cand.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    for ((slot_i, slot_v), (v, i)) in ids.iter_mut().zip(votes.iter_mut()).zip(cand)
                    {
                        *slot_i = i;
                        *slot_v = v;
                    }
                });
        }
        Ok(Explanation {
            attention,
            part,
            dominant,
            taste,
            because,
            votes,
        })
    }

    /// The personas of the rows that appear in `pair_user` (checked pairs), each built once
    /// (None for the others).
    fn pair_states(&self, users: &CsrView, pair_user: &[i64]) -> Vec<Option<UserPersonas>> {
        let mut listed = vec![false; users.n_rows];
        for &u in pair_user {
            listed[u as usize] = true;
        }
        listed
            .into_par_iter()
            .enumerate()
            .map(|(r, on)| on.then(|| self.space.user_personas(users, r)))
            .collect()
    }

    fn attention_of(
        &self,
        states: &[Option<UserPersonas>],
        pair_user: &[i64],
        pair_item: &[i64],
    ) -> Vec<f32> {
        let (k, a) = (self.space.n_personas, self.space.att_dim);
        let mut out = vec![0f32; pair_user.len() * k];
        out.par_chunks_mut(k).enumerate().for_each(|(p, w)| {
            let st = states[pair_user[p] as usize]
                .as_ref()
                .expect("a state for every paired row");
            let j = pair_item[p] as usize;
            let z = &self.space.item_space[j * a..(j + 1) * a];
            let np = st.share.len();
            for (kk, wk) in w[..np].iter_mut().enumerate() {
                let e = &st.emb[kk * a..(kk + 1) * a];
                *wk = dot(e, z) / self.tau + self.delta * st.share[kk].ln();
            }
            softmax(&mut w[..np]);
        });
        out
    }

    /// `(attention, parts, dominant)` of the pairs, see [`Explanation`].
    fn parts_of(
        &self,
        users: &CsrView,
        states: &[Option<UserPersonas>],
        pair_user: &[i64],
        pair_item: &[i64],
    ) -> (Vec<f32>, Vec<f32>, Vec<i64>) {
        let att = self.attention_of(states, pair_user, pair_item);
        let k = self.space.n_personas;
        let mut part = vec![0f32; att.len()];
        let mut lead = vec![0i64; pair_user.len()];
        part.par_chunks_mut(k)
            .zip(att.par_chunks(k))
            .zip(lead.par_iter_mut())
            .enumerate()
            .for_each_init(
                || vec![0f32; k],
                |v, (p, ((w, at), d))| {
                    let (r, j) = (pair_user[p] as usize, pair_item[p] as usize);
                    let st = states[r].as_ref().expect("a state for every paired row");
                    v.fill(0.0);
                    for ((i, x), &e) in users.row_iter(r).zip(&st.entry) {
                        v[e] += x as f32 * self.filter_entry(i, j);
                    }
                    let np = st.share.len();
                    let personal = np > 1 && self.mix != 0.0;
                    for (kk, wk) in w[..np].iter_mut().enumerate() {
                        *wk = if personal {
                            let weight = st.share[kk].powf(-self.gamma);
                            blend(self.mix, v[kk], at[kk] * weight * v[kk])
                        } else {
                            v[kk]
                        };
                    }
                    *d = argmax(&w[..np.max(1)]) as i64;
                },
            );
        (att, part, lead)
    }

    fn check_pairs(&self, rows: usize, pair_user: &[i64], pair_item: &[i64]) -> Result<()> {
        if pair_user.len() != pair_item.len() {
            return Err(invalid!(
                "{} users but {} items in the pairs",
                pair_user.len(),
                pair_item.len()
            ));
        }
        if let Some(p) = pair_user
            .iter()
            .position(|&u| u < 0 || u as u64 >= rows as u64)
        {
            return Err(out_of_range!(
                "user row {} is outside 0..{rows}",
                pair_user[p]
            ));
        }
        if let Some(p) = pair_item
            .iter()
            .position(|&j| j < 0 || j as u64 >= self.n_items as u64)
        {
            return Err(out_of_range!(
                "items: index {} is outside 0..{}",
                pair_item[p],
                self.n_items
            ));
        }
        Ok(())
    }

    /// The filter's entry `F_ij`.
    fn filter_entry(&self, i: usize, j: usize) -> f32 {
        self.filter.entry(i, j)
    }
}

impl PersonaSpace {
    /// Takes the persona tensors (`item_space`, `item_cluster`, `centroids`) out of a
    /// checkpoint of `n` items, for `k` personas per user.
    pub fn from_checkpoint(c: &mut Checkpoint, n: usize, k: usize) -> Result<Self> {
        let (n_clusters, att_dim) = match c.shape("centroids") {
            Some(&[cl, a]) if cl > 0 && a > 0 => (cl, a),
            _ => {
                return Err(bad_model!(
                    "ampcf: tensor 'centroids' must be 2-D [clusters > 0, dim > 0]"
                ))
            }
        };
        let item_space = c.take("item_space", &[n, att_dim])?;
        let item_cluster = c.take_i32("item_cluster", &[n])?;
        let centroids = c.take("centroids", &[n_clusters, att_dim])?;
        Self::new(k, item_space, item_cluster, centroids, att_dim)
    }

    /// Checks and assembles the parts (`item_space` `n x dim`, unit or zero rows;
    /// `item_cluster` `n`, -1 for none; `centroids` `clusters x dim`).
    pub fn new(
        n_personas: usize,
        item_space: Vec<f32>,
        item_cluster: Vec<i32>,
        centroids: Vec<f32>,
        att_dim: usize,
    ) -> Result<Self> {
        if n_personas == 0 || n_personas > MAX_PERSONAS {
            return Err(invalid!(
                "n_personas must be in 1..={MAX_PERSONAS}, got {n_personas}"
            ));
        }
        if att_dim == 0 || centroids.is_empty() || !centroids.len().is_multiple_of(att_dim) {
            return Err(bad_model!(
                "ampcf: centroids must be [clusters > 0, {att_dim}], got {} values",
                centroids.len()
            ));
        }
        if item_space.len() != item_cluster.len() * att_dim {
            return Err(bad_model!(
                "ampcf: item_space must be [{}, {att_dim}], got {} values",
                item_cluster.len(),
                item_space.len()
            ));
        }
        let n_clusters = centroids.len() / att_dim;
        if let Some(p) = item_cluster
            .iter()
            .position(|&l| l < -1 || l as i64 >= n_clusters as i64)
        {
            return Err(bad_model!(
                "ampcf: item_cluster[{p}] = {} is outside -1..{n_clusters}",
                item_cluster[p]
            ));
        }
        Ok(Self {
            n_personas,
            n_clusters,
            att_dim,
            item_space,
            item_cluster,
            centroids,
        })
    }

    /// The taste cluster of every item (-1 for none).
    pub fn item_cluster(&self) -> &[i32] {
        &self.item_cluster
    }

    /// Cluster centroids `n_clusters x att_dim`.
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    fn tensors(&self) -> Vec<Tensor<'_>> {
        let (n, a) = (self.item_cluster.len(), self.att_dim);
        vec![
            ("item_space", vec![n, a], (&self.item_space).into()),
            ("item_cluster", vec![n], Values::I32(&self.item_cluster)),
            (
                "centroids",
                vec![self.n_clusters, a],
                (&self.centroids).into(),
            ),
        ]
    }

    /// Each user's personas (see [`Personas`]), from histories already checked.
    pub fn personas(&self, users: &CsrView) -> Result<Personas> {
        let k = self.n_personas;
        let rows = users.n_rows;
        let len = rows.checked_mul(k);
        let mut out = Personas {
            cluster: buffer("personas", len, -1)?,
            share: buffer("personas", len, 0.0)?,
            entry: buffer("personas", Some(users.nnz()), 0)?,
        };
        let mut split = Split::default();
        for r in 0..rows {
            self.split(users, r, &mut split);
            for (p, (&c, &s)) in split.cluster.iter().zip(&split.share).enumerate() {
                out.cluster[r * k + p] = c as i64;
                out.share[r * k + p] = s;
            }
            let range = users.row_range(r);
            for (e, &p) in out.entry[range].iter_mut().zip(&split.entry) {
                *e = p as i64;
            }
        }
        Ok(out)
    }

    /// Splits row `r`'s history into personas (module docs), into `out`.
    fn split(&self, users: &CsrView, r: usize, out: &mut Split) {
        let (k, a) = (self.n_personas, self.att_dim);
        out.cluster.clear();
        out.share.clear();
        out.entry.clear();
        out.weight.clear();
        out.weight.resize(self.n_clusters, 0.0);
        let mut total = 0f64;
        let mut any = false;
        for (i, x) in users.row_iter(r) {
            any = true;
            total += x;
            let c = self.item_cluster[i];
            if c >= 0 {
                out.weight[c as usize] += x;
            }
        }
        if !any {
            return;
        }
        // The K heaviest clusters: a partial selection, then sorted (weight desc, id asc).
        let mut top: Vec<(f64, usize)> = Vec::with_capacity(k + 1);
        for (c, &w) in out.weight.iter().enumerate() {
            if w > 0.0 && (top.len() < k || w > top[k - 1].0) {
                let at = top.partition_point(|&(tw, _)| tw >= w);
                top.insert(at, (w, c));
                top.truncate(k);
            }
        }
        if top.is_empty() {
            // No clustered item (or all weights zero): one persona holds the whole history.
            out.cluster.push(-1);
        } else {
            out.cluster.extend(top.iter().map(|&(_, c)| c as i32));
        }
        let np = out.cluster.len();
        let mut mass = vec![0f64; np];
        for (i, x) in users.row_iter(r) {
            let c = self.item_cluster[i];
            let p = match out.cluster.iter().position(|&kc| kc == c && c >= 0) {
                Some(p) => p,
                None if top.is_empty() => 0,
                None => {
                    // The kept centroid closest to this item; ties to the lower persona.
                    let z = &self.item_space[i * a..(i + 1) * a];
                    let mut best = (f32::NEG_INFINITY, 0);
                    for (p, &kc) in out.cluster.iter().enumerate() {
                        let s = dot(&self.centroids[kc as usize * a..(kc as usize + 1) * a], z);
                        if s > best.0 {
                            best = (s, p);
                        }
                    }
                    best.1
                }
            };
            out.entry.push(p);
            mass[p] += x;
        }
        for m in mass {
            out.share.push(if total > 0.0 {
                (m / total) as f32
            } else {
                1.0 / np as f32
            });
        }
    }

    /// Writes into `emb` (`personas x att_dim`, zeroed) the unit direction of each persona of
    /// row `r`, whose entries belong to the personas `entry`: `normalise(sum x_i z_i)`.
    fn directions(&self, users: &CsrView, r: usize, entry: &[usize], emb: &mut [f32]) {
        let a = self.att_dim;
        for ((i, x), &p) in users.row_iter(r).zip(entry) {
            axpy(
                &mut emb[p * a..(p + 1) * a],
                x as f32,
                &self.item_space[i * a..(i + 1) * a],
            );
        }
        emb.chunks_exact_mut(a).for_each(normalise);
    }

    /// Row `r`'s persona directions and shares.
    fn user_personas(&self, users: &CsrView, r: usize) -> UserPersonas {
        let a = self.att_dim;
        let mut split = Split::default();
        self.split(users, r, &mut split);
        let mut emb = vec![0f32; split.share.len() * a];
        self.directions(users, r, &split.entry, &mut emb);
        UserPersonas {
            emb,
            cluster: split.cluster,
            share: split.share,
            entry: split.entry,
        }
    }
}

/// Scratch of [`AmpCf::split`], reused across users.
#[derive(Default)]
struct Split {
    weight: Vec<f64>,  // per cluster
    cluster: Vec<i32>, // per persona
    share: Vec<f32>,   // per persona
    entry: Vec<usize>, // per history entry
}

/// One user's personas: unit directions `np x a`, taste clusters, shares, and each history
/// entry's persona.
struct UserPersonas {
    emb: Vec<f32>,
    cluster: Vec<i32>,
    share: Vec<f32>,
    entry: Vec<usize>,
}

/// The score's one formula, `(1 - mix) plain + mix attended`: for a whole item (`plain` the
/// filter's vote `sum_k v_k`, `attended` `sum_k a_k pi_k^-gamma v_k`) or for one persona's
/// part of it (`v_k` and `a_k pi_k^-gamma v_k`).
#[inline(always)]
fn blend(mix: f32, plain: f32, attended: f32) -> f32 {
    (1.0 - mix) * plain + mix * attended
}

/// First maximum, as numpy's argmax.
fn argmax(w: &[f32]) -> usize {
    let mut best = 0;
    for (k, &x) in w.iter().enumerate() {
        if x > w[best] {
            best = k;
        }
    }
    best
}

/// In-place softmax of a short slice (max-subtracted).
fn softmax(w: &mut [f32]) {
    let mx = w.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for x in w.iter_mut() {
        *x = (*x - mx).exp();
        s += *x;
    }
    w.iter_mut().for_each(|x| *x /= s);
}

impl Model for AmpCf {
    fn kind(&self) -> &'static str {
        "ampcf"
    }

    /// With `explain`, also the dominant persona of each listed item (-1 for padding), in the
    /// same call.
    fn recommend(&self, users: &CsrView, req: &Request, stop: &Stop) -> Result<Recommended> {
        self.check_users(users)?;
        let users = &users.unit_rows();
        // The pruned path names the dominant personas itself, from its exact pass; with
        // mix = 0 and K > 1 it scores users as one persona, so explain takes the pairs' way.
        let parts_in_pass = !(self.mix == 0.0 && self.space.n_personas > 1);
        if !self.exact_top_n() && (!req.explain || parts_in_pass) {
            return prune::top_n(self, users, req.n, &req.filters, req.explain, stop);
        }
        let (ids, scores) = fused::top_n(&Scorer::new(self), users, req.n, &req.filters, stop)?;
        if !req.explain {
            return Ok((ids, scores, None));
        }
        let width = ids.len() / users.n_rows.max(1);
        let (pu, pi): (Vec<i64>, Vec<i64>) = ids
            .iter()
            .enumerate()
            .filter(|(_, &j)| j >= 0)
            .map(|(t, &j)| ((t / width.max(1)) as i64, j))
            .unzip();
        // The pairs are top_n's own lists of checked users: valid by construction.
        let states = self.pair_states(users, &pu);
        let (_, _, lead) = self.parts_of(users, &states, &pu, &pi);
        let mut dom = vec![-1i64; ids.len()];
        let listed = dom.iter_mut().zip(&ids).filter(|(_, &j)| j >= 0);
        for ((slot, _), d) in listed.zip(lead) {
            *slot = d;
        }
        Ok((ids, scores, Some(dom)))
    }

    fn score(&self, users: &CsrView, stop: &Stop) -> Result<Vec<f32>> {
        fused::dense_scores(&Scorer::new(self), &users.unit_rows(), stop)
    }

    /// Unit item vectors `n_items x att_dim` (zero rows for items without a direction).
    fn item_space(&self) -> Option<(&[f32], usize)> {
        Some((&self.space.item_space, self.space.att_dim))
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    /// The stored tensors, for writing the model back to a file.
    fn tensors(&self) -> Vec<Tensor<'_>> {
        let n = self.n_items;
        let mut t = self.filter.tensors();
        t.extend(self.space.tensors());
        if let Some(c) = &self.item_count {
            t.push(("item_count", vec![n], c.into()));
        }
        if let Some(ts) = &self.tastes {
            let cl = self.space.n_clusters;
            t.push(("taste_phi", vec![n, cl], (&ts.phi).into()));
            t.push(("taste_offset", vec![n], (&ts.offset).into()));
            t.push(("taste_prior_mean", vec![cl], (&ts.prior_mean).into()));
            t.push(("taste_prior_cov", vec![cl, cl], (&ts.prior_cov).into()));
        }
        t
    }

    /// Training interactions per item, when recorded.
    fn item_count(&self) -> Option<&[f32]> {
        self.item_count.as_deref()
    }
}

/// [`AmpCf`] as the [`TileScorer`] of the fused loop.
struct Scorer<'a> {
    model: &'a AmpCf,
    /// Score every user as one persona (the filter alone): exact when `mix = 0`.
    collapse: bool,
}

impl<'a> Scorer<'a> {
    fn new(model: &'a AmpCf) -> Self {
        let collapse = model.mix == 0.0 || model.space.n_personas == 1;
        Self { model, collapse }
    }
}

/// Per-chunk state: the chunk's persona rows and a reusable scratch.
struct ChunkState {
    m: usize,
    /// Persona rows of user u: `first[u]..first[u + 1]`.
    first: Vec<usize>,
    /// Per persona row: `delta ln pi` and `pi^-gamma`.
    logit_shift: Vec<f32>,
    weight: Vec<f32>,
    emb: Vec<f32>, // [P, a], unit or zero
    low: Vec<f32>, // [P, r]
    /// History entries: (item, persona row, weight).
    entries: Vec<Entry>,
    scratch: RefCell<(Vec<f32>, Vec<f32>)>,
}

impl TileScorer for Scorer<'_> {
    type State = ChunkState;

    fn n_items(&self) -> usize {
        self.model.n_items
    }

    fn prepare(&self, users: &CsrView, rows: Range<usize>) -> ChunkState {
        let md = self.model;
        let (a, r) = (md.space.att_dim, md.filter.rank);
        let m = rows.len();
        let mut st = ChunkState {
            m,
            first: Vec::with_capacity(m + 1),
            logit_shift: Vec::new(),
            weight: Vec::new(),
            emb: Vec::new(),
            low: Vec::new(),
            entries: Vec::new(),
            scratch: RefCell::new((Vec::new(), Vec::new())),
        };
        let mut split = Split::default();
        let mut p0 = 0;
        for row in rows {
            st.first.push(p0);
            let np = if self.collapse {
                split.share.clear();
                split.entry.clear();
                let len = users.row(row).len();
                if len > 0 {
                    split.share.push(1.0);
                    split.entry.resize(len, 0);
                }
                split.share.len()
            } else {
                md.space.split(users, row, &mut split);
                split.share.len()
            };
            for &s in &split.share {
                st.logit_shift.push(md.delta * s.ln());
                st.weight.push(s.powf(-md.gamma));
            }
            st.emb.resize((p0 + np) * a, 0.0);
            st.low.resize((p0 + np) * r, 0.0);
            if !self.collapse {
                md.space
                    .directions(users, row, &split.entry, &mut st.emb[p0 * a..]);
            }
            for ((i, x), &p) in users.row_iter(row).zip(&split.entry) {
                let pr = p0 + p;
                let x = x as f32;
                st.entries.push((i as u32, pr as u32, x));
                md.filter.add_low(&mut st.low[pr * r..(pr + 1) * r], x, i);
            }
            p0 += np;
        }
        st.first.push(p0);
        st
    }

    fn score_tile(&self, st: &ChunkState, items: Range<usize>, out: &mut [f32]) {
        let md = self.model;
        let a = md.space.att_dim;
        let w = items.len();
        let np = st.first[st.m];
        let mut scratch = st.scratch.borrow_mut();
        let (cos, val) = &mut *scratch;
        if val.len() < np * w {
            val.resize(np * w, 0.0);
            cos.resize(np * w, 0.0);
        }
        md.filter
            .votes_tile(&st.low, np, &st.entries, items.clone(), val);
        let val = &val[..np * w];
        let cos = &mut cos[..np * w];
        if !self.collapse {
            let z = &md.space.item_space[items.start * a..items.end * a];
            gemm::a_bt(np, w, a, &st.emb, z, cos);
        }
        for u in 0..st.m {
            let ps = st.first[u]..st.first[u + 1];
            let row = &mut out[u * w..(u + 1) * w];
            match ps.len() {
                0 => row.fill(0.0),
                1 => row.copy_from_slice(&val[ps.start * w..ps.end * w]),
                _ => {
                    let mix = Mix {
                        shift: &st.logit_shift[ps.clone()],
                        weight: &st.weight[ps.clone()],
                        inv_tau: 1.0 / md.tau,
                        mix: md.mix,
                    };
                    let rows = ps.start * w..ps.end * w;
                    combine(row, &mut cos[rows.clone()], &val[rows], &mix)
                }
            }
        }
    }
}

/// One user's persona rows as `combine` weighs them: `delta ln pi_k`, `pi_k^-gamma`, and the
/// model's `1 / tau` and `mix`.
struct Mix<'a> {
    shift: &'a [f32],
    weight: &'a [f32],
    inv_tau: f32,
    mix: f32,
}

/// `row[j] = (1 - mix) sum_k val_kj + mix sum_k softmax_k(cos_kj / tau + shift_k) weight_k val_kj`
/// over the user's persona rows (`cos` is overwritten).
///
/// The only transcendental work in scoring (one exponential per persona and item), so it runs
/// on [`vmath::exp_neg_f32`], which vectorises, and on AVX2 + FMA where the CPU has them.
#[inline]
fn combine(row: &mut [f32], cos: &mut [f32], val: &[f32], m: &Mix) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the features combine_avx2 is compiled for were detected on this CPU.
        return unsafe { combine_avx2(row, cos, val, m) };
    }
    combine_impl(row, cos, val, m)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn combine_avx2(row: &mut [f32], cos: &mut [f32], val: &[f32], m: &Mix) {
    combine_impl(row, cos, val, m)
}

#[inline(always)]
fn combine_impl(row: &mut [f32], cos: &mut [f32], val: &[f32], c: &Mix) {
    let w = row.len();
    // Logits in place, and their max over personas in `row` (every loop runs along the
    // contiguous item axis, so it vectorises).
    for (k, lg) in cos.chunks_exact_mut(w).enumerate() {
        let s = c.shift[k];
        lg.iter_mut().for_each(|x| *x = *x * c.inv_tau + s);
        if k == 0 {
            row.copy_from_slice(lg);
        } else {
            row.iter_mut()
                .zip(lg.iter())
                .for_each(|(m, &x)| *m = m.max(x));
        }
    }
    const B: usize = 64;
    let (mut num, mut den, mut sum) = ([0f32; B], [0f32; B], [0f32; B]);
    let mut j0 = 0;
    while j0 < w {
        let j1 = (j0 + B).min(w);
        let b = j1 - j0;
        num[..b].fill(0.0);
        den[..b].fill(0.0);
        sum[..b].fill(0.0);
        for (k, &wk) in c.weight.iter().enumerate() {
            let lg = &cos[k * w + j0..k * w + j1];
            let v = &val[k * w + j0..k * w + j1];
            for t in 0..b {
                let e = vmath::exp_neg_f32(lg[t] - row[j0 + t]);
                num[t] += e * wk * v[t];
                den[t] += e;
                sum[t] += v[t];
            }
        }
        for t in 0..b {
            row[j0 + t] = blend(c.mix, sum[t], num[t] / den[t]);
        }
        j0 = j1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::encode;
    use crate::checkpoint::tests::rand_vec;
    use crate::csr::Index;
    use crate::fused::{DenseScores, Exclude, Filters};

    struct Toy {
        n: usize,
        k: usize,
        c: usize,
        a: usize,
        r: usize,
        sparse: bool,
        mix: f32,
        delta: f32,
        gamma: f32,
    }

    /// The model and its filter `F` as a dense matrix.
    fn toy(t: &Toy, seed: u64) -> (AmpCf, Vec<f32>) {
        let mut s = seed;
        let (n, a, r, c) = (t.n, t.a, t.r, t.c);
        let mut dense = rand_vec(n * n, &mut s);
        let mut space = rand_vec(n * a, &mut s);
        space.chunks_exact_mut(a).for_each(normalise);
        // A zero item vector: an item without a direction.
        space[..a].fill(0.0);
        let cent = rand_vec(c * a, &mut s);
        let cluster: Vec<i32> = (0..n).map(|i| (i * 7 % (c + 1)) as i32 - 1).collect();
        let ll = rand_vec(n * r, &mut s);
        let lr = rand_vec(n * r, &mut s);
        let (mut indptr, mut indices, mut data) = (vec![0i64], vec![], vec![]);
        if t.sparse {
            for i in 0..n {
                for j in 0..n {
                    if (i * 31 + j * 17) % 5 == 0 {
                        indices.push(j as i32);
                        data.push(dense[i * n + j]);
                    } else {
                        dense[i * n + j] = 0.0;
                    }
                }
                indptr.push(indices.len() as i64);
            }
        }
        let mut tensors: Vec<Tensor> = vec![
            ("item_space", vec![n, a], (&space).into()),
            ("item_cluster", vec![n], (&cluster).into()),
            ("centroids", vec![c, a], (&cent).into()),
        ];
        if t.sparse {
            tensors.push(("votes_indptr", vec![n + 1], (&indptr).into()));
            tensors.push(("votes_indices", vec![indices.len()], (&indices).into()));
            tensors.push(("votes_data", vec![data.len()], (&data).into()));
        } else {
            tensors.push(("votes", vec![n, n], (&dense).into()));
        }
        if r > 0 {
            tensors.push(("low_left", vec![n, r], (&ll).into()));
            tensors.push(("low_right", vec![n, r], (&lr).into()));
        }
        let m = serde_json::json!({"kind": "ampcf", "n_items": n, "n_personas": t.k,
            "tau": 0.7, "mix": t.mix, "delta": t.delta, "gamma": t.gamma});
        let (text, w) = encode(&m.to_string(), &tensors).unwrap();
        let md = AmpCf::from_checkpoint(Checkpoint::from_bytes(text.as_bytes(), &w).unwrap());
        // F = S + L R^T, densely, from the toy's own parts.
        for i in 0..n {
            for j in 0..n {
                dense[i * n + j] += dot(&ll[i * r..(i + 1) * r], &lr[j * r..(j + 1) * r]);
            }
        }
        (md.unwrap(), dense)
    }

    /// The score of the module docs, written from the definition in f64.
    fn naive(md: &AmpCf, f_dense: &[f32], hist: &[(usize, f64)], j: usize) -> f64 {
        let (n, sp) = (md.n_items, &md.space);
        let a = sp.att_dim;
        if hist.is_empty() {
            return 0.0;
        }
        let mut w = vec![0f64; sp.n_clusters];
        for &(i, x) in hist {
            if sp.item_cluster[i] >= 0 {
                w[sp.item_cluster[i] as usize] += x;
            }
        }
        let mut order: Vec<usize> = (0..sp.n_clusters).filter(|&c| w[c] > 0.0).collect();
        order.sort_by(|&p, &q| w[q].total_cmp(&w[p]).then(p.cmp(&q)));
        order.truncate(sp.n_personas);
        let np = order.len().max(1);
        let f = |i: usize| f_dense[i * n + j] as f64;
        let mut v = vec![0f64; np];
        let mut e = vec![vec![0f64; a]; np];
        let mut mass = vec![0f64; np];
        for &(i, x) in hist {
            let z = &sp.item_space[i * a..(i + 1) * a];
            let c = sp.item_cluster[i];
            let p = if order.is_empty() {
                0
            } else if let Some(p) = order.iter().position(|&o| o as i32 == c) {
                p
            } else {
                let sims: Vec<f64> = order
                    .iter()
                    .map(|&o| {
                        let m = &sp.centroids[o * a..(o + 1) * a];
                        m.iter().zip(z).map(|(x, y)| x * y).sum::<f32>() as f64
                    })
                    .collect();
                (0..np).fold(0, |b, p| if sims[p] > sims[b] { p } else { b })
            };
            v[p] += x * f(i);
            mass[p] += x;
            for (ed, &zd) in e[p].iter_mut().zip(z) {
                *ed += x * zd as f64;
            }
        }
        let total: f64 = mass.iter().sum();
        let zj = &sp.item_space[j * a..(j + 1) * a];
        let logits: Vec<f64> = (0..np)
            .map(|p| {
                let nrm = e[p].iter().map(|x| x * x).sum::<f64>().sqrt();
                let c = if nrm > 0.0 {
                    e[p].iter().zip(zj).map(|(x, y)| x * *y as f64).sum::<f64>() / nrm
                } else {
                    0.0
                };
                c / md.tau as f64 + md.delta as f64 * (mass[p] / total).ln()
            })
            .collect();
        let mx = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let ex: Vec<f64> = logits.iter().map(|l| (l - mx).exp()).collect();
        let den: f64 = ex.iter().sum();
        let sum: f64 = v.iter().sum();
        if np == 1 || md.mix == 0.0 {
            return sum;
        }
        let att: f64 = (0..np)
            .map(|p| ex[p] / den * (mass[p] / total).powf(-md.gamma as f64) * v[p])
            .sum();
        (1.0 - md.mix as f64) * sum + md.mix as f64 * att
    }

    fn histories(rows: usize, n: usize) -> (Vec<i64>, Vec<i32>, Vec<f32>) {
        let (mut p, mut i, mut d) = (vec![0i64], vec![], vec![]);
        for u in 0..rows {
            // Row 0 is empty; others vary in length and weight.
            if u > 0 {
                for j in (u % 3..n).step_by(2 + u % 9) {
                    i.push(j as i32);
                    d.push(1.0 + (u * j % 3) as f32);
                }
            }
            p.push(i.len() as i64);
        }
        (p, i, d)
    }

    #[test]
    fn fused_scores_equal_the_definition() {
        let n = fused::ITEM_TILE + 37;
        let rows = fused::USER_CHUNK + 5;
        for (t, seed) in [
            (
                Toy {
                    n,
                    k: 3,
                    c: 6,
                    a: 5,
                    r: 4,
                    sparse: false,
                    mix: 0.4,
                    delta: 0.3,
                    gamma: 0.5,
                },
                3,
            ),
            (
                Toy {
                    n,
                    k: 4,
                    c: 9,
                    a: 3,
                    r: 0,
                    sparse: true,
                    mix: 1.0,
                    delta: 0.0,
                    gamma: 0.0,
                },
                5,
            ),
            (
                Toy {
                    n,
                    k: 1,
                    c: 4,
                    a: 3,
                    r: 2,
                    sparse: true,
                    mix: 0.5,
                    delta: 0.0,
                    gamma: 1.0,
                },
                7,
            ),
            (
                Toy {
                    n,
                    k: 5,
                    c: 3,
                    a: 4,
                    r: 3,
                    sparse: false,
                    mix: 0.0,
                    delta: 1.0,
                    gamma: 0.0,
                },
                9,
            ),
        ] {
            let (md, s_dense) = toy(&t, seed);
            let (p, i, d) = histories(rows, n);
            let users = CsrView::new("u", n, Index::I64(&p), Index::I32(&i), Some(&d)).unwrap();
            let dense = md.score(&users, &Stop::new()).unwrap();
            for &(u, j) in &[
                (0, 0),
                (1, 5),
                (7, 2047),
                (rows - 1, n - 1),
                (200, 2050),
                (9, 0),
            ] {
                // The model scores each history divided by its largest weight.
                let top = users.row_iter(u).fold(0f64, |m, (_, x)| m.max(x));
                let hist: Vec<(usize, f64)> =
                    users.row_iter(u).map(|(i, x)| (i, x / top)).collect();
                let want = naive(&md, &s_dense, &hist, j);
                let got = dense[u * n + j] as f64;
                assert!(
                    (got - want).abs() < 2e-4 * want.abs().max(1.0),
                    "k {} mix {}: ({u}, {j}) {got} vs {want}",
                    t.k,
                    t.mix
                );
            }
            let f = Filters::new(true, None, n).unwrap();
            let stop = Stop::new();
            let req = Request {
                n: 25,
                filters: f.clone(),
                explain: true,
            };
            let (ids, scores, dom) = md.recommend(&users, &req, &stop).unwrap();
            let want = fused::top_n(
                &DenseScores::new(&dense, rows, n).unwrap(),
                &users,
                25,
                &f,
                &stop,
            )
            .unwrap();
            // The pruned top-N scores its candidates in its own order of sums: the same
            // lists, scores equal up to rounding.
            assert!(ids == want.0, "k {} mix {}: lists differ", t.k, t.mix);
            for (g, w) in scores.iter().zip(&want.1) {
                assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs {w}");
            }
            let dom = dom.unwrap();
            assert!(dom[..25].iter().all(|&d| d == 0), "{:?}", &dom[..25]);
            assert!(dom.iter().all(|&d| d >= 0 && (d as usize) < t.k));
        }
    }

    /// The pruned top-N gives the fused scorer's lists: models with and without the
    /// low-rank part, dense and sparse votes, K 1 to 6, exclusions, lists longer than the
    /// catalogue, rows with nothing left to recommend.
    #[test]
    fn pruned_top_n_equals_the_exact_lists() {
        let stop = Stop::new();
        for (case, (n, k, r, sparse, mix, delta, gamma)) in [
            (300, 4, 6, true, 0.25, 0.0, 0.0),
            (2100, 6, 3, false, 0.25, 0.3, 0.5),
            (257, 2, 0, true, 1.0, 0.0, 0.0),
            (129, 3, 5, false, 0.9, -0.5, -0.3),
            (64, 1, 4, true, 0.5, 0.0, 0.0),
            (90, 5, 2, true, 0.0, 0.0, 0.0),
        ]
        .into_iter()
        .enumerate()
        {
            let t = Toy {
                n,
                k,
                c: 7,
                a: 4,
                r,
                sparse,
                mix,
                delta,
                gamma,
            };
            let (md, _) = toy(&t, 40 + case as u64);
            let rows = 70;
            let (mut p, mut i, mut d) = histories(rows, n);
            // The last row has seen every item.
            i.extend(0..n as i32);
            d.extend((0..n).map(|j| 1.0 + (j % 4) as f32));
            p.push(i.len() as i64);
            let users = CsrView::new("u", n, Index::I64(&p), Index::I32(&i), Some(&d)).unwrap();
            let exclude: Vec<i64> = (0..n as i64).step_by(5).collect();
            for (len, seen, ex) in [
                (10, true, None),
                (n as i64 + 3, true, None),
                (1, false, None),
                (25, true, Some(Exclude::Items(&exclude))),
            ] {
                let f = Filters::new(seen, ex, n).unwrap();
                let req = Request {
                    n: len,
                    filters: f,
                    explain: false,
                };
                md.set_exact_top_n(true);
                let (want, wsc, _) = md.recommend(&users, &req, &stop).unwrap();
                md.set_exact_top_n(false);
                let (got, gsc, _) = md.recommend(&users, &req, &stop).unwrap();
                assert!(
                    got == want,
                    "case {case} n {len}: lists differ ({} of {} ids)",
                    got.iter().zip(&want).filter(|(a, b)| a != b).count(),
                    got.len()
                );
                for (g, w) in gsc.iter().zip(&wsc) {
                    assert!(
                        g == w || (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                        "case {case}: {g} vs {w}"
                    );
                }
                // The row that saw everything has nothing left when the seen are masked.
                let last = &got[(rows) * len as usize..];
                assert_eq!(last.iter().all(|&j| j == -1), seen);
            }
        }
    }

    #[test]
    fn personas_attention_and_because() {
        let t = Toy {
            n: 40,
            k: 3,
            c: 5,
            a: 4,
            r: 2,
            sparse: true,
            mix: 0.5,
            delta: 0.2,
            gamma: 0.0,
        };
        let (md, s_dense) = toy(&t, 11);
        let (p, i, d) = histories(6, 40);
        let users = CsrView::new("u", 40, Index::I64(&p), Index::I32(&i), Some(&d)).unwrap();
        let ps = md.personas(&users).unwrap();
        // Empty history: no persona; others: shares sum to 1, heaviest first.
        assert!(ps.cluster[..3].iter().all(|&c| c == -1));
        for u in 1..6 {
            let s = &ps.share[u * 3..u * 3 + 3];
            assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            for &e in &ps.entry[p[u] as usize..p[u + 1] as usize] {
                assert!(e >= 0 && (e as usize) < 3 && ps.cluster[u * 3 + e as usize] >= 0);
            }
        }
        let ex = md
            .explain(&users, &[1, 2, 5, 0], &[0, 39, 7, 3], 2)
            .unwrap();
        let (att, part, lead) = (&ex.attention, &ex.part, &ex.dominant);
        for (q, w) in att.chunks_exact(3).enumerate().take(3) {
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{q}");
        }
        assert_eq!(&att[9..12], &[0.0, 0.0, 0.0]);
        assert_eq!(ex.taste[3], -1);
        // The personas' parts add up to the score; absent personas have none.
        let dense = md.score(&users, &Stop::new()).unwrap();
        for (q, &(u, j)) in [(1usize, 0usize), (2, 39), (5, 7), (0, 3)]
            .iter()
            .enumerate()
        {
            let sum: f32 = part[q * 3..q * 3 + 3].iter().sum();
            assert!((sum - dense[u * 40 + j]).abs() < 1e-4, "{q}: {sum}");
        }
        let (ids, votes) = (&ex.because, &ex.votes);
        assert_eq!(ids.len(), 8);
        for (q, &(u, j)) in [(1usize, 0usize), (2, 39)].iter().enumerate() {
            let dom = lead[q] as usize;
            assert_eq!(ex.taste[q], ps.cluster[u * 3 + dom]);
            for s in 0..2 {
                let it = ids[q * 2 + s];
                if it < 0 {
                    assert!(votes[q * 2 + s].is_nan());
                    continue;
                }
                let pos = users.row(u).iter().position(|&c| c as i64 == it).unwrap();
                assert_eq!(ps.entry[p[u] as usize + pos], dom as i64);
                let row = users.row_values(u).unwrap();
                let x = row[pos] / row.iter().fold(0f32, |m, &v| m.max(v));
                let f = s_dense[it as usize * 40 + j];
                assert!((votes[q * 2 + s] - x * f).abs() < 1e-6);
            }
            assert!(ids[q * 2] < 0 || votes[q * 2] >= votes[q * 2 + 1] || ids[q * 2 + 1] < 0);
        }
        assert!(md.explain(&users, &[6], &[0], 1).is_err());
        assert!(md.explain(&users, &[0], &[40], 1).is_err());
        assert!(md.explain(&users, &[0, 1], &[0], 1).is_err());
        assert!(md.explain(&users, &[0], &[0], -1).is_err());
        let wide = CsrView::empty(1, 41);
        assert!(md.score(&wide, &Stop::new()).is_err());
        let neg = CsrView::new(
            "u",
            40,
            Index::I64(&[0, 1]),
            Index::I32(&[3]),
            Some(&[-1.0]),
        )
        .unwrap();
        assert!(md
            .score(&neg, &Stop::new())
            .unwrap_err()
            .to_string()
            .contains("negative"));
    }

    #[test]
    fn bad_files_are_errors() {
        let t = Toy {
            n: 6,
            k: 2,
            c: 2,
            a: 2,
            r: 1,
            sparse: true,
            mix: 0.5,
            delta: 0.0,
            gamma: 0.0,
        };
        let (md, _) = toy(&t, 1);
        let good = md.tensors();
        let manifest = |extra: serde_json::Value| {
            let mut m = serde_json::json!({"kind": "ampcf", "n_items": 6, "n_personas": 2,
                "tau": 0.7, "mix": 0.5, "delta": 0.0, "gamma": 0.0});
            for (k, v) in extra.as_object().unwrap() {
                m[k] = v.clone();
            }
            m.to_string()
        };
        let load = |m: String, t: &[Tensor]| {
            let (text, w) = encode(&m, t).unwrap();
            AmpCf::from_checkpoint(Checkpoint::from_bytes(text.as_bytes(), &w).unwrap())
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        assert!(load(manifest(serde_json::json!({"tau": 0.0})), &good).contains("tau"));
        assert!(load(manifest(serde_json::json!({"mix": 2.0})), &good).contains("mix"));
        assert!(load(manifest(serde_json::json!({"n_personas": 0})), &good).contains("positive"));
        let huge = serde_json::json!({"n_personas": 1u64 << 40});
        assert!(load(manifest(huge), &good).contains("at most 1024"));
        let bad_cluster = vec![0i32, 1, 2, 0, 0, 0];
        let mut t2: Vec<Tensor> = good
            .iter()
            .filter(|t| t.0 != "item_cluster")
            .cloned()
            .collect();
        t2.push(("item_cluster", vec![6], (&bad_cluster).into()));
        assert!(load(manifest(serde_json::json!({})), &t2).contains("item_cluster[2]"));
        let mut bad_idx = match good.iter().find(|t| t.0 == "votes_indices") {
            Some((_, _, Values::I32(v))) => v.to_vec(),
            _ => unreachable!("the toy is sparse"),
        };
        bad_idx.reverse();
        let mut t3: Vec<Tensor> = good
            .iter()
            .filter(|t| t.0 != "votes_indices")
            .cloned()
            .collect();
        t3.push(("votes_indices", vec![bad_idx.len()], (&bad_idx).into()));
        assert!(load(manifest(serde_json::json!({})), &t3).contains("strictly"));
        let old = vec![0f32; 4];
        let mut t4 = good.clone();
        t4.push(("personas", vec![1, 2, 2], (&old).into()));
        assert!(load(manifest(serde_json::json!({})), &t4).contains("personae 0.1"));
        let t5: Vec<Tensor> = good
            .iter()
            .filter(|t| !t.0.starts_with("votes"))
            .cloned()
            .collect();
        assert!(load(manifest(serde_json::json!({})), &t5).contains("votes"));
    }
}
