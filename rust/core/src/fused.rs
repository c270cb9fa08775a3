//! The fused batch top-N loop shared by every model.
//!
//! Users are cut into chunks, processed in parallel by rayon. For each chunk a model prepares its
//! per-user state once (e.g. the Mult-VAE encoder), then items are visited tile by tile: the model
//! scores the chunk against the tile into a small reusable buffer, seen items are masked, and each
//! user's bounded heap absorbs the tile. The full `users x items` score matrix never exists:
//! memory per thread is `chunk x tile` floats plus `chunk x n` heap entries.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::csr::CsrView;
use crate::error::{buffer, check_fits, Result};
use crate::threads::Stop;
use crate::topk::TopK;
use crate::{invalid, out_of_range};

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

/// Items to leave out for everyone, as the caller gave them.
#[derive(Clone, Copy, Debug)]
pub enum Exclude<'a> {
    /// One flag per item of the catalogue.
    Mask(&'a [bool]),
    /// Item indices.
    Items(&'a [i64]),
    /// Every item except these indices (a candidate restriction).
    AllExcept(&'a [i64]),
}

/// What to leave out of every list.
#[derive(Clone, Debug, Default)]
pub struct Filters<'a> {
    /// Mask each user's own row of `users` (items already seen).
    pub exclude_seen: bool,
    /// Items removed for everyone, as a mask over the catalogue.
    pub exclude_items: Option<Cow<'a, [bool]>>,
}

impl<'a> Filters<'a> {
    /// Validates `exclude` against a catalogue of `n_items`.
    pub fn new(exclude_seen: bool, exclude: Option<Exclude<'a>>, n_items: usize) -> Result<Self> {
        let exclude_items = match exclude {
            None => None,
            Some(Exclude::Mask(m)) => {
                if m.len() != n_items {
                    return Err(invalid!(
                        "exclude_items: a boolean mask must have one entry per item ({n_items}), \
                         got {}",
                        m.len()
                    ));
                }
                Some(Cow::Borrowed(m))
            }
            Some(Exclude::Items(ix)) => Some(Cow::Owned(mark(ix, n_items, "exclude_items", true)?)),
            Some(Exclude::AllExcept(ix)) => Some(Cow::Owned(mark(ix, n_items, "items", false)?)),
        };
        Ok(Self {
            exclude_seen,
            exclude_items,
        })
    }
}

/// A mask over `n_items` that is `!flag` everywhere but `flag` at `ix` (indices checked).
fn mark(ix: &[i64], n_items: usize, name: &str, flag: bool) -> Result<Vec<bool>> {
    let mut m = vec![!flag; n_items];
    for &i in ix {
        if i < 0 || i as u64 >= n_items as u64 {
            return Err(out_of_range!(
                "{name}: item index {i} is outside 0..{n_items}"
            ));
        }
        m[i as usize] = flag;
    }
    Ok(m)
}

/// A list length asked for by a caller: at least 1.
pub fn list_len(n: i64) -> Result<usize> {
    if n < 1 {
        return Err(invalid!("n must be a positive integer, got {n}"));
    }
    usize::try_from(n).map_err(|_| invalid!("n = {n} does not fit this machine's word size"))
}

/// The padded `(ids, scores)` buffers of `rows` lists of length `n`, or an error when they
/// cannot fit in memory.
pub fn result_buffers(what: &str, rows: usize, n: usize) -> Result<(Vec<i64>, Vec<f32>)> {
    let desc = format!("{what}: {rows} lists of n = {n}");
    // ids (8 bytes) and scores (4 bytes) live together: check their sum first. A list that
    // long cannot exist even without rows (numpy could not shape an empty (0, n) result).
    check_fits(&desc, Some(n), 12)?;
    let len = check_fits(&desc, rows.checked_mul(n), 12)?;
    Ok((
        buffer(&desc, Some(len), -1i64)?,
        buffer(&desc, Some(len), f32::NEG_INFINITY)?,
    ))
}

/// What a model's `recommend` is asked for.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// List length (checked by [`top_n`]).
    pub n: i64,
    /// What to leave out of every list.
    pub filters: Filters<'a>,
    /// Also name the dominant persona of each listed item (persona models only).
    pub explain: bool,
}

/// `(ids, scores, dominant persona of each listed item when asked for)`, each `rows x n`.
pub type Recommended = (Vec<i64>, Vec<f32>, Option<Vec<i64>>);

fn check_columns(users: &CsrView, n_items: usize) -> Result<()> {
    if users.n_cols != n_items {
        return Err(invalid!(
            "user_items has {} columns but the model has {n_items} items",
            users.n_cols
        ));
    }
    Ok(())
}

/// The rule every model's input rows follow, in one place: one column per item of the model,
/// and interaction weights >= 0.
pub fn check_users(users: &CsrView, n_items: usize) -> Result<()> {
    check_columns(users, n_items)?;
    users.require_non_negative("user_items")
}

/// Dense scores (`rows x n_items`, row-major) of every row of `users`, tile by tile through
/// the scorer: for tests and small batches (top-N never builds this matrix).
pub fn dense_scores<S: TileScorer>(scorer: &S, users: &CsrView, stop: &Stop) -> Result<Vec<f32>> {
    let n = scorer.n_items();
    check_users(users, n)?;
    let mut out = buffer("score", users.n_rows.checked_mul(n), 0f32)?;
    if n == 0 {
        return Ok(out);
    }
    out.par_chunks_mut(USER_CHUNK * n)
        .enumerate()
        .try_for_each(|(c, o)| {
            stop.check()?;
            let rows = c * USER_CHUNK..c * USER_CHUNK + o.len() / n;
            let m = rows.len();
            let state = scorer.prepare(users, rows);
            // score_tile writes a tile's users contiguously: score into a scratch tile, then
            // copy each user's part into place.
            let mut tile = vec![0f32; m * ITEM_TILE.min(n)];
            let mut t0 = 0;
            while t0 < n {
                let t1 = (t0 + ITEM_TILE).min(n);
                let w = t1 - t0;
                scorer.score_tile(&state, t0..t1, &mut tile[..m * w]);
                for u in 0..m {
                    o[u * n + t0..u * n + t1].copy_from_slice(&tile[u * w..(u + 1) * w]);
                }
                t0 = t1;
            }
            Ok(())
        })?;
    Ok(out)
}

/// The `recommend` of a model without personas (`explain` is an error): its users checked
/// once, then [`top_n`].
pub fn recommend_plain<S: TileScorer>(
    scorer: &S,
    kind: &str,
    users: &CsrView,
    req: &Request,
    stop: &Stop,
) -> Result<Recommended> {
    if req.explain {
        return Err(invalid!(
            "explain needs a persona model (AMP-CF); this is a {kind} model"
        ));
    }
    check_users(users, scorer.n_items())?;
    let (ids, scores) = top_n(scorer, users, req.n, &req.filters, stop)?;
    Ok((ids, scores, None))
}

/// Runs `f` on the users `0..b` in parallel chunks of `chunk` users, with each chunk's rows
/// and its part of the `b x n` outputs `ids` and `scores`, checking `stop` before each chunk:
/// the one chunking loop of every top-N path. Returns `f`'s results in chunk order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn by_user_chunks<T: Send>(
    b: usize,
    n: usize,
    chunk: usize,
    ids: &mut [i64],
    scores: &mut [f32],
    stop: &Stop,
    f: impl Fn(std::ops::Range<usize>, &mut [i64], &mut [f32]) -> Result<T> + Sync + Send,
) -> Result<Vec<T>> {
    let per_chunk = chunk * n;
    ids.par_chunks_mut(per_chunk)
        .zip(scores.par_chunks_mut(per_chunk))
        .enumerate()
        .map(|(c, (ids_c, scores_c))| {
            stop.check()?;
            f(c * chunk..((c + 1) * chunk).min(b), ids_c, scores_c)
        })
        .collect()
}

/// Top-`n` items per user: `(ids, scores)`, each `users.n_rows x n`, best first, padded with
/// id -1 / score -inf when fewer than `n` items remain after filtering.
pub fn top_n<S: TileScorer>(
    scorer: &S,
    users: &CsrView,
    n: i64,
    filters: &Filters,
    stop: &Stop,
) -> Result<(Vec<i64>, Vec<f32>)> {
    let n = list_len(n)?;
    let n_items = scorer.n_items();
    check_columns(users, n_items)?;
    let b = users.n_rows;
    let (mut ids, mut scores) = result_buffers("recommend", b, n)?;
    if b == 0 {
        return Ok((ids, scores));
    }
    by_user_chunks(
        b,
        n,
        USER_CHUNK,
        &mut ids,
        &mut scores,
        stop,
        |rows, ids_c, scores_c| {
            let m = rows.len();
            let state = scorer.prepare(users, rows.clone());
            let mut heaps: Vec<TopK> = (0..m).map(|_| TopK::new(n, n_items)).collect();
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
                    if let Some(ex) = &filters.exclude_items {
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
            Ok(())
        },
    )?;
    Ok((ids, scores))
}

/// Dense scores supplied by the caller (`rows x n_items`, row-major): top-N of any model's
/// output with the same masking and padding rules.
#[derive(Debug)]
pub struct DenseScores<'a> {
    scores: &'a [f32],
    n_items: usize,
}

impl<'a> DenseScores<'a> {
    /// Checks that `scores` holds `rows x n_items` values and no NaN.
    pub fn new(scores: &'a [f32], rows: usize, n_items: usize) -> Result<Self> {
        if Some(scores.len()) != rows.checked_mul(n_items) {
            return Err(invalid!(
                "scores: expected {rows} x {n_items} values, got {}",
                scores.len()
            ));
        }
        if let Some(pos) = scores.iter().position(|x| x.is_nan()) {
            return Err(invalid!(
                "scores: NaN at row {}, column {}",
                pos / n_items.max(1),
                pos % n_items.max(1)
            ));
        }
        Ok(Self { scores, n_items })
    }
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
    use crate::csr::Index;

    #[test]
    fn dense_top_n_masks_and_pads() {
        // 3 users x 5 items; user 1 has seen everything but one, user 2 nothing.
        let scores: Vec<f32> = vec![
            0.1, 0.9, 0.5, 0.9, 0.0, //
            5.0, 4.0, 3.0, 2.0, 1.0, //
            -1.0, -2.0, -3.0, -4.0, -5.0,
        ];
        let seen = CsrView::new(
            "seen",
            5,
            Index::I64(&[0, 1, 5, 5]),
            Index::I32(&[1, 0, 1, 2, 3]),
            None,
        )
        .unwrap();
        let dense = DenseScores::new(&scores, 3, 5).unwrap();
        let stop = Stop::new();
        let f = Filters::new(true, None, 5).unwrap();
        let (ids, sc) = top_n(&dense, &seen, 3, &f, &stop).unwrap();
        assert_eq!(ids, vec![3, 2, 0, 4, -1, -1, 0, 1, 2]);
        assert_eq!(sc[..3], [0.9, 0.5, 0.1]);
        assert_eq!(sc[4], f32::NEG_INFINITY);
        for ex in [
            Exclude::Mask(&[true, false, false, false, false]),
            Exclude::Items(&[0]),
            Exclude::AllExcept(&[1, 2, 3, 4]),
        ] {
            let f = Filters::new(false, Some(ex), 5).unwrap();
            let (ids, _) = top_n(&dense, &seen, 2, &f, &stop).unwrap();
            assert_eq!(ids, vec![1, 3, 1, 2, 1, 2]);
        }
    }

    #[test]
    fn bad_requests_are_errors() {
        let scores = [1.0f32, f32::NAN];
        assert!(DenseScores::new(&scores, 1, 2)
            .unwrap_err()
            .to_string()
            .contains("NaN at row 0, column 1"));
        assert!(DenseScores::new(&scores, 2, 2).is_err());
        assert!(Filters::new(false, Some(Exclude::Items(&[5])), 5).is_err());
        assert!(Filters::new(false, Some(Exclude::Items(&[-1])), 5).is_err());
        assert!(Filters::new(false, Some(Exclude::Mask(&[true])), 5).is_err());
        let ok = [1.0f32, 2.0];
        let dense = DenseScores::new(&ok, 1, 2).unwrap();
        let seen = CsrView::empty(1, 2);
        let f = Filters::default();
        let stop = Stop::new();
        for n in [0, -4] {
            assert!(top_n(&dense, &seen, n, &f, &stop).is_err());
        }
        for n in [1i64 << 40, 1 << 61, i64::MAX] {
            let e = top_n(&dense, &seen, n, &f, &stop).unwrap_err();
            assert!(matches!(e, crate::Error::OutOfMemory(_)), "{e:?}");
        }
        let wide = CsrView::empty(1, 3);
        assert!(top_n(&dense, &wide, 1, &f, &stop).is_err());
        stop.request();
        assert_eq!(
            top_n(&dense, &seen, 1, &f, &stop).unwrap_err(),
            crate::Error::Interrupted
        );
    }
}
