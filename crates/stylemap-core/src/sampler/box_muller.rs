//! Box-Muller Gaussian sampler over any [`rand_core::Rng`].
//!
//! The arithmetic lives in `box_muller_math` (branch-free, vectorised over
//! blocks of 8 pairs, bit-identical on every target; its module docs
//! state the accuracy); on x86-64 CPUs with AVX-512F or AVX2 the same code
//! runs in an AVX-512 / AVX2 build chosen at run time (`box_muller_simd`),
//! with identical results.

use core::f64::consts::TAU;

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::box_muller_math::{self as math, BLOCK};

/// `2^-53`, the spacing of the 53-bit uniform grid.
const TWO_POW_M53: f64 = 1.0 / 9_007_199_254_740_992.0;

/// One Box-Muller pair `(r cos θ, r sin θ)` in `f64` from two `next_u64`
/// draws.
///
/// The first draw `x` gives `u1 = ((x >> 11) + 1) · 2^-53` in `(0, 1]`
/// (never 0, so `ln u1` is finite), the second `y` gives
/// `u2 = (y >> 11) · 2^-53` in `[0, 1)`; then `r = sqrt(-2 ln u1)` (at most
/// `sqrt(106 ln 2) ≈ 8.57`) and `θ = 2π · u2`. Both values are always
/// finite, for every possible RNG output, and `|r cos θ|, |r sin θ| <= r`.
///
/// `ln` is bit-identical to `libm::log`; `sin θ` and `cos θ` are computed
/// for the exact angle `2π · u2` (reduced to a quadrant with integer
/// arithmetic on `y`) and are within 1 ULP of the correctly rounded values.
/// All arithmetic is correctly rounded IEEE `f64` (no FMA, no platform libm),
/// so the result is identical on every target. This is the scalar form of
/// what [`fill_box_muller_f64`] computes in blocks.
#[inline]
pub fn box_muller_pair<R: Rng + ?Sized>(rng: &mut R) -> (f64, f64) {
    let x = rng.next_u64();
    let y = rng.next_u64();
    math::pair(x, y)
}

/// The pre-vectorisation Box-Muller pair, kept as a test oracle: the same
/// `u1`, `u2` and formula as [`box_muller_pair`], evaluated with pure-Rust
/// `libm` (`sqrt(-2 log u1)` and `sincos(fl(2π · u2))`).
///
/// Deterministic and identical on every target too, but about 7x slower
/// and **not** the project's stream: its radius is the same bits, its angle
/// is the rounded product `fl(2π · u2)` (off by up to 2^-50.3), so its
/// values differ from [`box_muller_pair`]'s in the last few bits (see
/// `tests/sampler.rs`, `box_muller_agrees_with_the_libm_reference`).
pub fn box_muller_pair_reference<R: Rng + ?Sized>(rng: &mut R) -> (f64, f64) {
    // Both conversions are exact: the integers are at most 2^53.
    #[allow(clippy::cast_precision_loss)]
    let u1 = ((rng.next_u64() >> 11) + 1) as f64 * TWO_POW_M53;
    #[allow(clippy::cast_precision_loss)]
    let u2 = (rng.next_u64() >> 11) as f64 * TWO_POW_M53;
    let r = libm::sqrt(-2.0 * libm::log(u1));
    let (s, c) = libm::sincos(TAU * u2);
    (r * c, r * s)
}

/// [`z_from_seed_xoshiro`] computed the pre-vectorisation way, pair by pair
/// with [`box_muller_pair_reference`] (pure-Rust `libm`), rounded to `f32`.
///
/// A test oracle and benchmark baseline, not the project's stream: its `f32`
/// values almost always equal [`z_from_seed_xoshiro`]'s (the `f64` values
/// behind them differ in the last few bits), and it is about 7x slower.
pub fn z_from_seed_xoshiro_reference(seed: u64, out: &mut [f32]) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut pairs = out.chunks_exact_mut(2);
    for pair in &mut pairs {
        let (a, b) = box_muller_pair_reference(&mut rng);
        pair[0] = f32::from_f64(a);
        pair[1] = f32::from_f64(b);
    }
    if let [last] = pairs.into_remainder() {
        *last = f32::from_f64(box_muller_pair_reference(&mut rng).0);
    }
}

/// An output element type: `f64`, or `f32` rounded to nearest from the
/// `f64` value.
pub(super) trait Sample: Copy {
    /// Rounds (or keeps) an `f64` deviate.
    fn from_f64(v: f64) -> Self;
}

impl Sample for f64 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl Sample for f32 {
    #[inline(always)]
    #[allow(clippy::cast_possible_truncation)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

/// The fill loop: draws `2 · BLOCK` words (`x` then `y` per pair, in stream
/// order) into arrays, computes the block with [`math::pairs`] and stores it
/// interleaved. The last partial block draws only the words its pairs need.
///
/// Software-pipelined: the words of block `k + 1` are drawn before block
/// `k` is computed, so the serial integer RNG work overlaps the vector
/// arithmetic and the vector loads of a block's words never wait for
/// just-issued scalar stores (about 20 % faster). The words are still drawn
/// in stream order and only as many as the output needs.
///
/// `#[inline(always)]` so that the AVX-512 / AVX2 wrappers compile (and
/// vectorise) their own copies with those features enabled.
#[inline(always)]
pub(super) fn fill_portable<T: Sample, R: Rng + ?Sized>(rng: &mut R, out: &mut [T]) {
    let mut xs = [0u64; BLOCK];
    let mut ys = [0u64; BLOCK];
    let mut c = [0.0f64; BLOCK];
    let mut s = [0.0f64; BLOCK];
    let draw = |rng: &mut R, xs: &mut [u64; BLOCK], ys: &mut [u64; BLOCK], pairs: usize| {
        for (x, y) in xs.iter_mut().zip(ys.iter_mut()).take(pairs) {
            *x = rng.next_u64();
            *y = rng.next_u64();
        }
    };
    // Pairs of the final partial block (0 if none).
    let tail_pairs = (out.len() % (2 * BLOCK)).div_ceil(2);
    let mut chunks = out.chunks_exact_mut(2 * BLOCK);
    let full = chunks.len();
    if full > 0 {
        draw(rng, &mut xs, &mut ys, BLOCK);
    }
    for (k, chunk) in (&mut chunks).enumerate() {
        let (cx, cy) = (xs, ys);
        // Words of the next block, full or partial.
        let next = if k + 1 < full { BLOCK } else { tail_pairs };
        draw(rng, &mut xs, &mut ys, next);
        math::pairs(&cx, &cy, &mut c, &mut s);
        for (i, o) in chunk.chunks_exact_mut(2).enumerate() {
            o[0] = T::from_f64(c[i]);
            o[1] = T::from_f64(s[i]);
        }
    }
    let rest = chunks.into_remainder();
    if rest.is_empty() {
        return;
    }
    if full == 0 {
        draw(rng, &mut xs, &mut ys, tail_pairs);
    }
    // Lanes past `tail_pairs` hold stale words; their results are discarded.
    math::pairs(&xs, &ys, &mut c, &mut s);
    for (i, o) in rest.iter_mut().enumerate() {
        let v = if i % 2 == 0 { c[i / 2] } else { s[i / 2] };
        *o = T::from_f64(v);
    }
}

/// [`fill_portable`], or its AVX-512 / AVX2 build where the CPU has it
/// (x86-64, unless the `force-scalar` feature is on). Same bits either way.
#[inline]
fn fill<T: Sample, R: Rng + ?Sized>(rng: &mut R, out: &mut [T]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    if super::box_muller_simd::fill_dispatched(rng, out) {
        return;
    }
    fill_portable(rng, out);
}

/// Fills `out` with standard normal deviates in `f64` (Box-Muller).
///
/// Stateless: consecutive pairs of `out` come from consecutive calls of
/// [`box_muller_pair`], cosine term first. For an odd length the last slot
/// gets the cosine term of one more pair and its sine term is **dropped**
/// (nothing is cached). Consequently a fill of `n` values is always a prefix
/// of a fill of `m > n` values from the same RNG state, and it consumes
/// `2 · ceil(n / 2)` `u64` words.
///
/// About 2 ns per value on a current x86-64 core (pairs are computed in
/// blocks of 8, vectorised; AVX-512 or AVX2 when the CPU has it), under
/// half of it drawing the words.
pub fn fill_box_muller_f64<R: Rng + ?Sized>(rng: &mut R, out: &mut [f64]) {
    fill(rng, out);
}

/// Fills `out` with standard normal deviates computed in `f64` and rounded to
/// `f32` (Box-Muller).
///
/// Same stream layout and odd-length rule as [`fill_box_muller_f64`]: each
/// `f32` is exactly the corresponding `f64` value rounded to nearest.
pub fn fill_box_muller<R: Rng + ?Sized>(rng: &mut R, out: &mut [f32]) {
    fill(rng, out);
}

/// The project's default latent for `seed`: Box-Muller over
/// `Xoshiro256PlusPlus::seed_from_u64(seed)`, rounded to `f32`.
///
/// Not numpy-compatible (use
/// [`z_from_seed_numpy`](super::z_from_seed_numpy) for NVlabs seeds), but
/// fast, small (32 bytes of state) and bit-identical across targets.
pub fn z_from_seed_xoshiro(seed: u64, out: &mut [f32]) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    fill_box_muller(&mut rng, out);
}
