//! The functions that build a model's Python object, from a directory, from bytes or from
//! freshly trained tensors: the one place that knows every family (the core's `Family` enum,
//! matched here to the family's Python class).

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use personae_core::checkpoint::{Checkpoint, Stored, Values};
use personae_core::family::Family;
use personae_core::model::Model;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::PyClass;

use crate::ampcf::PyAmpCf;
use crate::convert::c_order;
use crate::errors::run;
use crate::models::PyModel;
use crate::multvae::PyMultVae;
use crate::popularity::PyPopularity;

/// One family's Python object: the base `Model` holding `core`, and the family class `P`.
fn family<'py, M, P>(
    py: Python<'py>,
    core: M,
    manifest: String,
    sub: impl FnOnce(Arc<M>) -> P,
) -> PyResult<Bound<'py, PyAny>>
where
    M: Model + 'static,
    P: PyClass<BaseType = PyModel, Frozen = pyo3::pyclass::boolean_struct::True>,
{
    let inner = Arc::new(core);
    let base = PyModel {
        core: inner.clone(),
        manifest,
    };
    Ok(Bound::new(py, PyClassInitializer::from(base).add_subclass(sub(inner)))?.into_any())
}

/// Wraps a validated checkpoint in its family's Python class (the kind is read once, by
/// `Family::from_checkpoint`).
fn wrap(py: Python<'_>, c: Checkpoint) -> PyResult<Bound<'_, PyAny>> {
    let manifest = c.text.clone();
    let f = Family::from_checkpoint(c).map_err(|e| crate::to_py(py, e))?;
    match f {
        Family::MultVae(m) => family(py, m, manifest, |_| PyMultVae),
        Family::AmpCf(m) => family(py, m, manifest, PyAmpCf::new),
        Family::Popularity(m) => family(py, m, manifest, |_| PyPopularity),
        // Filters need nothing beyond the base class's serving.
        Family::Filter(m) => Ok(Bound::new(
            py,
            PyModel {
                core: Arc::new(m),
                manifest,
            },
        )?
        .into_any()),
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
        let what = || format!("tensor {name:?} must be C-contiguous");
        Ok(match self {
            AnyTensor::F32(a) => (a.shape().to_vec(), Values::F32(c_order(a, what)?)),
            AnyTensor::I32(a) => (a.shape().to_vec(), Values::I32(c_order(a, what)?)),
            AnyTensor::I64(a) => (a.shape().to_vec(), Values::I64(c_order(a, what)?)),
        })
    }
}

/// Builds a model from a manifest (kind, n_items, item ids, config...) and its tensors
/// (float32; int32 or int64 for index tensors), as a fit produces them. Takes the tensors
/// over: each is removed from the dict once copied, so a fit's arrays are freed one by one
/// and the fit never holds its model twice over.
#[pyfunction]
fn build<'py>(
    py: Python<'py>,
    manifest: &str,
    tensors: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut names: Vec<String> = tensors.keys().extract()?;
    // Sorted by name, so the same tensors always make the same file.
    names.sort();
    let mut owned: Vec<(String, Vec<usize>, Stored)> = Vec::with_capacity(names.len());
    for name in names {
        let item = tensors
            .get_item(&name)?
            .ok_or_else(|| PyValueError::new_err(format!("tensor {name:?} vanished")))?;
        let a: AnyTensor = item.extract()?;
        let (shape, v) = a.parts(&name)?;
        let v = v.to_stored();
        drop(a);
        drop(item);
        tensors.del_item(&name)?;
        owned.push((name, shape, v));
    }
    let c = run(py, None, |_| Checkpoint::from_owned(manifest, owned))?;
    wrap(py, c)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(from_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(build, m)?)?;
    m.add("KINDS", personae_core::family::KINDS.to_vec())?;
    Ok(())
}
