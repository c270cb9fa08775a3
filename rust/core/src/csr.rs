//! A borrowed CSR matrix (the layout of scipy's `csr_matrix`) and its validation.

use crate::error::Result;
use crate::invalid;

/// Rows of a user x item matrix, borrowed from numpy buffers.
///
/// Invariants after [`CsrView::new`]: `indptr` has `n_rows + 1` non-decreasing entries starting
/// at 0 and ending at `indices.len()`; every row's indices are strictly increasing (sorted, no
/// duplicates) and lie in `0..n_cols`; `data`, when present, has one finite value per index.
#[derive(Clone, Copy, Debug)]
pub struct CsrView<'a> {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: &'a [i64],
    pub indices: &'a [i32],
    pub data: Option<&'a [f32]>,
}

impl<'a> CsrView<'a> {
    /// Validates the structure; `name` is the argument name used in error messages.
    pub fn new(
        name: &str,
        n_cols: usize,
        indptr: &'a [i64],
        indices: &'a [i32],
        data: Option<&'a [f32]>,
    ) -> Result<Self> {
        if indptr.is_empty() {
            return Err(invalid!(
                "{name}: indptr must have n_rows + 1 >= 1 entries, got 0"
            ));
        }
        let n_rows = indptr.len() - 1;
        if indptr[0] != 0 {
            return Err(invalid!("{name}: indptr[0] must be 0, got {}", indptr[0]));
        }
        let nnz = indptr[n_rows];
        if nnz < 0 || nnz as usize != indices.len() {
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
            if let Some(pos) = d.iter().position(|v| !v.is_finite()) {
                return Err(invalid!(
                    "{name}: data must be finite, found {} at position {pos}",
                    d[pos]
                ));
            }
        }
        for r in 0..n_rows {
            let (a, b) = (indptr[r], indptr[r + 1]);
            if b < a {
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
            let row = &indices[a as usize..b as usize];
            let mut prev: i64 = -1;
            for &c in row {
                if c < 0 || c as usize >= n_cols {
                    return Err(invalid!(
                        "{name}: row {r} has column index {c}, outside 0..{n_cols} (the number of items)"
                    ));
                }
                if (c as i64) <= prev {
                    return Err(invalid!(
                        "{name}: row {r} has unsorted or duplicate column indices ({prev} then {c}); \
                         call .sum_duplicates() / .sort_indices() on the scipy matrix first"
                    ));
                }
                prev = c as i64;
            }
        }
        Ok(Self {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// Column indices of row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> &'a [i32] {
        &self.indices[self.indptr[r] as usize..self.indptr[r + 1] as usize]
    }

    /// Values of row `r` (ones when the matrix carries no data).
    #[inline]
    pub fn row_values(&self, r: usize) -> Option<&'a [f32]> {
        self.data
            .map(|d| &d[self.indptr[r] as usize..self.indptr[r + 1] as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_and_empty() {
        let c = CsrView::new("x", 4, &[0, 2, 2, 3], &[0, 3, 1], None).unwrap();
        assert_eq!(c.n_rows, 3);
        assert_eq!(c.row(0), &[0, 3]);
        assert!(c.row(1).is_empty());
        let e = CsrView::new("x", 4, &[0], &[], None).unwrap();
        assert_eq!(e.n_rows, 0);
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
            let err = CsrView::new("user_items", 4, &p, &i, d.as_deref()).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains(needle) && msg.starts_with("user_items"),
                "{msg}"
            );
        }
        let err = CsrView::new("u", 4, &[0, 2, 1, 2], &[0, 1], None).unwrap_err();
        assert!(err.to_string().contains("non-decreasing"));
    }
}
