//! `personae._core.Popularity`: the most-popular baseline through the fused top-N loop.

use std::sync::Arc;

use numpy::PyArray1;
use personae_core::popularity::Popularity;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{Csr, ItemSet};
use crate::errors::run;
use crate::models::{serve_top_n, PyModel};

/// A fitted popularity model. Immutable and thread-safe.
#[pyclass(extends = PyModel, frozen, name = "Popularity", module = "personae._core")]
pub struct PyPopularity {
    inner: Arc<Popularity>,
}

impl PyPopularity {
    pub fn new(inner: Arc<Popularity>) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl PyPopularity {
    /// Interactions per item of `user_items` (float32): the scores a popularity model serves.
    #[staticmethod]
    fn count<'py>(py: Python<'py>, user_items: Csr<'py>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let parts = user_items.parts()?;
        let c = run(py, None, |_| Popularity::count(&parts.view("user_items")?))?;
        Ok(PyArray1::from_vec(py, c))
    }

    /// Top-`n` most popular items per row of `user_items` (its own items masked when
    /// `exclude_seen`).
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
}
