//! Closed-form item-item filters (EASE, GF-CF, BSPM) and the one scorer that serves them.
//!
//! A filter is `F = S + L R^T`: `S` (items x items) dense or sparse CSR, and an optional
//! low-rank pair `L`, `R` (items x r). A history `x` (one row of `user_items`, divided by its
//! largest weight so lists never depend on the weights' scale) scores `x F`:
//!
//! ```text
//! s_j = sum_{i in H} x_i S_ij + (sum_{i in H} x_i L_i) . R_j
//! ```
//!
//! Which fit produced `S`, `L` and `R` (EASE's inverse, a graph filter's powers of the
//! normalised item graph, a low-pass of its spectrum) is the Python side's business; serving
//! is the same for all. [`FilterModel`] serves a filter as a model of its own (kinds `ease` and
//! `graph_filter`); AMP-CF lets each persona vote through one ([`crate::ampcf`]).
//!
//! Fused scoring, per item tile: one GEMM of the chunk's rows `x L` with `R`'s tile, then each
//! history entry adds its row of `S` over the tile (dense: a contiguous axpy; sparse: the
//! entries of the row inside the tile, found by binary search).

use std::ops::Range;

use crate::checkpoint::{Checkpoint, Tensor, Values};
use crate::csr::CsrView;
use crate::error::Result;
use crate::fused::{self, Recommended, Request, TileScorer};
use crate::model::Model;
use crate::threads::Stop;
use crate::{bad_model, gemm, invalid};

/// The item-item part of a filter.
#[derive(Debug)]
pub enum Votes {
    /// Row-major `n_items x n_items`.
    Dense(Vec<f32>),
    /// CSR rows with strictly increasing columns.
    Sparse {
        indptr: Vec<i64>,
        indices: Vec<i32>,
        data: Vec<f32>,
    },
}

/// `F = S + L R^T` over `n_items` items (see the module docs).
#[derive(Debug)]
pub struct Filter {
    pub n_items: usize,
    /// Rank of the low-rank part (0 when absent).
    pub rank: usize,
    votes: Votes,
    low_left: Vec<f32>,  // [I, r]
    low_right: Vec<f32>, // [I, r]
}

/// One history entry as the scorer reads it: item, the output row it adds to, its weight.
pub type Entry = (u32, u32, f32);

impl Filter {
    /// Takes the filter's tensors out of a checkpoint of `n` items (`what` names the model in
    /// errors): `votes` `[n, n]`, or the sparse `votes_indptr` / `votes_indices` /
    /// `votes_data`, and optionally `low_left` / `low_right` `[n, r]`.
    pub fn from_checkpoint(c: &mut Checkpoint, n: usize, what: &str) -> Result<Self> {
        let votes = if c.has("votes") {
            Votes::Dense(c.take("votes", &[n, n])?)
        } else {
            let nnz = match c.shape("votes_indices") {
                Some(&[z]) => z,
                _ => {
                    return Err(bad_model!(
                        "{what}: needs tensor 'votes' [items, items] or the sparse \
                         'votes_indptr', 'votes_indices', 'votes_data'"
                    ))
                }
            };
            let indptr = c.take_i64("votes_indptr", &[n + 1])?;
            let indices = c.take_i32("votes_indices", &[nnz])?;
            let data = c.take("votes_data", &[nnz])?;
            check_sparse(&indptr, &indices, n, what)?;
            Votes::Sparse {
                indptr,
                indices,
                data,
            }
        };
        let rank = match c.shape("low_left") {
            None => 0,
            Some(&[rows, r]) if rows == n && r > 0 => r,
            Some(s) => {
                return Err(bad_model!(
                    "{what}: tensor 'low_left' must be [{n}, rank > 0], got {s:?}"
                ))
            }
        };
        let (low_left, low_right) = if rank > 0 {
            (
                c.take("low_left", &[n, rank])?,
                c.take("low_right", &[n, rank])?,
            )
        } else if c.has("low_right") {
            return Err(bad_model!("{what}: 'low_right' needs 'low_left'"));
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Self {
            n_items: n,
            rank,
            votes,
            low_left,
            low_right,
        })
    }

    /// The stored tensors, for writing the filter back to a file.
    pub fn tensors(&self) -> Vec<Tensor<'_>> {
        let (n, r) = (self.n_items, self.rank);
        let mut t: Vec<Tensor> = match &self.votes {
            Votes::Dense(v) => vec![("votes", vec![n, n], v.into())],
            Votes::Sparse {
                indptr,
                indices,
                data,
            } => vec![
                ("votes_indptr", vec![n + 1], indptr.into()),
                ("votes_indices", vec![indices.len()], Values::I32(indices)),
                ("votes_data", vec![data.len()], data.into()),
            ],
        };
        if r > 0 {
            t.push(("low_left", vec![n, r], (&self.low_left).into()));
            t.push(("low_right", vec![n, r], (&self.low_right).into()));
        }
        t
    }

    /// `F_ij = S_ij + L_i . R_j`.
    pub fn entry(&self, i: usize, j: usize) -> f32 {
        let n = self.n_items;
        let s = match &self.votes {
            Votes::Dense(v) => v[i * n + j],
            Votes::Sparse {
                indptr,
                indices,
                data,
            } => {
                let row = indptr[i] as usize..indptr[i + 1] as usize;
                match indices[row.clone()].binary_search(&(j as i32)) {
                    Ok(t) => data[row.start + t],
                    Err(_) => 0.0,
                }
            }
        };
        let r = self.rank;
        s + dot(
            &self.low_left[i * r..(i + 1) * r],
            &self.low_right[j * r..(j + 1) * r],
        )
    }

    /// Adds `x L_i` to `low` (one output row's `x L`, `rank` values).
    #[inline]
    pub fn add_low(&self, low: &mut [f32], x: f32, i: usize) {
        let r = self.rank;
        if r > 0 {
            axpy(low, x, &self.low_left[i * r..(i + 1) * r]);
        }
    }

    /// `val` (`rows x items.len()`) = each output row's votes over the item tile: `low` (`rows
    /// x rank`, the rows' `x L`) times `R`'s tile, plus every entry's row of `S`.
    pub fn votes_tile(
        &self,
        low: &[f32],
        rows: usize,
        entries: &[Entry],
        items: Range<usize>,
        val: &mut [f32],
    ) {
        let (r, w) = (self.rank, items.len());
        let val = &mut val[..rows * w];
        if r > 0 {
            gemm::a_bt(
                rows,
                w,
                r,
                &low[..rows * r],
                self.right_tile(items.clone()),
                val,
            );
        } else {
            val.fill(0.0);
        }
        self.add_item_votes(entries, items.clone(), val, items.len());
    }

    /// `R`'s rows of the items `items` (`items.len() x rank`, contiguous).
    #[inline]
    pub fn right_tile(&self, items: Range<usize>) -> &[f32] {
        &self.low_right[items.start * self.rank..items.end * self.rank]
    }

    /// `R` packed for [`gemm::PackedBt`]'s AVX-512 kernel (None without AVX-512F or rank 0).
    pub fn packed_right(&self) -> Option<gemm::PackedBt> {
        gemm::PackedBt::new(self.n_items, self.rank, &self.low_right)
    }

    /// The Euclidean norm of every row of `R` (`n_items`; zeros without a low-rank part),
    /// rounded up so that `|u . R_j| <= |u| * norm_j` holds in floating point too.
    pub fn right_norms(&self) -> Vec<f32> {
        let r = self.rank;
        (0..self.n_items)
            .map(|j| {
                let row = &self.low_right[j * r..(j + 1) * r];
                let s: f64 = row.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
                (s.sqrt() * (1.0 + 1e-6)) as f32
            })
            .collect()
    }

    /// Whether the item-item part is stored sparse.
    pub fn sparse_votes(&self) -> bool {
        matches!(self.votes, Votes::Sparse { .. })
    }

    /// Adds the item-item part of the entries' votes over the item tile to `val` (rows of
    /// `items.len()` values, `ld` apart): every entry `(i, row, x)` adds `x S_i` over the tile
    /// to its row.
    pub fn add_item_votes(
        &self,
        entries: &[Entry],
        items: Range<usize>,
        val: &mut [f32],
        ld: usize,
    ) {
        self.add_item_votes_from(entries, items, val, ld, &mut Vec::new())
    }

    /// [`Filter::add_item_votes`] for tiles walked in increasing order: `at` keeps each entry's
    /// place in its row of sparse `S`, so that only the first tile (`at` empty) searches the
    /// rows (a search reads a row from memory a step at a time). The same sums.
    pub fn add_item_votes_from(
        &self,
        entries: &[Entry],
        items: Range<usize>,
        val: &mut [f32],
        ld: usize,
        at: &mut Vec<usize>,
    ) {
        match &self.votes {
            Votes::Dense(s) => self.add_dense_votes(s, entries, items, val, ld),
            Votes::Sparse {
                indptr,
                indices,
                data,
            } => {
                if at.is_empty() {
                    at.extend(entries.iter().map(|&(i, _, _)| indptr[i as usize] as usize));
                }
                for (&e, at) in entries.iter().zip(at.iter_mut()) {
                    *at = add_row_votes((indptr, indices, data), e, *at, items.clone(), val, ld);
                }
            }
        }
    }

    /// [`Filter::add_item_votes`] on dense votes `s`.
    fn add_dense_votes(
        &self,
        s: &[f32],
        entries: &[Entry],
        items: Range<usize>,
        val: &mut [f32],
        ld: usize,
    ) {
        let (n, w) = (self.n_items, items.len());
        for &(i, p, x) in entries {
            let row = i as usize * n;
            let p = p as usize;
            axpy(
                &mut val[p * ld..p * ld + w],
                x,
                &s[row + items.start..row + items.end],
            );
        }
    }

    /// `acc` plus item `j`'s item-item votes from `entries` (all of one output row), `x S_ij`
    /// added entry by entry in their order: the f32 [`Filter::add_item_votes`] leaves at `j` when
    /// the row holds `acc` there, for one item (a binary search per entry on sparse votes).
    pub fn add_votes_of_item(&self, entries: &[Entry], j: usize, mut acc: f32) -> f32 {
        match &self.votes {
            Votes::Dense(s) => {
                for &(i, _, x) in entries {
                    acc += x * s[i as usize * self.n_items + j];
                }
            }
            Votes::Sparse {
                indptr,
                indices,
                data,
            } => {
                for &(i, _, x) in entries {
                    let row = indptr[i as usize] as usize..indptr[i as usize + 1] as usize;
                    if let Ok(at) = indices[row.clone()].binary_search(&(j as i32)) {
                        acc += x * data[row.start + at];
                    }
                }
            }
        }
        acc
    }
}

/// Entry `(i, p, x)`'s part of [`Filter::add_item_votes`] on sparse votes `(indptr, indices,
/// data)`, from place `at` of row `i` (searched forward when before the tile); returns the
/// place after the tile.
#[inline(always)]
fn add_row_votes(
    (indptr, indices, data): (&[i64], &[i32], &[f32]),
    (i, p, x): Entry,
    mut at: usize,
    items: Range<usize>,
    val: &mut [f32],
    ld: usize,
) -> usize {
    let (t0, t1, w) = (items.start as i32, items.end as i32, items.len());
    let end = indptr[i as usize + 1] as usize;
    let mut cols = &indices[at..end];
    if cols.first().is_some_and(|&c| c < t0) {
        // A tile past the row's start: search once (reading a row a step at a time).
        at += cols.partition_point(|&c| c < t0);
        cols = &indices[at..end];
    }
    let dst = &mut val[p as usize * ld..p as usize * ld + w];
    // The tile's end is found by the walk itself: a search would read ahead of it in steps,
    // each a wait on memory.
    let mut used = cols.len();
    for (m, (&c, &d)) in cols.iter().zip(&data[at..end]).enumerate() {
        if c >= t1 {
            used = m;
            break;
        }
        // SAFETY: the row's columns strictly increase (checked at load) and the first is at
        // least t0, so t0 <= c < t1 and c - t0 < w = dst.len().
        unsafe { *dst.get_unchecked_mut((c - t0) as usize) += x * d };
    }
    at + used
}

fn check_sparse(indptr: &[i64], indices: &[i32], n: usize, what: &str) -> Result<()> {
    if indptr.first() != Some(&0) || indptr.last().copied() != Some(indices.len() as i64) {
        return Err(bad_model!(
            "{what}: votes_indptr must start at 0 and end at the number of entries"
        ));
    }
    for (r, w) in indptr.windows(2).enumerate() {
        // Non-decreasing from 0 to len does not bound the middle entries (a later row may
        // decrease): every row's range is checked before it is sliced.
        let row = usize::try_from(w[0])
            .ok()
            .zip(usize::try_from(w[1]).ok())
            .filter(|(a, b)| a <= b)
            .and_then(|(a, b)| indices.get(a..b))
            .ok_or_else(|| {
                bad_model!(
                    "{what}: votes_indptr must not decrease and stay within the {} entries \
                     (row {r}: {}..{})",
                    indices.len(),
                    w[0],
                    w[1]
                )
            })?;
        if row.iter().any(|&c| c < 0 || c as u64 >= n as u64)
            || row.windows(2).any(|p| p[1] <= p[0])
        {
            return Err(bad_model!(
                "{what}: row {r} of the sparse votes has columns outside 0..{n} or not \
                 strictly increasing"
            ));
        }
    }
    Ok(())
}

#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[inline]
pub(crate) fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// The model kinds a filter is served under, one per fitting family.
pub const KINDS: [&str; 2] = ["ease", "graph_filter"];

/// A filter served as a model of its own (`personae.EASE`, `personae.GraphFilter`).
#[derive(Debug)]
pub struct FilterModel {
    kind: &'static str,
    pub filter: Filter,
    /// Unit item vectors `n_items x dim` for `similar_items`, when the file has them.
    item_space: Option<(Vec<f32>, usize)>,
    item_count: Option<Vec<f32>>,
}

impl FilterModel {
    /// Builds the model from a validated checkpoint of one of [`KINDS`].
    pub fn from_checkpoint(mut c: Checkpoint) -> Result<Self> {
        let kind = KINDS
            .into_iter()
            .find(|&k| k == c.kind)
            .ok_or_else(|| bad_model!("not a filter model: kind {:?}", c.kind))?;
        let n = c.usize_field("n_items")?;
        if n == 0 {
            return Err(bad_model!("{kind}: n_items must be positive"));
        }
        let filter = Filter::from_checkpoint(&mut c, n, kind)?;
        let item_space = match c.shape("item_space") {
            None => None,
            Some(&[rows, d]) if rows == n && d > 0 => Some((c.take("item_space", &[n, d])?, d)),
            Some(s) => {
                return Err(bad_model!(
                    "{kind}: tensor 'item_space' must be [{n}, dim > 0], got {s:?}"
                ))
            }
        };
        let item_count = c.take_optional("item_count", &[n])?;
        Ok(Self {
            kind,
            filter,
            item_space,
            item_count,
        })
    }
}

impl Model for FilterModel {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn n_items(&self) -> usize {
        self.filter.n_items
    }

    fn tensors(&self) -> Vec<Tensor<'_>> {
        let n = self.filter.n_items;
        let mut t = self.filter.tensors();
        if let Some((z, d)) = &self.item_space {
            t.push(("item_space", vec![n, *d], z.into()));
        }
        if let Some(c) = &self.item_count {
            t.push(("item_count", vec![n], c.into()));
        }
        t
    }

    fn item_count(&self) -> Option<&[f32]> {
        self.item_count.as_deref()
    }

    fn recommend(&self, users: &CsrView, req: &Request, stop: &Stop) -> Result<Recommended> {
        fused::check_users(users, self.filter.n_items)?;
        fused::recommend_plain(
            &Scorer(&self.filter),
            self.kind,
            &users.unit_rows(),
            req,
            stop,
        )
    }

    fn score(&self, users: &CsrView, stop: &Stop) -> Result<Vec<f32>> {
        fused::check_users(users, self.filter.n_items)?;
        fused::dense_scores(&Scorer(&self.filter), &users.unit_rows(), stop)
    }

    fn item_space(&self) -> Option<(&[f32], usize)> {
        self.item_space.as_ref().map(|(z, d)| (z.as_slice(), *d))
    }
}

/// A [`Filter`] as the [`TileScorer`] of the fused loop: one output row per user.
pub struct Scorer<'a>(pub &'a Filter);

/// Per-chunk state: the chunk's `x L` rows and history entries.
pub struct ChunkState {
    m: usize,
    low: Vec<f32>,
    entries: Vec<Entry>,
}

impl TileScorer for Scorer<'_> {
    type State = ChunkState;

    fn n_items(&self) -> usize {
        self.0.n_items
    }

    fn prepare(&self, users: &CsrView, rows: Range<usize>) -> ChunkState {
        let (f, r) = (self.0, self.0.rank);
        let m = rows.len();
        let mut st = ChunkState {
            m,
            low: vec![0.0; m * r],
            entries: Vec::new(),
        };
        for (u, row) in rows.enumerate() {
            for (i, x) in users.row_iter(row) {
                let x = x as f32;
                st.entries.push((i as u32, u as u32, x));
                f.add_low(&mut st.low[u * r..(u + 1) * r], x, i);
            }
        }
        st
    }

    fn score_tile(&self, st: &ChunkState, items: Range<usize>, out: &mut [f32]) {
        self.0.votes_tile(&st.low, st.m, &st.entries, items, out);
    }
}

// -- fitting: the graph filter's item-item votes ----------------------------------------------

/// How [`graph_votes`] forms `R` from `X`: `r_uj = f32(s2_u ((s1_u x_uj) c_j))` in f64, the
/// products scipy makes when it scales X's rows and columns by diagonal matrices (in that order)
/// and rounds the result to float32; `None` leaves `R = X`.
#[derive(Clone, Copy, Debug)]
pub struct Scaling<'a> {
    /// Per user (row), first.
    pub rows: &'a [f64],
    /// Per item (column), second.
    pub cols: &'a [f64],
    /// Per user again, last (GraphFilter's `user_weight` below 1); None: not applied.
    pub rows_after: Option<&'a [f64]>,
}

impl<'a> Scaling<'a> {
    /// The scaling from its optional parts: `rows` and `cols` together (then `rows_after`
    /// optionally), or none of them (`R = X`).
    pub fn from_parts(
        rows: Option<&'a [f64]>,
        cols: Option<&'a [f64]>,
        rows_after: Option<&'a [f64]>,
    ) -> Result<Option<Self>> {
        match (rows, cols) {
            (Some(rows), Some(cols)) => Ok(Some(Self {
                rows,
                cols,
                rows_after,
            })),
            (None, None) if rows_after.is_none() => Ok(None),
            _ => Err(invalid!(
                "rows and cols scale R together: give both (and rows_after only with them)"
            )),
        }
    }

    #[inline]
    fn value(&self, u: usize, j: usize, x: f32) -> f32 {
        let v = (self.rows[u] * x as f64) * self.cols[j];
        match self.rows_after {
            Some(after) => (after[u] * v) as f32,
            None => v as f32,
        }
    }
}

/// CSR rows of `P diag(post)` with `P = R^T R` (items x items), each row cut to its `keep`
/// largest entries (ties to the lower column; None keeps all), columns sorted: the graph
/// filter's votes, computed row by row from `X` without `P` (or `R`) ever held whole.
///
/// The values are bit for bit those of scipy's `(R.T.tocsr() @ R)` in float32 (the same f32
/// products, summed in the same order: by ascending user), rounded once more after the f64
/// product with `post`; entries whose sum is zero are dropped, as scipy drops them. Memory:
/// `R^T` (8 bytes an entry of X, 4 where X is binary), the output, and one items-long
/// accumulator per thread.
pub fn graph_votes(
    x: &CsrView,
    scaling: Option<Scaling>,
    post: &[f64],
    keep: Option<usize>,
    stop: &Stop,
) -> Result<SparseRows> {
    use rayon::prelude::*;

    let (n_users, n) = (x.n_rows, x.n_cols);
    if post.len() != n {
        return Err(invalid!("post has {} values for {n} items", post.len()));
    }
    if let Some(s) = &scaling {
        let after = s.rows_after.map_or(n_users, <[f64]>::len);
        if s.rows.len() != n_users || after != n_users || s.cols.len() != n {
            return Err(invalid!(
                "the scaling has {} / {after} user and {} item values for a {n_users} x {n} matrix",
                s.rows.len(),
                s.cols.len()
            ));
        }
    }
    if keep == Some(0) {
        return Err(invalid!("keep must be at least 1"));
    }
    let r = |u: usize, j: usize, v: f32| scaling.as_ref().map_or(v, |s| s.value(u, j, v));
    // R^T: for each item its users in ascending order, with r_ui (a counting sort of X's
    // entries by column).
    let nnz = x.nnz();
    let mut start = vec![0usize; n + 1];
    for u in 0..n_users {
        for &j in x.row(u) {
            start[j as usize + 1] += 1;
        }
    }
    for j in 0..n {
        start[j + 1] += start[j];
    }
    // Binary X (the usual implicit data): r_ui follows from (u, i) alone, so R^T keeps the
    // users only (4 bytes an interaction instead of 8) and r_ui is recomputed, the same bits.
    let binary = (0..n_users).all(|u| x.row_values(u).is_none_or(|v| v.iter().all(|&v| v == 1.0)));
    let mut users = crate::error::buffer("the graph filter's R^T", Some(nnz), 0u32)?;
    let stored = if binary { 0 } else { nnz };
    let mut values = crate::error::buffer("the graph filter's R^T", Some(stored), 0f32)?;
    let mut next = start.clone();
    for u in 0..n_users {
        let vals = x.row_values(u);
        for (t, &j) in x.row(u).iter().enumerate() {
            let j = j as usize;
            users[next[j]] = u as u32;
            if !binary {
                values[next[j]] = r(u, j, vals.map_or(1.0, |v| v[t]));
            }
            next[j] += 1;
        }
    }
    drop(next);
    stop.check()?;

    // Rows in blocks; each block's rows are bounded first (touched columns, capped at keep),
    // so the output is allocated once and every block writes its own part of it.
    const BLOCK: usize = 256;
    let blocks: Vec<Range<usize>> = (0..n.div_ceil(BLOCK))
        .map(|b| b * BLOCK..((b + 1) * BLOCK).min(n))
        .collect();
    struct Scratch {
        acc: Vec<f32>,
        seen: Vec<u32>,
        touched: Vec<u32>,
        row: Vec<(f32, u32)>,
    }
    let scratch = || Scratch {
        acc: vec![0.0; n],
        seen: vec![u32::MAX; n],
        touched: Vec::new(),
        row: Vec::new(),
    };
    // One row's touched columns (in first-touch order) into `s.touched`, sums in `s.acc`.
    let touch = |s: &mut Scratch, i: usize, numeric: bool| {
        s.touched.clear();
        for t in start[i]..start[i + 1] {
            let u = users[t] as usize;
            let a = if binary { r(u, i, 1.0) } else { values[t] };
            let vals = x.row_values(u);
            for (q, &j) in x.row(u).iter().enumerate() {
                let j = j as usize;
                if s.seen[j] != i as u32 {
                    s.seen[j] = i as u32;
                    s.touched.push(j as u32);
                    s.acc[j] = 0.0;
                }
                if numeric {
                    s.acc[j] += a * r(u, j, vals.map_or(1.0, |v| v[q]));
                }
            }
        }
    };
    let bounds: Vec<usize> = blocks
        .par_iter()
        .map_init(scratch, |s, rows| {
            stop.check()?;
            let mut b = Vec::with_capacity(rows.len());
            for i in rows.clone() {
                touch(s, i, false);
                b.push(keep.map_or(s.touched.len(), |k| s.touched.len().min(k)));
            }
            Ok(b)
        })
        .collect::<Result<Vec<Vec<usize>>>>()?
        .into_iter()
        .flatten()
        .collect();
    let total: usize = bounds.iter().sum();
    let mut indices = crate::error::buffer("the graph filter's votes", Some(total), 0i32)?;
    let mut data = crate::error::buffer("the graph filter's votes", Some(total), 0f32)?;
    let mut parts = Vec::with_capacity(blocks.len());
    let (mut rest_i, mut rest_d) = (&mut indices[..], &mut data[..]);
    for rows in &blocks {
        let len: usize = bounds[rows.clone()].iter().sum();
        let (bi, ri) = rest_i.split_at_mut(len);
        let (bd, rd) = rest_d.split_at_mut(len);
        parts.push((rows.clone(), &bounds[rows.clone()], bi, bd));
        (rest_i, rest_d) = (ri, rd);
    }
    let lengths: Vec<usize> = parts
        .into_par_iter()
        .map_init(scratch, |s, (rows, row_bounds, out_i, out_d)| {
            stop.check()?;
            let mut lens = Vec::with_capacity(rows.len());
            let mut at = 0;
            for (i, &bound) in rows.zip(row_bounds) {
                touch(s, i, true);
                s.row.clear();
                for &j in &s.touched {
                    let sum = s.acc[j as usize];
                    if sum != 0.0 {
                        s.row.push(((sum as f64 * post[j as usize]) as f32, j));
                    }
                }
                let by_vote =
                    |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
                if let Some(k) = keep.filter(|&k| s.row.len() > k) {
                    s.row.select_nth_unstable_by(k - 1, by_vote);
                    s.row.truncate(k);
                }
                s.row.sort_unstable_by_key(|e| e.1);
                for (t, &(v, j)) in s.row.iter().enumerate() {
                    out_i[at + t] = j as i32;
                    out_d[at + t] = v;
                }
                // Each row at its bound's offset: the gaps are closed below.
                at += bound;
                lens.push(s.row.len());
            }
            Ok(lens)
        })
        .collect::<Result<Vec<Vec<usize>>>>()?
        .into_iter()
        .flatten()
        .collect();
    // A row holds fewer entries than its bound where sums vanished (zero scalings or weights,
    // or underflow): close those gaps in place.
    let mut indptr = Vec::with_capacity(n + 1);
    indptr.push(0i64);
    let (mut from, mut to) = (0usize, 0usize);
    for (len, bound) in lengths.iter().zip(&bounds) {
        if from != to {
            indices.copy_within(from..from + len, to);
            data.copy_within(from..from + len, to);
        }
        from += bound;
        to += len;
        indptr.push(to as i64);
    }
    indices.truncate(to);
    data.truncate(to);
    Ok(SparseRows {
        indptr,
        indices,
        data,
    })
}

/// CSR rows (`indptr` of `rows + 1` entries, sorted columns) as [`graph_votes`] returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseRows {
    pub indptr: Vec<i64>,
    pub indices: Vec<i32>,
    pub data: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::encode;
    use crate::checkpoint::tests::rand_vec;
    use crate::csr::Index;

    /// `graph_votes` against the product summed densely by ascending user in f32 (scipy's
    /// order), for binary (ties everywhere) and weighted data, with zero scalings (entries
    /// whose sums vanish are dropped), every `keep`, and bad lengths refused.
    #[test]
    fn graph_votes_are_the_dense_product_cut_per_row() {
        let (n_users, n) = (23usize, 17usize);
        let mut seed = 5;
        for weighted in [false, true] {
            let vals = rand_vec(n_users * n, &mut seed);
            let (mut indptr, mut indices, mut data) = (vec![0i64], Vec::new(), Vec::new());
            for u in 0..n_users {
                for j in 0..n {
                    if (u * 7 + j * 3) % 4 == 0 && j != 11 {
                        indices.push(j as i32);
                        data.push(if weighted {
                            vals[u * n + j].abs() + 0.1
                        } else {
                            1.0
                        });
                    }
                }
                indptr.push(indices.len() as i64);
            }
            let x = CsrView::new(
                "x",
                n,
                Index::I64(&indptr),
                Index::I32(&indices),
                Some(&data),
            )
            .unwrap();
            let rows: Vec<f64> = (0..n_users).map(|u| (u % 5) as f64 * 0.25).collect();
            let cols: Vec<f64> = (0..n).map(|j| if j == 3 { 0.0 } else { 0.5 }).collect();
            let post: Vec<f64> = (0..n).map(|j| 1.0 + (j % 2) as f64).collect();
            let scaling = Scaling {
                rows: &rows,
                cols: &cols,
                rows_after: None,
            };
            // R densely, then P row by row in f32 by ascending user.
            let mut r = vec![0f32; n_users * n];
            for u in 0..n_users {
                for t in indptr[u] as usize..indptr[u + 1] as usize {
                    let j = indices[t] as usize;
                    r[u * n + j] = scaling.value(u, j, data[t]);
                }
            }
            for keep in [None, Some(1), Some(3), Some(n)] {
                let got = graph_votes(&x, Some(scaling), &post, keep, &Stop::new()).unwrap();
                for i in 0..n {
                    let mut want: Vec<(f32, u32)> = (0..n)
                        .filter_map(|j| {
                            let touched =
                                (0..n_users).any(|u| r[u * n + i] != 0.0 && r[u * n + j] != 0.0);
                            let sum: f32 = (0..n_users)
                                .filter(|&u| r[u * n + i] != 0.0 && r[u * n + j] != 0.0)
                                .fold(0.0, |a, u| a + r[u * n + i] * r[u * n + j]);
                            (touched && sum != 0.0)
                                .then(|| ((sum as f64 * post[j]) as f32, j as u32))
                        })
                        .collect();
                    want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    want.truncate(keep.unwrap_or(n));
                    want.sort_by_key(|e| e.1);
                    let span = got.indptr[i] as usize..got.indptr[i + 1] as usize;
                    let row: Vec<(f32, u32)> =
                        span.map(|t| (got.data[t], got.indices[t] as u32)).collect();
                    assert_eq!(row, want, "row {i}, keep {keep:?}, weighted {weighted}");
                }
            }
        }
        let x = CsrView::new("x", 2, Index::I64(&[0, 1]), Index::I32(&[1]), None).unwrap();
        assert!(graph_votes(&x, None, &[1.0], None, &Stop::new()).is_err());
        assert!(graph_votes(&x, None, &[1.0, 1.0], Some(0), &Stop::new()).is_err());
        let bad = Scaling {
            rows: &[1.0, 1.0],
            cols: &[1.0, 1.0],
            rows_after: None,
        };
        assert!(graph_votes(&x, Some(bad), &[1.0, 1.0], None, &Stop::new()).is_err());
    }

    /// A filter model of `n` items, dense or sparse `S`, rank `r`, and its `F` densely.
    fn toy(n: usize, r: usize, sparse: bool, seed: u64) -> (FilterModel, Vec<f32>) {
        let mut s = seed;
        let mut dense = rand_vec(n * n, &mut s);
        if sparse {
            for (t, v) in dense.iter_mut().enumerate() {
                if (t * 7 + 3) % 3 != 0 {
                    *v = 0.0;
                }
            }
        }
        let left = rand_vec(n * r, &mut s);
        let right = rand_vec(n * r, &mut s);
        let (mut indptr, mut indices, mut data) = (vec![0i64], Vec::new(), Vec::new());
        for i in 0..n {
            for j in 0..n {
                if dense[i * n + j] != 0.0 {
                    indices.push(j as i32);
                    data.push(dense[i * n + j]);
                }
            }
            indptr.push(indices.len() as i64);
        }
        let mut t: Vec<Tensor> = if sparse {
            vec![
                ("votes_indptr", vec![n + 1], (&indptr).into()),
                ("votes_indices", vec![indices.len()], Values::I32(&indices)),
                ("votes_data", vec![data.len()], (&data).into()),
            ]
        } else {
            vec![("votes", vec![n, n], (&dense).into())]
        };
        if r > 0 {
            t.push(("low_left", vec![n, r], (&left).into()));
            t.push(("low_right", vec![n, r], (&right).into()));
        }
        let manifest = format!(r#"{{"kind": "ease", "n_items": {n}}}"#);
        let (text, bytes) = encode(&manifest, &t).unwrap();
        let c = Checkpoint::from_bytes(text.as_bytes(), &bytes).unwrap();
        let model = FilterModel::from_checkpoint(c).unwrap();
        let mut f = dense.clone();
        for i in 0..n {
            for j in 0..n {
                f[i * n + j] += dot(&left[i * r..(i + 1) * r], &right[j * r..(j + 1) * r]);
            }
        }
        (model, f)
    }

    #[test]
    fn scores_are_the_unit_history_times_f() {
        let n = fused::ITEM_TILE + 37;
        for (r, sparse) in [(0, false), (5, false), (0, true), (3, true)] {
            let (m, f) = toy(n, r, sparse, 11 + r as u64);
            let indptr = [0i64, 3, 3, 7];
            let indices = [0i32, 5, 36, 1, 2, 9, 2080];
            let data = [2.0f32, 1.0, 4.0, 1.0, 1.0, 3.0, 0.5];
            let users = CsrView::new(
                "u",
                n,
                Index::I64(&indptr),
                Index::I32(&indices),
                Some(&data),
            )
            .unwrap();
            let got = m.score(&users, &Stop::new()).unwrap();
            for row in 0..3 {
                let range = indptr[row] as usize..indptr[row + 1] as usize;
                let top = data[range.clone()].iter().copied().fold(0f32, f32::max);
                for j in 0..n {
                    let want: f32 = range
                        .clone()
                        .map(|t| data[t] / top * f[indices[t] as usize * n + j])
                        .sum();
                    let g = got[row * n + j];
                    assert!(
                        (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{g} vs {want}"
                    );
                    assert_eq!(m.filter.entry(3, j), f[3 * n + j]);
                }
            }
        }
    }

    /// Walking the items in tiles (of every width, from 0 or from a later item) with the
    /// rows' places kept adds the same votes, bit for bit, as one call per tile and as one
    /// call over the items: the same products added per item in the entries' order.
    #[test]
    fn votes_walked_tile_by_tile_are_the_whole_rows() {
        let n = 61;
        for sparse in [true, false] {
            let (m, _) = toy(n, 0, sparse, 3);
            let f = &m.filter;
            let entries: Vec<Entry> = vec![(0, 1, 2.0), (7, 0, 0.5), (60, 1, 1.5), (33, 2, 3.0)];
            let mut whole = vec![0f32; 3 * n];
            f.add_item_votes(&entries, 0..n, &mut whole, n);
            for (start, width) in [(0, 1), (0, 7), (0, 60), (5, 9), (13, 64)] {
                let mut walked = vec![0f32; 3 * n];
                let mut each = vec![0f32; 3 * n];
                let mut at = Vec::new();
                let mut j0 = start;
                while j0 < n {
                    let tile = j0..(j0 + width).min(n);
                    f.add_item_votes_from(&entries, tile.clone(), &mut walked[j0..], n, &mut at);
                    f.add_item_votes(&entries, tile.clone(), &mut each[j0..], n);
                    j0 = tile.end;
                }
                for row in 0..3 {
                    for j in 0..n {
                        let k = row * n + j;
                        let want = if j < start { 0.0 } else { whole[k] };
                        assert_eq!(
                            walked[k].to_bits(),
                            want.to_bits(),
                            "{sparse} {start} {width}"
                        );
                        assert_eq!(
                            each[k].to_bits(),
                            want.to_bits(),
                            "{sparse} {start} {width}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn bad_sparse_votes_are_errors() {
        let n = 3;
        let indptr = vec![0i64, 2, 1, 3];
        let indices = vec![0i32, 1, 2];
        let data = vec![1f32; 3];
        let t: Vec<Tensor> = vec![
            ("votes_indptr", vec![n + 1], (&indptr).into()),
            ("votes_indices", vec![3], Values::I32(&indices)),
            ("votes_data", vec![3], (&data).into()),
        ];
        let (text, bytes) = encode(r#"{"kind": "graph_filter", "n_items": 3}"#, &t).unwrap();
        let c = Checkpoint::from_bytes(text.as_bytes(), &bytes).unwrap();
        let e = FilterModel::from_checkpoint(c).unwrap_err().to_string();
        assert!(e.contains("graph_filter: votes_indptr"), "{e}");
    }
}
