//! `personae._core`: the PyO3 layer over `personae-core`, and nothing else. Registration only:
//! conversions live in `convert`, errors and the GIL-free runner in `errors`, one module per
//! model family.

mod ampcf;
mod calibrate;
mod convert;
mod errors;
mod families;
mod filters;
mod gemm;
mod metrics;
mod models;
mod multvae;
mod popularity;

pub(crate) use errors::to_py;

#[pyo3::pymodule]
fn _core(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    use pyo3::types::PyModuleMethods;
    errors::register(m)?;
    models::register(m)?;
    families::register(m)?;
    filters::register(m)?;
    m.add_class::<multvae::PyMultVae>()?;
    m.add_class::<ampcf::PyAmpCf>()?;
    m.add_class::<popularity::PyPopularity>()?;
    calibrate::register(m)?;
    metrics::register(m)?;
    gemm::register(m)?;
    m.add("MAX_THREADS", personae_core::threads::max_threads())?;
    m.add("MAX_PERSONAS", personae_core::ampcf::MAX_PERSONAS)?;
    Ok(())
}
