//! Command-line definition (clap derive).

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::spec::IndexSpec;

/// z, w and ws for StyleGAN's mapping network, without PyTorch.
///
/// Without --weights, commands use a built-in deterministic network
/// (NVlabs initialisation, 8x512, num_ws 18). It is untrained: useful to try
/// the tool and for tests, not for real images.
#[derive(Debug, Parser)]
#[command(name = "stylemap", version, about, long_about = None)]
pub struct Cli {
    /// No progress bars and no notes on stderr (errors are still printed).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Latents z for seeds, as NVlabs' scripts draw them: [N, z_dim].
    Z(ZArgs),
    /// Map seeds or z (or truncate/broadcast given w) to ws: [N, num_ws, w_dim].
    Map(MapArgs),
    /// Style-mixing grid (NVlabs style_mixing.py): [R, C, num_ws, w_dim].
    Mix(MixArgs),
    /// Estimate w_avg, the mean w of M random latents: [w_dim].
    #[command(name = "w-avg")]
    WAvg(WAvgArgs),
    /// Describe a weights file or pack: layout, dims, w_avg, sections, size.
    Inspect(InspectArgs),
    /// Write a ready-to-run pack (f32, f16, bf16 or int8) for firmware or fast mapping.
    Pack(PackArgs),
    /// Time the network on this device: µs per sample per batch size and thread count.
    Bench(BenchArgs),
}

/// Which random stream turns a seed into z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Sampler {
    /// numpy's np.random.RandomState(seed).randn(1, z_dim), bit for bit (NVlabs' scripts).
    Numpy,
    /// Box-Muller over xoshiro256++ seeded with the seed (fast; not numpy-compatible).
    Xoshiro,
}

/// Element type of the z file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ZDtype {
    /// float32 (each value computed in float64, then rounded).
    F32,
    /// float64 (numpy's values exactly, for --sampler numpy).
    F64,
}

/// `stylemap z`
#[derive(Debug, Args)]
pub struct ZArgs {
    /// Seeds, e.g. 0-15, 1,5,9 or 0-3,10 (each in 0..=4294967295; duplicates kept).
    #[arg(long, value_name = "SPEC", value_parser = parse_spec, allow_negative_numbers = true)]
    pub seeds: IndexSpec,

    /// Length of each z (at most 1048576).
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = parse_z_dim)]
    pub z_dim: usize,

    /// Random stream.
    #[arg(long, value_enum, default_value_t = Sampler::Numpy)]
    pub sampler: Sampler,

    /// Element type of the output.
    #[arg(long, value_enum, default_value_t = ZDtype::F32)]
    pub dtype: ZDtype,

    /// Output .npy file, shape [N, z_dim].
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Options shared by the commands that run a network.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Weights (.safetensors or a pack from `stylemap pack`, told apart by
    /// content). Default: the built-in untrained network.
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,

    /// Number of ws rows (synthesis inputs), overriding the file's metadata.
    #[arg(long, value_name = "N", value_parser = parse_num_ws)]
    pub num_ws: Option<usize>,

    /// lr_multiplier of the fc layers when the file's metadata lacks it (default 0.01).
    #[arg(long, value_name = "L", value_parser = parse_lr)]
    pub lr_multiplier: Option<f64>,

    /// Worker threads (0 = all cores).
    #[arg(long, value_name = "T", default_value_t = 0)]
    pub threads: usize,
}

/// `stylemap map`
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("input").required(true).args(["seeds", "z", "w"])))]
pub struct MapArgs {
    #[command(flatten)]
    pub net: NetArgs,

    /// Seeds to map (z drawn as NVlabs' gen_images.py does).
    #[arg(long, value_name = "SPEC", value_parser = parse_spec, allow_negative_numbers = true)]
    pub seeds: Option<IndexSpec>,

    /// Latents to map: float32 or float64 .npy of shape [N, z_dim].
    #[arg(long, value_name = "FILE")]
    pub z: Option<PathBuf>,

    /// Latents already in w space (e.g. projected): .npy [N, w_dim] or
    /// [N, num_ws, w_dim]; mapping is skipped, truncation and broadcast apply.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["c", "class"])]
    pub w: Option<PathBuf>,

    /// Labels for a conditional network: float32 .npy [N, c_dim] (or [1, c_dim] for all).
    #[arg(long, value_name = "FILE", conflicts_with = "class")]
    pub c: Option<PathBuf>,

    /// Class index for a conditional network (one-hot label for every latent).
    #[arg(long, value_name = "K")]
    pub class: Option<usize>,

    /// Truncation psi: ws = w_avg + psi * (w - w_avg). 1 = none, 0 = w_avg.
    #[arg(long, value_name = "P", default_value_t = 1.0, value_parser = parse_psi, allow_negative_numbers = true)]
    pub psi: f32,

    /// Truncate only layers 0..K-1 (default: all layers, as gen_images.py).
    #[arg(long, value_name = "K", conflicts_with = "no_broadcast")]
    pub cutoff: Option<usize>,

    /// Write w [N, w_dim] instead of ws [N, num_ws, w_dim] (psi still applies).
    #[arg(long)]
    pub no_broadcast: bool,

    /// Latents mapped per batch.
    #[arg(long, value_name = "B", default_value_t = 256, value_parser = parse_positive)]
    pub batch: usize,

    /// Output .npy file (float32).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `stylemap mix`
#[derive(Debug, Args)]
pub struct MixArgs {
    #[command(flatten)]
    pub net: NetArgs,

    /// Row seeds (the base of each ws).
    #[arg(long, value_name = "SPEC", value_parser = parse_spec, allow_negative_numbers = true)]
    pub rows: IndexSpec,

    /// Column seeds (the listed layers come from these).
    #[arg(long, value_name = "SPEC", value_parser = parse_spec, allow_negative_numbers = true)]
    pub cols: IndexSpec,

    /// Layers taken from the column seed.
    #[arg(long, value_name = "SPEC", default_value = "0-6", value_parser = parse_spec, allow_negative_numbers = true)]
    pub styles: IndexSpec,

    /// Truncation psi, applied to all layers before mixing.
    #[arg(long, value_name = "P", default_value_t = 1.0, value_parser = parse_psi, allow_negative_numbers = true)]
    pub psi: f32,

    /// Class index for a conditional network.
    #[arg(long, value_name = "K")]
    pub class: Option<usize>,

    /// Output .npy file, float32 [R, C, num_ws, w_dim].
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `stylemap w-avg`
#[derive(Debug, Args)]
pub struct WAvgArgs {
    #[command(flatten)]
    pub net: NetArgs,

    /// Number of random latents to average.
    #[arg(long, value_name = "M", default_value_t = 10_000, value_parser = parse_positive)]
    pub samples: usize,

    /// Seed of the random latents.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,

    /// Output .npy file, float32 [w_dim].
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `stylemap inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Weights file (.safetensors) or pack.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Weight precision of a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PackPrecision {
    /// float32: the folded network as is (no error).
    F32,
    /// IEEE half, round-to-nearest-even.
    F16,
    /// bfloat16, round-to-nearest-even.
    Bf16,
    /// int8 with an f32 scale per row and group of --group inputs.
    Int8,
}

/// How int8 weights are rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Int8Method {
    /// GPTQ error compensation calibrated on the network's own activations.
    Gptq,
    /// Plain rounding to the nearest step (for comparison).
    Round,
}

/// `stylemap pack`
#[derive(Debug, Args)]
pub struct PackArgs {
    #[command(flatten)]
    pub net: NetArgs,

    /// Weight precision.
    #[arg(long, value_enum)]
    pub precision: PackPrecision,

    /// int8: inputs per scale (a value >= the layer width: one scale per row).
    #[arg(long, value_name = "N", default_value_t = stylemap::pack::DEFAULT_INT8_GROUP, value_parser = parse_group)]
    pub group: usize,

    /// int8 rounding method.
    #[arg(long, value_enum, default_value_t = Int8Method::Gptq)]
    pub method: Int8Method,

    /// int8 GPTQ: calibration latents (numpy seeds from 2147483648 on).
    #[arg(long, value_name = "N", default_value_t = stylemap::pack::DEFAULT_CALIBRATION_SAMPLES, value_parser = parse_calibration)]
    pub calibration_samples: usize,

    /// After writing, map these seeds with the pack and the f32 network and
    /// print max/mean |w - w_f32| and |w| (e.g. 0-9999).
    #[arg(long, value_name = "SPEC", value_parser = parse_spec, allow_negative_numbers = true)]
    pub eval_seeds: Option<IndexSpec>,

    /// Output pack file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `stylemap bench`
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("budget").args(["iters", "seconds"])))]
pub struct BenchArgs {
    /// Weights (.safetensors or a pack). Default: the built-in untrained network (same shapes as StyleGAN2).
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,

    /// lr_multiplier of the fc layers when the file's metadata lacks it (default 0.01).
    #[arg(long, value_name = "L", value_parser = parse_lr)]
    pub lr_multiplier: Option<f64>,

    /// Batch sizes, comma-separated.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "1,8,64,512", value_parser = parse_positive)]
    pub batch: Vec<usize>,

    /// Thread counts, comma-separated.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "1,2", value_parser = parse_positive)]
    pub threads: Vec<usize>,

    /// GEMV kernel: scalar, portable, avx2, avx512 or neon (default: the fastest this CPU runs).
    #[arg(long, value_name = "NAME", value_parser = parse_kernel)]
    pub kernel: Option<stylemap::core::Kernel>,

    /// Batched kernel of a full network: auto (AMX from 32 samples where the
    /// CPU has it and the kernel is avx512, else packed), packed, amx or sgemm.
    #[arg(long, value_name = "NAME", default_value = "auto", value_parser = parse_gemm)]
    pub gemm: stylemap::batch::GemmBackend,

    /// Timed calls per case, after warm-up.
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub iters: Option<usize>,

    /// Seconds of timed calls per case, after warm-up (default 0.3).
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    pub seconds: Option<f64>,

    /// One JSON object per line instead of the table:
    /// {"variant": ..., "threads": T, "batch": B, "us_per_sample": X}.
    #[arg(long)]
    pub json: bool,
}

fn parse_spec(s: &str) -> Result<IndexSpec, String> {
    IndexSpec::parse(s).map_err(|e| e.to_string())
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_group(s: &str) -> Result<usize, String> {
    match parse_positive(s)? {
        n if n > u32::MAX as usize => Err(format!("must be at most {}", u32::MAX)),
        n => Ok(n),
    }
}

fn parse_calibration(s: &str) -> Result<usize, String> {
    const MAX: usize = 1 << 20;
    match parse_positive(s)? {
        n if n > MAX => Err(format!("must be at most {MAX}")),
        n => Ok(n),
    }
}

fn parse_z_dim(s: &str) -> Result<usize, String> {
    const MAX: usize = 1 << 20;
    match parse_positive(s)? {
        n if n > MAX => Err(format!("must be at most {MAX}")),
        n => Ok(n),
    }
}

fn parse_num_ws(s: &str) -> Result<usize, String> {
    let max = stylemap::load::MAX_NUM_WS;
    match parse_positive(s)? {
        n if n > max => Err(format!("must be at most {max}")),
        n => Ok(n),
    }
}

fn parse_psi(s: &str) -> Result<f32, String> {
    let v: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err("must be a finite number".into())
    }
}

fn parse_lr(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err("must be a finite number above 0".into())
    }
}

fn parse_kernel(s: &str) -> Result<stylemap::core::Kernel, String> {
    stylemap::core::Kernel::from_name(s.trim()).ok_or_else(|| {
        let names: Vec<&str> = stylemap::core::Kernel::ALL
            .iter()
            .map(|k| k.name())
            .collect();
        format!("unknown kernel '{s}' (one of: {})", names.join(", "))
    })
}

fn parse_gemm(s: &str) -> Result<stylemap::batch::GemmBackend, String> {
    use stylemap::batch::GemmBackend;
    match s.trim() {
        "auto" => Ok(GemmBackend::Auto),
        "packed" => Ok(GemmBackend::Packed),
        "amx" => Ok(GemmBackend::Amx),
        "sgemm" => Ok(GemmBackend::Sgemm),
        _ => Err(format!(
            "unknown batched kernel '{s}' (one of: auto, packed, amx, sgemm)"
        )),
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v > 0.0 && v <= 3600.0 {
        Ok(v)
    } else {
        Err("must be a number of seconds above 0 and at most 3600".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn value_parsers() {
        assert!(parse_psi("nan").is_err());
        assert!(parse_psi("inf").is_err());
        assert_eq!(parse_psi("-0.5"), Ok(-0.5));
        assert!(parse_positive("0").is_err());
        assert!(parse_num_ws("18").is_ok());
        assert!(parse_num_ws("100000").is_err());
        assert!(parse_lr("0").is_err());
        assert_eq!(parse_lr("0.01"), Ok(0.01));
    }
}
