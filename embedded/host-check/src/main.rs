//! Prints, on the host, the lines the firmware prints, computed by the same
//! code ([`stylemap_embedded_common::run`]) over the same network and seeds,
//! so CI can compare them with what QEMU printed.
//!
//! ```text
//! stylemap-host-check m0        # the Cortex-M0 firmware's lines
//! stylemap-host-check m4f       # the Cortex-M4F firmware's lines
//! stylemap-host-check m4f PACK  # ... for another pack than the firmware's default
//! stylemap-host-check ws-npy WS.npy   # the same checksums over ws written by `stylemap map`
//! ```
//!
//! `ws-npy` reads a little-endian float32 `.npy` of shape `[N, num_ws, w_dim]`
//! (what `stylemap map --seeds 0-.. --psi 0.7` writes) and prints one
//! `seed i fnv1a64 ..` line per row and a `checksum` line, hashed exactly as
//! the firmware hashes its ws: a check against the std crate's own path.
//!
//! Without PACK, `m4f` reads the pack the firmware's build script embeds:
//! `$STYLEMAP_FW_PACK` (relative paths from `embedded/`), else
//! `embedded/target/pack/net-int8.smap`.
use std::io::Write as _;
use std::process::ExitCode;

use std::path::{Path, PathBuf};

use stylemap_core::pack::Pack;
use stylemap_embedded_common::{self as common, Buffers, RunError, synth};

/// The pack m4f/build.rs embeds (same rule).
fn default_pack() -> PathBuf {
    let embedded = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host-check/ is inside embedded/")
        .to_path_buf();
    match std::env::var_os("STYLEMAP_FW_PACK") {
        Some(p) => embedded.join(p),
        None => embedded.join("target/pack/net-int8.smap"),
    }
}

fn run_pack(label: &str, path: &Path, seeds: std::ops::Range<u32>) -> Result<u64, RunError> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("cannot read {}: {e}", path.display());
        std::process::exit(2)
    });
    // An 8-byte aligned copy: a Vec<u8> promises alignment 1 only.
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    let aligned = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()];
    aligned.copy_from_slice(&bytes);
    let pack = Pack::parse(&*aligned)?;
    run_net(label, &pack, seeds)
}

/// `std::io::Stdout` as a `core::fmt::Write`.
struct Stdout(std::io::Stdout);

impl std::fmt::Write for Stdout {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| std::fmt::Error)
    }
}

fn run_synth(
    label: &str,
    spec: stylemap_core::MappingSpec,
    weight_seed: u32,
    seeds: std::ops::Range<u32>,
) -> Result<u64, RunError> {
    let mut params = vec![0.0f32; spec.param_len()];
    let mut w_avg = vec![0.0f32; spec.w_dim];
    synth::fill(&spec, weight_seed, &mut params, &mut w_avg)?;
    let net = stylemap_core::MappingNetwork::new(spec, &params[..], &w_avg[..])?
        .with_kernel(common::KERNEL)?;
    run_net(label, &net, seeds)
}

fn run_net<M: common::Mapper>(
    label: &str,
    net: &M,
    seeds: std::ops::Range<u32>,
) -> Result<u64, RunError> {
    let d = net.dims();
    let (mut z, mut scratch) = (vec![0.0; d.z_dim], vec![0.0; d.scratch_len]);
    let (mut w, mut ws) = (vec![0.0; d.w_dim], vec![0.0; d.ws_len()]);
    let bufs = Buffers {
        z: &mut z,
        scratch: &mut scratch,
        w: &mut w,
        ws: &mut ws,
    };
    common::run(label, net, seeds, bufs, &mut Stdout(std::io::stdout()))
}

/// The float32 payload of a C-order `.npy` file (format versions 1 to 3).
fn npy_f32(bytes: &[u8]) -> Result<(Vec<f32>, usize), String> {
    let magic = b"\x93NUMPY";
    if bytes.len() < 10 || &bytes[..6] != magic {
        return Err("not a .npy file".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => {
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (usize::try_from(n).map_err(|e| e.to_string())?, 12)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("bad .npy header")?;
    let compact: String = header.chars().filter(|c| !c.is_whitespace()).collect();
    if !compact.contains("'descr':'<f4'") || !compact.contains("'fortran_order':False") {
        return Err(format!(
            "expected C-order little-endian float32, header {header}"
        ));
    }
    let shape = compact
        .split("'shape':(")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("no shape in .npy header")?;
    let rows = shape
        .split(',')
        .next()
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or("bad shape in .npy header")?;
    let data = &bytes[start + header_len..];
    if !data.len().is_multiple_of(4) {
        return Err("payload is not a whole number of float32".into());
    }
    let values = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((values, rows))
}

/// Prints the checksums of `stylemap map`'s ws output, as the firmware would.
fn ws_npy(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (values, rows) = npy_f32(&bytes)?;
    if rows == 0 || !values.len().is_multiple_of(rows) {
        return Err(format!(
            "{} values do not split into {rows} rows",
            values.len()
        ));
    }
    let mut total = common::Fnv1a64::new();
    for (i, ws) in values.chunks_exact(values.len() / rows).enumerate() {
        let mut one = common::Fnv1a64::new();
        one.write_f32s(ws);
        total.write_f32s(ws);
        println!("seed {i} fnv1a64 {:#018x}", one.finish());
    }
    println!(
        "checksum npy seeds 0..{rows} fnv1a64 {:#018x}",
        total.finish()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["m0"] => run_synth(
            "m0",
            synth::M0_SPEC,
            synth::M0_WEIGHT_SEED,
            common::M0_SEEDS,
        ),
        ["m4f"] => run_pack("m4f", &default_pack(), common::M4F_SEEDS),
        ["m4f", pack] => run_pack("m4f", Path::new(pack), common::M4F_SEEDS),
        ["ws-npy", file] => {
            return match ws_npy(Path::new(file)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {
            eprintln!("usage: stylemap-host-check m0 | m4f [PACK] | ws-npy WS.npy");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
