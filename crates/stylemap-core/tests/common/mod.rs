//! Helpers shared by the core's suites (`kernels.rs`, `gemm.rs`,
//! `network.rs`): random data and networks, the kernels under test, and the
//! "every available kernel was run" discipline.
//!
//! Environment (read here, since the core has none):
//! - `STYLEMAP_KERNEL=<name>` tests only that kernel (it must be available
//!   here, or the suite fails rather than silently testing nothing).
//! - `STYLEMAP_REQUIRE_KERNELS=avx2,avx512` fails the suite unless each listed
//!   kernel is available, so a CI runner that lost a feature cannot silently
//!   fall back to the portable kernel.
#![allow(dead_code)] // each suite uses its own subset

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use stylemap_core::fold::{self, RawLayer, RawParams};
use stylemap_core::{Error, Kernel, MappingSpec, Operand};

/// `n` values uniform in [-1, 1).
pub fn uniform(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0)
        .collect()
}

/// f32's smallest subnormal, 2^-149: the absolute error of a product that
/// underflows.
pub const TINY: f64 = 1.401_298_464_324_817e-45;

/// The bound on the difference of two f32 evaluations of `b + sum_k w[k] x[k]`
/// summed in different orders (with or without FMA): each lies within
/// gamma_{n+1} (sum_k |w[k] x[k]| + |b|) of the exact value (Higham 3.1,
/// gamma_n = n eps / (1 - n eps)), plus `tiny` per term for underflowing
/// products, so they differ by at most
/// `2 (n + 2) (eps (sum_k |w[k] x[k]| + |b|) + tiny)`. lrelu has slope <= 1
/// and cannot widen it.
pub fn dot_bound(w: &[f32], b: f32, x: &[f32]) -> f32 {
    let mag: f64 = w
        .iter()
        .zip(x)
        .map(|(&a, &c)| f64::from(a).abs() * f64::from(c).abs())
        .sum();
    let n = x.len() as f64;
    let eps = f64::from(f32::EPSILON);
    (2.0 * (n + 2.0) * (eps * (mag + f64::from(b.abs())) + TINY)) as f32
}

/// Every kernel this CPU and build can run.
pub fn available() -> Vec<Kernel> {
    Kernel::ALL
        .iter()
        .copied()
        .filter(|k| k.is_available())
        .collect()
}

/// A non-empty environment variable.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A kernel by name; panics listing the known names otherwise.
pub fn parse_kernel(name: &str) -> Kernel {
    let name = name.trim();
    Kernel::from_name(name).unwrap_or_else(|| {
        let known: Vec<&str> = Kernel::ALL.iter().map(|k| k.name()).collect();
        panic!("unknown kernel {name:?}; known: {known:?}")
    })
}

/// The kernels this run tests: every available one, or only the one named by
/// `STYLEMAP_KERNEL` (which must be available).
pub fn under_test() -> Vec<Kernel> {
    match env(Kernel::ENV_VAR) {
        None => available(),
        Some(name) => {
            let k = parse_kernel(&name);
            assert!(
                k.is_available(),
                "{}={name} but that kernel is not available on this CPU/build",
                Kernel::ENV_VAR
            );
            vec![k]
        }
    }
}

/// Runs `f` for every kernel under test and returns the kernels it ran.
pub fn for_each_kernel(mut f: impl FnMut(Kernel)) -> Vec<Kernel> {
    let kernels = under_test();
    for &k in &kernels {
        f(k);
    }
    kernels
}

/// Fails unless `ran` covers every kernel this CPU supports (or, with
/// `STYLEMAP_KERNEL`, exactly the forced one).
pub fn assert_all_exercised(ran: &[Kernel]) {
    match env(Kernel::ENV_VAR) {
        None => {
            for k in available() {
                assert!(ran.contains(&k), "{k:?} is available here but was not run");
            }
        }
        Some(name) => assert_eq!(ran, [parse_kernel(&name)], "{}={name}", Kernel::ENV_VAR),
    }
}

/// Checks `STYLEMAP_REQUIRE_KERNELS`: each listed kernel is available and
/// under test.
pub fn assert_required_kernels() {
    if let Some(list) = env("STYLEMAP_REQUIRE_KERNELS") {
        for name in list.split(',').filter(|n| !n.trim().is_empty()) {
            let k = parse_kernel(name);
            assert!(
                k.is_available(),
                "STYLEMAP_REQUIRE_KERNELS lists {name} but it is not available here"
            );
            assert!(
                under_test().contains(&k),
                "{name} is required but {} excludes it",
                Kernel::ENV_VAR
            );
        }
    }
}

/// `n` normal deviates times `scale` (Box-Muller over `rng`).
pub fn normal(rng: &mut Xoshiro256PlusPlus, n: usize, scale: f32) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    stylemap_core::sampler::fill_box_muller(rng, &mut v);
    v.iter_mut().for_each(|x| *x *= scale);
    v
}

/// Raw NVlabs parameters of a random network (`W [out, in]`, `b [out]`).
pub struct RawNet {
    pub spec: MappingSpec,
    pub fc: Vec<(Vec<f32>, Vec<f32>)>,
    pub embed: Option<(Vec<f32>, Vec<f32>)>,
    pub w_avg: Vec<f32>,
}

/// A random network with NVlabs' initialisation (`randn / lr` weights) and
/// large biases, so every layer's bias and activation matter.
pub fn raw_net(spec: MappingSpec, seed: u64) -> RawNet {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let lr = spec.lr_multiplier as f32;
    let fc = (0..spec.num_layers)
        .map(|i| {
            let (inp, out) = spec.layer_shape(i);
            (
                normal(&mut rng, inp * out, 1.0 / lr),
                normal(&mut rng, out, 30.0),
            )
        })
        .collect();
    let embed = (spec.c_dim > 0).then(|| {
        let n = spec.embed_features;
        (
            normal(&mut rng, n * spec.c_dim, 1.0),
            normal(&mut rng, n, 0.3),
        )
    });
    let w_avg = normal(&mut rng, spec.w_dim, 1.0);
    RawNet {
        spec,
        fc,
        embed,
        w_avg,
    }
}

impl RawNet {
    /// The folded parameters ([`fold::fold_nvlabs`]).
    pub fn fold(&self) -> Result<Vec<f32>, Error> {
        let layers: Vec<RawLayer> = self
            .fc
            .iter()
            .map(|(w, b)| RawLayer { weight: w, bias: b })
            .collect();
        let embed = self
            .embed
            .as_ref()
            .map(|(w, b)| RawLayer { weight: w, bias: b });
        let mut out = vec![0.0f32; self.spec.param_len()];
        fold::fold_nvlabs(
            &self.spec,
            &RawParams {
                embed,
                layers: &layers,
            },
            &mut out,
        )?;
        Ok(out)
    }
}

/// The checks every forward shares (`check_batch_io` in the core), on the
/// network `MappingSpec::nvlabs(3, 2, 5, 1, 2)` at `batch` samples with
/// `ns` floats of scratch: a short z, a missing label, short scratch, a
/// short w, a NaN in z and an infinity in c each give their error, and w
/// is untouched. `forward(z, c, scratch, w)` runs the forward under test.
pub fn assert_batch_io_errors(
    batch: usize,
    ns: usize,
    mut forward: impl FnMut(&[f32], &[f32], &mut [f32], &mut [f32]) -> Result<(), Error>,
) {
    let (zd, cd, wd) = (3, 2, 5);
    let z: Vec<f32> = (1..=batch * zd).map(|i| i as f32 / 10.0).collect();
    let c: Vec<f32> = (0..batch * cd)
        .map(|i| if i % cd == (i / cd) % cd { 1.0 } else { 0.0 })
        .collect();
    let (nz, nc, nw) = (z.len(), c.len(), batch * wd);
    let mut z_nan = z.clone();
    z_nan[nz - 2] = f32::NAN;
    let mut c_inf = c.clone();
    c_inf[nc - 2] = f32::INFINITY;
    // (z, c, scratch len, w len, expected error)
    type Case<'a> = (&'a [f32], &'a [f32], usize, usize, Error);
    let cases: [Case; 6] = [
        (
            &z[..nz - 1],
            &c,
            ns,
            nw,
            Error::Length {
                what: Operand::Z,
                expected: nz,
                actual: nz - 1,
            },
        ),
        (
            &z,
            &c[..nc - cd],
            ns,
            nw,
            Error::Conditioning {
                c_dim: cd,
                actual: nc - cd,
            },
        ),
        (
            &z,
            &c,
            ns - 1,
            nw,
            Error::Length {
                what: Operand::Scratch,
                expected: ns,
                actual: ns - 1,
            },
        ),
        (
            &z,
            &c,
            ns,
            nw - 1,
            Error::Length {
                what: Operand::W,
                expected: nw,
                actual: nw - 1,
            },
        ),
        (
            &z_nan,
            &c,
            ns,
            nw,
            Error::NonFinite {
                what: Operand::Z,
                index: nz - 2,
            },
        ),
        (
            &z,
            &c_inf,
            ns,
            nw,
            Error::NonFinite {
                what: Operand::C,
                index: nc - 2,
            },
        ),
    ];
    let mut scratch = vec![0.0f32; ns];
    let mut w = vec![7.0f32; nw];
    for (z, c, ns, nw, err) in cases {
        assert_eq!(forward(z, c, &mut scratch[..ns], &mut w[..nw]), Err(err));
        assert!(
            w.iter().all(|&v| v == 7.0),
            "w was written before the error {err}"
        );
    }
}
