//! The numeric contract (`src/contract.md`), tested line by line on the
//! core: §1 finite in -> finite out, §2 non-finite input -> error naming the
//! first offending index, §3 agreement of every kernel with the scalar oracle
//! (per layer and over the whole forward), §4 determinism, §5 psi/cutoff,
//! §6 overflow, §7 samplers.
//!
//! Environment: `STYLEMAP_KERNEL` restricts the kernels (see `common/mod.rs`).
//!
//! Not run under miri: these sweeps take over 10 minutes interpreted; the
//! kernels, network and gemm tests cover the same code there.
#![cfg(not(miri))]

#[path = "support/bound.rs"]
mod bound;
mod common;

use core::convert::Infallible;

use common::{assert_all_exercised, for_each_kernel, under_test};
use rand_core::{Rng, SeedableRng, TryRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use stylemap_core::fold::{self, RawLayer, RawParams};
use stylemap_core::kernels;
use stylemap_core::network::normalize_2nd_moment;
use stylemap_core::sampler::{self, LegacyGaussian, MAX_POLAR_ATTEMPTS};
use stylemap_core::truncation::{self, Truncation};
use stylemap_core::{Activation, Error, Kernel, MappingNetwork, MappingSpec, Operand};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// `n` normal deviates times `scale`.
fn normal(rng: &mut Xoshiro256PlusPlus, n: usize, scale: f32) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    sampler::fill_box_muller(rng, &mut v);
    v.iter_mut().for_each(|x| *x *= scale);
    v
}

/// A spec with distinct widths so no shape bug hides.
fn spec(z: usize, c: usize, w: usize, layers: usize, hidden: usize, num_ws: usize) -> MappingSpec {
    let mut s = MappingSpec::nvlabs(z, c, w, layers, num_ws);
    s.layer_features = hidden;
    if c > 0 {
        s.embed_features = w.max(2) - 1;
    }
    s
}

/// Folded parameters at NVlabs scale (raw randn / lr, folded with the gains),
/// biases `bias_scale` times a normal.
fn folded(spec: &MappingSpec, seed: u64, bias_scale: f32) -> (Vec<f32>, Vec<f32>) {
    let mut r = rng(seed);
    let lr = spec.lr_multiplier as f32;
    let fc: Vec<(Vec<f32>, Vec<f32>)> = (0..spec.num_layers)
        .map(|i| {
            let (inp, out) = spec.layer_shape(i);
            (
                normal(&mut r, inp * out, 1.0 / lr),
                normal(&mut r, out, bias_scale),
            )
        })
        .collect();
    let embed = (spec.c_dim > 0).then(|| {
        (
            normal(&mut r, spec.embed_features * spec.c_dim, 1.0),
            normal(&mut r, spec.embed_features, 0.5),
        )
    });
    let layers: Vec<RawLayer<'_>> = fc
        .iter()
        .map(|(w, b)| RawLayer { weight: w, bias: b })
        .collect();
    let raw = RawParams {
        embed: embed.as_ref().map(|(w, b)| RawLayer { weight: w, bias: b }),
        layers: &layers,
    };
    let mut params = vec![0.0f32; spec.param_len()];
    fold::fold_nvlabs(spec, &raw, &mut params).unwrap();
    (params, normal(&mut r, spec.w_dim, 1.0))
}

fn net(spec: MappingSpec, seed: u64) -> MappingNetwork<Vec<f32>> {
    let (p, avg) = folded(&spec, seed, 1.0);
    MappingNetwork::new(spec, p, avg).unwrap()
}

fn forward(net: &MappingNetwork<Vec<f32>>, z: &[f32], c: &[f32]) -> Result<Vec<f32>, Error> {
    let s = net.spec();
    let mut scratch = vec![f32::NAN; s.scratch_len()];
    let mut w = vec![f32::NAN; s.w_dim];
    net.forward(z, c, &mut scratch, &mut w)?;
    Ok(w)
}

fn one_hot(c_dim: usize, k: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; c_dim];
    if c_dim > 0 {
        c[k % c_dim] = 1.0;
    }
    c
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn layer<'a>(l: &stylemap_core::fold::FoldedLayer<'a>) -> bound::Layer<'a> {
    bound::Layer {
        weight: l.weight,
        bias: l.bias,
        lrelu: l.activation == Activation::LeakyRelu,
    }
}

/// The whole-network bound of contract §3b for one input.
fn network_bound(net: &MappingNetwork<Vec<f32>>, z: &[f32], c: &[f32]) -> bound::Bound {
    let mut x0 = vec![0.0f32; z.len()];
    normalize_2nd_moment(z, &mut x0);
    let (embed, fc) = net.layers();
    let fc: Vec<_> = fc.collect();
    let fc: Vec<bound::Layer<'_>> = fc.iter().map(layer).collect();
    bound::network_bound(&x0, embed.as_ref().map(|e| (layer(e), c)), &fc)
}

/// Latents covering contract §1's extremes: zero, huge, tiny, subnormal,
/// mixed, negative zero, and ordinary normals.
fn extreme_latents(z_dim: usize, seed: u64) -> Vec<(String, Vec<f32>)> {
    let mut r = rng(seed);
    let mut out = vec![
        ("zero".into(), vec![0.0f32; z_dim]),
        ("negative zero".into(), vec![-0.0f32; z_dim]),
        (
            "+-f32::MAX".into(),
            (0..z_dim)
                .map(|i| if i % 2 == 0 { f32::MAX } else { -f32::MAX })
                .collect(),
        ),
        ("one f32::MAX".into(), {
            let mut z = vec![0.0f32; z_dim];
            z[z_dim / 2] = f32::MAX;
            z
        }),
        ("smallest subnormal".into(), {
            let tiny = f32::from_bits(1);
            (0..z_dim)
                .map(|i| if i % 3 == 0 { -tiny } else { tiny })
                .collect()
        }),
        ("one subnormal".into(), {
            let mut z = vec![0.0f32; z_dim];
            z[0] = f32::from_bits(0x0000_1234);
            z
        }),
        ("MIN_POSITIVE".into(), vec![f32::MIN_POSITIVE; z_dim]),
        ("huge and tiny".into(), {
            (0..z_dim)
                .map(|i| match i % 4 {
                    0 => 3.0e38,
                    1 => -1.0e-40,
                    2 => 1.0,
                    _ => -2.5e37,
                })
                .collect()
        }),
    ];
    for k in 0..4 {
        // Random sign, random exponent over the whole f32 range.
        let z = (0..z_dim)
            .map(|_| {
                let bits = r.next_u32();
                let v = f32::from_bits(bits & 0x7fff_ffff);
                let v = if v.is_finite() { v } else { f32::MAX };
                if bits & 1 == 0 { v } else { -v }
            })
            .collect();
        out.push((format!("random bits {k}"), z));
    }
    out.push(("normal".into(), normal(&mut r, z_dim, 1.0)));
    out
}

// ---------------------------------------------------------------------------
// §1 Finite in -> finite out
// ---------------------------------------------------------------------------

#[test]
fn z_zero_normalises_to_exact_zero_like_nvlabs() {
    for n in [1usize, 2, 7, 512] {
        let mut x = vec![f32::NAN; n];
        normalize_2nd_moment(&vec![0.0; n], &mut x);
        assert!(x.iter().all(|v| v.to_bits() == 0), "n {n}: {x:?}");
        normalize_2nd_moment(&vec![-0.0; n], &mut x);
        assert!(x.iter().all(|&v| v == 0.0), "n {n}: {x:?}");
    }
    // Then w is the network of the biases alone: layer 0 sees x = 0.
    let net = net(spec(5, 0, 4, 3, 6, 3), 1)
        .with_kernel(Kernel::Scalar)
        .unwrap();
    let w = forward(&net, &[0.0; 5], &[]).unwrap();
    let (_, layers) = net.layers();
    let mut x = vec![0.0f32; 5];
    for l in layers {
        let mut y = vec![0.0f32; l.out_features];
        kernels::gemv_bias_act(Kernel::Scalar, l.weight, l.bias, &x, l.activation, &mut y).unwrap();
        x = y;
    }
    assert_eq!(bits(&w), bits(&x));
}

#[test]
fn huge_z_does_not_overflow_the_mean_of_squares() {
    // All +-f32::MAX normalises to exactly +-1 (the 1e-8 is far below f32's
    // resolution there), so w equals w of the same signs at unit scale.
    for n in [1usize, 3, 16, 512] {
        let big: Vec<f32> = (0..n)
            .map(|i| if i % 3 == 0 { -f32::MAX } else { f32::MAX })
            .collect();
        let mut x = vec![0.0f32; n];
        normalize_2nd_moment(&big, &mut x);
        let unit: Vec<f32> = big.iter().map(|v| v.signum()).collect();
        assert_eq!(bits(&x), bits(&unit), "n {n}");
        // One f32::MAX among zeros: sqrt(n) at its place.
        let mut one = vec![0.0f32; n];
        one[n - 1] = f32::MAX;
        normalize_2nd_moment(&one, &mut x);
        assert!(x[..n - 1].iter().all(|&v| v == 0.0));
        assert!(((f64::from(x[n - 1]) - (n as f64).sqrt()) / (n as f64).sqrt()).abs() < 1e-7);
    }
}

#[test]
fn subnormal_z_stays_finite_and_exact() {
    // mean(z^2) is negligible next to 1e-8: x = z * 1e4, rounded once.
    let z: Vec<f32> = [1u32, 2, 0x7f_ffff, 0x40_0000, 12345]
        .iter()
        .map(|&b| f32::from_bits(b))
        .collect();
    let mut x = vec![0.0f32; z.len()];
    normalize_2nd_moment(&z, &mut x);
    let mean: f64 = z.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / 5.0;
    let scale = 1.0 / (mean + 1e-8).sqrt();
    for (&xi, &zi) in x.iter().zip(&z) {
        assert_eq!(xi, (f64::from(zi) * scale) as f32);
        assert!(xi.is_finite() && xi > 0.0);
    }
}

#[test]
fn finite_inputs_give_finite_w_and_ws_for_every_kernel() {
    let shapes = [
        spec(8, 0, 8, 8, 8, 6),
        spec(37, 0, 19, 3, 23, 9),
        spec(13, 5, 11, 2, 17, 4),
        spec(1, 1, 1, 1, 1, 1),
    ];
    let ran = for_each_kernel(|kernel| {
        for (si, s) in shapes.iter().enumerate() {
            let net = net(*s, 10 + si as u64).with_kernel(kernel).unwrap();
            for (name, z) in extreme_latents(s.z_dim, si as u64) {
                for c in [
                    one_hot(s.c_dim, 2),
                    vec![1e30; s.c_dim],
                    vec![-0.0; s.c_dim],
                ] {
                    if s.c_dim == 0 && c != one_hot(0, 0) {
                        continue;
                    }
                    // Labels of 1e30 overflow the embedding of weights ~1:
                    // that is §6, checked separately; here they must either
                    // stay finite or be reported as an overflow.
                    let w = match forward(&net, &z, &c) {
                        Ok(w) => w,
                        Err(Error::Overflow { .. }) if c.iter().any(|v| v.abs() > 1e20) => {
                            continue;
                        }
                        Err(e) => panic!("{kernel:?} {s:?} z {name}: {e}"),
                    };
                    assert!(w.iter().all(|v| v.is_finite()), "{kernel:?} z {name}");
                    let mut ws = vec![0.0f32; s.ws_len()];
                    for (psi, cutoff) in [(0.7, None), (0.0, Some(2)), (-1.5, Some(99))] {
                        net.broadcast_truncate(&w, psi, cutoff, &mut ws).unwrap();
                        assert!(ws.iter().all(|v| v.is_finite()));
                    }
                }
            }
        }
    });
    assert_all_exercised(&ran);
}

// ---------------------------------------------------------------------------
// §2 Non-finite input -> error naming the first offending index
// ---------------------------------------------------------------------------

#[test]
fn non_finite_inputs_are_errors_naming_the_first_index() {
    let s = spec(6, 3, 4, 2, 5, 3);
    let net = net(s, 3);
    let c = one_hot(3, 1);
    let mut scratch = vec![0.0f32; s.scratch_len()];
    let sentinel = [7.0f32; 4];
    for (bad, name) in [
        (f32::NAN, "NaN"),
        (f32::INFINITY, "inf"),
        (f32::NEG_INFINITY, "-inf"),
    ] {
        let mut z = vec![0.5f32; 6];
        z[3] = bad;
        z[5] = f32::NAN;
        let mut w = sentinel;
        assert_eq!(
            net.forward(&z, &c, &mut scratch, &mut w),
            Err(Error::NonFinite {
                what: Operand::Z,
                index: 3
            }),
            "{name}"
        );
        assert_eq!(w, sentinel, "w written on error");
        let mut cc = c.clone();
        cc[2] = bad;
        assert_eq!(
            net.forward(&[0.5; 6], &cc, &mut scratch, &mut w),
            Err(Error::NonFinite {
                what: Operand::C,
                index: 2
            })
        );
        assert_eq!(w, sentinel);

        // w_avg, at construction and on replacement.
        let (p, mut avg) = folded(&s, 3, 1.0);
        avg[1] = bad;
        assert_eq!(
            MappingNetwork::new(s, p.clone(), avg.clone()).unwrap_err(),
            Error::NonFinite {
                what: Operand::WAvg,
                index: 1
            }
        );
        let mut ok = MappingNetwork::new(s, p.clone(), vec![0.0; 4]).unwrap();
        assert_eq!(
            ok.replace_w_avg(avg).unwrap_err(),
            Error::NonFinite {
                what: Operand::WAvg,
                index: 1
            }
        );
        assert_eq!(ok.w_avg(), [0.0; 4], "w_avg kept on error");
        // Folded parameters.
        let mut bad_p = p.clone();
        bad_p[17] = bad;
        assert_eq!(
            MappingNetwork::new(s, bad_p, vec![0.0; 4]).unwrap_err(),
            Error::NonFinite {
                what: Operand::Params,
                index: 17
            }
        );

        // psi, w, w_avg and ws in truncation.
        let mut ws = [3.0f32; 12];
        let t = |psi| Truncation { psi, cutoff: None };
        let r = truncation::broadcast_truncate(&[1.0; 4], &[0.0; 4], 3, t(bad), &mut ws);
        assert_eq!(
            r,
            Err(Error::NonFinite {
                what: Operand::Psi,
                index: 0
            })
        );
        let mut w_bad = [1.0f32; 4];
        w_bad[2] = bad;
        let r = truncation::broadcast_truncate(&w_bad, &[0.0; 4], 3, t(0.5), &mut ws);
        assert_eq!(
            r,
            Err(Error::NonFinite {
                what: Operand::W,
                index: 2
            })
        );
        let r = truncation::broadcast_truncate(&[1.0; 4], &w_bad, 3, t(0.5), &mut ws);
        assert_eq!(
            r,
            Err(Error::NonFinite {
                what: Operand::WAvg,
                index: 2
            })
        );
        assert_eq!(ws, [3.0; 12], "ws written on error");
        ws[9] = bad;
        let r = truncation::truncate_in_place(&mut ws, &[0.0; 4], t(0.5));
        assert_eq!(
            r,
            Err(Error::NonFinite {
                what: Operand::Ws,
                index: 9
            })
        );
        assert_eq!(ws[..9], [3.0; 9]);
        let r = net.broadcast_truncate(&w_bad, 0.5, None, &mut [0.0; 12]);
        assert_eq!(
            r,
            Err(Error::NonFinite {
                what: Operand::W,
                index: 2
            })
        );
    }

    // Raw weights at fold time name the tensor and the element.
    let w0 = [1.0f32, 2.0, f32::NAN, f32::INFINITY];
    let layers = [RawLayer {
        weight: &w0,
        bias: &[0.0; 2],
    }];
    let s1 = spec(2, 0, 2, 1, 2, 1);
    let mut out = vec![0.0f32; s1.param_len()];
    assert_eq!(
        fold::fold_nvlabs(
            &s1,
            &RawParams {
                embed: None,
                layers: &layers
            },
            &mut out
        ),
        Err(Error::NonFinite {
            what: Operand::FcWeight(0),
            index: 2
        })
    );
}

// ---------------------------------------------------------------------------
// §3 Agreement with the scalar oracle
// ---------------------------------------------------------------------------

/// Runs the network layer by layer with `kernel`, checking every layer's
/// output against the scalar oracle on the same input (§3a), returns w.
fn chain_checked(
    net: &MappingNetwork<Vec<f32>>,
    kernel: Kernel,
    z: &[f32],
    c: &[f32],
    what: &str,
) -> Vec<f32> {
    let s = net.spec();
    let run = |k: Kernel, l: &stylemap_core::fold::FoldedLayer<'_>, x: &[f32]| {
        let mut y = vec![0.0f32; l.out_features];
        kernels::gemv_bias_act(k, l.weight, l.bias, x, l.activation, &mut y).unwrap();
        y
    };
    let check = |l: &stylemap_core::fold::FoldedLayer<'_>, x: &[f32], got: &[f32], name: &str| {
        let want = run(Kernel::Scalar, l, x);
        let tol = bound::layer_pair_bound(&layer(l), x);
        for r in 0..got.len() {
            let d = (f64::from(got[r]) - f64::from(want[r])).abs();
            assert!(
                d <= tol[r],
                "{what} {kernel:?} {name} row {r}: {} vs oracle {} (bound {})",
                got[r],
                want[r],
                tol[r]
            );
        }
    };
    let mut x = vec![0.0f32; s.input_features()];
    normalize_2nd_moment(z, &mut x[..s.z_dim]);
    let (embed, layers) = net.layers();
    if let Some(e) = embed {
        let y = run(kernel, &e, c);
        check(&e, c, &y, "embed");
        normalize_2nd_moment(&y, &mut x[s.z_dim..]);
    }
    for (i, l) in layers.enumerate() {
        let y = run(kernel, &l, &x);
        check(&l, &x, &y, &format!("fc{i}"));
        x = y;
    }
    x
}

#[test]
fn every_kernel_agrees_with_the_oracle_per_layer_and_end_to_end() {
    let shapes = [
        spec(8, 0, 8, 8, 8, 6),
        spec(37, 0, 19, 3, 23, 9),
        spec(13, 5, 11, 2, 17, 4),
        spec(70, 3, 33, 4, 65, 5),
        spec(1, 1, 1, 1, 1, 1),
        MappingSpec::nvlabs(64, 0, 64, 8, 10),
    ];
    let mut worst = 0.0f64;
    let ran = for_each_kernel(|kernel| {
        for (si, s) in shapes.iter().enumerate() {
            for bias_scale in [0.0f32, 1.0, 1e6] {
                let (p, avg) = folded(s, 100 + si as u64, bias_scale);
                let net = MappingNetwork::new(*s, p, avg)
                    .unwrap()
                    .with_kernel(kernel)
                    .unwrap();
                let oracle = net.clone().with_kernel(Kernel::Scalar).unwrap();
                for (name, z) in extreme_latents(s.z_dim, si as u64) {
                    let c = one_hot(s.c_dim, si);
                    let what = format!("{s:?} bias x{bias_scale} z {name}");
                    let w = forward(&net, &z, &c).unwrap();
                    // The layer-by-layer run is the forward pass, bit for bit.
                    let chain = chain_checked(&net, kernel, &z, &c, &what);
                    assert_eq!(
                        bits(&w),
                        bits(&chain),
                        "{what} {kernel:?}: chain != forward"
                    );
                    // §3b: |w - w_exact| <= F_L, so |w - oracle| <= 2 F_L.
                    let b = network_bound(&net, &z, &c);
                    let o = forward(&oracle, &z, &c).unwrap();
                    for r in 0..w.len() {
                        let dev = (f64::from(w[r]) - b.exact[r]).abs();
                        assert!(
                            dev <= b.err[r],
                            "{what} {kernel:?} w[{r}] = {} vs exact {} (F_L {})",
                            w[r],
                            b.exact[r],
                            b.err[r]
                        );
                        let d = (f64::from(w[r]) - f64::from(o[r])).abs();
                        assert!(d <= 2.0 * b.err[r], "{what} {kernel:?} vs oracle, w[{r}]");
                        if b.err[r] > 0.0 {
                            worst = worst.max(dev / b.err[r]);
                        }
                    }
                }
            }
        }
    });
    assert_all_exercised(&ran);
    eprintln!("largest |w - exact| / F_L seen: {worst:.3e}");
}

// ---------------------------------------------------------------------------
// §4 Determinism
// ---------------------------------------------------------------------------

#[test]
fn forward_is_bit_deterministic_whatever_the_scratch_holds() {
    let s = spec(37, 5, 19, 4, 23, 9);
    let mut r = rng(9);
    let z = normal(&mut r, s.z_dim, 1.0);
    let c = one_hot(5, 3);
    for kernel in under_test() {
        let net = net(s, 4).with_kernel(kernel).unwrap();
        let first = forward(&net, &z, &c).unwrap();
        for fill in [0.0f32, f32::NAN, f32::INFINITY, -1e38] {
            for extra in [0usize, 1, 100] {
                let mut scratch = vec![fill; s.scratch_len() + extra];
                let mut w = vec![fill; s.w_dim];
                net.forward(&z, &c, &mut scratch, &mut w).unwrap();
                assert_eq!(bits(&w), bits(&first), "{kernel:?} scratch {fill} +{extra}");
            }
        }
        // A clone, and the same network over borrowed storage.
        assert_eq!(bits(&forward(&net.clone(), &z, &c).unwrap()), bits(&first));
        let (spec2, p, avg) = net.clone().into_parts();
        let borrowed = MappingNetwork::new(spec2, &p[..], &avg[..])
            .unwrap()
            .with_kernel(kernel)
            .unwrap();
        let mut scratch = vec![0.0f32; s.scratch_len()];
        let mut w = vec![0.0f32; s.w_dim];
        borrowed.forward(&z, &c, &mut scratch, &mut w).unwrap();
        assert_eq!(bits(&w), bits(&first), "{kernel:?} borrowed");
    }
}

// ---------------------------------------------------------------------------
// §5 psi and cutoff
// ---------------------------------------------------------------------------

#[test]
fn psi_and_cutoff_rules() {
    let num_ws = 5;
    let mut r = rng(5);
    for trial in 0..50 {
        let w_dim = 1 + trial % 7;
        let w = normal(&mut r, w_dim, 3.0);
        let avg = normal(&mut r, w_dim, 1.0);
        let plain: Vec<f32> = w.iter().copied().cycle().take(num_ws * w_dim).collect();
        let run = |psi: f32, cutoff: Option<usize>| {
            let mut ws = vec![f32::NAN; num_ws * w_dim];
            let t = Truncation { psi, cutoff };
            truncation::broadcast_truncate(&w, &avg, num_ws, t, &mut ws).unwrap();
            ws
        };
        let psis = [1.0f32, 0.0, 0.5, 0.7, -0.3, 1.5, 2.0, 1e-30];
        let cutoffs = [
            None,
            Some(0),
            Some(1),
            Some(3),
            Some(num_ws),
            Some(num_ws + 1),
            Some(usize::MAX),
        ];
        for psi in psis {
            for cutoff in cutoffs {
                let ws = run(psi, cutoff);
                let rows = cutoff.unwrap_or(num_ws).min(num_ws);
                for (i, row) in ws.chunks_exact(w_dim).enumerate() {
                    if psi == 1.0 || i >= rows {
                        // psi 1 is a no-op; rows past the cutoff are w.
                        assert_eq!(bits(row), bits(&w), "psi {psi} cutoff {cutoff:?} row {i}");
                    } else if psi == 0.0 {
                        assert_eq!(bits(row), bits(&avg), "psi 0 is w_avg exactly");
                    } else {
                        for k in 0..w_dim {
                            assert_eq!(row[k], truncation::lerp(avg[k], w[k], psi));
                        }
                    }
                }
                // The core clamps a cutoff past num_ws like NVlabs' slice.
                if cutoff.is_some_and(|c| c >= num_ws) {
                    assert_eq!(bits(&ws), bits(&run(psi, None)));
                }
            }
            // cutoff 0 is a no-op for every psi.
            assert_eq!(bits(&run(psi, Some(0))), bits(&plain));
        }
        // truncate_in_place agrees with broadcast_truncate.
        let mut ws = plain.clone();
        let t = Truncation {
            psi: 0.7,
            cutoff: Some(2),
        };
        truncation::truncate_in_place(&mut ws, &avg, t).unwrap();
        assert_eq!(bits(&ws), bits(&run(0.7, Some(2))));
    }
}

// ---------------------------------------------------------------------------
// §6 Overflow: finite inputs whose values leave f32's range
// ---------------------------------------------------------------------------

#[test]
fn overflow_inside_the_network_is_an_error_not_a_silent_inf() {
    // Folded weights of 1e30 on an input of ~1: layer 0 gives ~1e30, layer 1
    // ~1e60 = inf. Every kernel reports it; nothing non-finite escapes.
    let s = spec(4, 0, 3, 3, 5, 2);
    let params = vec![1.0e30f32; s.param_len()];
    for kernel in under_test() {
        let net = MappingNetwork::new(s, params.clone(), vec![0.0; 3])
            .unwrap()
            .with_kernel(kernel)
            .unwrap();
        assert_eq!(
            forward(&net, &[1.0, -1.0, 2.0, 0.5], &[]),
            Err(Error::Overflow {
                what: Operand::W,
                index: 0
            }),
            "{kernel:?}"
        );
    }
    // Partial sums overflow although the exact result (3e38) fits: the
    // contract's precondition is on sum |W||x|, not on the result.
    let s = spec(3, 0, 1, 1, 1, 1);
    let mut p = vec![3.0e38f32, 3.0e38, -3.0e38, 0.0];
    let net = MappingNetwork::new(s, p.clone(), vec![0.0])
        .unwrap()
        .with_kernel(Kernel::Scalar)
        .unwrap();
    assert_eq!(
        forward(&net, &[1.0, 1.0, 1.0], &[]),
        Err(Error::Overflow {
            what: Operand::W,
            index: 0
        })
    );
    // Well inside the precondition: the same weights scaled down are fine.
    p.iter_mut().for_each(|v| *v *= 1e-10);
    let net = MappingNetwork::new(s, p, vec![0.0]).unwrap();
    assert!(forward(&net, &[1.0, 1.0, 1.0], &[]).is_ok());

    // A huge label overflows the embedding; normalisation would turn the inf
    // into NaN/0, and the next layer spreads it: still reported.
    let s = spec(2, 2, 3, 1, 3, 1);
    let mut p = vec![1.0f32; s.param_len()];
    p[..s.embed_features * 2]
        .iter_mut()
        .for_each(|v| *v = 3.0e38);
    let net = MappingNetwork::new(s, p, vec![0.0; 3]).unwrap();
    assert!(matches!(
        forward(&net, &[1.0, 1.0], &[1.0e30, 0.0]),
        Err(Error::Overflow {
            what: Operand::W,
            ..
        })
    ));
    assert!(forward(&net, &[1.0, 1.0], &[1.0e-30, 0.0]).is_ok());

    // Only the last row of the last layer overflows: its index is named.
    let s = spec(1, 0, 3, 1, 3, 1);
    let net =
        MappingNetwork::new(s, vec![1.0, 2.0, 3.0e38, 0.0, 0.0, 3.0e38], vec![0.0; 3]).unwrap();
    assert_eq!(
        forward(&net, &[1.0], &[]),
        Err(Error::Overflow {
            what: Operand::W,
            index: 2
        })
    );
}

#[test]
fn truncation_overflow_is_an_error_and_writes_nothing() {
    let w = [1.0e38f32, 1.0];
    let avg = [-1.0e38f32, 0.0];
    let t = |psi| Truncation { psi, cutoff: None };
    let mut ws = [5.0f32; 6];
    // psi 2: 1e38 + 2e38 = 3e38 fits; psi 3: 4e38 does not.
    truncation::broadcast_truncate(&w, &avg, 3, t(2.0), &mut ws).unwrap();
    assert!(ws.iter().all(|v| v.is_finite()));
    let mut ws = [5.0f32; 6];
    assert_eq!(
        truncation::broadcast_truncate(&w, &avg, 3, t(3.0), &mut ws),
        Err(Error::Overflow {
            what: Operand::Ws,
            index: 0
        })
    );
    assert_eq!(ws, [5.0; 6]);
    let mut ws = [0.0f32, 1.0, 0.0, 1.0, 1.0e38, 1.0];
    let before = ws;
    assert_eq!(
        truncation::truncate_in_place(&mut ws, &avg, t(3.0)),
        Err(Error::Overflow {
            what: Operand::Ws,
            index: 4
        })
    );
    assert_eq!(ws, before, "ws untouched");
    // A huge psi with the cutoff excluding the large row is fine.
    let mut ws = [0.0f32, 1.0, 0.0, 1.0, 1.0e38, 1.0];
    let t2 = Truncation {
        psi: 1.0e30,
        cutoff: Some(1),
    };
    truncation::truncate_in_place(&mut ws, &[0.0, 0.0], t2).unwrap();
    assert_eq!(ws[1], 1.0e30);
    // psi 0 and psi 1 never overflow, whatever the values.
    let mut ws = [f32::MAX; 4];
    truncation::truncate_in_place(&mut ws, &[-f32::MAX, -f32::MAX], t(0.0)).unwrap();
    assert_eq!(ws, [-f32::MAX; 4]);
    truncation::truncate_in_place(&mut ws, &[f32::MAX, f32::MAX], t(1.0)).unwrap();
}

// ---------------------------------------------------------------------------
// §7 Samplers
// ---------------------------------------------------------------------------

/// A stream that repeats `words` forever and counts what it handed out.
struct Cycle {
    words: Vec<u32>,
    pos: usize,
}

impl TryRng for Cycle {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let w = self.words[self.pos % self.words.len()];
        self.pos += 1;
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
fn polar_method_gives_up_cleanly_on_degenerate_streams() {
    // All-zero and all-one words put (x1, x2) at a corner (r2 ~ 2); words
    // giving u = 1/2 put it at the centre (r2 = 0): rejected forever.
    for words in [
        vec![0u32],
        vec![u32::MAX],
        vec![0x8000_0000, 0],
        vec![0, u32::MAX],
    ] {
        let mut rng = Cycle {
            words: words.clone(),
            pos: 0,
        };
        let mut g = LegacyGaussian::new();
        assert_eq!(g.try_next_f64(&mut rng), None, "{words:x?}");
        assert_eq!(rng.pos, 4 * MAX_POLAR_ATTEMPTS as usize, "bounded work");
        assert!(!g.has_cached());
    }
    // On a real stream the two entry points agree value for value.
    let mut a = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut b = a.clone();
    let (mut ga, mut gb) = (LegacyGaussian::new(), LegacyGaussian::new());
    for _ in 0..1000 {
        let v = ga.next_f64(&mut a);
        assert_eq!(gb.try_next_f64(&mut b), Some(v));
        assert!(v.is_finite());
    }
}

#[test]
fn box_muller_is_finite_on_every_constant_and_patterned_stream() {
    let patterns: [&[u32]; 6] = [
        &[0],
        &[u32::MAX],
        &[0, u32::MAX],
        &[u32::MAX, 0],
        &[0x8000_0000],
        &[1, 0, 0, 0],
    ];
    for words in patterns {
        let mut rng = Cycle {
            words: words.to_vec(),
            pos: 0,
        };
        let mut out = [0.0f32; 9];
        sampler::fill_box_muller(&mut rng, &mut out);
        assert!(
            out.iter().all(|v| v.is_finite() && v.abs() <= 8.58),
            "{words:x?}: {out:?}"
        );
        let mut out = [0.0f64; 9];
        sampler::fill_box_muller_f64(&mut rng, &mut out);
        assert!(
            out.iter().all(|v| v.is_finite() && v.abs() <= 8.58),
            "{words:x?}"
        );
    }
}
