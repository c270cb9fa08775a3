//! The filter family's fitting kernel (`personae_core::filter::graph_votes`); serving needs
//! nothing beyond the base `Model`.

use numpy::{PyArray1, PyReadonlyArray1};
use personae_core::filter::{self, Scaling};
use pyo3::prelude::*;

use crate::convert::{slice, Csr};
use crate::errors::run;

/// `(indptr, indices, data)`: the CSR rows of `P diag(post)`, `P = R^T R` with `R` the rows of
/// `user_items` scaled as `f32(rows_after_u ((rows_u x_uj) cols_j))` (`rows` and `cols` both
/// or neither; `rows_after` optional), each row cut to its `keep` largest entries (ties to the
/// lower column; None keeps all). Bit for bit scipy's float32 product (see the core's docs).
#[pyfunction]
#[pyo3(signature = (user_items, post, keep=None, rows=None, cols=None, rows_after=None, num_threads=None))]
#[allow(clippy::too_many_arguments)]
fn graph_votes<'py>(
    py: Python<'py>,
    user_items: Csr<'py>,
    post: PyReadonlyArray1<'py, f64>,
    keep: Option<usize>,
    rows: Option<PyReadonlyArray1<'py, f64>>,
    cols: Option<PyReadonlyArray1<'py, f64>>,
    rows_after: Option<PyReadonlyArray1<'py, f64>>,
    num_threads: Option<i64>,
) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
    let post = slice(&post, "post")?;
    let rows = rows.as_ref().map(|a| slice(a, "rows")).transpose()?;
    let cols = cols.as_ref().map(|a| slice(a, "cols")).transpose()?;
    let after = rows_after
        .as_ref()
        .map(|a| slice(a, "rows_after"))
        .transpose()?;
    let parts = user_items.parts()?;
    let v = run(py, num_threads, |stop| {
        let scaling = Scaling::from_parts(rows, cols, after)?;
        filter::graph_votes(&parts.view("user_items")?, scaling, post, keep, stop)
    })?;
    pyo3::types::PyTuple::new(
        py,
        [
            PyArray1::from_vec(py, v.indptr).into_any(),
            PyArray1::from_vec(py, v.indices).into_any(),
            PyArray1::from_vec(py, v.data).into_any(),
        ],
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(graph_votes, m)?)?;
    Ok(())
}
