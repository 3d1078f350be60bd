//! [`Mapper`]: z (+ c) -> w for a whole batch, multi-threaded, with buffers
//! reused across calls.
//!
//! Two paths compute the same thing:
//!
//! - **GEMV**: [`stylemap_core::MappingNetwork::forward`] per sample (the
//!   core's SIMD kernels). Best for small batches: it streams each weight
//!   matrix once per sample and needs no packing.
//! - **GEMM**: each layer is one `matrixmultiply` sgemm over the batch
//!   (through `ndarray::linalg::general_mat_mul`, a safe front end that calls
//!   `matrixmultiply::sgemm` directly), `Y[n, out] = X[n, in] · W'ᵀ` on the
//!   folded row-major `W' [out, in]` read through transposed strides (no
//!   copy), then a bias + leaky-ReLU epilogue. Normalisation of z and of the
//!   label embedding is per row in f64, exactly as the core's
//!   [`normalize_2nd_moment`].
//!
//! The path is chosen from the **whole** batch size (not per thread), so for
//! a given batch the result does not depend on the thread count; the two
//! paths differ only by f32 summation order (tests hold them within 1e-5).
//!
//! Threads: the batch is split into contiguous chunks, one per thread, run
//! under `std::thread::scope` (the calling thread takes the first chunk).

use std::num::NonZeroUsize;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use stylemap_core::fold::FoldedLayer;
use stylemap_core::network::normalize_2nd_moment;
use stylemap_core::spec::{Activation, LRELU_SLOPE};

use crate::error::{Error, check_finite};
use crate::network::Network;

/// Default batch size at and above which [`Mapper`] switches from per-sample
/// GEMV to sgemm.
///
/// Measured on the built-in 8x512 network (StyleGAN2 shapes, 2.1 M MACs per
/// sample) in a release build on the project's 2-core x86-64 machine (Xeon
/// with AVX-512 under KVM; matrixmultiply's AVX2+FMA kernel, the core's
/// portable GEMV kernel), median of 11 runs, microseconds per sample:
///
/// | batch | GEMV, 1 thread | GEMM, 1 thread | GEMV, 2 threads | GEMM, 2 threads |
/// |---:|---:|---:|---:|---:|
/// | 1 | 304 | 998 | 296 | 921 |
/// | 2 | 283 | 464 | 170 | 539 |
/// | 4 | 225 | 236 | 138 | 256 |
/// | 5 | 228 | 190 | 156 | 209 |
/// | 6 | 248 | 155 | 146 | 184 |
/// | 8 | 246 | 116 | 151 | 141 |
/// | 16 | 250 | 83 | 155 | 134 |
/// | 64 | 249 | 56 | 147 | 34 |
/// | 256 | 252 | 50 | 143 | 25 |
///
/// GEMV is memory-bound (8 MB of weights streamed per sample); sgemm packs
/// the weights once per call, which small batches cannot amortise. The
/// crossover is 5 on one thread and 8 on two; since the path is chosen from
/// the whole batch and the default uses all cores, the default is 8. (Batch
/// 64 on 2 threads: ~29 k samples/s, ~120 GFLOP/s.)
pub const DEFAULT_GEMM_THRESHOLD: usize = 8;

/// In automatic thread mode, each thread gets at least this many
/// multiply-adds of work (a thread costs tens of microseconds to start).
const MIN_MACS_PER_THREAD: usize = 1 << 19;

/// One thread's reusable buffers.
#[derive(Debug, Default)]
struct Workspace {
    /// GEMV scratch, or GEMM activations (ping).
    a: Vec<f32>,
    /// GEMM activations (pong).
    b: Vec<f32>,
    /// GEMM label embedding.
    e: Vec<f32>,
}

/// Maps batches of z (and labels c) to w with one [`Network`].
///
/// ```
/// let net = stylemap::Network::builtin();
/// let spec = *net.spec();
/// let mut mapper = stylemap::Mapper::new(&net).with_threads(1);
/// let z = vec![0.5f32; 3 * spec.z_dim];
/// let mut w = vec![0.0f32; 3 * spec.w_dim];
/// mapper.map(&z, &[], &mut w)?;
/// # Ok::<(), stylemap::Error>(())
/// ```
#[derive(Debug)]
pub struct Mapper<'n> {
    net: &'n Network,
    threads: usize,
    gemm_threshold: usize,
    work: Vec<Workspace>,
}

impl<'n> Mapper<'n> {
    /// A mapper over `net` using all cores and [`DEFAULT_GEMM_THRESHOLD`].
    pub fn new(net: &'n Network) -> Self {
        Mapper {
            net,
            threads: 0,
            gemm_threshold: DEFAULT_GEMM_THRESHOLD,
            work: Vec::new(),
        }
    }

    /// Sets the number of threads; 0 (the default) means all cores
    /// (`std::thread::available_parallelism`), reduced for batches too small
    /// to be worth a thread. An explicit count is used as given (capped at
    /// the batch size).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Sets the batch size at and above which sgemm is used instead of
    /// per-sample GEMV (0 or 1: always sgemm; `usize::MAX`: never).
    pub fn with_gemm_threshold(mut self, batch: usize) -> Self {
        self.gemm_threshold = batch;
        self
    }

    /// The network.
    pub fn network(&self) -> &'n Network {
        self.net
    }

    /// The configured thread count (0 = automatic).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The GEMM crossover batch size in use.
    pub fn gemm_threshold(&self) -> usize {
        self.gemm_threshold
    }

    /// Number of threads a batch of `n` samples runs on.
    fn threads_for(&self, n: usize) -> usize {
        let t = if self.threads == 0 {
            let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
            let work = n.saturating_mul(self.net.spec().macs().max(1));
            cores.min(work / MIN_MACS_PER_THREAD).max(1)
        } else {
            self.threads
        };
        t.min(n).max(1)
    }

    /// Maps `N = w.len() / w_dim` samples: `w[n] = mapping(z[n], c[n])`.
    ///
    /// `z` is `[N, z_dim]` row-major, `c` is `[N, c_dim]` (empty for an
    /// unconditional network), `w` receives `[N, w_dim]`. Errors, before
    /// anything is written, if a length does not fit or `z`/`c` holds NaN or
    /// an infinity. `N = 0` is allowed and does nothing.
    pub fn map(&mut self, z: &[f32], c: &[f32], w: &mut [f32]) -> Result<(), Error> {
        let s = *self.net.spec();
        if !w.len().is_multiple_of(s.w_dim) {
            return Err(Error::invalid(format!(
                "w has {} elements, not a multiple of w_dim {}",
                w.len(),
                s.w_dim
            )));
        }
        let n = w.len() / s.w_dim;
        let z_expected = n
            .checked_mul(s.z_dim)
            .ok_or(stylemap_core::Error::TooLarge)?;
        if z.len() != z_expected {
            return Err(Error::invalid(format!(
                "z has {} elements, expected {z_expected} ({n} samples x z_dim {})",
                z.len(),
                s.z_dim
            )));
        }
        if s.c_dim == 0 && !c.is_empty() {
            return Err(Error::invalid(format!(
                "the network is unconditional but c has {} elements",
                c.len()
            )));
        }
        let c_expected = n
            .checked_mul(s.c_dim)
            .ok_or(stylemap_core::Error::TooLarge)?;
        if c.len() != c_expected {
            return Err(Error::invalid(format!(
                "c has {} elements, expected {c_expected} ({n} samples x c_dim {})",
                c.len(),
                s.c_dim
            )));
        }
        check_finite("z", z, s.z_dim)?;
        check_finite("c", c, s.c_dim)?;
        if n == 0 {
            return Ok(());
        }
        let gemm = n >= self.gemm_threshold;
        let threads = self.threads_for(n);
        if self.work.len() < threads {
            self.work.resize_with(threads, Workspace::default);
        }
        let net = self.net;
        if threads == 1 {
            return run_chunk(net, z, c, w, &mut self.work[0], gemm);
        }
        let rows = n.div_ceil(threads);
        let mut jobs = Vec::with_capacity(threads);
        let mut rest_w = w;
        for (t, ws) in self.work.iter_mut().enumerate().take(threads) {
            let start = t * rows;
            if start >= n {
                break;
            }
            let end = n.min(start + rows);
            let (w_chunk, tail) = rest_w.split_at_mut((end - start) * s.w_dim);
            rest_w = tail;
            let z_chunk = &z[start * s.z_dim..end * s.z_dim];
            let c_chunk = &c[start * s.c_dim..end * s.c_dim];
            jobs.push((z_chunk, c_chunk, w_chunk, ws));
        }
        std::thread::scope(|scope| {
            let mut jobs = jobs.into_iter();
            let first = jobs.next();
            let handles: Vec<_> = jobs
                .map(|(z, c, w, ws)| scope.spawn(move || run_chunk(net, z, c, w, ws, gemm)))
                .collect();
            let mut result = match first {
                Some((z, c, w, ws)) => run_chunk(net, z, c, w, ws, gemm),
                None => Ok(()),
            };
            for h in handles {
                let r = h
                    .join()
                    .unwrap_or_else(|payload| std::panic::resume_unwind(payload));
                if result.is_ok() {
                    result = r;
                }
            }
            result
        })
    }
}

/// Maps one contiguous chunk of samples on the current thread.
fn run_chunk(
    net: &Network,
    z: &[f32],
    c: &[f32],
    w: &mut [f32],
    ws: &mut Workspace,
    gemm: bool,
) -> Result<(), Error> {
    if gemm {
        return run_gemm(net, z, c, w, ws);
    }
    let s = net.spec();
    let core = net.core();
    if ws.a.len() < s.scratch_len() {
        ws.a.resize(s.scratch_len(), 0.0);
    }
    for (r, w_row) in w.chunks_exact_mut(s.w_dim).enumerate() {
        let z_row = &z[r * s.z_dim..(r + 1) * s.z_dim];
        let c_row = &c[r * s.c_dim..(r + 1) * s.c_dim];
        core.forward(z_row, c_row, &mut ws.a, w_row)?;
    }
    Ok(())
}

/// The GEMM path for one chunk of `w.len() / w_dim` samples.
fn run_gemm(
    net: &Network,
    z: &[f32],
    c: &[f32],
    w: &mut [f32],
    ws: &mut Workspace,
) -> Result<(), Error> {
    let s = net.spec();
    let n = w.len() / s.w_dim;
    let inp = s.input_features();
    let width = inp.max(s.layer_features);
    let len = n.checked_mul(width).ok_or(stylemap_core::Error::TooLarge)?;
    for buf in [&mut ws.a, &mut ws.b] {
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
    }
    let Workspace { a, b, e } = ws;
    for (z_row, x_row) in z.chunks_exact(s.z_dim).zip(a.chunks_exact_mut(inp)) {
        normalize_2nd_moment(z_row, &mut x_row[..s.z_dim]);
    }
    let (embed, layers) = net.core().layers();
    if let Some(layer) = embed {
        let e_len = n * layer.out_features;
        if e.len() < e_len {
            e.resize(e_len, 0.0);
        }
        gemm_bias_act(c, n, &layer, &mut e[..e_len])?;
        let rows = e[..e_len].chunks_exact(layer.out_features);
        for (e_row, x_row) in rows.zip(a.chunks_exact_mut(inp)) {
            normalize_2nd_moment(e_row, &mut x_row[s.z_dim..]);
        }
    }
    let (mut src, mut dst) = (a, b);
    let mut width = inp;
    for (i, layer) in layers.enumerate() {
        let x = &src[..n * width];
        if i + 1 == s.num_layers {
            gemm_bias_act(x, n, &layer, w)?;
        } else {
            let out = n * layer.out_features;
            gemm_bias_act(x, n, &layer, &mut dst[..out])?;
            std::mem::swap(&mut src, &mut dst);
            width = layer.out_features;
        }
    }
    Ok(())
}

/// `y[n, out] = act(x[n, in] · W'ᵀ + b')` for one folded layer.
fn gemm_bias_act(x: &[f32], n: usize, layer: &FoldedLayer<'_>, y: &mut [f32]) -> Result<(), Error> {
    let (inp, out) = (layer.in_features, layer.out_features);
    let shape_err =
        |e: ndarray::ShapeError| Error::invalid(format!("internal GEMM shape error: {e}"));
    let a = ArrayView2::from_shape((n, inp), x).map_err(shape_err)?;
    // W' is [out, in] row-major; its transpose [in, out] is a strided view.
    let bt = ArrayView2::from_shape((out, inp), layer.weight)
        .map_err(shape_err)?
        .reversed_axes();
    {
        let mut c = ArrayViewMut2::from_shape((n, out), &mut *y).map_err(shape_err)?;
        general_mat_mul(1.0, &a, &bt, 0.0, &mut c);
    }
    for row in y.chunks_exact_mut(out) {
        for (v, &b) in row.iter_mut().zip(layer.bias) {
            let t = *v + b;
            *v = match layer.activation {
                Activation::LeakyRelu if t < 0.0 => t * LRELU_SLOPE,
                _ => t,
            };
        }
    }
    Ok(())
}
