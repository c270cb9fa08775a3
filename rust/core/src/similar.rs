//! Item-item similarity: the cosine of a model's item embeddings, through the fused top-N loop.
//!
//! Items that had no training interactions keep their initial (random) embeddings, so they are
//! never returned when the model records its training item counts.

use crate::csr::CsrView;
use crate::error::Result;
use crate::fused::{self, Exclude, Filters, TileScorer};
use crate::threads::Stop;
use crate::vmath::normalise;
use crate::{gemm, out_of_range};

/// L2-normalised item embeddings and the normalised query rows.
struct Cosine {
    unit: Vec<f32>,
    dim: usize,
    n_items: usize,
    queries: Vec<i64>,
}

impl TileScorer for Cosine {
    type State = Vec<f32>;

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn prepare(&self, _users: &CsrView, rows: std::ops::Range<usize>) -> Vec<f32> {
        let d = self.dim;
        self.queries[rows]
            .iter()
            .flat_map(|&q| {
                self.unit[q as usize * d..(q as usize + 1) * d]
                    .iter()
                    .copied()
            })
            .collect()
    }

    fn score_tile(&self, q: &Vec<f32>, items: std::ops::Range<usize>, out: &mut [f32]) {
        let d = self.dim;
        let m = q.len() / d.max(1);
        let tile = &self.unit[items.start * d..items.end * d];
        gemm::a_bt(m, items.len(), d, q, tile, out);
    }
}

/// The `n` items most similar to each of `queries` by cosine of `factors` (`n_items x dim`),
/// best first (an item is its own best match, score 1), padded like [`fused::top_n`]. Items
/// with a zero `item_count` and the `exclude` set are never returned; such an item asked about
/// gets an all-padding row (untrained, its factors are no evidence of likeness).
pub fn similar_items(
    factors: &[f32],
    dim: usize,
    item_count: Option<&[f32]>,
    queries: &[i64],
    n: i64,
    exclude: Option<Exclude>,
    stop: &Stop,
) -> Result<(Vec<i64>, Vec<f32>)> {
    let n_items = factors.len() / dim.max(1);
    if let Some(&q) = queries
        .iter()
        .find(|&&q| q < 0 || q as u64 >= n_items as u64)
    {
        return Err(out_of_range!(
            "itemid: item index {q} is outside 0..{n_items}"
        ));
    }
    let mut filters = Filters::new(false, exclude, n_items)?;
    if let Some(counts) = item_count {
        let mut mask = filters
            .exclude_items
            .take()
            .map_or_else(|| vec![false; n_items], |m| m.into_owned());
        for (m, &c) in mask.iter_mut().zip(counts) {
            *m |= c <= 0.0;
        }
        filters.exclude_items = Some(mask.into());
    }
    let mut unit = factors.to_vec();
    unit.chunks_exact_mut(dim.max(1)).for_each(normalise);
    let scorer = Cosine {
        unit,
        dim,
        n_items,
        queries: queries.to_vec(),
    };
    let rows = CsrView::empty(queries.len(), n_items);
    let (mut ids, mut scores) = fused::top_n(&scorer, &rows, n, &filters, stop)?;
    if let Some(counts) = item_count {
        let width = ids.len() / queries.len().max(1);
        for (r, &q) in queries.iter().enumerate() {
            if counts[q as usize] <= 0.0 {
                ids[r * width..(r + 1) * width].fill(-1);
                scores[r * width..(r + 1) * width].fill(f32::NEG_INFINITY);
            }
        }
    }
    Ok((ids, scores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_self_first_and_untrained_items_skipped() {
        // Items 0 and 1 point the same way, 2 is orthogonal, 3 is untrained.
        let f = [1.0f32, 0.0, 2.0, 0.1, 0.0, 1.0, 1.0, 0.0];
        let stop = Stop::new();
        let (ids, sc) = similar_items(&f, 2, None, &[0], 4, None, &stop).unwrap();
        assert_eq!(ids[0], 0);
        assert!((sc[0] - 1.0).abs() < 1e-6);
        assert!(ids.contains(&3));
        let counts = [1.0f32, 1.0, 1.0, 0.0];
        let (ids, _) = similar_items(&f, 2, Some(&counts), &[0], 4, None, &stop).unwrap();
        assert_eq!(ids, vec![0, 1, 2, -1]);
        // Asked about the untrained item: a row of padding, not items at cosine 0 or noise.
        let (ids, sc) = similar_items(&f, 2, Some(&counts), &[3, 0], 2, None, &stop).unwrap();
        assert_eq!(ids, vec![-1, -1, 0, 1]);
        assert!(sc[..2].iter().all(|s| *s == f32::NEG_INFINITY));
        assert!(similar_items(&f, 2, None, &[4], 1, None, &stop).is_err());
    }
}
