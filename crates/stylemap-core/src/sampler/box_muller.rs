//! Box-Muller Gaussian sampler over any [`rand_core::Rng`].

use core::f64::consts::TAU;

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// `2^-53`, the spacing of the 53-bit uniform grid.
const TWO_POW_M53: f64 = 1.0 / 9_007_199_254_740_992.0;

/// One Box-Muller pair `(r cos θ, r sin θ)` in `f64` from two `next_u64`
/// draws.
///
/// The first draw gives `u1 = ((x >> 11) + 1) · 2^-53` in `(0, 1]` (never 0,
/// so `ln u1` is finite), the second `u2 = (y >> 11) · 2^-53` in `[0, 1)`;
/// then `r = sqrt(-2 ln u1)` (at most `sqrt(106 ln 2) ≈ 8.57`) and
/// `θ = 2π · u2`. Both values are always finite, for every possible RNG
/// output. All arithmetic is plain IEEE `f64` plus pure-Rust `libm`, so the
/// result is identical on every target.
#[inline]
pub fn box_muller_pair<R: Rng + ?Sized>(rng: &mut R) -> (f64, f64) {
    // Both conversions are exact: the integers are at most 2^53.
    #[allow(clippy::cast_precision_loss)]
    let u1 = ((rng.next_u64() >> 11) + 1) as f64 * TWO_POW_M53;
    #[allow(clippy::cast_precision_loss)]
    let u2 = (rng.next_u64() >> 11) as f64 * TWO_POW_M53;
    let r = libm::sqrt(-2.0 * libm::log(u1));
    let (s, c) = libm::sincos(TAU * u2);
    (r * c, r * s)
}

/// Fills `out` with standard normal deviates in `f64` (Box-Muller).
///
/// Stateless: consecutive pairs of `out` come from consecutive calls of
/// [`box_muller_pair`], cosine term first. For an odd length the last slot
/// gets the cosine term of one more pair and its sine term is **dropped**
/// (nothing is cached). Consequently a fill of `n` values is always a prefix
/// of a fill of `m > n` values from the same RNG state, and it consumes
/// `2 · ceil(n / 2)` `u64` words.
pub fn fill_box_muller_f64<R: Rng + ?Sized>(rng: &mut R, out: &mut [f64]) {
    let mut pairs = out.chunks_exact_mut(2);
    for pair in &mut pairs {
        let (a, b) = box_muller_pair(rng);
        pair[0] = a;
        pair[1] = b;
    }
    if let [last] = pairs.into_remainder() {
        *last = box_muller_pair(rng).0;
    }
}

/// Fills `out` with standard normal deviates computed in `f64` and rounded to
/// `f32` (Box-Muller).
///
/// Same stream layout and odd-length rule as [`fill_box_muller_f64`]: each
/// `f32` is exactly the corresponding `f64` value rounded to nearest.
#[allow(clippy::cast_possible_truncation)]
pub fn fill_box_muller<R: Rng + ?Sized>(rng: &mut R, out: &mut [f32]) {
    let mut pairs = out.chunks_exact_mut(2);
    for pair in &mut pairs {
        let (a, b) = box_muller_pair(rng);
        pair[0] = a as f32;
        pair[1] = b as f32;
    }
    if let [last] = pairs.into_remainder() {
        *last = box_muller_pair(rng).0 as f32;
    }
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
