//! `personae._core.MultVae`: Mult-VAE inference (fused top-N, dense scores, similar items).

use std::sync::Arc;

use numpy::PyReadonlyArray1;
use personae_core::multvae::MultVae;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{matrix, Csr, ItemSet};
use crate::models::{serve_scores, serve_similar, serve_top_n, PyModel};

/// A loaded Mult-VAE. Immutable and thread-safe.
#[pyclass(extends = PyModel, frozen, name = "MultVAE", module = "personae._core")]
pub struct PyMultVae {
    inner: Arc<MultVae>,
}

impl PyMultVae {
    pub fn new(inner: Arc<MultVae>) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl PyMultVae {
    #[getter]
    fn hidden(&self) -> usize {
        self.inner.hidden
    }

    #[getter]
    fn latent(&self) -> usize {
        self.inner.latent
    }

    /// Top-`n` items for every row of the CSR `user_items` (fused; see `fused::top_n`).
    #[pyo3(signature = (user_items, n, exclude_seen=true, exclude_items=None, num_threads=None))]
    fn recommend<'py>(
        &self,
        py: Python<'py>,
        user_items: Csr<'py>,
        n: i64,
        exclude_seen: bool,
        exclude_items: Option<ItemSet<'py>>,
        num_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let filters = (exclude_seen, exclude_items.as_ref());
        serve_top_n(py, &user_items, n, filters, num_threads, |u, f, s| {
            let (ids, scores) = self.inner.recommend(u, n, f, s)?;
            Ok((ids, scores, None))
        })
    }

    /// Dense logits (`rows x n_items`) of every row: for tests and small batches.
    #[pyo3(signature = (user_items, num_threads=None))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        user_items: Csr<'py>,
        num_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = &self.inner;
        serve_scores(py, &user_items, num_threads, m.n_items, |u| m.score(u))
    }

    /// The `n` items most similar to each of `items` (cosine of the output-layer embeddings).
    #[pyo3(signature = (items, n, exclude_items=None))]
    fn similar_items<'py>(
        &self,
        py: Python<'py>,
        items: PyReadonlyArray1<'py, i64>,
        n: i64,
        exclude_items: Option<ItemSet<'py>>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let m = self.inner.as_ref();
        let f = (m.item_factors(), m.hidden);
        serve_similar(py, m, f, &items, n, exclude_items.as_ref())
    }

    /// Output-layer item embeddings (`n_items x hidden`), a copy.
    fn item_factors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let m = &self.inner;
        matrix(py, m.item_factors().to_vec(), m.n_items, m.hidden)
    }
}
