//! Mult-VAE inference (Liang et al., WWW 2018): the mean of the encoder, then the decoder logits.
//!
//! Softmax is monotone, so ranking by logits equals ranking by the multinomial probabilities.
//! The first layer on a sparse row is a gather-sum of item weight rows: a batch is never densified.

use std::sync::OnceLock;

use crate::bad_model;
use crate::checkpoint::{Checkpoint, Tensor};
use crate::csr::CsrView;
use crate::error::Result;
use crate::fused::{self, Filters, Recommended, Request, TileScorer};
use crate::gemm;
use crate::lowp::{self, FirstPass};
use crate::model::Model;
use crate::threads::Stop;

/// Weights in item-major layout (one row per item), as written by `personae.train`.
pub struct MultVae {
    pub n_items: usize,
    pub hidden: usize,
    pub latent: usize,
    enc_item: Vec<f32>,   // [I, H]
    enc_b: Vec<f32>,      // [H]
    mu_w: Vec<f32>,       // [H, Z]
    mu_b: Vec<f32>,       // [Z]
    dec_w: Vec<f32>,      // [Z, H]
    dec_b: Vec<f32>,      // [H]
    dec_item: Vec<f32>,   // [I, H]
    dec_item_b: Vec<f32>, // [I]
    /// Training interactions per item, when the file records them (older files do not).
    item_count: Option<Vec<f32>>, // [I]
    /// `dec_item` in bf16 and in int16 for the certified first passes, each built at its first
    /// use (`None` when the weights are not certifiable: the fp32 path serves them).
    lowp: [OnceLock<Option<lowp::Packed>>; 2],
}

/// The tensors a Mult-VAE file holds, in order.
pub const TENSORS: [&str; 8] = [
    "enc_item",
    "enc_b",
    "mu_w",
    "mu_b",
    "dec_w",
    "dec_b",
    "dec_item",
    "dec_item_b",
];

impl MultVae {
    /// Builds the model from a validated checkpoint of kind `multvae`.
    pub fn from_checkpoint(mut c: Checkpoint) -> Result<Self> {
        c.expect_kind("multvae")?;
        let n_items = c.usize_field("n_items")?;
        let (hidden, latent) = match c.shape("mu_w") {
            Some(&[h, z]) => (h, z),
            _ => {
                return Err(bad_model!(
                    "multvae: tensor 'mu_w' must be 2-D [hidden, latent]"
                ))
            }
        };
        if n_items == 0 || hidden == 0 || latent == 0 {
            return Err(bad_model!(
                "multvae: n_items, hidden and latent must all be positive"
            ));
        }
        Ok(Self {
            n_items,
            hidden,
            latent,
            enc_item: c.take("enc_item", &[n_items, hidden])?,
            enc_b: c.take("enc_b", &[hidden])?,
            mu_w: c.take("mu_w", &[hidden, latent])?,
            mu_b: c.take("mu_b", &[latent])?,
            dec_w: c.take("dec_w", &[latent, hidden])?,
            dec_b: c.take("dec_b", &[hidden])?,
            dec_item: c.take("dec_item", &[n_items, hidden])?,
            dec_item_b: c.take("dec_item_b", &[n_items])?,
            item_count: c.take_optional("item_count", &[n_items])?,
            lowp: [OnceLock::new(), OnceLock::new()],
        })
    }

    /// Decoder hidden activations (`rows x hidden`) of users `rows`: everything before the
    /// item-sized layer.
    pub fn hidden_states(&self, users: &CsrView, rows: std::ops::Range<usize>) -> Vec<f32> {
        let (h, z, m) = (self.hidden, self.latent, rows.len());
        let mut h1 = vec![0f32; m * h];
        for (u, r) in rows.enumerate() {
            let idx = users.row(r);
            let vals = users.row_values(r);
            // L2 normalisation in f64: exact for any finite f32 weight scale (f32 squares
            // overflow above ~1e19 and vanish below ~1e-23, which would drop the whole row).
            let norm = match vals {
                Some(v) => v
                    .iter()
                    .map(|&x| (x as f64) * (x as f64))
                    .sum::<f64>()
                    .sqrt(),
                None => (idx.len() as f64).sqrt(),
            };
            let out = &mut h1[u * h..(u + 1) * h];
            out.copy_from_slice(&self.enc_b);
            if norm > 0.0 {
                for (t, &j) in idx.iter().enumerate() {
                    let w = (vals.map_or(1.0, |v| v[t] as f64) / norm) as f32;
                    let row = &self.enc_item[j as usize * h..(j as usize + 1) * h];
                    for (o, &x) in out.iter_mut().zip(row) {
                        *o += w * x;
                    }
                }
            }
            out.iter_mut().for_each(|x| *x = x.tanh());
        }
        let mut mu = vec![0f32; m * z];
        gemm::a_b(m, z, h, &h1, &self.mu_w, &mut mu);
        for row in mu.chunks_exact_mut(z) {
            row.iter_mut().zip(&self.mu_b).for_each(|(a, b)| *a += b);
        }
        let mut h2 = vec![0f32; m * h];
        gemm::a_b(m, h, z, &mu, &self.dec_w, &mut h2);
        for row in h2.chunks_exact_mut(h) {
            row.iter_mut()
                .zip(&self.dec_b)
                .for_each(|(a, b)| *a = (*a + b).tanh());
        }
        h2
    }
}

impl Model for MultVae {
    fn kind(&self) -> &'static str {
        "multvae"
    }

    /// Top-N: where a low-precision kernel runs (bf16 on AMX or AVX512-BF16, int16 on AVX-512
    /// VNNI or AVX2), a certified first pass and exact fp32 rescoring of the survivors (the same
    /// lists and scores as the fp32 path, bit for bit); else the fp32 path.
    fn recommend(&self, users: &CsrView, req: &Request, stop: &Stop) -> Result<Recommended> {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        let pass = lowp::first_pass();
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if let (false, Some(enc)) = (req.explain, pass.enc()) {
            fused::check_users(users, self.n_items)?;
            let n = fused::list_len(req.n)?;
            // Long lists leave too many survivors to pay (every item survives past the
            // catalogue's size).
            if n.saturating_mul(8) <= self.n_items {
                if let Some(pk) = self.packed(enc) {
                    let (ids, scores) = self.top_n_lowp(pass, pk, users, n, &req.filters, stop)?;
                    return Ok((ids, scores, None));
                }
            }
        }
        fused::recommend_plain(self, self.kind(), users, req, stop)
    }

    /// The decoder's logits.
    fn score(&self, users: &CsrView, stop: &Stop) -> Result<Vec<f32>> {
        fused::dense_scores(self, users, stop)
    }

    /// The output layer's item embeddings.
    fn item_space(&self) -> Option<(&[f32], usize)> {
        Some((&self.dec_item, self.hidden))
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    /// The stored tensors, for writing the model back to a file.
    fn tensors(&self) -> Vec<Tensor<'_>> {
        let (i, h, z) = (self.n_items, self.hidden, self.latent);
        let mut t: Vec<Tensor> = vec![
            ("enc_item", vec![i, h], (&self.enc_item).into()),
            ("enc_b", vec![h], (&self.enc_b).into()),
            ("mu_w", vec![h, z], (&self.mu_w).into()),
            ("mu_b", vec![z], (&self.mu_b).into()),
            ("dec_w", vec![z, h], (&self.dec_w).into()),
            ("dec_b", vec![h], (&self.dec_b).into()),
            ("dec_item", vec![i, h], (&self.dec_item).into()),
            ("dec_item_b", vec![i], (&self.dec_item_b).into()),
        ];
        if let Some(c) = &self.item_count {
            t.push(("item_count", vec![i], c.into()));
        }
        t
    }

    /// Training interactions per item, when recorded.
    fn item_count(&self) -> Option<&[f32]> {
        self.item_count.as_deref()
    }
}

impl MultVae {
    /// The decoder's item weights in `enc` (built once), or `None` when they are not certifiable.
    fn packed(&self, enc: lowp::Enc) -> Option<&lowp::Packed> {
        self.lowp[enc as usize]
            .get_or_init(|| {
                lowp::Packed::new(
                    &self.dec_item,
                    &self.dec_item_b,
                    self.n_items,
                    self.hidden,
                    enc,
                )
            })
            .as_ref()
    }

    /// Top-`n` lists through a certified low-precision first pass (see [`lowp`]): per chunk of
    /// users, `pass`'s kernel scores every item in low precision and a scan keeps, per user, the
    /// items whose upper bound reaches the running `n`-th best lower bound among the items the
    /// user may be shown (the bound only rises, so no true top-`n` item is ever dropped); the
    /// candidates at or above the final `n`-th best lower bound are rescored exactly and
    /// selected as the fp32 path does.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    fn top_n_lowp(
        &self,
        pass: FirstPass,
        pk: &lowp::Packed,
        users: &CsrView,
        n: usize,
        filters: &Filters,
        stop: &Stop,
    ) -> Result<(Vec<i64>, Vec<f32>)> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;

        use crate::fused::USER_CHUNK;
        use crate::lowp::kernels;
        use crate::topk::TopK;

        /// f32 (not NaN) -> u32 with the same order.
        fn key(x: f32) -> u32 {
            let b = x.to_bits();
            if b >> 31 == 1 {
                !b
            } else {
                b | 1 << 31
            }
        }
        fn unkey(k: u32) -> f32 {
            f32::from_bits(if k >> 31 == 1 { k & !(1 << 31) } else { !k })
        }

        let b = users.n_rows;
        let (mut ids, mut scores) = fused::result_buffers("recommend", b, n)?;
        if b == 0 {
            return Ok((ids, scores));
        }
        let (ni, k) = (self.n_items, self.hidden);
        fused::by_user_chunks(
            b,
            n,
            USER_CHUNK,
            &mut ids,
            &mut scores,
            stop,
            |rows, ids_c, scores_c| {
                let m = rows.len();
                let h = self.hidden_states(users, rows.clone());
                let us = lowp::Users::new(&h, m, k, pk.kp, pk.enc);
                // Padding users never pass (+inf); real ones all pass until n bounds are in.
                let mut thr = vec![f32::INFINITY; us.m_pad];
                thr[..m].fill(f32::NEG_INFINITY);
                // Each user's n best lower bounds (a min-heap of order keys) and candidates
                // (item, upper bound), in item order.
                let mut lbs: Vec<BinaryHeap<Reverse<u32>>> =
                    (0..m).map(|_| BinaryHeap::with_capacity(n + 1)).collect();
                let mut cands: Vec<Vec<(u32, f32)>> = vec![Vec::new(); m];
                let hidden = |u: usize, j: usize| {
                    (filters.exclude_seen
                        && users.row(rows.start + u).binary_search(&(j as i32)).is_ok())
                        || filters.exclude_items.as_ref().is_some_and(|e| e[j])
                };
                // SAFETY: first_pass() returned `pass`, so it runs here; the blocks stay inside
                // the padded buffers (items to a multiple of 32, users to m_pad); the scan's
                // slices hold what it reads (the pass's check brings AVX-512F, or AVX2 and FMA for
                // AVX2 int16: each scan's).
                unsafe {
                    kernels::with_kernel(pass, || {
                        let mut cbuf = [0f32; 1024];
                        for item0 in (0..ni).step_by(lowp::BLOCK) {
                            let r = lowp::BLOCK.min(ni - item0);
                            for gp in 0..us.m_pad / lowp::BLOCK {
                                kernels::block(pass, pk, item0, &us, gp, &mut cbuf);
                                let u0 = gp * lowp::BLOCK;
                                let mut hit =
                                    |ii: usize, l: usize, t: f32, e: f32, thr: &mut [f32]| {
                                        let (u, j) = (u0 + l, item0 + ii);
                                        if hidden(u, j) {
                                            return;
                                        }
                                        cands[u].push((j as u32, t + e));
                                        let (lb, heap) = (key(t - e), &mut lbs[u]);
                                        if heap.len() < n {
                                            heap.push(Reverse(lb));
                                        } else if heap.peek().is_some_and(|w| lb > w.0) {
                                            heap.pop();
                                            heap.push(Reverse(lb));
                                        } else {
                                            return;
                                        }
                                        if heap.len() == n {
                                            thr[l] = heap
                                                .peek()
                                                .map_or(f32::NEG_INFINITY, |w| unkey(w.0));
                                        }
                                    };
                                kernels::scan(
                                    pass,
                                    &cbuf,
                                    r,
                                    &self.dec_item_b[item0..item0 + r],
                                    &pk.p[item0..item0 + r],
                                    &pk.q[item0..item0 + r],
                                    &us.a[u0..u0 + lowp::BLOCK],
                                    &us.c[u0..u0 + lowp::BLOCK],
                                    &mut thr[u0..u0 + lowp::BLOCK],
                                    &mut hit,
                                );
                            }
                        }
                    })
                };
                let (mut surv, mut sc) = (Vec::new(), Vec::new());
                for u in 0..m {
                    surv.clear();
                    if us.a[u].is_nan() {
                        // No bound for this user (a state that is not finite): every item it
                        // may be shown is rescored, as the fp32 path scores them all.
                        surv.extend((0..ni as u32).filter(|&j| !hidden(u, j as usize)));
                    } else {
                        let cut = match lbs[u].peek() {
                            Some(w) if lbs[u].len() == n => unkey(w.0),
                            _ => f32::NEG_INFINITY,
                        };
                        surv.extend(cands[u].iter().filter(|x| x.1 >= cut).map(|x| x.0));
                    }
                    sc.resize(surv.len(), 0.0);
                    // SAFETY: AVX2 and FMA (every pass's CPU has them); the survivors index
                    // dec_item's rows.
                    unsafe {
                        lowp::exact_dots(
                            &h[u * k..(u + 1) * k],
                            &self.dec_item,
                            k,
                            Some(&self.dec_item_b),
                            &surv,
                            &mut sc,
                        )
                    };
                    let mut top = TopK::new(n, ni);
                    for (&j, &s) in surv.iter().zip(&sc) {
                        top.push(s, j);
                    }
                    top.drain_into(
                        &mut ids_c[u * n..(u + 1) * n],
                        &mut scores_c[u * n..(u + 1) * n],
                    );
                }
                Ok(())
            },
        )?;
        Ok((ids, scores))
    }
}

impl TileScorer for MultVae {
    type State = Vec<f32>;

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn prepare(&self, users: &CsrView, rows: std::ops::Range<usize>) -> Vec<f32> {
        self.hidden_states(users, rows)
    }

    fn score_tile(&self, h2: &Vec<f32>, items: std::ops::Range<usize>, out: &mut [f32]) {
        let (h, w) = (self.hidden, items.len());
        let m = h2.len() / h;
        gemm::a_bt(
            m,
            w,
            h,
            h2,
            &self.dec_item[items.start * h..items.end * h],
            out,
        );
        let bias = &self.dec_item_b[items];
        for row in out[..m * w].chunks_exact_mut(w) {
            row.iter_mut().zip(bias).for_each(|(a, b)| *a += b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tests::{build, rand_vec};
    use crate::csr::Index;
    use crate::fused::{top_n, DenseScores, Filters};

    fn toy(n_items: usize, h: usize, z: usize) -> MultVae {
        let mut s = 7u64;
        let shapes: Vec<(&str, Vec<usize>)> = vec![
            ("enc_item", vec![n_items, h]),
            ("enc_b", vec![h]),
            ("mu_w", vec![h, z]),
            ("mu_b", vec![z]),
            ("dec_w", vec![z, h]),
            ("dec_b", vec![h]),
            ("dec_item", vec![n_items, h]),
            ("dec_item_b", vec![n_items]),
        ];
        let t: Vec<(&str, Vec<usize>, Vec<f32>)> = shapes
            .into_iter()
            .map(|(n, sh)| {
                let len = sh.iter().product();
                (n, sh, rand_vec(len, &mut s))
            })
            .collect();
        let (m, w) = build("multvae", &t, serde_json::json!({"n_items": n_items}));
        MultVae::from_checkpoint(Checkpoint::from_bytes(&m, &w).unwrap()).unwrap()
    }

    fn users(n_items: usize, n_users: usize) -> (Vec<i64>, Vec<i32>) {
        let mut indptr = vec![0i64];
        let mut indices = vec![];
        for u in 0..n_users {
            for j in (u % 7..n_items).step_by(97 + u % 13) {
                indices.push(j as i32);
            }
            indptr.push(indices.len() as i64);
        }
        (indptr, indices)
    }

    /// The unweighted CSR view of `users`' arrays.
    fn view<'a>(n_items: usize, indptr: &'a [i64], indices: &'a [i32]) -> CsrView<'a> {
        CsrView::new("u", n_items, Index::I64(indptr), Index::I32(indices), None).unwrap()
    }

    #[test]
    fn fused_equals_dense_then_sort() {
        // More items than one tile and more users than one chunk, to cross both boundaries.
        let n_items = crate::fused::ITEM_TILE + 37;
        let model = toy(n_items, 6, 3);
        let n_users = crate::fused::USER_CHUNK + 5;
        let (indptr, indices) = users(n_items, n_users);
        let users = view(n_items, &indptr, &indices);
        // Dense reference: score every user against every item, then select.
        let dense = model.score(&users, &Stop::new()).unwrap();
        let f = Filters::new(true, None, n_items).unwrap();
        let stop = Stop::new();
        let dense_scores = DenseScores::new(&dense, n_users, n_items).unwrap();
        let want = top_n(&dense_scores, &users, 50, &f, &stop).unwrap();
        let req = Request {
            n: 50,
            filters: f.clone(),
            explain: false,
        };
        let got = model.recommend(&users, &req, &stop).unwrap();
        // Tiling changes the GEMM's summation order, so scores agree to rounding and ids agree
        // except where two candidates are within rounding of each other.
        for (k, (&g, &w)) in got.1.iter().zip(&want.1).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "score {k}: {g} vs {w}"
            );
            if got.0[k] != want.0[k] {
                let near = [k.saturating_sub(1), k + 1]
                    .iter()
                    .any(|&o| o < want.1.len() && (want.1[o] - w).abs() <= 1e-5);
                assert!(near, "id {k} differs without a near-tie");
            }
        }
        // Seen items never come back.
        for u in 0..n_users {
            for &id in &got.0[u * 50..(u + 1) * 50] {
                assert!(!users.row(u).contains(&(id as i32)));
            }
        }
    }

    /// Each certified low-precision path gives the fp32 path's lists and scores bit for bit:
    /// across tiles and chunks, with tied items (duplicated weight rows), seen items and
    /// excluded items.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn low_precision_first_passes_equal_fp32() {
        let passes: Vec<FirstPass> = [
            FirstPass::Amx,
            FirstPass::Avx512Bf16,
            FirstPass::Avx512Int16,
            FirstPass::Avx2Int16,
        ]
        .into_iter()
        .filter(|&p| lowp::runs(p))
        .collect();
        if passes.is_empty() || gemm::kernel() == gemm::Kernel::Portable {
            eprintln!("no low-precision kernel here: nothing to compare");
            return;
        }
        let n_items = 3000;
        let mut model = toy(n_items, 40, 8);
        // Ties: items 100..110 copy item 7's weights, with a bias that puts them first.
        let h = model.hidden;
        for j in 100..110 {
            let (src, dst) = model.dec_item.split_at_mut(j * h);
            dst[..h].copy_from_slice(&src[7 * h..8 * h]);
            model.dec_item_b[j] = 1000.0;
        }
        let n_users = crate::fused::USER_CHUNK + 40;
        let (indptr, indices) = users(n_items, n_users);
        let users = view(n_items, &indptr, &indices);
        let stop = Stop::new();
        let excl: Vec<i64> = (0..n_items as i64).step_by(11).collect();
        for (pass, (n, exclude)) in passes
            .iter()
            .flat_map(|&p| [(50i64, None), (300, Some(excl.as_slice())), (1, None)].map(|c| (p, c)))
        {
            let f = Filters::new(true, exclude.map(fused::Exclude::Items), n_items).unwrap();
            let req = Request {
                n,
                filters: f.clone(),
                explain: false,
            };
            let pk = model.packed(pass.enc().unwrap()).expect("certifiable");
            let got = model
                .top_n_lowp(pass, pk, &users, n as usize, &req.filters, &stop)
                .unwrap();
            let want = top_n(&model, &users, n, &f, &stop).unwrap();
            assert_eq!(got.0, want.0, "n = {n}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got.1), bits(&want.1), "n = {n}");
            // The tied items lead every list, in index order, less the ones a user saw.
            if exclude.is_none() {
                for u in 0..n_users {
                    let tied: Vec<i64> = (100..110)
                        .filter(|j| !users.row(u).contains(&(*j as i32)))
                        .collect();
                    let k = tied.len().min(n as usize);
                    assert_eq!(got.0[u * n as usize..][..k], tied[..k], "user {u}");
                }
            }
        }
    }

    #[test]
    fn weight_scale_does_not_change_scores() {
        let model = toy(40, 5, 3);
        let idx = [1i32, 4, 9, 30];
        let base = [1.0f32, 2.0, 0.5, 3.0];
        let row = |scale: f32| {
            let d: Vec<f32> = base.iter().map(|x| x * scale).collect();
            let u = CsrView::new("u", 40, Index::I64(&[0, 4]), Index::I32(&idx), Some(&d)).unwrap();
            model.score(&u, &Stop::new()).unwrap()
        };
        let want = row(1.0);
        for scale in [1e-30f32, 1e-23, 1e20, 1e30] {
            let got = row(scale);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "scale {scale}: {g} vs {w}"
                );
            }
        }
        let neg = CsrView::new(
            "u",
            40,
            Index::I64(&[0, 1]),
            Index::I32(&[2]),
            Some(&[-1.0]),
        )
        .unwrap();
        assert!(model
            .score(&neg, &Stop::new())
            .unwrap_err()
            .to_string()
            .contains("negative"));
    }

    #[test]
    fn rejects_inconsistent_shapes() {
        let t = vec![("mu_w", vec![2, 2], vec![0.0; 4])];
        let (m, w) = build("multvae", &t, serde_json::json!({"n_items": 3}));
        let e = MultVae::from_checkpoint(Checkpoint::from_bytes(&m, &w).unwrap());
        assert!(e.is_err());
    }
}
