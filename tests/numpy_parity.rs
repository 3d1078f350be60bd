//! numpy parity with the platform's `log`: `RandomState(seed).randn(n)` bit
//! for bit in f64, for every committed numpy output (seeds 0, 1, 42, 85,
//! 2^32-1; lengths 1, 511, 512, 513).
//!
//! numpy calls the C library's `log`; so does `f64::ln` here, so on the same
//! C library the f64 deviates must be identical, bit for bit. (The core's
//! default pure-Rust, correctly rounded log gives identical f32 z everywhere
//! and differs in f64 only where glibc misrounds: see the core's sampler tests.)
//! The fixtures were written by numpy 2.4.6 on x86-64 glibc 2.36; another C
//! library may legitimately misround other inputs, so the bit test runs on
//! x86-64 Linux/glibc only.

use stylemap::seeds::PlatformLog;
use stylemap_core::sampler::NumpyRandomState;

fn fixture(seed: u32, n: usize) -> Vec<f64> {
    let path = format!(
        "{}/crates/stylemap-core/tests/data/randn_seed{seed}_n{n}.f64",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(bytes.len(), n * 8, "{path}");
    bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
#[cfg_attr(
    not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")),
    ignore = "fixtures come from glibc's log on x86-64"
)]
fn platform_log_reproduces_numpy_bit_for_bit() {
    for seed in [0u32, 1, 42, 85, u32::MAX] {
        for n in [1usize, 511, 512, 513] {
            let want = fixture(seed, n);
            let mut got = vec![0.0f64; n];
            NumpyRandomState::<PlatformLog>::with_log(seed).randn_f64(&mut got);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "seed {seed} n {n} index {i}: {g:e} vs numpy {w:e}"
                );
            }
        }
    }
}

#[test]
fn default_log_gives_numpys_f32_z_for_every_fixture() {
    for seed in [0u32, 1, 42, 85, u32::MAX] {
        let want = fixture(seed, 513);
        let mut got = vec![0.0f32; 513];
        NumpyRandomState::new(seed).randn_f32(&mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), (*w as f32).to_bits(), "seed {seed} index {i}");
        }
    }
}
