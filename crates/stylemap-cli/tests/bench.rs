//! `stylemap bench`: the output formats and the argument checks. Runs use
//! `--iters 1` and small batches; nothing here asserts a timing.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_stylemap");

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("STYLEMAP_KERNEL")
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(args: &[&str]) -> Run {
    let r = run(args);
    assert_eq!(r.code, Some(0), "stylemap {args:?} failed: {}", r.stderr);
    r
}

fn checkpoint(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/checkpoints")
        .join(name)
        .to_str()
        .expect("UTF-8 path")
        .to_owned()
}

/// Parses `--json` output: one object per line with exactly the four keys.
fn cases(stdout: &str) -> Vec<(String, u64, u64, f64)> {
    stdout
        .lines()
        .map(|line| {
            assert!(
                line.starts_with("{\"variant\": \"mapper-"),
                "unexpected line {line:?}"
            );
            let v: Value = serde_json::from_str(line).expect("each line is JSON");
            let obj = v.as_object().expect("an object");
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                ["batch", "threads", "us_per_sample", "variant"],
                "{line}"
            );
            let us = v["us_per_sample"].as_f64().expect("a number");
            assert!(us.is_finite() && us > 0.0, "{line}");
            (
                v["variant"].as_str().expect("a string").to_owned(),
                v["threads"].as_u64().expect("an integer"),
                v["batch"].as_u64().expect("an integer"),
                us,
            )
        })
        .collect()
}

#[test]
fn json_one_line_per_case_in_order() {
    let r = ok(&[
        "bench",
        "--json",
        "--batch",
        "1,3",
        "--threads",
        "1,2",
        "--iters",
        "1",
        "--quiet",
    ]);
    let got = cases(&r.stdout);
    let order: Vec<(u64, u64)> = got.iter().map(|c| (c.1, c.2)).collect();
    assert_eq!(order, [(1, 1), (1, 3), (2, 1), (2, 3)]);
    let variant = &got[0].0;
    assert!(got.iter().all(|c| &c.0 == variant), "{got:?}");
    assert!(r.stderr.is_empty(), "--quiet: {}", r.stderr);
}

#[test]
fn table_has_header_and_rows() {
    let r = ok(&["bench", "--batch", "2", "--threads", "1", "--iters", "1"]);
    let mut lines = r.stdout.lines();
    let header = lines.next().expect("a header");
    for col in ["variant", "threads", "batch", "µs/sample", "samples/s"] {
        assert!(header.contains(col), "{header}");
    }
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 1, "{}", r.stdout);
    let row = &rows[0];
    assert_eq!(row.len(), 5, "{row:?}");
    assert!(row[0].starts_with("mapper-"), "{row:?}");
    assert_eq!((row[1], row[2]), ("1", "2"));
    for cell in &row[3..] {
        let v: f64 = cell.parse().expect("a number");
        assert!(v.is_finite() && v > 0.0, "{row:?}");
    }
    // Without --weights the built-in network is announced on stderr.
    assert!(r.stderr.contains("built-in"), "{}", r.stderr);
}

#[test]
fn forced_kernel_names_the_variant() {
    let r = ok(&[
        "bench",
        "--kernel",
        "scalar",
        "--json",
        "--batch",
        "1",
        "--threads",
        "1",
        "--iters",
        "1",
        "-q",
    ]);
    let got = cases(&r.stdout);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "mapper-scalar");
}

#[test]
fn weights_file_and_seconds_budget() {
    let weights = checkpoint("nvlabs_uncond.safetensors");
    let r = ok(&[
        "bench",
        "--weights",
        &weights,
        "--json",
        "--batch",
        "1,4",
        "--threads",
        "1",
        "--seconds",
        "0.01",
    ]);
    assert_eq!(cases(&r.stdout).len(), 2);
    // A conditional network is timed with a one-hot label.
    let weights = checkpoint("nvlabs_cond.safetensors");
    let r = ok(&[
        "bench",
        "--weights",
        &weights,
        "--json",
        "--batch",
        "2",
        "--threads",
        "2",
        "--iters",
        "1",
    ]);
    assert_eq!(cases(&r.stdout).len(), 1);
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["bench", "--kernel", "nope"][..],
        &["bench", "--batch", "0"],
        &["bench", "--batch", "1,x"],
        &["bench", "--threads", "0"],
        &["bench", "--iters", "0"],
        &["bench", "--seconds", "-1"],
        &["bench", "--iters", "1", "--seconds", "1"],
    ] {
        let r = run(args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("error: "), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn unavailable_kernel_is_a_runtime_error() {
    let missing = if cfg!(target_arch = "x86_64") {
        "neon"
    } else {
        "avx512"
    };
    let r = run(&["bench", "--kernel", missing, "--iters", "1", "-q"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("not available"), "{}", r.stderr);
}
