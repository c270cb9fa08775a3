//! The fuzzing harness, shared by `fuzz/` (cargo-fuzz) and the in-tree regression test.
//!
//! Input: `[u32 LE manifest length][manifest][weights]`. It is decoded both as given and with
//! the manifest's `weights_sha256` re-stamped to the weights' real hash, so mutated weights get
//! past the hash check and exercise the safetensors parser, every tensor check and each model
//! kind's own shape rules. Whatever loads is also used: a recommendation and, for AMP-CF, an
//! explanation. It must never panic.

use serde_json::Value;

use crate::checkpoint::{sha256_hex, Checkpoint};
use crate::csr::{CsrView, Index};
use crate::family::Family;
use crate::fused::Request;
use crate::model::Model;
use crate::threads::Stop;

fn exercise(manifest: &[u8], weights: &[u8]) {
    let stop = Stop::new();
    let plain = Request {
        n: 3,
        filters: Default::default(),
        explain: false,
    };
    let explain = Request {
        explain: true,
        ..plain.clone()
    };
    let Ok(c) = Checkpoint::from_bytes(manifest, weights) else {
        return;
    };
    let Ok(family) = Family::from_checkpoint(c) else {
        return;
    };
    let m = family.model();
    // One user who saw the first and the last item.
    let last = (m.n_items() - 1).min(i32::MAX as usize) as i32;
    let cols = if last > 0 { vec![0, last] } else { vec![0] };
    let indptr = [0, cols.len() as i64];
    let Ok(u) = CsrView::new(
        "u",
        m.n_items(),
        Index::I64(&indptr),
        Index::I32(&cols),
        None,
    ) else {
        return;
    };
    let _ = m.recommend(&u, &plain, &stop);
    let _ = m.recommend(&CsrView::empty(1, m.n_items()), &plain, &stop);
    if let Family::AmpCf(a) = &family {
        let _ = a.recommend(&u, &explain, &stop);
        let _ = a.explain(&u, &[0], &[0], 2);
        let _ = a.personas(&u);
    }
}

/// Runs one fuzz input (see the module docs).
pub fn fuzz_one(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let rest = &data[4..];
    let (manifest, weights) = rest.split_at(len.min(rest.len()));
    exercise(manifest, weights);
    if let Ok(mut v) = serde_json::from_slice::<Value>(manifest) {
        if let Some(o) = v.as_object_mut() {
            o.insert("weights_sha256".into(), Value::String(sha256_hex(weights)));
            if let Ok(m) = serde_json::to_vec(&v) {
                exercise(&m, weights);
            }
        }
    }
}
