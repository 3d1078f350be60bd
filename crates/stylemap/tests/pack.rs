//! Packs on the host: accuracy of f16/bf16/int8 against the f32 network on
//! the built-in network and a heavy-tailed one, f32 packs bit for bit,
//! files round trip.
//!
//! The accuracy tests use 200 seeds (fast); the 10,000-seed table in
//! BENCHMARKS.md comes from the ignored `accuracy_table`:
//! `cargo test --release -p stylemap --test pack -- --ignored --nocapture`.

use std::sync::OnceLock;

use stylemap::Network;
use stylemap::pack::{
    self, Accuracy, Int8Method, PackNetwork, Precision, QuantOptions, heavy_tailed_network,
};

/// Seeds 0..N, as `stylemap map --seeds 0-...` (disjoint from calibration).
const SEEDS: u32 = 200;

/// Calibration latents for int8 here: 2048 instead of the default 8192, so
/// that the debug-build `cargo test` stays within a minute (calibration is
/// two GEMMs per layer per latent). The default is what BENCHMARKS.md
/// measures over 10,000 seeds.
const TEST_CALIBRATION: usize = 2048;

struct Case {
    net: Network,
    z: Vec<f32>,
    /// The f32 network's w for seeds 0..SEEDS.
    w: Vec<f32>,
}

fn case(net: Network) -> Case {
    let s = *net.spec();
    let mut z = vec![0.0f32; SEEDS as usize * s.z_dim];
    for (seed, row) in z.chunks_exact_mut(s.z_dim).enumerate() {
        stylemap::seeds::z_from_seed_numpy(seed as u32, row);
    }
    let mut w = vec![0.0f32; SEEDS as usize * s.w_dim];
    stylemap::Mapper::new(&net).map(&z, &[], &mut w).unwrap();
    Case { net, z, w }
}

fn builtin() -> &'static Case {
    static C: OnceLock<Case> = OnceLock::new();
    C.get_or_init(|| case(Network::builtin()))
}

fn heavy() -> &'static Case {
    static C: OnceLock<Case> = OnceLock::new();
    C.get_or_init(|| case(heavy_tailed_network(4, 0x7441_494c).expect("valid")))
}

fn packed(net: &Network, opts: &QuantOptions) -> PackNetwork {
    let bytes = pack::write_pack(net, opts).expect("write");
    PackNetwork::from_aligned(bytes, std::path::Path::new("test.smap")).expect("parse")
}

/// max / mean |w - w_f32| of `opts`'s pack of `c` over seeds 0..SEEDS.
fn measure(c: &Case, opts: &QuantOptions) -> Accuracy {
    let p = packed(&c.net, opts);
    assert_eq!(p.precision(), opts.precision);
    let mut w = vec![0.0f32; c.w.len()];
    p.map(&c.z, &[], &mut w, 0).unwrap();
    let d: Vec<f64> = w
        .iter()
        .zip(&c.w)
        .map(|(a, b)| f64::from(a - b).abs())
        .collect();
    Accuracy {
        samples: SEEDS as usize,
        max_abs: d.iter().copied().fold(0.0, f64::max),
        mean_abs: d.iter().sum::<f64>() / d.len() as f64,
        w_max_abs: c.w.iter().map(|v| f64::from(v.abs())).fold(0.0, f64::max),
        w_mean_abs: c.w.iter().map(|v| f64::from(v.abs())).sum::<f64>() / c.w.len() as f64,
    }
}

/// Asserts the targets (max, and mean for int8).
fn check(name: &str, a: &Accuracy, max: f64, mean: f64) {
    eprintln!("{name}: {a:?}");
    assert!(a.max_abs <= max, "{name}: max {} > {max}", a.max_abs);
    assert!(a.mean_abs <= mean, "{name}: mean {} > {mean}", a.mean_abs);
    // Not a vacuous comparison: w is of order 1 and the error is not 0.
    assert!(a.w_mean_abs > 0.1, "{name}: |w| mean {}", a.w_mean_abs);
    assert!(a.max_abs > 0.0, "{name}: suspiciously exact");
}

#[test]
fn f16_and_bf16_within_target() {
    for (name, c) in [("builtin", builtin()), ("t4", heavy())] {
        let a = measure(c, &QuantOptions::new(Precision::F16));
        check(&format!("f16 {name}"), &a, 1e-2, 1e-2);
        let a = measure(c, &QuantOptions::new(Precision::Bf16));
        check(&format!("bf16 {name}"), &a, 8e-2, 8e-2);
    }
}

#[test]
fn int8_within_target_and_beats_plain_rounding() {
    for (name, c) in [("builtin", builtin()), ("t4", heavy())] {
        let opts = QuantOptions {
            calibration_samples: TEST_CALIBRATION,
            ..QuantOptions::new(Precision::Int8)
        };
        let gptq = measure(c, &opts);
        check(&format!("int8 gptq {name}"), &gptq, 0.15, 1.5e-2);
        let round = QuantOptions {
            method: Int8Method::Round,
            group: 1 << 30, // one scale per row
            ..QuantOptions::new(Precision::Int8)
        };
        let round = measure(c, &round);
        eprintln!("int8 per-row rounding {name}: {round:?}");
        assert!(
            gptq.mean_abs < 0.6 * round.mean_abs && gptq.max_abs < round.max_abs,
            "{name}: GPTQ {gptq:?} does not beat per-row rounding {round:?}"
        );
    }
}

#[test]
fn f32_pack_is_the_network_bit_for_bit() {
    let c = builtin();
    let net = &c.net;
    let p = packed(net, &QuantOptions::new(Precision::F32));
    let again = p.to_network().expect("f32 pack").expect("valid");
    assert_eq!(again.core().params(), net.core().params());
    assert_eq!(again.w_avg(), net.w_avg());
    // Per sample, the pack runs the same GEMV kernel as the core network.
    let s = *net.spec();
    let core = net.core().clone().with_kernel(p.kernel()).unwrap();
    let mut scratch = vec![0.0f32; s.scratch_len()];
    for z in c.z.chunks_exact(s.z_dim).take(3) {
        let (mut a, mut b) = (vec![0.0f32; s.w_dim], vec![1.0f32; s.w_dim]);
        core.forward(z, &[], &mut scratch, &mut a).unwrap();
        p.map(z, &[], &mut b, 1).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn files_round_trip_and_detect_by_magic() {
    let net = &builtin().net;
    let bytes = pack::write_pack(net, &QuantOptions::new(Precision::Bf16)).expect("write");
    let dir = std::env::temp_dir().join(format!("stylemap-pack-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("net.smap");
    std::fs::write(&path, bytes.as_ref()).unwrap();
    assert!(pack::is_pack_file(&path).unwrap());
    let loaded = pack::load_pack(&path).expect("load");
    assert_eq!(loaded.pack().bytes(), bytes.as_ref());
    assert_eq!(loaded.spec(), net.spec());
    assert_eq!(loaded.w_avg(), net.w_avg());

    // A truncated file is refused before its body is read.
    std::fs::write(&path, &bytes.as_ref()[..1000]).unwrap();
    let e = pack::load_pack(&path).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
    // A safetensors file is not a pack.
    std::fs::write(&path, b"\x08\0\0\0\0\0\0\0{}      ").unwrap();
    assert!(!pack::is_pack_file(&path).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn batch_and_threads_do_not_change_results() {
    let c = builtin();
    let p = packed(&c.net, &QuantOptions::new(Precision::Bf16));
    let s = *p.spec();
    let n = 9;
    let z = &c.z[..n * s.z_dim];
    let mut one = vec![0.0f32; n * s.w_dim];
    for (zs, ws) in z.chunks_exact(s.z_dim).zip(one.chunks_exact_mut(s.w_dim)) {
        p.map(zs, &[], ws, 1).unwrap();
    }
    let mut many = vec![0.0f32; n * s.w_dim];
    p.map(z, &[], &mut many, 3).unwrap();
    assert_eq!(one, many);
}

/// The 10,000-seed table of BENCHMARKS.md (slow: run in release).
#[test]
#[ignore = "10,000 seeds per configuration; run in release with --ignored"]
fn accuracy_table() {
    let seeds: u32 = std::env::var("PACK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let configs: Vec<(&str, QuantOptions)> = vec![
        ("f16", QuantOptions::new(Precision::F16)),
        ("bf16", QuantOptions::new(Precision::Bf16)),
        (
            "int8 round, per row",
            QuantOptions {
                method: Int8Method::Round,
                group: 1 << 30,
                ..QuantOptions::new(Precision::Int8)
            },
        ),
        (
            "int8 round, group 32",
            QuantOptions {
                method: Int8Method::Round,
                group: 32,
                ..QuantOptions::new(Precision::Int8)
            },
        ),
        (
            "int8 round, group 64",
            QuantOptions {
                method: Int8Method::Round,
                group: 64,
                ..QuantOptions::new(Precision::Int8)
            },
        ),
        (
            "int8 GPTQ, per row",
            QuantOptions {
                group: 1 << 30,
                ..QuantOptions::new(Precision::Int8)
            },
        ),
        (
            "int8 GPTQ, group 128",
            QuantOptions {
                group: 128,
                ..QuantOptions::new(Precision::Int8)
            },
        ),
        (
            "int8 GPTQ, group 64",
            QuantOptions {
                group: 64,
                ..QuantOptions::new(Precision::Int8)
            },
        ),
        (
            "int8 GPTQ, group 32 (default)",
            QuantOptions::new(Precision::Int8),
        ),
    ];
    println!("| network | precision | max abs err | mean abs err | max abs w | mean abs w |");
    println!("|---|---|---:|---:|---:|---:|");
    let nets = [
        ("builtin", Network::builtin()),
        (
            "student-t(4)",
            heavy_tailed_network(4, 0x7441_494c).expect("valid"),
        ),
    ];
    for (net_name, net) in &nets {
        for (name, opts) in &configs {
            let p = packed(net, opts);
            let a = pack::accuracy(net, &p, 0..seeds, 0).expect("accuracy");
            println!(
                "| {net_name} | {name} | {:.4} | {:.5} | {:.3} | {:.3} |",
                a.max_abs, a.mean_abs, a.w_max_abs, a.w_mean_abs
            );
        }
    }
}
