//! `sampler`: arbitrary RNG streams (the fuzzer's bytes, cycled; all-zero,
//! all-one and other constant streams included) through both Gaussian
//! samplers, and arbitrary seeds through the seeded entry points.
//!
//! Checks: Box-Muller is always finite and within sqrt(106 ln 2) ~ 8.5717;
//! the polar method (numpy's legacy sampler) always terminates: on a
//! degenerate stream `try_next_f64` gives up after `4 * MAX_POLAR_ATTEMPTS`
//! words with `None`, otherwise it is finite and agrees with `next_f64`.
#![no_main]

use core::convert::Infallible;

use libfuzzer_sys::fuzz_target;
use rand_core::TryRng;
use stylemap_core::sampler::{self, LegacyGaussian, MAX_POLAR_ATTEMPTS, NumpyRandomState};

/// The input's words, cycled forever (an empty input is all zeros).
struct Stream<'a> {
    words: &'a [u8],
    pos: usize,
    taken: usize,
}

impl TryRng for Stream<'_> {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.taken += 1;
        let n = self.words.len() / 4;
        if n == 0 {
            return Ok(0);
        }
        let i = self.pos % n;
        self.pos += 1;
        let b = &self.words[4 * i..4 * i + 4];
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let lo = u64::from(self.try_next_u32()?);
        let hi = u64::from(self.try_next_u32()?);
        Ok(lo | (hi << 32))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(4) {
            let w = self.try_next_u32()?.to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
        Ok(())
    }
}

/// sqrt(-2 ln 2^-53), the largest radius (u1 = 2^-53), as pinned in tests/sampler.rs.
const RADIUS_MAX: f64 = f64::from_bits(0x4021_24b2_800e_da48);

fuzz_target!(|data: &[u8]| {
    let (mode, rest) = data.split_first().unwrap_or((&0, &[]));
    let constant;
    let words: &[u8] = match mode % 4 {
        0 => rest,
        1 => &[0u8; 4],
        2 => &[0xffu8; 4],
        _ => {
            constant = rest
                .get(..4)
                .map_or([0x80, 0, 0, 0], |b| [b[0], b[1], b[2], b[3]]);
            &constant
        }
    };
    let n = usize::from(rest.first().copied().unwrap_or(7) % 64);

    // Box-Muller, f32 and f64.
    let mut out = vec![0.0f32; n];
    sampler::fill_box_muller(
        &mut Stream {
            words,
            pos: 0,
            taken: 0,
        },
        &mut out,
    );
    assert!(
        out.iter()
            .all(|v| v.is_finite() && f64::from(v.abs()) <= RADIUS_MAX + 1e-6)
    );
    let mut out = vec![0.0f64; n];
    let mut s = Stream {
        words,
        pos: 0,
        taken: 0,
    };
    sampler::fill_box_muller_f64(&mut s, &mut out);
    assert!(out.iter().all(|v| v.is_finite() && v.abs() <= RADIUS_MAX));
    assert_eq!(s.taken, 4 * n.div_ceil(2), "two u64 per pair");

    // The polar method: bounded work, finite values, same as the panicking API.
    let mut a = Stream {
        words,
        pos: 0,
        taken: 0,
    };
    let mut g = LegacyGaussian::new();
    let mut values = Vec::new();
    for _ in 0..n {
        let before = a.taken;
        match g.try_next_f64(&mut a) {
            Some(v) => {
                assert!(v.is_finite());
                values.push(v);
            }
            None => {
                assert_eq!(a.taken - before, 4 * MAX_POLAR_ATTEMPTS as usize);
                assert!(!g.has_cached());
                break;
            }
        }
        assert!(a.taken - before <= 4 * MAX_POLAR_ATTEMPTS as usize);
    }
    let mut b = Stream {
        words,
        pos: 0,
        taken: 0,
    };
    let mut g2 = LegacyGaussian::new();
    for &v in &values {
        assert_eq!(g2.next_f64(&mut b).to_bits(), v.to_bits());
    }

    // Seeded entry points (what the CLI reaches): finite for every seed.
    let seed = u32::from_le_bytes(rest.get(..4).map_or([0; 4], |b| [b[0], b[1], b[2], b[3]]));
    let mut z = vec![0.0f32; n];
    sampler::z_from_seed_numpy(seed, &mut z);
    assert!(z.iter().all(|v| v.is_finite()));
    let mut z64 = vec![0.0f64; n];
    NumpyRandomState::new(seed).randn_f64(&mut z64);
    assert!(z64.iter().all(|v| v.is_finite()));
    stylemap::seeds::z_from_seed_numpy(seed, &mut z);
    assert!(z.iter().all(|v| v.is_finite()));
    sampler::z_from_seed_xoshiro(u64::from(seed) << 7, &mut z);
    assert!(z.iter().all(|v| v.is_finite()));
});
