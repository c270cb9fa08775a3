//! `personae._core.Reranker`: calibrated reranking (see `personae_core::calibrate`), built once
//! with its validated category attributes, then one call per batch.

use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use personae_core::calibrate::{Attribute, Config, ItemCategories, Normalize, Reranker, Target};
use personae_core::invalid;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{lists, matrix, rows, slice, Csr, CsrParts};
use crate::errors::{run, to_py};

/// The target of a call: a users x items history (CSR), or per attribute a dense
/// users x categories matrix.
#[derive(FromPyObject)]
pub enum TargetArg<'py> {
    History(Csr<'py>),
    Dense(Vec<PyReadonlyArray2<'py, f32>>),
}

impl TargetArg<'_> {
    /// Plain slices of the target and its number of rows (values validated later, without
    /// the GIL). Dense targets must have one column per category of their attribute
    /// (`categories`) and the same rows: a transposed p has as many values and would be read
    /// as another user's.
    fn parts(&self, categories: &[usize]) -> PyResult<(TargetParts<'_>, usize)> {
        Ok(match self {
            TargetArg::History(h) => {
                let p = h.parts()?;
                (TargetParts::History(p), p.n_rows())
            }
            TargetArg::Dense(ps) => {
                let mut out = Vec::with_capacity(ps.len());
                let mut n = None;
                for (a, p) in ps.iter().enumerate() {
                    let (v, r, c) = rows(p, "p")?;
                    if let Some(&g) = categories.get(a) {
                        if c != g || n.is_some_and(|n| n != r) {
                            return Err(to_py(
                                p.py(),
                                invalid!(
                                    "p: attribute {a} has shape ({r}, {c}), expected ({}, {g}) \
                                 (users x categories)",
                                    n.unwrap_or(r)
                                ),
                            ));
                        }
                    }
                    n = Some(r);
                    out.push(v);
                }
                (TargetParts::Dense(out), n.unwrap_or(0))
            }
        })
    }
}

enum TargetParts<'a> {
    History(CsrParts<'a>),
    Dense(Vec<&'a [f32]>),
}

impl<'a> TargetParts<'a> {
    fn target(&self) -> personae_core::Result<Target<'a>> {
        Ok(match self {
            TargetParts::History(h) => Target::History(h.view("history")?),
            TargetParts::Dense(ps) => Target::Dense(ps.clone()),
        })
    }
}

/// One attribute as Python gives it: (items x categories CSR, lambda, prior or None,
/// normalize_rows).
type AttributeArg<'py> = (Csr<'py>, f64, Option<PyReadonlyArray1<'py, f64>>, bool);

/// A calibrated reranker over one or more category attributes. Immutable and thread-safe.
#[pyclass(frozen, name = "Reranker", module = "personae._core")]
pub struct PyReranker {
    inner: Reranker,
}

#[pymethods]
impl PyReranker {
    #[new]
    #[pyo3(signature = (attributes, smoothing, normalize, rank_weighting, min_history, prior_weight))]
    fn new(
        py: Python<'_>,
        attributes: Vec<AttributeArg<'_>>,
        smoothing: f64,
        normalize: &str,
        rank_weighting: bool,
        min_history: i64,
        prior_weight: f64,
    ) -> PyResult<Self> {
        let cats = attributes
            .iter()
            .map(|(c, _, _, _)| c.parts())
            .collect::<PyResult<Vec<_>>>()?;
        let priors = attributes
            .iter()
            .map(|(_, _, p, _)| {
                p.as_ref()
                    .map(|p| slice(p, "prior").map(<[f64]>::to_vec))
                    .transpose()
            })
            .collect::<PyResult<Vec<_>>>()?;
        let settings: Vec<(f64, bool)> = attributes.iter().map(|(_, l, _, n)| (*l, *n)).collect();
        let inner = run(py, None, |_| {
            let normalize = Normalize::parse(normalize)?;
            let attrs = settings
                .iter()
                .zip(cats.iter().zip(priors))
                .enumerate()
                .map(|(a, ((lambda, norm), (cats, prior)))| {
                    let name = if a == 0 {
                        "item_categories".to_string()
                    } else {
                        format!("item_categories[{a}]")
                    };
                    let cats = ItemCategories::new(&name, cats.view(&name)?, *norm)?;
                    Attribute::new(cats, *lambda, prior)
                })
                .collect::<personae_core::Result<Vec<_>>>()?;
            let cfg = Config {
                smoothing,
                rank_weighting,
                normalize,
                min_history,
                prior_weight,
            };
            Reranker::new(attrs, cfg)
        })?;
        Ok(Self { inner })
    }

    /// Number of items (rows of every category matrix).
    #[getter]
    fn n_items(&self) -> usize {
        self.inner.n_items()
    }

    /// Number of categories of each attribute.
    #[getter]
    fn n_categories(&self) -> Vec<usize> {
        self.inner
            .attributes()
            .iter()
            .map(|a| a.cats.n_categories())
            .collect()
    }

    /// Each attribute's prior p0 (given, or the catalogue's category distribution).
    #[getter]
    fn priors(&self) -> Vec<Vec<f64>> {
        self.inner
            .attributes()
            .iter()
            .map(|a| a.prior.clone())
            .collect()
    }

    /// Reranks each row of `candidates` (users x C; -1 = padding) with its `scores` into lists
    /// of `n`; `lam` overrides the attributes' lambdas. Returns (ids, scores, ckl_before,
    /// ckl_after), the last two users x attributes.
    #[pyo3(signature = (candidates, scores, target, n, lam=None, num_threads=None))]
    fn rerank<'py>(
        &self,
        candidates: PyReadonlyArray2<'py, i64>,
        scores: PyReadonlyArray2<'py, f32>,
        target: TargetArg<'py>,
        n: i64,
        lam: Option<Vec<f64>>,
        num_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let py = candidates.py();
        let (c, b, w) = rows(&candidates, "candidates")?;
        let (s, sb, sw) = rows(&scores, "scores")?;
        if (sb, sw) != (b, w) {
            // Same count, other shape (a transposed matrix): each user would get others' scores.
            return Err(to_py(
                py,
                invalid!(
                    "scores has shape ({sb}, {sw}) but candidates has ({b}, {w}): one score per \
                 candidate"
                ),
            ));
        }
        let (t, _) = target.parts(&self.n_categories())?;
        let r = &self.inner;
        let out = run(py, num_threads, |stop| {
            r.rerank(c, s, b, &t.target()?, n, lam.as_deref(), stop)
        })?;
        let na = self.inner.attributes().len();
        PyTuple::new(
            py,
            [
                lists(py, out.ids, b, n)?,
                lists(py, out.scores, b, n)?,
                matrix(py, out.ckl_before, b, na)?,
                matrix(py, out.ckl_after, b, na)?,
            ],
        )
    }

    /// Per attribute, p(g|u) of every user of `target` (users x categories, float64), after
    /// `min_history` and the prior.
    fn target<'py>(
        &self,
        py: Python<'py>,
        target: TargetArg<'py>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let (t, b) = target.parts(&self.n_categories())?;
        let r = &self.inner;
        let ps = run(py, None, |_| r.target_distribution(&t.target()?, b))?;
        ps.into_iter()
            .zip(self.n_categories())
            .map(|(p, g)| matrix(py, p, b, g))
            .collect()
    }

    /// Per-user, per-attribute C_KL of the lists `ids` (users x attributes).
    fn miscalibration<'py>(
        &self,
        py: Python<'py>,
        ids: PyReadonlyArray2<'py, i64>,
        target: TargetArg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let r = &self.inner;
        self.per_user(py, &ids, &target, |v, b, t| r.miscalibration(v, b, t))
    }

    /// Per-user, per-attribute share of the user's interests present in the lists `ids`
    /// (see `personae_core::calibrate::Reranker::interest_recall`).
    fn interest_recall<'py>(
        &self,
        py: Python<'py>,
        ids: PyReadonlyArray2<'py, i64>,
        target: TargetArg<'py>,
        threshold: f64,
        exclude_top: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let r = &self.inner;
        self.per_user(py, &ids, &target, |v, b, t| {
            r.interest_recall(v, b, t, threshold, exclude_top)
        })
    }

    /// Per-user, per-attribute minority-taste recall at `k` of the lists `ids` against the
    /// relevant items `truth` (see `personae_core::calibrate::Reranker::taste_recall`).
    fn taste_recall<'py>(
        &self,
        py: Python<'py>,
        ids: PyReadonlyArray2<'py, i64>,
        target: TargetArg<'py>,
        truth: Csr<'py>,
        k: i64,
        threshold: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let truth = truth.parts()?;
        let r = &self.inner;
        self.per_user(py, &ids, &target, |v, b, t| {
            r.taste_recall(v, b, t, &truth.view("truth")?, k, threshold)
        })
    }
}

impl PyReranker {
    /// The shared body of the list metrics: `metric(lists, rows, target)` without the GIL,
    /// returned as a users x attributes matrix.
    fn per_user<'py>(
        &self,
        py: Python<'py>,
        ids: &PyReadonlyArray2<'_, i64>,
        target: &TargetArg<'_>,
        metric: impl Fn(&[i64], usize, &Target) -> personae_core::Result<Vec<f64>> + Sync,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (v, b, _) = rows(ids, "ids")?;
        let (t, _) = target.parts(&self.n_categories())?;
        let out = run(py, None, |_| metric(v, b, &t.target()?))?;
        matrix(py, out, b, self.inner.attributes().len())
    }
}

/// How the reranker's greedy steps run on this CPU: "avx512" or "avx2" (a certified f32 first
/// pass with those kernels, for users whose categories in play fit its tables), or "f64".
#[pyfunction]
fn rerank_first_pass() -> &'static str {
    personae_core::calibrate::first_pass_path()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rerank_first_pass, m)?)?;
    m.add_class::<PyReranker>()
}
