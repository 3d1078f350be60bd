//! One module per subcommand, plus what they share: loading the network,
//! labels, progress bars, buffers.

mod bench;
mod inspect;
mod map;
mod mix;
mod pack;
mod wavg;
mod z;

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stylemap::core::{Kernel, MappingSpec};
use stylemap::{LoadOptions, Mapper, Network, PackMapper, PackNetwork};

use crate::cli::{Cli, Command, NetArgs};
use crate::error::{Failure, Result};

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Z(args) => z::run(args, cli.quiet),
        Command::Map(args) => map::run(args, cli.quiet),
        Command::Mix(args) => mix::run(args, cli.quiet),
        Command::WAvg(args) => wavg::run(args, cli.quiet),
        Command::Inspect(args) => inspect::run(args),
        Command::Pack(args) => pack::run(args, cli.quiet),
        Command::Bench(args) => bench::run(args, cli.quiet),
    }
}

/// A network to run: f32 ([`Network`]: a checkpoint, the built-in one or
/// an f32 pack) or a reduced-precision pack.
pub enum Model {
    /// f32, runs on [`Mapper`].
    Full(Network),
    /// f16/bf16/int8 pack, runs on [`PackMapper`].
    Packed(PackNetwork),
}

impl Model {
    pub fn spec(&self) -> &MappingSpec {
        match self {
            Model::Full(n) => n.spec(),
            Model::Packed(p) => p.spec(),
        }
    }

    pub fn w_avg(&self) -> &[f32] {
        match self {
            Model::Full(n) => n.w_avg(),
            Model::Packed(p) => p.w_avg(),
        }
    }

    pub fn kernel(&self) -> Kernel {
        match self {
            Model::Full(n) => n.kernel(),
            Model::Packed(p) => p.kernel(),
        }
    }

    pub fn with_kernel(self, kernel: Kernel) -> Result<Model> {
        Ok(match self {
            Model::Full(n) => Model::Full(n.with_kernel(kernel)?),
            Model::Packed(p) => Model::Packed(p.with_kernel(kernel)?),
        })
    }

    /// `f32`, or the pack's precision.
    pub fn precision_name(&self) -> &'static str {
        match self {
            Model::Full(_) => "f32",
            Model::Packed(p) => p.precision().name(),
        }
    }

    /// A batch mapper on `threads` threads (0: all cores).
    pub fn mapper(&self, threads: usize) -> ModelMapper<'_> {
        match self {
            Model::Full(n) => ModelMapper::Full(Box::new(Mapper::new(n).with_threads(threads))),
            Model::Packed(p) => {
                ModelMapper::Packed(Box::new(PackMapper::new(p).with_threads(threads)))
            }
        }
    }
}

/// [`Mapper`] or a pack's batch map, behind one `map`.
pub enum ModelMapper<'a> {
    Full(Box<Mapper<'a>>),
    Packed(Box<PackMapper<'a>>),
}

impl ModelMapper<'_> {
    /// Selects the batched kernel of a full network (packs have their own).
    pub fn with_gemm_backend(self, backend: stylemap::batch::GemmBackend) -> Self {
        match self {
            ModelMapper::Full(m) => ModelMapper::Full(Box::new(m.with_gemm_backend(backend))),
            packed => packed,
        }
    }

    /// Whether a batch of `n` runs the AMX kernel.
    pub fn runs_amx(&self, n: usize) -> bool {
        match self {
            ModelMapper::Full(m) => m.runs_amx(n),
            ModelMapper::Packed(_) => false,
        }
    }

    /// `w[n] = mapping(z[n], c[n])` for every sample.
    pub fn map(
        &mut self,
        z: &[f32],
        c: &[f32],
        w: &mut [f32],
    ) -> std::result::Result<(), stylemap::Error> {
        match self {
            ModelMapper::Full(m) => m.map(z, c, w),
            ModelMapper::Packed(m) => m.map(z, c, w),
        }
    }
}

/// Loads `--weights`: a pack (recognised by its magic bytes) or a
/// safetensors checkpoint (with `--num-ws` / `--lr-multiplier` as fallbacks
/// for what its metadata lacks), or builds the built-in network and says so
/// on stderr. f32 packs become a [`Network`].
fn load_model(args: &NetArgs, quiet: bool) -> Result<Model> {
    if let Some(path) = &args.weights
        && stylemap::pack::is_pack_file(path)?
    {
        if args.lr_multiplier.is_some() {
            return Err(Failure::msg(format!(
                "{}: --lr-multiplier does not apply to packs (their weights are already folded)",
                path.display()
            )));
        }
        let pack = stylemap::load_pack(path)?;
        return Ok(match pack.to_network() {
            Some(net) => Model::Full(net?),
            None => Model::Packed(pack),
        });
    }
    load_checkpoint(args, quiet).map(Model::Full)
}

/// [`load_model`] for commands that need an f32 [`Network`]: a
/// reduced-precision pack is an error naming `command`.
fn load_network(args: &NetArgs, quiet: bool, command: &str) -> Result<Network> {
    match load_model(args, quiet)? {
        Model::Full(net) => Ok(net),
        Model::Packed(p) => Err(Failure::msg(format!(
            "{}: `{command}` needs f32 weights, this is a {} pack \
             (pack it from the checkpoint instead)",
            p.path().display(),
            p.precision()
        ))),
    }
}

/// A safetensors checkpoint or the built-in network.
fn load_checkpoint(args: &NetArgs, quiet: bool) -> Result<Network> {
    match &args.weights {
        Some(path) => {
            let opts = LoadOptions {
                lr_multiplier: args.lr_multiplier,
                num_ws: args.num_ws,
                ..LoadOptions::default()
            };
            Ok(stylemap::load(path, &opts)?)
        }
        None => {
            if args.lr_multiplier.is_some() {
                return Err(Failure::msg(
                    "--lr-multiplier applies to --weights files only \
                     (the built-in network uses 0.01)",
                ));
            }
            if !quiet {
                eprintln!(
                    "note: no --weights given: using the built-in UNTRAINED network \
                     (deterministic random weights, 8x512); \
                     its latents do not come from a real StyleGAN"
                );
            }
            Ok(Network::try_builtin()?)
        }
    }
}

/// Number of ws rows: `--num-ws` if given, else the network's.
fn num_ws(args: &NetArgs, spec: &MappingSpec) -> usize {
    args.num_ws.unwrap_or(spec.num_ws)
}

/// One-hot label `[c_dim]` for `--class K`, with the conditional/unconditional checks.
fn one_hot(class: Option<usize>, c_dim: usize) -> Result<Vec<f32>> {
    match class {
        None if c_dim > 0 => Err(needs_label(c_dim)),
        None => Ok(Vec::new()),
        Some(_) if c_dim == 0 => Err(Failure::msg(
            "--class given but the network is unconditional (c_dim 0)",
        )),
        Some(k) if k >= c_dim => Err(Failure::msg(format!(
            "--class {k} is out of range: the network has {c_dim} classes (0-{})",
            c_dim - 1
        ))),
        Some(k) => {
            let mut c = vec![0.0; c_dim];
            c[k] = 1.0;
            Ok(c)
        }
    }
}

fn needs_label(c_dim: usize) -> Failure {
    Failure::msg(format!(
        "the network is conditional (c_dim {c_dim}): pass --class K or --c FILE"
    ))
}

/// A zeroed buffer of `a * b` floats, or an error instead of an abort when
/// that is more than memory allows.
fn buffer<T: Default + Clone>(a: usize, b: usize, what: &str) -> Result<Vec<T>> {
    let too_big = || Failure::msg(format!("{what}: {a} x {b} values do not fit in memory"));
    let len = a.checked_mul(b).ok_or_else(too_big)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| too_big())?;
    v.resize(len, T::default());
    Ok(v)
}

/// Truncates `ws` (samples of `num_ws` rows) toward w_avg on rows `< cutoff`;
/// psi = 1 is the identity and is skipped.
fn truncate(
    ws: &mut [f32],
    w_avg: &[f32],
    num_ws: usize,
    psi: f32,
    cutoff: Option<usize>,
) -> Result<()> {
    #[allow(clippy::float_cmp)]
    if psi != 1.0 {
        stylemap::broadcast::truncate(ws, w_avg, num_ws, psi, cutoff)?;
    }
    Ok(())
}

/// A progress bar on stderr: hidden with `--quiet` or when stderr is not a
/// terminal.
fn progress(len: u64, quiet: bool, what: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40}] {human_pos}/{human_len} ({elapsed}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// A spinner on stderr for work that reports no progress (same visibility
/// rules as [`progress`]).
fn spinner(quiet: bool, what: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Converts a count that is known to fit (it indexes memory we hold) to usize.
fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
