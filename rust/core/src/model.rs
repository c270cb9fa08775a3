//! The serving interface every model family implements, whatever its file holds.

use crate::checkpoint::Tensor;
use crate::csr::CsrView;
use crate::error::Result;
use crate::fused::{Recommended, Request};
use crate::threads::Stop;

/// What every loaded model provides, whatever its family.
pub trait Model: Send + Sync {
    /// The manifest's `kind`.
    fn kind(&self) -> &'static str;
    fn n_items(&self) -> usize;
    /// The stored tensors, for writing the model back to a file with [`crate::checkpoint::encode`].
    fn tensors(&self) -> Vec<Tensor<'_>>;
    /// Training interactions per item, when the file records them.
    fn item_count(&self) -> Option<&[f32]>;
    /// Top-`n` items of each row of `users` (their histories), see [`crate::fused::top_n`].
    /// With `explain` (persona models only), also the dominant persona of each listed item.
    fn recommend(&self, users: &CsrView, req: &Request, stop: &Stop) -> Result<Recommended>;
    /// Dense scores (`rows x n_items`) of every row of `users`: tests and small batches.
    fn score(&self, users: &CsrView, stop: &Stop) -> Result<Vec<f32>>;
    /// The item embeddings item-item similarity uses, `(n_items x dim values, dim)`, when the
    /// model has any.
    fn item_space(&self) -> Option<(&[f32], usize)> {
        None
    }
}
