//! Bindings of `personae_core::calibrate`: calibrated reranking and calibration metrics.

use numpy::{PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use personae_core::calibrate::{self, ItemCategories, Normalize, Params, Target};
use personae_core::csr::CsrView;
use personae_core::{threads, Error};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::{matrix, slice, slice2, to_py};

/// Borrowed (indptr, indices, data) of a CSR matrix.
type CsrParts<'a> = (&'a [i64], &'a [i32], Option<&'a [f32]>);

/// Borrowed slices of the item-category CSR and of the target (dense p or history CSR).
struct Inputs<'a> {
    cat: (&'a [i64], &'a [i32], &'a [f32]),
    n_categories: usize,
    p: Option<(&'a [f32], usize, usize)>,
    hist: Option<CsrParts<'a>>,
}

impl<'a> Inputs<'a> {
    /// Builds the validated views and runs `f` on them (inside `detach`).
    fn with<R>(
        &self,
        f: impl FnOnce(&Target, &ItemCategories) -> personae_core::Result<R>,
    ) -> personae_core::Result<R> {
        let (cp, ci, cd) = self.cat;
        let cats = ItemCategories::new(CsrView::new(
            "item_categories",
            self.n_categories,
            cp,
            ci,
            Some(cd),
        )?)?;
        let target = match (self.p, self.hist) {
            (Some((p, rows, cols)), None) => {
                if cols != self.n_categories {
                    return Err(Error::InvalidInput(format!(
                        "p has {cols} columns but item_categories has {} categories",
                        self.n_categories
                    )));
                }
                Target::Dense { p, rows }
            }
            (None, Some((hp, hi, hd))) => {
                Target::History(CsrView::new("history", cats.n_items(), hp, hi, hd)?)
            }
            _ => {
                return Err(Error::InvalidInput(
                    "give exactly one of p (users x categories) and history (users x items)".into(),
                ))
            }
        };
        f(&target, &cats)
    }
}

macro_rules! inputs {
    ($cat_indptr:ident, $cat_indices:ident, $cat_data:ident, $n_categories:ident, $p:ident,
     $hist_indptr:ident, $hist_indices:ident, $hist_data:ident) => {{
        let cat = (
            slice("cat_indptr", &$cat_indptr)?,
            slice("cat_indices", &$cat_indices)?,
            slice("cat_data", &$cat_data)?,
        );
        let p = $p.as_ref().map(|a| slice2("p", a)).transpose()?;
        let hist = match (&$hist_indptr, &$hist_indices) {
            (Some(a), Some(b)) => Some((
                slice("hist_indptr", a)?,
                slice("hist_indices", b)?,
                $hist_data
                    .as_ref()
                    .map(|d| slice("hist_data", d))
                    .transpose()?,
            )),
            (None, None) => None,
            _ => {
                return Err(PyValueError::new_err(
                    "hist_indptr and hist_indices must be given together",
                ))
            }
        };
        Inputs {
            cat,
            n_categories: $n_categories,
            p,
            hist,
        }
    }};
}

type Rerank<'py> = (
    Bound<'py, PyArray2<i64>>,
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
);

/// Greedy calibrated reranking (see `personae_core::calibrate`): returns
/// (ids, scores, ckl_before, ckl_after).
#[pyfunction]
#[pyo3(signature = (candidates, scores, cat_indptr, cat_indices, cat_data, n_categories, n,
    lam, alpha, rank_weighting=false, normalize="minmax", p=None, hist_indptr=None,
    hist_indices=None, hist_data=None, num_threads=None))]
#[allow(clippy::too_many_arguments)]
fn calibrated_rerank<'py>(
    py: Python<'py>,
    candidates: PyReadonlyArray2<'py, i64>,
    scores: PyReadonlyArray2<'py, f32>,
    cat_indptr: PyReadonlyArray1<'py, i64>,
    cat_indices: PyReadonlyArray1<'py, i32>,
    cat_data: PyReadonlyArray1<'py, f32>,
    n_categories: usize,
    n: usize,
    lam: f64,
    alpha: f64,
    rank_weighting: bool,
    normalize: &str,
    p: Option<PyReadonlyArray2<'py, f32>>,
    hist_indptr: Option<PyReadonlyArray1<'py, i64>>,
    hist_indices: Option<PyReadonlyArray1<'py, i32>>,
    hist_data: Option<PyReadonlyArray1<'py, f32>>,
    num_threads: Option<usize>,
) -> PyResult<Rerank<'py>> {
    let (c, rows, width) = slice2("candidates", &candidates)?;
    let (s, srows, swidth) = slice2("scores", &scores)?;
    if (srows, swidth) != (rows, width) {
        return Err(PyValueError::new_err(format!(
            "scores has shape ({srows}, {swidth}) but candidates has ({rows}, {width})"
        )));
    }
    let normalize = Normalize::parse(normalize).map_err(to_py)?;
    let inp = inputs!(
        cat_indptr,
        cat_indices,
        cat_data,
        n_categories,
        p,
        hist_indptr,
        hist_indices,
        hist_data
    );
    let params = Params {
        n,
        lambda: lam,
        alpha,
        rank_weighting,
        normalize,
    };
    let r = py
        .detach(|| {
            inp.with(|t, cats| {
                threads::install(num_threads, || {
                    calibrate::rerank(c, s, rows, width, t, cats, &params)
                })?
            })
        })
        .map_err(to_py)?;
    Ok((
        matrix(py, r.ids, rows, n)?,
        matrix(py, r.scores, rows, n)?,
        PyArray1::from_vec(py, r.ckl_before),
        PyArray1::from_vec(py, r.ckl_after),
    ))
}

/// p(g|u) of every user (users x categories, float64), from p or a history.
#[pyfunction]
#[pyo3(signature = (cat_indptr, cat_indices, cat_data, n_categories, n_users, p=None,
    hist_indptr=None, hist_indices=None, hist_data=None))]
#[allow(clippy::too_many_arguments)]
fn target_distribution<'py>(
    py: Python<'py>,
    cat_indptr: PyReadonlyArray1<'py, i64>,
    cat_indices: PyReadonlyArray1<'py, i32>,
    cat_data: PyReadonlyArray1<'py, f32>,
    n_categories: usize,
    n_users: usize,
    p: Option<PyReadonlyArray2<'py, f32>>,
    hist_indptr: Option<PyReadonlyArray1<'py, i64>>,
    hist_indices: Option<PyReadonlyArray1<'py, i32>>,
    hist_data: Option<PyReadonlyArray1<'py, f32>>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let inp = inputs!(
        cat_indptr,
        cat_indices,
        cat_data,
        n_categories,
        p,
        hist_indptr,
        hist_indices,
        hist_data
    );
    let out = py
        .detach(|| inp.with(|t, cats| calibrate::target_distribution(t, n_users, cats)))
        .map_err(to_py)?;
    matrix(py, out, n_users, n_categories)
}

/// Per-user C_KL of the lists `ids`.
#[pyfunction]
#[pyo3(signature = (ids, cat_indptr, cat_indices, cat_data, n_categories, alpha,
    rank_weighting=false, p=None, hist_indptr=None, hist_indices=None, hist_data=None))]
#[allow(clippy::too_many_arguments)]
fn miscalibration<'py>(
    py: Python<'py>,
    ids: PyReadonlyArray2<'py, i64>,
    cat_indptr: PyReadonlyArray1<'py, i64>,
    cat_indices: PyReadonlyArray1<'py, i32>,
    cat_data: PyReadonlyArray1<'py, f32>,
    n_categories: usize,
    alpha: f64,
    rank_weighting: bool,
    p: Option<PyReadonlyArray2<'py, f32>>,
    hist_indptr: Option<PyReadonlyArray1<'py, i64>>,
    hist_indices: Option<PyReadonlyArray1<'py, i32>>,
    hist_data: Option<PyReadonlyArray1<'py, f32>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let inp = inputs!(
        cat_indptr,
        cat_indices,
        cat_data,
        n_categories,
        p,
        hist_indptr,
        hist_indices,
        hist_data
    );
    per_user(py, &ids, inp, |ids, rows, width, t, cats| {
        calibrate::miscalibration(ids, rows, width, t, cats, alpha, rank_weighting)
    })
}

/// Per-user share of the user's interests present in the list (see
/// `personae_core::calibrate::interest_recall`).
#[pyfunction]
#[pyo3(signature = (ids, cat_indptr, cat_indices, cat_data, n_categories, threshold,
    exclude_top, p=None, hist_indptr=None, hist_indices=None, hist_data=None))]
#[allow(clippy::too_many_arguments)]
fn interest_recall<'py>(
    py: Python<'py>,
    ids: PyReadonlyArray2<'py, i64>,
    cat_indptr: PyReadonlyArray1<'py, i64>,
    cat_indices: PyReadonlyArray1<'py, i32>,
    cat_data: PyReadonlyArray1<'py, f32>,
    n_categories: usize,
    threshold: f64,
    exclude_top: bool,
    p: Option<PyReadonlyArray2<'py, f32>>,
    hist_indptr: Option<PyReadonlyArray1<'py, i64>>,
    hist_indices: Option<PyReadonlyArray1<'py, i32>>,
    hist_data: Option<PyReadonlyArray1<'py, f32>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let inp = inputs!(
        cat_indptr,
        cat_indices,
        cat_data,
        n_categories,
        p,
        hist_indptr,
        hist_indices,
        hist_data
    );
    per_user(py, &ids, inp, |ids, rows, width, t, cats| {
        calibrate::interest_recall(ids, rows, width, t, cats, threshold, exclude_top)
    })
}

/// One value per row of the lists `ids` (users x width), computed by `f` with the GIL released.
fn per_user<'py>(
    py: Python<'py>,
    ids: &PyReadonlyArray2<'py, i64>,
    inp: Inputs<'_>,
    f: impl FnOnce(&[i64], usize, usize, &Target, &ItemCategories) -> personae_core::Result<Vec<f64>>
        + Send,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (s, rows, width) = slice2("ids", ids)?;
    let out = py
        .detach(|| inp.with(|t, cats| f(s, rows, width, t, cats)))
        .map_err(to_py)?;
    Ok(PyArray1::from_vec(py, out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(calibrated_rerank, m)?)?;
    m.add_function(wrap_pyfunction!(target_distribution, m)?)?;
    m.add_function(wrap_pyfunction!(miscalibration, m)?)?;
    m.add_function(wrap_pyfunction!(interest_recall, m)?)?;
    Ok(())
}
