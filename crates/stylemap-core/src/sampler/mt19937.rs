//! The 32-bit Mersenne Twister (MT19937) as seeded by numpy's legacy
//! `np.random.RandomState(seed)`.

use core::convert::Infallible;
use core::fmt;

use rand_core::TryRng;

/// Number of 32-bit words in the MT19937 state.
const N: usize = 624;
/// Middle word offset of the twist recurrence.
const M: usize = 397;
/// Twist matrix constant.
const MATRIX_A: u32 = 0x9908_b0df;
/// Most significant bit of a word.
const UPPER_MASK: u32 = 0x8000_0000;
/// Least significant 31 bits of a word.
const LOWER_MASK: u32 = 0x7fff_ffff;

/// The 32-bit Mersenne Twister, MT19937 (Matsumoto & Nishimura, 1998).
///
/// [`Mt19937::new`] seeds it with the reference `init_genrand` recurrence,
/// which is exactly what numpy's legacy `np.random.RandomState(seed)` does for
/// an integer seed in `0..=u32::MAX`, so the raw 32-bit stream equals
/// `RandomState(seed)._bit_generator.random_raw()`.
///
/// It implements [`rand_core::TryRng`] with `Error = Infallible`, hence
/// [`rand_core::Rng`]:
///
/// * `next_u32` is the next tempered 32-bit output;
/// * `next_u64` draws two 32-bit outputs and puts the **first one in the high
///   half**: `(first << 32) | second`. This is numpy's `mt19937_next64` order
///   (and that of the `rand_mt` crate); note it is the opposite of
///   `rand_core::utils::next_u64_via_u32`, which is little-endian;
/// * `fill_bytes` writes successive 32-bit outputs in little-endian byte order;
///   a trailing partial word consumes a whole output.
///
/// The 624-word state is stored inline (no heap), so a value is about 2.5 KB
/// (624 × 4 bytes plus an index). Keep that in mind on small embedded stacks;
/// the type is deliberately not `Copy`.
///
/// `SeedableRng` is intentionally not implemented: its default
/// `seed_from_u64` would scramble the seed and silently break numpy
/// compatibility. Use [`Mt19937::new`].
#[derive(Clone, PartialEq, Eq)]
pub struct Mt19937 {
    state: [u32; N],
    /// Index of the next word to temper; `N` means "twist first".
    index: usize,
}

impl Mt19937 {
    /// Number of 32-bit words of state (624).
    pub const STATE_WORDS: usize = N;

    /// The default seed of the reference implementation (`5489`).
    pub const DEFAULT_SEED: u32 = 5489;

    /// Seeds the generator like the reference `init_genrand(seed)` and numpy's
    /// legacy `RandomState(seed)`:
    /// `mt[0] = seed`, `mt[i] = 1812433253 * (mt[i-1] ^ (mt[i-1] >> 30)) + i`
    /// (mod 2^32), with the position set to 624 so that the first output
    /// triggers a full twist.
    #[must_use]
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        let mut prev = seed;
        for (i, word) in state.iter_mut().enumerate().skip(1) {
            // `i < 624`, so the cast is lossless.
            prev = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
            *word = prev;
        }
        Self { state, index: N }
    }

    /// Regenerates all 624 words of state (the "twist").
    fn twist(&mut self) {
        let mt = &mut self.state;
        for i in 0..N {
            let y = (mt[i] & UPPER_MASK) | (mt[(i + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 0 { 0 } else { MATRIX_A };
            mt[i] = mt[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// Returns the next tempered 32-bit output.
    #[inline]
    fn next_word(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }
}

impl Default for Mt19937 {
    /// Seeds with [`Mt19937::DEFAULT_SEED`] (5489), the reference default.
    fn default() -> Self {
        Self::new(Self::DEFAULT_SEED)
    }
}

impl fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The 624-word state is not printed: it is long and it would leak the
        // full generator state into logs.
        f.debug_struct("Mt19937")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl TryRng for Mt19937 {
    type Error = Infallible;

    #[inline]
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.next_word())
    }

    /// Two 32-bit outputs, the first in the high half (numpy's order).
    #[inline]
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let hi = u64::from(self.next_word());
        let lo = u64::from(self.next_word());
        Ok((hi << 32) | lo)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        rand_core::utils::fill_bytes_via_next_word(dst, || Ok(self.next_word()))
    }
}
