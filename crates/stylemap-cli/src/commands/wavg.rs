//! `stylemap w-avg`: the mean w of M random latents, [w_dim] float32.

use crate::cli::WAvgArgs;
use crate::error::Result;
use crate::npyio::{Dtype, OutputFile};

pub fn run(args: &WAvgArgs, quiet: bool) -> Result<()> {
    let net = super::load_network(&args.net, quiet, "w-avg")?;
    // Fail on an unwritable destination before the long part.
    let mut out = OutputFile::create(&args.out)?;
    let bar = super::spinner(
        quiet,
        &format!("estimating w_avg from {} samples", args.samples),
    );
    let w_avg = stylemap::wavg::estimate_w_avg(&net, args.samples, args.seed, args.net.threads)?;
    bar.finish_and_clear();
    let mut npy = out.npy::<f32>(Dtype::F32, &[w_avg.len() as u64])?;
    npy.write(&w_avg)?;
    npy.finish()?;
    out.commit()
}
