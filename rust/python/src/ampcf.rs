//! `personae._core.AmpCf`: AMP-CF scoring, attention and the stored persona table.
//!
//! Every method takes the users either as `users` (indices into the training users' persona
//! table) or as `personas` (a C-contiguous float32 array holding `rows x K x d` values, e.g. from
//! fold-in), never both.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArrayDyn};
use personae_core::ampcf::AmpCf;
use personae_core::checkpoint::Checkpoint;
use personae_core::csr::CsrView;
use personae_core::fused::Filters;
use personae_core::{threads, Error};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{check_mask, matrix, slice, to_py};

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
        let inner = py
            .detach(|| Checkpoint::load_dir(&path).and_then(AmpCf::from_checkpoint))
            .map_err(to_py)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Decodes and validates a model held in memory.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, manifest: &[u8], weights: &[u8]) -> PyResult<Self> {
        let inner = py
            .detach(|| Checkpoint::from_bytes(manifest, weights).and_then(AmpCf::from_checkpoint))
            .map_err(to_py)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
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

    /// Copies of the stored tensors (`personas`, `item_emb`, `item_bias`, `proj_user`,
    /// `proj_item`), e.g. for fold-in in torch.
    fn tensors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = &self.inner;
        let d = PyDict::new(py);
        let p = PyArray1::from_vec(py, m.personas().to_vec()).reshape([m.n_users, m.k, m.dim])?;
        d.set_item("personas", p)?;
        d.set_item(
            "item_emb",
            matrix(py, m.item_emb().to_vec(), m.n_items, m.dim)?,
        )?;
        d.set_item("item_bias", PyArray1::from_vec(py, m.item_bias().to_vec()))?;
        d.set_item(
            "proj_user",
            matrix(py, m.proj_user().to_vec(), m.dim, m.att_dim)?,
        )?;
        d.set_item(
            "proj_item",
            matrix(py, m.proj_item().to_vec(), m.dim, m.att_dim)?,
        )?;
        Ok(d)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyAmpCf>()?;
    Ok(())
}
