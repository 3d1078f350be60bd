//! The CLI under hostile input: what `cli.rs` does not already cover.
//! Every failure is one `error:` line, a non-zero exit, no stdout, and no
//! output or temporary file left behind (`fails_cleanly`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn malformed_layer_and_row_specs_are_usage_errors() {
    let dir = tmp();
    let out = p(&dir, "out.npy");
    let weights = ckpt("nvlabs_uncond.safetensors");
    for flag in ["--rows", "--cols", "--styles"] {
        for bad in [
            "5-2",
            "a",
            "1,,2",
            "-1",
            "",
            "4294967296",
            "0-4294967296",
            "1.5",
            ",",
            "3-",
        ] {
            let mut args = vec![
                "mix",
                "--weights",
                &weights,
                "--rows",
                "0",
                "--cols",
                "1",
                "--styles",
                "0",
            ];
            let i = args.iter().position(|a| *a == flag).expect("flag") + 1;
            args[i] = bad;
            args.extend(["--out", &out]);
            let line = fails_cleanly(&dir, &args, 2, flag);
            assert!(line.contains(bad), "{line}");
        }
    }
    // Layer indices that parse but are out of range are runtime errors.
    fails_cleanly(
        &dir,
        &[
            "mix",
            "--weights",
            &weights,
            "--rows",
            "0",
            "--cols",
            "1",
            "--styles",
            "4294967295",
            "--out",
            &out,
        ],
        1,
        "out of range",
    );
}

#[test]
fn bad_numbers_in_flags() {
    let dir = tmp();
    let out = p(&dir, "out.npy");
    let cond = ckpt("nvlabs_cond.safetensors");
    // (clap reads a leading '-' as a flag: the message names the value.)
    let needle =
        |bad: &'static str, flag: &'static str| if bad.starts_with('-') { bad } else { flag };
    for bad in ["-1", "abc", "99999999999999999999999", "1.0", ""] {
        fails_cleanly(
            &dir,
            &[
                "map",
                "--weights",
                &cond,
                "--seeds",
                "0",
                "--class",
                bad,
                "--out",
                &out,
            ],
            2,
            needle(bad, "--class"),
        );
    }
    for bad in ["-1", "abc", "1e3", "18446744073709551616"] {
        fails_cleanly(
            &dir,
            &["map", "--seeds", "0", "--threads", bad, "--out", &out],
            2,
            needle(bad, "--threads"),
        );
    }
    // 1e39 parses to inf in f32: refused like inf.
    for bad in ["1e39", "-1e39", "nan(0x1)"] {
        fails_cleanly(
            &dir,
            &["map", "--seeds", "0", "--psi", bad, "--out", &out],
            2,
            "--psi",
        );
    }
    // Unknown flags and subcommands, flags of another subcommand.
    fails_cleanly(
        &dir,
        &["z", "--seeds", "0", "--psi", "0.5", "--out", &out],
        2,
        "--psi",
    );
    fails_cleanly(&dir, &["--bogus"], 2, "--bogus");
    fails_cleanly(
        &dir,
        &["map", "--seeds=0", "--out", &out, "extra"],
        2,
        "extra",
    );
}

#[test]
fn psi_so_large_that_ws_overflows_is_an_error_and_writes_nothing() {
    let dir = tmp();
    let out = p(&dir, "out.npy");
    let weights = ckpt("nvlabs_uncond.safetensors");
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &weights,
            "--seeds",
            "0-2",
            "--psi",
            "3e38",
            "--out",
            &out,
        ],
        1,
        "overflow",
    );
    // A large but representable extrapolation is fine.
    ok(&[
        "map",
        "--weights",
        &weights,
        "--seeds",
        "0",
        "--psi",
        "1e30",
        "--out",
        &out,
    ]);
    let (_, ws) = read_f32(Path::new(&out));
    assert!(ws.iter().all(|v| v.is_finite()));
}

#[test]
fn unusable_input_files() {
    let dir = tmp();
    let out = p(&dir, "out.npy");
    let inputs = tmp();
    let file = |name: &str| path_str(&inputs.path().join(name));
    let weights = ckpt("nvlabs_uncond.safetensors");

    // Empty, garbage, directory and truncated checkpoints.
    std::fs::write(file("empty.safetensors"), b"").expect("write");
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &file("empty.safetensors"),
            "--seeds",
            "0",
            "--out",
            &out,
        ],
        1,
        "0 bytes",
    );
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &path_str(inputs.path()),
            "--seeds",
            "0",
            "--out",
            &out,
        ],
        1,
        "directory",
    );
    let good = std::fs::read(&weights).expect("read");
    std::fs::write(file("cut.safetensors"), &good[..good.len() / 2]).expect("write");
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &file("cut.safetensors"),
            "--seeds",
            "0",
            "--out",
            &out,
        ],
        1,
        "truncated",
    );
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(file("hdr.safetensors"), &huge).expect("write");
    fails_cleanly(
        &dir,
        &["inspect", &file("hdr.safetensors")],
        1,
        "header length",
    );
    // An f64 weight file: wrong dtype names the tensor.
    let mut f64ish = good.clone();
    let text = String::from_utf8_lossy(&f64ish[8..200]).into_owned();
    if let Some(at) = text.find("\"F32\"") {
        f64ish[8 + at..8 + at + 5].copy_from_slice(b"\"I32\"");
        std::fs::write(file("i32.safetensors"), &f64ish).expect("write");
        fails_cleanly(
            &dir,
            &[
                "map",
                "--weights",
                &file("i32.safetensors"),
                "--seeds",
                "0",
                "--out",
                &out,
            ],
            1,
            "dtype",
        );
    }

    // .npy inputs: f64 labels, a 3-d z, a label file of the wrong width.
    let z = file("z.npy");
    write_f32(Path::new(&z), &[2, 2, 4], &[0.5; 16]);
    fails_cleanly(
        &dir,
        &["map", "--weights", &weights, "--z", &z, "--out", &out],
        1,
        "expected shape",
    );
    let cond = ckpt("nvlabs_cond.safetensors");
    let c64 = file("c64.npy");
    write_f64(Path::new(&c64), &[1, 5], &[1.0, 0.0, 0.0, 0.0, 0.0]);
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &cond,
            "--seeds",
            "0",
            "--c",
            &c64,
            "--out",
            &out,
        ],
        1,
        "c64.npy",
    );
    let c3 = file("c3.npy");
    write_f32(Path::new(&c3), &[1, 3], &[1.0, 0.0, 0.0]);
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &cond,
            "--seeds",
            "0",
            "--c",
            &c3,
            "--out",
            &out,
        ],
        1,
        "c3.npy",
    );
    // A label with an infinity.
    let cinf = file("cinf.npy");
    write_f32(
        Path::new(&cinf),
        &[1, 5],
        &[1.0, 0.0, f32::INFINITY, 0.0, 0.0],
    );
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &cond,
            "--seeds",
            "0",
            "--c",
            &cinf,
            "--out",
            &out,
        ],
        1,
        "infinity",
    );
    // /proc files report size 0: refused as empty, without reading.
    fails_cleanly(
        &dir,
        &[
            "map",
            "--weights",
            &weights,
            "--z",
            "/proc/self/status",
            "--out",
            &out,
        ],
        1,
        "empty",
    );
}

/// Pipes must not hang the CLI: opening a FIFO for reading blocks until a
/// writer appears, so inputs are checked to be regular files first.
#[cfg(unix)]
#[test]
fn fifo_inputs_and_outputs_are_refused_without_blocking() {
    let dir = tmp();
    let out = p(&dir, "out.npy");
    let inputs = tmp();
    let fifo = inputs.path().join("pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let fifo = path_str(&fifo);
    let weights = ckpt("nvlabs_uncond.safetensors");
    let started = Instant::now();
    fails_cleanly(
        &dir,
        &["map", "--weights", &weights, "--z", &fifo, "--out", &out],
        1,
        "not a regular file",
    );
    fails_cleanly(
        &dir,
        &["map", "--weights", &fifo, "--seeds", "0", "--out", &out],
        1,
        "not a regular file",
    );
    fails_cleanly(&dir, &["inspect", &fifo], 1, "not a regular file");
    // As the output: renaming over it would replace the FIFO (or, for
    // --out /dev/null as root, the device node) with a regular file.
    let line = fails(
        &["z", "--seeds", "0", "--out", &fifo],
        1,
        "not a regular file",
    );
    assert!(line.contains("pipe"), "{line}");
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata(&fifo)
            .expect("still there")
            .file_type()
            .is_fifo()
    );
    assert_eq!(entries(inputs.path()), ["pipe"]);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn unwritable_output_locations() {
    let dir = tmp();
    // A regular file used as a directory.
    let plain = p(&dir, "plain");
    std::fs::write(&plain, b"x").expect("write");
    let inside = format!("{plain}/out.npy");
    let line = fails_cleanly(
        &dir,
        &["z", "--seeds", "0", "--out", &inside],
        1,
        "not a directory",
    );
    assert!(line.contains("plain"), "{line}");
    // Inside /proc: the directory exists, but nothing can be created there,
    // not even by root.
    let line = fails(
        &["z", "--seeds", "0", "--out", "/proc/stylemap-test-out.npy"],
        1,
        "cannot write",
    );
    assert!(line.contains("/proc"), "{line}");
    assert!(!Path::new("/proc/stylemap-test-out.npy").exists());
    // /proc/self is read-only for new files too (a different errno).
    let weights = ckpt("nvlabs_uncond.safetensors");
    fails(
        &[
            "w-avg",
            "--weights",
            &weights,
            "--samples",
            "2",
            "--out",
            "/proc/self/out.npy",
        ],
        1,
        "cannot write",
    );
    // No file name at all.
    fails(&["z", "--seeds", "0", "--out", "/"], 1, "");
    fails(&["z", "--seeds", "0", "--out", ""], 2, "");
    assert_eq!(entries(dir.path()), ["plain"]);
}

/// SIGINT during the runs that `cli.rs` does not interrupt (`z`, `mix`,
/// and `w-avg`, which is interrupted outside a polling loop): one line,
/// exit 130, no output or temporary file.
#[cfg(unix)]
#[test]
fn sigint_mid_run_leaves_nothing() {
    let weights = ckpt("nvlabs_uncond.safetensors");
    let cases: [(&str, Vec<&str>); 3] = [
        ("z", vec!["z", "--seeds", "0-4294967295", "--z-dim", "64"]),
        (
            "mix",
            vec![
                "mix",
                "--weights",
                &weights,
                "--rows",
                "0-4294967295",
                "--cols",
                "0",
                "--styles",
                "0",
            ],
        ),
        (
            "w-avg",
            vec!["w-avg", "--weights", &weights, "--samples", "100000000000"],
        ),
    ];
    for (what, args) in cases {
        let dir = tmp();
        assert_interrupt_leaves_nothing(&args, dir.path(), what);
    }
}
