//! A CSR matrix (the layout of scipy's `csr_matrix`) borrowed from numpy buffers, validated once.

use std::borrow::Cow;

use crate::error::Result;
use crate::invalid;

/// An index array as scipy stores it: int32 or int64 (scipy picks by size).
#[derive(Clone, Copy, Debug)]
pub enum Index<'a> {
    I32(&'a [i32]),
    I64(&'a [i64]),
}

impl Index<'_> {
    pub fn len(&self) -> usize {
        match self {
            Index::I32(v) => v.len(),
            Index::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn get(&self, i: usize) -> i64 {
        match self {
            Index::I32(v) => v[i] as i64,
            Index::I64(v) => v[i],
        }
    }
}

/// Rows of a user x item (or item x category) matrix.
///
/// Invariants after [`CsrView::new`]: `indptr` has `n_rows + 1` non-decreasing entries starting
/// at 0 and ending at `indices.len()`; every row's indices are strictly increasing (sorted, no
/// duplicates) and lie in `0..n_cols`; `data`, when present, has one finite value per index.
#[derive(Clone, Debug)]
pub struct CsrView<'a> {
    pub n_rows: usize,
    pub n_cols: usize,
    indptr: Cow<'a, [i64]>,
    indices: Cow<'a, [i32]>,
    data: Option<Cow<'a, [f32]>>,
}

impl<'a> CsrView<'a> {
    /// Validates the structure; `name` is the argument name used in error messages.
    pub fn new(
        name: &str,
        n_cols: usize,
        indptr: Index<'a>,
        indices: Index<'a>,
        data: Option<&'a [f32]>,
    ) -> Result<Self> {
        if indptr.is_empty() {
            return Err(invalid!(
                "{name}: indptr must have n_rows + 1 >= 1 entries, got 0"
            ));
        }
        let n_rows = indptr.len() - 1;
        if indptr.get(0) != 0 {
            return Err(invalid!(
                "{name}: indptr[0] must be 0, got {}",
                indptr.get(0)
            ));
        }
        let nnz = indptr.get(n_rows);
        if nnz < 0 || nnz as u64 != indices.len() as u64 {
            return Err(invalid!(
                "{name}: indptr[-1] = {nnz} but there are {} column indices",
                indices.len()
            ));
        }
        if let Some(d) = data {
            if d.len() != indices.len() {
                return Err(invalid!(
                    "{name}: data has {} values but there are {} column indices",
                    d.len(),
                    indices.len()
                ));
            }
            if let Some(pos) = first_in(d, |v| !v.is_finite()) {
                return Err(invalid!(
                    "{name}: data must be finite, found {} at position {pos}",
                    d[pos]
                ));
            }
        }
        // One row's checks; rows are checked in parallel (inside a rayon pool) and the first
        // failing row reports, as a loop over the rows would.
        let check_row = |r: usize| -> Result<()> {
            let (a, b) = (indptr.get(r), indptr.get(r + 1));
            // (a < 0 follows a decrease in an earlier row, which reports first; rows checked in
            // parallel reach it all the same, and it must not index.)
            if b < a || a < 0 {
                return Err(invalid!(
                    "{name}: indptr must be non-decreasing, but indptr[{}] = {b} < indptr[{r}] = {a}",
                    r + 1
                ));
            }
            if b > nnz {
                return Err(invalid!(
                    "{name}: indptr[{}] = {b} exceeds the number of column indices ({nnz})",
                    r + 1
                ));
            }
            let mut prev: i64 = -1;
            for t in a as usize..b as usize {
                let c = indices.get(t);
                if c < 0 || c as u64 >= n_cols as u64 {
                    return Err(invalid!(
                        "{name}: row {r} has column index {c}, outside 0..{n_cols} (the number of \
                         columns)"
                    ));
                }
                if c <= prev {
                    return Err(invalid!(
                        "{name}: row {r} has unsorted or duplicate column indices ({prev} then {c}); \
                         call .sum_duplicates() / .sort_indices() on the scipy matrix first"
                    ));
                }
                prev = c;
            }
            Ok(())
        };
        let rows_chunk = SCAN_CHUNK / (nnz as usize / n_rows.max(1)).max(1);
        if let Some(r) = first_where(n_rows, rows_chunk, |r| check_row(r).is_err()) {
            check_row(r)?;
        }
        // Every index is now known to fit the narrow types, so the conversions below are exact.
        let indptr = match indptr {
            Index::I64(v) => Cow::Borrowed(v),
            Index::I32(v) => Cow::Owned(v.iter().map(|&x| x as i64).collect()),
        };
        let indices = match indices {
            Index::I32(v) => Cow::Borrowed(v),
            Index::I64(v) => Cow::Owned(v.iter().map(|&x| x as i32).collect()),
        };
        Ok(Self {
            n_rows,
            n_cols,
            indptr,
            indices,
            data: data.map(Cow::Borrowed),
        })
    }

    /// An owned, validated matrix (e.g. kept by a reranker across calls).
    pub fn into_owned(self) -> CsrView<'static> {
        CsrView {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            indptr: Cow::Owned(self.indptr.into_owned()),
            indices: Cow::Owned(self.indices.into_owned()),
            data: self.data.map(|d| Cow::Owned(d.into_owned())),
        }
    }

    /// The same matrix with each row divided by its largest value (rows whose values are all
    /// zero stay zero), computed in f64: scores that are linear in the weights then rank the
    /// same at any weight scale, and weights near f32::MAX cannot overflow a sum.
    pub fn unit_rows(&self) -> CsrView<'_> {
        let data = self.data.as_ref().map(|d| {
            let mut scaled = d.to_vec();
            for r in 0..self.n_rows {
                let row = &mut scaled[self.row_range(r)];
                let top = row.iter().fold(0f32, |m, &v| m.max(v)) as f64;
                if top > 0.0 {
                    row.iter_mut().for_each(|v| *v = (*v as f64 / top) as f32);
                }
            }
            Cow::Owned(scaled)
        });
        CsrView {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            indptr: Cow::Borrowed(&self.indptr),
            indices: Cow::Borrowed(&self.indices),
            data,
        }
    }

    /// An empty matrix of `n_rows` rows.
    pub fn empty(n_rows: usize, n_cols: usize) -> CsrView<'static> {
        CsrView {
            n_rows,
            n_cols,
            indptr: Cow::Owned(vec![0; n_rows + 1]),
            indices: Cow::Owned(Vec::new()),
            data: None,
        }
    }

    /// Fails unless every stored value is >= 0 (interaction weights).
    pub fn require_non_negative(&self, name: &str) -> Result<()> {
        if let Some(d) = &self.data {
            if let Some(pos) = first_in(d, |&v| v < 0.0) {
                let row = self.indptr.partition_point(|&p| p <= pos as i64) - 1;
                return Err(invalid!(
                    "{name}: row {row} has a negative weight {} (interaction weights must be >= 0)",
                    d[pos]
                ));
            }
        }
        Ok(())
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Positions of row `r`'s entries in the flat index and value arrays.
    #[inline]
    pub fn row_range(&self, r: usize) -> std::ops::Range<usize> {
        self.indptr[r] as usize..self.indptr[r + 1] as usize
    }

    /// Column indices of row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> &[i32] {
        &self.indices[self.row_range(r)]
    }

    /// Values of row `r` (None when the matrix carries no data: all ones).
    #[inline]
    pub fn row_values(&self, r: usize) -> Option<&[f32]> {
        self.data.as_ref().map(|d| &d[self.row_range(r)])
    }

    /// `(column, value)` pairs of row `r`, values widened to f64 (1 without data).
    #[inline]
    pub fn row_iter(&self, r: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let vals = self.row_values(r);
        self.row(r)
            .iter()
            .enumerate()
            .map(move |(k, &c)| (c as usize, vals.map_or(1.0, |v| v[k] as f64)))
    }
}

/// Values of a simple test that make a task worth sharing out.
const SCAN_CHUNK: usize = 1 << 14;

/// The first of `blocks` blocks for which `bad` holds. Inside a rayon pool (the library's
/// calls run in one, sized by `num_threads`) the pool's threads share the blocks: input checks
/// are serial work before every parallel loop. Outside a pool, a plain loop.
fn first_block(blocks: usize, bad: impl Fn(usize) -> bool + Sync + Send) -> Option<usize> {
    use rayon::prelude::*;
    if blocks >= 4 && rayon::current_thread_index().is_some() {
        (0..blocks).into_par_iter().position_first(bad)
    } else {
        (0..blocks).position(bad)
    }
}

/// The first `i` in `0..n` where `bad(i)` holds, by blocks of `chunk` ([`first_block`]): each
/// block is tested whole (no early exit, so simple tests vectorise) and only the first failing
/// block is searched.
fn first_where(n: usize, chunk: usize, bad: impl Fn(usize) -> bool + Sync + Send) -> Option<usize> {
    let chunk = chunk.max(1);
    let span = |b: usize| b * chunk..n.min((b + 1) * chunk);
    let b = first_block(n.div_ceil(chunk), |b| {
        span(b).fold(false, |a, i| a | bad(i))
    })?;
    span(b).find(|&i| bad(i))
}

/// Whether any of `xs` is bad, without an early exit (so that simple tests vectorise).
#[inline(always)]
fn any_bad<T>(xs: &[T], bad: &impl Fn(&T) -> bool) -> bool {
    xs.iter().fold(false, |a, x| a | bad(x))
}

/// [`any_bad`] compiled for AVX2 (64-bit compares are not in the x86-64 baseline).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn any_bad_avx2<T>(xs: &[T], bad: &impl Fn(&T) -> bool) -> bool {
    any_bad(xs, bad)
}

/// [`first_where`] over the values of a slice, each block's test compiled for AVX2 where the
/// CPU has it; `bad` should be branch-free (`|`, not `||`).
pub(crate) fn first_in<T: Sync>(xs: &[T], bad: impl Fn(&T) -> bool + Sync + Send) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::is_x86_feature_detected!("avx2");
    let block = |b: usize| &xs[b * SCAN_CHUNK..xs.len().min((b + 1) * SCAN_CHUNK)];
    let b = first_block(xs.len().div_ceil(SCAN_CHUNK), |b| {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: the feature any_bad_avx2 is compiled for was detected on this CPU.
            return unsafe { any_bad_avx2(block(b), &bad) };
        }
        any_bad(block(b), &bad)
    })?;
    block(b).iter().position(bad).map(|i| b * SCAN_CHUNK + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(n: usize, p: &'a [i64], i: &'a [i32], d: Option<&'a [f32]>) -> Result<CsrView<'a>> {
        CsrView::new("user_items", n, Index::I64(p), Index::I32(i), d)
    }

    #[test]
    fn negative_indptr_past_a_decrease_is_an_error_not_a_panic() {
        // Row 0 decreases (0 -> -5); row 1 (-5 -> -3) is checked too, in parallel, and must not
        // index with a negative offset.
        let p = [0i64, -5, -3, 2];
        let e = view(5, &p, &[1, 2], None).unwrap_err().to_string();
        assert!(e.contains("indptr must be non-decreasing"), "{e}");
    }

    /// Inside a rayon pool the checks scan in parallel: the error is still the first bad row
    /// or value, as the serial loop reports.
    #[test]
    fn parallel_checks_report_the_first_problem() {
        let rows = 100_000usize;
        let p: Vec<i64> = (0..=rows as i64).map(|r| 2 * r).collect();
        let clean: Vec<i32> = (0..rows).flat_map(|_| [1, 3]).collect();
        let mut i = clean.clone();
        let mut d = vec![1.0f32; 2 * rows];
        // Two bad rows (an unsorted one after an out-of-range one) and two bad values each.
        i[2 * 70_000] = 9;
        i[2 * 90_000 + 1] = 0;
        d[150_000] = f32::NAN;
        d[190_000] = f32::INFINITY;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            assert!(rayon::current_thread_index().is_some());
            let e = view(5, &p, &i, None).unwrap_err().to_string();
            assert!(e.contains("row 70000 has column index 9"), "{e}");
            let e = view(10, &p, &clean, Some(&d)).unwrap_err().to_string();
            assert!(e.contains("found NaN at position 150000"), "{e}");
            d[150_000] = -1.0;
            d[190_000] = -2.0;
            let ok = view(10, &p, &clean, Some(&d)).unwrap();
            let e = ok.require_non_negative("h").unwrap_err().to_string();
            assert!(e.contains("row 75000 has a negative weight -1"), "{e}");
            assert_eq!(first_where(rows, 8, |r| r % 30_001 == 30_000), Some(30_000));
            assert_eq!(first_where(rows, 8, |_| false), None);
            let xs: Vec<u32> = (0..rows as u32).collect();
            assert_eq!(first_in(&xs, |&x| x % 40_001 == 40_000), Some(40_000));
            assert_eq!(first_in(&xs, |&x| x == u32::MAX), None);
        });
    }

    #[test]
    fn unit_rows_divide_each_row_by_its_largest_value() {
        let d = [2.0f32, 4.0, 0.0, 3e38, 1e38];
        let c = view(4, &[0, 2, 3, 3, 5], &[0, 3, 1, 0, 2], Some(&d)).unwrap();
        let u = c.unit_rows();
        assert_eq!(u.row_values(0).unwrap(), &[0.5, 1.0]);
        assert_eq!(u.row_values(1).unwrap(), &[0.0]); // an all-zero row stays zero
        assert_eq!(
            u.row_values(3).unwrap(),
            &[1.0, (1e38f32 as f64 / 3e38f32 as f64) as f32]
        );
        assert_eq!(u.row(3), c.row(3));
        let ones = view(4, &[0, 1], &[2], None).unwrap();
        assert!(ones.unit_rows().row_values(0).is_none());
    }

    #[test]
    fn accepts_valid_and_empty_in_either_index_type() {
        let c = view(4, &[0, 2, 2, 3], &[0, 3, 1], None).unwrap();
        assert_eq!(c.n_rows, 3);
        assert_eq!(c.row(0), &[0, 3]);
        assert!(c.row(1).is_empty());
        let e = view(4, &[0], &[], None).unwrap();
        assert_eq!(e.n_rows, 0);
        let c32 = CsrView::new("x", 4, Index::I32(&[0, 2]), Index::I64(&[1, 3]), None).unwrap();
        assert_eq!(c32.row(0), &[1, 3]);
        assert_eq!(CsrView::empty(2, 5).row(1), &[] as &[i32]);
    }

    #[test]
    fn rejects_each_malformation() {
        type Case = (Vec<i64>, Vec<i32>, Option<Vec<f32>>, &'static str);
        let cases: Vec<Case> = vec![
            (vec![], vec![], None, "n_rows + 1"),
            (vec![1, 1], vec![0], None, "indptr[0]"),
            (vec![0, 2], vec![0], None, "indptr[-1]"),
            (vec![0, 2, 1], vec![0], None, "exceeds"),
            (vec![0, 1], vec![4], None, "outside"),
            (vec![0, 1], vec![-1], None, "outside"),
            (vec![0, 2], vec![2, 1], None, "unsorted"),
            (vec![0, 2], vec![1, 1], None, "duplicate"),
            (vec![0, 1], vec![1], Some(vec![f32::NAN]), "finite"),
            (vec![0, 1], vec![1], Some(vec![1.0, 2.0]), "data has"),
        ];
        for (p, i, d, needle) in cases {
            let msg = view(4, &p, &i, d.as_deref()).unwrap_err().to_string();
            assert!(
                msg.contains(needle) && msg.starts_with("user_items"),
                "{msg}"
            );
        }
        let err = view(4, &[0, 2, 1, 2], &[0, 1], None).unwrap_err();
        assert!(err.to_string().contains("non-decreasing"));
        // An int64 index that would wrap to a valid int32 one is out of range, not item 5.
        let wrap = -(1i64 << 32) + 5;
        let e = CsrView::new("x", 9, Index::I64(&[0, 1]), Index::I64(&[wrap]), None).unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        let neg = view(4, &[0, 1, 2], &[1, 2], Some(&[1.0, -2.0])).unwrap();
        let e = neg.require_non_negative("user_items").unwrap_err();
        assert!(e.to_string().contains("row 1 has a negative weight"), "{e}");
    }
}
