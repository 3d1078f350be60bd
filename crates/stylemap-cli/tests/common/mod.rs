//! Helpers shared by the CLI integration tests: run the built binary, read
//! and write `.npy` files, find the fixtures.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use npyz::WriterBuilder;
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_stylemap");

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A checkpoint fixture of `tests/fixtures/checkpoints/`.
pub fn ckpt(name: &str) -> String {
    path_str(&root().join("tests/fixtures/checkpoints").join(name))
}

/// `reference.json` of the checkpoint fixtures.
pub fn reference() -> serde_json::Value {
    let p = root().join("tests/fixtures/checkpoints/reference.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("reference.json parses")
}

/// A path as a `&str`-able String (test paths are UTF-8).
pub fn path_str(p: &Path) -> String {
    p.to_str().expect("UTF-8 path").to_owned()
}

/// What a run printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `stylemap args...`.
pub fn run<S: AsRef<str>>(args: &[S]) -> Run {
    Command::new(BIN)
        .args(args.iter().map(AsRef::as_ref))
        .output()
        .expect("the binary runs")
        .into()
}

/// Runs and asserts success.
pub fn ok<S: AsRef<str>>(args: &[S]) -> Run {
    let r = run(args);
    let shown: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    assert_eq!(r.code, Some(0), "stylemap {shown:?} failed: {}", r.stderr);
    r
}

/// Runs and asserts failure with exit `code` and one `error:` line on stderr
/// that contains `needle`. Returns the line.
pub fn fails<S: AsRef<str>>(args: &[S], code: i32, needle: &str) -> String {
    let r = run(args);
    let shown: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    assert_eq!(
        r.code,
        Some(code),
        "stylemap {shown:?}: expected exit {code}; stderr: {}",
        r.stderr
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stylemap {shown:?}: expected one line on stderr, got {:?}",
        r.stderr
    );
    assert!(
        lines[0].starts_with("error: "),
        "stylemap {shown:?}: {:?}",
        lines[0]
    );
    assert!(
        lines[0].contains(needle),
        "stylemap {shown:?}: {:?} does not mention {needle:?}",
        lines[0]
    );
    assert!(r.stdout.is_empty(), "stdout: {:?}", r.stdout);
    lines[0].to_owned()
}

/// A fresh temporary directory, removed when dropped.
pub fn tmp() -> TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// `dir/name` as a string argument.
pub fn p(dir: &TempDir, name: &str) -> String {
    path_str(&dir.path().join(name))
}

/// Runs a command that must fail (exit `code`, one `error:` line containing
/// `needle`, returned) and checks that it left no file behind in `dir`: no
/// output, no temporary file.
pub fn fails_cleanly(dir: &TempDir, args: &[&str], code: i32, needle: &str) -> String {
    let before = entries(dir.path());
    let line = fails(args, code, needle);
    assert_eq!(entries(dir.path()), before, "{args:?} left files behind");
    line
}

/// Names of the entries of `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("readable dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A shape and float32 values read from an `.npy` file (asserts `<f4`, C order).
pub fn read_f32(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    assert_eq!(npy.dtype().descr(), "'<f4'", "{}", path.display());
    assert_eq!(npy.order(), npyz::Order::C);
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().expect("f32 data"))
}

/// Like [`read_f32`] for `<f8`.
pub fn read_f64(path: &Path) -> (Vec<u64>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    assert_eq!(npy.dtype().descr(), "'<f8'", "{}", path.display());
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f64>().expect("f64 data"))
}

/// Writes an `.npy` of `descr` (e.g. `<f4`, `>f4`, `<i4`) and `order`.
pub fn write_npy<T: npyz::Serialize>(
    path: &Path,
    descr: &str,
    order: npyz::Order,
    shape: &[u64],
    data: &[T],
) {
    let dtype = npyz::DType::Plain(descr.parse().expect("type string"));
    let mut buf = Vec::new();
    {
        let mut w = npyz::WriteOptions::<T>::new()
            .dtype(dtype)
            .order(order)
            .shape(shape)
            .writer(&mut buf)
            .begin_nd()
            .expect("header");
        for v in data {
            w.push(v).expect("push");
        }
        w.finish().expect("finish");
    }
    std::fs::write(path, buf).expect("write npy");
}

/// Little-endian float32, C order.
pub fn write_f32(path: &Path, shape: &[u64], data: &[f32]) {
    write_npy(path, "<f4", npyz::Order::C, shape, data);
}

/// Little-endian float64, C order.
pub fn write_f64(path: &Path, shape: &[u64], data: &[f64]) {
    write_npy(path, "<f8", npyz::Order::C, shape, data);
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A JSON array of numbers as f64.
pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// Runs `stylemap ARGS --out DIR/big.npy` on work far too large to finish,
/// sends SIGINT once its temporary output exists, and asserts the run stops
/// with exit code 130, `error: interrupted`, and leaves `dir` empty.
#[cfg(unix)]
pub fn assert_interrupt_leaves_nothing<S: AsRef<str>>(args: &[S], dir: &Path, what: &str) {
    use std::time::{Duration, Instant};
    let out = path_str(&dir.join("big.npy"));
    let mut child = Command::new(BIN)
        .args(args.iter().map(AsRef::as_ref))
        .args(["--out", &out])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let tmp_name = format!(".big.npy.tmp-{}", child.id());
    let start = Instant::now();
    while !dir.join(&tmp_name).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: no temporary file appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(150));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: did not stop after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let run: Run = child.wait_with_output().expect("output").into();
    assert_eq!(code, Some(130), "{what}: {}", run.stderr);
    assert_eq!(run.stderr.trim(), "error: interrupted", "{what}");
    assert!(entries(dir).is_empty(), "{what}: {:?}", entries(dir));
}
