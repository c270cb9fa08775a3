//! The dense-product kernel (`personae_core::gemm`): which one runs, and a direct entry for the
//! tests and benches that compare it with numpy.

use numpy::PyReadonlyArray2;
use personae_core::gemm::{self, Kernel};
use personae_core::lowp::{self, FirstPass};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert::{matrix, rows};
use crate::errors::run;

/// The GEMM kernel in use ("avx512", "avx2" or "portable"). `force` switches it for the whole
/// process: "portable" (the `gemm` crate), "avx512" or "avx2" (ours; one the CPU lacks falls
/// back to the best it has) or "best".
#[pyfunction]
#[pyo3(signature = (force=None))]
fn gemm_kernel(force: Option<&str>) -> PyResult<&'static str> {
    let k = match force {
        None => gemm::kernel(),
        Some("portable") => gemm::set_kernel(Kernel::Portable),
        Some("avx512") => gemm::set_kernel(Kernel::Avx512),
        Some("avx2") => gemm::set_kernel(Kernel::Avx2),
        Some("best") => gemm::set_kernel(gemm::best()),
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "force must be 'portable', 'avx512', 'avx2' or 'best', not {other:?}"
            )))
        }
    };
    Ok(k.name())
}

/// The first pass in use ("amx", "avx512bf16", "avx512int16", "avx2int16" or "fp32") of
/// Mult-VAE's top-N and of AMP-CF's pruned top-N (its filter score's low-rank part). `force`
/// switches it for the whole process: "fp32" (the plain fp32 GEMM over every item), "amx"
/// (certified bf16 on AMX tiles with exact fp32 rescoring), "avx512bf16" (the same with AVX-512
/// `vdpbf16ps`), "avx512int16" (certified int16 with AVX-512 VNNI `vpdpwssd`), "avx2int16" (the
/// same with AVX2 `vpmaddwd`) or "best"; a pass this machine cannot run (no such instructions,
/// or the `gemm` crate's kernel in use) falls back to fp32.
#[pyfunction]
#[pyo3(signature = (force=None))]
fn first_pass(force: Option<&str>) -> PyResult<&'static str> {
    let want = match force {
        None => return Ok(lowp::first_pass().name()),
        Some("best") => lowp::best(),
        Some(name) => FirstPass::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = FirstPass::ALL.iter().map(|p| p.name()).collect();
            PyValueError::new_err(format!(
                "force must be one of {names:?} or 'best', not {name:?}"
            ))
        })?,
    };
    lowp::set_first_pass(want);
    Ok(lowp::first_pass().name())
}

/// `a @ bt.T` (float32, C-contiguous) on one thread, through the kernel in use.
#[pyfunction]
fn gemm_a_bt<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f32>,
    bt: PyReadonlyArray2<'py, f32>,
) -> PyResult<Bound<'py, PyAny>> {
    let (av, m, k) = rows(&a, "a")?;
    let (bv, n, k2) = rows(&bt, "bt")?;
    if k != k2 {
        return Err(PyValueError::new_err(format!(
            "a has {k} columns but bt has {k2}"
        )));
    }
    let c = run(py, Some(1), |_| {
        let mut c = vec![0f32; m * n];
        gemm::a_bt(m, n, k, av, bv, &mut c);
        Ok(c)
    })?;
    matrix(py, c, m, n)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gemm_kernel, m)?)?;
    m.add_function(wrap_pyfunction!(gemm_a_bt, m)?)?;
    m.add_function(wrap_pyfunction!(first_pass, m)?)?;
    Ok(())
}
