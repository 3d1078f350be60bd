//! Roofline probe of issue 4 (a plain bench binary, `harness = false`, no
//! criterion): this machine's bounds, and the mapper as a fraction of them.
//!
//! 1. **Peak FMA** per core and on two cores: `kernels::probe::fma_loop`
//!    (12 independent register chains, AVX-512 if available, else AVX2+FMA,
//!    else portable).
//! 2. **Read bandwidth** for working sets of 32 KiB, 256 KiB, 1 MiB, 2 MiB,
//!    4 MiB, the f32 network (8.4 MB) and 64 MiB, on one core and on two
//!    (each core sums its half): `kernels::probe::stream_sum`. For the
//!    network's size and 64 MiB also through the best GEMV kernel on a
//!    `[rows, 512]` matrix (the access pattern of a forward). A two-core
//!    probe that does not beat one core by 1.2x (a thread was descheduled,
//!    another process held a core) is retried, up to 3 attempts.
//! 3. **The bound** per sample, for batch B and T threads:
//!    `bound(B) = max(weight_bytes / bw_T, 2 * MACs * B / peak_T) / B`,
//!    with `bw_T` the T-core read bandwidth at the network's size and
//!    `peak_T` the T-core FMA peak: the bound, for f32 FMA kernels.
//!    Where AMX runs, also the tile unit's peak (`kernels::amx::tdp_loop`,
//!    bf16 flop/s) and the AMX path's own bound: its weights are 1.5x the
//!    bytes (three bf16 parts) and an f32 flop costs six bf16 flops, so
//!    `amx_bound(B) = max(1.5 weight_bytes / bw_T, 12 MACs B / tile_peak_T) / B`.
//! 4. **Measured** in the same run (median of repeated calls after a
//!    warm-up): `Mapper::map` with every available kernel on the packed FMA
//!    kernels (`GemmBackend::Packed`), the default mapper (`mapper-default`:
//!    AMX from 32 samples where it runs), the core's
//!    `PackedNetwork::forward_batch` alone (best kernel, one thread) and the
//!    `matrixmultiply`-alone baseline, per (B, T); printed next to the bound
//!    with the ratios of BENCHMARKS.md.
//!
//! `cargo bench --bench roofline` (about 2 minutes); `-- --quick` for a
//! shorter, noisier run. Output is Markdown.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stylemap::batch::GemmBackend;
use stylemap::core::kernels::{amx, gemm, gemv_bias_act, probe};
use stylemap::core::spec::Activation;
use stylemap::core::{Kernel, PackedNetwork};
use stylemap::{Mapper, Network};

use common::{
    BATCHES, Helper, MatmulScratch, THREADS, buffer, latents, macs, matmul_forward_threads, median,
    median_secs, weight_bytes,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

struct Opts {
    /// Time spent measuring each case.
    budget: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; a positional filter that does not
    // match this binary's name skips it (as criterion binaries do).
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-'))
        && !"roofline".contains(filter.as_str())
    {
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let opts = Opts {
        budget: Duration::from_millis(if quick { 250 } else { 1500 }),
    };

    let net = Network::builtin();
    let wbytes = weight_bytes(&net);
    let isa = probe::best();
    println!("# stylemap roofline probe\n");
    println!(
        "probe ISA: {} ({} lanes); GEMV kernel: {}; network: {} layers, {} weight+bias bytes, {} MACs/sample\n",
        isa.name(),
        probe::lanes(isa),
        net.kernel().name(),
        net.spec().num_layers,
        wbytes,
        macs(&net)
    );

    let one_core = fma_peak(isa, 1, &opts);
    let mut peak = [one_core, two_core(one_core, || fma_peak(isa, 2, &opts))];
    println!("## Peak FMA\n");
    println!("| threads | GFLOP/s | per core |");
    println!("|---:|---:|---:|");
    for (i, p) in peak.iter().enumerate() {
        let t = i + 1;
        println!("| {t} | {:.1} | {:.1} |", p / 1e9, p / 1e9 / t as f64);
    }
    // FMA units are per core: two cores that reach well under twice one
    // core's rate were sharing a core with another process. The bound then
    // uses twice the one-core peak (and says so).
    if peak[1] < 1.5 * peak[0] {
        println!(
            "\nnote: the 2-thread FMA probe reached only {:.2}x one core (another process on \
             the second core?); the bound uses 2 x the 1-thread peak",
            peak[1] / peak[0]
        );
        peak[1] = 2.0 * peak[0];
    }

    // The tile unit, where AMX runs (bf16 flop/s, per thread count).
    let tile_peak = amx::is_available().then(|| {
        let one = tdp_peak(1, &opts);
        let two = two_core(one, || tdp_peak(2, &opts)).max(one);
        println!("\n## Peak AMX tile products (bf16)\n");
        println!("| threads | bf16 GFLOP/s | f32 GFLOP/s at six bf16 products |");
        println!("|---:|---:|---:|");
        for (t, p) in [(1, one), (2, two)] {
            println!("| {t} | {:.0} | {:.1} |", p / 1e9, p / 6e9);
        }
        [one, two]
    });

    println!("\n## Read bandwidth (GB/s = 1e9 B/s)\n");
    println!("| working set | 1 thread | 2 threads | GEMV reader, 1 thread |");
    println!("|---|---:|---:|---:|");
    let sizes = [
        (32 * KIB, "32 KiB".to_owned()),
        (256 * KIB, "256 KiB".to_owned()),
        (MIB, "1 MiB".to_owned()),
        (2 * MIB, "2 MiB".to_owned()),
        (4 * MIB, "4 MiB".to_owned()),
        (wbytes, format!("{:.1} MB (network)", wbytes as f64 / 1e6)),
        (64 * MIB, "64 MiB".to_owned()),
    ];
    let mut bw_net = [0.0f64; 2];
    for (bytes, label) in &sizes {
        let one = read_bandwidth(isa, *bytes, 1, &opts);
        let two = two_core(one, || read_bandwidth(isa, *bytes, 2, &opts));
        let gemv = if *bytes >= 4 * MIB {
            format!("{:.1}", gemv_bandwidth(net.kernel(), *bytes, &opts) / 1e9)
        } else {
            "-".to_owned()
        };
        if *bytes == wbytes {
            bw_net = [one, two];
        }
        println!("| {label} | {:.1} | {:.1} | {gemv} |", one / 1e9, two / 1e9);
    }

    if bw_net[1] < bw_net[0] {
        println!(
            "\nnote: 2 threads read slower than 1 at the network's size: the second core \
             was busy; the 2-thread bound below is not meaningful"
        );
    }

    let bound = |b: usize, t: usize| -> f64 {
        let mem = wbytes as f64 / bw_net[t - 1];
        let flop = 2.0 * macs(&net) as f64 * b as f64 / peak[t - 1];
        mem.max(flop) / b as f64 * 1e6
    };
    let amx_bound = |b: usize, t: usize| -> Option<f64> {
        let peak = tile_peak?[t - 1];
        let mem = 1.5 * wbytes as f64 / bw_net[t - 1];
        let flop = 12.0 * macs(&net) as f64 * b as f64 / peak;
        Some(mem.max(flop) / b as f64 * 1e6)
    };
    println!("\n## Bound, µs per sample\n");
    println!("bound(B) = max(weight_bytes / bw_T(network), 2 * MACs * B / peak_T) / B\n");
    println!("| threads | B=1 | B=8 | B=64 | B=512 |");
    println!("|---:|---:|---:|---:|---:|");
    for &t in &THREADS {
        let cells: Vec<String> = BATCHES
            .iter()
            .map(|&b| format!("{:.1}", bound(b, t)))
            .collect();
        println!("| {t} | {} |", cells.join(" | "));
    }
    if tile_peak.is_some() {
        println!("\namx_bound(B) = max(1.5 weight_bytes / bw_T, 12 MACs B / tile_peak_T) / B\n");
        println!("| threads | B=1 | B=8 | B=64 | B=512 |");
        println!("|---:|---:|---:|---:|---:|");
        for &t in &THREADS {
            let cells: Vec<String> = BATCHES
                .iter()
                .map(|&b| format!("{:.1}", amx_bound(b, t).unwrap_or(f64::NAN)))
                .collect();
            println!("| {t} | {} |", cells.join(" | "));
        }
    }

    // Measured, same run.
    let kernels: Vec<Kernel> = Kernel::ALL
        .iter()
        .copied()
        .filter(|k| k.is_available())
        .collect();
    println!("\n## Measured, µs per sample (median)\n");
    let mut head = String::from("| threads | B | bound |");
    let mut rule = String::from("|---:|---:|---:|");
    for k in &kernels {
        head.push_str(&format!(" mapper-{} |", k.name()));
        rule.push_str("---:|");
    }
    let best_kernel = net.kernel();
    head.push_str(&format!(
        " mapper-default | packed-{} | matrixmultiply | bound / mapper-{k} | bound / mapper-default | amx_bound / mapper-default | scalar / mapper-default | matrixmultiply / mapper-default |",
        best_kernel.name(),
        k = best_kernel.name()
    ));
    rule.push_str("---:|---:|---:|---:|---:|---:|---:|---:|");
    let spec = *net.spec();
    let mut packed = vec![0.0f32; gemm::packed_network_len(&spec, best_kernel)];
    gemm::pack_network(&spec, net.core().params(), best_kernel, &mut packed).expect("pack");
    let packed = PackedNetwork::new(spec, best_kernel, packed, net.w_avg().to_vec())
        .expect("packed network");
    println!("{head}\n{rule}");
    let nets: Vec<Network> = kernels
        .iter()
        .map(|&k| net.clone().with_kernel(k).expect("available"))
        .collect();
    for &t in &THREADS {
        for &b in &BATCHES {
            let z = latents(&net, b);
            let mut w = vec![0.0f32; b * net.spec().w_dim];
            let mut row = format!("| {t} | {b} | {:.1} |", bound(b, t));
            let (mut scalar, mut best) = (f64::NAN, f64::NAN);
            for (k, n) in kernels.iter().zip(&nets) {
                let mut m = Mapper::new(n)
                    .with_threads(t)
                    .with_gemm_backend(GemmBackend::Packed);
                let us = median_secs(opts.budget, 3, || {
                    m.map(black_box(&z), &[], &mut w).expect("map")
                }) * 1e6
                    / b as f64;
                if *k == Kernel::Scalar {
                    scalar = us;
                }
                if *k == best_kernel {
                    best = us;
                }
                row.push_str(&format!(" {us:.1} |"));
            }
            // The default mapper: AMX where it runs, else the same as best.
            let mut m = Mapper::new(&net).with_threads(t);
            let default = median_secs(opts.budget, 3, || {
                m.map(black_box(&z), &[], &mut w).expect("map")
            }) * 1e6
                / b as f64;
            row.push_str(&format!(" {default:.1} |"));
            // The core's batched path alone (one thread).
            let pk = if t == 1 {
                let mut scratch = vec![0.0f32; packed.scratch_len(b)];
                let us = median_secs(opts.budget, 3, || {
                    packed
                        .forward_batch(black_box(&z), &[], b, &mut scratch, &mut w)
                        .expect("forward_batch");
                }) * 1e6
                    / b as f64;
                format!("{us:.1}")
            } else {
                "-".to_owned()
            };
            row.push_str(&format!(" {pk} |"));
            let mut scratch: Vec<MatmulScratch> =
                (0..t).map(|_| MatmulScratch::default()).collect();
            let mm = median_secs(opts.budget, 3, || {
                matmul_forward_threads(&net, black_box(&z), &mut w, &mut scratch, t);
            }) * 1e6
                / b as f64;
            // The AMX bound only describes batches the default mapper runs on AMX.
            let amx_frac = amx_bound(b, t)
                .filter(|_| m.runs_amx(b))
                .map_or("-".to_owned(), |a| format!("{:.2}", a / default));
            row.push_str(&format!(
                " {mm:.1} | {:.2} | {:.2} | {amx_frac} | {:.1}x | {:.2}x |",
                bound(b, t) / best,
                bound(b, t) / default,
                scalar / default,
                mm / default
            ));
            println!("{row}");
        }
    }
    println!(
        "\n(mapper-{k} is Kernel::best() on the FMA kernels; mapper-default is what \
         Mapper::new runs (the AMX kernel from 32 samples where it can run); bound / X is the \
         fraction of the FMA bound achieved, 1.00 = at the bound (AMX can pass it); the other \
         ratios are speed-ups of mapper-default)",
        k = best_kernel.name()
    );
}

/// A two-core probe: two cores have their own FMA units, L1 and L2, so they
/// should beat one; a result below 1.2x `one` means a thread was descheduled
/// or shared a core, so the probe is retried (up to 3 attempts, best kept).
fn two_core(one: f64, mut probe: impl FnMut() -> f64) -> f64 {
    let mut best = probe();
    for _ in 1..3 {
        if best >= 1.2 * one {
            break;
        }
        best = best.max(probe());
    }
    best
}

/// Peak FMA throughput in flop/s on `threads` (1 or 2) cores.
fn fma_peak(isa: Kernel, threads: usize, opts: &Opts) -> f64 {
    // ~10 ms per call at a few hundred GFLOP/s.
    let iters: u64 = 100_000;
    let flops = probe::fma_flops_per_iter(isa) as f64 * iters as f64;
    if threads == 1 {
        let s = median_secs(opts.budget, 5, || {
            black_box(probe::fma_loop(isa, black_box(iters)).expect("available"));
        });
        return flops / s;
    }
    let mut helper = Helper::new(move |reps| {
        for _ in 0..reps {
            black_box(probe::fma_loop(isa, black_box(iters)).expect("available"));
        }
    });
    let s = median_secs(opts.budget, 5, || {
        helper.run(1, |reps| {
            for _ in 0..reps {
                black_box(probe::fma_loop(isa, black_box(iters)).expect("available"));
            }
        });
    });
    2.0 * flops / s
}

/// Peak tile throughput in bf16 flop/s on `threads` (1 or 2) cores.
fn tdp_peak(threads: usize, opts: &Opts) -> f64 {
    // ~5 ms per call at a few bf16 TFLOP/s.
    let iters: u64 = 100_000;
    let flops = amx::TDP_FLOPS_PER_ITER as f64 * iters as f64;
    let run = move |reps: u64| {
        for _ in 0..reps {
            amx::tdp_loop(black_box(iters)).expect("available");
        }
    };
    if threads == 1 {
        return flops / median_secs(opts.budget, 5, || run(1));
    }
    let mut helper = Helper::new(run);
    let s = median_secs(opts.budget, 5, || helper.run(1, run));
    2.0 * flops / s
}

/// Read bandwidth in B/s summing a `bytes` working set over and over with
/// `threads` (1 or 2) cores, each its own contiguous part.
fn read_bandwidth(isa: Kernel, bytes: usize, threads: usize, opts: &Opts) -> f64 {
    let buf = Arc::new(buffer(bytes));
    let len = buf.len();
    // At least ~8 MiB read per timed sample, so tiny sets are not timer-bound.
    let reps = (8 * MIB).div_ceil(bytes).max(1) as u64;
    let sum = move |data: &[f32], reps: u64| {
        for _ in 0..reps {
            black_box(probe::stream_sum(isa, black_box(data)).expect("available"));
        }
    };
    let total = bytes as f64 * reps as f64;
    if threads == 1 {
        let s = median_secs(opts.budget, 5, || sum(&buf, reps));
        return total / s;
    }
    let half = len / 2;
    let theirs = Arc::clone(&buf);
    let mut helper = Helper::new(move |r| sum(&theirs[half..], r));
    let mine = Arc::clone(&buf);
    let s = median_secs(opts.budget, 5, || {
        helper.run(reps, |r| sum(&mine[..half], r))
    });
    total / s
}

/// Read bandwidth in B/s of the GEMV `kernel` on a `[bytes / 2048, 512]`
/// matrix (one thread): the weight stream of a forward.
fn gemv_bandwidth(kernel: Kernel, bytes: usize, opts: &Opts) -> f64 {
    let cols = 512;
    let rows = bytes / 4 / cols;
    let w = buffer(rows * cols * 4);
    let bias = vec![0.0f32; rows];
    let x: Vec<f32> = (0..cols).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut y = vec![0.0f32; rows];
    let mut times = Vec::new();
    let start = Instant::now();
    // Warm-up, then timed calls.
    for _ in 0..2 {
        gemv_bias_act(kernel, &w, &bias, &x, Activation::Linear, &mut y).expect("gemv");
    }
    while times.len() < 5 || start.elapsed() < opts.budget {
        let t = Instant::now();
        gemv_bias_act(kernel, &w, &bias, black_box(&x), Activation::Linear, &mut y).expect("gemv");
        times.push(t.elapsed().as_secs_f64());
    }
    black_box(&y);
    (rows * cols * 4) as f64 / median(&mut times)
}
