//! Mult-VAE inference (Liang et al., WWW 2018): the mean of the encoder, then the decoder logits.
//!
//! Softmax is monotone, so ranking by logits equals ranking by the multinomial probabilities.
//! The first layer on a sparse row is a gather-sum of item weight rows: a batch is never densified.

use crate::bad_model;
use crate::checkpoint::Checkpoint;
use crate::csr::CsrView;
use crate::error::Result;
use crate::fused::TileScorer;
use crate::gemm;

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
            let norm = match vals {
                Some(v) => v.iter().map(|x| x * x).sum::<f32>().sqrt(),
                None => (idx.len() as f32).sqrt(),
            };
            let out = &mut h1[u * h..(u + 1) * h];
            out.copy_from_slice(&self.enc_b);
            if norm > 0.0 {
                for (t, &j) in idx.iter().enumerate() {
                    let w = vals.map_or(1.0, |v| v[t]) / norm;
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

    /// Item embeddings of the output layer (`n_items x hidden`), for item-item similarity.
    pub fn item_factors(&self) -> &[f32] {
        &self.dec_item
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

    #[test]
    fn fused_equals_dense_then_sort() {
        // More items than one tile and more users than one chunk, to cross both boundaries.
        let n_items = crate::fused::ITEM_TILE + 37;
        let model = toy(n_items, 6, 3);
        let n_users = crate::fused::USER_CHUNK + 5;
        let mut indptr = vec![0i64];
        let mut indices = vec![];
        for u in 0..n_users {
            for j in (u % 7..n_items).step_by(97 + u % 13) {
                indices.push(j as i32);
            }
            indptr.push(indices.len() as i64);
        }
        let users = CsrView::new("u", n_items, &indptr, &indices, None).unwrap();
        // Dense reference: score every user against every item, then select.
        let mut dense = vec![0f32; n_users * n_items];
        let h2 = model.hidden_states(&users, 0..n_users);
        model.score_tile(&h2, 0..n_items, &mut dense);
        let want = top_n(
            &DenseScores {
                scores: &dense,
                n_items,
            },
            &users,
            50,
            Filters {
                exclude_seen: true,
                exclude_items: None,
            },
        );
        let got = top_n(
            &model,
            &users,
            50,
            Filters {
                exclude_seen: true,
                exclude_items: None,
            },
        );
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

    #[test]
    fn rejects_inconsistent_shapes() {
        let t = vec![("mu_w", vec![2, 2], vec![0.0; 4])];
        let (m, w) = build("multvae", &t, serde_json::json!({"n_items": 3}));
        let e = MultVae::from_checkpoint(Checkpoint::from_bytes(&m, &w).unwrap());
        assert!(e.is_err());
    }
}
