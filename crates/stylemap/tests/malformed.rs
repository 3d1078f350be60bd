//! One test per class of bad checkpoint: each is a clear one-line error that
//! names the file and the problem, never a panic.

mod common;

use std::path::Path;

use common::{RawTensor, fixture, meta_refs, read_raw, safetensors_bytes, write_temp};
use proptest::prelude::*;
use stylemap::{Error, LoadOptions, inspect, load};

/// The good NVlabs fixture's tensors and metadata.
fn good() -> (Vec<RawTensor>, Vec<(String, String)>) {
    read_raw(&fixture("nvlabs_uncond.safetensors"))
}

fn good_bytes() -> Vec<u8> {
    std::fs::read(fixture("nvlabs_uncond.safetensors")).unwrap()
}

fn file_of(tensors: &[RawTensor], meta: &[(String, String)]) -> std::path::PathBuf {
    write_temp(
        "bad.safetensors",
        &safetensors_bytes(tensors, &meta_refs(meta)),
    )
}

/// Loads `path`, expects a one-line error naming the file and containing
/// every `needle`; `inspect` must fail too unless `load_only`.
fn expect_error(path: &Path, needles: &[&str], load_only: bool) -> Error {
    let err = load(path, &LoadOptions::default()).expect_err("load must fail");
    let msg = err.to_string();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(msg.contains(name), "error does not name the file: {msg}");
    assert!(!msg.contains('\n'), "error is not one line: {msg}");
    for n in needles {
        assert!(msg.contains(n), "error {msg:?} lacks {n:?}");
    }
    if !load_only {
        let e2 = inspect(path).expect_err("inspect must fail");
        assert_eq!(e2.to_string(), msg, "inspect and load agree");
    }
    err
}

fn set_f32(t: &mut RawTensor, i: usize, v: f32) {
    t.data[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
}

fn find<'a>(ts: &'a mut [RawTensor], name: &str) -> &'a mut RawTensor {
    ts.iter_mut().find(|t| t.name == name).unwrap()
}

#[test]
fn rebuilt_good_file_still_loads() {
    let (t, m) = good();
    load(&file_of(&t, &m), &LoadOptions::default()).unwrap();
}

#[test]
fn missing_key() {
    let (mut t, m) = good();
    t.retain(|t| t.name != "mapping.fc1.bias");
    expect_error(&file_of(&t, &m), &["`mapping.fc1.bias`", "missing"], false);
    // A gap in the layer list is not silently a shorter network.
    let (mut t, m) = good();
    t.retain(|t| !t.name.starts_with("mapping.fc1."));
    expect_error(
        &file_of(&t, &m),
        &["`mapping.fc1.weight`", "missing"],
        false,
    );
    // Half an embedding.
    let (mut t, m) = read_raw(&fixture("nvlabs_cond.safetensors"));
    t.retain(|t| t.name != "embed.bias");
    expect_error(&file_of(&t, &m), &["`embed.bias`", "missing"], false);
    // No mapping network at all.
    let (mut t, m) = good();
    t.retain(|t| t.name.starts_with("synthesis."));
    expect_error(&file_of(&t, &m), &["no mapping network"], false);
}

#[test]
fn wrong_shape() {
    let (mut t, m) = good();
    let b = find(&mut t, "mapping.fc0.bias");
    b.shape = vec![23];
    b.data.truncate(23 * 4);
    expect_error(
        &file_of(&t, &m),
        &["`mapping.fc0.bias`", "shape [23]", "expected [24]"],
        false,
    );

    let (mut t, m) = good();
    find(&mut t, "mapping.fc1.weight").shape = vec![24 * 24];
    expect_error(
        &file_of(&t, &m),
        &["`mapping.fc1.weight`", "shape [576]"],
        false,
    );

    let (mut t, m) = good();
    find(&mut t, "mapping.w_avg").shape = vec![2, 8];
    expect_error(
        &file_of(&t, &m),
        &["`mapping.w_avg`", "shape [2, 8]", "[16]"],
        false,
    );
}

#[test]
fn dims_that_do_not_chain() {
    // fc1 takes 20 inputs, fc0 gives 24.
    let (mut t, m) = good();
    let w = find(&mut t, "mapping.fc1.weight");
    w.shape = vec![24, 20];
    w.data.truncate(24 * 20 * 4);
    expect_error(
        &file_of(&t, &m),
        &[
            "dims do not chain",
            "`mapping.fc1.weight`",
            "`mapping.fc0.weight`",
        ],
        false,
    );
    // Hidden widths differ although they chain: 16 -> 24 -> 20 -> 16.
    let (mut t, m) = good();
    let w1 = find(&mut t, "mapping.fc1.weight");
    w1.shape = vec![20, 24];
    w1.data.truncate(20 * 24 * 4);
    let b1 = find(&mut t, "mapping.fc1.bias");
    b1.shape = vec![20];
    b1.data.truncate(20 * 4);
    let w2 = find(&mut t, "mapping.fc2.weight");
    w2.shape = vec![16, 20];
    w2.data.truncate(16 * 20 * 4);
    expect_error(
        &file_of(&t, &m),
        &["hidden widths differ", "`mapping.fc1.weight`"],
        false,
    );
    // An embedding as wide as fc0's input leaves no room for z.
    let (mut t, m) = read_raw(&fixture("nvlabs_cond.safetensors"));
    let e = find(&mut t, "embed.weight");
    e.shape = vec![28, 5];
    e.data = vec![0; 28 * 5 * 4];
    find(&mut t, "embed.bias").data = vec![0; 28 * 4];
    find(&mut t, "embed.bias").shape = vec![28];
    expect_error(
        &file_of(&t, &m),
        &["dims do not chain", "`fc0.weight`"],
        false,
    );
}

#[test]
fn wrong_dtype() {
    let (mut t, m) = good();
    find(&mut t, "mapping.fc2.bias").dtype = "I32".into();
    expect_error(
        &file_of(&t, &m),
        &["`mapping.fc2.bias`", "dtype I32", "F32, F16 and BF16"],
        false,
    );
    let (mut t, m) = good();
    let w = find(&mut t, "mapping.w_avg");
    w.dtype = "F64".into();
    w.shape = vec![8];
    expect_error(&file_of(&t, &m), &["`mapping.w_avg`", "dtype F64"], false);
    // A non-float dtype on an ignored tensor is fine.
    let (mut t, m) = good();
    find(&mut t, "synthesis.b4.const").dtype = "I32".into();
    load(&file_of(&t, &m), &LoadOptions::default()).unwrap();
}

#[test]
fn nan_or_inf_in_a_parameter() {
    let (mut t, m) = good();
    set_f32(find(&mut t, "mapping.fc1.weight"), 37, f32::NAN);
    let p = file_of(&t, &m);
    expect_error(&p, &["`mapping.fc1.weight`", "NaN", "element 37"], true);
    inspect(&p).unwrap(); // inspect reads no tensor data

    let (mut t, m) = good();
    set_f32(find(&mut t, "mapping.fc2.bias"), 0, f32::NEG_INFINITY);
    expect_error(&file_of(&t, &m), &["`mapping.fc2.bias`", "infinity"], true);

    let (mut t, m) = good();
    set_f32(find(&mut t, "mapping.w_avg"), 3, f32::INFINITY);
    expect_error(&file_of(&t, &m), &["`mapping.w_avg`", "infinity"], true);

    // f16 infinity (0x7c00).
    let (mut t, m) = read_raw(&fixture("nvlabs_f16.safetensors"));
    find(&mut t, "fc0.weight").data[10..12].copy_from_slice(&0x7c00u16.to_le_bytes());
    expect_error(
        &file_of(&t, &m),
        &["`fc0.weight`", "infinity", "element 5"],
        true,
    );
}

#[test]
fn truncated_file() {
    let bytes = good_bytes();
    let p = write_temp("truncated.safetensors", &bytes[..bytes.len() - 10]);
    expect_error(&p, &["truncated"], false);
    // Cut inside the header.
    let p = write_temp("cut-header.safetensors", &bytes[..40]);
    expect_error(&p, &["header length", "exceeds"], false);
    // Shorter than the length field; empty.
    let p = write_temp("tiny.safetensors", &bytes[..5]);
    expect_error(&p, &["5 bytes"], false);
    let p = write_temp("empty.safetensors", &[]);
    expect_error(&p, &["0 bytes"], false);
    // Trailing garbage after the data.
    let mut long = bytes.clone();
    long.extend_from_slice(b"junk");
    let p = write_temp("trailing.safetensors", &long);
    expect_error(&p, &["trailing bytes"], false);
}

#[test]
fn oversized_or_garbage_header() {
    let bytes = good_bytes();
    // A header length of 2^40 (or u64::MAX) must not allocate anything.
    for n in [1u64 << 40, u64::MAX] {
        let mut b = bytes.clone();
        b[..8].copy_from_slice(&n.to_le_bytes());
        let p = write_temp("huge-header.safetensors", &b);
        expect_error(&p, &["header length", "exceeds"], false);
    }
    // Not JSON.
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut b = bytes.clone();
    for x in &mut b[8..8 + n] {
        *x = b'#';
    }
    let p = write_temp("garbage.safetensors", &b);
    expect_error(&p, &["invalid safetensors header"], false);
    // Not UTF-8.
    let mut b = bytes.clone();
    b[9] = 0xff;
    expect_error(
        &write_temp("utf8.safetensors", &b),
        &["invalid safetensors header"],
        false,
    );
    // JSON whose offsets overlap / lie.
    let mut t = good().0;
    let fake = safetensors_bytes(&t, &[]);
    t[0].data.pop();
    let mut lying = safetensors_bytes(&t, &[]);
    // Same header as a consistent file, data one byte short.
    lying.truncate(lying.len().min(fake.len() - 1));
    expect_error(&write_temp("lying.safetensors", &lying), &[], false);
    // A random binary file.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    expect_error(&write_temp("junk.safetensors", &junk), &[], false);
}

/// Text from the file (a tensor name, the file's own name) with control
/// characters in it is escaped, so the message stays one line (found by
/// the `safetensors` fuzz target: a newline in a tensor name whose offsets
/// the safetensors parser rejects).
#[test]
fn control_characters_from_the_file_are_escaped() {
    let header = r#"{"fc0.bi\nas\u001b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(&[0; 12]);
    let p = write_temp("name.safetensors", &b);
    expect_error(&p, &["`fc0.bi\\nas\\u{1b}`"], false);

    let p = write_temp("two\nlines.safetensors", b"not a checkpoint");
    for msg in [
        load(&p, &LoadOptions::default()).unwrap_err().to_string(),
        inspect(&p).unwrap_err().to_string(),
    ] {
        assert!(msg.contains("two\\nlines.safetensors: "), "{msg}");
        assert!(!msg.contains(char::is_control), "{msg:?}");
    }
}

#[test]
fn bad_metadata() {
    let (t, _) = good();
    for (k, v, needle) in [
        ("num_ws", "abc", "`num_ws`"),
        ("num_ws", "0", "`num_ws`"),
        ("num_ws", "99999999999", "`num_ws`"),
        ("resolution", "100", "`resolution`"),
        ("resolution", "2", "`resolution`"),
        ("lr_multiplier", "-1", "`lr_multiplier`"),
        ("lr_multiplier", "nan", "`lr_multiplier`"),
    ] {
        let m = vec![(k.to_string(), v.to_string())];
        expect_error(&file_of(&t, &m), &[needle], false);
    }
    // resolution 1024 -> 18, and a metadata value with a newline is escaped.
    let m = vec![
        ("resolution".to_string(), "1024".to_string()),
        ("source".to_string(), "two\nlines".to_string()),
    ];
    let p = file_of(&t, &m);
    assert_eq!(load(&p, &LoadOptions::default()).unwrap().spec().num_ws, 18);
    let text = inspect(&p).unwrap().to_string();
    assert!(text.contains(r#""two\nlines""#), "{text}");
}

#[test]
fn ambiguous_layouts() {
    let (mut t, m) = good();
    let (ro, _) = read_raw(&fixture("rosinality.safetensors"));
    t.extend(ro);
    expect_error(&file_of(&t, &m), &["several mapping networks"], false);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random corruption (byte flips, truncation) never panics: load either
    /// succeeds or returns an error naming the file.
    #[test]
    fn corrupted_files_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut b = good_bytes();
        for (i, v) in flips {
            let i = i.index(b.len());
            b[i] ^= v;
        }
        if let Some(c) = cut {
            b.truncate(c.index(b.len()));
        }
        let p = write_temp("fuzz.safetensors", &b);
        if let Err(e) = load(&p, &LoadOptions::default()) {
            let msg = e.to_string();
            prop_assert!(msg.contains("fuzz.safetensors") || matches!(e, Error::Invalid(_)), "{}", msg);
            prop_assert!(!msg.contains('\n'));
        }
        let _ = inspect(&p);
        std::fs::remove_file(&p).ok();
    }
}
