//! `personae._core.AmpCf`: AMP-CF scoring, explanations and the stored persona table.
//!
//! Users are given as `who`: int64 indices of training users (their rows of the persona table)
//! or float32 persona values (`rows x K x d`, e.g. from fold-in).

use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use personae_core::ampcf::{AmpCf, Users};
use personae_core::csr::CsrView;
use personae_core::fused::Filters;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{matrix, slice, Csr, ItemSet, Who};
use crate::errors::run;
use crate::models::{serve_similar, PyModel};

/// A loaded AMP-CF model. Immutable and thread-safe.
#[pyclass(extends = PyModel, frozen, name = "AMPCF", module = "personae._core")]
pub struct PyAmpCf {
    inner: Arc<AmpCf>,
}

impl PyAmpCf {
    pub fn new(inner: Arc<AmpCf>) -> Self {
        Self { inner }
    }
}

/// Rows of `who` without resolving it (for output shapes before the work runs).
fn rows(m: &AmpCf, who: Users) -> usize {
    match who {
        Users::Index(u) => u.len(),
        Users::Personas(p) => p.len() / (m.n_personas * m.dim).max(1),
    }
}

#[pymethods]
impl PyAmpCf {
    #[getter]
    fn n_users(&self) -> usize {
        self.inner.n_users
    }
    #[getter]
    fn n_personas(&self) -> usize {
        self.inner.n_personas
    }
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim
    }
    #[getter]
    fn att_dim(&self) -> usize {
        self.inner.att_dim
    }
    #[getter]
    fn tau(&self) -> f32 {
        self.inner.tau
    }

    /// Top-`n` items of the users `who`; `seen` (one CSR row per user) is masked when given.
    /// With `explain`, also the dominant persona of each listed item (int64, -1 for padding).
    #[pyo3(signature = (who, n, seen=None, exclude_items=None, num_threads=None, explain=false))]
    fn recommend<'py>(
        &self,
        who: Who<'py>,
        n: i64,
        seen: Option<Csr<'py>>,
        exclude_items: Option<ItemSet<'py>>,
        num_threads: Option<i64>,
        explain: bool,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let py = who.py();
        let m = &self.inner;
        let users = who.users()?;
        let ex = exclude_items.as_ref().map(ItemSet::exclude).transpose()?;
        let seen = seen.as_ref().map(Csr::parts).transpose()?;
        let (rows, ids, scores, dom) = run(py, num_threads, |stop| {
            let view = match &seen {
                Some(s) => s.view("user_items")?,
                None => CsrView::empty(rows(m, users), m.n_items),
            };
            let filters = Filters::new(seen.is_some(), ex, m.n_items)?;
            let (ids, scores, dom) = m.recommend(users, &view, n, &filters, stop, explain)?;
            Ok((view.n_rows, ids, scores, dom))
        })?;
        let width = ids.len().checked_div(rows).unwrap_or(n.max(0) as usize);
        let mut out = vec![
            matrix(py, ids, rows, width)?,
            matrix(py, scores, rows, width)?,
        ];
        if let Some(d) = dom {
            out.push(matrix(py, d, rows, width)?);
        }
        PyTuple::new(py, out)
    }

    /// Dense scores (`rows x n_items`) of the users `who`: for tests and small batches.
    #[pyo3(signature = (who, num_threads=None))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        who: Who<'py>,
        num_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = &self.inner;
        let users = who.users()?;
        let out = run(py, num_threads, |_| m.score(users))?;
        matrix(py, out, rows(m, users), m.n_items)
    }

    /// Attention over personas (`P x K`, rows sum to 1) of the pairs
    /// `(pair_user[p], pair_item[p])`, where `pair_user` indexes the rows of `who`.
    #[pyo3(signature = (who, pair_user, pair_item, num_threads=None))]
    fn attention<'py>(
        &self,
        py: Python<'py>,
        who: Who<'py>,
        pair_user: PyReadonlyArray1<'py, i64>,
        pair_item: PyReadonlyArray1<'py, i64>,
        num_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (pu, pi) = (slice(&pair_user, "pair_user")?, slice(&pair_item, "items")?);
        let m = &self.inner;
        let users = who.users()?;
        let out = run(py, num_threads, |_| m.attention(users, pu, pi))?;
        matrix(py, out, pu.len(), m.n_personas)
    }

    /// Persona vectors `[len(users), K, d]` of training users (indices checked).
    fn personas<'py>(&self, users: PyReadonlyArray1<'py, i64>) -> PyResult<Bound<'py, PyAny>> {
        let py = users.py();
        let u = slice(&users, "users")?;
        let m = &self.inner;
        let v = run(py, None, |_| m.gather(u))?;
        Ok(PyArray1::from_vec(py, v)
            .reshape([u.len(), m.n_personas, m.dim])?
            .into_any())
    }

    /// The `n` items most similar to each of `items` (cosine of the item embeddings).
    #[pyo3(signature = (items, n, exclude_items=None))]
    fn similar_items<'py>(
        &self,
        py: Python<'py>,
        items: PyReadonlyArray1<'py, i64>,
        n: i64,
        exclude_items: Option<ItemSet<'py>>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let m = self.inner.as_ref();
        let f = (m.item_emb(), m.dim);
        serve_similar(py, m, f, &items, n, exclude_items.as_ref())
    }
}
