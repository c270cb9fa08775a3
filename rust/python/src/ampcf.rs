//! `personae._core.AMPCF`: the persona model's personas and explanations (its serving is the
//! base `Model`'s). Users are always rows of a CSR `user_items` (their histories): a user is
//! their history.

use std::sync::Arc;

use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use personae_core::ampcf::{AmpCf, PersonaSpace, Personas};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{lists, matrix, rows, slice, Csr};
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
        self.inner.space.n_personas
    }
    #[getter]
    fn n_clusters(&self) -> usize {
        self.inner.space.n_clusters
    }

    /// Whether `recommend` runs the fused scorer on every item (the reference) instead of the
    /// certified pruned top-N (the default); the same lists, ties aside. For tests and benches.
    #[getter]
    fn exact_top_n(&self) -> bool {
        self.inner.exact_top_n()
    }

    /// Switches `recommend` between the fused scorer on every item (`on`) and the pruned
    /// top-N; affects every user of this loaded model.
    fn set_exact_top_n(&self, on: bool) {
        self.inner.set_exact_top_n(on)
    }

    /// `(cluster, share, entry)`: each row's personas (taste cluster, -1 padded, `rows x K`),
    /// their shares of the history (`rows x K`) and the persona of every stored entry. One
    /// pass over the histories (no thread pool: it costs less than a top-N).
    fn personas<'py>(
        &self,
        py: Python<'py>,
        user_items: Csr<'py>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let m = &self.inner;
        let parts = user_items.parts()?;
        let (rows, p) = run(py, None, |_| {
            let users = parts.view("user_items")?;
            Ok((users.n_rows, m.personas(&users)?))
        })?;
        personas_tuple(py, p, rows, m.space.n_personas)
    }

    /// The personas of `user_items`' rows, as `personas` gives them, from the persona tensors
    /// alone (`item_space` `n x dim`, `item_cluster` `n`, `centroids` `clusters x dim`): what
    /// a fit needs before its model exists.
    #[staticmethod]
    fn split_personas<'py>(
        py: Python<'py>,
        n_personas: usize,
        item_space: PyReadonlyArray2<'py, f32>,
        item_cluster: PyReadonlyArray1<'py, i32>,
        centroids: PyReadonlyArray2<'py, f32>,
        user_items: Csr<'py>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let dim = item_space.shape()[1];
        if centroids.shape()[1] != dim {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "centroids have {} columns, the item space {dim}",
                centroids.shape()[1]
            )));
        }
        let z = rows(&item_space, "item_space")?.0.to_vec();
        let labels = slice(&item_cluster, "item_cluster")?.to_vec();
        let cent = rows(&centroids, "centroids")?.0.to_vec();
        let parts = user_items.parts()?;
        let (n_users, p) = run(py, None, move |_| {
            let space = PersonaSpace::new(n_personas, z, labels, cent, dim)?;
            let users = parts.view("user_items")?;
            personae_core::fused::check_users(&users, space.item_cluster().len())?;
            Ok((users.n_rows, space.personas(&users.unit_rows())?))
        })?;
        personas_tuple(py, p, n_users, n_personas)
    }

    /// `(attention, contribution, dominant, taste, because, votes)` of the pairs
    /// `(pair_user[p], pair_item[p])`, where `pair_user` indexes the rows of `user_items` (see
    /// `personae_core::ampcf::Explanation`): `P x K`, `P x K`, `P`, `P`, `P x n_history`,
    /// `P x n_history`.
    #[pyo3(signature = (user_items, pair_user, pair_item, n_history, num_threads=None))]
    fn explain<'py>(
        &self,
        py: Python<'py>,
        user_items: Csr<'py>,
        pair_user: PyReadonlyArray1<'py, i64>,
        pair_item: PyReadonlyArray1<'py, i64>,
        n_history: i64,
        num_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let (pu, pi) = (slice(&pair_user, "pair_user")?, slice(&pair_item, "items")?);
        let m = &self.inner;
        let parts = user_items.parts()?;
        let e = run(py, num_threads, |_| {
            m.explain(&parts.view("user_items")?, pu, pi, n_history)
        })?;
        let (p, k) = (pu.len(), m.space.n_personas);
        PyTuple::new(
            py,
            [
                matrix(py, e.attention, p, k)?,
                matrix(py, e.part, p, k)?,
                PyArray1::from_vec(py, e.dominant).into_any(),
                PyArray1::from_vec(py, e.taste).into_any(),
                lists(py, e.because, p, n_history)?,
                lists(py, e.votes, p, n_history)?,
            ],
        )
    }

    /// The taste cluster of every item (int32, -1 for none), a copy.
    fn item_cluster<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i32>> {
        PyArray1::from_slice(py, self.inner.space.item_cluster())
    }

    /// `(phi, offset, prior_mean, prior_cov)` of the base tastes for interviews, copies; None
    /// when the file has none.
    fn tastes<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let (m, c) = (&self.inner, self.inner.space.n_clusters);
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

fn personas_tuple<'py>(
    py: Python<'py>,
    p: Personas,
    rows: usize,
    k: usize,
) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            matrix(py, p.cluster, rows, k)?,
            matrix(py, p.share, rows, k)?,
            PyArray1::from_vec(py, p.entry).into_any(),
        ],
    )
}
