//! The most-popular baseline: every user gets the catalogue ranked by training interactions,
//! served through the same fused loop as the models (seen items masked, bounded memory).

use crate::checkpoint::{Checkpoint, Tensor};
use crate::csr::CsrView;
use crate::error::Result;
use crate::fused::{self, Recommended, Request, TileScorer};
use crate::model::Model;
use crate::threads::Stop;
use crate::{bad_model, invalid};

/// A fixed score per item: its number of training interactions.
pub struct Popularity {
    pub n_items: usize,
    item_count: Vec<f32>,
}

impl Popularity {
    /// Builds the model from a validated checkpoint of kind `popularity`.
    pub fn from_checkpoint(mut c: Checkpoint) -> Result<Self> {
        c.expect_kind("popularity")?;
        let n_items = c.usize_field("n_items")?;
        if n_items == 0 {
            return Err(bad_model!("popularity: n_items must be positive"));
        }
        let item_count = c.take("item_count", &[n_items])?;
        if let Some(pos) = item_count.iter().position(|&x| x < 0.0) {
            return Err(bad_model!(
                "popularity: item_count[{pos}] = {} is negative",
                item_count[pos]
            ));
        }
        Ok(Self {
            n_items,
            item_count,
        })
    }

    /// Interactions per item (column) of `user_items`: the fitted scores.
    pub fn count(user_items: &CsrView) -> Result<Vec<f32>> {
        if user_items.nnz() == 0 {
            return Err(invalid!("user_items has no interactions"));
        }
        let mut c = vec![0f32; user_items.n_cols];
        for r in 0..user_items.n_rows {
            for &j in user_items.row(r) {
                c[j as usize] += 1.0;
            }
        }
        Ok(c)
    }
}

impl Model for Popularity {
    fn kind(&self) -> &'static str {
        "popularity"
    }

    fn recommend(&self, users: &CsrView, req: &Request, stop: &Stop) -> Result<Recommended> {
        fused::recommend_plain(self, self.kind(), users, req, stop)
    }

    /// Every row gets the item counts.
    fn score(&self, users: &CsrView, stop: &Stop) -> Result<Vec<f32>> {
        fused::dense_scores(self, users, stop)
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    /// The stored tensors, for writing the model back to a file.
    fn tensors(&self) -> Vec<Tensor<'_>> {
        vec![("item_count", vec![self.n_items], (&self.item_count).into())]
    }

    /// Training interactions per item.
    fn item_count(&self) -> Option<&[f32]> {
        Some(&self.item_count)
    }
}

impl TileScorer for Popularity {
    type State = usize;

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn prepare(&self, _users: &CsrView, rows: std::ops::Range<usize>) -> usize {
        rows.len()
    }

    fn score_tile(&self, rows: &usize, items: std::ops::Range<usize>, out: &mut [f32]) {
        let src = &self.item_count[items];
        for row in out[..rows * src.len()].chunks_exact_mut(src.len()) {
            row.copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tests::build;
    use crate::csr::Index;

    #[test]
    fn ranks_by_count_and_masks_seen() {
        let x = CsrView::new(
            "u",
            4,
            Index::I64(&[0, 2, 3, 4]),
            Index::I32(&[1, 2, 2, 3]),
            None,
        )
        .unwrap();
        let counts = Popularity::count(&x).unwrap();
        assert_eq!(counts, vec![0.0, 1.0, 2.0, 1.0]);
        let (m, w) = build(
            "popularity",
            &[("item_count", vec![4], counts)],
            serde_json::json!({"n_items": 4}),
        );
        let p = Popularity::from_checkpoint(Checkpoint::from_bytes(&m, &w).unwrap()).unwrap();
        let req = Request {
            n: 2,
            filters: crate::fused::Filters::new(true, None, 4).unwrap(),
            explain: false,
        };
        let (ids, _, _) = p.recommend(&x, &req, &Stop::new()).unwrap();
        // Ties go to the lower index; each user's own items are masked.
        assert_eq!(ids, vec![3, 0, 1, 3, 2, 1]);
        assert!(Popularity::count(&CsrView::empty(2, 4)).is_err());
    }
}
