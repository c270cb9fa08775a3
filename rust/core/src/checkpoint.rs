//! Model files: `manifest.json` + a safetensors weights file, read and validated as a unit.
//!
//! Nothing in a model file is executed: the manifest is JSON and the weights are raw little-endian
//! tensors. Loading checks the format version, the kind, the sha256 of the weights, every
//! tensor's name, dtype, shape and finiteness against the manifest, and the item ids.
//!
//! A directory is read as one snapshot: `manifest.json` is read once and everything (the kind,
//! the item ids, the weights file and its hash) comes from those bytes. Writers (the Python
//! `personae.modelfile.save`) write the content-addressed weights file before switching the
//! manifest and keep the previous weights until the next save, so a reader sees the old model
//! or the new one; when a reader is slower than two saves, the weights its manifest named are
//! gone and it reads the (newer) manifest again.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensors, View};
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
    /// The manifest as parsed from [`Checkpoint::text`].
    pub manifest: Value,
    /// The manifest's JSON text, exactly as read (or as stamped by [`encode`]).
    pub text: String,
    pub kind: String,
    tensors: HashMap<String, (Vec<usize>, Stored)>,
}

/// The row-major values of one tensor to write. Indices (cluster labels, sparse structure) are
/// stored as integers: a float32 holds integers exactly only up to 2^24.
#[derive(Clone, Copy, Debug)]
pub enum Values<'a> {
    F32(&'a [f32]),
    I32(&'a [i32]),
    I64(&'a [i64]),
}

impl<'a> Values<'a> {
    fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }

    fn dtype(&self) -> Dtype {
        match self {
            Values::F32(_) => Dtype::F32,
            Values::I32(_) => Dtype::I32,
            Values::I64(_) => Dtype::I64,
        }
    }

    /// The values as little-endian bytes, as safetensors stores them: borrowed, not copied,
    /// where the target is little-endian (a fit's tensors are hundreds of MB).
    fn le_bytes(self) -> Cow<'a, [u8]> {
        fn raw<T: Copy>(v: &[T]) -> &[u8] {
            // SAFETY: f32 / i32 / i64 have no padding and every byte of them is initialised;
            // u8 has alignment 1 and the length covers exactly the slice's memory.
            unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
        }
        if cfg!(target_endian = "little") {
            return Cow::Borrowed(match self {
                Values::F32(v) => raw(v),
                Values::I32(v) => raw(v),
                Values::I64(v) => raw(v),
            });
        }
        Cow::Owned(match self {
            Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
    }
}

/// One tensor as safetensors' writer reads it.
struct Raw<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Cow<'a, [u8]>,
}

impl View for &Raw<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

impl<'a> From<&'a [f32]> for Values<'a> {
    fn from(v: &'a [f32]) -> Self {
        Values::F32(v)
    }
}

impl<'a> From<&'a Vec<f32>> for Values<'a> {
    fn from(v: &'a Vec<f32>) -> Self {
        Values::F32(v)
    }
}

impl<'a> From<&'a Vec<i32>> for Values<'a> {
    fn from(v: &'a Vec<i32>) -> Self {
        Values::I32(v)
    }
}

impl<'a> From<&'a Vec<i64>> for Values<'a> {
    fn from(v: &'a Vec<i64>) -> Self {
        Values::I64(v)
    }
}

/// A tensor to write: name, shape, row-major values.
pub type Tensor<'a> = (&'a str, Vec<usize>, Values<'a>);

/// A tensor's values, owned: decoded from a file, or handed over by a fit.
#[derive(Debug)]
pub enum Stored {
    F32(Vec<f32>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl Stored {
    /// The values, borrowed.
    pub fn values(&self) -> Values<'_> {
        match self {
            Stored::F32(v) => Values::F32(v),
            Stored::I32(v) => Values::I32(v),
            Stored::I64(v) => Values::I64(v),
        }
    }
}

impl Values<'_> {
    /// The values, copied.
    pub fn to_stored(self) -> Stored {
        match self {
            Values::F32(v) => Stored::F32(v.to_vec()),
            Values::I32(v) => Stored::I32(v.to_vec()),
            Values::I64(v) => Stored::I64(v.to_vec()),
        }
    }
}

/// The dtype names a manifest may give, and their safetensors dtypes.
const DTYPES: [(&str, Dtype); 3] = [
    ("F32", Dtype::F32),
    ("I32", Dtype::I32),
    ("I64", Dtype::I64),
];

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(Sha256::digest(bytes).as_slice())
}

/// Lower-case hex of a digest.
fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a regular file. Anything else (a FIFO would block forever, a directory cannot be read)
/// is an error naming the path.
fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(&e, path.display()))?;
    if !meta.is_file() {
        return Err(Error::Io {
            kind: if meta.is_dir() {
                std::io::ErrorKind::IsADirectory
            } else {
                std::io::ErrorKind::InvalidInput
            },
            message: format!(
                "{}: not a regular file (a model directory holds plain files)",
                path.display()
            ),
        });
    }
    std::fs::read(path).map_err(|e| Error::io(&e, path.display()))
}

impl Checkpoint {
    /// Reads `dir/manifest.json` and the weights file it names (see the module docs).
    pub fn load_dir(dir: &Path) -> Result<Self> {
        let mpath = dir.join("manifest.json");
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let manifest = read_regular(&mpath).map_err(|e| match e {
                Error::Io {
                    kind: std::io::ErrorKind::NotFound,
                    ..
                } => Error::Io {
                    kind: std::io::ErrorKind::NotFound,
                    message: format!(
                        "no model at {}: {} does not exist",
                        dir.display(),
                        mpath.display()
                    ),
                },
                e => e,
            })?;
            let v = parse_manifest(&manifest)?;
            let wpath = dir.join(weights_file_name(&v)?);
            match read_regular(&wpath) {
                Ok(weights) => return Self::from_bytes(&manifest, &weights),
                Err(Error::Io {
                    kind: std::io::ErrorKind::NotFound,
                    ..
                }) if attempt < ATTEMPTS => continue,
                Err(Error::Io {
                    kind: std::io::ErrorKind::NotFound,
                    ..
                }) => {
                    return Err(Error::Io {
                        kind: std::io::ErrorKind::NotFound,
                        message: format!(
                            "model at {}: the weights file {} that manifest.json names does not \
                             exist",
                            dir.display(),
                            wpath.display()
                        ),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Decodes and validates a manifest and its weights held in memory.
    pub fn from_bytes(manifest: &[u8], weights: &[u8]) -> Result<Self> {
        let m = parse_manifest(manifest)?;
        let kind = check_manifest(&m)?;
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
            let dtype = spec
                .get("dtype")
                .and_then(Value::as_str)
                .and_then(|d| DTYPES.iter().find(|t| t.0 == d))
                .map(|t| t.1)
                .ok_or_else(|| {
                    bad_model!(
                        "manifest.json: tensor '{name}' must have dtype \"F32\", \"I32\" or \"I64\""
                    )
                })?;
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
            if view.dtype() != dtype {
                return Err(bad_model!(
                    "tensor '{name}' is stored as {:?}, but manifest.json says {dtype:?}",
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
            let bytes = view.data();
            let data = match dtype {
                Dtype::F32 => finite(
                    name,
                    bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                )?,
                Dtype::I32 => Stored::I32(
                    bytes
                        .chunks_exact(4)
                        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ),
                _ => Stored::I64(
                    bytes
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().expect("8-byte chunks")))
                        .collect(),
                ),
            };
            tensors.insert(name.clone(), (shape, data));
        }
        let text = String::from_utf8(manifest.to_vec())
            .map_err(|_| bad_model!("manifest.json is not UTF-8"))?;
        Ok(Self {
            manifest: m,
            text,
            kind,
            tensors,
        })
    }

    /// A checkpoint from a manifest (kind, n_items, item ids, config...) and tensors, as a
    /// training run produces them, validated like a file (copies them: see
    /// [`Checkpoint::from_owned`]).
    pub fn from_tensors(manifest: &str, tensors: &[Tensor]) -> Result<Self> {
        let owned = tensors
            .iter()
            .map(|(n, s, v)| (n.to_string(), s.clone(), v.to_stored()))
            .collect();
        Self::from_owned(manifest, owned)
    }

    /// A checkpoint that takes over a fit's tensors, validated like a file: the manifest is the
    /// one [`encode`] would write, its hash streamed over the tensors, which are neither
    /// serialised nor copied (a fit's tensors are hundreds of MB).
    pub fn from_owned(manifest: &str, tensors: Vec<(String, Vec<usize>, Stored)>) -> Result<Self> {
        let (text, m, kind) = {
            let views: Vec<Tensor> = tensors
                .iter()
                .map(|(n, s, v)| (n.as_str(), s.clone(), v.values()))
                .collect();
            let raws = raw_tensors(&views)?;
            let (header, order) = header(&raws)?;
            let mut hash = Sha256::new();
            hash.update(&header);
            for name in &order {
                hash.update(&raws[name.as_str()].bytes);
            }
            let sha = hex(hash.finalize().as_slice());
            let text = stamp(manifest, &views, &sha)?;
            let m = parse_manifest(text.as_bytes())?;
            let kind = check_manifest(&m)?;
            (text, m, kind)
        };
        let mut stored = HashMap::with_capacity(tensors.len());
        for (name, shape, data) in tensors {
            let data = match data {
                Stored::F32(v) => finite(&name, v)?,
                other => other,
            };
            stored.insert(name, (shape, data));
        }
        Ok(Self {
            manifest: m,
            text,
            kind,
            tensors: stored,
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
    fn take_stored(&mut self, name: &str, shape: &[usize]) -> Result<Stored> {
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

    /// Removes float32 tensor `name`, checking it has exactly `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        match self.take_stored(name, shape)? {
            Stored::F32(v) => Ok(v),
            _ => Err(bad_model!("tensor '{name}' must have dtype F32")),
        }
    }

    /// Removes int32 tensor `name`, checking it has exactly `shape`.
    pub fn take_i32(&mut self, name: &str, shape: &[usize]) -> Result<Vec<i32>> {
        match self.take_stored(name, shape)? {
            Stored::I32(v) => Ok(v),
            _ => Err(bad_model!("tensor '{name}' must have dtype I32")),
        }
    }

    /// Removes int64 tensor `name`, checking it has exactly `shape`.
    pub fn take_i64(&mut self, name: &str, shape: &[usize]) -> Result<Vec<i64>> {
        match self.take_stored(name, shape)? {
            Stored::I64(v) => Ok(v),
            _ => Err(bad_model!("tensor '{name}' must have dtype I64")),
        }
    }

    /// Whether the file holds tensor `name`.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Like [`Checkpoint::take`] for a tensor that older files may lack.
    pub fn take_optional(&mut self, name: &str, shape: &[usize]) -> Result<Option<Vec<f32>>> {
        if self.has(name) {
            self.take(name, shape).map(Some)
        } else {
            Ok(None)
        }
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

fn parse_manifest(bytes: &[u8]) -> Result<Value> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| bad_model!("manifest.json is not valid JSON: {e}"))?;
    if !v.is_object() {
        return Err(bad_model!(
            "manifest.json must hold a JSON object, found {}",
            match v {
                Value::Array(_) => "an array",
                Value::Null => "null",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                _ => "a boolean",
            }
        ));
    }
    Ok(v)
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

/// `item_ids`, when present: one per item (`n_items`), all integers or all strings, distinct.
fn check_item_ids(m: &Value) -> Result<()> {
    let Some(ids) = m.get("item_ids") else {
        return Ok(());
    };
    let ids = ids
        .as_array()
        .ok_or_else(|| bad_model!("manifest.json: 'item_ids' must be an array"))?;
    let n = m
        .get("n_items")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad_model!("manifest.json: missing integer field 'n_items'"))?;
    if ids.len() as u64 != n {
        return Err(bad_model!(
            "manifest.json: 'item_ids' has {} entries but the model has {n} items",
            ids.len()
        ));
    }
    let all_int = ids.iter().all(|v| v.as_i64().is_some());
    let all_str = ids.iter().all(Value::is_string);
    if !(all_int || all_str) {
        return Err(bad_model!(
            "manifest.json: 'item_ids' must be all integers or all strings"
        ));
    }
    let mut seen = HashSet::with_capacity(ids.len());
    for v in ids {
        if !seen.insert(v.to_string()) {
            return Err(bad_model!(
                "manifest.json: item id {v} appears more than once"
            ));
        }
    }
    Ok(())
}

/// Serialises `tensors` to safetensors and stamps the manifest with what the file format needs
/// (format, version, tensor specs, the weights' file name and sha256). Returns the manifest text
/// and the weights bytes. Deterministic: the same manifest and tensors give the same bytes.
pub fn encode(manifest: &str, tensors: &[Tensor]) -> Result<(String, Vec<u8>)> {
    let raws = raw_tensors(tensors)?;
    let weights = safetensors::serialize(raws.iter().map(|(n, r)| (*n, r)), None)
        .map_err(|e| bad_model!("cannot serialise the weights: {e}"))?;
    let text = stamp(manifest, tensors, &sha256_hex(&weights))?;
    Ok((text, weights))
}

/// The tensors as safetensors views (borrowed bytes), each shape checked against its values.
fn raw_tensors<'a>(tensors: &'a [Tensor]) -> Result<HashMap<&'a str, Raw<'a>>> {
    let mut out = HashMap::with_capacity(tensors.len());
    for (name, shape, data) in tensors {
        if shape.iter().product::<usize>() != data.len() {
            return Err(bad_model!(
                "tensor '{name}': shape {shape:?} does not match its {} values",
                data.len()
            ));
        }
        let raw = Raw {
            dtype: data.dtype(),
            shape: shape.clone(),
            bytes: data.le_bytes(),
        };
        if out.insert(*name, raw).is_some() {
            return Err(bad_model!("tensor '{name}' is given twice"));
        }
    }
    Ok(out)
}

/// The first bytes of the weights file `safetensors::serialize` writes for `raws` (the
/// header's length and its JSON, padded to 8 bytes), and the order in which the tensors' bytes
/// follow: by descending dtype, then name (safetensors' own rule, pinned by a test).
fn header(raws: &HashMap<&str, Raw>) -> Result<(Vec<u8>, Vec<String>)> {
    let mut names: Vec<&str> = raws.keys().copied().collect();
    names.sort_by(|l, r| raws[r].dtype.cmp(&raws[l].dtype).then(l.cmp(r)));
    let mut offset = 0;
    let mut infos = Vec::with_capacity(names.len());
    for &name in &names {
        let raw = &raws[name];
        let n = raw.bytes.len();
        let info = TensorInfo {
            dtype: raw.dtype,
            shape: raw.shape.clone(),
            data_offsets: (offset, offset + n),
        };
        offset += n;
        infos.push((name.to_string(), info));
    }
    let meta =
        Metadata::new(None, infos).map_err(|e| bad_model!("cannot describe the weights: {e}"))?;
    let mut json = serde_json::to_vec(&meta)
        .map_err(|e| bad_model!("cannot serialise the weights' header: {e}"))?;
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    Ok((out, names.into_iter().map(str::to_string).collect()))
}

/// `manifest` stamped with what the file format needs: format, version, the tensors' specs,
/// and the weights' file name and sha256 (`sha`, hex).
fn stamp(manifest: &str, tensors: &[Tensor], sha: &str) -> Result<String> {
    let mut m = parse_manifest(manifest.as_bytes())?;
    let mut specs = serde_json::Map::new();
    for (name, shape, data) in tensors {
        let dname = DTYPES
            .iter()
            .find(|t| t.1 == data.dtype())
            .map_or("F32", |t| t.0);
        specs.insert(
            name.to_string(),
            serde_json::json!({"dtype": dname, "shape": shape}),
        );
    }
    let o = m.as_object_mut().expect("parse_manifest returns objects");
    o.insert("format".into(), FORMAT.into());
    o.insert("format_version".into(), FORMAT_VERSION.into());
    o.insert(
        "weights_file".into(),
        format!("weights-{}.safetensors", &sha[..16]).into(),
    );
    o.insert("weights_sha256".into(), sha.into());
    o.insert("tensors".into(), Value::Object(specs));
    serde_json::to_string_pretty(&m).map_err(|e| bad_model!("cannot serialise the manifest: {e}"))
}

/// A float32 tensor's values, refused when one is not finite.
fn finite(name: &str, data: Vec<f32>) -> Result<Stored> {
    if let Some(pos) = data.iter().position(|x| !x.is_finite()) {
        return Err(bad_model!(
            "tensor '{name}' holds a non-finite value ({}) at flat position {pos}",
            data[pos]
        ));
    }
    Ok(Stored::F32(data))
}

/// The manifest fields every checkpoint needs, checked: format and version, the kind
/// (returned), a plain weights file name and the item ids.
fn check_manifest(m: &Value) -> Result<String> {
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
    weights_file_name(m)?;
    check_item_ids(m)?;
    Ok(kind)
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

    /// A model file in memory: (manifest bytes, weights bytes).
    pub fn build(
        kind: &str,
        tensors: &[(&str, Vec<usize>, Vec<f32>)],
        extra: Value,
    ) -> (Vec<u8>, Vec<u8>) {
        let mut m = serde_json::json!({ "kind": kind });
        if let (Some(mo), Some(eo)) = (m.as_object_mut(), extra.as_object()) {
            for (k, v) in eo {
                mo.insert(k.clone(), v.clone());
            }
        }
        let t: Vec<Tensor> = tensors
            .iter()
            .map(|(n, s, d)| (*n, s.clone(), Values::F32(d)))
            .collect();
        let (text, w) = encode(&m.to_string(), &t).unwrap();
        (text.into_bytes(), w)
    }

    /// `from_tensors` (hash streamed, one copy) is the file path `from_bytes(encode(..))`:
    /// the same manifest text, hash included, and the same tensors, for mixed dtypes, empty
    /// tensors and names in any order; and it refuses what that path refuses.
    #[test]
    fn from_tensors_equals_encoding_then_decoding() {
        let mut seed = 7u64;
        for case in 0..24usize {
            let f: Vec<Vec<f32>> = (0..1 + case % 4)
                .map(|k| rand_vec((case * 13 + k * 7) % 40, &mut seed))
                .collect();
            let i32s: Vec<i32> = (0..(case % 5) as i32).map(|v| v * 3 - 4).collect();
            let i64s: Vec<i64> = (0..(case % 3) as i64).map(|v| v << 40).collect();
            let names: Vec<String> = (0..f.len())
                .map(|k| format!("t{}", (k * 5 + case) % 11))
                .collect();
            let mut t: Vec<Tensor> = Vec::new();
            for (k, v) in f.iter().enumerate() {
                if !t.iter().any(|x| x.0 == names[k]) {
                    t.push((&names[k], vec![v.len()], Values::F32(v)));
                }
            }
            t.push(("idx", vec![i32s.len(), 1], Values::I32(&i32s)));
            t.push(("big", vec![i64s.len()], Values::I64(&i64s)));
            if case % 2 == 1 {
                t.reverse();
            }
            let m = serde_json::json!({"kind": "toy", "n_items": 2, "item_ids": ["a", "b"]})
                .to_string();
            let (text, w) = encode(&m, &t).unwrap();
            let mut want = Checkpoint::from_bytes(text.as_bytes(), &w).unwrap();
            let mut got = Checkpoint::from_tensors(&m, &t).unwrap();
            assert_eq!(got.text, text);
            assert_eq!(got.kind, want.kind);
            for (name, shape, data) in &t {
                match data {
                    Values::F32(_) => assert_eq!(
                        got.take(name, shape).unwrap(),
                        want.take(name, shape).unwrap()
                    ),
                    Values::I32(_) => assert_eq!(
                        got.take_i32(name, shape).unwrap(),
                        want.take_i32(name, shape).unwrap()
                    ),
                    Values::I64(_) => assert_eq!(
                        got.take_i64(name, shape).unwrap(),
                        want.take_i64(name, shape).unwrap()
                    ),
                }
            }
        }
        let v = [1.0f32, f32::NAN];
        let e = Checkpoint::from_tensors(r#"{"kind": "toy"}"#, &[("w", vec![2], Values::F32(&v))]);
        assert!(e.unwrap_err().to_string().contains("non-finite"));
        let v = [1.0f32, 2.0];
        let e = Checkpoint::from_tensors(r#"{"kind": "toy"}"#, &[("w", vec![3], Values::F32(&v))]);
        assert!(e.unwrap_err().to_string().contains("does not match"));
        let two = [
            ("w", vec![2], Values::F32(&v)),
            ("w", vec![2], Values::F32(&v)),
        ];
        let e = Checkpoint::from_tensors(r#"{"kind": "toy"}"#, &two);
        assert!(e.unwrap_err().to_string().contains("twice"));
        let e = Checkpoint::from_tensors(r#"{"n_items": 1}"#, &[("w", vec![2], Values::F32(&v))]);
        assert!(e.unwrap_err().to_string().contains("kind"));
        let ids = r#"{"kind": "toy", "n_items": 2, "item_ids": ["a", "a"]}"#;
        let e = Checkpoint::from_tensors(ids, &[("w", vec![2], Values::F32(&v))]);
        assert!(e.unwrap_err().to_string().contains("more than once"));
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
        // Encoding is deterministic: the same tensors give the same bytes and hash.
        assert_eq!(
            build("toy", &t, serde_json::json!({})),
            (m.clone(), w.clone())
        );

        let mut flipped = w.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let e = Checkpoint::from_bytes(&m, &flipped)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sha256"), "{e}");
        let e = Checkpoint::from_bytes(b"{", &w).unwrap_err().to_string();
        assert!(e.contains("JSON"), "{e}");
        for (bad, what) in [
            (&b"[]"[..], "an array"),
            (b"null", "null"),
            (b"3", "a number"),
        ] {
            let e = Checkpoint::from_bytes(bad, &w).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
        let (m2, w2) = build(
            "toy",
            &[("w", vec![1], vec![f32::NAN])],
            serde_json::json!({}),
        );
        let e = Checkpoint::from_bytes(&m2, &w2).unwrap_err().to_string();
        assert!(e.contains("non-finite"), "{e}");
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut v: Value = serde_json::from_slice(&m).unwrap();
            f(&mut v);
            Checkpoint::from_bytes(&serde_json::to_vec(&v).unwrap(), &w)
                .unwrap_err()
                .to_string()
        };
        assert!(edit(&|v| v["format_version"] = 99.into()).contains("format_version 99"));
        assert!(edit(&|v| v["tensors"]["w"]["shape"] = serde_json::json!([4])).contains("shape"));
        assert!(edit(&|v| v["weights_file"] = "../etc/passwd".into()).contains("plain file name"));
        let ids = |ids: Value| {
            edit(&move |v: &mut Value| {
                v["n_items"] = 2.into();
                v["item_ids"] = ids.clone();
            })
        };
        assert!(ids(serde_json::json!([1])).contains("1 entries"));
        assert!(ids(serde_json::json!([1, "a"])).contains("all integers or all strings"));
        assert!(ids(serde_json::json!(["a", "a"])).contains("more than once"));
        assert!(ids(serde_json::json!([1.5, 2])).contains("all integers"));
        let garbage = b"not safetensors at all".to_vec();
        let mut v: Value = serde_json::from_slice(&m).unwrap();
        v["weights_sha256"] = sha256_hex(&garbage).into();
        let e = Checkpoint::from_bytes(&serde_json::to_vec(&v).unwrap(), &garbage)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid safetensors"), "{e}");
    }

    #[test]
    fn directories_files_and_fifos() {
        let dir = std::env::temp_dir().join(format!("personae-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = vec![("w", vec![2], vec![1.0, 2.0])];
        let (m, w) = build("toy", &t, serde_json::json!({}));
        let e = Checkpoint::load_dir(&dir).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Io {
                    kind: std::io::ErrorKind::NotFound,
                    ..
                }
            ),
            "{e:?}"
        );
        std::fs::write(dir.join("manifest.json"), &m).unwrap();
        let e = Checkpoint::load_dir(&dir).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let v: Value = serde_json::from_slice(&m).unwrap();
        let wname = v["weights_file"].as_str().unwrap();
        std::fs::create_dir(dir.join(wname)).unwrap();
        let e = Checkpoint::load_dir(&dir).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        std::fs::remove_dir(dir.join(wname)).unwrap();
        std::fs::write(dir.join(wname), &w).unwrap();
        assert_eq!(Checkpoint::load_dir(&dir).unwrap().kind, "toy");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
