//! Seeds to z, as NVlabs' scripts draw them, with this machine's `log`.
//!
//! numpy's legacy `randn` calls the C library's `log`; so does [`f64::ln`].
//! With [`PlatformLog`] the f64 deviates are therefore numpy's own, bit for
//! bit, on the machine numpy would run on. (The core's default, a pure-Rust
//! correctly rounded log, gives the same f32 z on every target, and differs
//! from numpy in f64 only where the C library misrounds — about 0.04% of
//! deviates with glibc 2.36; see `stylemap_core::sampler`.)

use stylemap_core::sampler::{NaturalLog, NumpyRandomState};

/// The C library's natural log, via [`f64::ln`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlatformLog;

impl NaturalLog for PlatformLog {
    #[inline]
    fn ln(x: f64) -> f64 {
        x.ln()
    }
}

/// `np.random.RandomState(seed)`, sampling with [`PlatformLog`].
pub fn numpy_random_state(seed: u32) -> NumpyRandomState<PlatformLog> {
    NumpyRandomState::with_log(seed)
}

/// `np.random.RandomState(seed).randn(1, out.len())` in f64, numpy's bits.
pub fn z_from_seed_numpy_f64(seed: u32, out: &mut [f64]) {
    numpy_random_state(seed).randn_f64(out);
}

/// [`z_from_seed_numpy_f64`] cast to f32, as NVlabs' network does on entry.
pub fn z_from_seed_numpy(seed: u32, out: &mut [f32]) {
    numpy_random_state(seed).randn_f32(out);
}
