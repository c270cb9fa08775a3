//! `personae._core.AMPCF`: the persona model's personas and explanations (its serving is the
//! base `Model`'s). Users are always rows of a CSR `user_items` (their histories): a user is
//! their history.

use std::sync::Arc;

use numpy::{PyArray1, PyReadonlyArray1};
use personae_core::ampcf::AmpCf;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{matrix, slice, Csr};
use crate::errors::run;
use crate::models::PyModel;

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

#[pymethods]
impl PyAmpCf {
    #[getter]
    fn n_personas(&self) -> usize {
        self.inner.n_personas
    }
    #[getter]
    fn n_clusters(&self) -> usize {
        self.inner.n_clusters
    }

    /// `(cluster, share, entry)`: each row's personas (taste cluster, -1 padded, `rows x K`),
    /// their shares of the history (`rows x K`) and the persona of every stored entry.
    #[pyo3(signature = (user_items, num_threads=None))]
    fn personas<'py>(
        &self,
        py: Python<'py>,
        user_items: Csr<'py>,
        num_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let m = &self.inner;
        let parts = user_items.parts()?;
        let (rows, p) = run(py, num_threads, |_| {
            let users = parts.view("user_items")?;
            Ok((users.n_rows, m.personas(&users)?))
        })?;
        PyTuple::new(
            py,
            [
                matrix(py, p.cluster, rows, m.n_personas)?,
                matrix(py, p.share, rows, m.n_personas)?,
                PyArray1::from_vec(py, p.entry).into_any(),
            ],
        )
    }

    /// `(attention, contribution, dominant)` of the pairs `(pair_user[p], pair_item[p])`,
    /// where `pair_user` indexes the rows of `user_items`: the attention over personas and each
    /// persona's part of the score (`P x K` each, 0 for personas a user lacks), and the persona
    /// with the largest part (`P`).
    #[pyo3(signature = (user_items, pair_user, pair_item, num_threads=None))]
    fn attention<'py>(
        &self,
        py: Python<'py>,
        user_items: Csr<'py>,
        pair_user: PyReadonlyArray1<'py, i64>,
        pair_item: PyReadonlyArray1<'py, i64>,
        num_threads: Option<i64>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let (pu, pi) = (slice(&pair_user, "pair_user")?, slice(&pair_item, "items")?);
        let m = &self.inner;
        let parts = user_items.parts()?;
        let (att, part, lead) = run(py, num_threads, |_| {
            m.contribution(&parts.view("user_items")?, pu, pi)
        })?;
        Ok((
            matrix(py, att, pu.len(), m.n_personas)?,
            matrix(py, part, pu.len(), m.n_personas)?,
            PyArray1::from_vec(py, lead).into_any(),
        ))
    }

    /// `(items, votes)`, each `P x n`: per pair, the history items of the dominant persona
    /// that vote most for the item, best first (-1 / NaN padded).
    #[pyo3(signature = (user_items, pair_user, pair_item, n, num_threads=None))]
    fn because<'py>(
        &self,
        py: Python<'py>,
        user_items: Csr<'py>,
        pair_user: PyReadonlyArray1<'py, i64>,
        pair_item: PyReadonlyArray1<'py, i64>,
        n: i64,
        num_threads: Option<i64>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let (pu, pi) = (slice(&pair_user, "pair_user")?, slice(&pair_item, "items")?);
        let m = &self.inner;
        let parts = user_items.parts()?;
        let (ids, votes) = run(py, num_threads, |_| {
            m.because(&parts.view("user_items")?, pu, pi, n)
        })?;
        let width = ids.len().checked_div(pu.len()).unwrap_or(n.max(0) as usize);
        Ok((
            matrix(py, ids, pu.len(), width)?,
            matrix(py, votes, pu.len(), width)?,
        ))
    }

    /// The taste cluster of every item (int32, -1 for none), a copy.
    fn item_cluster<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i32>> {
        PyArray1::from_slice(py, self.inner.item_cluster())
    }

    /// `(phi, offset, prior_mean, prior_cov)` of the base tastes for interviews, copies; None
    /// when the file has none.
    fn tastes<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let (m, c) = (&self.inner, self.inner.n_clusters);
        let Some(t) = m.tastes() else {
            return Ok(None);
        };
        Some(PyTuple::new(
            py,
            [
                matrix(py, t.phi.clone(), m.n_items, c)?,
                PyArray1::from_slice(py, &t.offset).into_any(),
                PyArray1::from_slice(py, &t.prior_mean).into_any(),
                matrix(py, t.prior_cov.clone(), c, c)?,
            ],
        ))
        .transpose()
    }
}
