//! The reduced-precision kernels (`kernels::quant`: f16, bf16, int8 with
//! per-group f32 scales) against the scalar oracle: every available kernel,
//! every precision, every `out` in 1..=70, 512 and 1024, every `in` in
//! 1..=70 and 512, batches 1..=9, int8 groups {1, 3, 16, 32, 64, in},
//! buffers offset by one element, random weights with extremes (f16
//! subnormals and 65504, bf16 exponents from 2^-133 to 2^100, int8 ±127,
//! zero scales). Plus bit-level properties: a sample's result does not
//! depend on the batch, the buffer offsets or the other samples, and the
//! FMA kernels (AVX2, AVX-512, NEON) agree with each other bit for bit.
//!
//! Environment: `STYLEMAP_KERNEL` and `STYLEMAP_REQUIRE_KERNELS`, as in
//! `kernels.rs` (see `common/mod.rs`): every kernel this CPU supports must
//! have been run, or the suite fails.
//!
//! # Tolerance (stated, not tuned)
//!
//! Weights widen exactly (f16, bf16 and int8 are all exact in f32), so a
//! kernel and the oracle evaluate the same real sum; they differ only in
//! rounding (FMA vs multiply-then-add, and for int8 the scale step). With
//! `eps = 2^-23`, `tiny = 2^-149` (the absolute error of an underflowing
//! product) and, per output,
//!
//! - f16/bf16: `M = sum_k |w_k x_k| + |b|`, `n = in`:
//!   `|y - y_oracle| <= 2 (n + 2) (eps M + tiny)`;
//! - int8 with `G` groups of at most `L` inputs:
//!   `M = sum_k |s_g(k) q_k x_k| + |b|`:
//!   `|y - y_oracle| <= 2 (L + G + 2) (eps M + tiny (1 + max_g |s_g|))`.
//!
//! Rationale (Higham 3.1, `gamma_n = n u / (1 - n u) <= n eps` for the
//! lengths here, `u = eps / 2`): each evaluation of a dot product of length
//! `n` lies within `gamma_n sum |terms|` of the exact value whatever the
//! order and whether or not it fuses; int8 is a dot product of length `L`
//! per group, then a sum of `G` scaled partials (one more rounding for the
//! scale product), so each evaluation is within `gamma_{L + G + 1}` of the
//! exact value relative to `M`; the `+ b` adds one more rounding, and the
//! difference of two evaluations is at most twice the bound. Leaky ReLU has
//! slope <= 1 and cannot widen the difference.

mod common;

use common::{assert_all_exercised, assert_required_kernels, for_each_kernel, under_test, uniform};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use stylemap_core::kernels::quant::scalar::{bf16_to_f32, f16_to_f32};
use stylemap_core::kernels::quant::{self, QNR, QWeights};
use stylemap_core::{Activation, Error, Kernel};

/// Precisions under test.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Prec {
    F16,
    Bf16,
    /// int8 with this group size (`0` = one scale per row, `group = in`).
    Int8(usize),
}

/// Int8 group sizes of the brief; 0 stands for `in`.
const GROUPS: [usize; 6] = [1, 3, 16, 32, 64, 0];

/// One layer's packed weights, owned, `offset` elements into each buffer.
struct Layer {
    prec: Prec,
    out: usize,
    inp: usize,
    group: usize,
    offset: usize,
    u16s: Vec<u16>,
    i8s: Vec<i8>,
    scales: Vec<f32>,
    bias: Vec<f32>,
}

impl Layer {
    fn weights(&self) -> QWeights<'_> {
        let o = self.offset;
        match self.prec {
            Prec::F16 => QWeights::F16(&self.u16s[o..]),
            Prec::Bf16 => QWeights::Bf16(&self.u16s[o..]),
            Prec::Int8(_) => QWeights::Int8 {
                q: &self.i8s[o..],
                scales: &self.scales[o..],
                group: self.group,
            },
        }
    }

    fn bias(&self) -> &[f32] {
        &self.bias[self.offset..]
    }

    /// The exact f32 value of weight `(r, k)` times its scale (int8), and the
    /// scale alone (1 for f16/bf16).
    fn weight(&self, r: usize, k: usize) -> (f32, f32) {
        let i = self.offset + (r / QNR) * (self.inp * QNR) + k * QNR + r % QNR;
        match self.prec {
            Prec::F16 => (f16_to_f32(self.u16s[i]), 1.0),
            Prec::Bf16 => (bf16_to_f32(self.u16s[i]), 1.0),
            Prec::Int8(_) => {
                let groups = quant::groups(self.inp, self.group);
                let si =
                    self.offset + (r / QNR) * (groups * QNR) + (k / self.group) * QNR + r % QNR;
                let s = self.scales[si];
                (f32::from(self.i8s[i]) * s, s)
            }
        }
    }

    /// Per row: `|w_eff[r, k]|` for every `k` (f64, row-major) and
    /// `max_g |s_g|`, computed once per layer for [`Self::bound`].
    fn magnitudes(&self) -> (Vec<f64>, Vec<f64>) {
        let mut absw = Vec::with_capacity(self.out * self.inp);
        let mut smax = vec![0.0f64; self.out];
        for (r, sm) in smax.iter_mut().enumerate() {
            for k in 0..self.inp {
                let (w, s) = self.weight(r, k);
                absw.push(f64::from(w).abs());
                *sm = sm.max(f64::from(s).abs());
            }
        }
        (absw, smax)
    }

    /// The tolerance of output `r` for input `x` (module docs), from
    /// [`Self::magnitudes`].
    fn bound(&self, (absw, smax): &(Vec<f64>, Vec<f64>), r: usize, x: &[f32]) -> f32 {
        let eps = f64::from(f32::EPSILON);
        let row = &absw[r * self.inp..(r + 1) * self.inp];
        let mag = f64::from(self.bias()[r].abs())
            + row
                .iter()
                .zip(x)
                .map(|(&w, &xv)| w * f64::from(xv).abs())
                .sum::<f64>();
        let (len, tiny) = match self.prec {
            Prec::F16 | Prec::Bf16 => (self.inp as f64, common::TINY),
            Prec::Int8(_) => {
                let g = quant::groups(self.inp, self.group);
                (
                    (self.group.min(self.inp) + g) as f64,
                    common::TINY * (1.0 + smax[r]),
                )
            }
        };
        (2.0 * (len + 2.0) * (eps * mag + tiny)) as f32
    }
}

/// Random f16 bits: 1/8 subnormal, 1/16 ±65504 (max), 1/16 ±0, else a
/// normal with any exponent.
fn f16_bits(rng: &mut Xoshiro256PlusPlus) -> u16 {
    let r = rng.next_u32();
    let sign = ((r >> 31) as u16) << 15;
    let man = (r >> 8) as u16 & 0x3ff;
    match r & 15 {
        0 | 1 => sign | man,
        2 => sign | 0x7bff,
        3 => sign,
        _ => sign | ((1 + (r >> 20) as u16 % 30) << 10) | man,
    }
}

/// Random bf16 bits: 1/8 subnormal, 1/8 large (2^60 .. 2^100), 1/8 tiny
/// (2^-100 .. 2^-60), else within 2^±8.
fn bf16_bits(rng: &mut Xoshiro256PlusPlus) -> u16 {
    let r = rng.next_u32();
    let sign = ((r >> 31) as u16) << 15;
    let man = (r >> 8) as u16 & 0x7f;
    let e = (r >> 16) as u16;
    let exp = match r & 7 {
        0 => 0,
        1 => 127 + 60 + e % 41,
        2 => 127 - 100 + e % 41,
        _ => 127 - 8 + e % 17,
    };
    sign | (exp << 7) | man
}

/// Random int8 in -127..=127: 1/8 ±127, 1/16 zero, else uniform.
fn i8_value(rng: &mut Xoshiro256PlusPlus) -> i8 {
    let r = rng.next_u32();
    match r & 15 {
        0 => 127,
        1 => -127,
        2 => 0,
        _ => (((r >> 8) % 255) as i32 - 127) as i8,
    }
}

/// Random scale: 1/8 zero, else uniform in [-2, 2).
fn scale(rng: &mut Xoshiro256PlusPlus) -> f32 {
    let r = rng.next_u32();
    if r & 7 == 0 {
        0.0
    } else {
        ((r >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 4.0
    }
}

/// A random layer in the packed layout (padding rows zero, scale 0).
fn layer(prec: Prec, out: usize, inp: usize, offset: usize, rng: &mut Xoshiro256PlusPlus) -> Layer {
    let panels = out.div_ceil(QNR);
    let plen = panels * QNR * inp;
    let group = match prec {
        Prec::Int8(0) => inp,
        Prec::Int8(g) => g,
        _ => inp,
    };
    let groups = quant::groups(inp, group);
    let (mut u16s, mut i8s, mut scales) =
        (vec![0u16; offset], vec![0i8; offset], vec![0.0f32; offset]);
    for p in 0..panels {
        for _k in 0..inp {
            for j in 0..QNR {
                let real = p * QNR + j < out;
                match prec {
                    Prec::F16 => u16s.push(if real { f16_bits(rng) } else { 0 }),
                    Prec::Bf16 => u16s.push(if real { bf16_bits(rng) } else { 0 }),
                    Prec::Int8(_) => i8s.push(if real { i8_value(rng) } else { 0 }),
                }
            }
        }
        if let Prec::Int8(_) = prec {
            for _g in 0..groups {
                for j in 0..QNR {
                    scales.push(if p * QNR + j < out { scale(rng) } else { 0.0 });
                }
            }
        }
    }
    match prec {
        Prec::Int8(_) => assert_eq!(i8s.len() - offset, plen),
        _ => assert_eq!(u16s.len() - offset, plen),
    }
    let mut bias = vec![0.0f32; offset];
    bias.extend(uniform(rng, out));
    Layer {
        prec,
        out,
        inp,
        group,
        offset,
        u16s,
        i8s,
        scales,
        bias,
    }
}

/// Runs `kernel` on `l` for `batch` samples of `x` (offset like the layer).
fn run(kernel: Kernel, l: &Layer, x: &[f32], act: Activation) -> Vec<f32> {
    let o = l.offset;
    let batch = x.len() / l.inp;
    let mut xs = vec![0.0f32; o];
    xs.extend_from_slice(x);
    let mut y = vec![f32::NAN; o + batch * l.out];
    quant::qgemm_bias_act(
        kernel,
        l.weights(),
        l.bias(),
        &xs[o..],
        l.inp,
        act,
        &mut y[o..],
    )
    .unwrap_or_else(|e| panic!("{kernel:?}: {e:?}"));
    y.split_off(o)
}

/// Checks every kernel under test against the oracle on one layer shape.
fn check_all(
    kernels: &[Kernel],
    prec: Prec,
    out: usize,
    inp: usize,
    batch: usize,
    offset: usize,
    seed: u64,
) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let l = layer(prec, out, inp, offset, &mut rng);
    let x = uniform(&mut rng, batch * inp);
    let act = if seed.is_multiple_of(2) {
        Activation::LeakyRelu
    } else {
        Activation::Linear
    };
    let want = run(Kernel::Scalar, &l, &x, act);
    let mags = l.magnitudes();
    let bounds: Vec<f32> = (0..batch * out)
        .map(|i| l.bound(&mags, i % out, &x[(i / out) * inp..(i / out + 1) * inp]))
        .collect();
    for &kernel in kernels {
        let got = run(kernel, &l, &x, act);
        for (i, ((&g, &e), &tol)) in got.iter().zip(&want).zip(&bounds).enumerate() {
            assert!(
                g.is_finite() && (g - e).abs() <= tol,
                "{kernel:?} {prec:?} {out}x{inp} batch {batch} +{offset} {act:?} sample {} row {}: \
                 {g} vs oracle {e} (tol {tol})",
                i / out,
                i % out
            );
        }
    }
}

/// The precisions, with int8 cycling through the group sizes by `i`.
fn precs(i: usize) -> [Prec; 3] {
    [Prec::F16, Prec::Bf16, Prec::Int8(GROUPS[i % GROUPS.len()])]
}

/// Every `out` in 1..=70 against every `in` in 1..=70 (4900 shapes), each
/// shape in one precision, rotating, so that every precision meets every
/// `out` and every `in` (and int8 every group size), at batches 1..=9 and
/// offsets 0 and 1. (All three precisions on all 4900 shapes cost 3x the
/// time for no new code path: the output edge `out % 16` and the input
/// length are handled independently; it took ~40 s in a debug build here
/// and minutes under qemu.)
#[test]
#[cfg_attr(miri, ignore = "4900 shapes are slow under miri")]
fn every_kernel_matches_the_oracle_on_sizes_1_to_70() {
    let kernels = under_test();
    for out in 1..=70usize {
        for inp in 1..=70usize {
            let i = out * 71 + inp;
            let batch = 1 + i % 9;
            let prec = [
                Prec::F16,
                Prec::Bf16,
                Prec::Int8(GROUPS[(i / 3) % GROUPS.len()]),
            ][i % 3];
            check_all(&kernels, prec, out, inp, batch, (i / 2) % 2, i as u64);
        }
    }
    assert_all_exercised(&kernels);
}

#[test]
#[cfg_attr(miri, ignore = "large sizes are slow under miri")]
fn every_kernel_matches_the_oracle_on_network_sizes() {
    let kernels = under_test();
    // 512 x 512 at every batch 1..=9 and every int8 group, both offsets.
    for batch in 1..=9usize {
        let offset = batch % 2;
        for prec in [Prec::F16, Prec::Bf16] {
            check_all(&kernels, prec, 512, 512, batch, offset, batch as u64);
        }
        check_all(
            &kernels,
            Prec::Int8(GROUPS[batch % 6]),
            512,
            512,
            batch,
            offset,
            10 + batch as u64,
        );
    }
    // Wide outputs over narrow inputs and the reverse.
    for (n, &(out, inp)) in [
        (1024, 512),
        (1024, 70),
        (512, 1),
        (512, 37),
        (1024, 16),
        (19, 512),
        (70, 512),
        (1, 512),
    ]
    .iter()
    .enumerate()
    {
        for (i, prec) in precs(n).into_iter().enumerate() {
            let batch = [1, 8, 9][(n + i) % 3];
            check_all(&kernels, prec, out, inp, batch, (n + i) % 2, 100 + n as u64);
        }
    }
    for &g in &GROUPS {
        check_all(&kernels, Prec::Int8(g), 1024, 512, 1, 1, 200 + g as u64);
    }
    assert_all_exercised(&kernels);
}

/// A few shapes, small enough for miri (which runs scalar and portable).
#[test]
fn every_kernel_matches_the_oracle_on_a_few_shapes() {
    let kernels = under_test();
    for (i, &(out, inp, batch)) in [(1, 1, 1), (17, 9, 2), (16, 33, 5), (33, 16, 9), (5, 64, 3)]
        .iter()
        .enumerate()
    {
        for (j, prec) in [
            Prec::F16,
            Prec::Bf16,
            Prec::Int8(3),
            Prec::Int8(16),
            Prec::Int8(0),
        ]
        .into_iter()
        .enumerate()
        {
            check_all(
                &kernels,
                prec,
                out,
                inp,
                batch,
                (i + j) % 2,
                (i * 10 + j) as u64,
            );
        }
    }
    assert_all_exercised(&kernels);
}

/// A sample's outputs are bit-identical whether it runs alone or at any
/// position in a batch, at any buffer offset, and on a second run.
#[test]
fn results_do_not_depend_on_batch_offset_or_neighbours() {
    let (out, inp, batch) = if cfg!(miri) { (19, 21, 5) } else { (70, 67, 9) };
    let ran = for_each_kernel(|kernel| {
        for (n, prec) in [Prec::F16, Prec::Bf16, Prec::Int8(16), Prec::Int8(0)]
            .into_iter()
            .enumerate()
        {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(n as u64);
            let l0 = layer(prec, out, inp, 0, &mut rng);
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(n as u64);
            let l1 = layer(prec, out, inp, 1, &mut rng);
            let x = uniform(&mut rng, batch * inp);
            let act = Activation::LeakyRelu;
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            let all = bits(run(kernel, &l0, &x, act));
            assert_eq!(
                all,
                bits(run(kernel, &l0, &x, act)),
                "{kernel:?} {prec:?} rerun"
            );
            assert_eq!(
                all,
                bits(run(kernel, &l1, &x, act)),
                "{kernel:?} {prec:?} offset 1"
            );
            for s in 0..batch {
                let one = bits(run(kernel, &l0, &x[s * inp..(s + 1) * inp], act));
                assert_eq!(
                    one,
                    all[s * out..(s + 1) * out],
                    "{kernel:?} {prec:?} sample {s} alone"
                );
            }
            let tail = bits(run(kernel, &l0, &x[2 * inp..], act));
            assert_eq!(
                tail,
                all[2 * out..],
                "{kernel:?} {prec:?} samples 2.. as a batch"
            );
        }
    });
    assert_all_exercised(&ran);
}

/// The FMA kernels (AVX2, AVX-512, NEON) widen exactly and run the same
/// per-output arithmetic, so any two available ones agree bit for bit.
#[test]
fn fma_kernels_agree_bit_for_bit() {
    let fma: Vec<Kernel> = under_test()
        .into_iter()
        .filter(|k| matches!(k, Kernel::Avx2 | Kernel::Avx512 | Kernel::Neon))
        .collect();
    if fma.len() < 2 {
        return;
    }
    for (n, prec) in [Prec::F16, Prec::Bf16, Prec::Int8(32), Prec::Int8(3)]
        .into_iter()
        .enumerate()
    {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(50 + n as u64);
        let l = layer(prec, 77, 131, 1, &mut rng);
        let x = uniform(&mut rng, 6 * 131);
        let first: Vec<u32> = run(fma[0], &l, &x, Activation::LeakyRelu)
            .into_iter()
            .map(f32::to_bits)
            .collect();
        for &k in &fma[1..] {
            let other: Vec<u32> = run(k, &l, &x, Activation::LeakyRelu)
                .into_iter()
                .map(f32::to_bits)
                .collect();
            assert_eq!(first, other, "{:?} vs {k:?} {prec:?}", fma[0]);
        }
    }
}

/// W = I (in f16, bf16 and int8 with scale 1), b = 0: y = lrelu(x) exactly.
#[test]
fn identity_weights_give_lrelu_exactly() {
    let n = 21usize;
    let x: Vec<f32> = (0..2 * n).map(|i| i as f32 * 0.5 - 7.0).collect();
    let want: Vec<f32> = x
        .iter()
        .map(|&v| if v < 0.0 { v * 0.2 } else { v })
        .collect();
    let plen = n.div_ceil(QNR) * QNR * n;
    let mut h = vec![0u16; plen];
    let mut b = vec![0u16; plen];
    let mut q = vec![0i8; plen];
    for r in 0..n {
        let i = (r / QNR) * (n * QNR) + r * QNR + r % QNR;
        (h[i], b[i], q[i]) = (0x3c00, 0x3f80, 1);
    }
    let scales = vec![1.0f32; n.div_ceil(QNR) * QNR * n.div_ceil(4)];
    let bias = vec![0.0f32; n];
    for kernel in under_test() {
        for w in [
            QWeights::F16(&h),
            QWeights::Bf16(&b),
            QWeights::Int8 {
                q: &q,
                scales: &scales,
                group: 4,
            },
        ] {
            let mut y = vec![f32::NAN; 2 * n];
            quant::qgemm_bias_act(kernel, w, &bias, &x, n, Activation::LeakyRelu, &mut y).unwrap();
            assert_eq!(y, want, "{kernel:?} {w:?}");
        }
    }
}

#[test]
fn checked_entry_point_rejects_bad_lengths_and_unavailable_kernels() {
    let q = [0u16; 32];
    let mut y = [0.0f32; 2];
    let lin = Activation::Linear;
    for kernel in under_test() {
        // 2 x 2 layer: 1 panel of 16 rows x 2 inputs = 32 values.
        assert!(
            quant::qgemm_bias_act(
                kernel,
                QWeights::F16(&q),
                &[0.0; 2],
                &[0.0; 2],
                2,
                lin,
                &mut y
            )
            .is_ok()
        );
        assert!(
            quant::qgemm_bias_act(
                kernel,
                QWeights::F16(&q[1..]),
                &[0.0; 2],
                &[0.0; 2],
                2,
                lin,
                &mut y
            )
            .is_err()
        );
        assert!(
            quant::qgemm_bias_act(
                kernel,
                QWeights::Bf16(&q),
                &[0.0; 2],
                &[0.0; 3],
                2,
                lin,
                &mut y
            )
            .is_err()
        );
        assert!(
            quant::qgemm_bias_act(
                kernel,
                QWeights::Bf16(&q),
                &[0.0; 2],
                &[0.0; 2],
                0,
                lin,
                &mut y
            )
            .is_err()
        );
        let qi = [0i8; 32];
        let bad_group = QWeights::Int8 {
            q: &qi,
            scales: &[0.0; 16],
            group: 0,
        };
        assert!(
            quant::qgemm_bias_act(kernel, bad_group, &[0.0; 2], &[0.0; 2], 2, lin, &mut y).is_err()
        );
        let short = QWeights::Int8 {
            q: &qi,
            scales: &[0.0; 15],
            group: 2,
        };
        assert!(
            quant::qgemm_bias_act(kernel, short, &[0.0; 2], &[0.0; 2], 2, lin, &mut y).is_err()
        );
        let ok = QWeights::Int8 {
            q: &qi,
            scales: &[0.0; 32],
            group: 1,
        };
        assert!(quant::qgemm_bias_act(kernel, ok, &[0.0; 2], &[0.0; 2], 2, lin, &mut y).is_ok());
    }
    for &k in Kernel::ALL.iter().filter(|k| !k.is_available()) {
        assert_eq!(
            quant::qgemm_bias_act(k, QWeights::F16(&q), &[0.0; 2], &[0.0; 2], 2, lin, &mut y),
            Err(Error::KernelUnavailable),
            "{k:?}"
        );
    }
    assert_required_kernels();
}
