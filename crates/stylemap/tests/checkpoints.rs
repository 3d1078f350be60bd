//! Loading the fixture checkpoints of `tools/make_checkpoints.py` and mapping
//! against the float64 reference outputs stored beside them.

mod common;

use common::{entry, f64s, fixture, manifest};
use stylemap::core::sampler;
use stylemap::{Layout, LoadOptions, Mapper, WAvgSource, inspect, load};

fn options_for(e: &serde_json::Value) -> LoadOptions {
    LoadOptions {
        // The bare fixture has no metadata: num_ws must come from the caller.
        num_ws: e["num_ws"].is_null().then_some(4),
        ..LoadOptions::default()
    }
}

#[test]
fn every_fixture_loads_and_maps_like_the_reference() {
    let m = manifest();
    let tol = m["tolerance_w_abs"].as_f64().unwrap();
    for e in m["fixtures"].as_array().unwrap() {
        let file = e["file"].as_str().unwrap();
        let net = load(&fixture(file), &options_for(e)).unwrap_or_else(|err| panic!("{err}"));
        let s = *net.spec();
        let layout = match e["layout"].as_str().unwrap() {
            "nvlabs" => Layout::Nvlabs,
            _ => Layout::Rosinality,
        };
        assert_eq!(net.layout(), layout, "{file}");
        assert!(!net.is_builtin());
        assert_eq!(s.z_dim as u64, e["z_dim"].as_u64().unwrap(), "{file}");
        assert_eq!(s.c_dim as u64, e["c_dim"].as_u64().unwrap(), "{file}");
        assert_eq!(s.w_dim as u64, e["w_dim"].as_u64().unwrap(), "{file}");
        assert_eq!(s.num_layers as u64, e["num_layers"].as_u64().unwrap());
        assert_eq!(
            s.layer_features as u64,
            e["layer_features"].as_u64().unwrap()
        );
        assert_eq!(
            s.embed_features as u64,
            e["embed_features"].as_u64().unwrap()
        );
        assert_eq!(s.lr_multiplier, e["lr_multiplier"].as_f64().unwrap());
        let num_ws = e["num_ws"].as_u64().map_or(4, |n| n as usize);
        assert_eq!(s.num_ws, num_ws, "{file}");
        if let Some(w_avg) = e["w_avg"].as_array() {
            assert_eq!(net.w_avg_source(), WAvgSource::Stored);
            let expected: Vec<f32> = w_avg.iter().map(|v| v.as_f64().unwrap() as f32).collect();
            assert_eq!(
                net.w_avg(),
                &expected[..],
                "{file}: w_avg is stored exactly"
            );
        } else {
            assert_eq!(
                net.w_avg_source(),
                WAvgSource::Estimated { samples: 4096 },
                "{file}"
            );
        }

        // All cases as one batch; z from the core sampler must be the manifest's z.
        let cases = e["cases"].as_array().unwrap();
        let n = cases.len();
        let mut z = vec![0.0f32; n * s.z_dim];
        let mut c = vec![0.0f32; n * s.c_dim];
        let mut want = Vec::new();
        for (i, case) in cases.iter().enumerate() {
            let row = &mut z[i * s.z_dim..(i + 1) * s.z_dim];
            sampler::z_from_seed_numpy(case["seed"].as_u64().unwrap() as u32, row);
            let zref = f64s(&case["z"]);
            for (a, b) in row.iter().zip(&zref) {
                assert_eq!(*a, *b as f32, "{file}: numpy z of seed {}", case["seed"]);
            }
            if let Some(k) = case["class"].as_u64() {
                c[i * s.c_dim + k as usize] = 1.0;
            }
            want.extend(f64s(&case["w"]));
        }
        for (threads, threshold) in [(1, usize::MAX), (1, 0), (2, 0), (2, usize::MAX)] {
            let mut w = vec![0.0f32; n * s.w_dim];
            Mapper::new(&net)
                .with_threads(threads)
                .with_gemm_threshold(threshold)
                .map(&z, &c, &mut w)
                .unwrap();
            let err = w
                .iter()
                .zip(&want)
                .map(|(&a, &b)| (f64::from(a) - b).abs())
                .fold(0.0, f64::max);
            assert!(
                err < tol,
                "{file}: |w - reference| = {err} (threads {threads}, gemm threshold {threshold})"
            );
        }
    }
}

#[test]
fn inspect_reports_the_header() {
    for e in manifest()["fixtures"].as_array().unwrap() {
        let file = e["file"].as_str().unwrap();
        let info = inspect(&fixture(file)).unwrap();
        assert_eq!(info.z_dim as u64, e["z_dim"].as_u64().unwrap(), "{file}");
        assert_eq!(info.c_dim as u64, e["c_dim"].as_u64().unwrap(), "{file}");
        assert_eq!(info.w_dim as u64, e["w_dim"].as_u64().unwrap(), "{file}");
        assert_eq!(info.num_layers as u64, e["num_layers"].as_u64().unwrap());
        assert_eq!(info.key_prefix, e["key_prefix"].as_str().unwrap(), "{file}");
        assert_eq!(info.dtype, e["dtype"].as_str().unwrap(), "{file}");
        assert_eq!(info.has_w_avg, !e["w_avg"].is_null(), "{file}");
        assert_eq!(
            info.num_ws,
            e["num_ws"].as_u64().map(|n| n as usize),
            "{file}"
        );
        assert_eq!(info.spec.is_some(), info.num_ws.is_some());
        assert_eq!(
            info.file_bytes,
            std::fs::metadata(fixture(file)).unwrap().len()
        );
        let text = info.to_string();
        assert!(text.contains("z_dim:"), "{text}");
        assert!(text.contains(&format!("{}", info.param_count)), "{text}");
    }
    // Counts on the NVlabs fixture: 16 -> 24 -> 24 -> 16 plus an ignored synthesis tensor.
    let info = inspect(&fixture("nvlabs_uncond.safetensors")).unwrap();
    assert_eq!(info.layout, Layout::Nvlabs);
    assert_eq!(info.param_count, 16 * 24 + 24 + 24 * 24 + 24 + 24 * 16 + 16);
    assert_eq!(info.param_bytes, 4 * info.param_count);
    assert_eq!(info.ignored_tensors, 1);
    assert_eq!(info.metadata["source"], "tools/make_checkpoints.py");
    let text = info.to_string();
    assert!(
        text.contains("num_ws:         6 (metadata `num_ws`)"),
        "{text}"
    );
    assert!(text.contains("keys under `mapping.`"), "{text}");
    let info = inspect(&fixture("nvlabs_f16.safetensors")).unwrap();
    assert_eq!(info.param_bytes, 2 * info.param_count);
    let info = inspect(&fixture("nvlabs_bare.safetensors")).unwrap();
    assert!(info.to_string().contains("--num-ws"));
}

#[test]
fn hyper_parameters_explicit_beats_metadata_beats_default() {
    let path = fixture("nvlabs_uncond.safetensors");
    let net = load(&path, &LoadOptions::default()).unwrap();
    assert_eq!(net.spec().num_ws, 6);
    assert_eq!(net.metadata()["num_ws"], "6");
    let opts = LoadOptions {
        num_ws: Some(9),
        lr_multiplier: Some(0.02),
        ..LoadOptions::default()
    };
    let net2 = load(&path, &opts).unwrap();
    assert_eq!(net2.spec().num_ws, 9);
    assert_eq!(net2.spec().lr_multiplier, 0.02);
    assert_ne!(net.core().params(), net2.core().params());
    // `resolution` 32 -> num_ws 8 (2 * log2(32) - 2).
    let net = load(&fixture("nvlabs_cond.safetensors"), &LoadOptions::default()).unwrap();
    assert_eq!(net.spec().num_ws, 8);
    // No metadata and no option: a clear error.
    let err = load(&fixture("nvlabs_bare.safetensors"), &LoadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("nvlabs_bare.safetensors") && msg.contains("--num-ws"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    for bad in [0, stylemap::load::MAX_NUM_WS + 1] {
        let opts = LoadOptions {
            num_ws: Some(bad),
            ..LoadOptions::default()
        };
        assert!(load(&path, &opts).is_err());
    }
    let opts = LoadOptions {
        lr_multiplier: Some(f64::NAN),
        ..LoadOptions::default()
    };
    assert!(load(&path, &opts).is_err());
}

#[test]
fn missing_latent_avg_is_estimated_from_the_xoshiro_stream() {
    let path = fixture("rosinality_noavg.safetensors");
    let e = entry("rosinality_noavg.safetensors");
    assert!(e["w_avg"].is_null());
    let opts = LoadOptions {
        w_avg_samples: 300,
        w_avg_seed: 42,
        ..LoadOptions::default()
    };
    let net = load(&path, &opts).unwrap();
    assert_eq!(net.w_avg_source(), WAvgSource::Estimated { samples: 300 });
    // Independent estimate: core forward per sample, mean in f64.
    let s = *net.spec();
    let mut sum = vec![0.0f64; s.w_dim];
    let mut z = vec![0.0f32; s.z_dim];
    let mut w = vec![0.0f32; s.w_dim];
    let mut scratch = vec![0.0f32; s.scratch_len()];
    for j in 0..300u64 {
        sampler::z_from_seed_xoshiro(42 + j, &mut z);
        net.core().forward(&z, &[], &mut scratch, &mut w).unwrap();
        for (a, &v) in sum.iter_mut().zip(&w) {
            *a += f64::from(v);
        }
    }
    for (a, &b) in sum.iter().zip(net.w_avg()) {
        assert!((a / 300.0 - f64::from(b)).abs() < 1e-5, "{a} vs {b}");
    }
    let opts = LoadOptions {
        w_avg_samples: 0,
        ..LoadOptions::default()
    };
    assert!(load(&path, &opts).is_err());
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let path = fixture("does-not-exist.safetensors");
    let err = load(&path, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, stylemap::Error::Io { .. }));
    assert!(err.to_string().contains("does-not-exist.safetensors"));
    assert!(inspect(&path).is_err());
}
