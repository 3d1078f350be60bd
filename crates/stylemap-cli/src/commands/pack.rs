//! `stylemap pack`: a network (checkpoint, built-in, or f32 pack) written as
//! a ready-to-run pack in f32, f16, bf16 or int8, atomically; optionally
//! its error against the f32 network on given seeds.

use std::io::Write;

use stylemap::pack::{self, Int8Method, PackNetwork, Precision, QuantOptions};

use crate::cli::{self, PackArgs, PackPrecision};
use crate::error::{Failure, Result};
use crate::interrupt;
use crate::npyio::OutputFile;

pub fn run(args: &PackArgs, quiet: bool) -> Result<()> {
    let net = super::load_network(&args.net, quiet, "pack")?;
    let mut spec = *net.spec();
    spec.num_ws = super::num_ws(&args.net, &spec);
    let net = if spec.num_ws == net.spec().num_ws {
        net
    } else {
        // --num-ws overrides what the pack records.
        let (s, params, w_avg) = (spec, net.core().params().to_vec(), net.w_avg().to_vec());
        stylemap::Network::from_parts(s, params, w_avg, net.layout())?.with_kernel(net.kernel())?
    };
    let precision = match args.precision {
        PackPrecision::F32 => Precision::F32,
        PackPrecision::F16 => Precision::F16,
        PackPrecision::Bf16 => Precision::Bf16,
        PackPrecision::Int8 => Precision::Int8,
    };
    let opts = QuantOptions {
        group: args.group,
        method: match args.method {
            cli::Int8Method::Gptq => Int8Method::Gptq,
            cli::Int8Method::Round => Int8Method::Round,
        },
        calibration_samples: args.calibration_samples,
        ..QuantOptions::new(precision)
    };
    // Fail on an unwritable destination before the long part.
    let mut out = OutputFile::create(&args.out)?;
    let _polling = interrupt::Polling::start();
    let bar = super::spinner(quiet, &format!("packing ({precision})"));
    let bytes = pack::write_pack(&net, &opts)?;
    bar.finish_and_clear();
    interrupt::check()?;
    let len = bytes.as_ref().len();
    let report = match &args.eval_seeds {
        Some(seeds) => {
            let packed =
                PackNetwork::from_aligned(bytes.clone(), &args.out)?.with_kernel(net.kernel())?;
            let bar = super::spinner(quiet, &format!("evaluating on {} seeds", seeds.len()));
            let a = pack::accuracy(&net, &packed, seeds.iter(), args.net.threads)?;
            bar.finish_and_clear();
            interrupt::check()?;
            Some(format!(
                "error vs f32 over {} seeds ({seeds}): max |w - w_f32| {:.6}, mean {:.6}; \
                 |w_f32| max {:.4}, mean {:.4}",
                a.samples, a.max_abs, a.mean_abs, a.w_max_abs, a.w_mean_abs
            ))
        }
        None => None,
    };
    out.write_bytes(bytes.as_ref())?;
    out.commit()?;
    let how = match precision {
        Precision::Int8 => {
            let method = match opts.method {
                Int8Method::Gptq => format!("GPTQ on {} latents", opts.calibration_samples),
                Int8Method::Round => "plain rounding".into(),
            };
            format!("int8, group {}, {method}", opts.group)
        }
        p => p.to_string(),
    };
    let mut stdout = std::io::stdout().lock();
    let write_err = |e: std::io::Error| Failure::msg(format!("cannot write to stdout: {e}"));
    writeln!(stdout, "wrote {}: {how}, {len} bytes", args.out.display()).map_err(write_err)?;
    if let Some(r) = report {
        writeln!(stdout, "{r}").map_err(write_err)?;
    }
    stdout.flush().map_err(write_err)
}
