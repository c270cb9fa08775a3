//! `personae._core.MultVAE`: the Mult-VAE family's class; its serving is the base `Model`'s.

use pyo3::prelude::*;

use crate::models::PyModel;

/// A loaded Mult-VAE. Immutable and thread-safe; it has no state beyond the base's.
#[pyclass(extends = PyModel, frozen, name = "MultVAE", module = "personae._core")]
pub struct PyMultVae;
