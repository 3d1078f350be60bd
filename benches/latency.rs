//! Criterion suite of issue 4: forward latency of the mapping network.
//!
//! Groups (all with `Throughput::Elements(samples)`, so criterion prints
//! samples/s next to the time per call):
//!
//! - `mapper/t{T}/{B}`: `stylemap::Mapper::map` (the production path: the
//!   per-sample GEMV / row-split pool / batched path the mapper picks) on the
//!   built-in 8x512 network, batch `B` in 1, 8, 64, 512, `T` = 1 or 2 threads.
//! - `forward/{kernel}`: one sample through the core
//!   `MappingNetwork::forward` with `with_kernel(kernel)`, every kernel
//!   available here (the scalar oracle is the baseline).
//! - `layer512/{kernel}`: one 512x512 layer alone (`kernels::gemv_bias_act`,
//!   bias + leaky ReLU fused), 1 MiB of weights: L2-resident.
//! - `sampler/...`: one z of 512 values: Box-Muller over xoshiro256++, the
//!   core's numpy-compatible sampler (correctly rounded log) and
//!   `stylemap::seeds` (numpy's, with the platform log).
//! - `packed/{kernel}/{B}`: the core's batched path alone,
//!   `PackedNetwork::forward_batch` over weights packed once for `kernel`
//!   (every available kernel but the scalar oracle), one thread, B in 8, 64,
//!   512.
//! - `amx/{B}`: the core's AMX path alone, `AmxNetwork::forward_batch`
//!   (f32 on AMX tiles by a three-way bf16 split), one thread, B in 8, 64,
//!   512; only where AMX runs.
//! - `matrixmultiply/t1/{B}`: the baseline "`matrixmultiply` alone": each
//!   layer one sgemm (ndarray's `general_mat_mul`), one thread.
//!
//! `cargo bench --bench latency` (about 3 minutes); `cargo bench --bench
//! latency -- mapper` for one group. The roofline and the bound table are in
//! `benches/roofline.rs`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stylemap::core::kernels::{amx, gemm, gemv_bias_act};
use stylemap::core::sampler;
use stylemap::core::{Activation, Kernel, PackedNetwork};
use stylemap::{Mapper, Network};

use common::{BATCHES, MatmulScratch, THREADS, latents, matmul_forward};

fn mapper(c: &mut Criterion) {
    let net = Network::builtin();
    let wd = net.spec().w_dim;
    let mut g = c.benchmark_group("mapper");
    for &t in &THREADS {
        let mut m = Mapper::new(&net).with_threads(t);
        for &b in &BATCHES {
            let z = latents(&net, b);
            let mut w = vec![0.0f32; b * wd];
            g.throughput(Throughput::Elements(b as u64));
            g.bench_function(BenchmarkId::new(format!("t{t}"), b), |bench| {
                bench.iter(|| m.map(black_box(&z), &[], &mut w).expect("map"));
            });
        }
    }
    g.finish();
}

fn forward_per_kernel(c: &mut Criterion) {
    let net = Network::builtin();
    let s = *net.spec();
    let z = latents(&net, 1);
    let mut scratch = vec![0.0f32; s.scratch_len()];
    let mut w = vec![0.0f32; s.w_dim];
    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(1));
    for &k in Kernel::ALL.iter().filter(|k| k.is_available()) {
        let core = net.core().clone().with_kernel(k).expect("available kernel");
        g.bench_function(k.name(), |bench| {
            bench.iter(|| {
                core.forward(black_box(&z), &[], &mut scratch, &mut w)
                    .expect("forward");
            });
        });
    }
    g.finish();
}

fn layer_per_kernel(c: &mut Criterion) {
    let net = Network::builtin();
    let (_, mut layers) = net.core().layers();
    let layer = layers.next().expect("a layer");
    let (weight, bias) = (layer.weight.to_vec(), layer.bias.to_vec());
    let x = latents(&net, 1);
    let mut y = vec![0.0f32; layer.out_features];
    let mut g = c.benchmark_group("layer512");
    g.throughput(Throughput::Elements(1));
    for &k in Kernel::ALL.iter().filter(|k| k.is_available()) {
        g.bench_function(k.name(), |bench| {
            bench.iter(|| {
                gemv_bias_act(
                    k,
                    &weight,
                    &bias,
                    black_box(&x),
                    Activation::LeakyRelu,
                    &mut y,
                )
                .expect("gemv");
            });
        });
    }
    g.finish();
}

fn samplers(c: &mut Criterion) {
    let mut z = [0.0f32; 512];
    let mut g = c.benchmark_group("sampler");
    g.throughput(Throughput::Elements(1));
    let mut seed = 0u32;
    g.bench_function("box_muller_xoshiro/512", |b| {
        b.iter(|| {
            seed = seed.wrapping_add(1);
            sampler::z_from_seed_xoshiro(u64::from(black_box(seed)), &mut z);
        });
    });
    // Same-run baseline: the pre-vectorisation computation (pair by pair,
    // pure-Rust libm log/sqrt/sincos), kept in the core as the test oracle.
    g.bench_function("box_muller_libm_reference/512", |b| {
        b.iter(|| {
            seed = seed.wrapping_add(1);
            sampler::z_from_seed_xoshiro_reference(u64::from(black_box(seed)), &mut z);
        });
    });
    g.bench_function("numpy_core/512", |b| {
        b.iter(|| {
            seed = seed.wrapping_add(1);
            sampler::z_from_seed_numpy(black_box(seed), &mut z);
        });
    });
    g.bench_function("numpy_platform_log/512", |b| {
        b.iter(|| {
            seed = seed.wrapping_add(1);
            stylemap::seeds::z_from_seed_numpy(black_box(seed), &mut z);
        });
    });
    g.finish();
    black_box(z);
}

fn packed_per_kernel(c: &mut Criterion) {
    let net = Network::builtin();
    let s = *net.spec();
    let mut g = c.benchmark_group("packed");
    for &k in Kernel::ALL
        .iter()
        .filter(|k| k.is_available() && **k != Kernel::Scalar)
    {
        let mut packed = vec![0.0f32; gemm::packed_network_len(&s, k)];
        gemm::pack_network(&s, net.core().params(), k, &mut packed).expect("pack");
        let pn = PackedNetwork::new(s, k, packed, net.w_avg().to_vec()).expect("packed net");
        for &b in &BATCHES[1..] {
            let z = latents(&net, b);
            let mut w = vec![0.0f32; b * s.w_dim];
            let mut scratch = vec![0.0f32; pn.scratch_len(b)];
            g.throughput(Throughput::Elements(b as u64));
            g.bench_function(BenchmarkId::new(k.name(), b), |bench| {
                bench.iter(|| {
                    pn.forward_batch(black_box(&z), &[], b, &mut scratch, &mut w)
                        .expect("forward_batch");
                });
            });
        }
    }
    g.finish();
}

fn amx_alone(c: &mut Criterion) {
    if !amx::is_available() {
        return;
    }
    let net = Network::builtin();
    let s = *net.spec();
    // Tile rows must be cache lines: the std crate's 64-byte-aligned buffer.
    let mut packed = stylemap::bigbuf::BigBuf::<u32>::zeroed(amx::network_len(&s));
    amx::pack_network(&s, net.core().params(), &mut packed).expect("pack");
    let an = amx::AmxNetwork::new(s, packed).expect("amx network");
    let mut g = c.benchmark_group("amx");
    for &b in &BATCHES[1..] {
        let z = latents(&net, b);
        let mut w = vec![0.0f32; b * s.w_dim];
        let mut scratch = vec![0.0f32; an.scratch_len(b)];
        g.throughput(Throughput::Elements(b as u64));
        g.bench_function(BenchmarkId::from_parameter(b), |bench| {
            bench.iter(|| {
                an.forward_batch(black_box(&z), &[], b, &mut scratch, &mut w)
                    .expect("forward_batch");
            });
        });
    }
    g.finish();
}

fn matrixmultiply_alone(c: &mut Criterion) {
    let net = Network::builtin();
    let wd = net.spec().w_dim;
    let mut scratch = MatmulScratch::default();
    let mut g = c.benchmark_group("matrixmultiply");
    for &b in &BATCHES {
        let z = latents(&net, b);
        let mut w = vec![0.0f32; b * wd];
        g.throughput(Throughput::Elements(b as u64));
        g.bench_function(BenchmarkId::new("t1", b), |bench| {
            bench.iter(|| matmul_forward(&net, black_box(&z), &mut w, &mut scratch));
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_millis(2500))
        .sample_size(40)
}

criterion_group! {
    name = latency;
    config = config();
    targets = mapper, forward_per_kernel, layer_per_kernel, packed_per_kernel, amx_alone,
        samplers, matrixmultiply_alone
}
criterion_main!(latency);
