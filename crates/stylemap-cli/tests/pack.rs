//! `stylemap pack`, packs in `map`/`bench`/`inspect`, and hostile packs:
//! every bad pack is one `error:` line, a non-zero exit, no stdout and no
//! output file left behind.

mod common;

use common::*;
use stylemap::core::pack::{CHECKSUM_OFFSET, pack_checksum};
use tempfile::TempDir;

/// Packs `weights` in `precision` (extra args appended) into `dir/name`.
fn make_pack(dir: &TempDir, weights: &str, precision: &str, name: &str, extra: &[&str]) -> String {
    let out = p(dir, name);
    let mut args = vec![
        "pack",
        "--weights",
        weights,
        "--precision",
        precision,
        "--out",
        &out,
    ];
    args.extend(extra);
    let r = ok(&args);
    assert!(r.stdout.starts_with("wrote "), "{}", r.stdout);
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn packs_map_like_their_checkpoint() {
    let dir = tmp();
    let weights = ckpt("nvlabs_uncond.safetensors");
    let ref_out = p(&dir, "ref.npy");
    ok(&[
        "map",
        "--weights",
        &weights,
        "--seeds",
        "0-7",
        "--psi",
        "0.7",
        "--out",
        &ref_out,
    ]);
    let (shape, want) = read_f32(dir.path().join("ref.npy").as_path());
    for (precision, tol, extra) in [
        ("f32", 0.0, &[][..]),
        ("f16", 1e-2, &[][..]),
        ("bf16", 8e-2, &[][..]),
        ("int8", 0.15, &["--calibration-samples", "256"][..]),
        ("int8", 0.3, &["--method", "round", "--group", "8"][..]),
    ] {
        let pack = make_pack(&dir, &weights, precision, "net.smap", extra);
        let out = p(&dir, "w.npy");
        ok(&[
            "map",
            "--weights",
            &pack,
            "--seeds",
            "0-7",
            "--psi",
            "0.7",
            "--out",
            &out,
        ]);
        let (s, got) = read_f32(dir.path().join("w.npy").as_path());
        assert_eq!(s, shape);
        let d = max_abs_diff(&got, &want);
        assert!(d <= tol, "{precision} {extra:?}: max diff {d}");
        if precision == "f32" {
            assert_eq!(got, want, "an f32 pack is the same network");
        } else {
            assert!(d > 0.0, "{precision}: suspiciously exact");
        }
    }
}

#[test]
fn eval_seeds_reports_the_error() {
    let dir = tmp();
    let out = p(&dir, "net.smap");
    let r = ok(&[
        "pack",
        "--weights",
        &ckpt("nvlabs_uncond.safetensors"),
        "--precision",
        "f16",
        "--eval-seeds",
        "0-99",
        "--out",
        &out,
    ]);
    let line = r.stdout.lines().nth(1).expect("report line");
    assert!(line.contains("over 100 seeds"), "{line}");
    assert!(line.contains("max |w - w_f32|"), "{line}");
}

#[test]
fn conditional_pack_maps_with_class() {
    let dir = tmp();
    let weights = ckpt("nvlabs_cond.safetensors");
    let pack = make_pack(&dir, &weights, "bf16", "c.smap", &[]);
    let (a, b) = (p(&dir, "a.npy"), p(&dir, "b.npy"));
    ok(&[
        "map",
        "--weights",
        &weights,
        "--seeds",
        "1,2",
        "--class",
        "1",
        "--out",
        &a,
    ]);
    ok(&[
        "map",
        "--weights",
        &pack,
        "--seeds",
        "1,2",
        "--class",
        "1",
        "--out",
        &b,
    ]);
    let (_, x) = read_f32(dir.path().join("a.npy").as_path());
    let (_, y) = read_f32(dir.path().join("b.npy").as_path());
    assert!(max_abs_diff(&x, &y) < 8e-2);
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &pack,
            "--seeds",
            "1",
            "--out",
            &p(&dir, "c.npy"),
        ],
        1,
        "conditional",
    );
}

#[test]
fn inspect_and_bench_accept_packs() {
    let dir = tmp();
    let pack = make_pack(
        &dir,
        &ckpt("nvlabs_uncond.safetensors"),
        "int8",
        "n.smap",
        &["--method", "round"],
    );
    let r = ok(&["inspect", &pack]);
    for needle in [
        "stylemap pack v1",
        "int8",
        "group of 32",
        "fc0.weight",
        "fc0.scales",
        "w_avg",
        "total:",
    ] {
        assert!(r.stdout.contains(needle), "{needle}: {}", r.stdout);
    }
    let r = ok(&[
        "bench",
        "--weights",
        &pack,
        "--batch",
        "1,4",
        "--threads",
        "1",
        "--iters",
        "2",
        "--json",
    ]);
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    assert!(
        r.stdout.contains("\"variant\": \"pack-int8-"),
        "{}",
        r.stdout
    );
}

#[test]
fn hostile_packs_fail_cleanly() {
    let dir = tmp();
    let good = make_pack(
        &dir,
        &ckpt("nvlabs_uncond.safetensors"),
        "f16",
        "good.smap",
        &[],
    );
    let bytes = std::fs::read(&good).unwrap();
    let out = p(&dir, "out.npy");
    let cases: Vec<(&str, Vec<u8>, &str)> = {
        let mut v = Vec::new();
        v.push(("truncated", bytes[..bytes.len() - 64].to_vec(), "truncated"));
        v.push(("header only", bytes[..100].to_vec(), "shorter than"));
        let mut magic = bytes.clone();
        magic[..8].copy_from_slice(b"SMAPPACX");
        // Not a pack any more: read as safetensors, which it is not either.
        v.push(("magic", magic, "bad.smap"));
        let mut crc = bytes.clone();
        let mid = crc.len() / 2;
        crc[mid] ^= 4;
        v.push(("checksum", crc, "CRC-32"));
        let reseal = |mut b: Vec<u8>| {
            let c = pack_checksum(&b);
            b[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&c.to_le_bytes());
            b
        };
        let mut prec = bytes.clone();
        prec[24] = 3; // f16 -> int8 without a group
        v.push(("precision", reseal(prec), "group size is 0"));
        let mut code = bytes.clone();
        code[24] = 200;
        v.push(("precision code", reseal(code), "unknown precision"));
        let mut version = bytes.clone();
        version[8] = 9;
        v.push(("version", reseal(version), "version 9"));
        let mut nan = bytes.clone();
        nan[128..132].copy_from_slice(&f32::NAN.to_le_bytes());
        v.push(("nan w_avg", reseal(nan), "w_avg"));
        v
    };
    let bad = dir.path().join("bad.smap");
    for (name, data, needle) in cases {
        std::fs::write(&bad, &data).unwrap();
        let bad = path_str(&bad);
        let line = fails_cleanly(
            &dir,
            &["map", "--weights", &bad, "--seeds", "0", "--out", &out],
            1,
            needle,
        );
        assert!(line.contains("bad.smap"), "{name}: {line}");
        fails_cleanly(&dir, &["inspect", &bad], 1, needle);
        fails_cleanly(
            &dir,
            &[
                "bench",
                "--weights",
                &bad,
                "--iters",
                "1",
                "--batch",
                "1",
                "--threads",
                "1",
            ],
            1,
            needle,
        );
    }
}

#[test]
fn pack_refuses_bad_requests_and_leaves_nothing() {
    let dir = tmp();
    let weights = ckpt("nvlabs_uncond.safetensors");
    let out = p(&dir, "n.smap");
    fails_cleanly(
        &dir,
        &[
            "pack",
            "--weights",
            &weights,
            "--precision",
            "int4",
            "--out",
            &out,
        ],
        2,
        "int4",
    );
    fails_cleanly(
        &dir,
        &[
            "pack",
            "--weights",
            &weights,
            "--precision",
            "int8",
            "--group",
            "0",
            "--out",
            &out,
        ],
        2,
        "--group",
    );
    let nested = p(&dir, "missing/n.smap");
    fails_cleanly(
        &dir,
        &[
            "pack",
            "--weights",
            &weights,
            "--precision",
            "f16",
            "--out",
            &nested,
        ],
        1,
        "does not exist",
    );
    // Re-packing a reduced-precision pack, and w-avg of one.
    let f16 = make_pack(&dir, &weights, "f16", "h.smap", &[]);
    fails_cleanly(
        &dir,
        &[
            "pack",
            "--weights",
            &f16,
            "--precision",
            "f16",
            "--out",
            &out,
        ],
        1,
        "f16 pack",
    );
    fails_cleanly(
        &dir,
        &["w-avg", "--weights", &f16, "--out", &p(&dir, "a.npy")],
        1,
        "f16 pack",
    );
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &f16,
            "--lr-multiplier",
            "0.1",
            "--seeds",
            "0",
            "--out",
            &p(&dir, "a.npy"),
        ],
        1,
        "already folded",
    );
}
