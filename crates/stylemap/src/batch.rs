//! [`Mapper`]: z (+ c) -> w for a whole batch, multi-threaded, with buffers
//! reused across calls.
//!
//! Two kinds of kernel compute the same thing:
//!
//! - **GEMV** (batches below the [GEMM threshold](Mapper::gemm_threshold),
//!   i.e. batch 1 by default): the core's SIMD GEMV kernels through a
//!   [`RowPool`]. Each layer's output rows are split between the threads
//!   (the calling thread plus persistent workers started on first use), so
//!   each core streams only its share of the weights. Bit-identical to
//!   [`stylemap_core::MappingNetwork::forward`] per sample, whatever the
//!   thread count.
//! - **Packed GEMM** (the default [`GemmBackend::Packed`]): the core's
//!   register-blocked batched kernels ([`stylemap_core::kernels::gemm`]) on
//!   weights packed once per mapper, so every weight loaded feeds up to 8
//!   samples. One thread runs [`PackedNetwork::forward_batch`]; several
//!   either split each layer's **panels** between the pool's threads
//!   ([`RowMode::Packed`], below the [split threshold](Mapper::split_threshold))
//!   or split the **batch** (each thread runs every layer on its own
//!   samples, no exchange between layers: `RowPool::split_batch` on the
//!   pool's threads, scoped threads if the pool has fewer than the batch
//!   wants). All of these give the same bits: each output is
//!   one FMA accumulator over `k` in order, whichever thread computes it.
//!
//! - **AMX** ([`GemmBackend::Auto`], the default, from
//!   [`DEFAULT_AMX_THRESHOLD`] samples where [`Mapper::amx_usable`]; or
//!   forced with [`GemmBackend::Amx`]): f32 layers on AMX tiles
//!   ([`stylemap_core::kernels::amx`]), 1.3-1.6x the packed kernels at
//!   B >= 32 on the project's machine. Several threads split each layer's
//!   column blocks in the pool ([`RowMode::Amx`]) below
//!   [`DEFAULT_AMX_SPLIT_THRESHOLD`], the batch from there. Same f32
//!   accuracy (numeric contract §3c), other bits than the FMA kernels;
//!   bit-identical to [`AmxNetwork::forward_batch`] whatever the thread
//!   count.
//!
//! [`GemmBackend::Sgemm`] swaps the packed kernels for one
//! `matrixmultiply::sgemm` per layer (through ndarray's safe
//! `general_mat_mul`), the batch split between scoped threads: the baseline
//! the packed kernels are measured against.
//!
//! The kinds differ only by f32 summation order (the numeric contract's §3
//! bounds every pair). With the default thresholds the path depends on the
//! batch size only, so the result for a batch does not depend on the thread
//! count.
//!
//! The kernel is the network's ([`Network::kernel`]), which honours
//! `STYLEMAP_KERNEL` ([`crate::network::kernel_from_env`]).

use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use stylemap_core::fold::FoldedLayer;
use stylemap_core::kernels::amx::AmxNetwork;
use stylemap_core::kernels::gemm::PackedNetwork;
use stylemap_core::network::normalize_2nd_moment;
use stylemap_core::spec::{Activation, LRELU_SLOPE};
use stylemap_core::{Error as CoreError, Kernel, MappingSpec};

use crate::bigbuf::BigBuf;
use crate::error::{Error, check_finite};
use crate::network::Network;
use crate::pool::{ROW_BLOCK, RowMode, RowPool, SplitNet};

/// Default batch size at and above which [`Mapper`] switches from the GEMV
/// kernels to the packed GEMM kernels, on any number of threads.
///
/// Measured with `cargo run --release -p stylemap --example crossover` on the
/// built-in 8x512 network (AVX-512 kernels, the project's 2-core machine,
/// idle; the table is in `BENCHMARKS.md`), µs per sample: on one thread the
/// packed kernel beats the GEMV kernel 1.34x at B = 2 (155.8 vs 208.6) and
/// 1.64x at B = 3, and is 3.5% slower at B = 1 (307.9 vs 297.4), where both
/// stream the weights once; on two threads, rows split either way, it wins
/// from B = 2 too (77.2 vs 104.7).
pub const DEFAULT_GEMM_THRESHOLD: usize = 2;

/// Default batch size at and above which the packed GEMM path splits the
/// batch between threads instead of each layer's rows (see
/// [`Mapper::with_split_threshold`]).
///
/// Measured with `examples/crossover.rs` (2 threads, AVX-512, built-in
/// network, median of 9 interleaved rounds, µs per sample): splitting rows
/// wins up to B = 8 (23.4 vs 27.9), splitting the batch from B = 16 (17.1
/// vs 20.2; 14.1 vs 17.0 at B = 64), since the batch split runs on the
/// pool's persistent threads (`RowPool::split_batch`); with a thread
/// started per call it only won from B = 64.
pub const DEFAULT_SPLIT_THRESHOLD: usize = 16;

/// In automatic thread mode, each thread gets at least this many
/// multiply-adds of work (a thread costs tens of microseconds to start).
const MIN_MACS_PER_THREAD: usize = 1 << 19;

/// The AMX path gives each thread at least this many samples (one block
/// of 32 rows): fewer leave the tile unit idle and stream every weight per
/// thread for nothing.
const AMX_ROWS_PER_THREAD: usize = 32;

/// In automatic thread mode, the row pool splits rows between threads only
/// if each gets at least this many multiply-adds per sample (a pooled
/// forward pays ~0.2-0.4 µs per layer in barriers and activation exchange).
const POOL_MIN_MACS_PER_THREAD: usize = 1 << 17;

/// Default batch size at and above which [`GemmBackend::Auto`] runs the
/// AMX kernel ([`stylemap_core::kernels::amx`]) where it is available.
///
/// Measured with `examples/crossover.rs` (built-in network, the 2-core
/// AVX-512 + AMX Xeon, µs per sample): see `BENCHMARKS.md`.
pub const DEFAULT_AMX_THRESHOLD: usize = 32;

/// Default batch size at and above which the AMX path splits the batch
/// between threads instead of each layer's column blocks (see
/// [`Mapper::with_split_threshold`]): measured like
/// [`DEFAULT_SPLIT_THRESHOLD`] (16.3 vs 17.6 at B = 40, 20.2 vs 14.7 at
/// B = 32, where each thread would run half a block of 32 rows), table in
/// `BENCHMARKS.md`.
pub const DEFAULT_AMX_SPLIT_THRESHOLD: usize = 40;

/// Default largest batch whose batch split runs on the pool's persistent
/// threads (`RowPool::split_batch`); larger batches start scoped threads
/// (see [`Mapper::with_pool_split_max`]).
///
/// The pool saves a thread start per call (~50 µs, ~77 µs with the first
/// AMX instruction of a new thread) but copies the workers' z in and w out
/// through its shared buffers; scoped threads read and write in place.
/// Measured with `examples/crossover.rs` (2 threads, built-in network,
/// table in `BENCHMARKS.md`).
pub const DEFAULT_POOL_SPLIT_MAX: usize = 256;

/// Which batched kernel the GEMM path runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GemmBackend {
    /// The AMX kernel ([`GemmBackend::Amx`]) for batches of at least
    /// [`DEFAULT_AMX_THRESHOLD`] where it can run and the network's kernel
    /// is AVX-512 (forcing another kernel with `STYLEMAP_KERNEL` turns it
    /// off), else the packed kernels ([`GemmBackend::Packed`]).
    #[default]
    Auto,
    /// The core's packed batched kernels ([`stylemap_core::kernels::gemm`]),
    /// weights packed once per mapper: faster than sgemm at every batch size
    /// measured (see `BENCHMARKS.md`), and bit-identical to the core's
    /// [`PackedNetwork::forward_batch`].
    Packed,
    /// f32 layers on AMX tiles, each operand split exactly into three bf16
    /// parts ([`stylemap_core::kernels::amx`]): f32 accuracy (numeric
    /// contract §3c), not bit-identical to the FMA kernels. The batch is
    /// split between threads. Mapping errors with
    /// [`stylemap_core::Error::KernelUnavailable`] where AMX cannot run.
    Amx,
    /// `matrixmultiply::sgemm` on the folded weights, one call per layer
    /// (kept as a baseline and for comparison).
    Sgemm,
}

/// One thread's reusable GEMM buffers.
#[derive(Debug, Default)]
struct Workspace {
    /// Packed path: [`PackedNetwork::forward_batch`] scratch.
    scratch: Vec<f32>,
    /// GEMM activations (ping).
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
    /// `None`: the default for the GEMV thread count.
    gemm_threshold: Option<usize>,
    /// `None`: the default for the thread count.
    split_threshold: Option<usize>,
    /// Largest batch split on the pool's threads.
    pool_split_max: usize,
    backend: GemmBackend,
    work: Vec<Workspace>,
    /// The row-split pool, started on first use and kept (its threads live
    /// as long as the mapper, or until the thread count changes).
    pool: Option<RowPool>,
    /// The weights packed for the batched kernels, built on first use and
    /// shared with the pool's threads.
    packed: Option<Arc<PackedNetwork<BigBuf<f32>>>>,
    /// The weights packed for the AMX kernel, built on first use.
    amx: Option<Arc<AmxNetwork<BigBuf<u32>>>>,
}

impl<'n> Mapper<'n> {
    /// A mapper over `net` using all cores and the default GEMM threshold
    /// (see [`gemm_threshold`](Self::gemm_threshold)).
    pub fn new(net: &'n Network) -> Self {
        Mapper {
            net,
            threads: 0,
            gemm_threshold: None,
            split_threshold: None,
            pool_split_max: DEFAULT_POOL_SPLIT_MAX,
            backend: GemmBackend::Auto,
            work: Vec::new(),
            pool: None,
            packed: None,
            amx: None,
        }
    }

    /// Sets the number of threads; 0 (the default) means all cores
    /// (`std::thread::available_parallelism`), reduced for networks or
    /// batches too small to be worth a thread. An explicit count is used as
    /// given, capped where rows are split at the number of 16-row blocks of
    /// the widest layer, and where the batch is split at the batch size.
    ///
    /// The row pool's worker threads are started by the first call that
    /// needs them and kept until the mapper is dropped (or this is called
    /// again).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self.pool = None;
        self
    }

    /// Sets the batch size at and above which the GEMM kernels are used
    /// instead of the GEMV kernels (0 or 1: always GEMM; `usize::MAX`:
    /// never).
    pub fn with_gemm_threshold(mut self, batch: usize) -> Self {
        self.gemm_threshold = Some(batch);
        self
    }

    /// Sets the batch size at and above which the packed GEMM and AMX
    /// paths split the **batch** between threads (each running every layer
    /// on its own samples) rather than each layer's rows (threads
    /// exchanging activations after every layer); the defaults are
    /// [`DEFAULT_SPLIT_THRESHOLD`] and [`DEFAULT_AMX_SPLIT_THRESHOLD`]. Only
    /// matters with more than one thread; the result is the same bits
    /// either way.
    pub fn with_split_threshold(mut self, batch: usize) -> Self {
        self.split_threshold = Some(batch);
        self
    }

    /// Sets the largest batch whose batch split runs on the pool's
    /// persistent threads (default [`DEFAULT_POOL_SPLIT_MAX`]); larger
    /// batches, and any batch that wants more threads than the pool has,
    /// start scoped threads per call. The result is the same bits either
    /// way.
    pub fn with_pool_split_max(mut self, batch: usize) -> Self {
        self.pool_split_max = batch;
        self
    }

    /// Selects the batched kernel of the GEMM path.
    pub fn with_gemm_backend(mut self, backend: GemmBackend) -> Self {
        self.backend = backend;
        self
    }

    /// The batched kernel of the GEMM path.
    pub fn gemm_backend(&self) -> GemmBackend {
        self.backend
    }

    /// The batch-split threshold in use (see
    /// [`with_split_threshold`](Self::with_split_threshold)).
    pub fn split_threshold(&self) -> usize {
        self.split_threshold.unwrap_or(DEFAULT_SPLIT_THRESHOLD)
    }

    /// The network.
    pub fn network(&self) -> &'n Network {
        self.net
    }

    /// The configured thread count (0 = automatic).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The GEMM crossover batch size in use: the one set with
    /// [`with_gemm_threshold`](Self::with_gemm_threshold), else
    /// [`DEFAULT_GEMM_THRESHOLD`].
    pub fn gemm_threshold(&self) -> usize {
        self.gemm_threshold.unwrap_or(DEFAULT_GEMM_THRESHOLD)
    }

    /// The GEMV kernel in use: the network's ([`Network::kernel`], which
    /// honours `STYLEMAP_KERNEL`, see [`crate::network::kernel_from_env`]).
    pub fn kernel(&self) -> Kernel {
        self.net.kernel()
    }

    /// Threads (the caller included) that the row pool splits each layer's
    /// rows between; see [`with_threads`](Self::with_threads).
    pub fn gemv_threads(&self) -> usize {
        let s = self.net.spec();
        let auto = || cores().min(s.macs() / POOL_MIN_MACS_PER_THREAD);
        crate::pool::split_threads(s, self.threads, auto, ROW_BLOCK)
    }

    /// Number of threads a batch of `n` samples runs on.
    fn threads_for(&self, n: usize) -> usize {
        let t = if self.threads == 0 {
            let cores = cores();
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
    /// an infinity; errors with [`stylemap_core::Error::Overflow`] (`w`'s
    /// contents then unspecified) if every input was finite but a value
    /// overflowed f32 on the way, like the core's forward. `N = 0` is allowed
    /// and does nothing.
    pub fn map(&mut self, z: &[f32], c: &[f32], w: &mut [f32]) -> Result<(), Error> {
        let s = *self.net.spec();
        let n = check_batch(&s, z, c, w)?;
        if n == 0 {
            return Ok(());
        }
        if n < self.gemm_threshold() {
            return self.pool(false)?.forward(z, c, w, RowMode::Gemv);
        }
        let backend = match self.backend {
            GemmBackend::Auto if self.runs_amx(n) => GemmBackend::Amx,
            GemmBackend::Auto => GemmBackend::Packed,
            b => b,
        };
        match backend {
            GemmBackend::Sgemm => self.run_gemm_path(z, c, w)?,
            GemmBackend::Amx => {
                let rows_split = self.split_threshold.unwrap_or(DEFAULT_AMX_SPLIT_THRESHOLD);
                if self.gemv_threads() > 1 && n < rows_split {
                    return self.pool(true)?.forward(z, c, w, RowMode::Amx);
                }
                let threads = self.threads_for(n.div_ceil(AMX_ROWS_PER_THREAD));
                self.run_batch_split(SplitNet::Amx, z, c, w, threads)?;
            }
            GemmBackend::Auto | GemmBackend::Packed => {
                let threads = self.threads_for(n);
                if threads > 1 && n < self.split_threshold() {
                    return self.pool(false)?.forward(z, c, w, RowMode::Packed);
                }
                self.run_batch_split(SplitNet::Packed, z, c, w, threads)?;
            }
        }
        check_overflow(w, s.w_dim)
    }

    /// `net` on the batch split between `threads`: on the pool's threads
    /// when there are enough of them and the batch is at most
    /// `pool_split_max`, else on scoped threads. Does not check `w` for
    /// overflow.
    fn run_batch_split(
        &mut self,
        net: SplitNet,
        z: &[f32],
        c: &[f32],
        w: &mut [f32],
        threads: usize,
    ) -> Result<(), Error> {
        let n = w.len() / self.net.spec().w_dim;
        if threads > 1 && threads <= self.gemv_threads() && n <= self.pool_split_max {
            return self
                .pool(net == SplitNet::Amx)?
                .split_batch(z, c, w, net, threads);
        }
        match net {
            SplitNet::Amx => {
                let amx = self.amx()?;
                let len = |b| amx.scratch_len(b);
                let fwd = |z: &_, c: &_, b, s: &mut _, w: &mut _| amx.forward_batch(z, c, b, s, w);
                self.run_split(len, fwd, z, c, w, threads)
            }
            SplitNet::Packed => {
                let packed = self.packed()?;
                let len = |b| packed.scratch_len(b);
                let fwd =
                    |z: &_, c: &_, b, s: &mut _, w: &mut _| packed.forward_batch(z, c, b, s, w);
                self.run_split(len, fwd, z, c, w, threads)
            }
        }
    }

    /// Whether a batch of `n` samples runs the AMX kernel (with
    /// [`GemmBackend::Amx`], every batch that takes the GEMM path; with
    /// [`GemmBackend::Auto`], from [`DEFAULT_AMX_THRESHOLD`] samples where
    /// [`amx_usable`](Self::amx_usable)).
    pub fn runs_amx(&self, n: usize) -> bool {
        n >= self.gemm_threshold()
            && match self.backend {
                GemmBackend::Amx => true,
                GemmBackend::Auto => n >= DEFAULT_AMX_THRESHOLD && self.amx_usable(),
                GemmBackend::Packed | GemmBackend::Sgemm => false,
            }
    }

    /// Whether [`GemmBackend::Auto`] may run the AMX kernel: it can run
    /// here and the network's kernel is AVX-512 (not forced to another).
    pub fn amx_usable(&self) -> bool {
        self.net.kernel() == Kernel::Avx512 && stylemap_core::kernels::amx::is_available()
    }

    /// The weights packed for the AMX kernel (packed on first use).
    fn amx(&mut self) -> Result<Arc<AmxNetwork<BigBuf<u32>>>, Error> {
        if let Some(p) = &self.amx {
            return Ok(Arc::clone(p));
        }
        let p = Arc::new(crate::pool::pack_amx(self.net)?);
        self.amx = Some(Arc::clone(&p));
        Ok(p)
    }

    /// The weights packed for the batched kernels (packed on first use).
    fn packed(&mut self) -> Result<Arc<PackedNetwork<BigBuf<f32>>>, Error> {
        if let Some(p) = &self.packed {
            return Ok(Arc::clone(p));
        }
        let p = Arc::new(crate::pool::pack(self.net)?);
        self.packed = Some(Arc::clone(&p));
        Ok(p)
    }

    /// The row-split pool for [`gemv_threads`](Self::gemv_threads) threads,
    /// rebuilt with the AMX kernel's weights the first time `with_amx` asks
    /// for them (so batch-1 users never pack them).
    fn pool(&mut self, with_amx: bool) -> Result<&mut RowPool, Error> {
        let t = self.gemv_threads();
        let fits = |p: &RowPool| p.threads() == t && (p.has_amx() || !with_amx);
        if !matches!(&self.pool, Some(p) if fits(p)) {
            let with_amx = with_amx || self.pool.as_ref().is_some_and(RowPool::has_amx);
            self.pool = None; // join the old threads first
            let packed = self.packed()?;
            let amx = if with_amx { Some(self.amx()?) } else { None };
            self.pool = Some(RowPool::with_amx(self.net, t, packed, amx)?);
        }
        Ok(self.pool.as_mut().expect("the pool was just built"))
    }

    /// A core network's batched forward (`forward(z, c, batch, scratch, w)`,
    /// needing `scratch_len(batch)` floats of scratch) with the batch split
    /// into `threads` contiguous parts (the calling thread takes the first).
    fn run_split(
        &mut self,
        scratch_len: impl Fn(usize) -> usize + Sync,
        forward: impl Fn(&[f32], &[f32], usize, &mut [f32], &mut [f32]) -> Result<(), CoreError> + Sync,
        z: &[f32],
        c: &[f32],
        w: &mut [f32],
        threads: usize,
    ) -> Result<(), Error> {
        let s = *self.net.spec();
        if self.work.len() < threads {
            self.work.resize_with(threads, Workspace::default);
        }
        let run = |z: &[f32], c: &[f32], w: &mut [f32], ws: &mut Workspace| {
            let b = w.len() / s.w_dim;
            let need = scratch_len(b);
            if ws.scratch.len() < need {
                ws.scratch.resize(need, 0.0);
            }
            Ok(forward(z, c, b, &mut ws.scratch, w)?)
        };
        split_batch(&s, z, c, w, &mut self.work[..threads], run)
    }

    /// The sgemm path: the batch split between threads, one sgemm per layer.
    fn run_gemm_path(&mut self, z: &[f32], c: &[f32], w: &mut [f32]) -> Result<(), Error> {
        let s = *self.net.spec();
        let threads = self.threads_for(w.len() / s.w_dim);
        if self.work.len() < threads {
            self.work.resize_with(threads, Workspace::default);
        }
        let net = self.net;
        let run =
            |z: &[f32], c: &[f32], w: &mut [f32], ws: &mut Workspace| run_gemm(net, z, c, w, ws);
        split_batch(&s, z, c, w, &mut self.work[..threads], run)
    }
}

/// Runs `run(z, c, w, work)` on `work.len()` contiguous parts of the batch
/// `z [N, z_dim]`, `c [N, c_dim]`, `w [N, w_dim]` (fewer if N is smaller),
/// the calling thread taking the first and scoped threads the others.
/// Returns the first error; a panic on a thread is resumed here.
pub(crate) fn split_batch<W: Send>(
    s: &MappingSpec,
    z: &[f32],
    c: &[f32],
    w: &mut [f32],
    work: &mut [W],
    run: impl Fn(&[f32], &[f32], &mut [f32], &mut W) -> Result<(), Error> + Sync,
) -> Result<(), Error> {
    let n = w.len() / s.w_dim;
    let rows = n.div_ceil(work.len().max(1)).max(1);
    let mut jobs = Vec::with_capacity(work.len());
    let mut rest_w = w;
    for (t, ws) in work.iter_mut().enumerate() {
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
    let mut jobs = jobs.into_iter();
    let Some((z0, c0, w0, ws0)) = jobs.next() else {
        return Ok(());
    };
    let run = &run;
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .map(|(z, c, w, ws)| scope.spawn(move || run(z, c, w, ws)))
            .collect();
        let mut result = run(z0, c0, w0, ws0);
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

/// `f(item)` for every item, each on its own scoped thread, the results in
/// order; a panic on a thread is resumed here.
pub(crate) fn par_map<T: Send, R: Send>(
    items: impl IntoIterator<Item = T>,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| scope.spawn(move || f(item)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
            })
            .collect()
    })
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
    let Workspace { a, b, e, .. } = ws;
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

/// Checks the buffers of a batch `z [N, z_dim]`, `c [N, c_dim]`,
/// `w [N, w_dim]` and returns `N`; errors (naming the problem) on a length
/// that does not fit or a non-finite `z`/`c`.
pub(crate) fn check_batch(
    s: &MappingSpec,
    z: &[f32],
    c: &[f32],
    w: &[f32],
) -> Result<usize, Error> {
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
    Ok(n)
}

/// As [`stylemap_core::MappingNetwork::forward`]: with finite inputs (checked
/// already), a non-finite w can only be an f32 overflow in flight; the error
/// gives its index within the first sample that has one.
pub(crate) fn check_overflow(w: &[f32], w_dim: usize) -> Result<(), Error> {
    for row in w.chunks_exact(w_dim) {
        if let Some(index) = row.iter().position(|v| !v.is_finite()) {
            return Err(stylemap_core::Error::Overflow {
                what: stylemap_core::Operand::W,
                index,
            }
            .into());
        }
    }
    Ok(())
}

/// `std::thread::available_parallelism`, looked up once (it may read cgroup
/// files, which allocates).
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
}
