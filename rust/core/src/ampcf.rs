//! AMP-CF inference (Barkan et al., RecSys 2020): users as K persona vectors, with an attention
//! over personas that depends on the candidate item.
//!
//! For user u with personas `p_uk` (d-dim) and item j with embedding `q_j` and bias `b_j`:
//!
//! ```text
//! alpha_ujk = softmax_k( cos(p_uk A_u, q_j A_v) / tau )
//! s_uj      = sum_k alpha_ujk <p_uk, q_j> + b_j        (= <sum_k alpha_ujk p_uk, q_j> + b_j)
//! ```
//!
//! Projections are stored as `[d, a]` matrices applied on the right (row vectors). The item side
//! `q_j A_v / ||q_j A_v||` is computed once at load time. Per user chunk, [`prepare`] projects and
//! normalises the chunk's personas; per item tile, [`score_tile`] runs two GEMMs of
//! `(chunk*K) x tile` (cosines and persona-item dot products), the softmax over K and the weighted
//! sum in place. The `users x K x items` tensor never exists: scratch is `2 x chunk*K x tile`
//! floats per thread.
//!
//! [`prepare`]: TileScorer::prepare
//! [`score_tile`]: TileScorer::score_tile

use std::borrow::Cow;
use std::cell::RefCell;

use rayon::prelude::*;

use crate::checkpoint::{Checkpoint, Model, Tensor};
use crate::csr::CsrView;
use crate::error::{buffer, Result};
use crate::fused::{self, Filters, TileScorer};
use crate::threads::Stop;
use crate::{bad_model, gemm, invalid, vmath};

/// The tensors an AMP-CF file holds.
pub const TENSORS: [&str; 5] = [
    "personas",
    "item_emb",
    "item_bias",
    "proj_user",
    "proj_item",
];

/// Norms below this are treated as this (cosine of a zero vector is 0, never NaN).
const EPS: f32 = 1e-12;

/// An AMP-CF model: item side, projections, and the persona table of the training users.
pub struct AmpCf {
    pub n_items: usize,
    pub n_users: usize,
    /// Personas per user (K).
    pub n_personas: usize,
    /// Embedding dimension (d).
    pub dim: usize,
    /// Attention (projection) dimension.
    pub att_dim: usize,
    /// Softmax temperature.
    pub tau: f32,
    personas: Vec<f32>,           // [U, K, d]
    item_emb: Vec<f32>,           // [I, d]
    item_bias: Vec<f32>,          // [I]
    proj_user: Vec<f32>,          // [d, a]
    proj_item: Vec<f32>,          // [d, a]
    item_att: Vec<f32>,           // [I, a]: normalised q_j A_v, precomputed
    item_count: Option<Vec<f32>>, // [I]: training interactions, when recorded
}

/// `(ids, scores, dominant persona of each listed item when asked for)`, each `rows x n`.
pub type Recommended = (Vec<i64>, Vec<f32>, Option<Vec<i64>>);

/// The users of a call: rows of the training persona table, or persona values
/// (`rows x K x d`, e.g. from fold-in).
#[derive(Clone, Copy, Debug)]
pub enum Users<'a> {
    Index(&'a [i64]),
    Personas(&'a [f32]),
}

fn normalise_rows(v: &mut [f32], width: usize) {
    for row in v.chunks_exact_mut(width) {
        let n = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(EPS);
        row.iter_mut().for_each(|x| *x /= n);
    }
}

impl AmpCf {
    /// Builds the model from a validated checkpoint of kind `ampcf`.
    pub fn from_checkpoint(mut c: Checkpoint) -> Result<Self> {
        c.expect_kind("ampcf")?;
        let n_items = c.usize_field("n_items")?;
        let tau = c
            .manifest
            .get("tau")
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| bad_model!("manifest.json: missing number field 'tau'"))?
            as f32;
        if !(tau.is_finite() && tau > 0.0) {
            return Err(bad_model!(
                "ampcf: 'tau' must be a positive number, got {tau}"
            ));
        }
        let (n_users, k, dim) = match c.shape("personas") {
            Some(&[u, k, d]) => (u, k, d),
            _ => {
                return Err(bad_model!(
                    "ampcf: tensor 'personas' must be 3-D [users, K, d]"
                ))
            }
        };
        let att_dim = match c.shape("proj_user") {
            Some(&[_, a]) => a,
            _ => {
                return Err(bad_model!(
                    "ampcf: tensor 'proj_user' must be 2-D [d, attention dim]"
                ))
            }
        };
        if n_items == 0 || k == 0 || dim == 0 || att_dim == 0 {
            return Err(bad_model!(
                "ampcf: n_items, K, d and the attention dimension must all be positive"
            ));
        }
        let personas = c.take("personas", &[n_users, k, dim])?;
        let item_emb = c.take("item_emb", &[n_items, dim])?;
        let item_bias = c.take("item_bias", &[n_items])?;
        let proj_user = c.take("proj_user", &[dim, att_dim])?;
        let proj_item = c.take("proj_item", &[dim, att_dim])?;
        let item_count = c.take_optional("item_count", &[n_items])?;
        let mut item_att = vec![0f32; n_items * att_dim];
        // Row blocks in parallel: this is the only O(items) work at load time.
        item_att
            .par_chunks_mut(4096 * att_dim)
            .zip(item_emb.par_chunks(4096 * dim))
            .for_each(|(out, q)| {
                gemm::a_b(q.len() / dim, att_dim, dim, q, &proj_item, out);
                normalise_rows(out, att_dim);
            });
        Ok(Self {
            n_items,
            n_users,
            n_personas: k,
            dim,
            att_dim,
            tau,
            personas,
            item_emb,
            item_bias,
            proj_user,
            proj_item,
            item_att,
            item_count,
        })
    }

    /// Persona values of `users` and how many users they are (indices checked, values checked
    /// for shape and finiteness).
    pub fn resolve<'a>(&self, users: Users<'a>) -> Result<(Cow<'a, [f32]>, usize)> {
        let kd = self.n_personas * self.dim;
        match users {
            Users::Index(idx) => Ok((Cow::Owned(self.gather(idx)?), idx.len())),
            Users::Personas(v) => {
                if v.len() % kd != 0 {
                    return Err(invalid!(
                        "personas: {} values is not a whole number of users of K x d = {} x {}",
                        v.len(),
                        self.n_personas,
                        self.dim
                    ));
                }
                self.check_personas(v, v.len() / kd)?;
                Ok((Cow::Borrowed(v), v.len() / kd))
            }
        }
    }

    /// The persona table of the training users, `[U, K, d]` flattened.
    pub fn personas(&self) -> &[f32] {
        &self.personas
    }
    pub fn item_emb(&self) -> &[f32] {
        &self.item_emb
    }
    pub fn item_bias(&self) -> &[f32] {
        &self.item_bias
    }
    pub fn proj_user(&self) -> &[f32] {
        &self.proj_user
    }
    pub fn proj_item(&self) -> &[f32] {
        &self.proj_item
    }

    /// Personas of training users `users` (`[len, K, d]` flattened), checking the indices.
    pub fn gather(&self, users: &[i64]) -> Result<Vec<f32>> {
        let kd = self.n_personas * self.dim;
        let mut out = Vec::with_capacity(users.len() * kd);
        for (i, &u) in users.iter().enumerate() {
            if u < 0 || u as usize >= self.n_users {
                return Err(invalid!(
                    "users[{i}] = {u} is not a training user index (0..{})",
                    self.n_users
                ));
            }
            out.extend_from_slice(&self.personas[u as usize * kd..(u as usize + 1) * kd]);
        }
        Ok(out)
    }

    /// Checks a caller-supplied persona buffer: `rows x K x d`, finite.
    pub fn check_personas(&self, personas: &[f32], rows: usize) -> Result<()> {
        let kd = self.n_personas * self.dim;
        if personas.len() != rows * kd {
            return Err(invalid!(
                "personas: expected {rows} x {} x {} = {} values, got {}",
                self.n_personas,
                self.dim,
                rows * kd,
                personas.len()
            ));
        }
        if let Some(pos) = personas.iter().position(|x| !x.is_finite()) {
            return Err(invalid!(
                "personas: non-finite value at user {}, persona {}",
                pos / kd,
                (pos % kd) / self.dim
            ));
        }
        Ok(())
    }

    /// The scorer for `personas` (`rows x K x d`, one block per CSR row), for [`fused::top_n`].
    pub fn scorer<'a>(&'a self, personas: &'a [f32]) -> AmpCfScorer<'a> {
        AmpCfScorer {
            model: self,
            personas,
        }
    }

    /// Top-`n` items of `users` (see [`fused::top_n`]); `seen` (one row per user) is only used
    /// for masking. With `explain`, also the dominant persona of each listed item (-1 for
    /// padding), computed in the same call.
    pub fn recommend(
        &self,
        users: Users,
        seen: &CsrView,
        n: i64,
        filters: &Filters,
        stop: &Stop,
        explain: bool,
    ) -> Result<Recommended> {
        let (p, rows) = self.resolve(users)?;
        if rows != seen.n_rows {
            return Err(invalid!(
                "user_items has {} rows but {rows} users were given",
                seen.n_rows
            ));
        }
        let (ids, scores) = fused::top_n(&self.scorer(&p), seen, n, filters, stop)?;
        if !explain {
            return Ok((ids, scores, None));
        }
        let width = ids.len() / rows.max(1);
        let (pu, pi): (Vec<i64>, Vec<i64>) = ids
            .iter()
            .enumerate()
            .filter(|(_, &j)| j >= 0)
            .map(|(t, &j)| ((t / width.max(1)) as i64, j))
            .unzip();
        let att = self.attention_of(&p, rows, &pu, &pi)?;
        let k = self.n_personas;
        let mut dom = vec![-1i64; ids.len()];
        let mut next = 0;
        for (slot, &j) in dom.iter_mut().zip(&ids) {
            if j >= 0 {
                let w = &att[next * k..(next + 1) * k];
                // First maximum, as numpy's argmax.
                let mut best = 0;
                for (kk, &x) in w.iter().enumerate() {
                    if x > w[best] {
                        best = kk;
                    }
                }
                *slot = best as i64;
                next += 1;
            }
        }
        Ok((ids, scores, Some(dom)))
    }

    /// Dense scores `rows x n_items` of `users` (tests and small batches).
    pub fn score(&self, users: Users) -> Result<Vec<f32>> {
        let (personas, rows) = self.resolve(users)?;
        let mut out = buffer("score", rows.checked_mul(self.n_items), 0f32)?;
        let sc = self.scorer(&personas);
        out.par_chunks_mut(fused::USER_CHUNK * self.n_items)
            .enumerate()
            .for_each(|(c, o)| {
                let r = c * fused::USER_CHUNK..(c * fused::USER_CHUNK + o.len() / self.n_items);
                let st = sc.prepare_rows(r);
                sc.score_tile(&st, 0..self.n_items, o);
            });
        Ok(out)
    }

    /// Attention weights `[P, K]` of pairs `(row pair_user[p] of users, item pair_item[p])`.
    pub fn attention(
        &self,
        users: Users,
        pair_user: &[i64],
        pair_item: &[i64],
    ) -> Result<Vec<f32>> {
        let (p, rows) = self.resolve(users)?;
        self.attention_of(&p, rows, pair_user, pair_item)
    }

    fn attention_of(
        &self,
        personas: &[f32],
        rows: usize,
        pair_user: &[i64],
        pair_item: &[i64],
    ) -> Result<Vec<f32>> {
        if pair_user.len() != pair_item.len() {
            return Err(invalid!(
                "attention: {} users but {} items in the pairs",
                pair_user.len(),
                pair_item.len()
            ));
        }
        if let Some(p) = pair_user.iter().position(|&u| u < 0 || u as usize >= rows) {
            return Err(invalid!(
                "attention: user row {} is outside 0..{rows}",
                pair_user[p]
            ));
        }
        if let Some(p) = pair_item
            .iter()
            .position(|&j| j < 0 || j as usize >= self.n_items)
        {
            return Err(invalid!(
                "items: index {} is outside 0..{}",
                pair_item[p],
                self.n_items
            ));
        }
        let (k, a) = (self.n_personas, self.att_dim);
        let pn = self.project(personas); // [rows*K, a]
        let mut out = vec![0f32; pair_user.len() * k];
        out.par_chunks_mut(k * 1024).enumerate().for_each(|(c, o)| {
            for (t, w) in o.chunks_exact_mut(k).enumerate() {
                let p = c * 1024 + t;
                let (u, j) = (pair_user[p] as usize, pair_item[p] as usize);
                let q = &self.item_att[j * a..(j + 1) * a];
                for (kk, wk) in w.iter_mut().enumerate() {
                    let pr = &pn[(u * k + kk) * a..(u * k + kk + 1) * a];
                    *wk = pr.iter().zip(q).map(|(x, y)| x * y).sum::<f32>() / self.tau;
                }
                softmax(w);
            }
        });
        Ok(out)
    }

    /// Projected, normalised personas: `[rows*K, a]`.
    fn project(&self, personas: &[f32]) -> Vec<f32> {
        let m = personas.len() / self.dim;
        let mut pn = vec![0f32; m * self.att_dim];
        gemm::a_b(
            m,
            self.att_dim,
            self.dim,
            personas,
            &self.proj_user,
            &mut pn,
        );
        normalise_rows(&mut pn, self.att_dim);
        pn
    }
}

impl Model for AmpCf {
    fn kind(&self) -> &'static str {
        "ampcf"
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    /// The stored tensors, for writing the model back to a file.
    fn tensors(&self) -> Vec<Tensor<'_>> {
        let (u, i, k, d, a) = (
            self.n_users,
            self.n_items,
            self.n_personas,
            self.dim,
            self.att_dim,
        );
        let mut t: Vec<Tensor> = vec![
            ("personas", vec![u, k, d], &self.personas),
            ("item_emb", vec![i, d], &self.item_emb),
            ("item_bias", vec![i], &self.item_bias),
            ("proj_user", vec![d, a], &self.proj_user),
            ("proj_item", vec![d, a], &self.proj_item),
        ];
        if let Some(c) = &self.item_count {
            t.push(("item_count", vec![i], c));
        }
        t
    }

    /// Training interactions per item, when recorded.
    fn item_count(&self) -> Option<&[f32]> {
        self.item_count.as_deref()
    }
}

/// In-place softmax of a short slice (max-subtracted).
#[inline]
fn softmax(w: &mut [f32]) {
    let mx = w.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for x in w.iter_mut() {
        *x = (*x - mx).exp();
        s += *x;
    }
    w.iter_mut().for_each(|x| *x /= s);
}

/// [`AmpCf`] bound to one batch of personas: the [`TileScorer`] of the fused loop.
pub struct AmpCfScorer<'a> {
    model: &'a AmpCf,
    personas: &'a [f32],
}

/// Per-chunk state: the chunk's personas, their projections, and two reusable tile buffers.
pub struct ChunkState {
    p: Vec<f32>,  // [m*K, d]
    pn: Vec<f32>, // [m*K, a]
    m: usize,
    scratch: RefCell<(Vec<f32>, Vec<f32>)>,
}

impl AmpCfScorer<'_> {
    fn prepare_rows(&self, rows: std::ops::Range<usize>) -> ChunkState {
        let kd = self.model.n_personas * self.model.dim;
        let m = rows.len();
        let p = self.personas[rows.start * kd..rows.end * kd].to_vec();
        let pn = self.model.project(&p);
        ChunkState {
            p,
            pn,
            m,
            scratch: RefCell::new((Vec::new(), Vec::new())),
        }
    }
}

impl TileScorer for AmpCfScorer<'_> {
    type State = ChunkState;

    fn n_items(&self) -> usize {
        self.model.n_items
    }

    fn prepare(&self, _users: &CsrView, rows: std::ops::Range<usize>) -> ChunkState {
        self.prepare_rows(rows)
    }

    fn score_tile(&self, st: &ChunkState, items: std::ops::Range<usize>, out: &mut [f32]) {
        let md = self.model;
        let (k, d, a, w, m) = (md.n_personas, md.dim, md.att_dim, items.len(), st.m);
        let mk = m * k;
        let mut scratch = st.scratch.borrow_mut();
        let (sim, dot) = &mut *scratch;
        if sim.len() < mk * w {
            sim.resize(mk * w, 0.0);
            dot.resize(mk * w, 0.0);
        }
        gemm::a_bt(
            mk,
            w,
            a,
            &st.pn,
            &md.item_att[items.start * a..items.end * a],
            sim,
        );
        gemm::a_bt(
            mk,
            w,
            d,
            &st.p,
            &md.item_emb[items.start * d..items.end * d],
            dot,
        );
        let bias = &md.item_bias[items];
        let inv_tau = 1.0 / md.tau;
        for u in 0..m {
            let row = &mut out[u * w..(u + 1) * w];
            let base = u * k * w;
            // Max over k first (stable softmax), then the weighted sum; all loops run along the
            // contiguous item axis so they vectorise.
            row.copy_from_slice(&sim[base..base + w]);
            for kk in 1..k {
                let s = &sim[base + kk * w..base + (kk + 1) * w];
                row.iter_mut().zip(s).for_each(|(x, &y)| *x = x.max(y));
            }
            score_row(
                row,
                &sim[base..base + k * w],
                &dot[base..base + k * w],
                k,
                w,
                inv_tau,
            );
            row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
        }
    }
}

/// `row` holds max_k sim on entry; on exit `sum_k softmax_k(sim/tau) * dot`.
///
/// This is the only transcendental work in scoring (K exponentials per user and item), so it
/// runs on [`vmath::exp_neg_f32`], which vectorises, and on AVX2 + FMA where the CPU has them (the rest
/// of the crate is built for baseline x86-64; the GEMMs dispatch at run time on their own).
#[inline]
fn score_row(row: &mut [f32], sim: &[f32], dot: &[f32], k: usize, w: usize, inv_tau: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the features score_row_avx2 is compiled for were detected on this CPU.
        return unsafe { score_row_avx2(row, sim, dot, k, w, inv_tau) };
    }
    score_row_impl(row, sim, dot, k, w, inv_tau)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn score_row_avx2(row: &mut [f32], sim: &[f32], dot: &[f32], k: usize, w: usize, tau: f32) {
    score_row_impl(row, sim, dot, k, w, tau)
}

#[inline(always)]
fn score_row_impl(row: &mut [f32], sim: &[f32], dot: &[f32], k: usize, w: usize, inv_tau: f32) {
    const B: usize = 64;
    let mut num = [0f32; B];
    let mut den = [0f32; B];
    let mut j0 = 0;
    while j0 < w {
        let j1 = (j0 + B).min(w);
        let n = j1 - j0;
        num[..n].fill(0.0);
        den[..n].fill(0.0);
        for kk in 0..k {
            let s = &sim[kk * w + j0..kk * w + j1];
            let dt = &dot[kk * w + j0..kk * w + j1];
            let mx = &row[j0..j1];
            for ((((nu, de), &sv), &dv), &m) in num[..n]
                .iter_mut()
                .zip(den[..n].iter_mut())
                .zip(s)
                .zip(dt)
                .zip(mx)
            {
                let e = vmath::exp_neg_f32((sv - m) * inv_tau);
                *nu += e * dv;
                *de += e;
            }
        }
        for ((r, nu), de) in row[j0..j1].iter_mut().zip(&num[..n]).zip(&den[..n]) {
            *r = nu / de;
        }
        j0 = j1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tests::{build, rand_vec};
    use crate::csr::Index;
    use crate::fused::DenseScores;

    fn toy(n_users: usize, n_items: usize, k: usize, d: usize, a: usize) -> AmpCf {
        let mut s = 11u64;
        let t: Vec<(&str, Vec<usize>, Vec<f32>)> = vec![
            ("personas", vec![n_users, k, d]),
            ("item_emb", vec![n_items, d]),
            ("item_bias", vec![n_items]),
            ("proj_user", vec![d, a]),
            ("proj_item", vec![d, a]),
        ]
        .into_iter()
        .map(|(n, sh)| {
            let len = sh.iter().product();
            (n, sh, rand_vec(len, &mut s))
        })
        .collect();
        let (m, w) = build(
            "ampcf",
            &t,
            serde_json::json!({"n_items": n_items, "tau": 0.5}),
        );
        AmpCf::from_checkpoint(Checkpoint::from_bytes(&m, &w).unwrap()).unwrap()
    }

    /// Scores written from the definition, in f64.
    fn naive(m: &AmpCf, p: &[f32], u: usize, j: usize) -> (f64, Vec<f64>) {
        let (k, d, a) = (m.n_personas, m.dim, m.att_dim);
        let proj = |v: &[f32], w: &[f32]| -> Vec<f64> {
            let o: Vec<f64> = (0..a)
                .map(|c| (0..d).map(|r| v[r] as f64 * w[r * a + c] as f64).sum())
                .collect();
            let n = o.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            o.iter().map(|x| x / n).collect()
        };
        let q = &m.item_emb[j * d..(j + 1) * d];
        let qa = proj(q, &m.proj_item);
        let mut logits = vec![];
        let mut dots = vec![];
        for kk in 0..k {
            let pk = &p[(u * k + kk) * d..(u * k + kk + 1) * d];
            let pa = proj(pk, &m.proj_user);
            logits.push(pa.iter().zip(&qa).map(|(x, y)| x * y).sum::<f64>() / m.tau as f64);
            dots.push(
                pk.iter()
                    .zip(q)
                    .map(|(x, y)| *x as f64 * *y as f64)
                    .sum::<f64>(),
            );
        }
        let mx = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = logits.iter().map(|l| (l - mx).exp()).collect();
        let s: f64 = e.iter().sum();
        let att: Vec<f64> = e.iter().map(|x| x / s).collect();
        let score = att.iter().zip(&dots).map(|(x, y)| x * y).sum::<f64>() + m.item_bias[j] as f64;
        (score, att)
    }

    #[test]
    fn fused_equals_definition_across_tiles_and_chunks() {
        let n_items = fused::ITEM_TILE + 29;
        let n_users = fused::USER_CHUNK + 3;
        let model = toy(n_users, n_items, 3, 5, 4);
        let p = model.personas().to_vec();
        let dense = model.score(Users::Personas(&p)).unwrap();
        for &(u, j) in &[(0, 0), (3, 2047), (n_users - 1, n_items - 1), (200, 2050)] {
            let (want, _) = naive(&model, &p, u, j);
            let got = dense[u * n_items + j] as f64;
            assert!(
                (got - want).abs() < 1e-4 * want.abs().max(1.0),
                "{got} vs {want}"
            );
        }
        let mut indptr = vec![0i64];
        let mut indices = vec![];
        for u in 0..n_users {
            for j in (u % 5..n_items).step_by(53 + u % 7) {
                indices.push(j as i32);
            }
            indptr.push(indices.len() as i64);
        }
        let seen = CsrView::new(
            "u",
            n_items,
            Index::I64(&indptr),
            Index::I32(&indices),
            None,
        )
        .unwrap();
        let f = Filters::new(true, None, n_items).unwrap();
        let stop = Stop::new();
        let (ids, scores, dom) = model
            .recommend(Users::Personas(&p), &seen, 30, &f, &stop, true)
            .unwrap();
        let got = (ids, scores);
        let dense_scores = DenseScores::new(&dense, n_users, n_items).unwrap();
        let want = fused::top_n(&dense_scores, &seen, 30, &f, &stop).unwrap();
        // The dominant persona of each listed item is the argmax of its attention.
        let dom = dom.unwrap();
        for (t, &j) in got.0.iter().enumerate().take(90) {
            let u = (t / 30) as i64;
            let att = model.attention(Users::Personas(&p), &[u], &[j]).unwrap();
            let best = (0..3).fold(0, |b, k| if att[k] > att[b] { k } else { b });
            assert_eq!(dom[t], best as i64);
        }
        for (g, w) in got.1.iter().zip(&want.1) {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0));
        }
    }

    #[test]
    fn attention_matches_definition_and_sums_to_one() {
        let model = toy(4, 50, 3, 6, 6);
        let p = model.personas().to_vec();
        let att = model
            .attention(Users::Personas(&p), &[0, 1, 3, 3], &[0, 49, 7, 7])
            .unwrap();
        for (t, (&u, &j)) in [(0usize, 0usize), (1, 49), (3, 7), (3, 7)]
            .iter()
            .map(|(u, j)| (u, j))
            .enumerate()
        {
            let (_, want) = naive(&model, &p, u, j);
            let got = &att[t * 3..(t + 1) * 3];
            assert!((got.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            for (g, w) in got.iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let model = toy(2, 10, 2, 3, 3);
        assert!(model.gather(&[0, 2]).is_err());
        assert!(model.gather(&[-1]).is_err());
        assert_eq!(model.gather(&[1]).unwrap().len(), 6);
        assert!(model.score(Users::Personas(&[0.0; 5])).is_err());
        assert!(model.score(Users::Personas(&[f32::NAN; 6])).is_err());
        assert!(model.score(Users::Index(&[2])).is_err());
        let p = vec![0.0; 6];
        assert!(model.attention(Users::Personas(&p), &[0], &[10]).is_err());
        assert!(model.attention(Users::Personas(&p), &[1], &[0]).is_err());
        // Zero personas: cosine 0, uniform attention, score = bias.
        let att = model.attention(Users::Personas(&p), &[0], &[3]).unwrap();
        assert!((att[0] - 0.5).abs() < 1e-6);
        let (m, w) = build("ampcf", &[], serde_json::json!({"n_items": 3, "tau": 1.0}));
        assert!(AmpCf::from_checkpoint(Checkpoint::from_bytes(&m, &w).unwrap()).is_err());
        let t = vec![("personas", vec![1, 1, 1], vec![0.0])];
        let (m, w) = build("ampcf", &t, serde_json::json!({"n_items": 3}));
        let e = AmpCf::from_checkpoint(Checkpoint::from_bytes(&m, &w).unwrap());
        assert!(e.err().unwrap().to_string().contains("tau"));
    }
}
