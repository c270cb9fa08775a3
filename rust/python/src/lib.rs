//! `personae._core`: the PyO3 layer over `personae-core`, and nothing else.
//!
//! Each function borrows numpy buffers as slices, releases the GIL for the whole computation
//! (`Python::detach`) and converts core errors to Python exceptions in [`to_py`].

mod ampcf;
mod calibrate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use personae_core::checkpoint::Checkpoint;
use personae_core::csr::CsrView;
use personae_core::fused::{self, DenseScores, Filters};
use personae_core::multvae::MultVae;
use personae_core::{metrics, threads, Error};
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(
    _core,
    ModelFormatError,
    PyValueError,
    "A model file is missing, inconsistent or corrupt."
);

/// The one place where core errors become Python exceptions.
pub(crate) fn to_py(e: Error) -> PyErr {
    match e {
        Error::InvalidInput(m) => PyValueError::new_err(m),
        Error::ModelFormat(m) => ModelFormatError::new_err(m),
        Error::Io(m) => PyOSError::new_err(m),
    }
}

pub(crate) fn slice<'a, T: numpy::Element>(
    name: &str,
    a: &'a PyReadonlyArray1<'_, T>,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be a C-contiguous 1-D array")))
}

pub(crate) fn slice2<'a, T: numpy::Element>(
    name: &str,
    a: &'a PyReadonlyArray2<'_, T>,
) -> PyResult<(&'a [T], usize, usize)> {
    let shape = a.shape();
    let (r, c) = (shape[0], shape[1]);
    let s = a
        .as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be a C-contiguous 2-D array")))?;
    Ok((s, r, c))
}

pub(crate) fn matrix<'py, T: numpy::Element>(
    py: Python<'py>,
    v: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    PyArray1::from_vec(py, v).reshape([rows, cols])
}

/// Loads and validates the model directory `path` as `M` (`build` applies the kind's rules),
/// with the GIL released: the one loading path of every model class.
pub(crate) fn load_model<M: Send>(
    py: Python<'_>,
    path: &Path,
    build: impl FnOnce(Checkpoint) -> personae_core::Result<M> + Send,
) -> PyResult<Arc<M>> {
    py.detach(|| Checkpoint::load_dir(path).and_then(build))
        .map(Arc::new)
        .map_err(to_py)
}

/// Like [`load_model`], for the two files held in memory.
pub(crate) fn model_from_bytes<M: Send>(
    py: Python<'_>,
    manifest: &[u8],
    weights: &[u8],
    build: impl FnOnce(Checkpoint) -> personae_core::Result<M> + Send,
) -> PyResult<Arc<M>> {
    py.detach(|| Checkpoint::from_bytes(manifest, weights).and_then(build))
        .map(Arc::new)
        .map_err(to_py)
}

/// An inference-only Mult-VAE loaded from a model directory. Immutable and thread-safe.
#[pyclass(frozen, name = "MultVae", module = "personae._core")]
struct PyMultVae {
    inner: Arc<MultVae>,
}

#[pymethods]
impl PyMultVae {
    /// Loads and validates `path/manifest.json` + the weights it names.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = load_model(py, &path, MultVae::from_checkpoint)?;
        Ok(Self { inner })
    }

    /// Decodes and validates a model held in memory (the bytes `load` would read from disk).
    #[staticmethod]
    fn from_bytes(py: Python<'_>, manifest: &[u8], weights: &[u8]) -> PyResult<Self> {
        let inner = model_from_bytes(py, manifest, weights, MultVae::from_checkpoint)?;
        Ok(Self { inner })
    }

    #[getter]
    fn n_items(&self) -> usize {
        self.inner.n_items
    }

    #[getter]
    fn hidden(&self) -> usize {
        self.inner.hidden
    }

    #[getter]
    fn latent(&self) -> usize {
        self.inner.latent
    }

    /// Top-`n` items for every row of a CSR user x item matrix (fused; see `fused::top_n`).
    #[pyo3(signature = (indptr, indices, data, n_cols, n, exclude_seen=true, exclude_items=None, num_threads=None))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn recommend<'py>(
        &self,
        py: Python<'py>,
        indptr: PyReadonlyArray1<'py, i64>,
        indices: PyReadonlyArray1<'py, i32>,
        data: Option<PyReadonlyArray1<'py, f32>>,
        n_cols: usize,
        n: usize,
        exclude_seen: bool,
        exclude_items: Option<PyReadonlyArray1<'py, bool>>,
        num_threads: Option<usize>,
    ) -> PyResult<(Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>)> {
        let (p, i) = (slice("indptr", &indptr)?, slice("indices", &indices)?);
        let d = data.as_ref().map(|d| slice("data", d)).transpose()?;
        let ex = exclude_items
            .as_ref()
            .map(|e| slice("exclude_items", e))
            .transpose()?;
        let model = &self.inner;
        let (rows, ids, scores) = py
            .detach(|| {
                check_cols(n_cols, model.n_items)?;
                check_mask(ex, model.n_items)?;
                let users = CsrView::new("user_items", n_cols, p, i, d)?;
                let filters = Filters {
                    exclude_seen,
                    exclude_items: ex,
                };
                let (ids, scores) = threads::install(num_threads, || {
                    fused::top_n(model.as_ref(), &users, n, filters)
                })?;
                Ok((users.n_rows, ids, scores))
            })
            .map_err(to_py)?;
        Ok((matrix(py, ids, rows, n)?, matrix(py, scores, rows, n)?))
    }

    /// Dense logits (`rows x n_items`) of every row: for tests and small batches.
    #[pyo3(signature = (indptr, indices, data, n_cols, num_threads=None))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        indptr: PyReadonlyArray1<'py, i64>,
        indices: PyReadonlyArray1<'py, i32>,
        data: Option<PyReadonlyArray1<'py, f32>>,
        n_cols: usize,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        use personae_core::fused::TileScorer;
        let (p, i) = (slice("indptr", &indptr)?, slice("indices", &indices)?);
        let d = data.as_ref().map(|d| slice("data", d)).transpose()?;
        let model = &self.inner;
        let (rows, out) = py
            .detach(|| {
                check_cols(n_cols, model.n_items)?;
                let users = CsrView::new("user_items", n_cols, p, i, d)?;
                threads::install(num_threads, || {
                    let h = model.hidden_states(&users, 0..users.n_rows);
                    let mut out = vec![0f32; users.n_rows * model.n_items];
                    model.score_tile(&h, 0..model.n_items, &mut out);
                    (users.n_rows, out)
                })
            })
            .map_err(to_py)?;
        matrix(py, out, rows, self.inner.n_items)
    }

    /// Output-layer item embeddings (`n_items x hidden`), a copy.
    fn item_factors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        matrix(
            py,
            self.inner.item_factors().to_vec(),
            self.inner.n_items,
            self.inner.hidden,
        )
    }
}

pub(crate) fn check_cols(n_cols: usize, n_items: usize) -> personae_core::Result<()> {
    if n_cols != n_items {
        return Err(Error::InvalidInput(format!(
            "user_items has {n_cols} columns but the model has {n_items} items"
        )));
    }
    Ok(())
}

pub(crate) fn check_mask(mask: Option<&[bool]>, n_items: usize) -> personae_core::Result<()> {
    match mask {
        Some(m) if m.len() != n_items => Err(Error::InvalidInput(format!(
            "exclude_items: expected a mask of {n_items} items, got {}",
            m.len()
        ))),
        _ => Ok(()),
    }
}

/// Top-`n` of a dense score matrix, optionally masking each row's CSR `seen` items and a global
/// `exclude_items` mask. Same ordering and padding as the models' `recommend`.
#[pyfunction]
#[pyo3(signature = (scores, n, seen_indptr=None, seen_indices=None, exclude_items=None, num_threads=None))]
#[allow(clippy::type_complexity)]
fn top_n<'py>(
    py: Python<'py>,
    scores: PyReadonlyArray2<'py, f32>,
    n: usize,
    seen_indptr: Option<PyReadonlyArray1<'py, i64>>,
    seen_indices: Option<PyReadonlyArray1<'py, i32>>,
    exclude_items: Option<PyReadonlyArray1<'py, bool>>,
    num_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>)> {
    let (s, rows, cols) = slice2("scores", &scores)?;
    let sp = seen_indptr
        .as_ref()
        .map(|a| slice("seen_indptr", a))
        .transpose()?;
    let si = seen_indices
        .as_ref()
        .map(|a| slice("seen_indices", a))
        .transpose()?;
    let ex = exclude_items
        .as_ref()
        .map(|e| slice("exclude_items", e))
        .transpose()?;
    let (ids, out) = py
        .detach(|| {
            if let Some(pos) = s.iter().position(|x| x.is_nan()) {
                return Err(Error::InvalidInput(format!(
                    "scores: NaN at row {}, column {}",
                    pos / cols.max(1),
                    pos % cols.max(1)
                )));
            }
            check_mask(ex, cols)?;
            let empty_ptr = vec![0i64; rows + 1];
            let (seen, exclude_seen) = match (sp, si) {
                (Some(p), Some(i)) => {
                    if p.len() != rows + 1 {
                        return Err(Error::InvalidInput(format!(
                            "seen: has {} rows but scores has {rows}",
                            p.len().saturating_sub(1)
                        )));
                    }
                    (CsrView::new("seen", cols, p, i, None)?, true)
                }
                (None, None) => (CsrView::new("seen", cols, &empty_ptr, &[], None)?, false),
                _ => {
                    return Err(Error::InvalidInput(
                        "seen_indptr and seen_indices must be given together".into(),
                    ))
                }
            };
            let dense = DenseScores {
                scores: s,
                n_items: cols,
            };
            let filters = Filters {
                exclude_seen,
                exclude_items: ex,
            };
            threads::install(num_threads, || fused::top_n(&dense, &seen, n, filters))
        })
        .map_err(to_py)?;
    Ok((matrix(py, ids, rows, n)?, matrix(py, out, rows, n)?))
}

/// Per-user Recall (two definitions), NDCG and hit rate at `k`; NaN for users with no truth.
#[pyfunction]
#[pyo3(signature = (ids, k, truth_indptr, truth_indices, n_items))]
fn ranking_metrics<'py>(
    py: Python<'py>,
    ids: PyReadonlyArray2<'py, i64>,
    k: usize,
    truth_indptr: PyReadonlyArray1<'py, i64>,
    truth_indices: PyReadonlyArray1<'py, i32>,
    n_items: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let (ids_s, _, width) = slice2("ids", &ids)?;
    let (p, i) = (
        slice("truth_indptr", &truth_indptr)?,
        slice("truth_indices", &truth_indices)?,
    );
    let m = py
        .detach(|| {
            let truth = CsrView::new("truth", n_items, p, i, None)?;
            metrics::ranking(ids_s, width, k, &truth)
        })
        .map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("recall", PyArray1::from_vec(py, m.recall))?;
    d.set_item("recall_multvae", PyArray1::from_vec(py, m.recall_multvae))?;
    d.set_item("ndcg", PyArray1::from_vec(py, m.ndcg))?;
    d.set_item("hit", PyArray1::from_vec(py, m.hit))?;
    Ok(d)
}

/// Share of the `n_items` catalogue present in at least one list (-1 padding ignored).
#[pyfunction]
fn coverage(py: Python<'_>, ids: PyReadonlyArray2<'_, i64>, n_items: usize) -> PyResult<f64> {
    let (s, _, _) = slice2("ids", &ids)?;
    py.detach(|| metrics::coverage(s, n_items)).map_err(to_py)
}

/// sha256 of a byte string, as written in manifests (exposed so Python and Rust agree).
#[pyfunction]
fn sha256_hex(py: Python<'_>, data: &[u8]) -> String {
    let owned = data.to_vec();
    py.detach(move || personae_core::checkpoint::sha256_hex(&owned))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ModelFormatError", m.py().get_type::<ModelFormatError>())?;
    m.add("FORMAT_VERSION", personae_core::checkpoint::FORMAT_VERSION)?;
    m.add_class::<PyMultVae>()?;
    m.add_function(wrap_pyfunction!(top_n, m)?)?;
    m.add_function(wrap_pyfunction!(ranking_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(coverage, m)?)?;
    m.add_function(wrap_pyfunction!(sha256_hex, m)?)?;
    calibrate::register(m)?;
    ampcf::register(m)?;
    Ok(())
}
