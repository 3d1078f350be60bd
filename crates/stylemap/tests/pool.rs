//! The row-split worker pool ([`stylemap::pool::RowPool`], and [`Mapper`]'s
//! GEMV path through it): bit-identical to the core's single-threaded
//! forward for every thread count, kernel and shape; threads are joined on
//! drop; the batch-1 path allocates nothing; `STYLEMAP_KERNEL` is honoured.
//!
//! Two tests re-run this binary as a child process (`--exact <name>
//! --ignored`) with a marker variable set: counting allocations needs a
//! process where nothing else runs, and `STYLEMAP_KERNEL` must be set before
//! the process starts (`std::env::set_var` is unsound with other threads).

// The counting global allocator below is the only unsafe code: a
// `GlobalAlloc` impl cannot be written without it.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use common::core_forward;
use stylemap::batch::GemmBackend;
use stylemap::bigbuf::BigBuf;
use stylemap::core::kernels::amx;
use stylemap::core::kernels::gemm::{PackedNetwork, pack_network, packed_network_len};
use stylemap::core::{Kernel, MappingSpec, sampler};
use stylemap::pool::{CHUNK, GEMM_CHUNK, RowMode, RowPool, SPLIT_ROWS, split_rows};
use stylemap::{Layout, Mapper, Network};

// ---------------------------------------------------------------------------
// Counting allocator.

/// Allocations (alloc, alloc_zeroed, realloc) since the process started, on
/// every thread.
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, which
// implements `GlobalAlloc` correctly; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: our caller upholds `alloc`'s contract, which we forward.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: AllocLayout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: our caller upholds `alloc_zeroed`'s contract, which we forward.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: our caller upholds `realloc`'s contract (`ptr` came from
        // this allocator, i.e. from `System`), which we forward.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: our caller upholds `dealloc`'s contract (`ptr` came from
        // this allocator, i.e. from `System`), which we forward.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---------------------------------------------------------------------------
// Helpers.

/// Tests that start pools hold this, so the thread census of
/// `drop_joins_every_thread` sees only its own pools.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marker variable of the child-process tests.
const CHILD: &str = "STYLEMAP_POOL_TEST_CHILD";

/// Re-runs this test binary for the ignored test `name` with `env` set (and
/// the marker), and returns whether it passed, with its output on failure.
fn run_child(name: &str, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        name,
        "--ignored",
        "--test-threads=1",
        "--nocapture",
    ])
    .env(CHILD, "1")
    .env_remove(Kernel::ENV_VAR);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("re-running the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "child `{name}` {env:?} failed:\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "child `{name}` ran no test:\n{text}"
    );
}

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A network with random folded parameters: each weight in
/// ±1/sqrt(in_features) (so activations stay O(1)), biases in ±0.1.
fn small_net(
    z_dim: usize,
    c_dim: usize,
    w_dim: usize,
    num_layers: usize,
    layer_features: usize,
) -> Network {
    let mut spec = MappingSpec::nvlabs(z_dim, c_dim, w_dim, num_layers, 3);
    spec.layer_features = layer_features;
    let scale = 1.0 / (spec.input_features().max(layer_features).max(c_dim) as f32).sqrt();
    let mut params = values(spec.param_len(), (z_dim * 31 + w_dim) as u64, scale * 1.7);
    // Bigger biases are fine too; keep some exact zeros to exercise lrelu at 0.
    for v in params.iter_mut().step_by(97) {
        *v = 0.0;
    }
    let w_avg = values(w_dim, 7, 0.5);
    Network::from_parts(spec, params, w_avg, Layout::Nvlabs).expect("valid test network")
}

/// The shapes the pool must handle: odd widths (not multiples of 16, fewer
/// rows than threads × 16), a single layer, a conditional net, a layer 0
/// wider than the rest.
fn odd_nets() -> Vec<(&'static str, Network)> {
    vec![
        ("z37 w20 3 layers of 50", small_net(37, 0, 20, 3, 50)),
        ("one layer 24 -> 40", small_net(24, 0, 40, 1, 40)),
        ("one layer 5 -> 3", small_net(5, 0, 3, 1, 3)),
        ("conditional c5 z16 w48 4x33", small_net(16, 5, 48, 4, 33)),
        (
            "conditional c3 z8 w100 2 layers",
            small_net(8, 3, 100, 2, 100),
        ),
        ("z130 w17 5x200", small_net(130, 0, 17, 5, 200)),
    ]
}

fn zs(net: &Network, n: usize, seed: u64) -> Vec<f32> {
    let zd = net.spec().z_dim;
    let mut z = vec![0.0f32; n * zd];
    for (i, row) in z.chunks_exact_mut(zd).enumerate() {
        sampler::z_from_seed_xoshiro(seed + i as u64, row);
    }
    z
}

fn labels(net: &Network, n: usize, seed: u64) -> Vec<f32> {
    values(n * net.spec().c_dim, seed, 1.0)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[track_caller]
fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got
        .iter()
        .zip(want)
        .position(|(a, b)| a.to_bits() != b.to_bits())
    {
        panic!(
            "{what}: element {i}: {} != {} (and maybe more)",
            got[i], want[i]
        );
    }
}

fn available_kernels() -> Vec<Kernel> {
    Kernel::ALL
        .iter()
        .copied()
        .filter(|k| k.is_available())
        .collect()
}

/// Threads named `stylemap-pool-*` in this process (Linux).
#[cfg(target_os = "linux")]
fn pool_threads_alive() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("stylemap-pool"))
        .count()
}

/// Waits (up to 5 s) until [`pool_threads_alive`] is `n`: a new thread names
/// itself once it runs, and an exited one leaves `/proc` just after `join`.
#[cfg(target_os = "linux")]
#[track_caller]
fn assert_pool_threads(n: usize, what: &str) {
    let start = std::time::Instant::now();
    loop {
        let alive = pool_threads_alive();
        if alive == n {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{what}: {alive} pool threads alive, expected {n}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn split_rows_respects_blocks_and_covers_every_row() {
    for rows in [1, 3, 15, 16, 17, 20, 40, 100, 512, 513] {
        for parts in 1..=6 {
            let r = split_rows(rows, parts);
            assert_eq!(r.len(), parts);
            assert_eq!(r[0].start, 0);
            assert_eq!(r[parts - 1].end, rows, "rows {rows} parts {parts}");
            for pair in r.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
            }
            for range in &r {
                assert!(range.start.is_multiple_of(16) || range.start == rows);
                assert!(range.end.is_multiple_of(16) || range.end == rows);
            }
            let sizes: Vec<usize> = r.iter().map(|x| x.len().div_ceil(16)).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "blocks unbalanced: {sizes:?}");
        }
    }
    assert_eq!(split_rows(512, 2), [0..256, 256..512]);
}

#[test]
fn builtin_pool_is_bit_identical_to_one_thread() {
    let _serial = serial();
    let net = Network::builtin();
    let s = *net.spec();
    let n = 3;
    let z = zs(&net, n, 40);
    let want = core_forward(&net, &z, &[]);
    for threads in 1..=4 {
        let mut pool = RowPool::new(&net, threads).unwrap();
        assert_eq!(pool.threads(), threads);
        assert_eq!(pool.kernel(), net.kernel());
        // Batch 1, one sample at a time, then the whole batch in one pass.
        let mut w = vec![0.0f32; n * s.w_dim];
        for (zi, wi) in z.chunks_exact(s.z_dim).zip(w.chunks_exact_mut(s.w_dim)) {
            pool.map(zi, &[], wi).unwrap();
        }
        assert_bits_eq(&w, &want, &format!("builtin, {threads} threads, batch 1"));
        let mut wb = vec![0.0f32; n * s.w_dim];
        pool.map(&z, &[], &mut wb).unwrap();
        assert_bits_eq(
            &wb,
            &want,
            &format!("builtin, {threads} threads, batch {n}"),
        );
    }
}

#[test]
fn builtin_mapper_batch_1_is_bit_identical_for_every_thread_count() {
    let _serial = serial();
    let net = Network::builtin();
    let s = *net.spec();
    let z = zs(&net, 2, 7);
    let want = core_forward(&net, &z, &[]);
    for threads in [0, 1, 2, 3, 4] {
        let mut m = Mapper::new(&net).with_threads(threads);
        if threads > 0 {
            assert_eq!(m.gemv_threads(), threads);
        }
        assert_eq!(m.kernel(), net.kernel());
        let mut w = vec![0.0f32; 2 * s.w_dim];
        for i in 0..2 {
            m.map(
                &z[i * s.z_dim..(i + 1) * s.z_dim],
                &[],
                &mut w[i * s.w_dim..(i + 1) * s.w_dim],
            )
            .unwrap();
        }
        assert_bits_eq(&w, &want, &format!("mapper, {threads} threads"));
    }
}

#[test]
fn odd_shapes_every_kernel_thread_count_and_batch() {
    let _serial = serial();
    for (name, net) in odd_nets() {
        let s = *net.spec();
        let n = 2 * CHUNK + 3; // several chunks, the last one partial
        let z = zs(&net, n, 100);
        let c = labels(&net, n, 5);
        for kernel in available_kernels() {
            let net = net.clone().with_kernel(kernel).unwrap();
            let want = core_forward(&net, &z, &c);
            assert!(want.iter().all(|v| v.is_finite()));
            for threads in 1..=4 {
                let mut pool = RowPool::new(&net, threads).unwrap();
                for b in [1, 2, 5, CHUNK, n] {
                    let mut w = vec![f32::NAN; b * s.w_dim];
                    pool.map(&z[..b * s.z_dim], &c[..b * s.c_dim], &mut w)
                        .unwrap();
                    let what = format!("{name}, {kernel:?}, {threads} threads, batch {b}");
                    assert_bits_eq(&w, &want[..b * s.w_dim], &what);
                }
                // Through the mapper, GEMV path, explicit thread count.
                let mut m = Mapper::new(&net)
                    .with_threads(threads)
                    .with_gemm_threshold(usize::MAX);
                let mut w = vec![0.0f32; n * s.w_dim];
                m.map(&z, &c, &mut w).unwrap();
                let what = format!("{name}, {kernel:?}, mapper with {threads} threads");
                assert_bits_eq(&w, &want, &what);
            }
        }
    }
}

/// The core's packed batched forward over the whole batch: the oracle of
/// [`RowMode::Packed`] and of the mapper's packed GEMM path.
fn packed_forward(net: &Network, z: &[f32], c: &[f32]) -> Vec<f32> {
    let s = *net.spec();
    let k = net.kernel();
    let mut buf = vec![0.0f32; packed_network_len(&s, k)];
    pack_network(&s, net.core().params(), k, &mut buf).unwrap();
    let p = PackedNetwork::new(s, k, buf, net.w_avg().to_vec()).unwrap();
    let n = z.len() / s.z_dim;
    let mut w = vec![0.0f32; n * s.w_dim];
    let mut scratch = vec![0.0f32; p.scratch_len(n)];
    p.forward_batch(z, c, n, &mut scratch, &mut w).unwrap();
    w
}

/// `AmxNetwork::forward_batch` of `net` on its own, the reference for the
/// AMX paths.
fn amx_forward(net: &Network, z: &[f32], c: &[f32]) -> Vec<f32> {
    let s = *net.spec();
    let mut buf = BigBuf::zeroed(amx::network_len(&s));
    amx::pack_network(&s, net.core().params(), &mut buf).unwrap();
    let a = amx::AmxNetwork::new(s, buf).unwrap();
    let n = z.len() / s.z_dim;
    let mut w = vec![0.0f32; n * s.w_dim];
    let mut scratch = vec![0.0f32; a.scratch_len(n)];
    a.forward_batch(z, c, n, &mut scratch, &mut w).unwrap();
    w
}

/// AMX mode (column blocks split between threads) gives the AMX network's
/// bits for every thread count, odd shape and batch size, and so does the
/// mapper's AMX path whether it splits columns or the batch. Where AMX
/// cannot run, the pool and the forced backend refuse cleanly instead.
#[test]
#[cfg_attr(miri, ignore)]
fn amx_mode_is_bit_identical_to_the_amx_network() {
    let _serial = serial();
    if !amx::is_available() {
        assert!(
            std::env::var("STYLEMAP_REQUIRE_AMX").as_deref() != Ok("1"),
            "STYLEMAP_REQUIRE_AMX=1 but the AMX kernel cannot run here"
        );
        let net = Network::builtin();
        assert!(RowPool::new_with_amx(&net, 2).is_err());
        let mut w = vec![0.0f32; net.spec().w_dim];
        let z = zs(&net, 1, 0);
        let mut m = Mapper::new(&net)
            .with_gemm_threshold(0)
            .with_gemm_backend(GemmBackend::Amx);
        assert!(m.map(&z, &[], &mut w).is_err());
        return;
    }
    for (name, net) in odd_nets() {
        let s = *net.spec();
        let n = GEMM_CHUNK + 5; // two passes, the last one partial
        let z = zs(&net, n, 300);
        let c = labels(&net, n, 6);
        let want = amx_forward(&net, &z, &c);
        assert!(want.iter().all(|v| v.is_finite()));
        for threads in 1..=4 {
            let mut pool = RowPool::new_with_amx(&net, threads).unwrap();
            for b in [1, 3, 33, GEMM_CHUNK, n] {
                let mut w = vec![f32::NAN; b * s.w_dim];
                pool.map_with(&z[..b * s.z_dim], &c[..b * s.c_dim], &mut w, RowMode::Amx)
                    .unwrap();
                let what = format!("{name}, {threads} threads, amx rows, batch {b}");
                assert_bits_eq(&w, &want[..b * s.w_dim], &what);
            }
            for split in [0, 2, usize::MAX] {
                let mut m = Mapper::new(&net)
                    .with_threads(threads)
                    .with_gemm_threshold(0)
                    .with_gemm_backend(GemmBackend::Amx)
                    .with_split_threshold(split);
                let mut w = vec![f32::NAN; n * s.w_dim];
                m.map(&z, &c, &mut w).unwrap();
                let what = format!("{name}, mapper amx, {threads} threads, split {split}");
                assert_bits_eq(&w, &want, &what);
            }
        }
        // A pool built without the AMX weights refuses the mode.
        let mut plain = RowPool::new(&net, 2).unwrap();
        let mut w = vec![0.0f32; s.w_dim];
        assert!(
            plain
                .map_with(&z[..s.z_dim], &c[..s.c_dim], &mut w, RowMode::Amx)
                .is_err()
        );
    }
}

/// Packed mode (rows split by whole panels, activations exchanged after
/// every layer) gives the packed network's bits for every thread count,
/// kernel, odd shape and batch size, and so does the mapper's packed GEMM
/// path whether it splits rows or the batch.
#[test]
#[cfg_attr(miri, ignore)]
fn packed_mode_is_bit_identical_to_the_packed_network() {
    let _serial = serial();
    for (name, net) in odd_nets() {
        let s = *net.spec();
        let n = GEMM_CHUNK + 5; // two passes, the last one partial
        let z = zs(&net, n, 200);
        let c = labels(&net, n, 6);
        for kernel in available_kernels() {
            let net = net.clone().with_kernel(kernel).unwrap();
            let want = packed_forward(&net, &z, &c);
            assert!(want.iter().all(|v| v.is_finite()));
            for threads in 1..=4 {
                let mut pool = RowPool::new(&net, threads).unwrap();
                for b in [1, 3, 8, GEMM_CHUNK, n] {
                    let mut w = vec![f32::NAN; b * s.w_dim];
                    pool.map_with(
                        &z[..b * s.z_dim],
                        &c[..b * s.c_dim],
                        &mut w,
                        RowMode::Packed,
                    )
                    .unwrap();
                    let what = format!("{name}, {kernel:?}, {threads} threads, packed, batch {b}");
                    assert_bits_eq(&w, &want[..b * s.w_dim], &what);
                }
                for split in [0, 2, usize::MAX] {
                    // Packed, not the default Auto: from 32 samples on Auto
                    // runs the AMX kernel where it can, which is not
                    // bit-identical to the packed network (contract §3c).
                    let mut m = Mapper::new(&net)
                        .with_threads(threads)
                        .with_gemm_threshold(0)
                        .with_gemm_backend(GemmBackend::Packed)
                        .with_split_threshold(split);
                    let mut w = vec![f32::NAN; n * s.w_dim];
                    m.map(&z, &c, &mut w).unwrap();
                    let what =
                        format!("{name}, {kernel:?}, mapper, {threads} threads, split {split}");
                    assert_bits_eq(&w, &want, &what);
                }
            }
        }
    }
}

/// The mapper's batch split runs in its pool (no thread started per call)
/// when the pool has enough threads, else on scoped threads; either way,
/// for the packed and the AMX networks, every thread count and batch size,
/// single and multi-pass, the bits are the whole network's, and calls
/// after a split pass (in any mode) still are.
#[test]
#[cfg_attr(miri, ignore)]
fn batch_split_is_bit_identical_in_the_pool_and_on_scoped_threads() {
    let _serial = serial();
    let mut backends = vec![GemmBackend::Packed];
    if amx::is_available() {
        backends.push(GemmBackend::Amx);
    }
    // Passes of up to `threads * SPLIT_ROWS`: 2 threads take 2 passes.
    let n = 2 * SPLIT_ROWS + 37;
    for (name, net) in odd_nets() {
        let s = *net.spec();
        let z = zs(&net, n, 500);
        let c = labels(&net, n, 9);
        for &backend in &backends {
            let want = match backend {
                GemmBackend::Amx => amx_forward(&net, &z, &c),
                _ => packed_forward(&net, &z, &c),
            };
            for threads in 1..=4 {
                let mut m = Mapper::new(&net)
                    .with_threads(threads)
                    .with_gemm_threshold(0)
                    .with_gemm_backend(backend)
                    .with_split_threshold(0);
                for b in [2, 33, 69, n, 5] {
                    let mut w = vec![f32::NAN; b * s.w_dim];
                    m.map(&z[..b * s.z_dim], &c[..b * s.c_dim], &mut w).unwrap();
                    let what = format!("{name}, {backend:?}, {threads} threads, batch {b}");
                    assert_bits_eq(&w, &want[..b * s.w_dim], &what);
                }
                // The same pool then splits rows (and batch 1 by GEMV).
                let mut m = m.with_split_threshold(usize::MAX);
                let mut w = vec![f32::NAN; 40 * s.w_dim];
                m.map(&z[..40 * s.z_dim], &c[..40 * s.c_dim], &mut w)
                    .unwrap();
                let what = format!("{name}, {backend:?}, {threads} threads, rows after split");
                assert_bits_eq(&w, &want[..40 * s.w_dim], &what);
            }
        }
    }
}

/// A reduced-precision pack through the pool (panels split between
/// threads) gives the bits of the core's `Pack::forward_batch`, for every
/// precision, thread count and batch size, on a conditional network whose
/// widths are not multiples of the 16-row panels.
#[test]
#[cfg_attr(miri, ignore)]
fn packs_split_by_panels_are_bit_identical_to_the_pack() {
    use stylemap::pack::{
        Int8Method, PackMapper, PackNetwork, Precision, QuantOptions, write_pack,
    };
    let _serial = serial();
    let net = small_net(40, 5, 56, 3, 72);
    let s = *net.spec();
    let n = GEMM_CHUNK + 5;
    let z = zs(&net, n, 300);
    let c = labels(&net, n, 8);
    let mut options = vec![
        QuantOptions::new(Precision::F16),
        QuantOptions::new(Precision::Bf16),
    ];
    for group in [7, 16, usize::MAX] {
        let mut o = QuantOptions::new(Precision::Int8);
        o.method = Int8Method::Round;
        o.group = group;
        options.push(o);
    }
    for opts in &options {
        let bytes = write_pack(&net, opts).unwrap();
        let pack = PackNetwork::from_aligned(bytes, std::path::Path::new("t.smap")).unwrap();
        for kernel in available_kernels() {
            let pack = pack.clone().with_kernel(kernel).unwrap();
            let mut want = vec![0.0f32; n * s.w_dim];
            let mut scratch = vec![0.0f32; pack.pack().batch_scratch_len(n)];
            pack.pack()
                .forward_batch(kernel, &z, &c, n, &mut scratch, &mut want)
                .unwrap();
            for threads in 1..=4 {
                let mut m = PackMapper::new(&pack).with_threads(threads);
                for b in [1, 3, n] {
                    let mut w = vec![f32::NAN; b * s.w_dim];
                    m.map(&z[..b * s.z_dim], &c[..b * s.c_dim], &mut w).unwrap();
                    let what = format!(
                        "{:?} group {}, {kernel:?}, {threads} threads, batch {b}",
                        opts.precision, opts.group
                    );
                    assert_bits_eq(&w, &want[..b * s.w_dim], &what);
                }
            }
        }
    }
}

#[test]
fn repeated_calls_give_the_same_bits() {
    let _serial = serial();
    let net = small_net(64, 3, 96, 6, 160);
    let s = *net.spec();
    let z = zs(&net, 4, 9);
    let c = labels(&net, 4, 9);
    let gemv = core_forward(&net, &z, &c);
    let packed = packed_forward(&net, &z, &c);
    for threads in [2, 3] {
        let mut pool = RowPool::new(&net, threads).unwrap();
        for round in 0..300 {
            // Alternate samples, batch sizes and modes so stale buffers
            // would show.
            let i = round % 4;
            let b = if round % 3 == 0 { 4 - i } else { 1 };
            let (mode, want) = if round % 5 < 2 {
                (RowMode::Packed, &packed)
            } else {
                (RowMode::Gemv, &gemv)
            };
            let mut w = vec![0.0f32; b * s.w_dim];
            pool.map_with(
                &z[i * s.z_dim..(i + b) * s.z_dim],
                &c[i * s.c_dim..(i + b) * s.c_dim],
                &mut w,
                mode,
            )
            .unwrap();
            assert_eq!(
                bits(&w),
                bits(&want[i * s.w_dim..(i + b) * s.w_dim]),
                "round {round}, {threads} threads, {mode:?}"
            );
        }
    }
}

#[test]
fn sleeping_workers_wake_up() {
    let _serial = serial();
    let net = small_net(32, 0, 32, 3, 64);
    let s = *net.spec();
    let z = zs(&net, 1, 3);
    let want = core_forward(&net, &z, &[]);
    let mut pool = RowPool::new(&net, 2).unwrap();
    for _ in 0..3 {
        // Longer than the spin and yield phases: the workers are asleep.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let mut w = vec![0.0f32; s.w_dim];
        pool.map(&z, &[], &mut w).unwrap();
        assert_bits_eq(&w, &want, "after sleeping");
    }
}

#[test]
fn bad_arguments_are_errors_and_write_nothing() {
    let _serial = serial();
    let net = small_net(8, 2, 16, 2, 16);
    let s = *net.spec();
    let mut pool = RowPool::new(&net, 2).unwrap();
    let z = zs(&net, 2, 0);
    let c = labels(&net, 2, 0);
    let mut w = vec![7.0f32; 2 * s.w_dim];
    let msg = |r: Result<(), stylemap::Error>| r.unwrap_err().to_string();
    assert!(msg(pool.map(&z[..s.z_dim], &c, &mut w)).contains("z has"));
    assert!(msg(pool.map(&z, &[], &mut w)).contains("c has"));
    assert!(msg(pool.map(&z, &c, &mut w[..s.w_dim + 1])).contains("w_dim"));
    let mut bad = z.clone();
    bad[3] = f32::NAN;
    assert!(msg(pool.map(&bad, &c, &mut w)).contains("NaN"));
    assert!(w.iter().all(|&v| v == 7.0), "nothing written on error");
    // Still works afterwards, and an empty batch is fine.
    pool.map(&[], &[], &mut []).unwrap();
    pool.map(&z, &c, &mut w).unwrap();
    assert_bits_eq(&w, &core_forward(&net, &z, &c), "after errors");
}

#[test]
fn overflow_is_reported_like_the_core() {
    let _serial = serial();
    // Finite but huge weights: the first layer overflows f32.
    let mut spec = MappingSpec::nvlabs(4, 0, 16, 2, 1);
    spec.layer_features = 16;
    let params = vec![1e30f32; spec.param_len()];
    let net = Network::from_parts(spec, params, vec![0.0; 16], Layout::Nvlabs).unwrap();
    let z = vec![1.0f32; 4];
    let mut scratch = vec![0.0f32; spec.scratch_len()];
    let mut w = vec![0.0f32; 16];
    let core_err = net
        .core()
        .forward(&z, &[], &mut scratch, &mut w)
        .unwrap_err()
        .to_string();
    for threads in [1, 2] {
        let mut pool = RowPool::new(&net, threads).unwrap();
        let e = pool.map(&z, &[], &mut w).unwrap_err().to_string();
        assert_eq!(e, core_err, "{threads} threads");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn drop_joins_every_thread() {
    let _serial = serial();
    let net = small_net(16, 0, 64, 2, 64);
    let s = *net.spec();
    let z = zs(&net, 1, 1);
    assert_pool_threads(0, "before");
    for threads in [1, 2, 3, 4, 8] {
        let mut pool = RowPool::new(&net, threads).unwrap();
        assert_pool_threads(threads - 1, "started");
        let mut w = vec![0.0f32; s.w_dim];
        pool.map(&z, &[], &mut w).unwrap();
        drop(pool);
        assert_pool_threads(0, &format!("{threads} threads, dropped"));
    }
    // Dropped without ever being used, and dropped while the workers sleep.
    for _ in 0..20 {
        drop(RowPool::new(&net, 3).unwrap());
    }
    let pool = RowPool::new(&net, 2).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3));
    drop(pool);
    assert_pool_threads(0, "dropped while asleep");
    // A mapper owns its pool: started on the first GEMV call, joined on drop,
    // restarted when the thread count changes.
    let mut m = Mapper::new(&net).with_threads(3);
    assert_pool_threads(0, "started lazily");
    let mut w = vec![0.0f32; s.w_dim];
    m.map(&z, &[], &mut w).unwrap();
    assert_pool_threads(2, "mapper, 3 threads");
    let mut m = m.with_threads(2);
    m.map(&z, &[], &mut w).unwrap();
    assert_pool_threads(1, "mapper, 2 threads");
    drop(m);
    assert_pool_threads(0, "mapper dropped");
}

#[test]
fn mapper_and_pool_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Mapper<'static>>();
    check::<RowPool>();
    // A mapper used from another thread than the one that started its pool.
    let _serial = serial();
    let net = small_net(16, 0, 32, 3, 32);
    let s = *net.spec();
    let z = zs(&net, 1, 2);
    let want = core_forward(&net, &z, &[]);
    let mut m = Mapper::new(&net).with_threads(2);
    let mut w = vec![0.0f32; s.w_dim];
    m.map(&z, &[], &mut w).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut w2 = vec![0.0f32; s.w_dim];
            m.map(&z, &[], &mut w2).unwrap();
            assert_bits_eq(&w2, &want, "from another thread");
        });
    });
    assert_bits_eq(&w, &want, "first call");
}

// ---------------------------------------------------------------------------
// No allocation on the batch-1 path (child process).

#[test]
fn batch_1_path_does_not_allocate() {
    run_child("child_batch_1_allocations", &[]);
}

/// Allocations made by `f`, on any thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    f();
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
#[ignore = "run in a child process by `batch_1_path_does_not_allocate`"]
fn child_batch_1_allocations() {
    if !is_child() {
        return;
    }
    // The counter sees allocations, on this thread and on others.
    assert!(allocations(|| drop(std::hint::black_box(vec![0u8; 64]))) >= 1);
    let other = allocations(|| {
        std::thread::scope(|s| {
            s.spawn(|| drop(std::hint::black_box(vec![0u8; 64])));
        });
    });
    assert!(other >= 1);
    let builtin = Network::builtin();
    let cond = small_net(16, 5, 48, 4, 33);
    for net in [&builtin, &cond] {
        let s = *net.spec();
        let z = zs(net, 4, 11);
        let c = labels(net, 4, 11);
        let mut w = vec![0.0f32; s.w_dim];
        let mut scratch = vec![0.0f32; s.scratch_len()];
        let core = net.core();
        let n = allocations(|| {
            for i in 0..4 {
                let zi = &z[i * s.z_dim..(i + 1) * s.z_dim];
                let ci = &c[i * s.c_dim..(i + 1) * s.c_dim];
                core.forward(zi, ci, &mut scratch, &mut w).unwrap();
            }
        });
        assert_eq!(n, 0, "core forward, c_dim {}", s.c_dim);
        for threads in [1, 2, 3] {
            let mut m = Mapper::new(net).with_threads(threads);
            // Warm-up: starts the pool.
            m.map(&z[..s.z_dim], &c[..s.c_dim], &mut w).unwrap();
            let n = allocations(|| {
                for i in 0..4 {
                    let zi = &z[i * s.z_dim..(i + 1) * s.z_dim];
                    let ci = &c[i * s.c_dim..(i + 1) * s.c_dim];
                    m.map(zi, ci, &mut w).unwrap();
                }
            });
            assert_eq!(
                n, 0,
                "Mapper::map batch 1, {threads} threads, c_dim {}",
                s.c_dim
            );
        }
    }
}

// ---------------------------------------------------------------------------
// STYLEMAP_KERNEL (child processes).

#[test]
fn kernel_env_var_is_honoured_or_an_error() {
    run_child("child_kernel_env", &[(Kernel::ENV_VAR, "bogus")]);
    run_child("child_kernel_env", &[(Kernel::ENV_VAR, " ")]);
    run_child("child_kernel_env", &[(Kernel::ENV_VAR, "scalar")]);
    run_child("child_kernel_env", &[(Kernel::ENV_VAR, "portable")]);
    for k in Kernel::ALL {
        if !k.is_available() {
            run_child("child_kernel_env", &[(Kernel::ENV_VAR, k.name())]);
        }
    }
    // Unset (run_child removes it).
    run_child("child_kernel_env", &[]);
}

#[test]
#[ignore = "run in a child process by `kernel_env_var_is_honoured_or_an_error`"]
fn child_kernel_env() {
    if !is_child() {
        return;
    }
    let value = std::env::var(Kernel::ENV_VAR).unwrap_or_default();
    let named = Kernel::from_name(value.trim());
    let mut spec = MappingSpec::nvlabs(8, 0, 48, 2, 1);
    spec.layer_features = 48;
    let params = values(spec.param_len(), 1, 0.3);
    let built = Network::from_parts(spec, params.clone(), vec![0.0; 48], Layout::Nvlabs);
    let env = stylemap::network::kernel_from_env();
    match named {
        None if value.trim().is_empty() => {
            // Unset or blank: the best kernel.
            assert_eq!(env.unwrap(), None);
            let net = built.unwrap();
            assert_eq!(net.kernel(), Kernel::best());
            assert_eq!(Network::builtin().kernel(), Kernel::best());
        }
        None => {
            let e = env.unwrap_err().to_string();
            assert!(e.contains("unknown kernel") && e.contains(&value), "{e}");
            assert!(built.unwrap_err().to_string().contains("unknown kernel"));
            assert!(Network::try_builtin().is_err());
            // The infallible constructor ignores the variable.
            assert_eq!(Network::builtin().kernel(), Kernel::best());
        }
        Some(k) if !k.is_available() => {
            let e = built.unwrap_err().to_string();
            assert!(e.contains("cannot run"), "{e}");
            assert!(env.is_err());
            assert!(Network::try_builtin().is_err());
        }
        Some(k) => {
            assert_eq!(env.unwrap(), Some(k));
            let net = built.unwrap();
            assert_eq!(net.kernel(), k);
            assert_eq!(Mapper::new(&net).kernel(), k);
            assert_eq!(RowPool::new(&net, 2).unwrap().kernel(), k);
            // An explicit choice overrides the variable.
            let best = net.clone().with_kernel(Kernel::best()).unwrap();
            assert_eq!(best.kernel(), Kernel::best());
            // Both paths run the forced kernel: same bits as the core with it.
            let z = zs(&net, 3, 4);
            for (threshold, want) in [
                (usize::MAX, core_forward(&net, &z, &[])),
                (0, packed_forward(&net, &z, &[])),
            ] {
                let mut w = vec![0.0f32; 3 * 48];
                Mapper::new(&net)
                    .with_threads(2)
                    .with_gemm_threshold(threshold)
                    .map(&z, &[], &mut w)
                    .unwrap();
                assert_bits_eq(&w, &want, &format!("forced kernel, threshold {threshold}"));
            }
        }
    }
    // A kernel that cannot run here is refused by the explicit API too.
    if let Some(k) = Kernel::ALL.iter().find(|k| !k.is_available()) {
        let net = Network::from_parts(spec, params, vec![0.0; 48], Layout::Nvlabs);
        if let Ok(net) = net {
            assert!(net.with_kernel(*k).is_err());
        }
    }
}
