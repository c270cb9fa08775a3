//! `personae._core.AmpCf`: AMP-CF scoring, attention and the stored persona table.
//!
//! Every method takes the users either as `users` (indices into the training users' persona
//! table) or as `personas` (a C-contiguous float32 array holding `rows x K x d` values, e.g. from
//! fold-in), never both.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray1, PyArray3, PyArrayMethods, PyReadonlyArray1, PyReadonlyArrayDyn};
use personae_core::ampcf::{AmpCf, TENSORS};
use personae_core::csr::CsrView;
use personae_core::fused::Filters;
use personae_core::{threads, Error};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{check_mask, load_model, matrix, model_from_bytes, slice, to_py};

/// An inference-only AMP-CF model loaded from a model directory. Immutable and thread-safe.
#[pyclass(frozen, name = "AmpCf", module = "personae._core")]
struct PyAmpCf {
    inner: Arc<AmpCf>,
}

/// Borrowed users: indices into the persona table, or explicit persona values.
enum Users<'a> {
    Index(&'a [i64]),
    Values(&'a [f32]),
}

fn users_arg<'a>(
    users: &'a Option<PyReadonlyArray1<'_, i64>>,
    personas: &'a Option<PyReadonlyArrayDyn<'_, f32>>,
) -> PyResult<Users<'a>> {
    match (users, personas) {
        (Some(u), None) => Ok(Users::Index(slice("users", u)?)),
        (None, Some(p)) => Ok(Users::Values(p.as_slice().map_err(|_| {
            PyValueError::new_err("personas must be a C-contiguous float32 array")
        })?)),
        _ => Err(PyValueError::new_err(
            "give exactly one of users (training user indices) or personas (rows x K x d)",
        )),
    }
}

/// Resolves `users` to persona values (gathering from the table when given indices) and the
/// number of rows they describe.
fn resolve(model: &AmpCf, users: &Users<'_>) -> personae_core::Result<(Vec<f32>, usize)> {
    let kd = model.k * model.dim;
    match users {
        Users::Index(idx) => Ok((model.gather(idx)?, idx.len())),
        Users::Values(v) => {
            if v.len() % kd != 0 {
                return Err(Error::InvalidInput(format!(
                    "personas: {} values is not a whole number of users of K x d = {} x {}",
                    v.len(),
                    model.k,
                    model.dim
                )));
            }
            model.check_personas(v, v.len() / kd)?;
            Ok((v.to_vec(), v.len() / kd))
        }
    }
}

#[pymethods]
impl PyAmpCf {
    /// Loads and validates `path/manifest.json` + the weights it names.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = load_model(py, &path, AmpCf::from_checkpoint)?;
        Ok(Self { inner })
    }

    /// Decodes and validates a model held in memory.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, manifest: &[u8], weights: &[u8]) -> PyResult<Self> {
        let inner = model_from_bytes(py, manifest, weights, AmpCf::from_checkpoint)?;
        Ok(Self { inner })
    }

    #[getter]
    fn n_items(&self) -> usize {
        self.inner.n_items
    }
    #[getter]
    fn n_users(&self) -> usize {
        self.inner.n_users
    }
    #[getter]
    fn k(&self) -> usize {
        self.inner.k
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

    /// Top-`n` items per row of the CSR `user_items` (used for seen-masking only), scored with
    /// the personas of `users` or the given `personas`, one user per row.
    #[pyo3(signature = (indptr, indices, n_cols, n, users=None, personas=None, exclude_seen=true, exclude_items=None, num_threads=None))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn recommend<'py>(
        &self,
        py: Python<'py>,
        indptr: PyReadonlyArray1<'py, i64>,
        indices: PyReadonlyArray1<'py, i32>,
        n_cols: usize,
        n: usize,
        users: Option<PyReadonlyArray1<'py, i64>>,
        personas: Option<PyReadonlyArrayDyn<'py, f32>>,
        exclude_seen: bool,
        exclude_items: Option<PyReadonlyArray1<'py, bool>>,
        num_threads: Option<usize>,
    ) -> PyResult<(
        Bound<'py, numpy::PyArray2<i64>>,
        Bound<'py, numpy::PyArray2<f32>>,
    )> {
        let (p, i) = (slice("indptr", &indptr)?, slice("indices", &indices)?);
        let ex = exclude_items
            .as_ref()
            .map(|e| slice("exclude_items", e))
            .transpose()?;
        let who = users_arg(&users, &personas)?;
        let model = &self.inner;
        let (rows, ids, scores) = py
            .detach(|| {
                check_mask(ex, model.n_items)?;
                let seen = CsrView::new("user_items", n_cols, p, i, None)?;
                let (pv, rows) = resolve(model, &who)?;
                if rows != seen.n_rows {
                    return Err(Error::InvalidInput(format!(
                        "user_items has {} rows but {rows} users were given",
                        seen.n_rows
                    )));
                }
                let filters = Filters {
                    exclude_seen,
                    exclude_items: ex,
                };
                let (ids, scores) =
                    threads::install(num_threads, || model.top_n(&pv, &seen, n, filters))??;
                Ok((rows, ids, scores))
            })
            .map_err(to_py)?;
        Ok((matrix(py, ids, rows, n)?, matrix(py, scores, rows, n)?))
    }

    /// Dense scores (`rows x n_items`): for tests and small batches.
    #[pyo3(signature = (users=None, personas=None, num_threads=None))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        users: Option<PyReadonlyArray1<'py, i64>>,
        personas: Option<PyReadonlyArrayDyn<'py, f32>>,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, numpy::PyArray2<f32>>> {
        let who = users_arg(&users, &personas)?;
        let model = &self.inner;
        let (rows, out) = py
            .detach(|| {
                let (pv, rows) = resolve(model, &who)?;
                let out = threads::install(num_threads, || model.score_dense(&pv, rows))??;
                Ok((rows, out))
            })
            .map_err(to_py)?;
        matrix(py, out, rows, model.n_items)
    }

    /// Attention over personas (`P x K`, rows sum to 1) of the pairs
    /// `(pair_user[p], pair_item[p])`, where `pair_user` indexes the rows of the given users.
    #[pyo3(signature = (pair_user, pair_item, users=None, personas=None, num_threads=None))]
    fn attention<'py>(
        &self,
        py: Python<'py>,
        pair_user: PyReadonlyArray1<'py, i64>,
        pair_item: PyReadonlyArray1<'py, i64>,
        users: Option<PyReadonlyArray1<'py, i64>>,
        personas: Option<PyReadonlyArrayDyn<'py, f32>>,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, numpy::PyArray2<f32>>> {
        let (pu, pi) = (
            slice("pair_user", &pair_user)?,
            slice("pair_item", &pair_item)?,
        );
        let who = users_arg(&users, &personas)?;
        let model = &self.inner;
        let out = py
            .detach(|| {
                let (pv, rows) = resolve(model, &who)?;
                threads::install(num_threads, || model.attention(&pv, rows, pu, pi))?
            })
            .map_err(to_py)?;
        matrix(py, out, pu.len(), model.k)
    }

    /// Copies of stored tensors (`personas`, `item_emb`, `item_bias`, `proj_user`,
    /// `proj_item`), e.g. for fold-in in torch: the ones in `names`, or all of them.
    #[pyo3(signature = (names=None))]
    fn tensors<'py>(
        &self,
        py: Python<'py>,
        names: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let m = &self.inner;
        let names = names.unwrap_or_else(|| TENSORS.iter().map(|n| n.to_string()).collect());
        let d = PyDict::new(py);
        for name in &names {
            let (v, shape): (&[f32], Vec<usize>) = match name.as_str() {
                "personas" => (m.personas(), vec![m.n_users, m.k, m.dim]),
                "item_emb" => (m.item_emb(), vec![m.n_items, m.dim]),
                "item_bias" => (m.item_bias(), vec![m.n_items]),
                "proj_user" => (m.proj_user(), vec![m.dim, m.att_dim]),
                "proj_item" => (m.proj_item(), vec![m.dim, m.att_dim]),
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "unknown tensor {name:?}; AMP-CF tensors are {TENSORS:?}"
                    )))
                }
            };
            d.set_item(name, PyArray1::from_slice(py, v).reshape(shape)?)?;
        }
        Ok(d)
    }

    /// Persona vectors `[len(users), K, d]` of training users (indices checked).
    fn personas<'py>(
        &self,
        py: Python<'py>,
        users: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let u = slice("users", &users)?;
        let m = &self.inner;
        let v = py.detach(|| m.gather(u)).map_err(to_py)?;
        PyArray1::from_vec(py, v).reshape([u.len(), m.k, m.dim])
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyAmpCf>()?;
    Ok(())
}
