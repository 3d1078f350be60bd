//! Puts memory.x where cortex-m-rt's link.x finds it, and points
//! `include_bytes!` at the pack the firmware embeds.
//!
//! The pack is `$STYLEMAP_FW_PACK` if set (a path, relative paths from the
//! `embedded/` directory), else `embedded/target/pack/net-int8.smap`, which
//! `.ci/firmware.sh` writes with `stylemap pack --precision int8`. The build
//! script parses it once (with the same `stylemap-core`) so a bad pack fails
//! the build, and writes its sizes as constants (`pack_dims.rs`) that size
//! the firmware's static buffers exactly.
use std::{env, fs, path::PathBuf};

use stylemap_core::pack::Pack;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let here = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");

    println!("cargo:rerun-if-env-changed=STYLEMAP_FW_PACK");
    let embedded = here.parent().expect("m4f/ is inside embedded/");
    let pack = match env::var_os("STYLEMAP_FW_PACK") {
        Some(p) => embedded.join(p),
        None => embedded.join("target/pack/net-int8.smap"),
    };
    println!("cargo:rerun-if-changed={}", pack.display());
    let bytes = fs::read(&pack).unwrap_or_else(|e| {
        panic!(
            "cannot read the pack to embed, {}: {e}\n\
             Write it first (from the repository root):\n  \
             cargo run --release -p stylemap-cli -- pack --precision int8 --out embedded/target/pack/net-int8.smap\n\
             or set STYLEMAP_FW_PACK to another pack (see embedded/README.md).",
            pack.display()
        )
    });
    // Parse from an 8-byte aligned copy (a Vec<u8> promises only 1).
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    let aligned = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()];
    aligned.copy_from_slice(&bytes);
    let parsed = Pack::parse(&*aligned)
        .unwrap_or_else(|e| panic!("{} is not a valid pack: {e}", pack.display()));
    let spec = parsed.spec();
    let dims = format!(
        "// Sizes of the embedded pack ({}), written by build.rs.\n\
         /// z_dim of the embedded pack.\npub const Z_DIM: usize = {};\n\
         /// Pack::scratch_len() of the embedded pack.\npub const SCRATCH_LEN: usize = {};\n\
         /// w_dim of the embedded pack.\npub const W_DIM: usize = {};\n\
         /// num_ws * w_dim of the embedded pack.\npub const WS_LEN: usize = {};\n",
        pack.display(),
        spec.z_dim,
        parsed.scratch_len(),
        spec.w_dim,
        spec.ws_len(),
    );
    fs::write(out.join("pack_dims.rs"), dims).expect("write pack_dims.rs");
    println!(
        "cargo:rustc-env=STYLEMAP_FW_PACK_FILE={}",
        pack.canonicalize().expect("the pack exists").display()
    );
}
