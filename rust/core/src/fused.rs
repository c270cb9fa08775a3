//! The fused batch top-N loop shared by every model.
//!
//! Users are cut into chunks, processed in parallel by rayon. For each chunk a model prepares its
//! per-user state once (e.g. the Mult-VAE encoder), then items are visited tile by tile: the model
//! scores the chunk against the tile into a small reusable buffer, seen items are masked, and each
//! user's bounded heap absorbs the tile. The full `users x items` score matrix never exists:
//! memory per thread is `chunk x tile` floats plus `chunk x n` heap entries.

use rayon::prelude::*;

use crate::csr::CsrView;
use crate::topk::TopK;

/// Users scored together; large enough to amortise streaming the item weights through cache.
pub const USER_CHUNK: usize = 256;
/// Items per tile: a `USER_CHUNK x ITEM_TILE` f32 buffer is 2 MiB.
pub const ITEM_TILE: usize = 2048;

/// A model that can score a chunk of users against a contiguous range of items.
pub trait TileScorer: Sync {
    /// Per-chunk user state (e.g. hidden activations), computed once per chunk.
    type State: Send;

    fn n_items(&self) -> usize;

    /// Builds the state of users `rows` of `users`.
    fn prepare(&self, users: &CsrView, rows: std::ops::Range<usize>) -> Self::State;

    /// Writes `out[u * items.len() + j]` = score of chunk user `u` for item `items.start + j`.
    fn score_tile(&self, state: &Self::State, items: std::ops::Range<usize>, out: &mut [f32]);
}

/// What to leave out of every list, besides nothing.
#[derive(Clone, Copy, Default)]
pub struct Filters<'a> {
    /// Mask each user's own row of `users` (items already seen).
    pub exclude_seen: bool,
    /// Items removed for everyone, as a mask over the catalogue.
    pub exclude_items: Option<&'a [bool]>,
}

/// Top-`n` items per user: `(ids, scores)`, each `users.n_rows x n`, best first, padded with
/// id -1 / score -inf when fewer than `n` items remain after filtering.
pub fn top_n<S: TileScorer>(
    scorer: &S,
    users: &CsrView,
    n: usize,
    filters: Filters,
) -> (Vec<i64>, Vec<f32>) {
    let b = users.n_rows;
    let mut ids = vec![-1i64; b * n];
    let mut scores = vec![f32::NEG_INFINITY; b * n];
    if b == 0 || n == 0 {
        return (ids, scores);
    }
    let n_items = scorer.n_items();
    ids.par_chunks_mut(USER_CHUNK * n)
        .zip(scores.par_chunks_mut(USER_CHUNK * n))
        .enumerate()
        .for_each(|(c, (ids_c, scores_c))| {
            let rows = c * USER_CHUNK..((c + 1) * USER_CHUNK).min(b);
            let m = rows.len();
            let state = scorer.prepare(users, rows.clone());
            let mut heaps: Vec<TopK> = (0..m).map(|_| TopK::new(n)).collect();
            // Cursor into each user's sorted seen list, advanced tile by tile.
            let mut cursor: Vec<usize> = vec![0; m];
            let mut buf = vec![0f32; m * ITEM_TILE.min(n_items)];
            let mut t0 = 0;
            while t0 < n_items {
                let t1 = (t0 + ITEM_TILE).min(n_items);
                let w = t1 - t0;
                let tile = &mut buf[..m * w];
                scorer.score_tile(&state, t0..t1, tile);
                for (u, heap) in heaps.iter_mut().enumerate() {
                    let row = &mut tile[u * w..(u + 1) * w];
                    // NaN marks a masked item: TopK never keeps NaN.
                    if filters.exclude_seen {
                        let seen = users.row(rows.start + u);
                        let cur = &mut cursor[u];
                        while *cur < seen.len() && (seen[*cur] as usize) < t1 {
                            row[seen[*cur] as usize - t0] = f32::NAN;
                            *cur += 1;
                        }
                    }
                    if let Some(ex) = filters.exclude_items {
                        for (s, &x) in row.iter_mut().zip(&ex[t0..t1]) {
                            if x {
                                *s = f32::NAN;
                            }
                        }
                    }
                    heap.scan(row, t0 as u32);
                }
                t0 = t1;
            }
            for (u, heap) in heaps.iter_mut().enumerate() {
                heap.drain_into(
                    &mut ids_c[u * n..(u + 1) * n],
                    &mut scores_c[u * n..(u + 1) * n],
                );
            }
        });
    (ids, scores)
}

/// Dense scores supplied by the caller (`rows x n_items`, row-major): top-N of any model's
/// output with the same masking and padding rules.
pub struct DenseScores<'a> {
    pub scores: &'a [f32],
    pub n_items: usize,
}

impl TileScorer for DenseScores<'_> {
    type State = std::ops::Range<usize>;

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn prepare(&self, _users: &CsrView, rows: std::ops::Range<usize>) -> Self::State {
        rows
    }

    fn score_tile(&self, rows: &Self::State, items: std::ops::Range<usize>, out: &mut [f32]) {
        let w = items.len();
        for (u, r) in rows.clone().enumerate() {
            let src = &self.scores[r * self.n_items + items.start..r * self.n_items + items.end];
            out[u * w..(u + 1) * w].copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_top_n_masks_and_pads() {
        // 3 users x 5 items; user 1 has seen everything but one, user 2 nothing.
        let scores: Vec<f32> = vec![
            0.1, 0.9, 0.5, 0.9, 0.0, //
            5.0, 4.0, 3.0, 2.0, 1.0, //
            -1.0, -2.0, -3.0, -4.0, -5.0,
        ];
        let seen = CsrView::new("seen", 5, &[0, 1, 5, 5], &[1, 0, 1, 2, 3], None).unwrap();
        let dense = DenseScores {
            scores: &scores,
            n_items: 5,
        };
        let (ids, sc) = top_n(
            &dense,
            &seen,
            3,
            Filters {
                exclude_seen: true,
                exclude_items: None,
            },
        );
        assert_eq!(ids, vec![3, 2, 0, 4, -1, -1, 0, 1, 2]);
        assert_eq!(sc[..3], [0.9, 0.5, 0.1]);
        assert_eq!(sc[4], f32::NEG_INFINITY);
        let ex = [true, false, false, false, false];
        let (ids, _) = top_n(
            &dense,
            &seen,
            2,
            Filters {
                exclude_seen: false,
                exclude_items: Some(&ex),
            },
        );
        assert_eq!(ids, vec![1, 3, 1, 2, 1, 2]);
    }
}
