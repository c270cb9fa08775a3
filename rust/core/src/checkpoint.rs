//! Model files: `manifest.json` + `weights.safetensors`, read and validated as a unit.
//!
//! Nothing in a model file is executed: the manifest is JSON and the weights are raw little-endian
//! tensors. Loading checks the format version, the kind, the sha256 of the weights, and every
//! tensor's name, dtype, shape and finiteness against the manifest.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::bad_model;
use crate::error::{Error, Result};

/// The manifest's `format` field.
pub const FORMAT: &str = "personae-model";
/// The only manifest layout this build reads.
pub const FORMAT_VERSION: u64 = 1;

/// A decoded, validated model file.
#[derive(Debug)]
pub struct Checkpoint {
    pub manifest: Value,
    pub kind: String,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Checkpoint {
    /// Reads `dir/manifest.json` and the weights file it names.
    pub fn load_dir(dir: &Path) -> Result<Self> {
        let mpath = dir.join("manifest.json");
        let manifest = std::fs::read(&mpath).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                bad_model!(
                    "no model at {}: {} is missing",
                    dir.display(),
                    mpath.display()
                )
            } else {
                Error::Io(format!("cannot read {}: {e}", mpath.display()))
            }
        })?;
        let v: Value = serde_json::from_slice(&manifest)
            .map_err(|e| bad_model!("{} is not valid JSON: {e}", mpath.display()))?;
        let wname = weights_file_name(&v)?;
        let wpath = dir.join(wname);
        let weights = std::fs::read(&wpath).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                bad_model!(
                    "model at {}: weights file {} is missing",
                    dir.display(),
                    wpath.display()
                )
            } else {
                Error::Io(format!("cannot read {}: {e}", wpath.display()))
            }
        })?;
        Self::from_bytes(&manifest, &weights)
    }

    /// Decodes and validates a manifest and its weights held in memory.
    pub fn from_bytes(manifest: &[u8], weights: &[u8]) -> Result<Self> {
        let m: Value = serde_json::from_slice(manifest)
            .map_err(|e| bad_model!("manifest.json is not valid JSON: {e}"))?;
        if m.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(bad_model!(
                "manifest.json: field 'format' must be \"{FORMAT}\""
            ));
        }
        match m.get("format_version").and_then(Value::as_u64) {
            Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(bad_model!(
                    "manifest.json: format_version {v} is not supported (this personae reads {FORMAT_VERSION})"
                ))
            }
            None => return Err(bad_model!("manifest.json: missing integer field 'format_version'")),
        }
        let kind = m
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_model!("manifest.json: missing string field 'kind'"))?
            .to_string();
        weights_file_name(&m)?;
        let want_sha = m
            .get("weights_sha256")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_model!("manifest.json: missing string field 'weights_sha256'"))?;
        let got_sha = sha256_hex(weights);
        if !want_sha.eq_ignore_ascii_case(&got_sha) {
            return Err(bad_model!(
                "weights file sha256 is {got_sha} but manifest.json records {want_sha}: the file is corrupt or was modified"
            ));
        }
        let specs = m
            .get("tensors")
            .and_then(Value::as_object)
            .ok_or_else(|| bad_model!("manifest.json: missing object field 'tensors'"))?;
        let st = SafeTensors::deserialize(weights)
            .map_err(|e| bad_model!("weights file is not valid safetensors: {e}"))?;
        let mut tensors = HashMap::new();
        for name in st.names() {
            if !specs.contains_key(&name.to_string()) {
                return Err(bad_model!(
                    "weights file has tensor '{name}' that manifest.json does not list"
                ));
            }
        }
        for (name, spec) in specs {
            let dtype = spec.get("dtype").and_then(Value::as_str);
            if dtype != Some("F32") {
                return Err(bad_model!(
                    "manifest.json: tensor '{name}' must have dtype \"F32\""
                ));
            }
            let shape: Vec<usize> = spec
                .get("shape")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
                .ok_or_else(|| {
                    bad_model!(
                        "manifest.json: tensor '{name}' needs a 'shape' of non-negative integers"
                    )
                })?;
            let view = st.tensor(name).map_err(|_| {
                bad_model!("weights file lacks tensor '{name}' listed in manifest.json")
            })?;
            if view.dtype() != Dtype::F32 {
                return Err(bad_model!(
                    "tensor '{name}' is stored as {:?}, expected F32",
                    view.dtype()
                ));
            }
            if view.shape() != shape.as_slice() {
                return Err(bad_model!(
                    "tensor '{name}' has shape {:?} in the weights file but {:?} in manifest.json",
                    view.shape(),
                    shape
                ));
            }
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some(pos) = data.iter().position(|x| !x.is_finite()) {
                return Err(bad_model!(
                    "tensor '{name}' holds a non-finite value ({}) at flat position {pos}",
                    data[pos]
                ));
            }
            tensors.insert(name.clone(), (shape, data));
        }
        Ok(Self {
            manifest: m,
            kind,
            tensors,
        })
    }

    /// An integer field of the manifest.
    pub fn usize_field(&self, key: &str) -> Result<usize> {
        self.manifest
            .get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| bad_model!("manifest.json: missing integer field '{key}'"))
    }

    /// Removes tensor `name`, checking it has exactly `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (got, data) = self
            .tensors
            .remove(name)
            .ok_or_else(|| bad_model!("model of kind '{}' needs tensor '{name}'", self.kind))?;
        if got != shape {
            return Err(bad_model!(
                "tensor '{name}' has shape {got:?}, expected {shape:?} for this model"
            ));
        }
        Ok(data)
    }

    /// Shape of tensor `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.0.as_slice())
    }

    /// Fails when `kind` is not the manifest's kind.
    pub fn expect_kind(&self, kind: &str) -> Result<()> {
        if self.kind != kind {
            return Err(bad_model!(
                "expected a '{kind}' model, manifest.json says '{}'",
                self.kind
            ));
        }
        Ok(())
    }
}

/// The fuzzing harness, shared by `fuzz/` and the in-tree regression test: decodes
/// `[u32 LE manifest length][manifest][weights]` both as given and with the manifest's
/// `weights_sha256` re-stamped to the weights' real hash, so mutated weights get past the hash
/// check and exercise the safetensors parser and every tensor check. It must never panic.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let rest = &data[4..];
    let (manifest, weights) = rest.split_at(len.min(rest.len()));
    // Every model kind's own shape rules run on whatever the generic checks let through; an
    // AMP-CF model that loads also scores one user and explains one pair (its precomputed item
    // projections and the fused tile loop see every accepted shape).
    let load = |m: &[u8]| {
        if let Ok(c) = Checkpoint::from_bytes(m, weights) {
            let _ = crate::multvae::MultVae::from_checkpoint(c);
        }
        if let Ok(c) = Checkpoint::from_bytes(m, weights) {
            if let Ok(a) = crate::ampcf::AmpCf::from_checkpoint(c) {
                if a.n_users > 0 {
                    let p = &a.personas()[..a.k * a.dim];
                    let _ = a.score_dense(p, 1);
                    let _ = a.attention(p, 1, &[0], &[0]);
                }
            }
        }
    };
    load(manifest);
    if let Ok(mut v) = serde_json::from_slice::<Value>(manifest) {
        if let Some(o) = v.as_object_mut() {
            o.insert("weights_sha256".into(), Value::String(sha256_hex(weights)));
            if let Ok(m) = serde_json::to_vec(&v) {
                load(&m);
            }
        }
    }
}

/// The weights file named by the manifest: a bare file name, never a path.
fn weights_file_name(m: &Value) -> Result<&str> {
    let name = m
        .get("weights_file")
        .and_then(Value::as_str)
        .unwrap_or("weights.safetensors");
    if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(bad_model!(
            "manifest.json: 'weights_file' must be a plain file name, got {name:?}"
        ));
    }
    Ok(name)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` values in [-0.5, 0.5) from a small LCG: reproducible test weights without a crate.
    pub fn rand_vec(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    }

    /// Builds a model file in memory: (manifest bytes, weights bytes).
    pub fn build(
        kind: &str,
        tensors: &[(&str, Vec<usize>, Vec<f32>)],
        extra: Value,
    ) -> (Vec<u8>, Vec<u8>) {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(n, s, d)| {
                (
                    n.to_string(),
                    s.clone(),
                    d.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
            .iter()
            .map(|(n, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
                )
            })
            .collect();
        let weights = safetensors::serialize(views, None).unwrap();
        let mut specs = serde_json::Map::new();
        for (n, s, _) in tensors {
            specs.insert(
                n.to_string(),
                serde_json::json!({"dtype": "F32", "shape": s}),
            );
        }
        let mut m = serde_json::json!({
            "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
            "weights_sha256": sha256_hex(&weights), "tensors": specs,
        });
        if let (Some(mo), Some(eo)) = (m.as_object_mut(), extra.as_object()) {
            for (k, v) in eo {
                mo.insert(k.clone(), v.clone());
            }
        }
        (serde_json::to_vec(&m).unwrap(), weights)
    }

    #[test]
    fn round_trip_and_each_corruption() {
        let t = vec![("w", vec![2, 2], vec![1.0, 2.0, 3.0, 4.0])];
        let (m, w) = build("toy", &t, serde_json::json!({"n_items": 2}));
        let mut c = Checkpoint::from_bytes(&m, &w).unwrap();
        assert_eq!(c.usize_field("n_items").unwrap(), 2);
        assert!(c.expect_kind("other").is_err());
        assert!(c.take("w", &[4]).is_err());
        let (m, w) = build("toy", &t, serde_json::json!({}));
        let mut c = Checkpoint::from_bytes(&m, &w).unwrap();
        assert_eq!(c.take("w", &[2, 2]).unwrap(), vec![1.0, 2.0, 3.0, 4.0]);

        let mut flipped = w.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let e = Checkpoint::from_bytes(&m, &flipped)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sha256"), "{e}");
        let e = Checkpoint::from_bytes(b"{", &w).unwrap_err().to_string();
        assert!(e.contains("JSON"), "{e}");
        let (m2, w2) = build(
            "toy",
            &[("w", vec![1], vec![f32::NAN])],
            serde_json::json!({}),
        );
        let e = Checkpoint::from_bytes(&m2, &w2).unwrap_err().to_string();
        assert!(e.contains("non-finite"), "{e}");
        let mut v: Value = serde_json::from_slice(&m).unwrap();
        v["format_version"] = 99.into();
        let e = Checkpoint::from_bytes(&serde_json::to_vec(&v).unwrap(), &w)
            .unwrap_err()
            .to_string();
        assert!(e.contains("format_version 99"), "{e}");
        let mut v: Value = serde_json::from_slice(&m).unwrap();
        v["tensors"]["w"]["shape"] = serde_json::json!([4]);
        let e = Checkpoint::from_bytes(&serde_json::to_vec(&v).unwrap(), &w)
            .unwrap_err()
            .to_string();
        assert!(e.contains("shape"), "{e}");
        let mut v: Value = serde_json::from_slice(&m).unwrap();
        v["weights_file"] = "../etc/passwd".into();
        let e = Checkpoint::from_bytes(&serde_json::to_vec(&v).unwrap(), &w)
            .unwrap_err()
            .to_string();
        assert!(e.contains("plain file name"), "{e}");
        let garbage = b"not safetensors at all".to_vec();
        let mut v: Value = serde_json::from_slice(&m).unwrap();
        v["weights_sha256"] = sha256_hex(&garbage).into();
        let e = Checkpoint::from_bytes(&serde_json::to_vec(&v).unwrap(), &garbage)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid safetensors"), "{e}");
    }
}
