//! Ranking metrics (`personae_core::metrics`) and dense top-N for any model's scores.

use numpy::{PyArray1, PyReadonlyArray2};
use personae_core::fused::{self, DenseScores, Filters};
use personae_core::metrics;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{lists, rows, Csr, ItemSet};
use crate::errors::run;

/// Per-user Recall (two definitions), NDCG and hit rate at `k` of the lists `ids` against the
/// rows of `truth`; NaN for users with no relevant items.
#[pyfunction]
fn ranking_metrics<'py>(
    py: Python<'py>,
    ids: PyReadonlyArray2<'py, i64>,
    k: i64,
    truth: Csr<'py>,
) -> PyResult<Bound<'py, PyDict>> {
    let (v, _, width) = rows(&ids, "ids")?;
    let t = truth.parts()?;
    let m = run(py, None, |_| {
        metrics::ranking(v, width, k, &t.view("truth")?)
    })?;
    let d = PyDict::new(py);
    d.set_item("recall", PyArray1::from_vec(py, m.recall))?;
    d.set_item("recall_multvae", PyArray1::from_vec(py, m.recall_multvae))?;
    d.set_item("ndcg", PyArray1::from_vec(py, m.ndcg))?;
    d.set_item("hit", PyArray1::from_vec(py, m.hit))?;
    Ok(d)
}

/// Share of the `n_items` catalogue present in at least one list (-1 padding ignored).
#[pyfunction]
fn coverage(py: Python<'_>, ids: PyReadonlyArray2<'_, i64>, n_items: i64) -> PyResult<f64> {
    let (v, _, _) = rows(&ids, "ids")?;
    run(py, None, |_| metrics::coverage(v, n_items))
}

/// Top-`n` of a dense score matrix (`rows x items`, float32), masking each row's CSR `seen`
/// items and `exclude_items`; same ordering and padding as the models' `recommend`.
#[pyfunction]
#[pyo3(signature = (scores, n, seen=None, exclude_items=None, num_threads=None))]
fn top_n<'py>(
    py: Python<'py>,
    scores: PyReadonlyArray2<'py, f32>,
    n: i64,
    seen: Option<Csr<'py>>,
    exclude_items: Option<ItemSet<'py>>,
    num_threads: Option<i64>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let (s, b, cols) = rows(&scores, "scores")?;
    let ex = exclude_items.as_ref().map(ItemSet::exclude).transpose()?;
    let seen = seen.as_ref().map(Csr::parts).transpose()?;
    let (ids, out) = run(py, num_threads, |stop| {
        let dense = DenseScores::new(s, b, cols)?;
        let view = match &seen {
            Some(p) => {
                let v = p.view("seen")?;
                if v.n_rows != b {
                    return Err(personae_core::Error::InvalidInput(format!(
                        "seen has {} rows but scores has {b}",
                        v.n_rows
                    )));
                }
                v
            }
            None => personae_core::csr::CsrView::empty(b, cols),
        };
        let filters = Filters::new(seen.is_some(), ex, cols)?;
        fused::top_n(&dense, &view, n, &filters, stop)
    })?;
    Ok((lists(py, ids, b, n)?, lists(py, out, b, n)?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ranking_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(coverage, m)?)?;
    m.add_function(wrap_pyfunction!(top_n, m)?)?;
    Ok(())
}
