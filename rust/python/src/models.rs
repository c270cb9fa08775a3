//! `personae._core.Model`, the base of every family's Rust model: serving, files, tensors.
//! Building one (from a directory, bytes or fresh tensors) is `families`' job, the one place
//! that knows every family.

use std::sync::Arc;

use numpy::PyReadonlyArray1;
use personae_core::checkpoint::{self, Values};
use personae_core::fused::{Filters, Request};
use personae_core::model::Model;
use personae_core::similar;
use personae_core::Error;
use pyo3::exceptions::PyNotImplementedError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::convert::{lists, matrix, slice, Csr, ItemSet};
use crate::errors::run;

/// A loaded model: immutable, thread-safe, shared by the family's Python object.
#[pyclass(subclass, frozen, name = "Model", module = "personae._core")]
pub struct PyModel {
    pub core: Arc<dyn Model>,
    pub manifest: String,
}

#[pymethods]
impl PyModel {
    /// The manifest's `kind` (the model family).
    #[getter]
    fn kind(&self) -> &'static str {
        self.core.kind()
    }

    /// Number of items; item indices are `0..n_items`.
    #[getter]
    fn n_items(&self) -> usize {
        self.core.n_items()
    }

    /// The manifest's JSON text, as read or as built.
    #[getter]
    fn manifest(&self) -> &str {
        &self.manifest
    }

    /// Training interactions per item (float32 copy), or None when the file does not record
    /// them.
    fn item_count<'py>(&self, py: Python<'py>) -> Option<Bound<'py, numpy::PyArray1<f32>>> {
        self.core
            .item_count()
            .map(|c| numpy::PyArray1::from_slice(py, c))
    }

    /// Copies of the stored tensors, by name (float32, int32 or int64 arrays).
    fn tensors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        use numpy::PyArrayMethods;
        let d = pyo3::types::PyDict::new(py);
        for (name, shape, v) in self.core.tensors() {
            let a = match v {
                Values::F32(v) => numpy::PyArray1::from_slice(py, v)
                    .reshape(shape)?
                    .into_any(),
                Values::I32(v) => numpy::PyArray1::from_slice(py, v)
                    .reshape(shape)?
                    .into_any(),
                Values::I64(v) => numpy::PyArray1::from_slice(py, v)
                    .reshape(shape)?
                    .into_any(),
            };
            d.set_item(name, a)?;
        }
        Ok(d)
    }

    /// `(manifest text, weights bytes)`: the model's two files, ready to write.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<(String, Bound<'py, PyBytes>)> {
        let core = &self.core;
        let manifest = &self.manifest;
        let (text, weights) = run(py, None, |_| checkpoint::encode(manifest, &core.tensors()))?;
        Ok((text, PyBytes::new(py, &weights)))
    }

    /// Top-`n` items of every row of the CSR `user_items` (fused; see `fused::top_n`): `(ids,
    /// scores)`, plus with `explain` (persona models) the dominant persona of each listed item
    /// (int64, -1 for padding).
    // The arguments are the Python signature's keywords.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (user_items, n, exclude_seen=true, exclude_items=None, num_threads=None, explain=false))]
    fn recommend<'py>(
        &self,
        py: Python<'py>,
        user_items: Csr<'py>,
        n: i64,
        exclude_seen: bool,
        exclude_items: Option<ItemSet<'py>>,
        num_threads: Option<i64>,
        explain: bool,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let ex = exclude_items.as_ref().map(ItemSet::exclude).transpose()?;
        let parts = user_items.parts()?;
        let core = &self.core;
        let (rows, (ids, scores, dominant)) = run(py, num_threads, |stop| {
            let users = parts.view("user_items")?;
            let filters = Filters::new(exclude_seen, ex, users.n_cols)?;
            let req = Request {
                n,
                filters,
                explain,
            };
            Ok((users.n_rows, core.recommend(&users, &req, stop)?))
        })?;
        let mut out = vec![lists(py, ids, rows, n)?, lists(py, scores, rows, n)?];
        if let Some(d) = dominant {
            out.push(lists(py, d, rows, n)?);
        }
        PyTuple::new(py, out)
    }

    /// Dense scores (`rows x n_items`) of every row of `user_items`: tests and small batches.
    #[pyo3(signature = (user_items, num_threads=None))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        user_items: Csr<'py>,
        num_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let parts = user_items.parts()?;
        let core = &self.core;
        let (rows, out) = run(py, num_threads, |stop| {
            let users = parts.view("user_items")?;
            Ok((users.n_rows, core.score(&users, stop)?))
        })?;
        matrix(py, out, rows, core.n_items())
    }

    /// The `n` items most similar to each of `items` (cosine of the model's item embeddings).
    #[pyo3(signature = (items, n, exclude_items=None))]
    fn similar_items<'py>(
        &self,
        py: Python<'py>,
        items: PyReadonlyArray1<'py, i64>,
        n: i64,
        exclude_items: Option<ItemSet<'py>>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let (factors, dim) = self.space()?;
        let q = slice(&items, "itemid")?;
        let ex = exclude_items.as_ref().map(ItemSet::exclude).transpose()?;
        let count = self.core.item_count();
        let (ids, scores) = run(py, None, |stop| {
            similar::similar_items(factors, dim, count, q, n, ex, stop)
        })?;
        Ok((lists(py, ids, q.len(), n)?, lists(py, scores, q.len(), n)?))
    }

    /// The item embeddings `similar_items` uses (`n_items x dim`), a copy.
    fn item_factors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (factors, dim) = self.space()?;
        matrix(py, factors.to_vec(), self.core.n_items(), dim)
    }
}

impl PyModel {
    fn space(&self) -> PyResult<(&[f32], usize)> {
        self.core.item_space().ok_or_else(|| {
            PyNotImplementedError::new_err(format!(
                "{} models have no item embeddings",
                self.core.kind()
            ))
        })
    }
}

/// sha256 of a byte string, as written in manifests.
#[pyfunction]
fn sha256_hex(py: Python<'_>, data: &[u8]) -> PyResult<String> {
    run(py, None, |_| Ok::<_, Error>(checkpoint::sha256_hex(data)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyModel>()?;
    m.add("FORMAT_VERSION", checkpoint::FORMAT_VERSION)?;
    m.add_function(wrap_pyfunction!(sha256_hex, m)?)?;
    Ok(())
}
