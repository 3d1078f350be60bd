//! The AMX kernel (`kernels::amx`): the exact three-way bf16 split, the
//! packed layout, one layer against the exact (f64) value and the scalar
//! oracle on awkward sizes with misaligned buffers, batch invariance, the
//! checked API's errors, the tile unit's rounding (the bound assumes round to
//! nearest), and the whole `AmxNetwork` against the exact network.
//!
//! Environment: AMX needs x86-64 with AMX-BF16/AMX-TILE, AVX-512F/BW, OS
//! support and Linux's tile permission; it is never available under Miri or
//! with `force-scalar`. Where it is not available every test that needs it
//! returns early with a note on stderr, unless `STYLEMAP_REQUIRE_AMX` is set
//! (to anything but `0`): then it fails, so a CI runner that lost AMX cannot
//! silently pass. `split3` and the packing checks are plain Rust and always
//! run.
//!
//! Tolerances (stated, not tuned; `support/bound.rs`, contract §3c):
//! - one AMX evaluation of a row of width `n` is within
//!   `(4n + 2) eps (sum_k |W_k x_k| + |b|) + tiny_amx (6n + 2 + 3 sum_k (|W_k| + |x_k|))`
//!   of the exact value (`bound::amx_layer_bound`: `6n` exact bf16 part
//!   products summed in f32, the three dropped products below
//!   `eps |W_k x_k|`, `tiny_amx = 2^-126` for the tile unit's flush to zero);
//! - against an FMA kernel (the scalar oracle), the sum of the two
//!   single-evaluation bounds (`bound::amx_layer_pair_bound`);
//! - whole network: the recursion of contract §3b with that evaluation bound
//!   (`bound::network_bound_amx`), against the exact f64 network, and the AMX
//!   and FMA bounds added against `MappingNetwork::forward`.
//!
//! The "exact" values are f64 sums of exact f32 x f32 products; their own
//! error (`n 2^-53` relative) is a billionth of the bounds.

#[path = "support/bound.rs"]
mod bound;
mod common;

use common::{normal, raw_net, uniform};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use stylemap_core::fold::FoldedLayer;
use stylemap_core::kernels::amx::{self, AMX_BATCH_CHUNK, AmxNetwork};
use stylemap_core::kernels::{self, Kernel};
use stylemap_core::network::normalize_2nd_moment;
use stylemap_core::{Activation, Error, MappingNetwork, MappingSpec, Operand};

/// Set (to anything but `0`) to fail instead of skipping without AMX.
const REQUIRE_ENV: &str = "STYLEMAP_REQUIRE_AMX";

/// Whether AMX can run here; otherwise notes the skip on stderr, or fails
/// if [`REQUIRE_ENV`] asks for AMX.
fn amx_here(test: &str) -> bool {
    if amx::is_available() {
        return true;
    }
    let required = common::env(REQUIRE_ENV).is_some_and(|v| v.trim() != "0");
    assert!(
        !required,
        "{REQUIRE_ENV} is set, but AMX is required and unavailable here (x86-64 with \
         AMX-BF16, AMX-TILE, AVX-512F/BW/BF16, OS support and the Linux tile permission; never \
         under Miri or force-scalar): {test} cannot run"
    );
    eprintln!("{test}: AMX is not available here, skipped (set {REQUIRE_ENV}=1 to fail instead)");
    false
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `2^e` exactly, for `e` in f32's normal range (`powi` is not guaranteed
/// exact, and Miri perturbs it).
fn pow2(e: i32) -> f32 {
    assert!((-126..=127).contains(&e));
    f32::from_bits(((127 + e) as u32) << 23)
}

/// A bf16 part (bits in the low half) widened to f64.
fn part(p: u32) -> f64 {
    f64::from(f32::from_bits(p << 16))
}

// ---------------------------------------------------------------------------
// split3 (plain Rust: always runs)
// ---------------------------------------------------------------------------

/// Checks the split of one finite `v`: `p0 + p1 + p2 == v` exactly,
/// `|p1| <= 2^-8 |v|`, `|p2| <= 2^-16 |v|`, only the low halves used.
fn check_split(v: f32) {
    let p = amx::split3(v);
    assert!(
        p.iter().all(|&h| h <= 0xffff),
        "{v:e} ({:#010x}): parts {p:#x?} use the high half",
        v.to_bits()
    );
    let [p0, p1, p2] = p.map(part);
    // Exact: the parts lie within f32's 24-bit window below |v|'s exponent.
    let sum = p0 + p1 + p2;
    let v64 = f64::from(v);
    // Built only on failure: formatting dominates the test under Miri.
    let what = || {
        format!(
            "{v:e} ({:#010x}) -> {p:#06x?} = {p0:e} + {p1:e} + {p2:e}",
            v.to_bits()
        )
    };
    assert!(sum == v64, "{}: sum {sum:e}", what());
    // Where rounding `v` to bf16 would overflow (|v| >= 0x7f7f_8000), split3
    // truncates p0 to 0x7f7f (2^128 - 2^120) instead, and p1 can round up to
    // 2^120 = 2^-8 * 2^128: above `2^-8 |v|` (by up to a factor
    // `1 / (1 - 2^-17)`) for the 128 largest f32 magnitudes (bits
    // 0x7f7f_ff80..=0x7f7f_ffff, f32::MAX included), against the module
    // docs' `|v1| <= 2^-8 |v|`. Harmless for the
    // error bound (the dropped products stay below `eps |x w|`), so checked
    // at `2^-8 * 2^128` there, and reported.
    let p1_max = if v.abs() >= f32::from_bits(0x7f7f_8000) {
        f64::from(pow2(120))
    } else {
        v64.abs() * f64::from(pow2(-8))
    };
    assert!(p1.abs() <= p1_max, "{}: |p1| > 2^-8 |v|", what());
    assert!(
        p2.abs() <= v64.abs() * f64::from(pow2(-16)),
        "{}: |p2| > 2^-16 |v|",
        what()
    );
}

#[test]
fn split3_is_exact_on_random_and_edge_values() {
    // Bit patterns on either side of bf16 rounding boundaries: `hi` with the
    // discarded half just below, at and just above the tie, for even and odd
    // `hi`, where rounding carries into the exponent, and where rounding up
    // would overflow (split3 truncates there).
    let mut edges: Vec<f32> = vec![
        0.0,
        1.0,
        f32::MIN_POSITIVE * 65536.0, // 2^-110: the smallest |v| with normal parts
        f32::MAX,
        3.3961e38,
        f32::from_bits(0x7f7f_7fff), // the largest f32 that rounds to finite bf16
        f32::from_bits(0x7f7f_8000), // the smallest that would round to inf
        f32::from_bits(0x7f7f_ff7f), // the largest with |p1| <= 2^-8 |v|
        f32::from_bits(0x7f7f_ff80), // the smallest with |p1| = 2^120 > 2^-8 |v|
        f32::from_bits(0x3fff_ffff), // rounds up to 2.0
        f32::from_bits(0x0880_7fff),
        f32::from_bits(0x0880_8000),
        f32::from_bits(0x08ff_ffff),
        f32::from_bits(0x3f80_0001),
        f32::from_bits(0x3f80_00ff),
        f32::from_bits(0x3f80_0100),
    ];
    for hi in [0x3f80u32, 0x3f81, 0x4b7e, 0x4b7f, 0x7f7e, 0x0881, 0x2000] {
        for lo in [
            0x7fffu32, 0x8000, 0x8001, 0x7f80, 0x0080, 0x0081, 0xff80, 0xffff,
        ] {
            edges.push(f32::from_bits(hi << 16 | lo));
        }
    }
    for v in edges.clone() {
        edges.push(-v);
    }
    edges.push(-0.0);
    for &v in &edges {
        check_split(v);
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x5b11);
    let n = if cfg!(miri) { 256 } else { 200_000 };
    for _ in 0..n {
        let r = rng.next_u64();
        // Exponent uniform over [-110, 127], any mantissa, either sign.
        let exp = (r % 238) as u32 + 17; // biased: 17 = -110 + 127, 254 = 127 + 127
        let mant = (r >> 8) as u32 & 0x7f_ffff;
        let sign = (r >> 63) as u32;
        check_split(f32::from_bits(sign << 31 | exp << 23 | mant));
    }
    for v in [
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001), // NaN whose payload is all in the low half
        f32::from_bits(0xff80_ffff),
        f32::from_bits(0x7fff_ffff),
        f32::INFINITY,
        f32::NEG_INFINITY,
    ] {
        let p = amx::split3(v);
        assert!(
            !part(p[0]).is_finite(),
            "{:#010x}: p0 {:#06x} is finite",
            v.to_bits(),
            p[0]
        );
    }
}

// ---------------------------------------------------------------------------
// One layer
// ---------------------------------------------------------------------------

/// Value distributions for the layer tests.
#[derive(Clone, Copy, Debug)]
enum Mix {
    /// Uniform in [-1, 1).
    Uniform,
    /// Uniform times `2^e`, `e` in [-12, 12], with exact zeros and a few
    /// values near `2^-120` (products far below the others, parts flushed).
    Mixed,
    /// Everything times `2^-64` (biases `2^-128`): products near `2^-128`,
    /// sums flushed to 0 by the tile unit (the `tiny_amx` terms of the
    /// bound).
    Tiny,
}

fn values(rng: &mut Xoshiro256PlusPlus, n: usize, mix: Mix) -> Vec<f32> {
    let u = uniform(rng, n);
    match mix {
        Mix::Uniform => u,
        Mix::Tiny => u.iter().map(|v| v * pow2(-64)).collect(),
        Mix::Mixed => u
            .iter()
            .map(|&v| {
                let r = rng.next_u32();
                match r % 16 {
                    0 => 0.0,
                    1 => v * pow2(-120 + (r >> 8) as i32 % 8),
                    _ => v * pow2((r >> 8) as i32 % 25 - 12),
                }
            })
            .collect(),
    }
}

/// `v` copied `offset` elements into a buffer filled with `fill`.
fn shifted<T: Copy>(v: &[T], offset: usize, fill: T) -> Vec<T> {
    let mut buf = vec![fill; v.len() + offset];
    buf[offset..].copy_from_slice(v);
    buf
}

/// Packs `w [out, inp]` `offset` u32 into a buffer of garbage.
fn pack(w: &[f32], out: usize, inp: usize, offset: usize) -> Vec<u32> {
    let mut buf = vec![0xffff_ffff; amx::packed_layer_len(out, inp) + offset];
    amx::pack_layer(w, out, inp, &mut buf[offset..]).unwrap();
    buf
}

/// Runs the AMX layer with every buffer (packed weights, bias, x, y,
/// scratch) `offset` elements into its allocation, scratch full of NaN.
fn run_layer(
    w: &[f32],
    b: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    offset: usize,
) -> Vec<f32> {
    let out = b.len();
    let batch = x.len() / inp;
    let packed = pack(w, out, inp, offset);
    let (bs, xs) = (shifted(b, offset, f32::NAN), shifted(x, offset, f32::NAN));
    let mut y = vec![f32::NAN; batch * out + offset];
    let mut scratch = vec![f32::NAN; amx::layer_scratch_len(out, inp) + offset];
    amx::gemm_bias_act(
        &packed[offset..],
        &bs[offset..],
        &xs[offset..],
        inp,
        act,
        &mut y[offset..],
        &mut scratch[offset..],
    )
    .unwrap();
    y.drain(..offset);
    y
}

/// The largest `|error| / bound` seen, for the report on stderr.
#[derive(Default)]
struct Worst(f64, String);

impl Worst {
    fn see(&mut self, err: f64, bound: f64, what: impl FnOnce() -> String) {
        if bound > 0.0 && err / bound > self.0 {
            *self = Worst(err / bound, what());
        }
    }
}

/// One layer, `batch` samples: every output within the AMX bound of the
/// exact value and within the pair bound of the scalar oracle.
#[allow(clippy::too_many_arguments)]
fn check_layer(
    out: usize,
    inp: usize,
    batch: usize,
    act: Activation,
    mix: Mix,
    offset: usize,
    seed: u64,
    worst: &mut Worst,
) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let w = values(&mut rng, out * inp, mix);
    let mut b = values(&mut rng, out, mix);
    if let Mix::Tiny = mix {
        // Biases of the products' size (subnormal), so the flushed sums
        // show in y.
        b.iter_mut().for_each(|v| *v *= pow2(-64));
    }
    let x = values(&mut rng, batch * inp, mix);
    let y = run_layer(&w, &b, &x, inp, act, offset);
    let layer = bound::Layer {
        weight: &w,
        bias: &b,
        lrelu: act == Activation::LeakyRelu,
    };
    let mut oracle = vec![0.0f32; out];
    for (s, (xs, ys)) in x.chunks_exact(inp).zip(y.chunks_exact(out)).enumerate() {
        let x64: Vec<f64> = xs.iter().map(|&v| f64::from(v)).collect();
        let exact = bound::exact_layer(&layer, &x64);
        let single = bound::amx_layer_bound(&layer, xs);
        let pair = bound::amx_layer_pair_bound(&layer, xs);
        kernels::gemv_bias_act(Kernel::Scalar, &w, &b, xs, act, &mut oracle).unwrap();
        for r in 0..out {
            let g = f64::from(ys[r]);
            let what =
                || format!("{out}x{inp} B={batch} +{offset} {act:?} {mix:?} sample {s} out {r}");
            let d = (g - exact[r]).abs();
            assert!(
                d <= single[r],
                "{}: amx {g:e} vs exact {:e}: {d:e} > bound {:e}",
                what(),
                exact[r],
                single[r]
            );
            worst.see(d, single[r], what);
            let d = (g - f64::from(oracle[r])).abs();
            assert!(
                d <= pair[r],
                "{}: amx {g:e} vs scalar oracle {:e}: {d:e} > pair bound {:e}",
                what(),
                oracle[r],
                pair[r]
            );
        }
    }
}

#[test]
fn layer_is_within_the_amx_bound_on_awkward_sizes() {
    if !amx_here("layer_is_within_the_amx_bound_on_awkward_sizes") {
        return;
    }
    let sizes = [1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 70];
    let batches = [1, 2, 31, 32, 33, 70];
    let mixes = [Mix::Uniform, Mix::Mixed, Mix::Tiny];
    let mut worst = Worst::default();
    let mut n = 0usize;
    for &out in &sizes {
        for &inp in &sizes {
            // Walk batch sizes, value mixes, activations and offsets across
            // the shapes so every class is hit without the full product.
            let act = if (n / 18).is_multiple_of(2) {
                Activation::LeakyRelu
            } else {
                Activation::Linear
            };
            let (batch, mix) = (batches[n % 6], mixes[n / 6 % 3]);
            check_layer(out, inp, batch, act, mix, n % 4, n as u64, &mut worst);
            n += 1;
        }
    }
    // Network sizes: several 16-chunk passes over k (`amx::K_BLOCK` = 512
    // inputs), partial ones, many column blocks.
    let large = [
        (512, 512, 33),
        (1024, 1024, 2),
        (70, 1024, 70),
        (1024, 65, 31),
        (100, 545, 32),
        (33, 1034, 1),
        // More row blocks than one group (`amx::ROW_GROUP`), the last
        // group partial.
        (512, 512, amx::ROW_GROUP * 32 + 37),
        (70, 100, 2 * amx::ROW_GROUP * 32 + 1),
    ];
    for (i, &(out, inp, batch)) in large.iter().enumerate() {
        let act = if i.is_multiple_of(2) {
            Activation::LeakyRelu
        } else {
            Activation::Linear
        };
        check_layer(
            out,
            inp,
            batch,
            act,
            mixes[i % 3],
            i % 3,
            1000 + i as u64,
            &mut worst,
        );
    }
    eprintln!(
        "largest |amx - exact| / bound: {:.3e} ({})",
        worst.0, worst.1
    );
}

/// A sample's outputs do not depend on the batch around it or on where it
/// sits in it (rows of a tile product are independent): the same bits
/// alone, in windows at every block offset, at other alignments and with
/// other scratch contents.
#[test]
fn layer_is_batch_invariant() {
    if !amx_here("layer_is_batch_invariant") {
        return;
    }
    let batch = 70;
    for (i, &(out, inp)) in [(37, 70), (64, 31), (33, 600), (100, 1024)]
        .iter()
        .enumerate()
    {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(77 + i as u64);
        let mix = [Mix::Uniform, Mix::Mixed][i % 2];
        let w = values(&mut rng, out * inp, mix);
        let b = values(&mut rng, out, mix);
        let x = values(&mut rng, batch * inp, mix);
        let act = Activation::LeakyRelu;
        let all = bits(&run_layer(&w, &b, &x, inp, act, 0));
        assert_eq!(
            all,
            bits(&run_layer(&w, &b, &x, inp, act, 3)),
            "{out}x{inp}: offset 3"
        );
        // Scratch of zeros instead of NaN, exactly the minimum length.
        let packed = pack(&w, out, inp, 0);
        let mut y = vec![0.0f32; batch * out];
        let mut scratch = vec![0.0f32; amx::layer_scratch_len(out, inp)];
        amx::gemm_bias_act(&packed, &b, &x, inp, act, &mut y, &mut scratch).unwrap();
        assert_eq!(all, bits(&y), "{out}x{inp}: zeroed scratch");
        for s in 0..batch {
            let alone = run_layer(&w, &b, &x[s * inp..(s + 1) * inp], inp, act, s % 2);
            assert_eq!(
                bits(&alone),
                all[s * out..(s + 1) * out],
                "{out}x{inp}: sample {s} alone"
            );
        }
        for (lo, hi) in [(5, 40), (31, 70), (32, 64), (1, 34), (69, 70), (0, 33)] {
            let part = run_layer(&w, &b, &x[lo * inp..hi * inp], inp, act, lo % 3);
            assert_eq!(
                bits(&part),
                all[lo * out..hi * out],
                "{out}x{inp}: samples {lo}..{hi}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The checked API
// ---------------------------------------------------------------------------

/// `pack_layer`'s errors and packing sizes (plain Rust: always runs).
#[test]
fn pack_layer_rejects_bad_arguments_and_writes_nothing() {
    let (out, inp) = (3, 5);
    let w: Vec<f32> = (0..out * inp).map(|i| i as f32).collect();
    let len = amx::packed_layer_len(out, inp);
    assert_eq!(len, 32 * 32 / 2 * 3, "one 32x32 block, three parts");
    assert_eq!(amx::packed_layer_len(33, 33), 4 * len);
    assert_eq!(amx::packed_layer_len(usize::MAX, 2), usize::MAX);
    let mut dst = vec![7u32; len];
    let cases: [(&[f32], usize, usize, usize, Error); 6] = [
        (&w, 0, inp, len, Error::BadDimension(Operand::Gemv)),
        (&w, out, 0, len, Error::BadDimension(Operand::Gemv)),
        (
            &w[1..],
            out,
            inp,
            len,
            Error::Length {
                what: Operand::Gemv,
                expected: out * inp,
                actual: out * inp - 1,
            },
        ),
        (
            &w,
            out,
            inp,
            len - 1,
            Error::Length {
                what: Operand::Gemv,
                expected: len,
                actual: len - 1,
            },
        ),
        (&w, usize::MAX, 2, len, Error::TooLarge),
        (&w, 1 << 40, 1 << 40, len, Error::TooLarge),
    ];
    for (wt, o, i, n, err) in cases {
        assert_eq!(amx::pack_layer(wt, o, i, &mut dst[..n]), Err(err));
        assert!(dst.iter().all(|&v| v == 7), "written before {err}");
    }
    amx::pack_layer(&w, out, inp, &mut dst).unwrap();
    assert!(dst.iter().any(|&v| v != 7));
}

/// `pack_layer` writes the documented layout: per column block of 32, per
/// chunk of 32 inputs, per part, per half of 16 columns, one 16 x 16 tile
/// whose row `i` holds `w[col, 2i] | w[col, 2i + 1] << 16` (part bits), zeros
/// past `out` and `in`. Plain Rust: always runs.
#[test]
fn pack_layer_follows_the_documented_layout() {
    let (out, inp) = if cfg!(miri) { (3, 5) } else { (33, 37) };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    // Values whose three parts are all non-zero: mantissa bits
    // `a << 16 | b << 8 | c`, `b` in 0x40..0x7f (below the midpoint, with
    // its top bit set so p1 holds b's bits), `c` not 0.
    let w: Vec<f32> = (0..out * inp)
        .map(|_| {
            let r = rng.next_u32();
            let (a, b, c) = (r >> 25, 0x40 + (r >> 8) % 0x3f, 1 + r % 0x7e);
            let v = f32::from_bits(0x3f80_0000 | a << 16 | b << 8 | c);
            if r & 0x100_0000 == 0 { v } else { -v }
        })
        .collect();
    let mut dst = vec![7u32; amx::packed_layer_len(out, inp)];
    amx::pack_layer(&w, out, inp, &mut dst).unwrap();
    let part = |col: usize, k: usize, p: usize| {
        if col < out && k < inp {
            amx::split3(w[col * inp + k])[p]
        } else {
            0
        }
    };
    let chunks = inp.div_ceil(amx::CHUNK);
    for block in 0..out.div_ceil(amx::BLOCK_COLS) {
        for chunk in 0..chunks {
            for p in 0..3 {
                for half in 0..2 {
                    let tile = ((block * chunks + chunk) * 3 + p) * 2 + half;
                    for i in 0..16 {
                        for n in 0..16 {
                            let col = block * amx::BLOCK_COLS + half * 16 + n;
                            let k = chunk * amx::CHUNK + 2 * i;
                            let want = part(col, k, p) | part(col, k + 1, p) << 16;
                            let at = tile * 256 + i * 16 + n;
                            assert_eq!(
                                dst[at], want,
                                "block {block} chunk {chunk} part {p} half {half} row {i} col {n}"
                            );
                        }
                    }
                }
            }
        }
    }
    assert!(w.iter().all(|&v| amx::split3(v).iter().all(|&p| p != 0)));
}

#[test]
fn checked_gemm_rejects_bad_arguments_and_writes_nothing() {
    let lin = Activation::Linear;
    let (out, inp) = (2, 3);
    let packed = vec![0u32; amx::packed_layer_len(out, inp)];
    let need = amx::layer_scratch_len(out, inp);
    if !amx::is_available() {
        // Without AMX every call is refused before anything else.
        let mut y = [7.0f32; 2];
        assert_eq!(
            amx::gemm_bias_act(
                &packed,
                &[0.0; 2],
                &[0.0; 3],
                inp,
                lin,
                &mut y,
                &mut vec![0.0; need]
            ),
            Err(Error::KernelUnavailable)
        );
        assert_eq!(y, [7.0; 2]);
        amx_here("checked_gemm_rejects_bad_arguments_and_writes_nothing");
        return;
    }
    let call = |p: &[u32], b: &[f32], x: &[f32], inp: usize, y: &mut [f32], s: usize| {
        amx::gemm_bias_act(p, b, x, inp, lin, y, &mut vec![f32::NAN; s])
    };
    let mut y = [7.0f32; 4];
    assert_eq!(
        call(&packed, &[0.5; 2], &[1.0; 6], inp, &mut y, need),
        Ok(())
    );
    assert_eq!(y, [0.5; 4]);
    assert_eq!(
        call(&packed, &[0.0; 2], &[], inp, &mut [], need),
        Ok(()),
        "batch 0"
    );
    let gemv = |expected, actual| Error::Length {
        what: Operand::Gemv,
        expected,
        actual,
    };
    let plen = packed.len();
    type Case<'a> = (&'a [u32], &'a [f32], &'a [f32], usize, usize, usize, Error);
    let cases: [Case; 9] = [
        (
            &packed,
            &[0.0; 2],
            &[1.0; 6],
            0,
            4,
            need,
            Error::BadDimension(Operand::Gemv),
        ),
        (
            &packed,
            &[],
            &[1.0; 6],
            inp,
            4,
            need,
            Error::BadDimension(Operand::Gemv),
        ),
        (&packed, &[0.0; 2], &[1.0; 5], inp, 4, need, gemv(3, 5)),
        (&packed, &[0.0; 2], &[1.0; 6], inp, 3, need, gemv(4, 3)),
        (&packed, &[0.0; 2], &[1.0; 6], inp, 5, need, gemv(4, 5)),
        (
            &packed[1..],
            &[0.0; 2],
            &[1.0; 6],
            inp,
            4,
            need,
            gemv(plen, plen - 1),
        ),
        (&packed, &[0.0; 3], &[1.0; 6], inp, 4, need, gemv(6, 4)),
        (
            &packed,
            &[0.0; 2],
            &[1.0; 6],
            inp,
            4,
            need - 1,
            Error::Length {
                what: Operand::Scratch,
                expected: need,
                actual: need - 1,
            },
        ),
        (
            &packed,
            &[0.0; 2],
            &[1.0; 6],
            inp,
            4,
            0,
            Error::Length {
                what: Operand::Scratch,
                expected: need,
                actual: 0,
            },
        ),
    ];
    for (p, b, x, i, ny, ns, err) in cases {
        let mut y = [7.0f32; 5];
        assert_eq!(call(p, b, x, i, &mut y[..ny], ns), Err(err));
        assert_eq!(y, [7.0; 5], "y written before {err}");
    }
}

// ---------------------------------------------------------------------------
// AmxNetwork
// ---------------------------------------------------------------------------

/// Networks of every shape class, no width a multiple of 32: unconditional
/// with several column blocks, conditional with odd widths, an input wider
/// than one 512-input pass, one linear layer.
fn specs() -> Vec<MappingSpec> {
    let mut wide = MappingSpec::nvlabs(45, 0, 70, 3, 4);
    wide.layer_features = 100;
    let mut odd_cond = MappingSpec::nvlabs(37, 5, 19, 3, 9);
    odd_cond.layer_features = 23;
    odd_cond.embed_features = 11;
    odd_cond.lr_multiplier = 0.05;
    let mut long_input = MappingSpec::nvlabs(530, 3, 20, 2, 2);
    long_input.layer_features = 33;
    long_input.embed_features = 40;
    let mut one_layer = MappingSpec::nvlabs(3, 2, 5, 1, 2);
    one_layer.activation = Activation::Linear;
    vec![wide, odd_cond, long_input, one_layer]
}

fn bound_layer<'a>(l: &FoldedLayer<'a>) -> bound::Layer<'a> {
    bound::Layer {
        weight: l.weight,
        bias: l.bias,
        lrelu: l.activation == Activation::LeakyRelu,
    }
}

/// The AMX and FMA whole-network bounds (contract §3b/§3c) of one sample.
fn network_bounds(
    net: &MappingNetwork<&[f32]>,
    z: &[f32],
    c: &[f32],
) -> (bound::Bound, bound::Bound) {
    let mut x0 = vec![0.0f32; z.len()];
    normalize_2nd_moment(z, &mut x0);
    let (embed, fc) = net.layers();
    let fc: Vec<_> = fc.collect();
    let fc: Vec<bound::Layer<'_>> = fc.iter().map(bound_layer).collect();
    let embed = embed.as_ref().map(|e| (bound_layer(e), c));
    (
        bound::network_bound_amx(&x0, embed, &fc),
        bound::network_bound(&x0, embed, &fc),
    )
}

/// `forward_batch` on samples `lo..hi`, scratch full of NaN and `offset`
/// floats into its allocation.
fn amx_forward(
    net: &AmxNetwork<Aligned>,
    z: &[f32],
    c: &[f32],
    (lo, hi): (usize, usize),
    offset: usize,
) -> Vec<f32> {
    let s = *net.spec();
    let n = hi - lo;
    let mut scratch = vec![f32::NAN; net.scratch_len(n) + offset];
    let mut w = vec![f32::NAN; n * s.w_dim];
    net.forward_batch(
        &z[lo * s.z_dim..hi * s.z_dim],
        &c[lo * s.c_dim..hi * s.c_dim],
        n,
        &mut scratch[offset..],
        &mut w,
    )
    .unwrap();
    w
}

/// A u32 buffer that starts on a 64-byte boundary: `AmxNetwork` refuses
/// others (tile rows are cache lines).
struct Aligned {
    buf: Vec<u32>,
    skip: usize,
    len: usize,
}

impl Aligned {
    fn filled(len: usize, v: u32) -> Aligned {
        let buf = vec![v; len + 16];
        let skip = buf.as_ptr().align_offset(64);
        Aligned { buf, skip, len }
    }

    fn zeroed(len: usize) -> Aligned {
        Aligned::filled(len, 0)
    }

    fn copy_of(src: &[u32]) -> Aligned {
        let mut a = Aligned::zeroed(src.len());
        a.as_mut().copy_from_slice(src);
        a
    }
}

impl Clone for Aligned {
    fn clone(&self) -> Aligned {
        Aligned::copy_of(self.as_ref())
    }
}

impl AsRef<[u32]> for Aligned {
    fn as_ref(&self) -> &[u32] {
        &self.buf[self.skip..self.skip + self.len]
    }
}

impl AsMut<[u32]> for Aligned {
    fn as_mut(&mut self) -> &mut [u32] {
        &mut self.buf[self.skip..self.skip + self.len]
    }
}

fn amx_net(spec: MappingSpec, params: &[f32]) -> AmxNetwork<Aligned> {
    let mut buf = Aligned::filled(amx::network_len(&spec), 0xffff_ffff);
    amx::pack_network(&spec, params, buf.as_mut()).unwrap();
    AmxNetwork::new(spec, buf).unwrap()
}

#[test]
fn network_is_within_the_amx_bound_and_batch_invariant() {
    if !amx_here("network_is_within_the_amx_bound_and_batch_invariant") {
        return;
    }
    let batch = AMX_BATCH_CHUNK + 72; // 200: two passes, the second partial
    let mut worst = Worst::default();
    for (n, spec) in specs().into_iter().enumerate() {
        let raw = raw_net(spec, 40 + n as u64);
        let params = raw.fold().unwrap();
        let folded = MappingNetwork::new(spec, &params[..], &raw.w_avg[..]).unwrap();
        let net = amx_net(spec, &params);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(500 + n as u64);
        let z = normal(&mut rng, batch * spec.z_dim, 1.0);
        // Real-valued labels: the embedding runs on AMX too.
        let c = normal(&mut rng, batch * spec.c_dim, 1.0);
        let all = amx_forward(&net, &z, &c, (0, batch), 0);
        let (zd, cd, wd) = (spec.z_dim, spec.c_dim, spec.w_dim);
        let mut fma = vec![0.0f32; wd];
        let mut scratch = vec![0.0f32; spec.scratch_len()];
        for s in 0..batch {
            let (zs, cs) = (&z[s * zd..(s + 1) * zd], &c[s * cd..(s + 1) * cd]);
            let (amx_b, fma_b) = network_bounds(&folded, zs, cs);
            assert!(amx_b.within_range());
            folded.forward(zs, cs, &mut scratch, &mut fma).unwrap();
            for r in 0..wd {
                let g = f64::from(all[s * wd + r]);
                let what = || format!("{spec:?} sample {s} w[{r}]");
                let d = (g - amx_b.exact[r]).abs();
                assert!(
                    d <= amx_b.err[r],
                    "{}: amx {g:e} vs exact {:e}: {d:e} > F_L {:e}",
                    what(),
                    amx_b.exact[r],
                    amx_b.err[r]
                );
                worst.see(d, amx_b.err[r], what);
                let d = (g - f64::from(fma[r])).abs();
                let pair = amx_b.err[r] + fma_b.err[r];
                assert!(
                    d <= pair,
                    "{}: amx {g:e} vs forward ({:?}) {:e}: {d:e} > {pair:e}",
                    what(),
                    folded.kernel(),
                    fma[r]
                );
            }
        }
        // The same bits in batches of 33 (one inside the first pass, one
        // across the pass boundary) and 1 (at the ends of both passes), at
        // another scratch alignment.
        let c0 = AMX_BATCH_CHUNK;
        for (lo, hi) in [
            (0, 33),
            (c0 - 20, c0 + 13),
            (0, 1),
            (c0 - 1, c0),
            (c0, c0 + 1),
            (batch - 1, batch),
        ] {
            let part = amx_forward(&net, &z, &c, (lo, hi), 1 + lo % 3);
            assert_eq!(
                bits(&part),
                bits(&all[lo * wd..hi * wd]),
                "{spec:?}: samples {lo}..{hi} alone"
            );
        }
    }
    eprintln!("largest |amx - exact| / F_L: {:.3e} ({})", worst.0, worst.1);
}

/// Section offsets of a packed network (the layout `pack_network`
/// documents): per layer, embedding first, the packed weights, the bias,
/// zeros to a multiple of 16 u32. Returns `(weight, bias)` offsets.
fn sections(spec: &MappingSpec) -> Vec<(usize, usize)> {
    let mut shapes = Vec::new();
    if spec.c_dim > 0 {
        shapes.push((spec.c_dim, spec.embed_features));
    }
    shapes.extend((0..spec.num_layers).map(|i| spec.layer_shape(i)));
    let mut at = 0;
    shapes
        .into_iter()
        .map(|(inp, out)| {
            let bias = at + amx::packed_layer_len(out, inp);
            let s = (at, bias);
            at = (bias + out).div_ceil(16) * 16;
            s
        })
        .collect()
}

#[test]
fn network_new_rejects_bad_buffers() {
    let spec = specs()[1];
    let len = amx::network_len(&spec);
    if !amx::is_available() {
        // Refused before the buffer is even looked at.
        assert_eq!(
            AmxNetwork::new(spec, &vec![0u32; len][..]).err(),
            Some(Error::KernelUnavailable)
        );
        amx_here("network_new_rejects_bad_buffers");
        return;
    }
    let raw = raw_net(spec, 7);
    let params = raw.fold().unwrap();
    let mut buf = Aligned::zeroed(len);
    amx::pack_network(&spec, &params, buf.as_mut()).unwrap();
    let secs = sections(&spec);
    assert_eq!(
        len,
        (secs.last().unwrap().1 + spec.w_dim).div_ceil(16) * 16,
        "layout"
    );
    for &(_, bias) in &secs {
        assert!(
            f32::from_bits(buf.as_ref()[bias]).is_finite(),
            "bias at {bias}"
        );
    }
    let params_err = |index| Error::NonFinite {
        what: Operand::Params,
        index,
    };
    let new = |b: &[u32]| AmxNetwork::new(spec, b).err();
    assert_eq!(new(buf.as_ref()), None);
    assert_eq!(
        new(&buf.as_ref()[1..]),
        Some(Error::Length {
            what: Operand::Params,
            expected: len,
            actual: len - 1
        })
    );
    let long = Aligned::copy_of(&[buf.as_ref(), &[0]].concat());
    assert_eq!(
        new(long.as_ref()),
        Some(Error::Length {
            what: Operand::Params,
            expected: len,
            actual: len + 1
        })
    );
    // The right length one u32 past a cache line: refused, not run slowly.
    let shifted = Aligned::copy_of(&[&[0], buf.as_ref()].concat());
    assert_eq!(
        new(&shifted.as_ref()[1..]),
        Some(Error::Misaligned {
            what: Operand::Params,
            align: 64
        })
    );
    // A non-finite bias, or a non-finite bf16 part in either half of a
    // weight pair, in the first and in the last layer.
    let (w_last, b_last) = *secs.last().unwrap();
    let bad: [(usize, u32); 8] = [
        (secs[0].1, f32::INFINITY.to_bits()),
        (b_last + spec.w_dim - 1, f32::NAN.to_bits()),
        (3, 0x7fc0),                     // NaN in the low half
        (5, 0xff80 << 16),               // -inf in the high half
        (w_last, 0x7f80 | 0x3f80 << 16), // inf next to a 1.0
        (b_last - 1, 0xffff_ffff),
        (secs[1].0 + 17, 0x0001_7f81),
        (secs[0].1 - 1, 0x7f80_7f80),
    ];
    for (i, v) in bad {
        let mut b = buf.clone();
        b.as_mut()[i] = v;
        assert_eq!(new(b.as_ref()), Some(params_err(i)), "u32 {i} = {v:#010x}");
    }
    // Through the folded parameters: pack_network passes a non-finite weight
    // on (split3 keeps it non-finite), `new` rejects it; f32::MAX is finite
    // (split3 truncates instead of rounding to inf) and accepted.
    let last_weight = params.len() - spec.w_dim - 1;
    for (v, ok) in [
        (f32::INFINITY, false),
        (f32::NAN, false),
        (f32::MAX, true),
        (-f32::MAX, true),
    ] {
        let mut p = params.clone();
        p[last_weight] = v;
        let mut b = Aligned::zeroed(len);
        amx::pack_network(&spec, &p, b.as_mut()).unwrap();
        let got = new(b.as_ref());
        assert_eq!(got.is_none(), ok, "folded weight {v:e}: {got:?}");
        if let Some(e) = got {
            assert!(
                matches!(e, Error::NonFinite { what: Operand::Params, index } if index >= w_last && index < b_last),
                "{e:?}"
            );
        }
    }
    // An invalid spec has no length.
    assert_eq!(
        amx::network_len(&MappingSpec { z_dim: 0, ..spec }),
        usize::MAX
    );
}

#[test]
fn network_forward_rejects_bad_buffers_before_writing() {
    if !amx_here("network_forward_rejects_bad_buffers_before_writing") {
        return;
    }
    let spec = MappingSpec::nvlabs(3, 2, 5, 1, 2);
    let raw = raw_net(spec, 9);
    let net = amx_net(spec, &raw.fold().unwrap());
    let batch = 2;
    common::assert_batch_io_errors(batch, net.scratch_len(batch), |z, c, scratch, w| {
        net.forward_batch(z, c, batch, scratch, w)
    });
    // Batch 0 does nothing and needs no scratch, as for `PackedNetwork`.
    assert_eq!(net.scratch_len(0), 0);
    assert_eq!(net.forward_batch(&[], &[], 0, &mut [], &mut []), Ok(()));
}

/// The bound assumes the tile unit rounds its f32 sums to nearest, as the
/// ISA documents for `TDPBF16PS` (a truncating unit would make the `6n`
/// additions cost up to `6n eps`, past `4n + 2`): `1 + (2^-24 + 2^-31)`,
/// whose parts are exact bf16 products, must come out `1 + 2^-23`, not `1`.
/// A product below `2^-126` is flushed (or kept): never anything else.
#[test]
fn tile_sums_round_to_nearest() {
    if !amx_here("tile_sums_round_to_nearest") {
        return;
    }
    let small = f64::from(pow2(-24)) + f64::from(pow2(-31));
    let cases: [([f32; 2], [f32; 2], &[f32]); 4] = [
        ([1.0, 1.0], [1.0, small as f32], &[1.0 + f32::EPSILON]),
        ([1.0, 1.0], [small as f32, 1.0], &[1.0 + f32::EPSILON]),
        ([-1.0, 1.0], [1.0, -small as f32], &[-1.0 - f32::EPSILON]),
        // 2^-127: flushed to 0 by the tile unit (as documented, and seen on
        // the project's Xeon), or kept.
        (
            [pow2(-63), 0.0],
            [pow2(-64), 0.0],
            &[0.0, f32::from_bits(0x0040_0000)],
        ),
    ];
    let need = amx::layer_scratch_len(1, 2);
    for (x, w, want) in cases {
        let packed = pack(&w, 1, 2, 0);
        let mut y = [f32::NAN];
        amx::gemm_bias_act(
            &packed,
            &[0.0],
            &x,
            2,
            Activation::Linear,
            &mut y,
            &mut vec![0.0; need],
        )
        .unwrap();
        assert!(
            want.contains(&y[0]),
            "x {x:?} w {w:?}: {:e} ({:#010x}), want one of {want:?}",
            y[0],
            y[0].to_bits()
        );
    }
}
