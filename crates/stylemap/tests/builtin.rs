//! The built-in untrained network.

use stylemap::network::{BUILTIN_W_AVG_SAMPLES, BUILTIN_W_AVG_SEED};
use stylemap::{Layout, Mapper, Network, WAvgSource};

#[test]
fn builtin_is_stylegan2_shaped_and_deterministic() {
    let a = Network::builtin();
    let s = *a.spec();
    assert_eq!(s, stylemap::core::MappingSpec::STYLEGAN2_1024);
    assert_eq!(
        (s.z_dim, s.w_dim, s.num_layers, s.num_ws, s.c_dim),
        (512, 512, 8, 18, 0)
    );
    assert!(a.is_builtin());
    assert_eq!(a.layout(), Layout::Builtin);
    assert_eq!(a.w_avg_source(), WAvgSource::Estimated { samples: 4096 });
    assert!(a.metadata()["source"].contains("untrained"));
    let b = Network::builtin();
    assert_eq!(a.core().params(), b.core().params());
    assert_eq!(a.w_avg(), b.w_avg());
    // NVlabs init: raw W ~ N(0,1)/0.01, folded W' = W * 0.01/sqrt(512) * sqrt(2),
    // so the folded weights have variance 2/512 and zero biases.
    let (_, layers) = a.core().layers();
    for layer in layers {
        let n = layer.weight.len() as f64;
        let mean = layer.weight.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = layer
            .weight
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 1e-3, "{mean}");
        assert!((var * 512.0 / 2.0 - 1.0).abs() < 0.01, "{var}");
        assert!(layer.bias.iter().all(|&b| b == 0.0));
    }
    // w for seed 0 is finite and not degenerate.
    let mut z = vec![0.0f32; 512];
    stylemap::core::sampler::z_from_seed_numpy(0, &mut z);
    let mut w = vec![0.0f32; 512];
    Mapper::new(&a).map(&z, &[], &mut w).unwrap();
    assert!(w.iter().all(|v| v.is_finite()));
    assert!(w.iter().any(|&v| v != 0.0));
}

/// The stored `w_avg` (src/builtin_w_avg.rs) is the estimate it claims to be.
#[test]
fn builtin_w_avg_is_the_4096_sample_estimate() {
    let net = Network::builtin();
    let fresh =
        stylemap::wavg::estimate_w_avg(&net, BUILTIN_W_AVG_SAMPLES, BUILTIN_W_AVG_SEED, 0).unwrap();
    let d = fresh
        .iter()
        .zip(net.w_avg())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        d < 1e-5,
        "stored w_avg is stale by {d}: regenerate with \
         `cargo run --release -p stylemap --example builtin_w_avg`"
    );
}

#[test]
fn set_w_avg_checks_and_records() {
    let mut net = Network::builtin();
    assert!(net.set_w_avg(vec![0.0; 3]).is_err());
    let mut bad = vec![0.0; 512];
    bad[7] = f32::NAN;
    assert!(net.set_w_avg(bad).is_err());
    assert_eq!(net.w_avg_source(), WAvgSource::Estimated { samples: 4096 });
    net.set_w_avg(vec![0.5; 512]).unwrap();
    assert_eq!(net.w_avg(), &[0.5; 512][..]);
    assert_eq!(net.core().w_avg(), &[0.5; 512][..]);
    assert_eq!(net.w_avg_source(), WAvgSource::Stored);
}
