//! Packs on a host: quantize a [`Network`] to f16, bf16 or int8, write it in
//! the core's pack format ([`stylemap_core::pack`], spec in `docs/PACK.md`),
//! load packs from files into 64-byte aligned memory, run them in batches,
//! and measure their accuracy against the f32 network.
//!
//! # Quantization
//!
//! Every layer (the label embedding included) is quantized from the folded
//! f32 weights ([`stylemap_core::fold`]); biases, scales, activations and
//! accumulation stay f32.
//!
//! - **f16 / bf16**: round-to-nearest-even (`half`); a weight beyond f16's
//!   range is an error, never an infinity.
//! - **int8** ([`Int8Method::Gptq`], the default): symmetric, one f32 scale
//!   per output row and group of [`DEFAULT_INT8_GROUP`] = 32 inputs
//!   (`scale = max|w| / 127` over the group, taken when GPTQ reaches it).
//!   Weights are rounded column by column (GPTQ, Frantar et al. 2022); each
//!   rounding error is spread over the row's not yet rounded columns through
//!   the upper Cholesky factor of `(XᵀX + λI)⁻¹`, so that `W x` rather than
//!   `W` stays close. `X` are the layer's inputs on
//!   [`DEFAULT_CALIBRATION_SAMPLES`] = 8192 latents from numpy seeds
//!   [`CALIBRATION_SEED_BASE`] = 2^31 onwards (disjoint from the seeds
//!   accuracy is measured on), computed through the already quantized
//!   earlier layers; `λ` is 1% of the mean diagonal of `XᵀX`. Before
//!   rounding, each layer's weights are re-aimed at the f32 network: `W +=
//!   W D (XᵀX + λI)⁻¹` with `D = (X_f - X)ᵀX` (`X_f` the f32 network's
//!   inputs), the least-squares correction that makes the layer's outputs on
//!   the quantized network's inputs match the f32 ones, so each layer also
//!   cancels the error the earlier layers let through.
//!   [`Int8Method::Round`] is plain per-group rounding, kept for comparison.
//!
//! ## Measured error (numpy seeds 0..10000, max / mean |w - w_f32|)
//!
//! Built-in network (Gaussian init) and a Student-t (4 dof) network
//! ([`heavy_tailed_network`]); |w_f32| is up to 9.7 / 10.1, mean 0.79 / 0.74.
//! Full table and command in `BENCHMARKS.md`.
//!
//! | int8 | builtin max | builtin mean | t(4) max | t(4) mean |
//! |---|---:|---:|---:|---:|
//! | round, per row | 0.192 | 0.0164 | 0.652 | 0.0320 |
//! | round, group 64 | 0.154 | 0.0129 | 0.283 | 0.0176 |
//! | round, group 32 | 0.146 | 0.0118 | 0.205 | 0.0151 |
//! | GPTQ, per row | 0.092 | 0.0076 | 0.258 | 0.0150 |
//! | GPTQ, group 128 | 0.078 | 0.0066 | 0.182 | 0.0105 |
//! | GPTQ, group 64 | 0.068 | 0.0060 | 0.174 | 0.0087 |
//! | **GPTQ, group 32** | **0.063** | **0.0054** | **0.126** | **0.0071** |
//!
//! Only GPTQ at group 32 meets the targets (max <= 0.15, mean <= 1.5e-2) on
//! the heavy-tailed network: a weight outlier sets its group's scale, and
//! smaller groups confine it. The price is bytes and kernel work: 16 f32
//! scales per 512-wide row (32 KiB per layer, 12.5% on top of the int8
//! weights; 2.38 MB per pack against 2.24 MB at group 64) and one scale
//! multiply-add per 32 weight multiply-adds in the kernel (3%).
//!
//! Calibration size and re-aiming, on the t(4) network at group 32 over
//! seeds 0..1000 (max / mean): without re-aiming, 1024 latents 0.176 /
//! 0.0102 and 4096 latents 0.135 / 0.0093; with it, 1024: 0.171 / 0.0101,
//! 4096: 0.116 / 0.0077, 8192: 0.102 / 0.0071, 16384: 0.112 / 0.0069. The
//! correction needs enough latents to be estimated (512 inputs per layer);
//! 8192 is where the gain flattens. A larger damping (3-30%) or an MSE
//! search for clipped scales changed the max only within its noise.
//!
//! Quantizing the built-in network to int8 takes 4.4 s of CPU in release
//! on the project's 2-core machine (`stylemap pack --precision int8`: 8192
//! latents through 8 layers, two 512x512 Gram matrices, a Cholesky
//! factorization and an inverse per layer, 8 x 512³/2 GPTQ updates); f16
//! and bf16 take milliseconds.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use half::{bf16, f16};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use stylemap_core::kernels::quant::{QNR, QWeights, qgemm_bias_act};
use stylemap_core::network::normalize_2nd_moment;
use stylemap_core::pack::{self as core_pack, QLayer, Weights};
use stylemap_core::spec::{Activation, LRELU_SLOPE};
use stylemap_core::{Kernel, MappingSpec, sampler};

pub use stylemap_core::pack::{MAGIC, Pack, PackError, Precision};

use crate::bigbuf::BigBuf;
use crate::error::Error;
use crate::network::{Layout, Network, WAvgSource};
use crate::pool::{RowMode, RowPool, RowSource};

/// First numpy seed of the calibration latents (seeds `2^31..`): disjoint
/// from the small seeds people and benchmarks use.
pub const CALIBRATION_SEED_BASE: u32 = 0x8000_0000;

/// Calibration latents per network.
pub const DEFAULT_CALIBRATION_SAMPLES: usize = 8192;

/// Inputs per int8 scale by default (see the [module docs](self)).
pub const DEFAULT_INT8_GROUP: usize = 32;

/// How int8 weights are rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Method {
    /// Each weight rounded to the nearest multiple of its group's scale.
    Round,
    /// GPTQ: rounding errors compensated through the inverse Hessian of the
    /// layer's calibration inputs (see the [module docs](self)).
    Gptq,
}

/// What [`write_pack`] produces.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantOptions {
    /// Element type of the weights.
    pub precision: Precision,
    /// int8: inputs per scale (`usize::MAX` or anything >= the layer width:
    /// one scale per row). Ignored for other precisions.
    pub group: usize,
    /// int8 rounding.
    pub method: Int8Method,
    /// Calibration latents for [`Int8Method::Gptq`].
    pub calibration_samples: usize,
    /// First numpy seed of the calibration latents.
    pub calibration_seed: u32,
}

impl QuantOptions {
    /// The defaults for `precision`: group [`DEFAULT_INT8_GROUP`], GPTQ on
    /// [`DEFAULT_CALIBRATION_SAMPLES`] latents from [`CALIBRATION_SEED_BASE`].
    pub fn new(precision: Precision) -> Self {
        QuantOptions {
            precision,
            group: DEFAULT_INT8_GROUP,
            method: Int8Method::Gptq,
            calibration_samples: DEFAULT_CALIBRATION_SAMPLES,
            calibration_seed: CALIBRATION_SEED_BASE,
        }
    }
}

/// Owned bytes whose first byte sits on a 64-byte boundary, as
/// [`Pack::parse`] wants them; large packs lie on huge pages
/// ([`crate::bigbuf`]).
#[derive(Clone)]
pub struct AlignedBytes(BigBuf<u8>);

impl std::fmt::Debug for AlignedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBytes({} bytes)", self.0.len())
    }
}

impl AlignedBytes {
    /// `len` zero bytes; an error instead of an abort if memory is short.
    pub fn zeroed(len: usize) -> Result<AlignedBytes, Error> {
        BigBuf::try_zeroed(len)
            .map(AlignedBytes)
            .ok_or_else(|| Error::invalid(format!("cannot allocate {len} bytes for a pack")))
    }

    /// A 64-byte aligned copy of `bytes`.
    pub fn copy_from(bytes: &[u8]) -> Result<AlignedBytes, Error> {
        let mut a = AlignedBytes::zeroed(bytes.len())?;
        a.as_mut_slice().copy_from_slice(bytes);
        Ok(a)
    }

    /// The bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl AsRef<[u8]> for AlignedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Whether `bytes` start with the pack magic.
pub fn has_pack_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Whether the file at `path` starts with the pack magic. A short file, or
/// anything that is not a regular file (never opened: a FIFO would block),
/// is not a pack; a missing or unreadable file is an error.
pub fn is_pack_file(path: &Path) -> Result<bool, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Ok(false);
    }
    let mut f = File::open(path).map_err(io)?;
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(io(source)),
        }
    }
    Ok(has_pack_magic(&head[..got]))
}

/// A validated pack in owned aligned memory, ready to run on a host.
///
/// The pack sits behind an `Arc`: a [`PackMapper`]'s row pool (and a clone)
/// reads the same bytes rather than a copy.
#[derive(Clone, Debug)]
pub struct PackNetwork {
    pack: Arc<Pack<AlignedBytes>>,
    kernel: Kernel,
    path: PathBuf,
}

impl PackNetwork {
    /// Validates aligned bytes as a pack; `name` stands for the file in errors.
    /// Uses [`crate::network::kernel_from_env`]'s kernel, else [`Kernel::best`].
    pub fn from_aligned(bytes: AlignedBytes, name: &Path) -> Result<PackNetwork, Error> {
        let pack = Pack::parse(bytes).map_err(|e| Error::format(name, e.to_string()))?;
        let kernel = crate::network::kernel_from_env()?.unwrap_or_else(Kernel::best);
        Ok(PackNetwork {
            pack: Arc::new(pack),
            kernel,
            path: name.to_path_buf(),
        })
    }

    /// [`from_aligned`](Self::from_aligned) of a copy of `bytes`.
    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<PackNetwork, Error> {
        PackNetwork::from_aligned(AlignedBytes::copy_from(bytes)?, name)
    }

    /// Selects the kernel; errors if it cannot run here.
    pub fn with_kernel(mut self, kernel: Kernel) -> Result<PackNetwork, Error> {
        if !kernel.is_available() {
            return Err(stylemap_core::Error::KernelUnavailable.into());
        }
        self.kernel = kernel;
        Ok(self)
    }

    /// The validated pack.
    pub fn pack(&self) -> &Pack<AlignedBytes> {
        &self.pack
    }

    /// The file it came from (or the name given).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sizes and hyper-parameters.
    pub fn spec(&self) -> &MappingSpec {
        self.pack.spec()
    }

    /// Element type of the weights.
    pub fn precision(&self) -> Precision {
        self.pack.precision()
    }

    /// The average latent used by truncation.
    pub fn w_avg(&self) -> &[f32] {
        self.pack.w_avg()
    }

    /// The kernel every forward uses.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// An f32 pack as a [`Network`] (copies the folded parameters; runs on
    /// [`crate::Mapper`]); `None` for reduced precision.
    pub fn to_network(&self) -> Option<Result<Network, Error>> {
        let params = self.pack.folded_params()?;
        let build = || {
            let net = Network::from_parts(
                *self.spec(),
                params.to_vec(),
                self.w_avg().to_vec(),
                Layout::Nvlabs,
            )?;
            net.with_kernel(self.kernel)
        };
        Some(build().map(|mut net| {
            let mut meta = std::collections::BTreeMap::new();
            meta.insert("source".into(), format!("f32 pack {}", self.path.display()));
            net.set_metadata(meta);
            net
        }))
    }

    /// Maps `N = w.len() / w_dim` samples (`z [N, z_dim]`, `c [N, c_dim]`),
    /// split into contiguous chunks over up to `threads` threads (0: all
    /// cores); each sample's result is independent of the split. Errors like
    /// [`Pack::forward_batch`], before anything is written.
    pub fn map(&self, z: &[f32], c: &[f32], w: &mut [f32], threads: usize) -> Result<(), Error> {
        let s = *self.spec();
        let n = crate::batch::check_batch(&s, z, c, w)?;
        if n == 0 {
            return Ok(());
        }
        let threads = if threads == 0 {
            crate::batch::cores()
        } else {
            threads
        };
        // A thread costs tens of µs to start: only split batches of 4+.
        let threads = threads.min(n / 4).max(1);
        let mut scratch = vec![Vec::new(); threads];
        let run = |z: &[f32], c: &[f32], w: &mut [f32], scratch: &mut Vec<f32>| {
            let b = w.len() / s.w_dim;
            scratch.resize(self.pack.batch_scratch_len(b), 0.0);
            Ok(self.pack.forward_batch(self.kernel, z, c, b, scratch, w)?)
        };
        crate::batch::split_batch(&s, z, c, w, &mut scratch, run)
    }
}

/// A reduced-precision pack as a [`RowSource`]: each participant runs the
/// `kernels::quant` kernel on its panels of every layer. Shares the
/// [`PackNetwork`]'s bytes (no copy of the weights).
struct PackRows {
    pack: Arc<Pack<AlignedBytes>>,
    kernel: Kernel,
}

impl RowSource for PackRows {
    fn spec(&self) -> &MappingSpec {
        self.pack.spec()
    }

    fn kernel(&self) -> Kernel {
        self.kernel
    }

    fn block(&self) -> usize {
        QNR.max(crate::pool::ROW_BLOCK)
    }

    fn embed(&self, c: &[f32], e: &mut [f32]) {
        if self.pack.spec().c_dim == 0 {
            return;
        }
        if let Some(l) = self.pack.layers().next() {
            qgemm_bias_act(
                self.kernel,
                l.weights,
                l.bias,
                c,
                l.in_features,
                l.activation,
                e,
            )
            .expect("the embedding shapes are valid");
        }
    }

    fn rows(&self, l: usize, mine: Range<usize>, x: &[f32], dense: &mut [f32], y: &mut [f32]) {
        let embeds = usize::from(self.pack.spec().c_dim > 0);
        let Some(layer) = self.pack.layers().nth(l + embeds) else {
            return;
        };
        let (inp, out) = (layer.in_features, layer.out_features);
        let Some(sub) = layer.panel_range(mine.start / QNR, mine.end.div_ceil(QNR)) else {
            return;
        };
        crate::pool::spread_rows(mine, out, x.len() / inp, dense, y, |d| {
            qgemm_bias_act(
                self.kernel,
                sub.weights,
                sub.bias,
                x,
                inp,
                sub.activation,
                d,
            )
            .expect("the pool's panels match the layer shapes");
        });
    }
}

/// Batch size at and above which [`PackMapper`] splits the batch between
/// threads (scoped, one per part: [`PackNetwork::map`]) rather than each
/// layer's panels. Measured for the f32 packed path with a thread started
/// per call (rows won up to B = 32, 20.3 vs 23.0; the batch from B = 64,
/// 18.4 vs 19.2); [`crate::Mapper`]'s threshold is lower since its batch
/// split runs on the pool's threads.
pub const PACK_SPLIT_THRESHOLD: usize = 64;

/// Maps batches through a [`PackNetwork`] on several threads, keeping a
/// persistent [`RowPool`] between calls (the pack counterpart of
/// [`crate::Mapper`]).
///
/// Batches below [`PACK_SPLIT_THRESHOLD`] split each
/// layer's 16-row panels between the pool's threads, so at batch 1 each
/// core streams only its share of the weights (and holds it in its L2 once
/// the shares fit); larger batches split the batch ([`PackNetwork::map`]).
/// Every path gives the same bits as [`Pack::forward_batch`], whatever the
/// thread count.
#[derive(Debug)]
pub struct PackMapper<'p> {
    net: &'p PackNetwork,
    threads: usize,
    pool: Option<RowPool>,
    scratch: Vec<f32>,
}

impl<'p> PackMapper<'p> {
    /// A mapper over `net` on all cores (see [`with_threads`](Self::with_threads)).
    pub fn new(net: &'p PackNetwork) -> Self {
        PackMapper {
            net,
            threads: 0,
            pool: None,
            scratch: Vec::new(),
        }
    }

    /// Sets the number of threads (0, the default: all cores). The pool's
    /// worker threads start on first use and live as long as the mapper.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self.pool = None;
        self
    }

    /// Threads the row split uses: the configured count (all cores for 0),
    /// at most one per 16-row panel of the widest layer.
    pub fn threads(&self) -> usize {
        let s = self.net.spec();
        crate::pool::split_threads(s, self.threads, crate::batch::cores, QNR)
    }

    /// `w[n] = mapping(z[n], c[n])` for `N = w.len() / w_dim` samples, with
    /// the checks and errors of [`crate::Mapper::map`].
    pub fn map(&mut self, z: &[f32], c: &[f32], w: &mut [f32]) -> Result<(), Error> {
        let s = *self.net.spec();
        let n = crate::batch::check_batch(&s, z, c, w)?;
        if n == 0 {
            return Ok(());
        }
        let t = self.threads();
        if n >= PACK_SPLIT_THRESHOLD && t > 1 {
            return self.net.map(z, c, w, t);
        }
        if t == 1 {
            let need = self.net.pack().batch_scratch_len(n);
            if self.scratch.len() < need {
                self.scratch.resize(need, 0.0);
            }
            let (pack, kernel) = (self.net.pack(), self.net.kernel());
            return Ok(pack.forward_batch(kernel, z, c, n, &mut self.scratch, w)?);
        }
        if !matches!(&self.pool, Some(p) if p.threads() == t) {
            self.pool = None; // join the old threads first
            let source = PackRows {
                pack: Arc::clone(&self.net.pack),
                kernel: self.net.kernel(),
            };
            self.pool = Some(RowPool::with_source(Arc::new(source), t)?);
        }
        let pool = self.pool.as_mut().expect("the pool was just built");
        pool.forward(z, c, w, RowMode::Packed)
    }
}

/// Reads a pack file into aligned memory and validates it. The header is
/// checked against the file size before the body is allocated.
pub fn load_pack(path: &Path) -> Result<PackNetwork, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    // Checked before opening: opening a FIFO would block.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(Error::format(path, "not a regular file"));
    }
    let mut f = File::open(path).map_err(io)?;
    let len = usize::try_from(meta.len())
        .map_err(|_| Error::format(path, "file too large for this platform"))?;
    let mut head = [0u8; core_pack::HEADER_LEN];
    let got = read_up_to(&mut f, &mut head).map_err(io)?;
    if got < head.len() {
        return Err(Error::format(
            path,
            PackError::TooShort { len: got }.to_string(),
        ));
    }
    if !has_pack_magic(&head) {
        return Err(Error::format(path, PackError::BadMagic.to_string()));
    }
    let total = u64::from_le_bytes(head[16..24].try_into().unwrap_or([0; 8]));
    if total != meta.len() {
        return Err(Error::format(
            path,
            PackError::LengthMismatch {
                header: total,
                actual: len,
            }
            .to_string(),
        ));
    }
    let mut bytes = AlignedBytes::zeroed(len)?;
    let buf = bytes.as_mut_slice();
    buf[..head.len()].copy_from_slice(&head);
    let rest = read_up_to(&mut f, &mut buf[head.len()..]).map_err(io)?;
    if rest != len - head.len() {
        return Err(Error::format(path, "file changed while being read"));
    }
    PackNetwork::from_aligned(bytes, path)
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// One folded layer as f32 `[out, in]` row-major.
struct Dense<'a> {
    weight: &'a [f32],
    bias: &'a [f32],
    inp: usize,
    out: usize,
    activation: Activation,
    name: String,
}

/// The embedding (if any) and fc layers of a network, in pack order.
fn dense_layers(net: &Network) -> Vec<Dense<'_>> {
    fn named<'a>(l: stylemap_core::fold::FoldedLayer<'a>, name: String) -> Dense<'a> {
        Dense {
            weight: l.weight,
            bias: l.bias,
            inp: l.in_features,
            out: l.out_features,
            activation: l.activation,
            name,
        }
    }
    let (embed, fc) = net.core().layers();
    embed
        .map(|e| named(e, "embed.weight".into()))
        .into_iter()
        .chain(
            fc.enumerate()
                .map(|(i, l)| named(l, format!("fc{i}.weight"))),
        )
        .collect()
}

/// Rearranges row-major `[out, in]` into the quant layout (panels of
/// [`QNR`] rows, k-major, padding rows `pad`).
fn panelize<T: Copy>(w: &[T], out: usize, inp: usize, pad: T) -> Vec<T> {
    let panels = out.div_ceil(QNR);
    let mut q = vec![pad; panels * QNR * inp];
    for r in 0..out {
        let (p, j) = (r / QNR, r % QNR);
        for k in 0..inp {
            q[p * inp * QNR + k * QNR + j] = w[r * inp + k];
        }
    }
    q
}

/// Owned quantized layer.
struct QOwned {
    bits: Vec<u16>,
    q: Vec<i8>,
    scales: Vec<f32>,
    bias: Vec<f32>,
    /// Dequantized `[out, in]` (for calibrating the next layer).
    deq: Vec<f32>,
}

fn quantize_half(l: &Dense<'_>, precision: Precision) -> Result<QOwned, Error> {
    let mut deq = Vec::with_capacity(l.weight.len());
    let mut bits = Vec::with_capacity(l.weight.len());
    for (i, &v) in l.weight.iter().enumerate() {
        let (b, back) = match precision {
            Precision::F16 => {
                let h = f16::from_f32(v);
                (h.to_bits(), h.to_f32())
            }
            _ => {
                let h = bf16::from_f32(v);
                (h.to_bits(), h.to_f32())
            }
        };
        if !back.is_finite() {
            return Err(Error::invalid(format!(
                "{} element {i} ({v}) is too large for {precision}",
                l.name
            )));
        }
        bits.push(b);
        deq.push(back);
    }
    Ok(QOwned {
        bits: panelize(&bits, l.out, l.inp, 0),
        q: Vec::new(),
        scales: Vec::new(),
        bias: l.bias.to_vec(),
        deq,
    })
}

/// `chol(a)` lower-triangular in place (`a` symmetric positive definite,
/// row-major `n x n`); false if not positive definite.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d.is_nan() || d <= 0.0 {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
        for k in j + 1..n {
            a[j * n + k] = 0.0;
        }
    }
    true
}

/// The upper Cholesky factor `U` of `(H + λI)⁻¹` (`H = XᵀX`), with
/// `λ = 1%` of the mean diagonal, raised tenfold until it factors.
fn inverse_hessian_factor(h: &[f64], n: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    let mean_diag = (0..n).map(|i| h[i * n + i]).sum::<f64>() / n as f64;
    let mut damp = 0.01 * mean_diag.max(1e-12);
    for _ in 0..8 {
        let mut l = h.to_vec();
        for i in 0..n {
            l[i * n + i] += damp;
        }
        if cholesky(&mut l, n) {
            // L⁻¹ (lower), then (H+λI)⁻¹ = L⁻ᵀ L⁻¹.
            let mut li = vec![0.0f64; n * n];
            for j in 0..n {
                li[j * n + j] = 1.0 / l[j * n + j];
                for i in j + 1..n {
                    let mut s = 0.0;
                    for k in j..i {
                        s -= l[i * n + k] * li[k * n + j];
                    }
                    li[i * n + j] = s / l[i * n + i];
                }
            }
            let mut hinv = vec![0.0f64; n * n];
            for i in 0..n {
                for j in 0..=i {
                    let mut s = 0.0;
                    for k in i..n {
                        s += li[k * n + i] * li[k * n + j];
                    }
                    hinv[i * n + j] = s;
                    hinv[j * n + i] = s;
                }
            }
            let inverse = hinv.clone();
            if cholesky(&mut hinv, n) {
                // U = Lᵀ of chol(Hinv): transpose into upper.
                let mut u = vec![0.0f64; n * n];
                for i in 0..n {
                    for j in 0..=i {
                        u[j * n + i] = hinv[i * n + j];
                    }
                }
                return Some((inverse, u));
            }
        }
        damp *= 10.0;
    }
    None
}

/// The scale of a group: `max|w| / 127` as f32 (0 for an all-zero group).
fn group_scale(w: &[f64]) -> f32 {
    let m = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    (m / 127.0) as f32
}

fn round_q(v: f64, s: f32) -> i8 {
    if s == 0.0 {
        return 0;
    }
    (v / f64::from(s)).round().clamp(-127.0, 127.0) as i8
}

/// int8 quantization of one layer; `h` is `XᵀX` of its calibration inputs
/// (`None`: plain rounding).
fn quantize_int8(l: &Dense<'_>, group: usize, calib: Option<Calib<'_>>) -> Result<QOwned, Error> {
    let (out, inp) = (l.out, l.inp);
    let group = group.clamp(1, inp);
    let groups = inp.div_ceil(group);
    let mut w: Vec<f64> = l.weight.iter().map(|&v| f64::from(v)).collect();
    let mut q = vec![0i8; out * inp];
    let mut scales = vec![0.0f32; out * groups];
    let u = match calib {
        Some(c) => {
            let (hinv, u) = inverse_hessian_factor(c.h, inp).ok_or_else(|| {
                Error::invalid(format!(
                    "{}: the calibration Hessian does not factor",
                    l.name
                ))
            })?;
            if let Some(cross) = c.cross {
                w = retarget(&w, cross, &hinv, out, inp)?;
            }
            Some(u)
        }
        None => None,
    };
    for r in 0..out {
        let row = &mut w[r * inp..(r + 1) * inp];
        for k in 0..inp {
            let g = k / group;
            if k % group == 0 {
                scales[r * groups + g] = group_scale(&row[k..inp.min(k + group)]);
            }
            let s = scales[r * groups + g];
            let qv = round_q(row[k], s);
            q[r * inp + k] = qv;
            if let Some(u) = &u {
                let err = (row[k] - f64::from(qv) * f64::from(s)) / u[k * inp + k];
                let urow = &u[k * inp + k + 1..(k + 1) * inp];
                for (x, &uk) in row[k + 1..].iter_mut().zip(urow) {
                    *x -= err * uk;
                }
            }
        }
    }
    let deq: Vec<f32> = (0..out * inp)
        .map(|i| {
            let (r, k) = (i / inp, i % inp);
            f32::from(q[i]) * scales[r * groups + k / group]
        })
        .collect();
    // Scales in the quant layout: [panel][group][QNR].
    let panels = out.div_ceil(QNR);
    let mut packed_scales = vec![0.0f32; panels * groups * QNR];
    for r in 0..out {
        for g in 0..groups {
            packed_scales[(r / QNR) * groups * QNR + g * QNR + r % QNR] = scales[r * groups + g];
        }
    }
    for (i, s) in scales.iter().enumerate() {
        if !s.is_finite() {
            return Err(Error::invalid(format!(
                "{}: int8 scale {i} is not finite",
                l.name
            )));
        }
    }
    Ok(QOwned {
        bits: Vec::new(),
        q: panelize(&q, out, inp, 0),
        scales: packed_scales,
        bias: l.bias.to_vec(),
        deq,
    })
}

/// `y [n, out] = act(x [n, in] · Wᵀ + b)` in f32 (sgemm), for calibration.
fn dense_forward(x: &[f32], n: usize, w: &[f32], l: &Dense<'_>) -> Result<Vec<f32>, Error> {
    let shape = |e: ndarray::ShapeError| Error::invalid(format!("internal shape error: {e}"));
    let a = ArrayView2::from_shape((n, l.inp), x).map_err(shape)?;
    let bt = ArrayView2::from_shape((l.out, l.inp), w)
        .map_err(shape)?
        .reversed_axes();
    let mut y = Array2::<f32>::zeros((n, l.out));
    general_mat_mul(1.0, &a, &bt, 0.0, &mut y);
    let mut y = y.into_raw_vec_and_offset().0;
    for row in y.chunks_exact_mut(l.out) {
        for (v, &b) in row.iter_mut().zip(l.bias) {
            let t = *v + b;
            *v = match l.activation {
                Activation::LeakyRelu if t < 0.0 => t * LRELU_SLOPE,
                _ => t,
            };
        }
    }
    Ok(y)
}

/// Calibration statistics of one layer's inputs.
#[derive(Clone, Copy)]
struct Calib<'a> {
    /// `X_qᵀ X_q`: the inputs as the quantized network computes them.
    h: &'a [f64],
    /// `X_fᵀ X_q` with `X_f` the f32 network's inputs, if the weights
    /// should be re-aimed at the f32 network's outputs.
    cross: Option<&'a [f64]>,
}

/// `W + W D (H + λI)⁻¹` with `D = (X_f - X_q)ᵀ X_q`: the least-squares
/// correction that makes the layer's outputs on the quantized network's
/// inputs `X_q` match the f32 network's `W X_f` (ridge-damped, so only the
/// small correction is shrunk, never `W`).
fn retarget(w: &[f64], d: &[f64], hinv: &[f64], out: usize, inp: usize) -> Result<Vec<f64>, Error> {
    let shape = |e: ndarray::ShapeError| Error::invalid(format!("internal shape error: {e}"));
    let wv = ArrayView2::from_shape((out, inp), w).map_err(shape)?;
    let dv = ArrayView2::from_shape((inp, inp), d).map_err(shape)?;
    let hv = ArrayView2::from_shape((inp, inp), hinv).map_err(shape)?;
    let mut wd = Array2::<f64>::zeros((out, inp));
    general_mat_mul(1.0, &wv, &dv, 0.0, &mut wd);
    let mut r = wv.to_owned();
    general_mat_mul(1.0, &wd, &hv, 1.0, &mut r);
    Ok(r.into_raw_vec_and_offset().0)
}

/// `AᵀB` in f64 of `a, b [n, in]`.
fn cross_gram(a: &[f32], b: &[f32], n: usize, inp: usize) -> Result<Vec<f64>, Error> {
    let shape = |e: ndarray::ShapeError| Error::invalid(format!("internal shape error: {e}"));
    let ad: Vec<f64> = a.iter().map(|&v| f64::from(v)).collect();
    let bd: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
    let av = ArrayView2::from_shape((n, inp), &ad).map_err(shape)?;
    let bv = ArrayView2::from_shape((n, inp), &bd).map_err(shape)?;
    let mut h = Array2::<f64>::zeros((inp, inp));
    general_mat_mul(1.0, &av.t(), &bv, 0.0, &mut h);
    Ok(h.into_raw_vec_and_offset().0)
}

/// `XᵀX` in f64 of `x [n, in]`.
fn gram(x: &[f32], n: usize, inp: usize) -> Result<Vec<f64>, Error> {
    let shape = |e: ndarray::ShapeError| Error::invalid(format!("internal shape error: {e}"));
    let xd: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let a = ArrayView2::from_shape((n, inp), &xd).map_err(shape)?;
    let mut h = Array2::<f64>::zeros((inp, inp));
    general_mat_mul(1.0, &a.t(), &a, 0.0, &mut h);
    Ok(h.into_raw_vec_and_offset().0)
}

/// Quantizes every layer of `net` as `opts` says; layer by layer, each
/// calibrated on the outputs of the already quantized earlier ones.
fn quantize_layers(net: &Network, opts: &QuantOptions) -> Result<Vec<QOwned>, Error> {
    let s = *net.spec();
    let layers = dense_layers(net);
    let calibrate = opts.precision == Precision::Int8 && opts.method == Int8Method::Gptq;
    let n = if calibrate {
        opts.calibration_samples.max(1)
    } else {
        0
    };
    // Calibration inputs: normalised z, and one-hot labels cycling through
    // the classes for conditional networks.
    let mut x0 = vec![0.0f32; n * s.input_features()];
    let mut c = vec![0.0f32; n * s.c_dim];
    let mut z = vec![0.0f32; s.z_dim];
    for i in 0..n {
        let seed = opts.calibration_seed.wrapping_add(i as u32);
        crate::seeds::z_from_seed_numpy(seed, &mut z);
        let row = &mut x0[i * s.input_features()..(i + 1) * s.input_features()];
        normalize_2nd_moment(&z, &mut row[..s.z_dim]);
        if s.c_dim > 0 {
            c[i * s.c_dim + i % s.c_dim] = 1.0;
        }
    }
    let mut out = Vec::with_capacity(layers.len());
    // Inputs as the quantized network computes them (x) and as the f32
    // network does (xf).
    let mut xf = x0.clone();
    let mut x = x0;
    for (idx, l) in layers.iter().enumerate() {
        let is_embed = s.c_dim > 0 && idx == 0;
        let (input, input_f): (&[f32], &[f32]) = if is_embed { (&c, &c) } else { (&x, &xf) };
        let qo = match opts.precision {
            Precision::F32 => unreachable!("f32 packs are not quantized"),
            Precision::F16 | Precision::Bf16 => quantize_half(l, opts.precision)?,
            Precision::Int8 if calibrate => {
                let h = gram(input, n, l.inp)?;
                let cross = if !is_embed {
                    let diff: Vec<f32> = input_f.iter().zip(input).map(|(a, b)| a - b).collect();
                    Some(cross_gram(&diff, input, n, l.inp)?)
                } else {
                    None
                };
                let calib = Calib {
                    h: &h,
                    cross: cross.as_deref(),
                };
                quantize_int8(l, opts.group, Some(calib))?
            }
            Precision::Int8 => quantize_int8(l, opts.group, None)?,
        };
        if calibrate {
            let y = dense_forward(input, n, &qo.deq, l)?;
            let yf = dense_forward(input_f, n, l.weight, l)?;
            if is_embed {
                // x = concat(norm(z), norm(embed(c))).
                let inp = s.input_features();
                for (e, row) in y.chunks_exact(l.out).zip(x.chunks_exact_mut(inp)) {
                    normalize_2nd_moment(e, &mut row[s.z_dim..]);
                }
                for (e, row) in yf.chunks_exact(l.out).zip(xf.chunks_exact_mut(inp)) {
                    normalize_2nd_moment(e, &mut row[s.z_dim..]);
                }
            } else {
                x = y;
                xf = yf;
            }
        }
        out.push(qo);
    }
    Ok(out)
}

/// Writes `net` as a pack in `opts.precision` (quantizing it first).
pub fn write_pack(net: &Network, opts: &QuantOptions) -> Result<AlignedBytes, Error> {
    let s = net.spec();
    let pack_err = |e: PackError| Error::invalid(format!("cannot write the pack: {e}"));
    // The header stores the group in 32 bits; any group at least as wide as
    // a layer means one scale per row of it, so a larger one is cut to fit.
    let group = opts.group.clamp(1, u32::MAX as usize);
    let len = core_pack::pack_len(s, opts.precision, group).map_err(pack_err)?;
    let mut bytes = AlignedBytes::zeroed(len)?;
    if opts.precision == Precision::F32 {
        let params = net.core().params();
        core_pack::write(s, net.w_avg(), Weights::F32(params), bytes.as_mut_slice())
            .map_err(pack_err)?;
        return Ok(bytes);
    }
    let owned = quantize_layers(net, opts)?;
    let layers: Vec<QLayer<'_>> = owned
        .iter()
        .map(|o| QLayer {
            weights: match opts.precision {
                Precision::F16 => QWeights::F16(&o.bits),
                Precision::Bf16 => QWeights::Bf16(&o.bits),
                _ => QWeights::Int8 {
                    q: &o.q,
                    scales: &o.scales,
                    group,
                },
            },
            bias: &o.bias,
        })
        .collect();
    core_pack::write(
        s,
        net.w_avg(),
        Weights::Quant(&layers),
        bytes.as_mut_slice(),
    )
    .map_err(pack_err)?;
    Ok(bytes)
}

/// Error of a pack against the f32 network over some latents.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accuracy {
    /// Latents evaluated.
    pub samples: usize,
    /// max |w - w_f32| over every element.
    pub max_abs: f64,
    /// mean |w - w_f32|.
    pub mean_abs: f64,
    /// max |w_f32| (for scale).
    pub w_max_abs: f64,
    /// mean |w_f32|.
    pub w_mean_abs: f64,
}

/// Maps the numpy-sampler latents of `seeds` with `reference` (f32,
/// [`crate::Mapper`]) and `pack`, and compares w element by element.
pub fn accuracy(
    reference: &Network,
    pack: &PackNetwork,
    seeds: impl IntoIterator<Item = u32>,
    threads: usize,
) -> Result<Accuracy, Error> {
    let s = *reference.spec();
    if s != *pack.spec() {
        return Err(Error::invalid(
            "the pack and the reference network have different shapes",
        ));
    }
    if s.c_dim > 0 {
        return Err(Error::invalid(
            "accuracy is measured on unconditional networks only",
        ));
    }
    const BATCH: usize = 256;
    let mut mapper = crate::Mapper::new(reference).with_threads(threads);
    let (mut sum, mut wsum, mut max, mut wmax, mut count) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0);
    let mut seeds = seeds.into_iter().peekable();
    let mut z = vec![0.0f32; BATCH * s.z_dim];
    let (mut w_ref, mut w_q) = (vec![0.0f32; BATCH * s.w_dim], vec![0.0f32; BATCH * s.w_dim]);
    let mut samples = 0;
    while seeds.peek().is_some() {
        let mut b = 0;
        for row in z.chunks_exact_mut(s.z_dim) {
            let Some(seed) = seeds.next() else { break };
            crate::seeds::z_from_seed_numpy(seed, row);
            b += 1;
        }
        let (zb, rb, qb) = (
            &z[..b * s.z_dim],
            &mut w_ref[..b * s.w_dim],
            &mut w_q[..b * s.w_dim],
        );
        mapper.map(zb, &[], rb)?;
        pack.map(zb, &[], qb, threads)?;
        for (&r, &q) in rb.iter().zip(qb.iter()) {
            let d = (f64::from(q) - f64::from(r)).abs();
            sum += d;
            max = max.max(d);
            wsum += f64::from(r).abs();
            wmax = wmax.max(f64::from(r).abs());
            count += 1;
        }
        samples += b;
    }
    let div = count.max(1) as f64;
    Ok(Accuracy {
        samples,
        max_abs: max,
        mean_abs: sum / div,
        w_max_abs: wmax,
        w_mean_abs: wsum / div,
    })
}

/// A synthetic network with heavier-tailed weights than the built-in one,
/// for accuracy measurements: the built-in shapes (8 x 512, num_ws 18), raw
/// weights Student-t with `dof` (>= 3) degrees of freedom scaled to unit
/// variance, divided by lr 0.01, biases 0. Layer `i` draws from
/// `Xoshiro256PlusPlus::seed_from_u64(seed + i)` (Box-Muller normals:
/// `t = n0 / sqrt(sum(n_1..n_dof^2) / dof)`). `w_avg` is the mean w of 256
/// xoshiro latents (seed 0): enough for truncation demos, cheap in tests.
pub fn heavy_tailed_network(dof: u32, seed: u64) -> Result<Network, Error> {
    if dof < 3 {
        return Err(Error::invalid("dof must be at least 3 (finite variance)"));
    }
    let spec = MappingSpec::STYLEGAN2_1024;
    let k = dof as usize;
    let var = f64::from(dof) / f64::from(dof - 2);
    let weights: Vec<Vec<f32>> = (0..spec.num_layers)
        .map(|i| {
            let (inp, out) = spec.layer_shape(i);
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed.wrapping_add(i as u64));
            let mut normals = vec![0.0f64; inp * out * (k + 1)];
            sampler::fill_box_muller_f64(&mut rng, &mut normals);
            normals
                .chunks_exact(k + 1)
                .map(|n| {
                    let chi2: f64 = n[1..].iter().map(|v| v * v).sum();
                    let t = n[0] / (chi2 / k as f64).sqrt();
                    (t / var.sqrt() / spec.lr_multiplier) as f32
                })
                .collect()
        })
        .collect();
    let folded = crate::network::fold_zero_bias(&spec, &weights)?;
    let mut net = Network::from_parts(spec, folded, vec![0.0; spec.w_dim], Layout::Nvlabs)?;
    let w_avg = crate::wavg::estimate_w_avg(&net, 256, 0, 0)?;
    net.set_w_avg_from(w_avg, WAvgSource::Estimated { samples: 256 })?;
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A [`PackMapper`]'s row pool reads the [`PackNetwork`]'s bytes: it
    /// takes a reference, not a copy.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "the built-in network and a pooled forward take many minutes under miri"
    )]
    fn the_pack_mappers_pool_shares_the_packs_bytes() {
        let net = Network::builtin();
        let bytes = write_pack(&net, &QuantOptions::new(Precision::Bf16)).unwrap();
        let pack = PackNetwork::from_aligned(bytes, Path::new("test.pack")).unwrap();
        let s = *pack.spec();
        let refs = || Arc::strong_count(&pack.pack);
        assert_eq!(refs(), 1);
        let mut mapper = PackMapper::new(&pack).with_threads(2);
        let mut w = vec![0.0f32; s.w_dim];
        mapper.map(&vec![0.5f32; s.z_dim], &[], &mut w).unwrap();
        assert!(
            mapper.pool.is_some(),
            "batch 1 on 2 threads runs on the pool"
        );
        assert_eq!(refs(), 2, "the pool holds the pack's bytes, not a copy");
        drop(mapper);
        assert_eq!(refs(), 1);
    }
}
