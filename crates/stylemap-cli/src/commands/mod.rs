//! One module per subcommand, plus what they share: loading the network,
//! labels, progress bars, buffers.

mod bench;
mod inspect;
mod map;
mod mix;
mod wavg;
mod z;

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stylemap::{LoadOptions, Network};

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
        Command::Bench(args) => bench::run(args, cli.quiet),
    }
}

/// Loads `--weights` (with `--num-ws` / `--lr-multiplier` as fallbacks for
/// what the file's metadata lacks), or builds the built-in network and says
/// so on stderr.
fn load_network(args: &NetArgs, quiet: bool) -> Result<Network> {
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
fn num_ws(args: &NetArgs, net: &Network) -> usize {
    args.num_ws.unwrap_or(net.spec().num_ws)
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
    net: &Network,
    num_ws: usize,
    psi: f32,
    cutoff: Option<usize>,
) -> Result<()> {
    #[allow(clippy::float_cmp)]
    if psi != 1.0 {
        stylemap::broadcast::truncate(ws, net.w_avg(), num_ws, psi, cutoff)?;
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
