//! numpy's legacy Gaussian sampler (`RandomState.randn` / `standard_normal`).

use rand_core::Rng;

use super::mt19937::Mt19937;

/// The natural logarithm the polar method uses.
///
/// numpy calls its C library's `log`; which one decides the last bit of a
/// few deviates (see [`NumpyRandomState`]). The core's default,
/// [`CorrectlyRoundedLog`], is pure Rust and identical on every target; a
/// `std` user who wants numpy's bits *on the same machine* can plug in the
/// platform's `log` (e.g. `f64::ln`, which calls the same C library numpy does).
pub trait NaturalLog {
    /// `ln(x)` for `0 < x < 1`.
    fn ln(x: f64) -> f64;
}

/// The correctly rounded natural log (exact value rounded to nearest), in
/// pure Rust: the same bits on every target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CorrectlyRoundedLog;

impl NaturalLog for CorrectlyRoundedLog {
    #[inline]
    fn ln(x: f64) -> f64 {
        super::log::ln(x)
    }
}

/// numpy's legacy uniform double in `[0, 1)` with 53 random bits.
///
/// Draws two 32-bit words `a` then `b` and returns
/// `((a >> 5) * 2^26 + (b >> 6)) / 2^53`, exactly as numpy's
/// `random_sample` / `legacy_double` does over MT19937. Works over any
/// [`Rng`]; only `next_u32` is used.
#[inline]
pub fn legacy_uniform_f64<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let a = rng.next_u32() >> 5;
    let b = rng.next_u32() >> 6;
    // Both products and the sum are exact (< 2^53); the division by a power
    // of two is exact too.
    (f64::from(a) * 67_108_864.0 + f64::from(b)) / 9_007_199_254_740_992.0
}

/// Attempts after which [`LegacyGaussian::next_f64`] gives up on a stream
/// that never lands inside the unit disc (see its `# Panics` section).
pub const MAX_POLAR_ATTEMPTS: u32 = 1000;

/// The cached half of numpy's legacy Marsaglia polar Gaussian sampler, usable
/// over any [`Rng`].
///
/// Each pair of normal deviates is produced from uniforms drawn with
/// [`legacy_uniform_f64`]: `x1 = 2u - 1`, `x2 = 2u - 1`, retried until
/// `0 < r2 = x1² + x2² < 1`; then `f = sqrt(-2 ln(r2) / r2)`, `f * x2` is
/// returned and `f * x1` is cached for the next call. Over a freshly seeded
/// [`Mt19937`] this reproduces numpy's `RandomState(seed).randn(n)` (see
/// [`NumpyRandomState`] for the exact extent).
///
/// The logarithm is a correctly rounded natural log (the exact value rounded
/// to nearest), computed in pure Rust so results are identical on every
/// target.
///
/// The cache belongs to one stream: do not share a `LegacyGaussian` between
/// different RNGs unless you mean to.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LegacyGaussian {
    /// The cached deviate `f * x1`, if any.
    cached: Option<f64>,
}

impl LegacyGaussian {
    /// An empty cache (numpy's state right after seeding).
    #[must_use]
    pub const fn new() -> Self {
        Self { cached: None }
    }

    /// Whether a cached deviate is pending (numpy's `has_gauss`).
    #[must_use]
    pub const fn has_cached(&self) -> bool {
        self.cached.is_some()
    }

    /// Drops any cached deviate (as numpy does when re-seeding).
    pub fn reset(&mut self) {
        self.cached = None;
    }

    /// Returns the next standard normal deviate in `f64`.
    ///
    /// Returns the cached value if there is one; otherwise runs the polar
    /// method on `rng` (consuming four or more 32-bit words), caches one value
    /// and returns the other. The result is always finite.
    ///
    /// # Panics
    ///
    /// The polar method rejects points outside the unit disc (about 21 % of
    /// attempts; 1.27 attempts on average). If [`MAX_POLAR_ATTEMPTS`]
    /// consecutive attempts are rejected — probability below 10^-600 for any
    /// real RNG, but certain for a degenerate stream such as constant output
    /// — this panics instead of looping forever ([`Self::try_next_f64`]
    /// returns `None` instead). For seeded MT19937 streams
    /// ([`NumpyRandomState`], [`z_from_seed_numpy`]) the chance of reaching
    /// it is below 10^-590 even summed over all 2^32 seeds and thousands of
    /// deviates each: treated as impossible.
    pub fn next_f64<R: Rng + ?Sized>(&mut self, rng: &mut R) -> f64 {
        self.next_f64_with::<CorrectlyRoundedLog, R>(rng)
    }

    /// [`Self::next_f64`] with the logarithm `L` (see [`NaturalLog`]).
    ///
    /// # Panics
    ///
    /// Only on a degenerate RNG, as described for [`Self::next_f64`].
    pub fn next_f64_with<L: NaturalLog, R: Rng + ?Sized>(&mut self, rng: &mut R) -> f64 {
        match self.try_next_f64_with::<L, R>(rng) {
            Some(g) => g,
            None => panic!(
                "LegacyGaussian: RNG produced no point inside the unit disc \
                 (degenerate stream?)"
            ),
        }
    }

    /// [`Self::next_f64`] that never panics: `None` after
    /// [`MAX_POLAR_ATTEMPTS`] rejected attempts (a degenerate RNG, such as
    /// one that returns a constant), having consumed `4 * MAX_POLAR_ATTEMPTS`
    /// words and leaving the cache empty. Otherwise the same value, the same
    /// words consumed and the same cache as [`Self::next_f64`]; always finite.
    pub fn try_next_f64<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<f64> {
        self.try_next_f64_with::<CorrectlyRoundedLog, R>(rng)
    }

    /// [`Self::try_next_f64`] with the logarithm `L` (see [`NaturalLog`]).
    pub fn try_next_f64_with<L: NaturalLog, R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Option<f64> {
        if let Some(g) = self.cached.take() {
            return Some(g);
        }
        for _ in 0..MAX_POLAR_ATTEMPTS {
            let x1 = 2.0 * legacy_uniform_f64(rng) - 1.0;
            let x2 = 2.0 * legacy_uniform_f64(rng) - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                // Same operation order as numpy: (-2 * ln r2) / r2.
                let f = libm::sqrt(-2.0 * L::ln(r2) / r2);
                self.cached = Some(f * x1);
                return Some(f * x2);
            }
        }
        None
    }

    /// Fills `out` with successive deviates from [`Self::next_f64`].
    ///
    /// # Panics
    ///
    /// Only on a degenerate RNG, as described for [`Self::next_f64`].
    pub fn fill_f64<R: Rng + ?Sized>(&mut self, rng: &mut R, out: &mut [f64]) {
        for v in out {
            *v = self.next_f64(rng);
        }
    }

    /// Fills `out` with successive deviates computed in `f64` and rounded to
    /// `f32` (round to nearest, as `torch.from_numpy(z).float()` does).
    ///
    /// # Panics
    ///
    /// Only on a degenerate RNG, as described for [`Self::next_f64`].
    #[allow(clippy::cast_possible_truncation)]
    pub fn fill_f32<R: Rng + ?Sized>(&mut self, rng: &mut R, out: &mut [f32]) {
        for v in out {
            *v = self.next_f64(rng) as f32;
        }
    }
}

/// A bit-exact stand-in for numpy's legacy `np.random.RandomState(seed)`,
/// restricted to its Gaussian sampler.
///
/// "Bit-exact" means: identical to numpy whenever the C library numpy runs on
/// rounds `log` correctly, which the crate does always. numpy itself inherits
/// its platform's `log`: glibc 2.36 misrounds about 0.08 % of the polar
/// method's inputs (and its FMA and non-FMA code paths misround different
/// ones), so for seeds 0..=3000 with `n = 512` about 0.036 % of numpy's `f64`
/// deviates on x86-64 Linux differ from these by 1-2 ULP (seed 42, indices 76
/// and 77, is one such pair). The `f32` values ([`Self::randn_f32`],
/// [`z_from_seed_numpy`]) matched numpy's cast on every value of that sweep.
///
/// Holds an [`Mt19937`] (so about 2.5 KB, inline) and a [`LegacyGaussian`]
/// cache. Successive calls continue the same stream, including the cached
/// odd deviate, exactly like successive `randn` calls on one `RandomState`:
/// `randn_f64` of 3 values then of 5 values gives the same 8 values as one
/// call of 8.
///
/// Its methods do not panic: MT19937 output is not degenerate enough to hit
/// [`MAX_POLAR_ATTEMPTS`].
///
/// `L` picks the logarithm: [`CorrectlyRoundedLog`] (the default, same bits
/// everywhere) or a platform log via [`NumpyRandomState::with_log`], which
/// matches numpy bit for bit on the machine whose C library numpy uses.
#[derive(Clone, Debug, PartialEq)]
pub struct NumpyRandomState<L = CorrectlyRoundedLog> {
    mt: Mt19937,
    gauss: LegacyGaussian,
    log: core::marker::PhantomData<L>,
}

impl NumpyRandomState {
    /// Equivalent of `np.random.RandomState(seed)` for an integer seed.
    #[must_use]
    pub fn new(seed: u32) -> Self {
        Self::with_log(seed)
    }
}

impl<L: NaturalLog> NumpyRandomState<L> {
    /// Like [`NumpyRandomState::new`], with the logarithm `L`.
    #[must_use]
    pub fn with_log(seed: u32) -> Self {
        Self {
            mt: Mt19937::new(seed),
            gauss: LegacyGaussian::new(),
            log: core::marker::PhantomData,
        }
    }

    /// One deviate, like `RandomState.standard_normal()`.
    pub fn standard_normal(&mut self) -> f64 {
        self.gauss.next_f64_with::<L, _>(&mut self.mt)
    }

    /// One uniform double in `[0, 1)`, like `RandomState.random_sample()`.
    ///
    /// Does not touch the Gaussian cache (numpy does not either).
    pub fn random_sample(&mut self) -> f64 {
        legacy_uniform_f64(&mut self.mt)
    }

    /// Fills `out` like `RandomState.randn(out.len())`, bit for bit.
    pub fn randn_f64(&mut self, out: &mut [f64]) {
        for v in out {
            *v = self.standard_normal();
        }
    }

    /// Fills `out` like `RandomState.randn(out.len()).astype(np.float32)`:
    /// each value is computed in `f64` and then rounded to `f32`, as NVlabs'
    /// scripts do when the float64 `z` enters the network.
    #[allow(clippy::cast_possible_truncation)]
    pub fn randn_f32(&mut self, out: &mut [f32]) {
        for v in out {
            *v = self.standard_normal() as f32;
        }
    }

    /// The underlying MT19937 stream.
    pub fn mt19937_mut(&mut self) -> &mut Mt19937 {
        &mut self.mt
    }

    /// The Gaussian cache.
    #[must_use]
    pub fn gaussian(&self) -> &LegacyGaussian {
        &self.gauss
    }
}

/// The latent `z` NVlabs' `generate.py` / `gen_images.py` use for `seed`:
/// `np.random.RandomState(seed).randn(1, out.len())`, cast to `f32`.
///
/// `out.len()` is normally `z_dim` (512). The state (~2.5 KB) lives on the
/// stack for the duration of the call.
pub fn z_from_seed_numpy(seed: u32, out: &mut [f32]) {
    NumpyRandomState::new(seed).randn_f32(out);
}
