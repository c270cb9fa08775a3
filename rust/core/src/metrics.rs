//! Ranking metrics over top-N lists, with their definitions stated once.
//!
//! For a user with relevant (held-out) items T and list L (ids, -1 = padding), cut at K:
//! - hits = |L[:K] ∩ T|
//! - recall (LightGCN/BARS) = hits / |T|
//! - recall (Mult-VAE paper) = hits / min(K, |T|)
//! - NDCG = sum over hit ranks r (0-based) of 1/log2(r + 2), divided by the ideal
//!   sum over r < min(K, |T|) of 1/log2(r + 2)  (binary gains)
//! - hit rate = 1 if hits > 0
//!
//! Users with no relevant items get NaN: they are left out of averages, not counted as zero.
//! A list naming an item twice within its first K, or an id outside the catalogue (other than
//! the -1 padding), is an error: either would count a hit that the set definition does not.

use rayon::prelude::*;

use crate::csr::CsrView;
use crate::error::Result;
use crate::{invalid, out_of_range};

/// Per-user metric values, each of length `n_users`.
#[derive(Debug, Default, Clone)]
pub struct RankingMetrics {
    pub recall: Vec<f64>,
    pub recall_multvae: Vec<f64>,
    pub ndcg: Vec<f64>,
    pub hit: Vec<f64>,
}

/// Computes the per-user metrics of `ids` (`n_users x width`, row-major) at cut-off `k`.
pub fn ranking(ids: &[i64], width: usize, k: i64, truth: &CsrView) -> Result<RankingMetrics> {
    let n_users = truth.n_rows;
    if ids.len() != n_users * width {
        return Err(invalid!(
            "ids: expected {n_users} rows of {width} (one per row of the relevant-items matrix), got {} values",
            ids.len()
        ));
    }
    if k < 1 {
        return Err(invalid!("k must be a positive integer, got {k}"));
    }
    let k = k as usize;
    let k_eff = k.min(width);
    let n_items = truth.n_cols;
    let per_user: Vec<[f64; 4]> = (0..n_users)
        .into_par_iter()
        .map(|u| {
            let list = &ids[u * width..u * width + k_eff];
            check_list(list, u, n_items)?;
            let rel = truth.row(u);
            if rel.is_empty() {
                return Ok([f64::NAN; 4]);
            }
            let mut hits = 0usize;
            let mut dcg = 0f64;
            for (r, &id) in list.iter().enumerate() {
                if id >= 0 && rel.binary_search(&(id as i32)).is_ok() {
                    hits += 1;
                    dcg += 1.0 / ((r + 2) as f64).log2();
                }
            }
            let ideal: f64 = (0..k.min(rel.len()))
                .map(|r| 1.0 / ((r + 2) as f64).log2())
                .sum();
            let h = hits as f64;
            Ok([
                h / rel.len() as f64,
                h / k.min(rel.len()) as f64,
                dcg / ideal,
                (hits > 0) as u8 as f64,
            ])
        })
        .collect::<Result<_>>()?;
    let mut out = RankingMetrics::default();
    for v in per_user {
        out.recall.push(v[0]);
        out.recall_multvae.push(v[1]);
        out.ndcg.push(v[2]);
        out.hit.push(v[3]);
    }
    Ok(out)
}

/// Checks one user's list (row `u`): ids in `0..n_items` or the -1 padding, none twice.
pub fn check_list(list: &[i64], u: usize, n_items: usize) -> Result<()> {
    let mut sorted: Vec<i64> = Vec::with_capacity(list.len());
    for &id in list {
        if id == -1 {
            continue;
        }
        if id < 0 || id as u64 >= n_items as u64 {
            return Err(out_of_range!(
                "ids: row {u} lists item {id}, outside 0..{n_items} (-1 is the only padding)"
            ));
        }
        sorted.push(id);
    }
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(invalid!(
            "ids: row {u} lists item {} twice; a top-N list names each item once",
            w[0]
        ));
    }
    Ok(())
}

/// Share of the catalogue (`n_items`) that appears in at least one list; -1 padding ignored.
pub fn coverage(ids: &[i64], n_items: i64) -> Result<f64> {
    if n_items < 1 {
        return Err(invalid!(
            "n_items must be a positive integer, got {n_items}"
        ));
    }
    let n_items = n_items as usize;
    let mut seen = vec![false; n_items];
    for &id in ids {
        if id >= 0 {
            let i = id as usize;
            if i >= n_items {
                return Err(out_of_range!("ids: item {id} is outside 0..{n_items}"));
            }
            seen[i] = true;
        }
    }
    Ok(seen.iter().filter(|&&s| s).count() as f64 / n_items as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::Index;

    #[test]
    fn hand_computed() {
        // user 0: relevant {1, 5}, list [5, 2, 1] -> hits at ranks 0 and 2.
        // user 1: no relevant items -> NaN.
        let truth =
            CsrView::new("t", 10, Index::I64(&[0, 2, 2]), Index::I32(&[1, 5]), None).unwrap();
        let ids = [5, 2, 1, 3, -1, -1];
        let m = ranking(&ids, 3, 3, &truth).unwrap();
        let idcg = 1.0 + 1.0 / 3f64.log2();
        assert!((m.ndcg[0] - (1.0 + 0.5) / idcg).abs() < 1e-12);
        assert_eq!(m.recall[0], 1.0);
        assert_eq!(m.hit[0], 1.0);
        assert!(m.recall[1].is_nan());
        let m = ranking(&ids, 3, 1, &truth).unwrap();
        assert_eq!(m.recall[0], 0.5);
        assert_eq!(m.recall_multvae[0], 1.0);
        assert_eq!(coverage(&ids, 10).unwrap(), 0.4);
        assert!(coverage(&[10], 10).is_err());
        assert!(ranking(&ids, 2, 1, &truth).is_err());
        // A repeated item would be a second hit; an id past the catalogue, or -2, a silent miss.
        let e = ranking(&[5, 5, 1, -1, -1, -1], 3, 3, &truth)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 0 lists item 5 twice"), "{e}");
        let e = ranking(&[5, 2, 1, 10, -1, -1], 3, 3, &truth)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 1 lists item 10, outside 0..10"), "{e}");
        assert!(ranking(&[5, 2, 1, -2, -1, -1], 3, 3, &truth).is_err());
        // Repeats beyond the cut-off are not read.
        assert!(ranking(&[5, 2, 5, 3, -1, -1], 3, 2, &truth).is_ok());
    }
}
