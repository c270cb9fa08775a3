//! `personae._core.Popularity`: counting a fit's item popularity; serving is the base `Model`'s.

use numpy::PyArray1;
use personae_core::popularity::Popularity;
use pyo3::prelude::*;

use crate::convert::Csr;
use crate::errors::run;
use crate::models::PyModel;

/// A fitted popularity model. Immutable and thread-safe; it has no state beyond the base's.
#[pyclass(extends = PyModel, frozen, name = "Popularity", module = "personae._core")]
pub struct PyPopularity;

#[pymethods]
impl PyPopularity {
    /// Interactions per item of `user_items` (float32): the scores a popularity model serves.
    #[staticmethod]
    fn count<'py>(py: Python<'py>, user_items: Csr<'py>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let parts = user_items.parts()?;
        let c = run(py, None, |_| Popularity::count(&parts.view("user_items")?))?;
        Ok(PyArray1::from_vec(py, c))
    }
}
