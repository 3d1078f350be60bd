//! Shared helpers for the integration tests: fixture paths, the reference
//! manifest, temporary files and a small safetensors writer.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use stylemap::Network;

/// `tests/fixtures/checkpoints/` of the workspace.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/checkpoints")
}

/// A fixture file.
pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// `reference.json`.
pub fn manifest() -> Value {
    let text = std::fs::read_to_string(fixture("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("reference.json parses")
}

/// The manifest entry of `file`.
pub fn entry(file: &str) -> Value {
    manifest()["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == file)
        .unwrap_or_else(|| panic!("{file} not in reference.json"))
        .clone()
}

/// A JSON array of numbers as f64.
pub fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// A fresh path in a per-process temporary directory (not created).
pub fn temp_path(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("stylemap-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{n}-{name}"))
}

/// Writes `bytes` to a fresh temporary file and returns its path.
pub fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = temp_path(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// One tensor to serialise: name, dtype tag, shape, raw little-endian bytes.
#[derive(Clone, Debug)]
pub struct RawTensor {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl RawTensor {
    /// An F32 tensor.
    pub fn f32(name: &str, shape: &[usize], values: &[f32]) -> RawTensor {
        RawTensor {
            name: name.into(),
            dtype: "F32".into(),
            shape: shape.to_vec(),
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// Serialises tensors (in the given order) and metadata as safetensors.
pub fn safetensors_bytes(tensors: &[RawTensor], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let m: serde_json::Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        header.insert("__metadata__".into(), Value::Object(m));
    }
    let mut offset = 0usize;
    let mut data = Vec::new();
    for t in tensors {
        header.insert(
            t.name.clone(),
            serde_json::json!({
                "dtype": t.dtype,
                "shape": t.shape,
                "data_offsets": [offset, offset + t.data.len()],
            }),
        );
        offset += t.data.len();
        data.extend_from_slice(&t.data);
    }
    let mut text = serde_json::to_vec(&Value::Object(header)).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&data);
    out
}

/// Reads a safetensors file back into raw tensors (file order) and metadata.
pub fn read_raw(path: &Path) -> (Vec<RawTensor>, Vec<(String, String)>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut tensors: Vec<RawTensor> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| RawTensor {
            name,
            dtype: view.dtype().to_string(),
            shape: view.shape().to_vec(),
            data: view.data().to_vec(),
        })
        .collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let mut metadata: Vec<(String, String)> = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    metadata.sort();
    (tensors, metadata)
}

/// Borrowed metadata pairs.
pub fn meta_refs(m: &[(String, String)]) -> Vec<(&str, &str)> {
    m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Max |a - b|.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Per-sample core forward (single-threaded, one sample at a time): the
/// reference every batched and pooled path is held to.
pub fn core_forward(net: &Network, z: &[f32], c: &[f32]) -> Vec<f32> {
    let s = *net.spec();
    let n = z.len() / s.z_dim;
    let mut w = vec![0.0f32; n * s.w_dim];
    let mut scratch = vec![0.0f32; s.scratch_len()];
    for i in 0..n {
        net.core()
            .forward(
                &z[i * s.z_dim..(i + 1) * s.z_dim],
                &c[i * s.c_dim..(i + 1) * s.c_dim],
                &mut scratch,
                &mut w[i * s.w_dim..(i + 1) * s.w_dim],
            )
            .unwrap();
    }
    w
}
