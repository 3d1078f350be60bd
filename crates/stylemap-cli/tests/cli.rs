//! End-to-end tests of the `stylemap` binary.
//!
//! Most tests run on the tiny checkpoints of `tests/fixtures/checkpoints/`
//! (written by `tools/make_checkpoints.py`, with float64 reference outputs in
//! `reference.json`); one test runs the built-in 8x512 network, which takes a
//! few seconds to build in a debug binary.

mod common;

use std::path::Path;

use common::*;

// ---------------------------------------------------------------------------
// stylemap z
// ---------------------------------------------------------------------------

fn randn_fixture(seed: u32, n: usize) -> Vec<f64> {
    let path = root().join(format!(
        "crates/stylemap-core/tests/data/randn_seed{seed}_n{n}.f64"
    ));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len(), 8 * n);
    bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect()
}

/// The fixtures come from numpy on x86-64 glibc; the CLI uses the platform's
/// `log` as numpy does, so there they must agree bit for bit (another C
/// library may round a few logs differently, as numpy there would too).
#[test]
#[cfg_attr(
    not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")),
    ignore = "fixtures come from glibc's log on x86-64"
)]
fn z_numpy_f64_matches_numpy_bit_for_bit() {
    let dir = tmp();
    for seed in [0u32, 1, 42, 85, 4_294_967_295] {
        for n in [1usize, 511, 512, 513] {
            let out = p(&dir, &format!("z{seed}_{n}.npy"));
            ok(&[
                "z",
                "--seeds",
                &seed.to_string(),
                "--z-dim",
                &n.to_string(),
                "--dtype",
                "f64",
                "--out",
                &out,
            ]);
            let (shape, z) = read_f64(Path::new(&out));
            assert_eq!(shape, [1, n as u64]);
            let want = randn_fixture(seed, n);
            for (i, (g, w)) in z.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "seed {seed} n {n} index {i}: {g:e} vs numpy {w:e}"
                );
            }
        }
    }
    // The brief's headline case, in full.
    let out = p(&dir, "z85.npy");
    ok(&[
        "z", "--seeds", "85", "--z-dim", "512", "--dtype", "f64", "--out", &out,
    ]);
    let bits: Vec<u64> = read_f64(Path::new(&out))
        .1
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let want: Vec<u64> = randn_fixture(85, 512).iter().map(|v| v.to_bits()).collect();
    assert_eq!(bits, want);
}

#[test]
fn z_rows_follow_the_seed_list_and_f32_is_the_cast() {
    let dir = tmp();
    let out = p(&dir, "z.npy");
    // Default dtype f32, default z_dim 512, duplicates kept in order.
    ok(&["z", "--seeds", "85,0,85,1", "--out", &out]);
    let (shape, z) = read_f32(Path::new(&out));
    assert_eq!(shape, [4, 512]);
    for (row, seed) in [85u32, 0, 85, 1].into_iter().enumerate() {
        let want: Vec<f32> = randn_fixture(seed, 512).iter().map(|&v| v as f32).collect();
        assert_eq!(&z[row * 512..(row + 1) * 512], &want[..], "row {row}");
    }
    // Ranges.
    ok(&["z", "--seeds", "0-1,42", "--z-dim", "1", "--out", &out]);
    let (shape, z) = read_f32(Path::new(&out));
    assert_eq!(shape, [3, 1]);
    let want: Vec<f32> = [0u32, 1, 42]
        .iter()
        .map(|&s| randn_fixture(s, 1)[0] as f32)
        .collect();
    assert_eq!(z, want);
}

#[test]
fn z_xoshiro_sampler() {
    let dir = tmp();
    let (a, b, c) = (p(&dir, "a.npy"), p(&dir, "b.npy"), p(&dir, "c.npy"));
    let args = [
        "z",
        "--seeds",
        "0-3",
        "--z-dim",
        "9",
        "--sampler",
        "xoshiro",
    ];
    ok(&[&args[..], &["--out", &a]].concat());
    ok(&[&args[..], &["--dtype", "f64", "--out", &b]].concat());
    ok(&["z", "--seeds", "0-3", "--z-dim", "9", "--out", &c]);
    let (shape, z32) = read_f32(Path::new(&a));
    assert_eq!(shape, [4, 9]);
    let (_, z64) = read_f64(Path::new(&b));
    let cast: Vec<f32> = z64.iter().map(|&v| v as f32).collect();
    assert_eq!(z32, cast, "f32 is the f64 stream rounded");
    assert_ne!(z32, read_f32(Path::new(&c)).1, "not numpy's stream");
    assert_ne!(z32[..9], z32[9..18], "seeds differ");
    // Matches the library's sampler.
    let mut want = vec![0.0f32; 9];
    stylemap::core::sampler::z_from_seed_xoshiro(2, &mut want);
    assert_eq!(&z32[18..27], &want[..]);
}

// ---------------------------------------------------------------------------
// stylemap map on the built-in network
// ---------------------------------------------------------------------------

#[test]
fn map_builtin_network_shapes_truncation_and_note() {
    let dir = tmp();
    let (ws, w) = (p(&dir, "ws.npy"), p(&dir, "w.npy"));
    // Two invocations in parallel: each builds the built-in network.
    let a = std::process::Command::new(BIN)
        .args([
            "map", "--seeds", "0,1", "--psi", "0", "--cutoff", "9", "--out", &ws,
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let b = std::process::Command::new(BIN)
        .args(["-q", "map", "--seeds", "0-1", "--no-broadcast", "--out", &w])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let a: Run = a.wait_with_output().expect("wait").into();
    let b: Run = b.wait_with_output().expect("wait").into();
    assert_eq!(a.code, Some(0), "{}", a.stderr);
    assert_eq!(b.code, Some(0), "{}", b.stderr);
    // The untrained network is announced, unless --quiet.
    assert_eq!(a.stderr.lines().count(), 1, "{}", a.stderr);
    assert!(a.stderr.starts_with("note: ") && a.stderr.to_lowercase().contains("untrained"));
    assert!(b.stderr.is_empty(), "{}", b.stderr);

    let (shape, ws) = read_f32(Path::new(&ws));
    assert_eq!(shape, [2, 18, 512]);
    let (shape, w) = read_f32(Path::new(&w));
    assert_eq!(shape, [2, 512]);
    let row = |n: usize, i: usize| &ws[(n * 18 + i) * 512..(n * 18 + i + 1) * 512];
    let w_avg = row(0, 0).to_vec();
    for n in 0..2 {
        // psi 0 on layers 0..9: exactly w_avg, the same for every seed.
        for i in 0..9 {
            assert_eq!(row(n, i), &w_avg[..], "sample {n} layer {i}");
        }
        // Past the cutoff: the untruncated w, in every layer.
        for i in 9..18 {
            assert_eq!(
                row(n, i),
                &w[n * 512..(n + 1) * 512],
                "sample {n} layer {i}"
            );
        }
    }
    assert_ne!(w[..512], w[512..], "seeds 0 and 1 differ");
    assert_ne!(w[..512], w_avg[..]);
    assert!(w.iter().all(|v| v.is_finite()));
}

// ---------------------------------------------------------------------------
// stylemap map on real-layout checkpoints
// ---------------------------------------------------------------------------

#[test]
fn map_checkpoints_match_the_float64_reference() {
    let reference = reference();
    let tol = reference["tolerance_w_abs"].as_f64().expect("tolerance");
    let dir = tmp();
    for fx in reference["fixtures"].as_array().expect("fixtures") {
        let file = fx["file"].as_str().expect("file");
        let (z_dim, c_dim, w_dim) = (
            fx["z_dim"].as_u64().expect("z_dim") as usize,
            fx["c_dim"].as_u64().expect("c_dim") as usize,
            fx["w_dim"].as_u64().expect("w_dim") as usize,
        );
        let cases = fx["cases"].as_array().expect("cases");
        let seeds: Vec<String> = cases.iter().map(|c| c["seed"].to_string()).collect();
        let w_out = p(&dir, &format!("{file}.w.npy"));
        let mut args: Vec<String> = ["map", "--weights", &ckpt(file), "--seeds", &seeds.join(",")]
            .map(String::from)
            .to_vec();
        args.extend(["--no-broadcast".into(), "--out".into(), w_out.clone()]);
        let num_ws = match fx["num_ws"].as_u64() {
            Some(n) => n as usize,
            None => {
                args.extend(["--num-ws".into(), "4".into()]);
                4
            }
        };
        if c_dim > 0 {
            let mut c = vec![0.0f32; cases.len() * c_dim];
            for (i, case) in cases.iter().enumerate() {
                c[i * c_dim + case["class"].as_u64().expect("class") as usize] = 1.0;
            }
            let c_path = dir.path().join(format!("{file}.c.npy"));
            write_f32(&c_path, &[cases.len() as u64, c_dim as u64], &c);
            args.extend(["--c".into(), path_str(&c_path)]);
        }
        ok(&args);
        let (shape, w) = read_f32(Path::new(&w_out));
        assert_eq!(shape, [cases.len() as u64, w_dim as u64], "{file}");
        for (i, case) in cases.iter().enumerate() {
            let want = f64s(&case["w"]);
            for (j, (&g, &r)) in w[i * w_dim..(i + 1) * w_dim].iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(g) - r).abs() <= tol,
                    "{file} case {i} element {j}: {g} vs reference {r}"
                );
            }
            // And z is the reference's z, bit for bit.
            let z_out = p(&dir, "z.npy");
            ok(&[
                "z",
                "--seeds",
                &case["seed"].to_string(),
                "--z-dim",
                &z_dim.to_string(),
                "--dtype",
                "f64",
                "--out",
                &z_out,
            ]);
            // (serde_json's float parsing may be 1 ULP off the JSON text.)
            let (got, want) = (read_f64(Path::new(&z_out)).1, f64s(&case["z"]));
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    g.to_bits().abs_diff(w.to_bits()) <= 1,
                    "{file} z: {g} vs {w}"
                );
            }
        }
        // Broadcast: every ws row is w.
        let ws_out = p(&dir, &format!("{file}.ws.npy"));
        args.retain(|a| a != "--no-broadcast");
        let out_at = args.iter().position(|a| a == "--out").expect("--out") + 1;
        args[out_at] = ws_out.clone();
        ok(&args);
        let (shape, ws) = read_f32(Path::new(&ws_out));
        assert_eq!(shape, [cases.len() as u64, num_ws as u64, w_dim as u64]);
        for (n, sample) in ws.chunks_exact(num_ws * w_dim).enumerate() {
            for layer in sample.chunks_exact(w_dim) {
                assert_eq!(layer, &w[n * w_dim..(n + 1) * w_dim], "{file}");
            }
        }
    }
}

#[test]
fn map_truncation_and_cutoff_on_a_checkpoint() {
    let reference = reference();
    let fx = &reference["fixtures"][0];
    assert_eq!(fx["file"], "nvlabs_uncond.safetensors");
    let w_avg: Vec<f32> = f64s(&fx["w_avg"]).iter().map(|&v| v as f32).collect();
    let (num_ws, w_dim) = (6, 16);
    let dir = tmp();
    let weights = ckpt("nvlabs_uncond.safetensors");

    // psi 0: every layer is exactly the stored w_avg.
    let out = p(&dir, "psi0.npy");
    ok(&[
        "map",
        "--weights",
        &weights,
        "--seeds",
        "0,85",
        "--psi",
        "0",
        "--out",
        &out,
    ]);
    let (shape, ws) = read_f32(Path::new(&out));
    assert_eq!(shape, [2, num_ws as u64, w_dim as u64]);
    for layer in ws.chunks_exact(w_dim) {
        assert_eq!(layer, &w_avg[..]);
    }

    // psi 0.7, cutoff 4: layers 0..4 truncated, 4..6 untouched.
    let out = p(&dir, "cut.npy");
    ok(&[
        "map",
        "--weights",
        &weights,
        "--seeds",
        "0,85",
        "--psi",
        "0.7",
        "--cutoff",
        "4",
        "--out",
        &out,
    ]);
    let (_, ws) = read_f32(Path::new(&out));
    for (n, case) in fx["cases"].as_array().expect("cases").iter().enumerate() {
        let w = f64s(&case["w"]);
        for i in 0..num_ws {
            let got = &ws[(n * num_ws + i) * w_dim..(n * num_ws + i + 1) * w_dim];
            for j in 0..w_dim {
                let avg = f64::from(w_avg[j]);
                let want = if i < 4 {
                    avg + 0.7 * (w[j] - avg)
                } else {
                    w[j]
                };
                assert!(
                    (f64::from(got[j]) - want).abs() <= 1e-4,
                    "sample {n} layer {i} element {j}: {} vs {want}",
                    got[j]
                );
            }
        }
    }

    // Negative psi is a number, not a flag; --no-broadcast truncates w.
    let out = p(&dir, "neg.npy");
    ok(&[
        "map",
        "--weights",
        &weights,
        "--seeds",
        "0",
        "--psi",
        "-0.5",
        "--no-broadcast",
        "--out",
        &out,
    ]);
    let (shape, w) = read_f32(Path::new(&out));
    assert_eq!(shape, [1, w_dim as u64]);
    let w_ref = f64s(&fx["cases"][0]["w"]);
    for j in 0..w_dim {
        let avg = f64::from(w_avg[j]);
        assert!((f64::from(w[j]) - (avg - 0.5 * (w_ref[j] - avg))).abs() <= 1e-4);
    }
}

#[test]
fn map_z_file_round_trip() {
    let dir = tmp();
    let weights = ckpt("nvlabs_uncond.safetensors");
    let (z32, z64) = (p(&dir, "z32.npy"), p(&dir, "z64.npy"));
    ok(&["z", "--seeds", "0-9", "--z-dim", "16", "--out", &z32]);
    ok(&[
        "z", "--seeds", "0-9", "--z-dim", "16", "--dtype", "f64", "--out", &z64,
    ]);
    let outs: Vec<String> = ["seeds", "z32", "z64"]
        .iter()
        .map(|n| p(&dir, &format!("{n}.ws.npy")))
        .collect();
    let common = ["map", "--weights", &weights, "--psi", "0.8", "--batch", "3"];
    ok(&[&common[..], &["--seeds", "0-9", "--out", &outs[0]]].concat());
    ok(&[&common[..], &["--z", &z32, "--out", &outs[1]]].concat());
    ok(&[&common[..], &["--z", &z64, "--out", &outs[2]]].concat());
    let (shape, want) = read_f32(Path::new(&outs[0]));
    assert_eq!(shape, [10, 6, 16]);
    assert_eq!(read_f32(Path::new(&outs[1])).1, want, "float32 z file");
    assert_eq!(read_f32(Path::new(&outs[2])).1, want, "float64 z file");
}

#[test]
fn map_w_file_in_both_shapes() {
    let dir = tmp();
    let weights = ckpt("nvlabs_uncond.safetensors");
    let net = ["map", "--weights", weights.as_str()];
    let (w, ws1, want) = (p(&dir, "w.npy"), p(&dir, "ws1.npy"), p(&dir, "want.npy"));
    ok(&[&net[..], &["--seeds", "0-4", "--no-broadcast", "--out", &w]].concat());
    ok(&[&net[..], &["--seeds", "0-4", "--out", &ws1]].concat());
    ok(&[
        &net[..],
        &[
            "--seeds", "0-4", "--psi", "0.6", "--cutoff", "3", "--out", &want,
        ],
    ]
    .concat());
    let want = read_f32(Path::new(&want)).1;

    // [N, w_dim]: broadcast then truncate.
    let out = p(&dir, "from_w.npy");
    ok(&[
        &net[..],
        &["--w", &w, "--psi", "0.6", "--cutoff", "3", "--out", &out],
    ]
    .concat());
    let (shape, got) = read_f32(Path::new(&out));
    assert_eq!(shape, [5, 6, 16]);
    assert_eq!(got, want);

    // [N, num_ws, w_dim] (projected latents): truncate as is.
    let out = p(&dir, "from_ws.npy");
    ok(&[
        &net[..],
        &["--w", &ws1, "--psi", "0.6", "--cutoff", "3", "--out", &out],
    ]
    .concat());
    assert_eq!(read_f32(Path::new(&out)).1, want);
    ok(&[&net[..], &["--w", &ws1, "--out", &out]].concat());
    assert_eq!(
        read_f32(Path::new(&out)).1,
        read_f32(Path::new(&ws1)).1,
        "psi 1 is the identity"
    );

    // A float64 w file works too; --no-broadcast keeps [N, w_dim].
    let w64 = dir.path().join("w64.npy");
    let (_, w_vals) = read_f32(Path::new(&w));
    let as64: Vec<f64> = w_vals.iter().map(|&v| f64::from(v)).collect();
    write_f64(&w64, &[5, 16], &as64);
    ok(&[
        &net[..],
        &["--w", &path_str(&w64), "--no-broadcast", "--out", &out],
    ]
    .concat());
    let (shape, got) = read_f32(Path::new(&out));
    assert_eq!(shape, [5, 16]);
    assert_eq!(got, w_vals);
}

#[test]
fn map_results_do_not_depend_on_batch_or_threads() {
    let dir = tmp();
    let weights = ckpt("nvlabs_uncond.safetensors");
    let (a, b) = (p(&dir, "a.npy"), p(&dir, "b.npy"));
    let net = [
        "map",
        "--weights",
        weights.as_str(),
        "--seeds",
        "0-99",
        "--no-broadcast",
    ];
    ok(&[&net[..], &["--batch", "1", "--threads", "1", "--out", &a]].concat());
    ok(&[&net[..], &["--batch", "64", "--threads", "2", "--out", &b]].concat());
    let (a, b) = (read_f32(Path::new(&a)).1, read_f32(Path::new(&b)).1);
    assert_eq!(a.len(), 100 * 16);
    assert!(max_abs_diff(&a, &b) <= 1e-5);
}

#[test]
fn map_conditional_labels() {
    let dir = tmp();
    let weights = ckpt("nvlabs_cond.safetensors");
    let net = [
        "map",
        "--weights",
        weights.as_str(),
        "--seeds",
        "1,1,2",
        "--no-broadcast",
    ];
    let (by_class, by_file, by_row) = (p(&dir, "k.npy"), p(&dir, "c.npy"), p(&dir, "c1.npy"));
    ok(&[&net[..], &["--class", "3", "--out", &by_class]].concat());
    let mut c = vec![0.0f32; 3 * 5];
    for row in 0..3 {
        c[row * 5 + 3] = 1.0;
    }
    let c_file = dir.path().join("labels.npy");
    write_f32(&c_file, &[3, 5], &c);
    ok(&[&net[..], &["--c", &path_str(&c_file), "--out", &by_file]].concat());
    let c_row = dir.path().join("label.npy");
    write_f32(&c_row, &[1, 5], &c[..5]);
    ok(&[&net[..], &["--c", &path_str(&c_row), "--out", &by_row]].concat());
    let want = read_f32(Path::new(&by_class)).1;
    assert_eq!(read_f32(Path::new(&by_file)).1, want);
    assert_eq!(read_f32(Path::new(&by_row)).1, want);
    // Seed 1, class 3 is a reference case.
    let reference = reference();
    let fx = &reference["fixtures"][1];
    assert_eq!(fx["file"], "nvlabs_cond.safetensors");
    assert_eq!(fx["cases"][0]["class"], 3);
    let w_ref = f64s(&fx["cases"][0]["w"]);
    for (g, r) in want[..16].iter().zip(&w_ref) {
        assert!((f64::from(*g) - r).abs() <= 1e-4);
    }
    assert_eq!(
        want[..16],
        want[16..32],
        "duplicate seeds give duplicate rows"
    );
}

// ---------------------------------------------------------------------------
// stylemap mix, w-avg, inspect
// ---------------------------------------------------------------------------

#[test]
fn mix_takes_the_listed_layers_from_the_column() {
    let dir = tmp();
    // nvlabs_cond: num_ws 8, so the default styles 0-6 fit; conditional.
    let weights = ckpt("nvlabs_cond.safetensors");
    let net = [
        "--weights",
        weights.as_str(),
        "--psi",
        "0.8",
        "--class",
        "2",
    ];
    let (rows, cols, mix) = (p(&dir, "rows.npy"), p(&dir, "cols.npy"), p(&dir, "mix.npy"));
    ok(&[&["map"][..], &net[..], &["--seeds", "5,9", "--out", &rows]].concat());
    ok(&[&["map"][..], &net[..], &["--seeds", "1-3", "--out", &cols]].concat());
    ok(&[
        &["mix"][..],
        &net[..],
        &["--rows", "5,9", "--cols", "1-3", "--out", &mix],
    ]
    .concat());
    let (shape, grid) = read_f32(Path::new(&mix));
    assert_eq!(shape, [2, 3, 8, 16]);
    let (rows, cols) = (read_f32(Path::new(&rows)).1, read_f32(Path::new(&cols)).1);
    let layer =
        |buf: &[f32], n: usize, i: usize| buf[(n * 8 + i) * 16..(n * 8 + i + 1) * 16].to_vec();
    for r in 0..2 {
        for c in 0..3 {
            for i in 0..8 {
                let got = layer(&grid, r * 3 + c, i);
                let want = if i <= 6 {
                    layer(&cols, c, i)
                } else {
                    layer(&rows, r, i)
                };
                assert_eq!(got, want, "row {r} col {c} layer {i}");
            }
        }
    }

    // Any layer set, on an unconditional net with num_ws 6.
    let weights = ckpt("nvlabs_uncond.safetensors");
    let (rows, cols) = (p(&dir, "r2.npy"), p(&dir, "c2.npy"));
    ok(&["map", "--weights", &weights, "--seeds", "7", "--out", &rows]);
    ok(&[
        "map",
        "--weights",
        &weights,
        "--seeds",
        "8,9",
        "--out",
        &cols,
    ]);
    ok(&[
        "mix",
        "--weights",
        &weights,
        "--rows",
        "7",
        "--cols",
        "8,9",
        "--styles",
        "1,4-5",
        "--out",
        &mix,
    ]);
    let (shape, grid) = read_f32(Path::new(&mix));
    assert_eq!(shape, [1, 2, 6, 16]);
    let (rows, cols) = (read_f32(Path::new(&rows)).1, read_f32(Path::new(&cols)).1);
    let layer =
        |buf: &[f32], n: usize, i: usize| buf[(n * 6 + i) * 16..(n * 6 + i + 1) * 16].to_vec();
    for c in 0..2 {
        for i in 0..6 {
            let want = if [1, 4, 5].contains(&i) {
                layer(&cols, c, i)
            } else {
                layer(&rows, 0, i)
            };
            assert_eq!(layer(&grid, c, i), want, "col {c} layer {i}");
        }
    }
}

#[test]
fn w_avg_estimate() {
    let dir = tmp();
    let weights = ckpt("nvlabs_uncond.safetensors");
    let outs: Vec<String> = (0..3).map(|i| p(&dir, &format!("a{i}.npy"))).collect();
    let net = ["w-avg", "--weights", weights.as_str(), "--samples", "600"];
    ok(&[&net[..], &["--threads", "1", "--out", &outs[0]]].concat());
    ok(&[&net[..], &["--threads", "2", "--out", &outs[1]]].concat());
    ok(&[&net[..], &["--seed", "5", "--out", &outs[2]]].concat());
    let (shape, a) = read_f32(Path::new(&outs[0]));
    assert_eq!(shape, [16]);
    let b = read_f32(Path::new(&outs[1])).1;
    let c = read_f32(Path::new(&outs[2])).1;
    assert!(max_abs_diff(&a, &b) <= 1e-5);
    assert_ne!(a, c, "another seed, another estimate");
    // It is the mean w of the xoshiro z of seeds 0..600.
    let z = p(&dir, "z.npy");
    let w = p(&dir, "w.npy");
    ok(&[
        "z",
        "--seeds",
        "0-599",
        "--z-dim",
        "16",
        "--sampler",
        "xoshiro",
        "--out",
        &z,
    ]);
    ok(&[
        "map",
        "--weights",
        &weights,
        "--z",
        &z,
        "--no-broadcast",
        "--out",
        &w,
    ]);
    let w = read_f32(Path::new(&w)).1;
    let mut mean = [0.0f64; 16];
    for row in w.chunks_exact(16) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += f64::from(*v) / 600.0;
        }
    }
    for (m, v) in mean.iter().zip(&a) {
        assert!((m - f64::from(*v)).abs() <= 1e-4, "{m} vs {v}");
    }
}

#[test]
fn inspect_prints_layout_and_dims() {
    let r = ok(&["inspect", &ckpt("nvlabs_uncond.safetensors")]);
    let text = r.stdout.to_lowercase();
    for needle in [
        "nvlabs",
        "z_dim",
        "16",
        "w_dim",
        "num_ws",
        "6",
        "w_avg",
        "parameters",
        "lr_multiplier",
        "source",
    ] {
        assert!(
            text.contains(needle),
            "missing {needle:?} in:\n{}",
            r.stdout
        );
    }
    let r = ok(&["inspect", &ckpt("nvlabs_cond.safetensors")]);
    assert!(
        r.stdout.contains("c_dim") && r.stdout.contains('5'),
        "{}",
        r.stdout
    );
    let r = ok(&["inspect", &ckpt("rosinality.safetensors")]);
    assert!(
        r.stdout.to_lowercase().contains("rosinality"),
        "{}",
        r.stdout
    );
    // A file without num_ws metadata still inspects.
    let r = ok(&["inspect", &ckpt("nvlabs_bare.safetensors")]);
    assert!(r.stdout.contains("num_ws"), "{}", r.stdout);
}

// ---------------------------------------------------------------------------
// Errors: one `error:` line, non-zero exit, no output file left behind
// ---------------------------------------------------------------------------

#[test]
fn usage_errors_exit_2() {
    let dir = tmp();
    let out = p(&dir, "out.npy");
    fails_cleanly(
        &dir,
        &["map", "--seeds", "0", "--bogus", "--out", &out],
        2,
        "--bogus",
    );
    fails_cleanly(&dir, &["frobnicate"], 2, "frobnicate");
    fails_cleanly(&dir, &["z", "--seeds", "0"], 2, "--out");
    fails_cleanly(&dir, &["map", "--out", &out], 2, "required");
    fails_cleanly(
        &dir,
        &["map", "--seeds", "0", "--z", "z.npy", "--out", &out],
        2,
        "cannot be used",
    );
    fails_cleanly(
        &dir,
        &["map", "--w", "w.npy", "--class", "1", "--out", &out],
        2,
        "cannot be used",
    );
    fails_cleanly(
        &dir,
        &[
            "map",
            "--seeds",
            "0",
            "--cutoff",
            "2",
            "--no-broadcast",
            "--out",
            &out,
        ],
        2,
        "cannot be used",
    );
    for bad in [
        "5-2",
        "a",
        "1,,2",
        "-1",
        "",
        "4294967296",
        "1-4294967296",
        "1.5",
    ] {
        let line = fails_cleanly(&dir, &["z", "--seeds", bad, "--out", &out], 2, "--seeds");
        assert!(line.contains(bad), "{line}");
    }
    fails_cleanly(
        &dir,
        &["mix", "--rows", "0", "--cols", "3-1", "--out", &out],
        2,
        "--cols",
    );
    fails_cleanly(
        &dir,
        &[
            "mix", "--rows", "0", "--cols", "1", "--styles", "x", "--out", &out,
        ],
        2,
        "--styles",
    );
    for bad in ["nan", "NaN", "inf", "abc"] {
        fails_cleanly(
            &dir,
            &["map", "--seeds", "0", "--psi", bad, "--out", &out],
            2,
            "--psi",
        );
    }
    fails_cleanly(
        &dir,
        &["map", "--seeds", "0", "--psi", "-inf", "--out", &out],
        2,
        "",
    );
    fails_cleanly(
        &dir,
        &["map", "--seeds", "0", "--psi", "--out", &out],
        2,
        "--psi",
    );
    fails_cleanly(
        &dir,
        &["map", "--seeds", "0", "--num-ws", "100000", "--out", &out],
        2,
        "--num-ws",
    );
    fails_cleanly(
        &dir,
        &["map", "--seeds", "0", "--batch", "0", "--out", &out],
        2,
        "--batch",
    );
    fails_cleanly(
        &dir,
        &["z", "--seeds", "0", "--z-dim", "0", "--out", &out],
        2,
        "--z-dim",
    );
    fails_cleanly(
        &dir,
        &["z", "--seeds", "0", "--sampler", "mt", "--out", &out],
        2,
        "--sampler",
    );
    fails_cleanly(
        &dir,
        &["z", "--seeds", "0", "--dtype", "f16", "--out", &out],
        2,
        "--dtype",
    );
    fails_cleanly(
        &dir,
        &["map", "--seeds", "0", "--lr-multiplier", "0", "--out", &out],
        2,
        "--lr-multiplier",
    );
    // Help and version are not errors.
    let r = ok(&["--help"]);
    assert!(r.stdout.contains("map") && r.stdout.contains("w-avg"));
    let r = ok(&["map", "--help"]);
    for flag in [
        "--weights",
        "--seeds",
        "--z",
        "--w",
        "--c",
        "--class",
        "--psi",
        "--cutoff",
        "--num-ws",
        "--lr-multiplier",
        "--no-broadcast",
        "--batch",
        "--threads",
        "--out",
        "--quiet",
    ] {
        assert!(r.stdout.contains(flag), "map --help lacks {flag}");
    }
    ok(&["--version"]);
}

#[test]
fn bad_input_files() {
    let dir = tmp();
    let out = p(&dir, "out.npy");
    let weights = ckpt("nvlabs_uncond.safetensors");
    let map_z = |z: &str| -> Vec<String> {
        ["map", "--weights", &weights, "--z", z, "--out", &out]
            .map(String::from)
            .to_vec()
    };
    let check = |args: Vec<String>, needle: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_cleanly(&dir, &args, 1, needle)
    };
    let inputs = tempfile::tempdir().expect("dir");
    let file = |name: &str| path_str(&inputs.path().join(name));

    // Missing, empty, a directory, not .npy at all.
    let line = check(map_z(&file("missing.npy")), "missing.npy");
    assert!(line.contains("cannot open"), "{line}");
    std::fs::write(file("empty.npy"), b"").expect("write");
    check(map_z(&file("empty.npy")), "empty");
    check(map_z(&path_str(inputs.path())), "directory");
    std::fs::write(file("text.npy"), b"hello, this is not numpy").expect("write");
    check(map_z(&file("text.npy")), "not a .npy file");

    // Wrong dtype, byte order, memory order.
    let sixteen: Vec<i32> = (0..16).collect();
    write_npy(
        Path::new(&file("int.npy")),
        "<i4",
        npyz::Order::C,
        &[1, 16],
        &sixteen,
    );
    check(map_z(&file("int.npy")), "'<i4'");
    let zeros = vec![0.5f32; 32];
    write_npy(
        Path::new(&file("be.npy")),
        ">f4",
        npyz::Order::C,
        &[2, 16],
        &zeros,
    );
    check(map_z(&file("be.npy")), "'>f4'");
    write_npy(
        Path::new(&file("fortran.npy")),
        "<f4",
        npyz::Order::Fortran,
        &[2, 16],
        &zeros,
    );
    check(map_z(&file("fortran.npy")), "Fortran");

    // Wrong shapes.
    write_f32(Path::new(&file("z15.npy")), &[2, 15], &zeros[..30]);
    let line = check(
        map_z(&file("z15.npy")),
        "expected shape [N, 16], got [2, 15]",
    );
    assert!(line.contains("z15.npy"), "{line}");
    write_f32(Path::new(&file("z1d.npy")), &[16], &zeros[..16]);
    check(map_z(&file("z1d.npy")), "got [16]");
    write_f32(Path::new(&file("z0.npy")), &[0, 16], &[]);
    check(map_z(&file("z0.npy")), "no rows");

    // Truncated data, and a header announcing more than the file holds.
    write_f32(Path::new(&file("trunc.npy")), &[2, 16], &zeros);
    let bytes = std::fs::read(file("trunc.npy")).expect("read");
    std::fs::write(file("trunc.npy"), &bytes[..bytes.len() - 5]).expect("write");
    check(map_z(&file("trunc.npy")), "truncated");
    let mut huge = b"\x93NUMPY\x02\x00".to_vec();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(b"{'descr': '<f4'");
    std::fs::write(file("hdr.npy"), &huge).expect("write");
    check(map_z(&file("hdr.npy")), "truncated .npy header");
    // A shape whose element count overflows u64.
    let mut overflow = Vec::new();
    let header =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }";
    let mut text = header.to_string();
    while !(10 + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    overflow.extend_from_slice(b"\x93NUMPY\x01\x00");
    overflow.extend_from_slice(&(text.len() as u16).to_le_bytes());
    overflow.extend_from_slice(text.as_bytes());
    std::fs::write(file("overflow.npy"), &overflow).expect("write");
    check(map_z(&file("overflow.npy")), "too large");

    // NaN inside.
    let mut nan = zeros.clone();
    nan[20] = f32::NAN;
    write_f32(Path::new(&file("nan.npy")), &[2, 16], &nan);
    check(map_z(&file("nan.npy")), "row 1 holds NaN");

    // w files: wrong shape, ws with --no-broadcast.
    write_f32(Path::new(&file("w5.npy")), &[1, 5, 16], &vec![0.0; 80]);
    let w_args = |w: &str, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["map", "--weights", &weights, "--w", w, "--out", &out]
            .map(String::from)
            .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    check(
        w_args(&file("w5.npy"), &[]),
        "expected shape [N, 16] or [N, 6, 16], got [1, 5, 16]",
    );
    write_f32(Path::new(&file("ws.npy")), &[1, 6, 16], &vec![0.0; 96]);
    check(
        w_args(&file("ws.npy"), &["--no-broadcast"]),
        "--no-broadcast",
    );

    // Weights: missing, not safetensors, bare state dict without --num-ws.
    let line = check(
        [
            "map",
            "--weights",
            &file("nope.safetensors"),
            "--seeds",
            "0",
            "--out",
            &out,
        ]
        .map(String::from)
        .to_vec(),
        "nope.safetensors",
    );
    assert!(!line.contains('\n'));
    check(
        [
            "map",
            "--weights",
            &file("text.npy"),
            "--seeds",
            "0",
            "--out",
            &out,
        ]
        .map(String::from)
        .to_vec(),
        "text.npy",
    );
    check(
        [
            "map",
            "--weights",
            &ckpt("nvlabs_bare.safetensors"),
            "--seeds",
            "0",
            "--out",
            &out,
        ]
        .map(String::from)
        .to_vec(),
        "num_ws",
    );
    check(
        ["inspect", &file("missing.safetensors")]
            .map(String::from)
            .to_vec(),
        "missing.safetensors",
    );
}

#[test]
fn label_and_layer_errors() {
    let dir = tmp();
    let out = p(&dir, "out.npy");
    let cond = ckpt("nvlabs_cond.safetensors");
    let uncond = ckpt("nvlabs_uncond.safetensors");
    fails_cleanly(
        &dir,
        &["map", "--weights", &cond, "--seeds", "0", "--out", &out],
        1,
        "conditional",
    );
    fails_cleanly(
        &dir,
        &[
            "mix",
            "--weights",
            &cond,
            "--rows",
            "0",
            "--cols",
            "1",
            "--out",
            &out,
        ],
        1,
        "--class",
    );
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &cond,
            "--seeds",
            "0",
            "--class",
            "5",
            "--out",
            &out,
        ],
        1,
        "--class 5 is out of range",
    );
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &uncond,
            "--seeds",
            "0",
            "--class",
            "0",
            "--out",
            &out,
        ],
        1,
        "unconditional",
    );
    let c = dir.path().join("c.npy");
    write_f32(&c, &[2, 5], &[0.0; 10]);
    let c = path_str(&c);
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &cond,
            "--seeds",
            "0-2",
            "--c",
            &c,
            "--out",
            &out,
        ],
        1,
        "expected shape [3, 5]",
    );
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &uncond,
            "--seeds",
            "0-1",
            "--c",
            &c,
            "--out",
            &out,
        ],
        1,
        "unconditional",
    );
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &uncond,
            "--seeds",
            "0",
            "--cutoff",
            "7",
            "--out",
            &out,
        ],
        1,
        "--cutoff 7",
    );
    // Default --styles 0-6 needs num_ws >= 7; this net has 6.
    fails_cleanly(
        &dir,
        &[
            "mix",
            "--weights",
            &uncond,
            "--rows",
            "0",
            "--cols",
            "1",
            "--out",
            &out,
        ],
        1,
        "layer 6 is out of range",
    );
    fails_cleanly(
        &dir,
        &[
            "map",
            "--seeds",
            "0",
            "--lr-multiplier",
            "0.5",
            "--out",
            &out,
        ],
        1,
        "--weights",
    );
}

#[test]
fn output_errors_and_atomic_replacement() {
    let dir = tmp();
    let weights = ckpt("nvlabs_uncond.safetensors");
    // Missing directory.
    let missing = p(&dir, "no/such/dir/out.npy");
    fails_cleanly(
        &dir,
        &["z", "--seeds", "0", "--out", &missing],
        1,
        "does not exist",
    );
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &weights,
            "--seeds",
            "0",
            "--out",
            &missing,
        ],
        1,
        "does not exist",
    );
    // The output is a directory.
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    fails_cleanly(
        &dir,
        &["z", "--seeds", "0", "--out", &p(&dir, "sub")],
        1,
        "directory",
    );

    // A failed run leaves an existing output untouched; a good one replaces it.
    let out = p(&dir, "out.npy");
    std::fs::write(&out, b"old").expect("write");
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &weights,
            "--seeds",
            "0",
            "--cutoff",
            "9",
            "--out",
            &out,
        ],
        1,
        "--cutoff",
    );
    assert_eq!(std::fs::read(&out).expect("read"), b"old");
    ok(&["z", "--seeds", "0", "--z-dim", "3", "--out", &out]);
    assert_eq!(read_f32(Path::new(&out)).0, [1, 3]);
    assert_eq!(entries(dir.path()), ["out.npy", "sub"]);

    // Read-only directory (meaningless as root, who may write anyway).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).expect("mkdir");
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        let probe = ro.join("probe");
        if std::fs::write(&probe, b"x").is_ok() {
            let _ = std::fs::remove_file(&probe);
            eprintln!("skipping the read-only directory check: running as root");
        } else {
            let target = path_str(&ro.join("out.npy"));
            fails(
                "z --seeds 0 --out"
                    .split(' ')
                    .chain([target.as_str()])
                    .collect::<Vec<_>>()
                    .as_slice(),
                1,
                "Permission denied",
            );
            assert!(entries(&ro).is_empty());
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_run_and_removes_the_temporary_file() {
    let dir = tmp();
    // Far more seeds than can finish: the run is interrupted mid-way.
    let weights = ckpt("nvlabs_uncond.safetensors");
    assert_interrupt_leaves_nothing(
        &["map", "--weights", &weights, "--seeds", "0-4294967295"],
        dir.path(),
        "map",
    );
}
