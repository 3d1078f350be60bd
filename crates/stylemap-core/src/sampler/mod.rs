//! Latent samplers: turn a seed into a standard normal `z`.
//!
//! Two samplers are provided, both `no_std`, allocation-free and usable over
//! any [`rand_core::Rng`]:
//!
//! * **numpy legacy** ([`NumpyRandomState`], [`LegacyGaussian`],
//!   [`z_from_seed_numpy`]): MT19937 seeded like
//!   `np.random.RandomState(seed)` plus numpy's cached Marsaglia polar method.
//!   It reproduces `np.random.RandomState(seed).randn(n)` bit for bit
//!   wherever the platform's `log` is correctly rounded (glibc's is not on
//!   ~0.08 % of inputs, moving ~0.04 % of numpy's `f64` deviates by 1 ULP;
//!   see [`NumpyRandomState`]), so a seed gives the same `f32` `z` (and
//!   therefore the same image) as NVlabs' `generate.py` / `gen_images.py`.
//!   The MT19937 state is 2.5 KB, inline.
//! * **Box-Muller** ([`fill_box_muller`], [`z_from_seed_xoshiro`]): the
//!   project's default stream, `Xoshiro256PlusPlus::seed_from_u64(seed)` fed
//!   through a stateless Box-Muller transform. Not numpy-compatible, but tiny
//!   and fast: pairs are computed 8 at a time by branch-free code that LLVM
//!   vectorises (about 1.0 µs for 512 values on a current x86-64 core with
//!   AVX-512, run-time dispatched; 2.1 µs with SSE2 alone).
//!
//! # Determinism contract
//!
//! For a given seed (and length) both samplers produce bit-identical output
//! on every target (x86, ARM, wasm, ...), in debug and release builds:
//!
//! * the RNGs are pure integer arithmetic;
//! * the transcendental functions come from the pure-Rust `libm` crate (its
//!   `arch` feature is off, so no platform libm or intrinsic is involved) or
//!   are the crate's own: the polar method's logarithm is correctly rounded,
//!   and Box-Muller's `ln`, `sin` and `cos` are branch-free polynomial
//!   kernels (FreeBSD's, as in `libm`) made only of `+ - * /`, `sqrt` and
//!   exact bit operations, so its SSE2, AVX2, AVX-512 and NEON builds give
//!   the same bits as the scalar one (its module docs state their accuracy:
//!   within 1 ULP of the correctly rounded `ln`, `sin`, `cos`);
//! * Rust never contracts `a * b + c` into a fused multiply-add and never
//!   reassociates floating-point operations, so every `f64` operation is a
//!   single IEEE-754 round-to-nearest step;
//! * the `f64 -> f32` cast rounds to nearest, ties to even.
//!
//! (The one exception would be a target without IEEE double arithmetic, such
//! as 32-bit x86 without SSE2, which uses x87 extended precision.)
//!
//! Output values are pinned by golden tests, so a change of any value is a
//! breaking change.

mod box_muller;
mod box_muller_math;
mod box_muller_simd;
mod legacy;
mod log;
mod mt19937;

pub use box_muller::{
    box_muller_pair, box_muller_pair_reference, fill_box_muller, fill_box_muller_f64,
    z_from_seed_xoshiro, z_from_seed_xoshiro_reference,
};
pub use legacy::{
    CorrectlyRoundedLog, LegacyGaussian, MAX_POLAR_ATTEMPTS, NaturalLog, NumpyRandomState,
    legacy_uniform_f64, z_from_seed_numpy,
};
pub use mt19937::Mt19937;
