//! [`RowPool`]: a persistent worker pool that runs the GEMV forward with
//! each layer's **output rows** split between threads, so each core streams
//! only its share of the weights (batch 1 is bound by L3 read bandwidth, and
//! two cores read about twice as fast as one).
//!
//! # Design
//!
//! - **Threads are created once**, by [`RowPool::new`], and joined when the
//!   pool is dropped. The calling thread is participant 0 and computes its
//!   own share; `threads - 1` workers compute the others.
//! - **Row split.** Layer `l`'s `out` rows are cut into blocks of
//!   [`ROW_BLOCK`] (16, a multiple of every GEMV kernel's row blocking;
//!   more where a batched kernel's panels are wider) and the blocks are
//!   dealt out in contiguous, balanced ranges, one per participant.
//! - **Row sources.** What computes a participant's rows is a [`RowSource`]:
//!   the GEMV kernels on the folded row-major weights ([`RowMode::Gemv`]),
//!   the packed batched kernels on whole panels ([`RowMode::Packed`]), or
//!   any other layout (reduced-precision packs). Sources are shared
//!   (`Arc`), read-only: the pool keeps one copy of the f32 weights in each
//!   layout, whatever the thread count.
//! - **Bit-identical to one thread.** The core's kernels compute each output
//!   row from that row, the input and the bias only (see the determinism note
//!   in `stylemap_core::kernels`), so computing rows `r0..r1` from the
//!   matching slice of the weights gives the same bits as the whole layer.
//!   Normalisation and the label embedding run on the caller with the same
//!   functions as [`MappingNetwork::forward`](stylemap_core::MappingNetwork::forward).
//! - **Sharing activations without `unsafe`.** Two shared buffers of
//!   `AtomicU64` (pairs of f32 bits: half the atomic operations of one
//!   `AtomicU32` per value), 64-byte aligned, hold the activations; layer `l`
//!   reads buffer `l % 2` and writes buffer `(l + 1) % 2`. After its GEMV
//!   each participant stores its rows with `Relaxed` stores, arrives at the
//!   barrier (a `SeqCst` store, which is also a release), waits (`Acquire`
//!   loads), then loads the other participants' rows with `Relaxed` loads into
//!   its private, contiguous `f32` input for the next layer. Double buffering
//!   makes one barrier per layer enough: to overwrite a buffer a thread must
//!   have passed the barrier that every thread reaches only after it finished
//!   reading that buffer. Row ranges start on 16-float (64-byte) boundaries,
//!   so two threads never write the same cache line. Both copies first touch
//!   one value per cache line, so all the lines' transfers between cores are
//!   in flight at once rather than a store buffer's (or load window's) worth.
//! - **Barrier.** Each participant owns a cache-padded epoch counter; arriving
//!   stores `epoch + 1`, waiting reads the others' counters until they all
//!   reach it (no read-modify-write, one cache-line transfer each way for
//!   two threads). A waiter spins for [`SPIN`] (only while no more threads
//!   than cores are in the pool), then yields until [`SPIN_AND_YIELD`] has
//!   passed, then sleeps on a `Condvar`; an arriver wakes sleepers only if
//!   a sleeper count (checked after its `SeqCst` store, Dekker style) says
//!   there are any, so the hot path makes no system call. A forward of
//!   `L` layers takes `L + 1` barriers (the start, then one per layer).
//!   Between calls the workers wait at the start barrier, so back-to-back
//!   calls find them spinning; after ~[`SPIN_AND_YIELD`] idle they sleep and
//!   the next call pays a wake-up (tens of µs).
//! - **Batches** of `N > 1` samples run layer by layer in chunks of up to
//!   [`CHUNK`] samples ([`GEMM_CHUNK`] in [`RowMode::Packed`]): each thread
//!   runs its rows for every sample of the chunk before the barrier, so its
//!   share of a layer's weights is read from L3 once per chunk.
//! - **Batch split** (`RowPool::split_batch`, what [`crate::Mapper`] runs
//!   for large batches): each participant runs the whole network on its
//!   own contiguous samples, up to [`SPLIT_ROWS`] per pass, with two
//!   barriers per pass and no exchange between layers. The workers' z and
//!   c go in through the shared buffers and their w comes back the same
//!   way. This replaced scoped threads, whose start and join cost ~50 µs
//!   per call (~77 µs with the new thread's first AMX instruction, which
//!   traps to the OS to allocate the tile state): 12-13 % of a 2-thread
//!   batch of 64 on the AMX path (~650 µs).
//! - **Failure.** If a worker panics (a bug), or the caller unwinds in the
//!   middle of a forward, the pool is marked broken: every waiter returns,
//!   and every later call returns an error instead of hanging.
//!
//! No allocation happens per call: every buffer is sized at construction.
//!
//! # Cost
//!
//! Measured on the 2-core x86-64 dev machine (KVM, AVX-512 kernel, release
//! build, otherwise idle machine):
//!
//! - A barrier between two spinning threads: 0.18–0.28 µs per round trip.
//! - A barrier plus the exchange of one 512-float layer (256 floats stored,
//!   256 loaded from the other core): 0.51–0.54 µs with the line-at-a-time
//!   first pass described above, 0.72–0.90 µs
//!   without. On one thread, storing and loading 256 floats each through the
//!   atomics takes ~0.18 µs against ~0.015 µs for two `copy_from_slice`
//!   (measured with one `AtomicU32` per value; pairs halve the operations);
//!   the rest is the cache-line transfer between cores, which any sharing
//!   scheme pays.
//! - So ~9 barrier-and-exchange steps cost ~5 µs of a forward. The built-in
//!   8x512 network at batch 1: ~285–295 µs on one thread, 146–155 µs
//!   (median of 200–1000 calls) on two, against a bound of ~139–142 µs from
//!   the two-core L3 read bandwidth (~59 GB/s for 8.4 MB of weights).
//!   Per-batch numbers are at [`crate::batch::DEFAULT_GEMM_THRESHOLD`].

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use stylemap_core::kernels::amx::{self, AmxNetwork};
use stylemap_core::kernels::gemm::{
    PackedNetwork, gemm_packed_bias_act, gemm_packed_bias_act_then,
};
use stylemap_core::kernels::gemv_bias_act;
use stylemap_core::network::normalize_2nd_moment;
use stylemap_core::spec::Activation;
use stylemap_core::{Error as CoreError, Kernel, MappingNetwork, MappingSpec};

use crate::bigbuf::BigBuf;
use crate::error::Error;
use crate::network::Network;

/// Rows are split between threads in blocks of this many (a multiple of the
/// row blocking of every kernel, and 64 bytes of f32 output).
pub const ROW_BLOCK: usize = 16;

/// Samples per pass through the layers in [`RowMode::Gemv`]. Larger batches
/// run in chunks.
pub const CHUNK: usize = 16;

/// Samples per pass through the layers in [`RowMode::Packed`]: the shared
/// buffers hold this many activation vectors. Each pass reads every weight
/// once, so larger chunks read less per sample; 64 keeps the two activation
/// buffers (2 x 128 KiB for 512-wide layers) in L2 beside a thread's half
/// of a layer (512 KiB).
pub const GEMM_CHUNK: usize = 64;

/// Samples per participant per pass of a batch split
/// (`RowPool::split_batch`): the AMX network's own batch chunk, so a
/// participant's row blocks reuse each layer's weights from L2 as they do
/// on one thread.
pub const SPLIT_ROWS: usize = stylemap_core::kernels::amx::AMX_BATCH_CHUNK;

/// Which network a batch split (`RowPool::split_batch`) runs on each
/// participant's samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SplitNet {
    /// [`PackedNetwork::forward_batch`].
    Packed,
    /// [`AmxNetwork::forward_batch`].
    Amx,
}

impl SplitNet {
    /// The shared mode byte of a split pass (after the [`RowMode`]s).
    fn index(self) -> u8 {
        match self {
            SplitNet::Packed => 3,
            SplitNet::Amx => 4,
        }
    }

    /// The split whose mode byte is `mode`, if it is one.
    fn from_index(mode: u8) -> Option<SplitNet> {
        [SplitNet::Packed, SplitNet::Amx]
            .into_iter()
            .find(|n| n.index() == mode)
    }
}

/// How each participant computes its rows of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowMode {
    /// Per sample, the network's GEMV kernel on row-major weights:
    /// bit-identical to [`MappingNetwork::forward`](stylemap_core::MappingNetwork::forward).
    Gemv,
    /// The whole chunk at once, the packed batched kernel
    /// ([`stylemap_core::kernels::gemm`]) on the participant's panels:
    /// bit-identical to [`PackedNetwork::forward_batch`].
    Packed,
    /// The whole chunk at once, the AMX kernel
    /// ([`stylemap_core::kernels::amx`]) on the participant's column
    /// blocks: bit-identical to [`AmxNetwork::forward_batch`]. Needs a pool
    /// built with an AMX source ([`RowPool::new_with_amx`]).
    Amx,
}

impl RowMode {
    fn index(self) -> u8 {
        match self {
            RowMode::Gemv => 0,
            RowMode::Packed => 1,
            RowMode::Amx => 2,
        }
    }
}

/// How long a barrier waiter spins before it starts yielding (only when the
/// pool has no more threads than the machine has cores; otherwise it yields
/// at once).
///
/// Short on purpose: when another process keeps one core busy, the OS may
/// run two participants on the same core, and then every barrier costs the
/// spin (measured with 30 µs: ~32 µs per barrier, 2 ms for a 64-layer toy
/// network). Yielding hands the core to the other participant, and costs
/// only a system call when nothing else is runnable.
pub const SPIN: Duration = Duration::from_micros(5);

/// How long a barrier waiter busy-waits in all (spinning, then
/// `thread::yield_now`) before it sleeps on a condition variable.
pub const SPIN_AND_YIELD: Duration = Duration::from_micros(200);

/// Iterations of the first, clock-free spin (`spin_loop` + a check each).
const QUICK_SPINS: u32 = 64;

/// Elements per cache line of the shared buffers.
const LANES: usize = 16;

/// A value alone in its cache lines (128 bytes: the adjacent-line
/// prefetcher pulls pairs of lines).
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

/// 16 f32 values in one 64-byte cache line, as 8 pairs of bits (value
/// `2i` in the low half of slot `i`): half the atomic operations of one
/// slot per value.
#[repr(align(64))]
#[derive(Default)]
struct Line([AtomicU64; LANES / 2]);

impl Line {
    /// Stores `vals` (at most [`LANES`]) from the line's start.
    #[inline(always)]
    fn store(&self, vals: &[f32]) {
        if let Ok(v) = <&[f32; LANES]>::try_from(vals) {
            for (i, slot) in self.0.iter().enumerate() {
                slot.store(pair(v[2 * i], v[2 * i + 1]), Ordering::Relaxed);
            }
            return;
        }
        for (slot, p) in self.0.iter().zip(vals.chunks(2)) {
            slot.store(
                pair(p[0], p.get(1).copied().unwrap_or(0.0)),
                Ordering::Relaxed,
            );
        }
    }

    /// Loads `vals.len()` (at most [`LANES`]) values from the line's start.
    #[inline(always)]
    fn load(&self, vals: &mut [f32]) {
        if let Ok(v) = <&mut [f32; LANES]>::try_from(&mut *vals) {
            for (i, slot) in self.0.iter().enumerate() {
                let bits = slot.load(Ordering::Relaxed);
                v[2 * i] = f32::from_bits(bits as u32);
                v[2 * i + 1] = f32::from_bits((bits >> 32) as u32);
            }
            return;
        }
        for (slot, p) in self.0.iter().zip(vals.chunks_mut(2)) {
            let bits = slot.load(Ordering::Relaxed);
            p[0] = f32::from_bits(bits as u32);
            if let Some(hi) = p.get_mut(1) {
                *hi = f32::from_bits((bits >> 32) as u32);
            }
        }
    }
}

/// Two f32 as one u64, `lo` in the low half.
#[inline(always)]
fn pair(lo: f32, hi: f32) -> u64 {
    u64::from(lo.to_bits()) | u64::from(hi.to_bits()) << 32
}

/// The pool was broken by a panic (or is shutting down).
#[derive(Debug)]
struct Aborted;

/// An epoch-flag barrier for a fixed set of participants with spin, yield
/// and sleep phases.
struct Barrier {
    /// `flags[i]`: the number of barriers participant `i` has arrived at.
    flags: Box<[Padded<AtomicU64>]>,
    /// Participants sleeping (or about to) on `cv`.
    sleepers: Padded<AtomicUsize>,
    /// Set when the pool is dropped or broken: every wait returns.
    abort: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
    /// Pure spinning allowed before yielding.
    spin: Duration,
}

impl Barrier {
    fn new(participants: usize, spin: Duration) -> Barrier {
        Barrier {
            flags: (0..participants).map(|_| Padded::default()).collect(),
            sleepers: Padded::default(),
            abort: AtomicBool::new(false),
            lock: Mutex::new(()),
            cv: Condvar::new(),
            spin,
        }
    }

    /// Whether every participant but `me` has arrived at barrier `epoch`.
    #[inline]
    fn ready(&self, me: usize, epoch: u64, order: Ordering) -> bool {
        self.flags
            .iter()
            .enumerate()
            .all(|(i, f)| i == me || f.0.load(order) >= epoch)
    }

    /// Arrives at the next barrier and waits for everyone else.
    ///
    /// Memory written (even `Relaxed`) by any participant before it arrived
    /// is visible to every participant after this returns.
    #[inline]
    fn sync(&self, me: usize, epoch: &mut u64) -> Result<(), Aborted> {
        *epoch += 1;
        let e = *epoch;
        // SeqCst: a release for the data, and ordered before the sleeper
        // check below (the waiter does the mirror image in `sleep`).
        self.flags[me].0.store(e, Ordering::SeqCst);
        if self.sleepers.0.load(Ordering::SeqCst) != 0 {
            self.wake_all();
        }
        for _ in 0..QUICK_SPINS {
            if self.ready(me, e, Ordering::Acquire) {
                return Ok(());
            }
            std::hint::spin_loop();
        }
        self.wait_slow(me, e)
    }

    #[cold]
    fn wait_slow(&self, me: usize, e: u64) -> Result<(), Aborted> {
        let start = Instant::now();
        loop {
            if self.ready(me, e, Ordering::Acquire) {
                return Ok(());
            }
            if self.abort.load(Ordering::Relaxed) {
                return Err(Aborted);
            }
            let waited = start.elapsed();
            if waited < self.spin {
                for _ in 0..QUICK_SPINS {
                    std::hint::spin_loop();
                }
            } else if waited < SPIN_AND_YIELD {
                thread::yield_now();
            } else {
                return self.sleep(me, e);
            }
        }
    }

    /// Sleeps on the condition variable until barrier `e` is complete.
    fn sleep(&self, me: usize, e: u64) -> Result<(), Aborted> {
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.sleepers.0.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            // SeqCst loads: either this sees an arriver's flag, or that
            // arriver (whose flag store precedes its sleeper check) sees us
            // and notifies under the lock we hold until `wait` releases it.
            if self.ready(me, e, Ordering::SeqCst) {
                break Ok(());
            }
            if self.abort.load(Ordering::SeqCst) {
                break Err(Aborted);
            }
            guard = self.cv.wait(guard).unwrap_or_else(PoisonError::into_inner);
        };
        self.sleepers.0.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn wake_all(&self) {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.cv.notify_all();
    }

    /// Breaks the barrier for good: every current and future wait returns
    /// [`Aborted`].
    fn abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    fn is_aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }
}

/// Breaks the barrier if dropped while unwinding (a panic on a worker, or on
/// the caller in the middle of a forward), so no participant waits forever.
struct AbortOnUnwind<'a>(&'a Barrier);

impl Drop for AbortOnUnwind<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.abort();
        }
    }
}

/// Everything the participants share.
struct Shared {
    barrier: Barrier,
    /// Samples in the current pass (written by the caller before the start
    /// barrier).
    batch: Padded<AtomicUsize>,
    /// The current pass's [`RowMode::index`] or [`SplitNet::index`]
    /// (written with `batch`).
    mode: AtomicU8,
    /// Participants with samples in a split pass (written with `batch`).
    parts: AtomicUsize,
    /// The first error a participant met in a split pass (a bug: the
    /// caller checked every input), reported by the caller.
    failed: Mutex<Option<CoreError>>,
    /// Activation buffers `[slots][stride_lines]` (ping-pong); in a split
    /// pass, buffer 0 carries the workers' z in and w out, buffer 1 their c.
    bufs: [Box<[Line]>; 2],
    /// Cache lines per sample in `bufs`.
    stride_lines: usize,
}

impl Shared {
    /// The cache lines of sample `s`'s rows `rows` (which start on a line
    /// boundary) in buffer `buf`.
    #[inline]
    fn lines(&self, buf: usize, s: usize, rows: &Range<usize>) -> &[Line] {
        debug_assert!(rows.start.is_multiple_of(LANES));
        let base = s * self.stride_lines;
        &self.bufs[buf][base + rows.start / LANES..base + rows.end.div_ceil(LANES)]
    }

    /// Stores rows `rows` (starting on a line boundary) of `b` samples of
    /// `src` (sample stride `stride`) into buffer `buf`.
    ///
    /// A first pass stores one value per line, so the ownership requests for
    /// every line (the other threads read them last time) are in flight at
    /// once instead of a store-buffer's worth at a time.
    #[inline]
    fn publish(&self, buf: usize, b: usize, rows: Range<usize>, src: &[f32], stride: usize) {
        self.publish_at(buf, 0, b, rows, src, stride);
    }

    /// [`publish`](Self::publish) into the sample slots from `slot0`.
    fn publish_at(
        &self,
        buf: usize,
        slot0: usize,
        b: usize,
        rows: Range<usize>,
        src: &[f32],
        stride: usize,
    ) {
        if rows.is_empty() {
            return;
        }
        for s in 0..b {
            let vals = src[s * stride + rows.start..s * stride + rows.end].chunks(LANES);
            for (line, chunk) in self.lines(buf, slot0 + s, &rows).iter().zip(vals) {
                line.0[0].store(u64::from(chunk[0].to_bits()), Ordering::Relaxed);
            }
        }
        for s in 0..b {
            let vals = src[s * stride + rows.start..s * stride + rows.end].chunks(LANES);
            for (line, chunk) in self.lines(buf, slot0 + s, &rows).iter().zip(vals) {
                line.store(chunk);
            }
        }
    }

    /// Loads rows `rows` (starting on a line boundary) of `b` samples from
    /// buffer `buf` into `dst` (sample stride `stride`).
    ///
    /// A first pass loads one value per line, so every line's transfer from
    /// the core that wrote it is in flight at once.
    #[inline]
    fn gather(&self, buf: usize, b: usize, rows: Range<usize>, dst: &mut [f32], stride: usize) {
        self.gather_at(buf, 0, b, rows, dst, stride);
    }

    /// [`gather`](Self::gather) from the sample slots from `slot0`.
    fn gather_at(
        &self,
        buf: usize,
        slot0: usize,
        b: usize,
        rows: Range<usize>,
        dst: &mut [f32],
        stride: usize,
    ) {
        if rows.is_empty() {
            return;
        }
        let mut any = 0;
        for s in 0..b {
            for line in self.lines(buf, slot0 + s, &rows) {
                any |= line.0[0].load(Ordering::Relaxed);
            }
        }
        std::hint::black_box(any);
        for s in 0..b {
            let vals = dst[s * stride + rows.start..s * stride + rows.end].chunks_mut(LANES);
            for (line, chunk) in self.lines(buf, slot0 + s, &rows).iter().zip(vals) {
                line.load(chunk);
            }
        }
    }
}

/// What the participants compute with, one layer's rows at a time: the
/// network's weights in one layout with the kernel that reads it.
///
/// Implementations compute each output from its own weights, the input and
/// the bias only, so rows computed by different participants are the bits
/// the whole layer would give.
pub trait RowSource: Send + Sync {
    /// Sizes and hyper-parameters.
    fn spec(&self) -> &MappingSpec;
    /// The kernel in use.
    fn kernel(&self) -> Kernel;
    /// Rows per split block: every participant's rows start on a multiple
    /// (a power of two).
    fn block(&self) -> usize;
    /// The label embedding of `b` samples: `e [b, embed_features]` from
    /// `c [b, c_dim]` (conditional networks only).
    fn embed(&self, c: &[f32], e: &mut [f32]);
    /// Rows `mine` of fc layer `l` (which start on a [`block`](Self::block)
    /// boundary) for the `b = x.len() / in` samples of `x [b, in]`, written
    /// to those columns of `y [b, out]`; `dense` holds at least
    /// `b * mine.len()` floats of scratch.
    fn rows(&self, l: usize, mine: Range<usize>, x: &[f32], dense: &mut [f32], y: &mut [f32]);
}

/// Where one fc layer of a row source sits in the source's f32 buffer, found
/// once when the source is built, so a call finds layer `l` by indexing
/// instead of walking the sections before it.
#[derive(Clone, Debug)]
struct LayerAt {
    weight: Range<usize>,
    bias: Range<usize>,
    in_features: usize,
    out_features: usize,
    activation: Activation,
}

impl LayerAt {
    /// The layer whose `weight` and `bias` are sub-slices of `buf`.
    fn new(
        buf: &[f32],
        weight: &[f32],
        bias: &[f32],
        (in_features, out_features): (usize, usize),
        activation: Activation,
    ) -> LayerAt {
        LayerAt {
            weight: range_in(buf, weight),
            bias: range_in(buf, bias),
            in_features,
            out_features,
            activation,
        }
    }

    /// The layer's weights and biases in `buf` (the buffer it was found in).
    #[inline]
    fn slices<'a>(&self, buf: &'a [f32]) -> (&'a [f32], &'a [f32]) {
        (&buf[self.weight.clone()], &buf[self.bias.clone()])
    }
}

/// The elements of `buf` that its sub-slice `part` covers.
fn range_in(buf: &[f32], part: &[f32]) -> Range<usize> {
    let bytes = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    let start = bytes / size_of::<f32>();
    assert!(
        bytes.is_multiple_of(size_of::<f32>()) && start + part.len() <= buf.len(),
        "a layer's slice lies inside its network's buffer"
    );
    start..start + part.len()
}

/// The GEMV kernels on the folded row-major weights, sample by sample:
/// [`RowMode::Gemv`]. Shares the [`Network`]'s buffer (no copy of the
/// weights).
struct GemvRows {
    net: Arc<MappingNetwork<BigBuf<f32>>>,
    /// The fc layers in `net.params()`.
    layers: Box<[LayerAt]>,
}

impl GemvRows {
    fn new(net: Arc<MappingNetwork<BigBuf<f32>>>) -> GemvRows {
        let buf = net.params();
        let layers = net.layers().1.map(|l| {
            let shape = (l.in_features, l.out_features);
            LayerAt::new(buf, l.weight, l.bias, shape, l.activation)
        });
        GemvRows {
            layers: layers.collect(),
            net,
        }
    }
}

impl RowSource for GemvRows {
    fn spec(&self) -> &MappingSpec {
        self.net.spec()
    }

    fn kernel(&self) -> Kernel {
        self.net.kernel()
    }

    fn block(&self) -> usize {
        ROW_BLOCK
    }

    fn embed(&self, c: &[f32], e: &mut [f32]) {
        let s = self.net.spec();
        if let (Some(l), _) = self.net.layers() {
            for (ci, ei) in c
                .chunks_exact(s.c_dim)
                .zip(e.chunks_exact_mut(l.out_features))
            {
                gemv_bias_act(self.kernel(), l.weight, l.bias, ci, l.activation, ei)
                    .expect("the embedding shapes are valid");
            }
        }
    }

    fn rows(&self, l: usize, mine: Range<usize>, x: &[f32], _: &mut [f32], y: &mut [f32]) {
        let Some(layer) = self.layers.get(l) else {
            return;
        };
        let (weight, bias) = layer.slices(self.net.params());
        let (inp, out) = (layer.in_features, layer.out_features);
        let w = &weight[mine.start * inp..mine.end * inp];
        let b = &bias[mine.clone()];
        for (xs, ys) in x.chunks_exact(inp).zip(y.chunks_exact_mut(out)) {
            gemv_bias_act(
                self.kernel(),
                w,
                b,
                xs,
                layer.activation,
                &mut ys[mine.clone()],
            )
            .expect("the pool's row slices match the layer shapes");
        }
    }
}

/// The packed batched kernels on whole panels, the chunk at once:
/// [`RowMode::Packed`].
struct PackedRows {
    net: Arc<PackedNetwork<BigBuf<f32>>>,
    /// The fc layers in `net.packed()`.
    layers: Box<[LayerAt]>,
    /// Rows per packed panel.
    nr: usize,
}

impl PackedRows {
    fn new(net: Arc<PackedNetwork<BigBuf<f32>>>) -> PackedRows {
        let buf = net.packed();
        let layers = net.layers().1.map(|l| {
            let shape = (l.in_features, l.out_features);
            LayerAt::new(buf, l.weight, l.bias, shape, l.activation)
        });
        PackedRows {
            layers: layers.collect(),
            nr: net.kernel().packed_nr(),
            net,
        }
    }
}

impl RowSource for PackedRows {
    fn spec(&self) -> &MappingSpec {
        self.net.spec()
    }

    fn kernel(&self) -> Kernel {
        self.net.kernel()
    }

    fn block(&self) -> usize {
        ROW_BLOCK.max(self.nr)
    }

    fn embed(&self, c: &[f32], e: &mut [f32]) {
        if let (Some(l), _) = self.net.layers() {
            gemm_packed_bias_act(
                self.kernel(),
                l.weight,
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
        let Some(pl) = self.layers.get(l) else {
            return;
        };
        let (weight, bias) = pl.slices(self.net.packed());
        let (inp, nr) = (pl.in_features, self.nr);
        let (p0, p1) = (mine.start / nr, mine.end.div_ceil(nr));
        let weight = &weight[p0 * nr * inp..p1 * nr * inp];
        let bias = &bias[mine.clone()];
        // This thread's panels of the layer it runs next (the first layer
        // after the last: the next call), for the kernel to prefetch.
        let after = &self.layers[(l + 1) % self.layers.len()];
        let (next, _) = after.slices(self.net.packed());
        let next = next
            .get(p0 * nr * after.in_features..p1 * nr * after.in_features)
            .unwrap_or(&[]);
        spread_rows(mine, pl.out_features, x.len() / inp, dense, y, |d| {
            gemm_packed_bias_act_then(self.kernel(), weight, bias, x, inp, pl.activation, d, next)
                .expect("the pool's panels match the layer shapes");
        });
    }
}

/// The AMX kernel on whole column blocks, the chunk at once:
/// [`RowMode::Amx`].
struct AmxRows {
    net: Arc<AmxNetwork<BigBuf<u32>>>,
    /// The network's kernel (what [`RowSource::kernel`] reports).
    kernel: Kernel,
}

impl AmxRows {
    fn new(net: Arc<AmxNetwork<BigBuf<u32>>>, kernel: Kernel) -> AmxRows {
        AmxRows { net, kernel }
    }
}

thread_local! {
    /// Each participant's AMX kernel scratch, grown on its first call.
    static AMX_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`amx::gemm_bias_act`] with this thread's scratch.
fn amx_layer(l: &amx::AmxLayer<'_>, x: &[f32], y: &mut [f32]) {
    AMX_SCRATCH.with_borrow_mut(|scratch| {
        let need = amx::layer_scratch_len(l.out_features, l.in_features);
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        amx::gemm_bias_act(l.weight, l.bias, x, l.in_features, l.activation, y, scratch)
            .expect("the pool's column blocks match the layer shapes");
    });
}

impl RowSource for AmxRows {
    fn spec(&self) -> &MappingSpec {
        self.net.spec()
    }

    fn kernel(&self) -> Kernel {
        self.kernel
    }

    fn block(&self) -> usize {
        ROW_BLOCK.max(amx::BLOCK_COLS)
    }

    fn embed(&self, c: &[f32], e: &mut [f32]) {
        if let (Some(l), _) = self.net.layers() {
            amx_layer(&l, c, e);
        }
    }

    fn rows(&self, l: usize, mine: Range<usize>, x: &[f32], dense: &mut [f32], y: &mut [f32]) {
        let Some(layer) = self.net.layers().1.nth(l) else {
            return;
        };
        let part = layer
            .columns(mine.clone())
            .expect("the pool's rows start on column blocks");
        let b = x.len() / layer.in_features;
        spread_rows(mine, layer.out_features, b, dense, y, |d| {
            amx_layer(&part, x, d)
        });
    }
}

/// Runs `compute` (which fills dense `[b, mine.len()]` rows) straight into
/// `y [b, out]` when `mine` is the whole layer, else into `dense` and then
/// into `mine`'s columns of `y`.
pub(crate) fn spread_rows(
    mine: Range<usize>,
    out: usize,
    b: usize,
    dense: &mut [f32],
    y: &mut [f32],
    compute: impl FnOnce(&mut [f32]),
) {
    let m = mine.len();
    if m == out {
        compute(&mut y[..b * out]);
        return;
    }
    let d = &mut dense[..b * m];
    compute(d);
    for (ys, ds) in y.chunks_exact_mut(out).zip(d.chunks_exact(m)) {
        ys[mine.clone()].copy_from_slice(ds);
    }
}

/// Shape of one fc layer and how its rows are split.
#[derive(Clone, Debug)]
struct LayerPlan {
    in_features: usize,
    out_features: usize,
    /// `ranges[t]`: the rows participant `t` computes.
    ranges: Vec<Range<usize>>,
}

/// Splits `rows` into `parts` contiguous ranges, in order, of whole
/// [`ROW_BLOCK`]s (the last may end mid-block at `rows`), whose block counts
/// differ by at most one; with fewer blocks than parts some ranges are empty.
pub fn split_rows(rows: usize, parts: usize) -> Vec<Range<usize>> {
    split_rows_in(rows, parts, ROW_BLOCK)
}

/// Threads a row split of `s` runs on: `requested`, or `auto()` for 0, at
/// most one per `block`-row block of the widest layer (more would have no
/// rows), at least 1. The one thread choice of [`crate::Mapper`] and
/// [`crate::pack::PackMapper`].
pub(crate) fn split_threads(
    s: &MappingSpec,
    requested: usize,
    auto: impl FnOnce() -> usize,
    block: usize,
) -> usize {
    let blocks = (0..s.num_layers)
        .map(|i| s.layer_shape(i).1.div_ceil(block))
        .max()
        .unwrap_or(1);
    let t = if requested == 0 { auto() } else { requested };
    t.min(blocks).max(1)
}

/// [`split_rows`] in blocks of `block` rows (`block >= 1`).
fn split_rows_in(rows: usize, parts: usize, block: usize) -> Vec<Range<usize>> {
    let parts = parts.max(1);
    let blocks = rows.div_ceil(block);
    (0..parts)
        .map(|t| {
            let lo = (t * blocks / parts * block).min(rows);
            let hi = ((t + 1) * blocks / parts * block).min(rows);
            lo..hi
        })
        .collect()
}

/// One participant's private activations (`[GEMM_CHUNK][width]` each,
/// used densely: a layer's samples at a stride of its own width; a
/// worker's are `[SPLIT_ROWS][width]` where the pool can split the batch,
/// holding its z and w in a split pass).
struct Local {
    x: Vec<f32>,
    y: Vec<f32>,
    /// This participant's rows before they are spread into `y`.
    dense: Vec<f32>,
    /// A split pass's labels, `[SPLIT_ROWS][c_dim]` (workers only).
    c: Vec<f32>,
    /// A split pass's network scratch (empty if the pool cannot split).
    scratch: Vec<f32>,
    /// This participant's barrier epoch.
    epoch: u64,
}

/// The sources a pool runs, by [`RowMode`].
#[derive(Clone)]
struct Sources {
    per_sample: Arc<dyn RowSource>,
    batched: Arc<dyn RowSource>,
    amx: Option<Arc<dyn RowSource>>,
    /// The whole networks a batch split runs (none for a user's source).
    packed_net: Option<Arc<PackedNetwork<BigBuf<f32>>>>,
    amx_net: Option<Arc<AmxNetwork<BigBuf<u32>>>>,
}

impl Sources {
    /// The source of mode `index` ([`RowMode::index`]); the batched one if
    /// the pool has no AMX source (never asked: `forward` refuses first).
    fn get(&self, index: u8) -> &dyn RowSource {
        match (index, &self.amx) {
            (0, _) => &*self.per_sample,
            (2, Some(amx)) => &**amx,
            _ => &*self.batched,
        }
    }

    /// Whether the pool holds `net`.
    fn splits(&self, net: SplitNet) -> bool {
        match net {
            SplitNet::Packed => self.packed_net.is_some(),
            SplitNet::Amx => self.amx_net.is_some(),
        }
    }

    /// The f32 of scratch the largest split part needs.
    fn split_scratch_len(&self) -> usize {
        let packed = self
            .packed_net
            .as_ref()
            .map_or(0, |n| n.scratch_len(SPLIT_ROWS));
        let amx = self
            .amx_net
            .as_ref()
            .map_or(0, |n| n.scratch_len(SPLIT_ROWS));
        packed.max(amx)
    }

    /// `w = mapping(z, c)` for `b` samples on `net` (which the pool holds:
    /// the caller checked [`splits`](Self::splits)).
    fn forward_split(
        &self,
        net: SplitNet,
        z: &[f32],
        c: &[f32],
        b: usize,
        scratch: &mut [f32],
        w: &mut [f32],
    ) -> Result<(), CoreError> {
        match (net, &self.packed_net, &self.amx_net) {
            (SplitNet::Packed, Some(n), _) => n.forward_batch(z, c, b, scratch, w),
            (SplitNet::Amx, _, Some(n)) => n.forward_batch(z, c, b, scratch, w),
            _ => Err(CoreError::KernelUnavailable),
        }
    }
}

/// The samples of participant `t` of `parts` in a split pass of `b`: equal
/// contiguous runs, in order (the caller's first).
fn split_part(b: usize, parts: usize, t: usize) -> Range<usize> {
    let rows = b.div_ceil(parts.max(1));
    (t * rows).min(b)..((t + 1) * rows).min(b)
}

/// State moved into a worker thread.
struct Worker {
    me: usize,
    shared: Arc<Shared>,
    plan: Arc<[LayerPlan]>,
    sources: Sources,
    input_features: usize,
    local: Local,
}

impl Worker {
    fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let _guard = AbortOnUnwind(&shared.barrier);
        // Ends when the pool is dropped (or broken).
        while self.forward().is_ok() {}
    }

    /// Waits for a job, then runs its share of every layer.
    fn forward(&mut self) -> Result<(), Aborted> {
        let Worker {
            me,
            shared,
            plan,
            sources,
            input_features,
            local,
        } = self;
        let (sh, me, inp) = (&**shared, *me, *input_features);
        sh.barrier.sync(me, &mut local.epoch)?;
        let mode = sh.mode.load(Ordering::Relaxed);
        if let Some(net) = SplitNet::from_index(mode) {
            return split_pass(sh, me, sources, net, local);
        }
        let Local {
            x, y, dense, epoch, ..
        } = local;
        let b = sh.batch.0.load(Ordering::Relaxed).min(GEMM_CHUNK);
        let source = sources.get(mode);
        sh.gather(0, b, 0..inp, x, inp);
        let last = plan.len() - 1;
        for (l, layer) in plan.iter().enumerate() {
            let mine = layer.ranges[me].clone();
            let (inp, out) = (layer.in_features, layer.out_features);
            let buf = (l + 1) % 2;
            if !mine.is_empty() {
                source.rows(l, mine.clone(), &x[..b * inp], dense, &mut y[..b * out]);
                sh.publish(buf, b, mine.clone(), y, out);
            }
            sh.barrier.sync(me, epoch)?;
            if l < last {
                sh.gather(buf, b, 0..mine.start, y, out);
                sh.gather(buf, b, mine.end..out, y, out);
                std::mem::swap(x, y);
            }
        }
        Ok(())
    }
}

/// A worker's part of a split pass: its samples' z (buffer 0) and c
/// (buffer 1) in, the whole network run on them, their w out (buffer 0, the
/// same slots), then the end barrier.
fn split_pass(
    sh: &Shared,
    me: usize,
    sources: &Sources,
    net: SplitNet,
    local: &mut Local,
) -> Result<(), Aborted> {
    let spec = sources.per_sample.spec();
    let (zd, cd, wd) = (spec.z_dim, spec.c_dim, spec.w_dim);
    let b = sh.batch.0.load(Ordering::Relaxed);
    let parts = sh.parts.load(Ordering::Relaxed);
    let mine = split_part(b, parts, me);
    if me < parts && !mine.is_empty() {
        // Slots count from the first worker's sample.
        let slot0 = mine.start - split_part(b, parts, 0).end;
        let n = mine.len();
        let (z, c, w) = (
            &mut local.x[..n * zd],
            &mut local.c[..n * cd],
            &mut local.y[..n * wd],
        );
        sh.gather_at(0, slot0, n, 0..zd, z, zd);
        sh.gather_at(1, slot0, n, 0..cd, c, cd);
        match sources.forward_split(net, z, c, n, &mut local.scratch, w) {
            Ok(()) => sh.publish_at(0, slot0, n, 0..wd, w, wd),
            Err(e) => {
                let mut failed = sh.failed.lock().unwrap_or_else(PoisonError::into_inner);
                failed.get_or_insert(e);
            }
        }
    }
    sh.barrier.sync(me, &mut local.epoch)
}

/// A pool of threads that runs the forward with each layer's output rows
/// split between them (see the [module docs](self)). In [`RowMode::Gemv`]
/// results are bit-identical to
/// [`MappingNetwork::forward`](stylemap_core::MappingNetwork::forward) with
/// the network's kernel, in [`RowMode::Packed`] to
/// [`PackedNetwork::forward_batch`], whatever the thread count.
///
/// ```
/// let net = stylemap::Network::builtin();
/// let s = *net.spec();
/// let mut pool = stylemap::pool::RowPool::new(&net, 2)?;
/// let z = vec![0.5f32; s.z_dim];
/// let mut w = vec![0.0f32; s.w_dim];
/// pool.map(&z, &[], &mut w)?;
/// # Ok::<(), stylemap::Error>(())
/// ```
pub struct RowPool {
    spec: MappingSpec,
    threads: usize,
    shared: Arc<Shared>,
    plan: Arc<[LayerPlan]>,
    sources: Sources,
    workers: Vec<JoinHandle<()>>,
    caller: Caller,
}

/// The calling thread's private state (participant 0).
struct Caller {
    local: Local,
    /// Label embedding output, `[GEMM_CHUNK][embed_features]`.
    embed: Vec<f32>,
}

impl fmt::Debug for RowPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowPool")
            .field("threads", &self.threads)
            .field("kernel", &self.kernel())
            .field("broken", &self.shared.barrier.is_aborted())
            .finish_non_exhaustive()
    }
}

/// Packs `net`'s weights for its kernel's batched layout
/// ([`stylemap_core::kernels::gemm`]).
pub(crate) fn pack(net: &Network) -> Result<PackedNetwork<BigBuf<f32>>, Error> {
    use stylemap_core::kernels::gemm::{pack_network, packed_network_len};
    let spec = net.spec();
    let kernel = net.kernel();
    let mut buf = BigBuf::zeroed(packed_network_len(spec, kernel));
    pack_network(spec, net.core().params(), kernel, &mut buf)?;
    Ok(PackedNetwork::new(
        *spec,
        kernel,
        buf,
        BigBuf::copy_from(net.w_avg()),
    )?)
}

/// Packs `net`'s weights for the AMX kernel ([`stylemap_core::kernels::amx`])
/// into a 64-byte-aligned buffer. Errors where AMX cannot run.
pub(crate) fn pack_amx(net: &Network) -> Result<AmxNetwork<BigBuf<u32>>, Error> {
    let spec = net.spec();
    let mut buf = BigBuf::zeroed(amx::network_len(spec));
    amx::pack_network(spec, net.core().params(), &mut buf)?;
    Ok(AmxNetwork::new(*spec, buf)?)
}

impl RowPool {
    /// Builds a pool of `threads` participants (the caller plus
    /// `threads - 1` worker threads, started here; 0 is taken as 1) for
    /// `net`, using the network's kernel ([`Network::kernel`]).
    ///
    /// Every count is honoured, even above the number of cores or of row
    /// blocks (threads without rows only take part in the barriers).
    /// Errors if a thread cannot be started.
    pub fn new(net: &Network, threads: usize) -> Result<RowPool, Error> {
        RowPool::with_packed(net, threads, Arc::new(pack(net)?))
    }

    /// [`new`](Self::new) sharing weights already packed by [`pack`] for
    /// `net`.
    pub(crate) fn with_packed(
        net: &Network,
        threads: usize,
        packed: Arc<PackedNetwork<BigBuf<f32>>>,
    ) -> Result<RowPool, Error> {
        RowPool::with_amx(net, threads, packed, None)
    }

    /// [`new`](Self::new), able to run [`RowMode::Amx`] too (the AMX
    /// kernel's weights packed here). Errors with
    /// [`stylemap_core::Error::KernelUnavailable`] where AMX cannot run.
    pub fn new_with_amx(net: &Network, threads: usize) -> Result<RowPool, Error> {
        let amx = Arc::new(pack_amx(net)?);
        RowPool::with_amx(net, threads, Arc::new(pack(net)?), Some(amx))
    }

    /// [`with_packed`](Self::with_packed), plus the AMX kernel's weights
    /// for [`RowMode::Amx`].
    pub(crate) fn with_amx(
        net: &Network,
        threads: usize,
        packed: Arc<PackedNetwork<BigBuf<f32>>>,
        amx: Option<Arc<AmxNetwork<BigBuf<u32>>>>,
    ) -> Result<RowPool, Error> {
        let sources = Sources {
            per_sample: Arc::new(GemvRows::new(Arc::clone(net.shared_core()))),
            batched: Arc::new(PackedRows::new(Arc::clone(&packed))),
            amx: amx
                .clone()
                .map(|a| Arc::new(AmxRows::new(a, net.kernel())) as Arc<dyn RowSource>),
            packed_net: Some(packed),
            amx_net: amx,
        };
        RowPool::with_sources(sources, threads)
    }

    /// Whether the pool can run [`RowMode::Amx`].
    pub fn has_amx(&self) -> bool {
        self.sources.amx.is_some()
    }

    /// A pool running `source` in both modes (it handles any batch size).
    pub fn with_source(source: Arc<dyn RowSource>, threads: usize) -> Result<RowPool, Error> {
        let sources = Sources {
            per_sample: Arc::clone(&source),
            batched: source,
            amx: None,
            packed_net: None,
            amx_net: None,
        };
        RowPool::with_sources(sources, threads)
    }

    fn with_sources(sources: Sources, threads: usize) -> Result<RowPool, Error> {
        let threads = threads.max(1);
        let spec: MappingSpec = *sources.per_sample.spec();
        let block = [
            Some(&sources.per_sample),
            Some(&sources.batched),
            sources.amx.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|s| s.block())
        .max()
        .unwrap_or(ROW_BLOCK);
        let plan: Arc<[LayerPlan]> = (0..spec.num_layers)
            .map(|i| {
                let (in_features, out_features) = spec.layer_shape(i);
                LayerPlan {
                    in_features,
                    out_features,
                    ranges: split_rows_in(out_features, threads, block),
                }
            })
            .collect();
        let width = spec
            .input_features()
            .max(spec.layer_features)
            .max(spec.w_dim)
            .max(spec.c_dim);
        let stride_lines = width.div_ceil(LANES);
        // A batch split carries every worker's samples at once.
        let can_split = sources.packed_net.is_some() || sources.amx_net.is_some();
        let (slots, local_rows, split_c) = if can_split {
            (
                GEMM_CHUNK.max((threads - 1) * SPLIT_ROWS),
                GEMM_CHUNK.max(SPLIT_ROWS),
                SPLIT_ROWS * spec.c_dim,
            )
        } else {
            (GEMM_CHUNK, GEMM_CHUNK, 0)
        };
        let split_scratch = sources.split_scratch_len();
        let cores = crate::batch::cores();
        let spin = if threads <= cores {
            SPIN
        } else {
            Duration::ZERO
        };
        let buf =
            || -> Box<[Line]> { (0..slots * stride_lines).map(|_| Line::default()).collect() };
        let shared = Arc::new(Shared {
            barrier: Barrier::new(threads, spin),
            batch: Padded::default(),
            mode: AtomicU8::new(0),
            parts: AtomicUsize::new(0),
            failed: Mutex::new(None),
            bufs: [buf(), buf()],
            stride_lines,
        });
        let local = |me: usize| {
            let most = plan.iter().map(|p| p.ranges[me].len()).max().unwrap_or(0);
            // The caller's split part runs straight from z to w.
            let (rows, split_c) = match me {
                0 => (GEMM_CHUNK, 0),
                _ => (local_rows, split_c),
            };
            Local {
                x: vec![0.0; rows * width],
                y: vec![0.0; rows * width],
                dense: vec![0.0; GEMM_CHUNK * most],
                c: vec![0.0; split_c],
                scratch: vec![0.0; split_scratch],
                epoch: 0,
            }
        };
        let mut pool = RowPool {
            spec,
            threads,
            shared,
            plan: Arc::clone(&plan),
            sources: sources.clone(),
            workers: Vec::with_capacity(threads - 1),
            caller: Caller {
                local: local(0),
                embed: vec![0.0; GEMM_CHUNK * spec.embed_features],
            },
        };
        for me in 1..threads {
            let worker = Worker {
                me,
                shared: Arc::clone(&pool.shared),
                plan: Arc::clone(&plan),
                sources: sources.clone(),
                input_features: spec.input_features(),
                local: local(me),
            };
            let handle = thread::Builder::new()
                .name(format!("stylemap-pool-{me}"))
                .spawn(move || worker.run())
                .map_err(|e| Error::invalid(format!("cannot start a pool thread: {e}")))?;
            // On error above, dropping `pool` stops the workers started so far.
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Sizes and hyper-parameters of the network.
    pub fn spec(&self) -> &MappingSpec {
        &self.spec
    }

    /// Participants (the calling thread included).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The kernel in use (the network's).
    pub fn kernel(&self) -> Kernel {
        self.sources.per_sample.kernel()
    }

    /// Maps `N = w.len() / w_dim` samples in [`RowMode::Gemv`], with the
    /// same checks and errors as [`crate::Mapper::map`].
    pub fn map(&mut self, z: &[f32], c: &[f32], w: &mut [f32]) -> Result<(), Error> {
        self.map_with(z, c, w, RowMode::Gemv)
    }

    /// [`map`](Self::map) in the given [`RowMode`].
    pub fn map_with(
        &mut self,
        z: &[f32],
        c: &[f32],
        w: &mut [f32],
        mode: RowMode,
    ) -> Result<(), Error> {
        crate::batch::check_batch(&self.spec, z, c, w)?;
        self.forward(z, c, w, mode)
    }

    /// [`map_with`](Self::map_with) without the argument checks: the caller
    /// has run `check_batch` on these buffers.
    pub(crate) fn forward(
        &mut self,
        z: &[f32],
        c: &[f32],
        w: &mut [f32],
        mode: RowMode,
    ) -> Result<(), Error> {
        let RowPool {
            spec,
            threads,
            shared,
            plan,
            sources,
            caller,
            ..
        } = self;
        let barrier = &shared.barrier;
        if barrier.is_aborted() {
            return Err(broken());
        }
        if mode == RowMode::Amx && sources.amx.is_none() {
            return Err(Error::invalid("this pool was built without the AMX kernel"));
        }
        let guard = AbortOnUnwind(barrier);
        let s = *spec;
        let chunk = if mode == RowMode::Gemv {
            CHUNK
        } else {
            GEMM_CHUNK
        };
        let rows = w.len() / s.w_dim;
        let mut done = 0;
        while done < rows {
            let b = (rows - done).min(chunk);
            let zc = &z[done * s.z_dim..(done + b) * s.z_dim];
            let cc = &c[done * s.c_dim..(done + b) * s.c_dim];
            let wc = &mut w[done * s.w_dim..(done + b) * s.w_dim];
            let job = Job {
                source: sources.get(mode.index()),
                mode,
                pool: (*threads > 1).then_some(&**shared),
                plan,
            };
            caller
                .pass(&job, b, zc, cc, wc)
                .map_err(|Aborted| broken())?;
            done += b;
        }
        drop(guard);
        crate::batch::check_overflow(w, s.w_dim)
    }
}

impl RowPool {
    /// Maps `N = w.len() / w_dim` samples with the **batch** split between
    /// the first `parts` participants (at most [`threads`](Self::threads)):
    /// each runs the whole of `net` on its own contiguous samples, at most
    /// [`SPLIT_ROWS`] per pass, so no activation crosses cores between
    /// layers. The workers' z and c go in and their w comes back through
    /// the shared buffers; the caller's part runs straight from `z` to `w`.
    /// Bit-identical to `net`'s `forward_batch` on the whole batch (its
    /// samples are independent), whatever `parts`. Unlike scoped threads,
    /// no thread is started per call, and the workers' AMX state is already
    /// allocated.
    ///
    /// The caller ([`crate::Mapper`]) has checked the lengths and that `z`
    /// and `c` are finite; errors if the pool does not hold `net`, or is
    /// broken. Does not check `w` for overflow.
    pub(crate) fn split_batch(
        &mut self,
        z: &[f32],
        c: &[f32],
        w: &mut [f32],
        net: SplitNet,
        parts: usize,
    ) -> Result<(), Error> {
        if !self.sources.splits(net) {
            return Err(Error::invalid("this pool was built without that network"));
        }
        let shared = &*self.shared;
        let barrier = &shared.barrier;
        if barrier.is_aborted() {
            return Err(broken());
        }
        let s = self.spec;
        let (zd, cd, wd) = (s.z_dim, s.c_dim, s.w_dim);
        let parts = parts.clamp(1, self.threads);
        let n = w.len() / wd;
        let guard = AbortOnUnwind(barrier);
        let Local { epoch, scratch, .. } = &mut self.caller.local;
        let mut done = 0;
        while done < n {
            let b = (n - done).min(parts * SPLIT_ROWS);
            let (zp, cp) = (
                &z[done * zd..(done + b) * zd],
                &c[done * cd..(done + b) * cd],
            );
            let wp = &mut w[done * wd..(done + b) * wd];
            let mine = split_part(b, parts, 0);
            let rest = mine.end..b;
            if self.threads > 1 {
                let (zr, cr) = (&zp[rest.start * zd..], &cp[rest.start * cd..]);
                shared.publish_at(0, 0, rest.len(), 0..zd, zr, zd);
                shared.publish_at(1, 0, rest.len(), 0..cd, cr, cd);
                shared.batch.0.store(b, Ordering::Relaxed);
                shared.parts.store(parts, Ordering::Relaxed);
                shared.mode.store(net.index(), Ordering::Relaxed);
                barrier.sync(0, epoch).map_err(|Aborted| broken())?;
            }
            let (zm, cm) = (&zp[..mine.len() * zd], &cp[..mine.len() * cd]);
            let own = self.sources.forward_split(
                net,
                zm,
                cm,
                mine.len(),
                scratch,
                &mut wp[..mine.len() * wd],
            );
            if self.threads > 1 {
                barrier.sync(0, epoch).map_err(|Aborted| broken())?;
                let failed = shared
                    .failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(e) = failed {
                    return Err(e.into());
                }
                shared.gather_at(0, 0, rest.len(), 0..wd, &mut wp[rest.start * wd..], wd);
            }
            own?;
            done += b;
        }
        drop(guard);
        Ok(())
    }
}

/// What one pass of the caller runs on.
struct Job<'a> {
    source: &'a dyn RowSource,
    mode: RowMode,
    /// `None` when the caller is alone.
    pool: Option<&'a Shared>,
    plan: &'a [LayerPlan],
}

impl Caller {
    /// One pass of `b` samples (at most the mode's chunk) through every
    /// layer, as participant 0.
    fn pass(
        &mut self,
        job: &Job<'_>,
        b: usize,
        z: &[f32],
        c: &[f32],
        w: &mut [f32],
    ) -> Result<(), Aborted> {
        let s = *job.source.spec();
        let inp = s.input_features();
        let Local {
            x, y, dense, epoch, ..
        } = &mut self.local;
        // Step 1 on the caller: x = concat(norm(z), norm(embed(c))).
        let ef = s.embed_features;
        let embed = &mut self.embed[..b * ef];
        if s.c_dim > 0 {
            job.source.embed(c, embed);
        }
        for i in 0..b {
            let xs = &mut x[i * inp..][..inp];
            normalize_2nd_moment(&z[i * s.z_dim..(i + 1) * s.z_dim], &mut xs[..s.z_dim]);
            if s.c_dim > 0 {
                normalize_2nd_moment(&embed[i * ef..(i + 1) * ef], &mut xs[s.z_dim..]);
            }
        }
        if let Some(sh) = job.pool {
            sh.publish(0, b, 0..inp, x, inp);
            sh.batch.0.store(b, Ordering::Relaxed);
            sh.mode.store(job.mode.index(), Ordering::Relaxed);
            sh.barrier.sync(0, epoch)?;
        }
        let last = job.plan.len() - 1;
        for (l, p) in job.plan.iter().enumerate() {
            let (lin, out) = (p.in_features, p.out_features);
            // Participant 0's range starts at row 0.
            let mine = p.ranges[0].clone();
            let buf = (l + 1) % 2;
            // The last layer writes w directly.
            let yb: &mut [f32] = if l == last {
                &mut *w
            } else {
                &mut y[..b * out]
            };
            if !mine.is_empty() {
                job.source.rows(l, mine.clone(), &x[..b * lin], dense, yb);
            }
            if let Some(sh) = job.pool {
                if l < last {
                    sh.publish(buf, b, mine.clone(), yb, out);
                }
                sh.barrier.sync(0, epoch)?;
                sh.gather(buf, b, mine.end..out, yb, out);
            }
            if l < last {
                std::mem::swap(x, y);
            }
        }
        Ok(())
    }
}

fn broken() -> Error {
    Error::invalid("the worker pool is broken: a thread panicked during an earlier call")
}

impl Drop for RowPool {
    fn drop(&mut self) {
        self.shared.barrier.abort();
        for handle in self.workers.drain(..) {
            // A worker that panicked already broke the pool; its payload is
            // not re-raised from a destructor.
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every participant sees every other's pre-barrier writes, for many
    /// rounds, with more threads than cores too.
    #[test]
    fn barrier_orders_memory_and_never_lets_anyone_ahead() {
        for threads in [2, 3, 5] {
            let rounds = 2000u64;
            let barrier = Barrier::new(threads, SPIN);
            let slots: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
            thread::scope(|scope| {
                for me in 0..threads {
                    let (barrier, slots) = (&barrier, &slots);
                    scope.spawn(move || {
                        let mut epoch = 0;
                        for r in 1..=rounds {
                            slots[me].store(r, Ordering::Relaxed);
                            barrier.sync(me, &mut epoch).unwrap();
                            for s in slots {
                                // Everyone wrote round r; nobody can be at r + 2
                                // (that needs us at the next barrier).
                                let v = s.load(Ordering::Relaxed);
                                assert!(v == r || v == r + 1, "round {r}: saw {v}");
                            }
                            barrier.sync(me, &mut epoch).unwrap();
                        }
                    });
                }
            });
        }
    }

    #[test]
    fn split_threads_takes_the_request_or_auto_capped_by_blocks() {
        let s = MappingSpec::STYLEGAN2_1024; // 512 rows: 32 blocks of 16
        let never = || -> usize { unreachable!("auto is only asked for 0") };
        assert_eq!(split_threads(&s, 0, || 3, 16), 3);
        assert_eq!(split_threads(&s, 0, || 0, 16), 1);
        assert_eq!(split_threads(&s, 5, never, 16), 5);
        assert_eq!(split_threads(&s, 100, never, 16), 32);
        assert_eq!(split_threads(&s, 100, never, 64), 8);
    }

    /// The GEMV source reads the network's own weights: building a pool
    /// (directly or through a `Mapper`) takes a reference, not a copy.
    #[test]
    fn the_pool_shares_the_networks_weights() {
        let net = Network::builtin();
        let refs = || Arc::strong_count(net.shared_core());
        assert_eq!(refs(), 1);
        let pool = RowPool::new(&net, 2).unwrap();
        assert_eq!(refs(), 2, "the pool holds the network's buffer, not a copy");
        drop(pool);
        assert_eq!(refs(), 1);
        let s = *net.spec();
        let mut mapper = crate::Mapper::new(&net).with_threads(2);
        let mut w = vec![0.0f32; s.w_dim];
        mapper.map(&vec![0.5f32; s.z_dim], &[], &mut w).unwrap();
        assert_eq!(refs(), 2, "the mapper's pool holds the network's buffer");
        // A clone shares it too; changing the clone's w_avg copies it first.
        let mut other = net.clone();
        assert!(Arc::ptr_eq(other.shared_core(), net.shared_core()));
        other.set_w_avg(vec![0.0; s.w_dim]).unwrap();
        assert!(!Arc::ptr_eq(other.shared_core(), net.shared_core()));
        assert_ne!(other.w_avg(), net.w_avg());
        assert_eq!(other.core().params(), net.core().params());
    }

    #[test]
    fn abort_wakes_sleeping_and_spinning_waiters() {
        let barrier = Barrier::new(3, SPIN);
        thread::scope(|scope| {
            let waiters: Vec<_> = (1..3)
                .map(|me| {
                    let barrier = &barrier;
                    scope.spawn(move || barrier.sync(me, &mut 0).is_err())
                })
                .collect();
            // Long enough for the waiters to go to sleep.
            thread::sleep(Duration::from_millis(5));
            barrier.abort();
            for w in waiters {
                assert!(w.join().unwrap(), "an aborted wait returns an error");
            }
        });
        // A barrier that cannot complete any more (the others are gone)
        // returns an error instead of waiting forever.
        let mut epoch = 1;
        assert!(barrier.sync(0, &mut epoch).is_err());
    }
}
