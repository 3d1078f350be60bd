//! The whole forward pass against a naive f64 evaluation of SPEC §1 written
//! straight from the raw parameters (no folding), on small networks of every
//! shape class, plus the error paths.
//!
//! Tolerance: 1e-4 absolute on w (the project's bar on real checkpoints); the
//! small nets here land within about 1e-6.

mod common;

use common::{RawNet as Raw, normal, raw_net};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use stylemap_core::{Activation, Error, Kernel, MappingNetwork, MappingSpec, Operand};

const TOL: f64 = 1e-4;

fn normalize(v: &[f64]) -> Vec<f64> {
    let mean = v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64;
    v.iter().map(|x| x / (mean + 1e-8).sqrt()).collect()
}

fn dense(w: &[f32], b: &[f32], x: &[f64], wg: f64, bg: f64, act: Activation) -> Vec<f64> {
    b.iter()
        .enumerate()
        .map(|(r, &bias)| {
            let row = &w[r * x.len()..(r + 1) * x.len()];
            let a = row
                .iter()
                .zip(x)
                .map(|(&w, &x)| f64::from(w) * wg * x)
                .sum::<f64>()
                + f64::from(bias) * bg;
            match act {
                Activation::LeakyRelu => (if a < 0.0 { a * 0.2 } else { a }) * 2f64.sqrt(),
                Activation::Linear => a,
            }
        })
        .collect()
}

/// SPEC §1 in f64 from the raw parameters.
fn reference(raw: &Raw, z: &[f32], c: &[f32]) -> Vec<f64> {
    let s = &raw.spec;
    let z64: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
    let mut x = normalize(&z64);
    if let Some((w, b)) = &raw.embed {
        let c64: Vec<f64> = c.iter().map(|&v| f64::from(v)).collect();
        let wg = f64::from((1.0 / (s.c_dim as f64).sqrt()) as f32);
        x.extend(normalize(&dense(w, b, &c64, wg, 1.0, Activation::Linear)));
    }
    for (w, b) in &raw.fc {
        let wg = f64::from((s.lr_multiplier / (x.len() as f64).sqrt()) as f32);
        let bg = f64::from(s.lr_multiplier as f32);
        x = dense(w, b, &x, wg, bg, s.activation);
    }
    x
}

fn specs() -> Vec<MappingSpec> {
    let mut odd = MappingSpec::nvlabs(37, 0, 19, 4, 12);
    odd.layer_features = 23;
    let mut odd_cond = MappingSpec::nvlabs(37, 5, 19, 3, 9);
    odd_cond.layer_features = 23;
    odd_cond.embed_features = 11;
    odd_cond.lr_multiplier = 0.05;
    let mut linear = MappingSpec::nvlabs(8, 0, 8, 2, 4);
    linear.activation = Activation::Linear;
    linear.lr_multiplier = 1.0;
    let one_layer = MappingSpec::nvlabs(3, 2, 5, 1, 2);
    let mut v = vec![odd, odd_cond, linear, one_layer];
    if !cfg!(miri) {
        v.push(MappingSpec::nvlabs(64, 10, 64, 8, 10));
    }
    v
}

#[test]
fn forward_matches_the_f64_reference_for_every_kernel() {
    for (n, spec) in specs().into_iter().enumerate() {
        let raw = raw_net(spec, n as u64);
        let params = raw.fold().unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(100 + n as u64);
        for kernel in Kernel::ALL.iter().copied().filter(|k| k.is_available()) {
            let net = MappingNetwork::new(spec, &params[..], &raw.w_avg[..])
                .unwrap()
                .with_kernel(kernel)
                .unwrap();
            let mut scratch = vec![0.0f32; spec.scratch_len()];
            let mut w = vec![0.0f32; spec.w_dim];
            for sample in 0..3 {
                let z = normal(&mut rng, spec.z_dim, 1.0);
                let mut c = vec![0.0f32; spec.c_dim];
                if spec.c_dim > 0 {
                    c[sample % spec.c_dim] = 1.0;
                }
                net.forward(&z, &c, &mut scratch, &mut w).unwrap();
                let want = reference(&raw, &z, &c);
                for (i, (&g, &e)) in w.iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(g) - e).abs() <= TOL,
                        "{spec:?} {kernel:?} sample {sample} w[{i}] = {g}, reference {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn zero_z_normalises_to_exactly_zero() {
    let spec = MappingSpec::nvlabs(8, 0, 8, 2, 4);
    let raw = raw_net(spec, 3);
    let params = raw.fold().unwrap();
    let net = MappingNetwork::new(spec, &params[..], &raw.w_avg[..]).unwrap();
    let mut x = [1.0f32; 8];
    stylemap_core::network::normalize_2nd_moment(&[0.0; 8], &mut x);
    assert_eq!(x, [0.0; 8]);
    // Then w is the bias chain alone and finite.
    let mut w = [0.0f32; 8];
    net.forward(&[0.0; 8], &[], &mut [0.0; 16], &mut w).unwrap();
    assert!(w.iter().all(|v| v.is_finite()));
}

#[test]
fn extreme_z_normalises_without_overflow() {
    let mut x = [0.0f32; 4];
    stylemap_core::network::normalize_2nd_moment(
        &[f32::MAX, -f32::MAX, f32::MAX, -f32::MAX],
        &mut x,
    );
    assert_eq!(x, [1.0, -1.0, 1.0, -1.0]);
    let tiny = f32::from_bits(1); // the smallest subnormal
    stylemap_core::network::normalize_2nd_moment(&[tiny, 0.0, 0.0, 0.0], &mut x);
    assert!(x.iter().all(|v| v.is_finite()));
}

#[test]
fn forward_rejects_bad_buffers_before_writing() {
    let spec = MappingSpec::nvlabs(3, 2, 5, 1, 2);
    let raw = raw_net(spec, 9);
    let params = raw.fold().unwrap();
    let net = MappingNetwork::new(spec, &params[..], &raw.w_avg[..]).unwrap();
    assert_eq!(spec.scratch_len(), 16);
    common::assert_batch_io_errors(1, 16, |z, c, scratch, w| net.forward(z, c, scratch, w));
}

#[test]
fn construction_rejects_bad_parameters() {
    let spec = MappingSpec::nvlabs(3, 0, 5, 2, 2);
    let mut raw = raw_net(spec, 11);
    let good = raw.fold().unwrap();
    assert!(matches!(
        MappingNetwork::new(spec, &good[1..], &raw.w_avg[..]),
        Err(Error::Length {
            what: Operand::Params,
            ..
        })
    ));
    assert!(matches!(
        MappingNetwork::new(spec, &good[..], &raw.w_avg[1..]),
        Err(Error::Length {
            what: Operand::WAvg,
            ..
        })
    ));
    let mut bad_avg = raw.w_avg.clone();
    bad_avg[4] = f32::INFINITY;
    assert_eq!(
        MappingNetwork::new(spec, &good[..], &bad_avg[..]).err(),
        Some(Error::NonFinite {
            what: Operand::WAvg,
            index: 4
        })
    );
    raw.fc[1].0[3] = f32::NAN;
    assert_eq!(
        raw.fold().err(),
        Some(Error::NonFinite {
            what: Operand::FcWeight(1),
            index: 3
        })
    );
    raw.fc[1].0[3] = f32::MAX; // finite raw value whose folded value overflows
    let mut lin = spec;
    lin.lr_multiplier = 1e30;
    raw.spec = lin;
    assert!(matches!(
        raw.fold(),
        Err(Error::NonFinite {
            what: Operand::FcWeight(_),
            ..
        })
    ));
    raw.spec = spec;
    raw.fc[0].1.pop();
    assert_eq!(
        raw.fold().err(),
        Some(Error::Length {
            what: Operand::FcBias(0),
            expected: 5,
            actual: 4
        })
    );
    raw.fc.pop();
    assert!(matches!(
        raw.fold(),
        Err(Error::Length {
            what: Operand::RawLayers,
            ..
        })
    ));
}

#[test]
fn errors_print_one_line_naming_the_problem() {
    let e = Error::NonFinite {
        what: Operand::FcWeight(3),
        index: 17,
    };
    assert_eq!(
        e.to_string(),
        "fc3.weight holds a non-finite value at index 17"
    );
    let e = Error::Conditioning {
        c_dim: 10,
        actual: 0,
    };
    assert_eq!(
        e.to_string(),
        "the network is conditional (c_dim 10) but c has 0 elements"
    );
}

#[test]
fn psi_zero_gives_w_avg_exactly_and_psi_one_gives_w() {
    let spec = MappingSpec::nvlabs(8, 0, 8, 2, 4);
    let raw = raw_net(spec, 5);
    let params = raw.fold().unwrap();
    let net = MappingNetwork::new(spec, &params[..], &raw.w_avg[..]).unwrap();
    let mut w = [0.0f32; 8];
    net.forward(
        &normal(&mut Xoshiro256PlusPlus::seed_from_u64(1), 8, 1.0),
        &[],
        &mut [0.0; 16],
        &mut w,
    )
    .unwrap();
    let mut ws = [0.0f32; 32];
    net.broadcast_truncate(&w, 0.0, None, &mut ws).unwrap();
    for row in ws.chunks(8) {
        assert_eq!(row, &raw.w_avg[..]);
    }
    net.broadcast_truncate(&w, 1.0, Some(2), &mut ws).unwrap();
    for row in ws.chunks(8) {
        assert_eq!(row, &w);
    }
    net.broadcast_truncate(&w, 0.0, Some(0), &mut ws).unwrap();
    for row in ws.chunks(8) {
        assert_eq!(row, &w, "cutoff 0 truncates nothing");
    }
}

#[test]
fn replace_w_avg_validates_and_swaps() {
    let spec = MappingSpec::nvlabs(3, 0, 5, 2, 2);
    let raw = raw_net(spec, 13);
    let params = raw.fold().unwrap();
    let mut net = MappingNetwork::new(spec, params, raw.w_avg.clone()).unwrap();
    assert!(net.replace_w_avg(vec![0.0; 4]).is_err());
    assert_eq!(
        net.replace_w_avg(vec![0.0, 1.0, f32::NAN, 0.0, 0.0]).err(),
        Some(Error::NonFinite {
            what: Operand::WAvg,
            index: 2
        })
    );
    assert_eq!(net.w_avg(), &raw.w_avg[..]);
    let old = net.replace_w_avg(vec![1.0; 5]).unwrap();
    assert_eq!(old, raw.w_avg);
    assert_eq!(net.w_avg(), &[1.0; 5]);
    let (s, p, a) = net.into_parts();
    assert_eq!((s, p.len(), a), (spec, spec.param_len(), vec![1.0; 5]));
}
