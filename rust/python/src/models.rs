//! `personae._core.Model`, the base of every family's Rust model, and the functions that build
//! one from a directory, from bytes or from freshly trained tensors. Each picks the family from
//! the manifest's `kind`, read once: the manifest text a Python model parses is the very text
//! its weights were checked against.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyReadonlyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use personae_core::ampcf::AmpCf;
use personae_core::checkpoint::{self, Checkpoint, Tensor, Values};
use personae_core::fused::{Filters, Request};
use personae_core::multvae::MultVae;
use personae_core::popularity::Popularity;
use personae_core::similar;
use personae_core::{bad_model, Error};
use pyo3::exceptions::{PyNotImplementedError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use pyo3::PyClass;

use crate::ampcf::PyAmpCf;
use crate::convert::{lists, matrix, slice, Csr, ItemSet};
use crate::errors::run;
use crate::multvae::PyMultVae;
use crate::popularity::PyPopularity;

/// A loaded model: immutable, thread-safe, shared by the family's Python object.
#[pyclass(subclass, frozen, name = "Model", module = "personae._core")]
pub struct PyModel {
    pub core: Arc<dyn checkpoint::Model>,
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

/// One family's Python object: the base `Model` holding `core`, and the family class `P`.
fn family<'py, M, P>(
    py: Python<'py>,
    core: personae_core::Result<M>,
    manifest: String,
    sub: impl FnOnce(Arc<M>) -> P,
) -> PyResult<Bound<'py, PyAny>>
where
    M: checkpoint::Model + 'static,
    P: PyClass<BaseType = PyModel, Frozen = pyo3::pyclass::boolean_struct::True>,
{
    let inner = Arc::new(core.map_err(|e| crate::to_py(py, e))?);
    let base = PyModel {
        core: inner.clone(),
        manifest,
    };
    Ok(Bound::new(py, PyClassInitializer::from(base).add_subclass(sub(inner)))?.into_any())
}

/// Wraps a validated checkpoint in its family's Python class.
fn wrap(py: Python<'_>, c: Checkpoint) -> PyResult<Bound<'_, PyAny>> {
    let manifest = c.text.clone();
    match c.kind.as_str() {
        "multvae" => family(py, MultVae::from_checkpoint(c), manifest, |_| PyMultVae),
        "ampcf" => family(py, AmpCf::from_checkpoint(c), manifest, PyAmpCf::new),
        "popularity" => family(py, Popularity::from_checkpoint(c), manifest, |_| {
            PyPopularity
        }),
        other => Err(crate::to_py(
            py,
            bad_model!(
                "unknown model kind {other:?} (this personae reads 'multvae', 'ampcf' and \
                 'popularity')"
            ),
        )),
    }
}

/// Loads and validates the model directory `path` (see `personae.load`).
#[pyfunction]
fn load(py: Python<'_>, path: PathBuf) -> PyResult<Bound<'_, PyAny>> {
    let c = run(py, None, |_| Checkpoint::load_dir(&path))?;
    wrap(py, c)
}

/// Decodes and validates a model held in memory: the bytes `load` would read from disk.
#[pyfunction]
fn from_bytes<'py>(
    py: Python<'py>,
    manifest: &[u8],
    weights: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    let c = run(py, None, |_| Checkpoint::from_bytes(manifest, weights))?;
    wrap(py, c)
}

/// A tensor handed to `build`: float32, int32 or int64.
#[derive(FromPyObject)]
enum AnyTensor<'py> {
    F32(PyReadonlyArrayDyn<'py, f32>),
    I32(PyReadonlyArrayDyn<'py, i32>),
    I64(PyReadonlyArrayDyn<'py, i64>),
}

impl AnyTensor<'_> {
    fn parts(&self, name: &str) -> PyResult<(Vec<usize>, Values<'_>)> {
        let contiguous = |_| PyValueError::new_err(format!("tensor {name:?} must be C-contiguous"));
        Ok(match self {
            AnyTensor::F32(a) => (
                a.shape().to_vec(),
                Values::F32(a.as_slice().map_err(contiguous)?),
            ),
            AnyTensor::I32(a) => (
                a.shape().to_vec(),
                Values::I32(a.as_slice().map_err(contiguous)?),
            ),
            AnyTensor::I64(a) => (
                a.shape().to_vec(),
                Values::I64(a.as_slice().map_err(contiguous)?),
            ),
        })
    }
}

/// Builds a model from a manifest (kind, n_items, item ids, config...) and its tensors
/// (float32; int32 or int64 for index tensors), as a fit produces them.
#[pyfunction]
fn build<'py>(
    py: Python<'py>,
    manifest: &str,
    tensors: HashMap<String, AnyTensor<'py>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut parts: Vec<(String, Vec<usize>, Values)> = Vec::with_capacity(tensors.len());
    for (name, a) in &tensors {
        let (shape, v) = a.parts(name)?;
        parts.push((name.clone(), shape, v));
    }
    // Sorted by name, so the same tensors always make the same file.
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    let c = run(py, None, |_| {
        let t: Vec<Tensor> = parts
            .iter()
            .map(|(n, s, v)| (n.as_str(), s.clone(), *v))
            .collect();
        Checkpoint::from_tensors(manifest, &t)
    })?;
    wrap(py, c)
}

/// sha256 of a byte string, as written in manifests.
#[pyfunction]
fn sha256_hex(py: Python<'_>, data: &[u8]) -> PyResult<String> {
    run(py, None, |_| Ok::<_, Error>(checkpoint::sha256_hex(data)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyModel>()?;
    m.add("FORMAT_VERSION", checkpoint::FORMAT_VERSION)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(from_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(build, m)?)?;
    m.add_function(wrap_pyfunction!(sha256_hex, m)?)?;
    Ok(())
}
