//! Golden tests: the core against our independent float64 reference of the
//! NVlabs mapping network (`tools/reference.py`, fixtures in
//! `tests/fixtures/golden/`), for every kernel this machine can run.
//!
//! Tolerance: 1e-4 absolute on every element of w and ws (the manifest's
//! `tolerance_w_abs`; the project's bar on real checkpoints). z must match
//! numpy bit for bit.

use stylemap_core::fold::{self, RawLayer, RawParams};
use stylemap_core::sampler::NumpyRandomState;
use stylemap_core::{Activation, Kernel, MappingNetwork, MappingSpec};
use stylemap_suite::{GoldenNet, SyntheticNet, golden_manifest, load_golden};

fn core_spec(net: &GoldenNet) -> MappingSpec {
    MappingSpec {
        z_dim: net.z_dim,
        c_dim: net.c_dim,
        w_dim: net.w_dim,
        num_layers: net.num_layers,
        layer_features: net.layer_features,
        embed_features: net.embed_features,
        num_ws: net.num_ws,
        lr_multiplier: net.lr_multiplier,
        activation: match net.activation {
            stylemap_suite::Activation::Lrelu => Activation::LeakyRelu,
            stylemap_suite::Activation::Linear => Activation::Linear,
        },
    }
}

fn folded(spec: &MappingSpec, syn: &SyntheticNet) -> Vec<f32> {
    let layers: Vec<RawLayer> = (0..spec.num_layers)
        .map(|i| RawLayer {
            weight: syn.fc_weight(i),
            bias: syn.fc_bias(i),
        })
        .collect();
    let embed = (spec.c_dim > 0).then(|| RawLayer {
        weight: syn.embed_weight(),
        bias: syn.embed_bias(),
    });
    let mut params = vec![0.0f32; spec.param_len()];
    fold::fold_nvlabs(
        spec,
        &RawParams {
            embed,
            layers: &layers,
        },
        &mut params,
    )
    .unwrap();
    params
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (worst, at) = got
        .iter()
        .zip(want)
        .enumerate()
        .map(|(i, (&g, &e))| ((f64::from(g) - e).abs(), i))
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a });
    assert!(
        worst <= tol,
        "{what}: |error| {worst:.3e} at {at} (got {}, want {}) exceeds {tol:e}",
        got[at],
        want[at]
    );
}

#[test]
fn every_golden_case_matches_the_f64_reference_with_every_kernel() {
    let manifest = golden_manifest();
    let tol = manifest.tolerance_w_abs;
    assert_eq!(tol, 1e-4);
    let kernels: Vec<Kernel> = Kernel::ALL
        .iter()
        .copied()
        .filter(|k| k.is_available())
        .collect();
    let mut checked = 0;
    for net in &manifest.nets {
        let spec = core_spec(net);
        let syn = net.synthetic();
        let params = folded(&spec, &syn);
        for case in manifest.cases.iter().filter(|c| c.net == net.name) {
            // z: numpy's randn, bit for bit, then cast to f32 as NVlabs does.
            let (_, z64) = load_golden(&case.z);
            let mut ours = vec![0.0f64; spec.z_dim];
            NumpyRandomState::new(case.seed).randn_f64(&mut ours);
            assert!(
                ours.iter()
                    .zip(&z64)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{}: z for seed {} differs from numpy",
                net.name,
                case.seed
            );
            let z: Vec<f32> = z64.iter().map(|&v| v as f32).collect();
            let c = case.one_hot(spec.c_dim).unwrap_or_default();
            let (_, want_w) = load_golden(&case.w);
            for &kernel in &kernels {
                let net_core = MappingNetwork::new(spec, &params[..], syn.w_avg())
                    .unwrap()
                    .with_kernel(kernel)
                    .unwrap();
                let mut scratch = vec![0.0f32; spec.scratch_len()];
                let mut w = vec![0.0f32; spec.w_dim];
                net_core.forward(&z, &c, &mut scratch, &mut w).unwrap();
                let what = format!("{} seed {} {}", net.name, case.seed, kernel.name());
                assert_close(&format!("{what} w"), &w, &want_w, tol);
                for ws_case in &case.ws {
                    let (shape, want_ws) = load_golden(&ws_case.file);
                    assert_eq!(shape, [spec.num_ws, spec.w_dim]);
                    let mut ws = vec![0.0f32; spec.ws_len()];
                    net_core
                        .broadcast_truncate(&w, ws_case.psi as f32, ws_case.cutoff, &mut ws)
                        .unwrap();
                    let label =
                        format!("{what} ws psi {} cutoff {:?}", ws_case.psi, ws_case.cutoff);
                    assert_close(&label, &ws, &want_ws, tol);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} ws cases checked");
}

#[test]
fn golden_suite_covers_the_required_shapes_and_truncations() {
    let m = golden_manifest();
    assert!(
        m.nets
            .iter()
            .any(|n| n.num_layers == 8 && n.w_dim == 512 && n.c_dim == 0)
    );
    assert!(m.nets.iter().any(|n| n.c_dim == 10));
    assert!(m.nets.iter().any(|n| n.num_layers == 2 && n.w_dim == 512));
    assert!(m.nets.iter().any(|n| n.z_dim == 37 && n.w_dim == 19));
    for psi in [1.0, 0.7, 0.0, 1.5] {
        for cutoff in [None, Some(8)] {
            let found = m
                .cases
                .iter()
                .flat_map(|c| &c.ws)
                .any(|w| w.psi == psi && (w.cutoff == cutoff || psi == 1.0));
            assert!(found, "no golden ws with psi {psi} cutoff {cutoff:?}");
        }
    }
}

/// The AMX path (f32 on AMX tiles through an exact three-way bf16 split)
/// against the same f64 reference: every golden case of a network in one
/// batch through `AmxNetwork::forward_batch`, within the same 1e-4. Skipped
/// where AMX cannot run, unless `STYLEMAP_REQUIRE_AMX=1` (CI on AMX
/// machines).
#[test]
fn every_golden_case_matches_the_f64_reference_on_the_amx_path() {
    use stylemap_core::kernels::amx;
    if !amx::is_available() {
        assert!(
            std::env::var("STYLEMAP_REQUIRE_AMX").as_deref() != Ok("1"),
            "STYLEMAP_REQUIRE_AMX=1 but the AMX kernel cannot run here"
        );
        eprintln!("AMX is not available here: skipped");
        return;
    }
    let manifest = golden_manifest();
    let tol = manifest.tolerance_w_abs;
    let mut checked = 0;
    for net in &manifest.nets {
        let spec = core_spec(net);
        let syn = net.synthetic();
        let params = folded(&spec, &syn);
        let len = amx::network_len(&spec);
        // The tiles want 64-byte rows: start the buffer on a cache line.
        let mut buf = vec![0u32; len + 16];
        let skip = buf.as_ptr().align_offset(64);
        let packed = &mut buf[skip..skip + len];
        amx::pack_network(&spec, &params, packed).unwrap();
        let amx_net = amx::AmxNetwork::new(spec, &*packed).unwrap();
        let cases: Vec<_> = manifest
            .cases
            .iter()
            .filter(|c| c.net == net.name)
            .collect();
        let n = cases.len();
        let mut z = Vec::with_capacity(n * spec.z_dim);
        let mut c = Vec::with_capacity(n * spec.c_dim);
        for case in &cases {
            let (_, z64) = load_golden(&case.z);
            z.extend(z64.iter().map(|&v| v as f32));
            c.extend(case.one_hot(spec.c_dim).unwrap_or_default());
        }
        let mut scratch = vec![0.0f32; amx_net.scratch_len(n)];
        let mut w = vec![0.0f32; n * spec.w_dim];
        amx_net
            .forward_batch(&z, &c, n, &mut scratch, &mut w)
            .unwrap();
        for (case, got) in cases.iter().zip(w.chunks_exact(spec.w_dim)) {
            let (_, want_w) = load_golden(&case.w);
            assert_close(
                &format!("{} seed {} amx w", net.name, case.seed),
                got,
                &want_w,
                tol,
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} cases checked");
}
