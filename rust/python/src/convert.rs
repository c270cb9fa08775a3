//! Python objects -> core views, converted once at the seam. No value rules here: the core
//! checks every value (ranges, shapes, finiteness) with one message each.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use personae_core::csr::{CsrView, Index};
use personae_core::fused::Exclude;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// An index array as scipy stores it.
#[derive(FromPyObject)]
pub enum IndexArray<'py> {
    I64(PyReadonlyArray1<'py, i64>),
    I32(PyReadonlyArray1<'py, i32>),
}

impl IndexArray<'_> {
    fn index(&self, what: &str) -> PyResult<Index<'_>> {
        let contiguous = |_| PyValueError::new_err(format!("{what} must be C-contiguous"));
        Ok(match self {
            IndexArray::I64(a) => Index::I64(a.as_slice().map_err(contiguous)?),
            IndexArray::I32(a) => Index::I32(a.as_slice().map_err(contiguous)?),
        })
    }
}

/// A scipy CSR matrix (`csr_matrix` or `csr_array`) with float32 data, borrowed.
pub struct Csr<'py> {
    n_cols: usize,
    indptr: IndexArray<'py>,
    indices: IndexArray<'py>,
    data: PyReadonlyArray1<'py, f32>,
}

impl<'a, 'py> FromPyObject<'a, 'py> for Csr<'py> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let format: Option<String> = obj.getattr("format").ok().and_then(|f| f.extract().ok());
        if format.as_deref() != Some("csr") {
            return Err(PyTypeError::new_err(
                "expected a scipy.sparse CSR matrix (personae converts other formats first)",
            ));
        }
        let shape: (usize, usize) = obj.getattr("shape")?.extract()?;
        let get = |name: &str| obj.getattr(name);
        Ok(Self {
            n_cols: shape.1,
            indptr: get("indptr")?.extract()?,
            indices: get("indices")?.extract()?,
            data: get("data")?
                .extract()
                .map_err(|_| PyTypeError::new_err("the CSR matrix's data must be float32"))?,
        })
    }
}

impl Csr<'_> {
    /// The arrays as plain slices, to be validated without the GIL.
    pub fn parts(&self) -> PyResult<CsrParts<'_>> {
        Ok(CsrParts {
            n_cols: self.n_cols,
            indptr: self.indptr.index("indptr")?,
            indices: self.indices.index("indices")?,
            data: self
                .data
                .as_slice()
                .map_err(|_| PyValueError::new_err("data must be C-contiguous"))?,
        })
    }
}

/// A CSR matrix's arrays, borrowed and not yet validated.
#[derive(Clone, Copy)]
pub struct CsrParts<'a> {
    n_cols: usize,
    indptr: Index<'a>,
    indices: Index<'a>,
    data: &'a [f32],
}

impl<'a> CsrParts<'a> {
    /// Rows implied by `indptr` (0 when it is empty; the core reports that).
    pub fn n_rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// The validated core view; `name` is the argument name used in error messages.
    pub fn view(&self, name: &str) -> personae_core::Result<CsrView<'a>> {
        CsrView::new(
            name,
            self.n_cols,
            self.indptr,
            self.indices,
            Some(self.data),
        )
    }
}

/// Items to exclude: a boolean mask over the catalogue, int64 item indices, or
/// `{"only": indices}` to exclude every item but those.
#[derive(FromPyObject)]
pub enum ItemSet<'py> {
    Mask(PyReadonlyArray1<'py, bool>),
    Items(PyReadonlyArray1<'py, i64>),
    Only {
        #[pyo3(item)]
        only: PyReadonlyArray1<'py, i64>,
    },
}

impl ItemSet<'_> {
    pub fn exclude(&self) -> PyResult<Exclude<'_>> {
        Ok(match self {
            ItemSet::Mask(m) => Exclude::Mask(slice(m, "exclude_items")?),
            ItemSet::Items(i) => Exclude::Items(slice(i, "exclude_items")?),
            ItemSet::Only { only } => Exclude::AllExcept(slice(only, "items")?),
        })
    }
}

/// A contiguous 1-D array as a slice.
pub fn slice<'a, T: numpy::Element>(
    a: &'a PyReadonlyArray1<'_, T>,
    name: &str,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be a C-contiguous 1-D array")))
}

/// The values of a C-contiguous array in row-major order. numpy's `as_slice` also hands out
/// a Fortran-ordered array's memory, which read as rows is the transpose: refused here, so a
/// column-major array is an error, never a silently wrong answer.
pub fn c_order<'a, T: numpy::Element, D: numpy::ndarray::Dimension>(
    a: &'a numpy::PyReadonlyArray<'_, T, D>,
    what: impl FnOnce() -> String,
) -> PyResult<&'a [T]> {
    match a.as_slice() {
        Ok(values) if a.is_c_contiguous() => Ok(values),
        _ => Err(PyValueError::new_err(what())),
    }
}

/// A C-contiguous 2-D array as (values, rows, columns).
pub fn rows<'a, T: numpy::Element>(
    a: &'a numpy::PyReadonlyArray2<'_, T>,
    name: &str,
) -> PyResult<(&'a [T], usize, usize)> {
    let (r, c) = (a.shape()[0], a.shape()[1]);
    let values = c_order(a, || format!("{name} must be a C-contiguous 2-D array"))?;
    Ok((values, r, c))
}

/// A `rows x cols` numpy array owning `v`.
pub fn matrix<'py, T: numpy::Element>(
    py: Python<'py>,
    v: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, v).reshape([rows, cols])?.into_any())
}

/// `rows` padded lists as a `rows x width` numpy array owning `v`: the width is the lists'
/// length `len / rows`, or `n` when there are no rows (so an empty result keeps its columns).
pub fn lists<'py, T: numpy::Element>(
    py: Python<'py>,
    v: Vec<T>,
    rows: usize,
    n: i64,
) -> PyResult<Bound<'py, PyAny>> {
    let width = v.len().checked_div(rows).unwrap_or(n.max(0) as usize);
    matrix(py, v, rows, width)
}
