//! Category data of the calibrated reranker: the items x categories distributions
//! ([`ItemCategories`]), one attribute with its lambda and prior ([`Attribute`]), and how raw
//! scores become relevance ([`Normalize`]). Definitions in the parent module.

use crate::csr::CsrView;
use crate::error::Result;
use crate::invalid;

/// How raw scores become relevance, per user over that user's valid candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalize {
    /// Relevance = raw score.
    None,
    /// (s - min) / (max - min); all zeros when every score is equal.
    MinMax,
    /// exp(s - max) / sum exp(s - max): relevance sums to 1 over the candidates.
    Softmax,
}

impl Normalize {
    /// "none", "minmax" or "softmax".
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "minmax" => Ok(Self::MinMax),
            "softmax" => Ok(Self::Softmax),
            _ => Err(invalid!(
                "normalize must be 'none', 'minmax' or 'softmax', got {s:?}"
            )),
        }
    }
}

/// An items x categories matrix whose rows are distributions, owned and validated.
#[derive(Clone, Debug)]
pub struct ItemCategories {
    csr: CsrView<'static>,
    values: Vec<f64>,
}

impl ItemCategories {
    /// Checks that every entry is non-negative and every row sums to 1 within 1e-4 (or is empty
    /// or all zero); with `normalize_rows`, rows are first divided by their sums.
    pub fn new(name: &str, csr: CsrView<'_>, normalize_rows: bool) -> Result<Self> {
        let mut values = Vec::with_capacity(csr.nnz());
        for i in 0..csr.n_rows {
            let start = values.len();
            for (_, v) in csr.row_iter(i) {
                if v < 0.0 {
                    return Err(invalid!(
                        "{name}: item {i} has a negative category weight {v}"
                    ));
                }
                values.push(v);
            }
            let sum: f64 = values[start..].iter().sum();
            if normalize_rows && sum > 0.0 {
                values[start..].iter_mut().for_each(|v| *v /= sum);
            } else if sum != 0.0 && (sum - 1.0).abs() > 1e-4 {
                return Err(invalid!(
                    "{name}: the row of item {i} sums to {sum}, not 1 (each row must be the \
                     item's category distribution; pass normalize_rows=True for 0/1 flags)"
                ));
            }
        }
        Ok(Self {
            csr: csr.into_owned(),
            values,
        })
    }

    pub fn n_items(&self) -> usize {
        self.csr.n_rows
    }

    pub fn n_categories(&self) -> usize {
        self.csr.n_cols
    }

    /// `(category, weight)` of item `i`.
    #[inline]
    pub(super) fn item(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let vals = self.row_values(i);
        self.csr
            .row(i)
            .iter()
            .zip(vals)
            .map(|(&g, &c)| (g as usize, c))
    }

    #[inline]
    fn row_values(&self, i: usize) -> &[f64] {
        &self.values[self.csr.row_range(i)]
    }

    /// The category distribution of the whole catalogue (uniform when no item has one).
    fn catalogue_distribution(&self) -> Vec<f64> {
        let g = self.n_categories();
        let mut mass = vec![0f64; g];
        for i in 0..self.n_items() {
            for (c, v) in self.item(i) {
                mass[c] += v;
            }
        }
        let s: f64 = mass.iter().sum();
        if s > 0.0 {
            mass.iter_mut().for_each(|v| *v /= s);
        } else {
            mass.fill(1.0 / g.max(1) as f64);
        }
        mass
    }
}

/// One category attribute of a reranker.
#[derive(Clone, Debug)]
pub struct Attribute {
    pub cats: ItemCategories,
    /// Weight of this attribute's miscalibration, in [0, 1].
    pub lambda: f64,
    /// p0 of Steck's prior, one weight per category, summing to 1.
    pub prior: Vec<f64>,
}

impl Attribute {
    /// `prior` defaults to the catalogue's category distribution.
    pub fn new(cats: ItemCategories, lambda: f64, prior: Option<Vec<f64>>) -> Result<Self> {
        let g = cats.n_categories();
        let prior = match prior {
            None => cats.catalogue_distribution(),
            Some(p) => {
                let bad = p.len() != g
                    || p.iter().any(|x| !x.is_finite() || *x < 0.0)
                    || (g > 0 && (p.iter().sum::<f64>() - 1.0).abs() > 1e-4);
                if bad {
                    return Err(invalid!(
                        "prior: must hold {g} finite non-negative weights (one per category) \
                         summing to 1"
                    ));
                }
                p
            }
        };
        Ok(Self {
            cats,
            lambda,
            prior,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::cats;
    use super::*;
    use crate::csr::Index;

    #[test]
    fn rejects_bad_categories() {
        let bad = CsrView::new(
            "c",
            2,
            Index::I64(&[0, 2]),
            Index::I32(&[0, 1]),
            Some(&[0.5, 0.6]),
        )
        .unwrap();
        let e = ItemCategories::new("item_categories", bad.clone(), false).unwrap_err();
        assert!(e.to_string().contains("item 0"));
        assert!(ItemCategories::new("item_categories", bad, true).is_ok());
        let neg = CsrView::new(
            "c",
            2,
            Index::I64(&[0, 2]),
            Index::I32(&[0, 1]),
            Some(&[1.5, -0.5]),
        )
        .unwrap();
        let e = ItemCategories::new("item_categories", neg, true).unwrap_err();
        assert!(e.to_string().contains("negative"));
        assert!(Attribute::new(cats(), 0.5, Some(vec![0.5, 0.6])).is_err());
        assert!(Normalize::parse("zscore").is_err());
    }
}
