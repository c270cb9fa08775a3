//! Calibration metrics of lists against each user's target: the per-user target itself,
//! C_KL ([`Reranker::miscalibration`]), interest recall and minority-taste recall, and the
//! list divergence the greedy reports before and after (definitions in the parent module).

use rayon::prelude::*;

use super::{AttrScratch, Config, ItemCategories, Reranker, Scratch, Target};
use crate::csr::CsrView;
use crate::error::Result;
use crate::{invalid, vmath};

impl Reranker {
    /// Per attribute, p(g|u) of every user (`rows x n_categories`, row-major), after
    /// `min_history` and the prior.
    pub fn target_distribution(&self, target: &Target, rows: usize) -> Result<Vec<Vec<f64>>> {
        self.check_target(target, rows)?;
        let per_user = self.per_user(rows, target, |sc, a| sc.attrs[a].p.clone())?;
        Ok((0..self.attrs.len())
            .map(|a| per_user.iter().flat_map(|u| u[a].iter().copied()).collect())
            .collect())
    }

    /// Per-user, per-attribute C_KL (`rows x attributes`) of the lists `ids` (-1 skipped); NaN
    /// where the user has no target for the attribute (C_KL is undefined without p).
    pub fn miscalibration(&self, ids: &[i64], rows: usize, target: &Target) -> Result<Vec<f64>> {
        let width = self.check_lists("ids", ids, rows)?;
        self.check_target(target, rows)?;
        let per_user = self.per_user_lists(rows, target, |sc, a, u| {
            let list = ids[u * width..(u + 1) * width].iter().copied();
            let st = &mut sc.attrs[a];
            list_kl(list, st, &self.attrs[a].cats, &self.cfg)
        })?;
        Ok(per_user)
    }

    /// Per-user, per-attribute share of the user's interests that appear in the list
    /// (`rows x attributes`). The interests are the categories with p(g|u) >= `threshold` (with
    /// `threshold` = 0: p(g|u) > 0), minus the user's top category (the largest p, lowest index
    /// on ties) when `exclude_top`; a category appears when some listed item has c(g|i) > 0.
    /// NaN for users with no such interests.
    ///
    /// Minority-interest recall is `(threshold = 0.1, exclude_top = true)`; category coverage of
    /// the user's profile is `(0, false)`.
    pub fn interest_recall(
        &self,
        ids: &[i64],
        rows: usize,
        target: &Target,
        threshold: f64,
        exclude_top: bool,
    ) -> Result<Vec<f64>> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(invalid!("threshold must lie in [0, 1], got {threshold}"));
        }
        let width = self.check_lists("ids", ids, rows)?;
        self.check_target(target, rows)?;
        self.per_user_lists(rows, target, |sc, a, u| {
            let list = &ids[u * width..(u + 1) * width];
            let st = &mut sc.attrs[a];
            interest_share(
                list,
                &st.p,
                &self.attrs[a].cats,
                threshold,
                exclude_top,
                &mut st.m,
            )
        })
    }

    /// Per-user, per-attribute minority-taste recall at `k` (`rows x attributes`): the share
    /// of the user's relevant items (`truth`, one row per user) that are minority-taste items
    /// and appear in the list's first `k`. A minority-taste item has at least one category
    /// (c(g|i) > 0) and p(g|u) < `threshold` for every one of them: the tastes an average model
    /// crushes. NaN for users without a minority-taste relevant item.
    pub fn taste_recall(
        &self,
        ids: &[i64],
        rows: usize,
        target: &Target,
        truth: &CsrView,
        k: i64,
        threshold: f64,
    ) -> Result<Vec<f64>> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(invalid!("threshold must lie in [0, 1], got {threshold}"));
        }
        if k < 1 {
            return Err(invalid!("k must be a positive integer, got {k}"));
        }
        if truth.n_rows != rows || truth.n_cols != self.n_items() {
            return Err(invalid!(
                "truth is {} x {} but there are {rows} users and {} items",
                truth.n_rows,
                truth.n_cols,
                self.n_items()
            ));
        }
        let width = self.check_lists("ids", ids, rows)?;
        self.check_target(target, rows)?;
        let cut = (k as u64).min(width as u64) as usize;
        // A repeated item would count as a second hit.
        for u in 0..rows {
            crate::metrics::check_list(&ids[u * width..u * width + cut], u, self.n_items())?;
        }
        self.per_user_lists(rows, target, |sc, a, u| {
            let p = &sc.attrs[a].p;
            let cats = &self.attrs[a].cats;
            let minority = |i: usize| {
                let mut any = false;
                let mut top = 0f64;
                for (g, c) in cats.item(i) {
                    if c > 0.0 {
                        any = true;
                        top = top.max(p[g]);
                    }
                }
                any && top < threshold
            };
            let rel = truth.row(u);
            let n_min = rel.iter().filter(|&&i| minority(i as usize)).count();
            if n_min == 0 {
                return f64::NAN;
            }
            let list = &ids[u * width..u * width + cut];
            let hits = list
                .iter()
                .filter(|&&j| {
                    j >= 0 && rel.binary_search(&(j as i32)).is_ok() && minority(j as usize)
                })
                .count();
            hits as f64 / n_min as f64
        })
    }

    fn per_user<T: Send>(
        &self,
        rows: usize,
        target: &Target,
        f: impl Fn(&Scratch, usize) -> T + Sync,
    ) -> Result<Vec<Vec<T>>> {
        (0..rows)
            .into_par_iter()
            .map_init(
                || Scratch::new(&self.attrs),
                |sc, u| {
                    self.fill_target(target, u, sc)?;
                    Ok((0..self.attrs.len()).map(|a| f(sc, a)).collect())
                },
            )
            .collect()
    }

    fn per_user_lists(
        &self,
        rows: usize,
        target: &Target,
        f: impl Fn(&mut Scratch, usize, usize) -> f64 + Sync,
    ) -> Result<Vec<f64>> {
        let na = self.attrs.len();
        let per_user: Vec<Vec<f64>> = (0..rows)
            .into_par_iter()
            .map_init(
                || Scratch::new(&self.attrs),
                |sc, u| {
                    self.fill_target(target, u, sc)?;
                    Ok((0..na).map(|a| f(sc, a, u)).collect())
                },
            )
            .collect::<Result<_>>()?;
        Ok(per_user.concat())
    }
}

/// Rank weight of list position `r` (0-based).
#[inline]
pub fn rank_weight(r: usize, rank_weighting: bool) -> f64 {
    if rank_weighting {
        1.0 / ((r + 2) as f64).log2()
    } else {
        1.0
    }
}

/// C_KL of a list of item ids against the target in `st` (-1 skipped, but positions still
/// count for rank weights); NaN when `st` holds no target.
pub(super) fn list_kl(
    items: impl Iterator<Item = i64>,
    st: &mut AttrScratch,
    cats: &ItemCategories,
    cfg: &Config,
) -> f64 {
    if !st.has {
        return f64::NAN;
    }
    let (p, m) = (&st.p, &mut st.m);
    m.fill(0.0);
    let mut wsum = 0f64;
    for (r, id) in items.enumerate() {
        if id < 0 {
            continue;
        }
        let w = rank_weight(r, cfg.rank_weighting);
        wsum += w;
        for (g, c) in cats.item(id as usize) {
            m[g] += w * c;
        }
    }
    let s = cfg.smoothing;
    // m becomes p(g) / q~(g) (1 where p(g) = 0, whose term is 0), then its logarithm, in one
    // vectorised batch.
    for (&pg, mg) in p.iter().zip(m.iter_mut()) {
        let q = if wsum > 0.0 { *mg / wsum } else { 0.0 };
        *mg = if pg > 0.0 {
            pg / ((1.0 - s) * q + s * pg)
        } else {
            1.0
        };
    }
    vmath::ln_in_place(m);
    p.iter().zip(m.iter()).map(|(&pg, &l)| pg * l).sum()
}

/// See [`Reranker::interest_recall`].
fn interest_share(
    list: &[i64],
    p: &[f64],
    cats: &ItemCategories,
    threshold: f64,
    exclude_top: bool,
    present: &mut [f64],
) -> f64 {
    present.fill(0.0);
    for &id in list.iter().filter(|&&x| x >= 0) {
        for (g, c) in cats.item(id as usize) {
            if c > 0.0 {
                present[g] = 1.0;
            }
        }
    }
    let mut top = usize::MAX;
    let mut top_p = 0f64;
    for (g, &pg) in p.iter().enumerate() {
        if pg > top_p {
            top = g;
            top_p = pg;
        }
    }
    let (mut total, mut hit) = (0usize, 0usize);
    for (g, &pg) in p.iter().enumerate() {
        let interest = if threshold > 0.0 {
            pg >= threshold
        } else {
            pg > 0.0
        };
        if interest && !(exclude_top && g == top) {
            total += 1;
            hit += (present[g] > 0.0) as usize;
        }
    }
    if total == 0 {
        f64::NAN
    } else {
        hit as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{reranker, run};
    use super::*;
    use crate::threads::Stop;

    #[test]
    fn calibration_restores_minority_interest() {
        // History: 7 drama-ish, 3 doc -> p = (0.7, 0.3).
        let p = [0.7f32, 0.3];
        let t = Target::Dense(vec![&p]);
        let cand = [0, 1, 2];
        let s = [1.0, 0.9, 0.1];
        let plain = run(&reranker(0.0), &cand, &s, 1, &t, 2);
        assert_eq!(plain.ids, vec![0, 1]);
        let r = reranker(0.9);
        let cal = run(&r, &cand, &s, 1, &t, 2);
        assert_eq!(cal.ids, vec![0, 2]);
        assert!(cal.ckl_after[0] < cal.ckl_before[0]);
        // Hand-computed C_KL of [0, 1]: q = (1, 0), q~ = (0.99 + 0.007, 0.003).
        let q0 = 0.99 + 0.01 * 0.7;
        let q1 = 0.01 * 0.3;
        let want = 0.7 * (0.7f64 / q0).ln() + 0.3 * (0.3f64 / q1).ln();
        assert!((plain.ckl_after[0] - want).abs() < 1e-6);
        assert_eq!(
            r.interest_recall(&cal.ids, 1, &t, 0.1, true).unwrap(),
            vec![1.0]
        );
        assert_eq!(
            r.interest_recall(&plain.ids, 1, &t, 0.1, true).unwrap(),
            vec![0.0]
        );
        let m = r.miscalibration(&plain.ids, 1, &t).unwrap();
        assert!((m[0] - plain.ckl_after[0]).abs() < 1e-12);
        // A per-call lambda of 0 gives the plain order back.
        let same = r
            .rerank(&cand, &s, 1, &t, 2, Some(&[0.0]), &Stop::new())
            .unwrap();
        assert_eq!(same.ids, plain.ids);
    }
}
