//! Tests of the latent samplers: numpy bit-exactness (fixtures written by
//! `tools/numpy_randn_fixtures.py`), MT19937 reference outputs, Box-Muller
//! golden values, edge-case RNG streams and statistical sanity.

use core::convert::Infallible;

use rand_core::{Rng, SeedableRng, TryRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use stylemap_core::sampler::{
    LegacyGaussian, MAX_POLAR_ATTEMPTS, Mt19937, NumpyRandomState, box_muller_pair,
    box_muller_pair_reference, fill_box_muller, fill_box_muller_f64, legacy_uniform_f64,
    z_from_seed_numpy, z_from_seed_xoshiro, z_from_seed_xoshiro_reference,
};

// ---------------------------------------------------------------------------
// numpy fixtures
// ---------------------------------------------------------------------------

/// `(seed, n, np.random.RandomState(seed).randn(n) as little-endian f64)`.
macro_rules! fixture {
    ($seed:literal, $n:literal) => {
        (
            $seed,
            $n,
            include_bytes!(concat!(
                "data/randn_seed",
                stringify!($seed),
                "_n",
                stringify!($n),
                ".f64"
            )) as &[u8],
        )
    };
}

const FIXTURES: [(u32, usize, &[u8]); 20] = [
    fixture!(0, 1),
    fixture!(0, 511),
    fixture!(0, 512),
    fixture!(0, 513),
    fixture!(1, 1),
    fixture!(1, 511),
    fixture!(1, 512),
    fixture!(1, 513),
    fixture!(42, 1),
    fixture!(42, 511),
    fixture!(42, 512),
    fixture!(42, 513),
    fixture!(85, 1),
    fixture!(85, 511),
    fixture!(85, 512),
    fixture!(85, 513),
    fixture!(4294967295, 1),
    fixture!(4294967295, 511),
    fixture!(4294967295, 512),
    fixture!(4294967295, 513),
];

fn decode(bytes: &[u8]) -> Vec<f64> {
    assert_eq!(bytes.len() % 8, 0);
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Deviates where the fixture (numpy 2.4.6 on glibc 2.36, x86-64) differs
/// from the crate because glibc's `log` is misrounded, as `(seed, index)`.
///
/// Seed 42's 39th polar pair has `r2 = 0x3fee7c3ca362c8d0`
/// (0.9526656333094028). Its exact logarithm is
/// -0.04849129386073946709338..., which rounds to `0xbfa8d3d9d28b926f`; glibc
/// (both its FMA and non-FMA code paths) returns the neighbour
/// `0xbfa8d3d9d28b9270`. The crate uses the correctly rounded value, so both
/// deviates of that pair come out 1 ULP (of `f64`) away from numpy here; the
/// `f32` values are identical. This is numpy's platform dependence, not a
/// sampler bug: any libm with a correctly rounded `log` gives the crate's
/// values. (Over seeds 0..=3000 with n = 512, 0.036 % of numpy's `f64`
/// deviates differ from the crate for this reason, and none of the `f32`
/// ones.)
const KNOWN_GLIBC_MISROUNDINGS: [(u32, usize); 2] = [(42, 76), (42, 77)];

#[test]
#[cfg_attr(miri, ignore)]
fn randn_f64_matches_numpy_bit_for_bit() {
    let mut exceptions_seen = 0;
    for &(seed, n, bytes) in &FIXTURES {
        let want = decode(bytes);
        assert_eq!(want.len(), n, "fixture seed {seed} n {n}");
        let mut got = vec![0.0f64; n];
        NumpyRandomState::new(seed).randn_f64(&mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            if KNOWN_GLIBC_MISROUNDINGS.contains(&(seed, i)) {
                assert_eq!(
                    g.to_bits().abs_diff(w.to_bits()),
                    1,
                    "seed {seed} index {i}"
                );
                exceptions_seen += 1;
                continue;
            }
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "seed {seed} n {n} index {i}: got {g:e}, numpy {w:e}"
            );
        }
    }
    // Seed 42 appears with n = 511, 512 and 513.
    assert_eq!(exceptions_seen, 3 * KNOWN_GLIBC_MISROUNDINGS.len());
}

#[test]
fn seed_42_pair_38_uses_the_correctly_rounded_log() {
    // The values the crate produces for the known glibc misrounding; derived
    // from the correctly rounded ln(r2) (see KNOWN_GLIBC_MISROUNDINGS).
    let mut got = [0.0f64; 78];
    NumpyRandomState::new(42).randn_f64(&mut got);
    assert_eq!(got[76].to_bits(), 0x3fb6_48b7_774b_ae20);
    assert_eq!(got[77].to_bits(), 0xbfd3_22ef_b9e0_edbf);
}

#[test]
#[cfg_attr(miri, ignore)]
#[allow(clippy::cast_possible_truncation)]
fn randn_f32_and_z_from_seed_are_the_f64_values_cast() {
    for &(seed, n, bytes) in &FIXTURES {
        let want: Vec<f32> = decode(bytes).iter().map(|&v| v as f32).collect();
        let mut got = vec![0.0f32; n];
        NumpyRandomState::new(seed).randn_f32(&mut got);
        let mut z = vec![0.0f32; n];
        z_from_seed_numpy(seed, &mut z);
        for i in 0..n {
            assert_eq!(
                got[i].to_bits(),
                want[i].to_bits(),
                "seed {seed} n {n} i {i}"
            );
            assert_eq!(z[i].to_bits(), want[i].to_bits(), "seed {seed} n {n} i {i}");
        }
    }
}

/// A short miri-friendly slice of the numpy check.
#[test]
fn randn_first_values_match_numpy() {
    for &(seed, n, bytes) in &FIXTURES {
        if n != 1 {
            continue;
        }
        let want = decode(bytes);
        let mut got = [0.0f64; 1];
        NumpyRandomState::new(seed).randn_f64(&mut got);
        assert_eq!(got[0].to_bits(), want[0].to_bits(), "seed {seed}");
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn randn_in_chunks_continues_the_stream() {
    // Like successive `randn` calls on one RandomState, including the cached
    // odd deviate.
    let want = decode(FIXTURES[3].2); // seed 0, n 513
    let mut rs = NumpyRandomState::new(0);
    let mut got = vec![0.0f64; 513];
    let (a, rest) = got.split_at_mut(3);
    let (b, c) = rest.split_at_mut(5);
    rs.randn_f64(a);
    assert!(rs.gaussian().has_cached());
    rs.randn_f64(b);
    assert!(!rs.gaussian().has_cached());
    rs.randn_f64(c);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.to_bits(), w.to_bits());
    }
}

#[test]
fn standard_normal_and_random_sample_match_numpy() {
    // np.random.RandomState(0).random_sample() and .standard_normal().
    let mut rs = NumpyRandomState::new(0);
    assert_eq!(rs.random_sample(), 0.548_813_503_927_324_8);
    let first = decode(FIXTURES[0].2)[0];
    assert_eq!(
        NumpyRandomState::new(0).standard_normal().to_bits(),
        first.to_bits()
    );
}

#[test]
fn legacy_gaussian_over_mt_equals_numpy_state() {
    let mut mt = Mt19937::new(42);
    let mut g = LegacyGaussian::new();
    let mut rs = NumpyRandomState::new(42);
    for _ in 0..17 {
        assert_eq!(
            g.next_f64(&mut mt).to_bits(),
            rs.standard_normal().to_bits()
        );
    }
    assert_eq!(g, *rs.gaussian());
    g.reset();
    assert!(!g.has_cached());
}

#[test]
fn legacy_gaussian_works_over_other_streams() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let mut g = LegacyGaussian::default();
    let mut out = [0.0f32; 9];
    g.fill_f32(&mut rng, &mut out);
    assert!(out.iter().all(|v| v.is_finite()));
    assert!(g.has_cached()); // 9 is odd: one deviate is pending
    // Deterministic for a given seed.
    let mut rng2 = Xoshiro256PlusPlus::seed_from_u64(3);
    let mut out2 = [0.0f32; 9];
    LegacyGaussian::new().fill_f32(&mut rng2, &mut out2);
    assert_eq!(out.map(f32::to_bits), out2.map(f32::to_bits));
}

// ---------------------------------------------------------------------------
// MT19937
// ---------------------------------------------------------------------------

#[test]
fn mt19937_reference_outputs_for_default_seed() {
    // Reference mt19937ar.c with init_genrand(5489) (also C++ std::mt19937).
    let mut mt = Mt19937::new(5489);
    let first = [
        3_499_211_612u32,
        581_869_302,
        3_890_346_734,
        3_586_334_585,
        545_404_204,
    ];
    for &want in &first {
        assert_eq!(mt.next_u32(), want);
    }
    let mut mt = Mt19937::default();
    for _ in 0..9999 {
        mt.next_u32();
    }
    assert_eq!(mt.next_u32(), 4_123_659_995, "10000th output");
}

#[test]
fn mt19937_u64_and_bytes_order() {
    // numpy: RandomState(5489).randint(0, 2**64, dtype=np.uint64)
    // == 0xd091bb5c22ae9ef6, i.e. the first word is the high half.
    let mut mt = Mt19937::new(5489);
    assert_eq!(mt.next_u64(), 0xd091_bb5c_22ae_9ef6);
    let mut mt = Mt19937::new(5489);
    let mut bytes = [0u8; 7];
    mt.fill_bytes(&mut bytes);
    let mut words = Mt19937::new(5489);
    let w0 = words.next_u32().to_le_bytes();
    let w1 = words.next_u32().to_le_bytes();
    assert_eq!(bytes[..4], w0);
    assert_eq!(bytes[4..], w1[..3]);
    // The partial word is consumed whole.
    assert_eq!(mt.next_u32(), words.next_u32());
}

#[test]
fn mt19937_extreme_seeds() {
    // np.random.RandomState(s)._bit_generator.random_raw(2) for s = 0, 2**32-1.
    let mut mt = Mt19937::new(0);
    assert_eq!(
        [mt.next_u32(), mt.next_u32()],
        [2_357_136_044, 2_546_248_239]
    );
    let mut mt = Mt19937::new(u32::MAX);
    assert_eq!([mt.next_u32(), mt.next_u32()], [419_326_371, 479_346_978]);
    assert_eq!(Mt19937::new(0), Mt19937::new(0));
    assert_ne!(Mt19937::new(0), Mt19937::new(1));
    assert!(format!("{:?}", Mt19937::new(0)).starts_with("Mt19937"));
}

#[test]
fn legacy_uniform_is_in_unit_interval_at_the_extremes() {
    assert_eq!(legacy_uniform_f64(&mut ConstRng(0)), 0.0);
    let top = legacy_uniform_f64(&mut ConstRng(u64::MAX));
    assert_eq!(top, 1.0 - f64::EPSILON / 2.0); // (2^53 - 1) / 2^53
}

// ---------------------------------------------------------------------------
// Box-Muller
// ---------------------------------------------------------------------------

/// Golden values: `z_from_seed_xoshiro(seed, 8)` as `f32` bits. Cross-checked
/// against an independent Python implementation (xoshiro256++ seeded by
/// splitmix64, same Box-Muller formula). Changing these is a breaking change.
/// (Unchanged by the vectorised sampler: only last bits of the `f64` values
/// moved, see `BOX_MULLER_GOLDEN_F64_SEED0`.)
const BOX_MULLER_GOLDEN: [(u64, [u32; 8]); 2] = [
    (
        0,
        [
            0xbf8d_cff3,
            0x3f81_76eb,
            0x3fb6_96f9,
            0x3dd2_a3ec,
            0x3f96_7929,
            0x3e1c_6b45,
            0x3ea0_7b09,
            0xbeea_8614,
        ],
    ),
    (
        1,
        [
            0xbc40_90a0,
            0xbf25_60d4,
            0xbd50_d923,
            0xc009_4210,
            0xbfc6_42bf,
            0xbf7d_5126,
            0xbe24_a9a0,
            0xbcc3_3a83,
        ],
    ),
];

/// The `f64` values behind the seed-0 golden vector.
///
/// The last two changed with the vectorised sampler (they were
/// `0x3fd4_0f61_12b5_72ef` and `0xbfdd_50c2_8793_c4b8` with `libm::sincos`
/// of the rounded angle `fl(2π · u2)`); `sin` / `cos` are now evaluated at
/// the exact angle `2π · u2`. Their `f32` roundings are unchanged.
const BOX_MULLER_GOLDEN_F64_SEED0: [u64; 8] = [
    0xbff1_b9fe_5de1_6e93,
    0x3ff0_2edd_6bb4_b039,
    0x3ff6_d2df_1cdb_cf60,
    0x3fba_547d_702b_903e,
    0x3ff2_cf25_19aa_6af7,
    0x3fc3_8d68_9486_6e3e,
    0x3fd4_0f61_12b5_72f3,
    0xbfdd_50c2_8793_c4b5,
];

#[test]
fn box_muller_golden_values() {
    for (seed, want) in BOX_MULLER_GOLDEN {
        let mut z = [0.0f32; 8];
        z_from_seed_xoshiro(seed, &mut z);
        assert_eq!(z.map(f32::to_bits), want, "seed {seed}");

        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut z2 = [0.0f32; 8];
        fill_box_muller(&mut rng, &mut z2);
        assert_eq!(z2.map(f32::to_bits), want, "seed {seed}");

        // The libm reference gives the same f32 here.
        let mut z3 = [0.0f32; 8];
        z_from_seed_xoshiro_reference(seed, &mut z3);
        assert_eq!(z3.map(f32::to_bits), want, "seed {seed}");
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let mut z = [0.0f64; 8];
    fill_box_muller_f64(&mut rng, &mut z);
    assert_eq!(z.map(f64::to_bits), BOX_MULLER_GOLDEN_F64_SEED0);
}

/// `(seed, f64 bits, f32 bits)` of `fill_box_muller_f64` / `fill_box_muller`
/// over `Xoshiro256PlusPlus::seed_from_u64(seed)` for 513 values, written by
/// `tools/box_muller_reference.py`, an independent Python implementation of
/// the same IEEE operation sequence.
macro_rules! box_muller_fixture {
    ($seed:literal) => {
        (
            $seed,
            include_bytes!(concat!(
                "data/box_muller_seed",
                stringify!($seed),
                "_n513.f64"
            )) as &[u8],
            include_bytes!(concat!(
                "data/box_muller_seed",
                stringify!($seed),
                "_n513.f32"
            )) as &[u8],
        )
    };
}

const BOX_MULLER_FIXTURES: [(u64, &[u8], &[u8]); 4] = [
    box_muller_fixture!(0),
    box_muller_fixture!(1),
    box_muller_fixture!(42),
    box_muller_fixture!(18446744073709551615),
];

/// Value stability: the exact `f64` and `f32` bits for lengths 1, 2, 511,
/// 512 and 513 (each a prefix of the 513-value fixture), through every entry
/// point. On x86-64 with AVX2 / AVX-512 this runs the dispatched SIMD build;
/// with `--features force-scalar`, and on aarch64 (`.ci/aarch64.sh`), the
/// same bits come from the baseline build.
#[test]
fn box_muller_golden_vectors() {
    let lengths: &[usize] = if cfg!(miri) {
        &[1, 2, 17]
    } else {
        &[1, 2, 511, 512, 513]
    };
    for &(seed, f64_bytes, f32_bytes) in &BOX_MULLER_FIXTURES {
        let want64: Vec<u64> = f64_bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let want32: Vec<u32> = f32_bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!((want64.len(), want32.len()), (513, 513));
        for &n in lengths {
            let mut z64 = vec![0.0f64; n];
            fill_box_muller_f64(&mut Xoshiro256PlusPlus::seed_from_u64(seed), &mut z64);
            let got: Vec<u64> = z64.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want64[..n], "f64 seed {seed} n {n}");

            let mut z32 = vec![0.0f32; n];
            fill_box_muller(&mut Xoshiro256PlusPlus::seed_from_u64(seed), &mut z32);
            let got: Vec<u32> = z32.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want32[..n], "f32 seed {seed} n {n}");

            let mut z = vec![0.0f32; n];
            z_from_seed_xoshiro(seed, &mut z);
            let bits32 = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits32(&z),
                bits32(&z32),
                "z_from_seed_xoshiro seed {seed} n {n}"
            );

            // Through a trait object, and pair by pair.
            let mut dynz = vec![0.0f64; n];
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            fill_box_muller_f64(&mut rng as &mut dyn Rng, &mut dynz);
            let bits64 = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits64(&dynz), bits64(&z64), "dyn seed {seed} n {n}");
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            for (i, pair) in z64.chunks(2).enumerate() {
                let (a, b) = box_muller_pair(&mut rng);
                assert_eq!(a.to_bits(), pair[0].to_bits(), "pair {i} seed {seed}");
                if let [_, second] = pair {
                    assert_eq!(b.to_bits(), second.to_bits(), "pair {i} seed {seed}");
                }
            }
        }
        // A few bits spelled out (seed 0: first, and the odd tail of 513).
        if seed == 0 {
            assert_eq!(want64[0], 0xbff1_b9fe_5de1_6e93);
            assert_eq!(want64[512], 0x3fe8_73b3_e53d_32b4);
            assert_eq!(want32[512], 0x3f43_9d9f);
        }
    }
}

/// `ulp(v)` for a finite `v` (the gap above `|v|`).
fn ulp(v: f64) -> f64 {
    let a = v.abs();
    f64::from_bits(a.to_bits() + 1) - a
}

/// The vectorised sampler against the pre-vectorisation libm computation
/// (`box_muller_pair_reference`) on 10^6 pairs.
///
/// Same radius; the angle differs: the reference takes `libm::sincos` of the
/// rounded product `fl(2π · u2)`, which is off the exact `2π · u2` by up to
/// 2^-50.3 radians. Both `sin`/`cos` are within 1 ULP of their targets, so
/// each output may move by `5 ulp(z) + r · 2^-50.3` at most, `r` the radius.
/// The `f32` values are (practically) unchanged.
#[test]
#[cfg_attr(miri, ignore)]
#[allow(clippy::cast_possible_truncation)]
fn box_muller_agrees_with_the_libm_reference() {
    const PAIRS: usize = 1_000_000;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x0b0c_5eed);
    let mut words = rng.clone();
    let (mut same64, mut same32, mut worst) = (0usize, 0usize, 0.0f64);
    for _ in 0..PAIRS {
        let mut old_rng = rng.clone();
        let new = box_muller_pair(&mut rng);
        let old = box_muller_pair_reference(&mut old_rng);
        assert_eq!(rng, old_rng, "two words per pair");
        let x = words.next_u64();
        words.next_u64();
        let r = (-2.0 * libm::log(((x >> 11) + 1) as f64 / 9_007_199_254_740_992.0)).sqrt();
        for (n, o) in [(new.0, old.0), (new.1, old.1)] {
            let slack = (n - o).abs() - r * 2f64.powf(-50.3);
            let e = slack / ulp(o.abs().max(n.abs()));
            assert!(e <= 5.0, "{n:e} vs {o:e} (r {r})");
            worst = worst.max(e);
            same64 += usize::from(n.to_bits() == o.to_bits());
            same32 += usize::from((n as f32).to_bits() == (o as f32).to_bits());
        }
    }
    // Measured: 45 % of the f64 values identical, all 2 * 10^6 f32 values
    // identical, and |new - old| <= r · 2^-50.3 + 0.23 ulp. (An f32 can
    // change where the f64 moves across an f32 rounding boundary: about one
    // value in 2^28.)
    assert!(
        same64 > 2 * PAIRS * 2 / 5,
        "f64 identical: {same64} of {}",
        2 * PAIRS
    );
    assert!(
        2 * PAIRS - same32 <= 4,
        "f32 differing: {}",
        2 * PAIRS - same32
    );
    assert!(worst <= 2.0, "worst {worst}");
}

#[test]
#[allow(clippy::cast_possible_truncation)]
fn box_muller_odd_lengths_drop_the_spare_and_are_prefixes() {
    let mut full = [0.0f64; 10];
    fill_box_muller_f64(&mut Xoshiro256PlusPlus::seed_from_u64(9), &mut full);
    for n in 0..=9 {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        let mut out = vec![0.0f64; n];
        fill_box_muller_f64(&mut rng, &mut out);
        assert_eq!(out, full[..n], "n {n}");
        let mut rng32 = Xoshiro256PlusPlus::seed_from_u64(9);
        let mut out32 = vec![0.0f32; n];
        fill_box_muller(&mut rng32, &mut out32);
        let cast: Vec<f32> = full[..n].iter().map(|&v| v as f32).collect();
        assert_eq!(out32, cast, "n {n}");
        // Exactly 2 * ceil(n / 2) u64 words were consumed.
        let mut reference = Xoshiro256PlusPlus::seed_from_u64(9);
        for _ in 0..n.div_ceil(2) * 2 {
            reference.next_u64();
        }
        let next = reference.next_u64();
        assert_eq!(rng.next_u64(), next, "n {n}");
        assert_eq!(rng32.next_u64(), next, "n {n}");
    }
}

/// A fake RNG that returns the same word forever.
struct ConstRng(u64);

impl TryRng for ConstRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.0 as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for (i, b) in dst.iter_mut().enumerate() {
            *b = self.0.to_le_bytes()[i % 8];
        }
        Ok(())
    }
}

#[test]
fn box_muller_is_finite_on_degenerate_streams() {
    for word in [
        0,
        u64::MAX,
        1 << 11,
        (1 << 11) - 1,
        1 << 63,
        0x5555_5555_5555_5555,
    ] {
        let (a, b) = box_muller_pair(&mut ConstRng(word));
        assert!(a.is_finite() && b.is_finite(), "word {word:#x}");
        assert!(a.abs() <= 8.6 && b.abs() <= 8.6, "word {word:#x}");
        let mut out = [0.0f32; 5];
        fill_box_muller(&mut ConstRng(word), &mut out);
        assert!(out.iter().all(|v| v.is_finite()), "word {word:#x}");
    }
    // All-zero words: u1 = 2^-53 (the largest radius), u2 = 0. The radius
    // sqrt(106 ln 2) = 8.5716743486529... is pinned as bits (std's `ln` is not
    // used: Miri perturbs it on purpose).
    let (a, b) = box_muller_pair(&mut ConstRng(0));
    assert_eq!(a.to_bits(), 0x4021_24b2_800e_da48);
    assert_eq!(b, 0.0);
    // All-one words: u1 = 1, radius 0.
    let (a, b) = box_muller_pair(&mut ConstRng(u64::MAX));
    assert_eq!((a.abs(), b.abs()), (0.0, 0.0));
}

#[test]
#[should_panic(expected = "unit disc")]
fn polar_method_panics_instead_of_hanging_on_a_constant_stream() {
    // All-zero words give x1 = x2 = -1, r2 = 2: always rejected.
    const { assert!(MAX_POLAR_ATTEMPTS >= 100) };
    LegacyGaussian::new().next_f64(&mut ConstRng(0));
}

/// A fake RNG cycling through eight 32-bit words.
struct Cycle8(usize, [u32; 8]);

impl TryRng for Cycle8 {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let w = self.1[self.0 % 8];
        self.0 += 1;
        Ok(w)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        rand_core::utils::next_u64_via_u32(self)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        rand_core::utils::fill_bytes_via_next_word(dst, || self.try_next_u32())
    }
}

#[test]
fn polar_method_rejects_r2_zero_and_handles_the_smallest_radius() {
    // Words (0x8000_0000, 0) give u = 1/2, x = 0: the first attempt has
    // r2 = 0 and must be rejected. Words (0x8000_0000, 0x40) give
    // u = 1/2 + 2^-53, x = 2^-52: the second attempt has the smallest
    // possible r2 = 2^-103, hence the largest |f|.
    let words = [
        0x8000_0000,
        0,
        0x8000_0000,
        0,
        0x8000_0000,
        0x40,
        0x8000_0000,
        0x40,
    ];
    let mut rng = Cycle8(0, words);
    let mut g = LegacyGaussian::new();
    let v = g.next_f64(&mut rng);
    assert_eq!(rng.0, 8, "two attempts");
    let w = g.next_f64(&mut rng);
    assert_eq!(v, w);
    assert!(v.is_finite() && v > 8.0 && v < 9.0, "{v}");
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

fn moments(values: &[f64]) -> (f64, f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let within_one = values.iter().filter(|v| v.abs() < 1.0).count() as f64 / n;
    (mean, var, within_one)
}

#[test]
#[cfg_attr(miri, ignore)]
fn box_muller_statistics() {
    // 100k samples: sd of the mean 0.0032, of the variance 0.0045, of the
    // |z| < 1 fraction 0.0015; bounds are about 6 sd.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2024);
    let mut z = vec![0.0f32; 100_000];
    fill_box_muller(&mut rng, &mut z);
    let z: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
    let (mean, var, within_one) = moments(&z);
    assert!(mean.abs() < 0.02, "mean {mean}");
    assert!((var - 1.0).abs() < 0.03, "variance {var}");
    assert!(
        (within_one - 0.682_689).abs() < 0.01,
        "P(|z|<1) {within_one}"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn numpy_sampler_statistics() {
    let mut rs = NumpyRandomState::new(7);
    let mut z = vec![0.0f64; 100_000];
    rs.randn_f64(&mut z);
    let (mean, var, within_one) = moments(&z);
    assert!(mean.abs() < 0.02, "mean {mean}");
    assert!((var - 1.0).abs() < 0.03, "variance {var}");
    assert!(
        (within_one - 0.682_689).abs() < 0.01,
        "P(|z|<1) {within_one}"
    );
}
