//! Loading mapping networks from safetensors checkpoints.
//!
//! # What a file may hold
//!
//! A safetensors file with the mapping network's state dict as PyTorch writes
//! it (`tools/export_weights.py` makes one from an NVlabs pickle or a
//! rosinality `.pt`). Two layouts are detected from the tensor names:
//!
//! - **NVlabs** (StyleGAN2, StyleGAN2-ADA, StyleGAN3): `fc{i}.weight [out, in]`,
//!   `fc{i}.bias [out]` for `i = 0..n`, `w_avg [w_dim]`, and for conditional
//!   networks `embed.weight [embed_features, c_dim]`, `embed.bias`. The keys may
//!   carry a prefix that is empty or ends in `mapping.` (so a whole Generator's
//!   state dict, `mapping.fc0.weight`, works; all other tensors are ignored).
//!   A missing `w_avg` is estimated (see below).
//! - **rosinality** (stylegan2-pytorch): `style.{1..=n}.weight [out, in]` and
//!   `style.{1..=n}.bias`, optionally under a `g_ema.` prefix, plus an optional
//!   `latent_avg [w_dim]` (or `[1, w_dim]`; looked up with and without the
//!   prefix). Its `EqualLinear` maths equals NVlabs' fully connected layer,
//!   so it is folded the same way (SPEC §2).
//!
//! All dims (z_dim, c_dim, w_dim, layer count and widths) come from the
//! tensor shapes, which must chain: every layer's input width is the previous
//! layer's output width (`fc0`'s is `z_dim + embed_features`), hidden widths
//! are equal, biases match. Tensors may be F32, F16 or BF16 (converted to
//! f32); any other dtype, a NaN or an infinity is an error naming the tensor.
//!
//! # Metadata keys (`__metadata__`, all values are strings)
//!
//! | key | meaning |
//! |---|---|
//! | `num_ws` | number of ws rows (positive integer, at most [`MAX_NUM_WS`]) |
//! | `resolution` | output resolution (a power of two >= 4); gives `num_ws = 2 * log2(resolution) - 2` (the StyleGAN2 rule; StyleGAN3 always has 16, so its exports store `num_ws`) when `num_ws` is absent |
//! | `lr_multiplier` | the fc layers' learning-rate multiplier (finite, positive) |
//! | `source` | free text (where the weights came from); only displayed |
//!
//! Every other key is kept verbatim in [`Network::metadata`](crate::Network::metadata).
//! Priority for each hyper-parameter: an explicit [`LoadOptions`] field, then
//! the metadata, then the default: lr_multiplier 0.01 (every official
//! config); `num_ws` has no default — a file without `num_ws` or `resolution`
//! needs [`LoadOptions::num_ws`] (the CLI's `--num-ws`).
//!
//! # Robustness
//!
//! The file is opened, its size taken, and only the header and the mapping
//! tensors are read (a whole Generator's synthesis weights are never loaded).
//! The header length must fit in the file and the tensor data must end
//! exactly at the end of the file, so every buffer is bounded by the file's
//! real size, never by a number in the header. Every problem is an
//! [`Error::Format`] naming the file and the tensor or key.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use safetensors::Dtype;
use safetensors::tensor::Metadata;
use stylemap_core::MappingSpec;
use stylemap_core::fold::{self, RawLayer, RawParams};
use stylemap_core::spec::DEFAULT_LR_MULTIPLIER;

use crate::error::Error;
use crate::network::{Layout, Network, WAvgSource};

/// Largest `num_ws` accepted from metadata or options (real networks have at
/// most a few dozen), so that a header cannot make a caller allocate huge ws.
pub const MAX_NUM_WS: usize = 1024;

/// Largest safetensors header accepted (the safetensors crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Hyper-parameters that override the file's metadata, and how to estimate
/// a missing `w_avg`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// lr_multiplier of the fc layers; `None`: metadata, else 0.01.
    pub lr_multiplier: Option<f64>,
    /// Number of ws rows; `None`: metadata (`num_ws`, else `resolution`),
    /// else an error.
    pub num_ws: Option<usize>,
    /// Samples averaged when the file has no `w_avg` / `latent_avg`
    /// (default 4096, as rosinality's `mean_latent`).
    pub w_avg_samples: usize,
    /// Seed of that estimate (default 0); see [`crate::wavg::estimate_w_avg`].
    pub w_avg_seed: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            lr_multiplier: None,
            num_ws: None,
            w_avg_samples: 4096,
            w_avg_seed: 0,
        }
    }
}

/// What [`inspect`] finds in a checkpoint, without reading tensor data.
#[derive(Clone, Debug, PartialEq)]
pub struct Inspection {
    /// The file.
    pub path: PathBuf,
    /// Detected layout.
    pub layout: Layout,
    /// Prefix of the mapping tensors' keys (`""`, `"mapping."`, `"g_ema."`, ...).
    pub key_prefix: String,
    /// The full description, or `None` if `num_ws` is unknown (no metadata).
    pub spec: Option<MappingSpec>,
    /// Length of z.
    pub z_dim: usize,
    /// Length of the label (0: unconditional).
    pub c_dim: usize,
    /// Length of w.
    pub w_dim: usize,
    /// Number of fully connected layers.
    pub num_layers: usize,
    /// Width of the hidden layers.
    pub layer_features: usize,
    /// Width of the label embedding (0: unconditional).
    pub embed_features: usize,
    /// `num_ws` from the metadata (`num_ws` or `resolution`), if any.
    pub num_ws: Option<usize>,
    /// lr_multiplier from the metadata, else the default 0.01.
    pub lr_multiplier: f64,
    /// Whether the file stores `w_avg` (NVlabs) / `latent_avg` (rosinality).
    pub has_w_avg: bool,
    /// dtype of the mapping tensors (`F32`, `F16`, `BF16`, or `mixed (..)`).
    pub dtype: String,
    /// The `__metadata__` map, verbatim.
    pub metadata: BTreeMap<String, String>,
    /// Weights and biases of the mapping network (embedding included,
    /// `w_avg` excluded).
    pub param_count: usize,
    /// Bytes those parameters take in the file.
    pub param_bytes: usize,
    /// Tensors in the file that are not part of the mapping network.
    pub ignored_tensors: usize,
    /// Size of the file.
    pub file_bytes: u64,
    num_ws_from: &'static str,
    lr_from: &'static str,
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "file:           {}", self.path.display())?;
        let layout = match self.layout {
            Layout::Nvlabs => "NVlabs (StyleGAN2/2-ADA/3 MappingNetwork)",
            Layout::Rosinality => "rosinality (stylegan2-pytorch)",
            Layout::Builtin => "built-in",
        };
        write!(f, "layout:         {layout}")?;
        if !self.key_prefix.is_empty() {
            write!(f, ", keys under `{}`", self.key_prefix)?;
        }
        match self.ignored_tensors {
            0 => {}
            1 => write!(f, ", 1 other tensor ignored")?,
            n => write!(f, ", {n} other tensors ignored")?,
        }
        writeln!(f)?;
        writeln!(f, "z_dim:          {}", self.z_dim)?;
        if self.c_dim == 0 {
            writeln!(f, "c_dim:          0 (unconditional)")?;
        } else {
            writeln!(
                f,
                "c_dim:          {} (conditional, embedding width {})",
                self.c_dim, self.embed_features
            )?;
        }
        writeln!(f, "w_dim:          {}", self.w_dim)?;
        writeln!(
            f,
            "layers:         {} fully connected, hidden width {}",
            self.num_layers, self.layer_features
        )?;
        match self.num_ws {
            Some(n) => writeln!(f, "num_ws:         {n} ({})", self.num_ws_from)?,
            None => writeln!(
                f,
                "num_ws:         unknown (no `num_ws` or `resolution` metadata: pass --num-ws)"
            )?,
        }
        writeln!(
            f,
            "lr_multiplier:  {} ({})",
            self.lr_multiplier, self.lr_from
        )?;
        let w_avg = match (self.has_w_avg, self.layout) {
            (true, Layout::Rosinality) => "stored (`latent_avg`)",
            (true, _) => "stored",
            (false, _) => "absent (estimated from random z at load)",
        };
        writeln!(f, "w_avg:          {w_avg}")?;
        writeln!(f, "dtype:          {}", self.dtype)?;
        writeln!(
            f,
            "parameters:     {} ({} bytes)",
            self.param_count, self.param_bytes
        )?;
        writeln!(f, "file size:      {} bytes", self.file_bytes)?;
        if self.metadata.is_empty() {
            write!(f, "metadata:       (none)")
        } else {
            write!(f, "metadata:")?;
            for (k, v) in &self.metadata {
                // Debug formatting escapes control characters from the file.
                write!(f, "\n  {k:?} = {v:?}")?;
            }
            Ok(())
        }
    }
}

/// Reads the header of `path` and describes the mapping network in it.
///
/// Checks everything [`load`] checks except the tensor values (NaN/Inf) and
/// a missing `num_ws` (reported as `num_ws: None`).
pub fn inspect(path: &Path) -> Result<Inspection, Error> {
    inspect_from(SafeFile::open(path)?)
}

/// [`inspect`] for a safetensors file held in memory; `name` stands for the
/// file in messages and in [`Inspection::path`].
pub fn inspect_bytes(bytes: &[u8], name: &Path) -> Result<Inspection, Error> {
    inspect_from(SafeFile::from_bytes(bytes, name)?)
}

fn inspect_from<R: Read + Seek>(file: SafeFile<R>) -> Result<Inspection, Error> {
    let path = file.path.as_path();
    let plan = Plan::new(&file)?;
    let meta = file.metadata();
    let (lr_multiplier, lr_from) = lr_from_metadata(path, &meta)?;
    let (num_ws, num_ws_from) = match num_ws_from_metadata(path, &meta)? {
        Some((n, from)) => (Some(n), from),
        None => (None, ""),
    };
    let d = plan.dims;
    let spec = num_ws.map(|n| MappingSpec {
        layer_features: d.layer_features,
        embed_features: d.embed_features,
        lr_multiplier,
        ..MappingSpec::nvlabs(d.z_dim, d.c_dim, d.w_dim, d.num_layers, n)
    });
    if let Some(spec) = &spec {
        spec.validate()
            .map_err(|e| Error::format(path, format!("unusable network: {e}")))?;
    }
    let mut dtypes: Vec<Dtype> = plan.params().map(|t| t.dtype).collect();
    dtypes.sort();
    dtypes.dedup();
    let dtype = match dtypes.as_slice() {
        [one] => one.to_string(),
        many => {
            let names: Vec<String> = many.iter().map(Dtype::to_string).collect();
            format!("mixed ({})", names.join(", "))
        }
    };
    Ok(Inspection {
        path: file.path.clone(),
        layout: plan.layout,
        key_prefix: plan.prefix.clone(),
        spec,
        z_dim: d.z_dim,
        c_dim: d.c_dim,
        w_dim: d.w_dim,
        num_layers: d.num_layers,
        layer_features: d.layer_features,
        embed_features: d.embed_features,
        num_ws,
        lr_multiplier,
        has_w_avg: plan.w_avg.is_some(),
        dtype,
        metadata: meta,
        param_count: plan.params().map(TensorRef::elements).sum(),
        param_bytes: plan.params().map(TensorRef::bytes).sum(),
        ignored_tensors: plan.ignored,
        file_bytes: file.file_bytes,
        num_ws_from,
        lr_from,
    })
}

/// Loads the mapping network of a safetensors checkpoint (see the module
/// docs for layouts, metadata keys and checks).
///
/// A file without `w_avg` / `latent_avg` gets one estimated from
/// `opts.w_avg_samples` z ([`crate::wavg::estimate_w_avg`] with
/// `opts.w_avg_seed`, all cores), recorded as [`WAvgSource::Estimated`].
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Network, Error> {
    load_from(SafeFile::open(path)?, opts)
}

/// [`load`] for a safetensors file held in memory (downloaded, embedded,
/// fuzzed); `name` stands for the file in error messages. Same checks, same
/// result as writing the bytes to a file and calling [`load`].
pub fn load_bytes(bytes: &[u8], name: &Path, opts: &LoadOptions) -> Result<Network, Error> {
    load_from(SafeFile::from_bytes(bytes, name)?, opts)
}

fn load_from<R: Read + Seek>(mut file: SafeFile<R>, opts: &LoadOptions) -> Result<Network, Error> {
    let path_buf = file.path.clone();
    let path = path_buf.as_path();
    let plan = Plan::new(&file)?;
    let meta = file.metadata();
    let lr = match opts.lr_multiplier {
        Some(lr) if lr.is_finite() && lr > 0.0 => lr,
        Some(lr) => {
            return Err(Error::invalid(format!(
                "lr_multiplier must be finite and positive, got {lr}"
            )));
        }
        None => lr_from_metadata(path, &meta)?.0,
    };
    let num_ws = match opts.num_ws {
        Some(n) if (1..=MAX_NUM_WS).contains(&n) => n,
        Some(n) => {
            return Err(Error::invalid(format!(
                "num_ws must be between 1 and {MAX_NUM_WS}, got {n}"
            )));
        }
        None => match num_ws_from_metadata(path, &meta)? {
            Some((n, _)) => n,
            None => {
                return Err(Error::format(
                    path,
                    "num_ws is unknown: the file has no `num_ws` or `resolution` metadata; \
                     pass --num-ws (18 for StyleGAN2 at 1024x1024, 16 for StyleGAN3)",
                ));
            }
        },
    };
    let d = plan.dims;
    let spec = MappingSpec {
        layer_features: d.layer_features,
        embed_features: d.embed_features,
        lr_multiplier: lr,
        ..MappingSpec::nvlabs(d.z_dim, d.c_dim, d.w_dim, d.num_layers, num_ws)
    };
    spec.validate()
        .map_err(|e| Error::format(path, format!("unusable network: {e}")))?;

    let mut read = |t: &TensorRef| file.read_f32(t);
    let layers: Vec<(Vec<f32>, Vec<f32>)> = plan
        .layers
        .iter()
        .map(|(w, b)| Ok((read(w)?, read(b)?)))
        .collect::<Result<_, Error>>()?;
    let embed = match &plan.embed {
        Some((w, b)) => Some((read(w)?, read(b)?)),
        None => None,
    };
    let w_avg = match &plan.w_avg {
        Some(t) => Some(read(t)?),
        None => None,
    };

    let raw_layers: Vec<RawLayer<'_>> = layers
        .iter()
        .map(|(w, b)| RawLayer { weight: w, bias: b })
        .collect();
    let raw = RawParams {
        embed: embed.as_ref().map(|(w, b)| RawLayer { weight: w, bias: b }),
        layers: &raw_layers,
    };
    let mut folded = vec![0.0f32; spec.param_len()];
    fold::fold_nvlabs(&spec, &raw, &mut folded)
        .map_err(|e| Error::format(path, format!("folding the weights failed: {e}")))?;
    drop(layers);

    let mut net = match w_avg {
        Some(w_avg) => Network::from_parts(spec, folded, w_avg, plan.layout)?,
        None => {
            if opts.w_avg_samples == 0 {
                return Err(Error::invalid(format!(
                    "{}: the file has no w_avg and w_avg_samples is 0",
                    path.display()
                )));
            }
            let mut net = Network::from_parts(spec, folded, vec![0.0; spec.w_dim], plan.layout)?;
            let w_avg = crate::wavg::estimate_w_avg(&net, opts.w_avg_samples, opts.w_avg_seed, 0)?;
            net.set_w_avg_from(
                w_avg,
                WAvgSource::Estimated {
                    samples: opts.w_avg_samples,
                },
            )?;
            net
        }
    };
    net.set_metadata(meta);
    Ok(net)
}

// ---------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------

fn lr_from_metadata(
    path: &Path,
    meta: &BTreeMap<String, String>,
) -> Result<(f64, &'static str), Error> {
    match meta.get("lr_multiplier") {
        None => Ok((DEFAULT_LR_MULTIPLIER, "default")),
        Some(v) => match v.trim().parse::<f64>() {
            Ok(lr) if lr.is_finite() && lr > 0.0 => Ok((lr, "metadata `lr_multiplier`")),
            _ => Err(Error::format(
                path,
                format!("metadata `lr_multiplier` = {v:?} is not a finite positive number"),
            )),
        },
    }
}

fn num_ws_from_metadata(
    path: &Path,
    meta: &BTreeMap<String, String>,
) -> Result<Option<(usize, &'static str)>, Error> {
    if let Some(v) = meta.get("num_ws") {
        return match v.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_NUM_WS).contains(&n) => Ok(Some((n, "metadata `num_ws`"))),
            _ => Err(Error::format(
                path,
                format!("metadata `num_ws` = {v:?} is not an integer in 1..={MAX_NUM_WS}"),
            )),
        };
    }
    if let Some(v) = meta.get("resolution") {
        return match v.trim().parse::<u64>() {
            Ok(r) if r >= 4 && r.is_power_of_two() => {
                let n = 2 * r.trailing_zeros() as usize - 2;
                Ok(Some((
                    n,
                    "from metadata `resolution`: 2*log2(resolution)-2",
                )))
            }
            _ => Err(Error::format(
                path,
                format!("metadata `resolution` = {v:?} is not a power of two >= 4"),
            )),
        };
    }
    Ok(None)
}

// ---------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------

/// An open safetensors file whose header has been parsed and checked against
/// the file size.
struct SafeFile<R> {
    path: PathBuf,
    file: R,
    file_bytes: u64,
    data_start: u64,
    header: Metadata,
}

impl SafeFile<File> {
    fn open(path: &Path) -> Result<SafeFile<File>, Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        // Check before opening: opening a FIFO blocks until a writer appears.
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            let what = if meta.is_dir() {
                "a directory"
            } else {
                "not a regular file (a pipe, device or socket)"
            };
            return Err(Error::format(
                path,
                format!("{what}: a checkpoint must be a regular safetensors file"),
            ));
        }
        let file = File::open(path).map_err(io)?;
        let file_bytes = file.metadata().map_err(io)?.len();
        SafeFile::new(path, file, file_bytes)
    }
}

impl<'a> SafeFile<Cursor<&'a [u8]>> {
    fn from_bytes(bytes: &'a [u8], name: &Path) -> Result<Self, Error> {
        SafeFile::new(name, Cursor::new(bytes), bytes.len() as u64)
    }
}

impl<R: Read + Seek> SafeFile<R> {
    /// Reads and checks the header of `file`, positioned at its start, whose
    /// size is `file_bytes`.
    fn new(path: &Path, mut file: R, file_bytes: u64) -> Result<SafeFile<R>, Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        if file_bytes < 8 {
            return Err(Error::format(
                path,
                format!(
                    "not a safetensors file: {file_bytes} bytes, shorter than the 8-byte header length"
                ),
            ));
        }
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(io)?;
        let n = u64::from_le_bytes(len);
        if n > file_bytes - 8 {
            return Err(Error::format(
                path,
                format!(
                    "safetensors header length {n} exceeds the file's {} remaining bytes \
                     (truncated file, or not safetensors)",
                    file_bytes - 8
                ),
            ));
        }
        if n > MAX_HEADER_BYTES {
            return Err(Error::format(
                path,
                format!("safetensors header of {n} bytes is too large (limit {MAX_HEADER_BYTES})"),
            ));
        }
        // Bounded by the file's actual size (checked above).
        let mut header_bytes = vec![0u8; n as usize];
        file.read_exact(&mut header_bytes).map_err(io)?;
        let header: Metadata = serde_json::from_slice(&header_bytes)
            .map_err(|e| Error::format(path, format!("invalid safetensors header: {e}")))?;
        let data_start = 8 + n;
        let data_end = data_start.checked_add(header.data_len() as u64);
        if data_end != Some(file_bytes) {
            let detail = if data_end.is_some_and(|end| end > file_bytes) {
                "truncated file"
            } else {
                "trailing bytes after the last tensor"
            };
            return Err(Error::format(
                path,
                format!(
                    "tensor data should end at byte {} but the file has {file_bytes} bytes ({detail})",
                    data_start.saturating_add(header.data_len() as u64)
                ),
            ));
        }
        Ok(SafeFile {
            path: path.to_path_buf(),
            file,
            file_bytes,
            data_start,
            header,
        })
    }

    /// The `__metadata__` map (empty if absent).
    fn metadata(&self) -> BTreeMap<String, String> {
        self.header
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Reads one tensor and converts it to f32; errors name the tensor on a
    /// NaN or an infinity.
    fn read_f32(&mut self, t: &TensorRef) -> Result<Vec<f32>, Error> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        // Offsets were validated against the file size when the header was read.
        let mut bytes = vec![0u8; t.bytes()];
        self.file
            .seek(SeekFrom::Start(self.data_start + t.offsets.0 as u64))
            .map_err(io)?;
        self.file.read_exact(&mut bytes).map_err(io)?;
        let values: Vec<f32> = match t.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => return Err(bad_dtype(&self.path, &t.name, other)),
        };
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            let kind = if values[i].is_nan() {
                "NaN"
            } else {
                "an infinity"
            };
            return Err(Error::format(
                &self.path,
                format!("tensor `{}` holds {kind} at element {i}", t.name),
            ));
        }
        Ok(values)
    }
}

fn bad_dtype(path: &Path, name: &str, dtype: Dtype) -> Error {
    Error::format(
        path,
        format!("tensor `{name}` has dtype {dtype}; only F32, F16 and BF16 are supported"),
    )
}

// ---------------------------------------------------------------------------
// Layout detection and shape checks
// ---------------------------------------------------------------------------

/// A tensor of the header.
#[derive(Clone, Debug)]
struct TensorRef {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    offsets: (usize, usize),
}

impl TensorRef {
    fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    fn bytes(&self) -> usize {
        self.offsets.1 - self.offsets.0
    }
}

/// Sizes derived from the shapes.
#[derive(Clone, Copy, Debug)]
struct Dims {
    z_dim: usize,
    c_dim: usize,
    w_dim: usize,
    num_layers: usize,
    layer_features: usize,
    embed_features: usize,
}

/// The mapping tensors of a file, checked.
struct Plan {
    layout: Layout,
    prefix: String,
    layers: Vec<(TensorRef, TensorRef)>,
    embed: Option<(TensorRef, TensorRef)>,
    w_avg: Option<TensorRef>,
    dims: Dims,
    ignored: usize,
}

fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

impl Plan {
    fn new<R>(file: &SafeFile<R>) -> Result<Plan, Error> {
        let path = file.path.as_path();
        let tensors = file.header.tensors();
        let get = |name: &str| {
            tensors.get(name).map(|info| TensorRef {
                name: name.to_string(),
                dtype: info.dtype,
                shape: info.shape.clone(),
                offsets: info.data_offsets,
            })
        };
        let candidates = |suffix: &str, ok: &dyn Fn(&str) -> bool| -> Vec<String> {
            let mut v: Vec<String> = tensors
                .keys()
                .filter_map(|k| k.strip_suffix(suffix))
                .filter(|p| ok(p))
                .map(str::to_string)
                .collect();
            v.sort();
            v
        };
        let nv = candidates("fc0.weight", &|p| p.is_empty() || p.ends_with("mapping."));
        let ro = candidates("style.1.weight", &|p| p.is_empty() || p.ends_with("g_ema."));
        let (layout, prefix) = match (nv.as_slice(), ro.as_slice()) {
            ([p], []) => (Layout::Nvlabs, p.clone()),
            ([], [p]) => (Layout::Rosinality, p.clone()),
            ([], []) => {
                return Err(Error::format(
                    path,
                    "no mapping network found: expected `fc0.weight` (NVlabs, optionally under \
                     `mapping.`) or `style.1.weight` (rosinality)",
                ));
            }
            _ => {
                let all: Vec<String> = nv
                    .iter()
                    .map(|p| format!("`{p}fc0.weight`"))
                    .chain(ro.iter().map(|p| format!("`{p}style.1.weight`")))
                    .collect();
                return Err(Error::format(
                    path,
                    format!(
                        "several mapping networks found ({}); export one on its own",
                        all.join(", ")
                    ),
                ));
            }
        };
        let (layer_name, first): (&dyn Fn(usize) -> String, usize) = match layout {
            Layout::Rosinality => (&|i| format!("style.{i}"), 1),
            _ => (&|i| format!("fc{i}"), 0),
        };
        let missing = |name: &str| Error::format(path, format!("tensor `{name}` is missing"));

        // Layers first..: stop at the first absent weight. Every index
        // consumes a distinct key, so this is bounded by the header.
        let mut layers = Vec::new();
        let mut i = first;
        loop {
            let base = format!("{prefix}{}", layer_name(i));
            let Some(w) = get(&format!("{base}.weight")) else {
                break;
            };
            let b_name = format!("{base}.bias");
            let b = get(&b_name).ok_or_else(|| missing(&b_name))?;
            layers.push((w, b));
            i += 1;
        }
        // A gap (fc0, fc1, fc3) would silently drop layers: find it.
        let stem = format!("{prefix}{}", layer_name(usize::MAX));
        let stem = stem.trim_end_matches(char::is_numeric);
        // (Sorted, so the error names the same tensor every time.)
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        for k in names {
            let Some(rest) = k.strip_prefix(stem) else {
                continue;
            };
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let tail = &rest[digits.len()..];
            if digits.is_empty() || !(tail == ".weight" || tail == ".bias") {
                continue;
            }
            let idx: Option<usize> = digits.parse().ok();
            if idx.is_none_or(|j| j >= i) {
                let expected = format!("{prefix}{}.weight", layer_name(i));
                return Err(Error::format(
                    path,
                    format!("tensor `{expected}` is missing (found `{k}`)"),
                ));
            }
        }

        // The embedding (NVlabs only) and w_avg / latent_avg.
        let embed = match layout {
            Layout::Nvlabs => {
                let w_name = format!("{prefix}embed.weight");
                let b_name = format!("{prefix}embed.bias");
                match (get(&w_name), get(&b_name)) {
                    (None, None) => None,
                    (Some(_), None) => return Err(missing(&b_name)),
                    (None, Some(_)) => return Err(missing(&w_name)),
                    (Some(w), Some(b)) => Some((w, b)),
                }
            }
            _ => None,
        };
        let w_avg = match layout {
            Layout::Rosinality => get(&format!("{prefix}latent_avg")).or_else(|| get("latent_avg")),
            _ => get(&format!("{prefix}w_avg")),
        };

        // dtypes before shapes: "dtype F64" says more than a shape mismatch.
        let pairs = embed.iter().chain(layers.iter());
        for t in pairs.flat_map(|(w, b)| [w, b]).chain(w_avg.iter()) {
            if !matches!(t.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
                return Err(bad_dtype(path, &t.name, t.dtype));
            }
        }

        // Shapes of the fc layers.
        let matrix = |t: &TensorRef| -> Result<(usize, usize), Error> {
            match t.shape.as_slice() {
                &[out, inp] if out > 0 && inp > 0 => Ok((out, inp)),
                s => Err(Error::format(
                    path,
                    format!(
                        "tensor `{}` has shape {}, expected a non-empty matrix [out, in]",
                        t.name,
                        shape_str(s)
                    ),
                )),
            }
        };
        let vector = |t: &TensorRef, len: usize, of: &str| -> Result<(), Error> {
            if t.shape.as_slice() == [len] {
                Ok(())
            } else {
                Err(Error::format(
                    path,
                    format!(
                        "tensor `{}` has shape {}, expected [{len}] ({of})",
                        t.name,
                        shape_str(&t.shape)
                    ),
                ))
            }
        };
        let mut prev: Option<(&TensorRef, usize)> = None;
        let mut in0 = 0;
        let mut layer_features = 0;
        for (idx, (w, b)) in layers.iter().enumerate() {
            let (out, inp) = matrix(w)?;
            vector(b, out, &format!("the out_features of `{}`", w.name))?;
            match prev {
                None => in0 = inp,
                Some((pw, pout)) if pout != inp => {
                    return Err(Error::format(
                        path,
                        format!(
                            "dims do not chain: `{}` has shape {} (in_features {inp}) but `{}` \
                             outputs {pout} features",
                            w.name,
                            shape_str(&w.shape),
                            pw.name
                        ),
                    ));
                }
                Some(_) => {}
            }
            if idx == 0 {
                layer_features = out;
            } else if idx + 1 < layers.len() && out != layer_features {
                return Err(Error::format(
                    path,
                    format!(
                        "unsupported: hidden widths differ (`{}` outputs {out}, the first layer \
                         {layer_features})",
                        w.name
                    ),
                ));
            }
            prev = Some((w, out));
        }
        let Some((_, w_dim)) = prev else {
            return Err(missing(&format!("{prefix}{}.weight", layer_name(first))));
        };
        if layers.len() == 1 {
            layer_features = w_dim;
        }

        // Shapes of the embedding.
        let (embed_features, c_dim) = match &embed {
            Some((w, b)) => {
                let (ef, cd) = matrix(w)?;
                vector(b, ef, &format!("the out_features of `{}`", w.name))?;
                (ef, cd)
            }
            None => (0, 0),
        };
        if in0 <= embed_features {
            return Err(Error::format(
                path,
                format!(
                    "dims do not chain: `{}` has {in0} input features, but z_dim + the \
                     embedding's {embed_features} features must be more than {embed_features}",
                    layers[0].0.name
                ),
            ));
        }
        let z_dim = in0 - embed_features;

        // Shape of w_avg / latent_avg.
        if let Some(t) = &w_avg {
            // [1, w_dim] is accepted from rosinality checkpoints only.
            let ok = t.shape.as_slice() == [w_dim]
                || (layout == Layout::Rosinality && t.shape.as_slice() == [1, w_dim]);
            if !ok {
                return Err(Error::format(
                    path,
                    format!(
                        "tensor `{}` has shape {}, expected [{w_dim}] (w_dim)",
                        t.name,
                        shape_str(&t.shape)
                    ),
                ));
            }
        }

        let used =
            2 * layers.len() + 2 * usize::from(embed.is_some()) + usize::from(w_avg.is_some());
        let num_layers = layers.len();
        Ok(Plan {
            layout,
            prefix,
            layers,
            embed,
            w_avg,
            dims: Dims {
                z_dim,
                c_dim,
                w_dim,
                num_layers,
                layer_features,
                embed_features,
            },
            ignored: tensors.len().saturating_sub(used),
        })
    }

    /// The weights and biases (embedding first), not `w_avg`.
    fn params(&self) -> impl Iterator<Item = &TensorRef> {
        self.embed
            .iter()
            .chain(self.layers.iter())
            .flat_map(|(w, b)| [w, b])
    }
}
