//! Criterion suite of issue 6: the reduced-precision kernels on the 8 x 512
//! network, layer by layer, against the f32 path measured in the same run.
//!
//! Weights: the built-in network's folded f32 layers, rounded here (the pack
//! format is built elsewhere): f16 and bf16 round-to-nearest-even, int8 with
//! one f32 scale per row and 32 inputs (`max |w| / 127`, round to nearest).
//! Groups (all with `Throughput::Elements(samples)`):
//!
//! - `quant_b1/{f32,f16,bf16,int8g32}/{kernel}`: one sample through the 8
//!   layers (bias + leaky ReLU fused), every available kernel but the scalar
//!   oracle; `f32` is `kernels::gemv_bias_act` (the per-sample f32 GEMV).
//! - `quant_b8/...`: 8 samples; `f32` is the packed batched f32 kernel
//!   (`gemm::gemm_packed_bias_act`), the f32 path at this batch size.
//!
//! - `quant_l2_b1/...`: one 512 x 512 layer eight times over the same
//!   memory (0.5 MB in f16/bf16, resident in L2): the kernels' instruction
//!   count without the cache bandwidth, e.g. the bf16 widening (1 shuffle
//!   per 16 weights with AVX-512BW, see `kernels::quant::x86`).
//!
//! `cargo bench --bench quant` (about a minute); `-- quant_b1/` for batch 1.
//! Bytes streamed per forward: f32 8.4 MB, f16/bf16 4.2 MB, int8 2.1 MB + 0.26
//! MB of scales.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stylemap::Network;
use stylemap::core::kernels::quant::{self, QNR, QWeights};
use stylemap::core::kernels::{gemm, gemv_bias_act};
use stylemap::core::{Activation, Kernel};

use common::latents;

/// int8 scale group of the benchmark.
const GROUP: usize = 32;

/// f32 to IEEE binary16 bits, round to nearest even (finite inputs).
fn f16_rne(f: f32) -> u16 {
    let b = f.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = f.abs();
    if a >= 65520.0 {
        return sign | 0x7c00;
    }
    if a < 6.103_515_6e-5 {
        // Subnormal (or rounds up to the smallest normal, 0x400): a * 2^24 is exact.
        return sign | (a * 16_777_216.0).round_ties_even() as u16;
    }
    let e = ((b >> 23) & 0xff) as i32 - 127 + 15;
    let man = b & 0x7f_ffff;
    let mut h = ((e as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) {
        h += 1;
    }
    sign | h as u16
}

/// f32 to bfloat16 bits, round to nearest even (finite inputs).
fn bf16_rne(f: f32) -> u16 {
    let b = f.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// One layer in every format.
struct Layer {
    inp: usize,
    out: usize,
    act: Activation,
    f32_rows: Vec<f32>,
    f32_packed: Vec<f32>,
    f16: Vec<u16>,
    bf16: Vec<u16>,
    q: Vec<i8>,
    scales: Vec<f32>,
    bias: Vec<f32>,
}

impl Layer {
    fn new(w: &[f32], bias: &[f32], inp: usize, out: usize, act: Activation) -> Layer {
        let panels = out.div_ceil(QNR);
        let at = |p: usize, k: usize, j: usize| {
            let r = p * QNR + j;
            if r < out { w[r * inp + k] } else { 0.0 }
        };
        let mut f16 = Vec::new();
        let mut bf16 = Vec::new();
        let mut q = Vec::new();
        let mut scales = Vec::new();
        let groups = quant::groups(inp, GROUP);
        for p in 0..panels {
            let mut pscales = vec![0.0f32; groups * QNR];
            for g in 0..groups {
                for j in 0..QNR {
                    let m = (g * GROUP..((g + 1) * GROUP).min(inp))
                        .map(|k| at(p, k, j).abs())
                        .fold(0.0f32, f32::max);
                    pscales[g * QNR + j] = m / 127.0;
                }
            }
            for k in 0..inp {
                for j in 0..QNR {
                    let v = at(p, k, j);
                    f16.push(f16_rne(v));
                    bf16.push(bf16_rne(v));
                    let s = pscales[(k / GROUP) * QNR + j];
                    let qi = if s > 0.0 {
                        (v / s).round().clamp(-127.0, 127.0)
                    } else {
                        0.0
                    };
                    q.push(qi as i8);
                }
            }
            scales.extend(pscales);
        }
        let nr = Kernel::best().packed_nr();
        let mut f32_packed = vec![0.0f32; gemm::packed_len(out, inp, nr)];
        gemm::pack_layer(w, out, inp, nr, &mut f32_packed).expect("pack");
        Layer {
            inp,
            out,
            act,
            f32_rows: w.to_vec(),
            f32_packed,
            f16,
            bf16,
            q,
            scales,
            bias: bias.to_vec(),
        }
    }
}

/// The formats timed.
#[derive(Clone, Copy)]
enum Fmt {
    F32,
    F16,
    Bf16,
    Int8,
}

impl Fmt {
    fn name(self) -> &'static str {
        match self {
            Fmt::F32 => "f32",
            Fmt::F16 => "f16",
            Fmt::Bf16 => "bf16",
            Fmt::Int8 => "int8g32",
        }
    }
}

/// The whole forward of `batch` samples of `x` (already normalised) through
/// the layers, ping-ponging between `a` and `b`.
fn forward(kernel: Kernel, fmt: Fmt, layers: &[&Layer], x: &[f32], a: &mut [f32], b: &mut [f32]) {
    let batch = x.len() / layers[0].inp;
    a[..x.len()].copy_from_slice(x);
    let (mut src, mut dst) = (a, b);
    for l in layers {
        let xs = &src[..batch * l.inp];
        let ys = &mut dst[..batch * l.out];
        match fmt {
            Fmt::F32 if batch == 1 => {
                gemv_bias_act(kernel, &l.f32_rows, &l.bias, xs, l.act, ys).expect("gemv")
            }
            Fmt::F32 => {
                gemm::gemm_packed_bias_act(kernel, &l.f32_packed, &l.bias, xs, l.inp, l.act, ys)
                    .expect("gemm")
            }
            _ => {
                let w = match fmt {
                    Fmt::F16 => QWeights::F16(&l.f16),
                    Fmt::Bf16 => QWeights::Bf16(&l.bf16),
                    _ => QWeights::Int8 {
                        q: &l.q,
                        scales: &l.scales,
                        group: GROUP,
                    },
                };
                quant::qgemm_bias_act(kernel, w, &l.bias, xs, l.inp, l.act, ys).expect("qgemm")
            }
        }
        std::mem::swap(&mut src, &mut dst);
    }
}

fn quant_forward(c: &mut Criterion) {
    let net = Network::builtin();
    let (_, folded) = net.core().layers();
    let layers: Vec<Layer> = folded
        .map(|l| {
            Layer::new(
                l.weight,
                l.bias,
                l.in_features,
                l.out_features,
                l.activation,
            )
        })
        .collect();
    let width = layers.iter().map(|l| l.inp.max(l.out)).max().unwrap_or(0);
    let all: Vec<&Layer> = layers.iter().collect();
    for batch in [1usize, 8] {
        let mut z = latents(&net, batch);
        for row in z.chunks_exact_mut(layers[0].inp) {
            let ms = row.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / row.len() as f64;
            let r = (1.0 / (ms + 1e-8).sqrt()) as f32;
            row.iter_mut().for_each(|v| *v *= r);
        }
        let (mut a, mut b) = (vec![0.0f32; batch * width], vec![0.0f32; batch * width]);
        let mut g = c.benchmark_group(format!("quant_b{batch}"));
        g.throughput(Throughput::Elements(batch as u64));
        let best = Kernel::best();
        g.bench_function(BenchmarkId::new("f32", best.name()), |bench| {
            bench.iter(|| forward(best, Fmt::F32, &all, black_box(&z), &mut a, &mut b));
        });
        for fmt in [Fmt::F16, Fmt::Bf16, Fmt::Int8] {
            for &k in Kernel::ALL
                .iter()
                .filter(|k| k.is_available() && **k != Kernel::Scalar)
            {
                g.bench_function(BenchmarkId::new(fmt.name(), k.name()), |bench| {
                    bench.iter(|| forward(k, fmt, &all, black_box(&z), &mut a, &mut b));
                });
            }
        }
        g.finish();
    }
    // The second layer (512 -> 512) eight times over the same memory: 0.5 MB
    // of f16/bf16, resident in L2, so the kernels' instruction count shows
    // rather than the cache bandwidth (one core's 2 MiB share of the
    // 2-thread forward sits in between).
    let resident: Vec<&Layer> = vec![&layers[1]; 8];
    let z = latents(&net, 1);
    let (mut a, mut b) = (vec![0.0f32; width], vec![0.0f32; width]);
    let mut g = c.benchmark_group("quant_l2_b1");
    g.throughput(Throughput::Elements(1));
    for fmt in [Fmt::F16, Fmt::Bf16, Fmt::Int8] {
        for &k in Kernel::ALL
            .iter()
            .filter(|k| k.is_available() && **k != Kernel::Scalar)
        {
            g.bench_function(BenchmarkId::new(fmt.name(), k.name()), |bench| {
                bench.iter(|| forward(k, fmt, &resident, black_box(&z), &mut a, &mut b));
            });
        }
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(2000))
        .sample_size(40)
}

criterion_group! {
    name = quant;
    config = config();
    targets = quant_forward
}
criterion_main!(quant);
