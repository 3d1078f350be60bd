//! What the benchmark binaries share: inputs, the `matrixmultiply`-alone
//! baseline, a median-of-runs timer, and a persistent helper thread for the
//! two-core roofline probes.

#![allow(dead_code)] // each bench binary uses a different subset

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use stylemap::Network;
use stylemap::core::network::normalize_2nd_moment;
use stylemap::core::sampler::z_from_seed_xoshiro;
use stylemap::core::spec::{Activation, LRELU_SLOPE};

/// Batch sizes of issue 4's table.
pub const BATCHES: [usize; 4] = [1, 8, 64, 512];

/// Thread counts of issue 4's table.
pub const THREADS: [usize; 2] = [1, 2];

/// `n` latents `[n, z_dim]`, Box-Muller over xoshiro256++ seeded 0..n.
pub fn latents(net: &Network, n: usize) -> Vec<f32> {
    let d = net.spec().z_dim;
    let mut z = vec![0.0f32; n * d];
    for (seed, row) in z.chunks_exact_mut(d).enumerate() {
        z_from_seed_xoshiro(seed as u64, row);
    }
    z
}

/// Bytes of folded weights and biases one forward streams (f32).
pub fn weight_bytes(net: &Network) -> usize {
    net.spec().param_len() * std::mem::size_of::<f32>()
}

/// Multiply-adds of one sample's forward.
pub fn macs(net: &Network) -> usize {
    net.spec().macs()
}

/// Buffers of the `matrixmultiply`-alone baseline.
#[derive(Debug, Default)]
pub struct MatmulScratch {
    a: Vec<f32>,
    b: Vec<f32>,
}

/// The whole forward of an **unconditional** network with nothing but
/// `matrixmultiply::sgemm` (through ndarray's safe `general_mat_mul`, as
/// `stylemap::batch` did before the packed GEMM) per layer, on the folded
/// row-major `W' [out, in]` read through transposed strides, plus a plain
/// bias + leaky-ReLU loop and the per-row f64 normalisation of z: the
/// baseline "`matrixmultiply` alone" of issue 4.
pub fn matmul_forward(net: &Network, z: &[f32], w: &mut [f32], s: &mut MatmulScratch) {
    let spec = net.spec();
    assert_eq!(spec.c_dim, 0, "the baseline handles unconditional networks");
    let n = w.len() / spec.w_dim;
    let width = spec.z_dim.max(spec.layer_features);
    for buf in [&mut s.a, &mut s.b] {
        buf.resize(n * width, 0.0);
    }
    for (zr, xr) in z
        .chunks_exact(spec.z_dim)
        .zip(s.a.chunks_exact_mut(spec.z_dim))
    {
        normalize_2nd_moment(zr, xr);
    }
    let (_, layers) = net.core().layers();
    let (mut src, mut dst) = (&mut s.a, &mut s.b);
    for (i, layer) in layers.enumerate() {
        let (inp, out) = (layer.in_features, layer.out_features);
        let last = i + 1 == spec.num_layers;
        let y: &mut [f32] = if last { &mut *w } else { &mut dst[..n * out] };
        let x = ArrayView2::from_shape((n, inp), &src[..n * inp]).expect("x shape");
        let wt = ArrayView2::from_shape((out, inp), layer.weight)
            .expect("W shape")
            .reversed_axes();
        {
            let mut yv = ArrayViewMut2::from_shape((n, out), &mut *y).expect("y shape");
            general_mat_mul(1.0, &x, &wt, 0.0, &mut yv);
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
        if !last {
            std::mem::swap(&mut src, &mut dst);
        }
    }
}

/// [`matmul_forward`] with the batch split in contiguous halves (thirds...)
/// over `threads` scoped threads, as the pre-pool `Mapper` did.
pub fn matmul_forward_threads(
    net: &Network,
    z: &[f32],
    w: &mut [f32],
    scratch: &mut [MatmulScratch],
    threads: usize,
) {
    let (zd, wd) = (net.spec().z_dim, net.spec().w_dim);
    let n = w.len() / wd;
    let t = threads.min(n).min(scratch.len()).max(1);
    if t == 1 {
        matmul_forward(net, z, w, &mut scratch[0]);
        return;
    }
    let rows = n.div_ceil(t);
    std::thread::scope(|scope| {
        let mut parts = w
            .chunks_mut(rows * wd)
            .zip(z.chunks(rows * zd))
            .zip(scratch.iter_mut());
        let first = parts.next();
        for ((wc, zc), sc) in parts {
            scope.spawn(move || matmul_forward(net, zc, wc, sc));
        }
        if let Some(((wc, zc), sc)) = first {
            matmul_forward(net, zc, wc, sc);
        }
    });
}

/// Times `f`: warm-up (at least 2 calls and `budget / 10`), then calls until
/// `budget` has passed (at least `min_runs`); returns the median seconds
/// per call.
pub fn median_secs(budget: Duration, min_runs: usize, mut f: impl FnMut()) -> f64 {
    let warm = Instant::now();
    let mut k = 0;
    while k < 2 || warm.elapsed() < budget / 10 {
        f();
        k += 1;
    }
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < min_runs.max(1) || start.elapsed() < budget {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    median(&mut times)
}

/// The median of `v` (sorted in place); mean of the middle two for an even length.
pub fn median(v: &mut [f64]) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// A persistent second thread for two-core probes: each [`run`](Self::run)
/// starts `job(reps)` on the helper and `mine(reps)` on the caller and
/// returns when both are done, with one spin-wait handshake (no system call),
/// so thread start-up is not part of what is measured.
pub struct Helper {
    go: Arc<AtomicU64>,
    reps: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    generation: u64,
    handle: Option<JoinHandle<()>>,
}

impl Helper {
    /// Starts the helper thread with its `job`.
    pub fn new(job: impl Fn(u64) + Send + 'static) -> Helper {
        let go = Arc::new(AtomicU64::new(0));
        let reps = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, r, d, s) = (go.clone(), reps.clone(), done.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut seen = 0;
            let mut idle = 0u32;
            loop {
                let now = g.load(Ordering::Acquire);
                if now != seen {
                    seen = now;
                    idle = 0;
                    job(r.load(Ordering::Relaxed));
                    d.store(now, Ordering::Release);
                } else if s.load(Ordering::Acquire) {
                    return;
                } else {
                    idle = relax(idle);
                }
            }
        });
        Helper {
            go,
            reps,
            done,
            stop,
            generation: 0,
            handle: Some(handle),
        }
    }

    /// Runs the helper's job and `mine` concurrently, `reps` times each.
    pub fn run(&mut self, reps: u64, mine: impl FnOnce(u64)) {
        self.generation += 1;
        self.reps.store(reps, Ordering::Relaxed);
        self.go.store(self.generation, Ordering::Release);
        mine(reps);
        let mut idle = 0u32;
        while self.done.load(Ordering::Acquire) != self.generation {
            idle = relax(idle);
        }
    }
}

/// One step of a wait loop: spin for the first 2^16 steps, then yield the
/// core (so a loaded machine still makes progress); returns the next count.
fn relax(idle: u32) -> u32 {
    if idle < 1 << 16 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
    idle.saturating_add(1)
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A buffer of `bytes / 4` floats (small values, so sums stay finite).
pub fn buffer(bytes: usize) -> Vec<f32> {
    (0..bytes / 4).map(|i| (i % 17) as f32 * 0.25).collect()
}

/// Keeps a value alive (re-export for the binaries).
pub fn keep<T>(v: T) -> T {
    black_box(v)
}
