//! Puts memory.x where cortex-m-rt's link.x finds it, and writes the
//! synthetic network's bytes (computed on the host by the common crate,
//! exactly as the host check computes them) for `include_bytes!`.
use std::{env, fs, path::PathBuf};

use stylemap_embedded_common::synth;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");

    let spec = synth::M0_SPEC;
    let mut params = vec![0.0f32; spec.param_len()];
    let mut w_avg = vec![0.0f32; spec.w_dim];
    synth::fill(&spec, synth::M0_WEIGHT_SEED, &mut params, &mut w_avg).expect("synthetic network");
    let bytes: Vec<u8> = params
        .iter()
        .chain(&w_avg)
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(bytes.len(), synth::blob_len(&spec));
    fs::write(out.join("net-m0.bin"), bytes).expect("write the network");
}
