//! `stylemap mix`: the style-mixing grid of NVlabs' `style_mixing.py`.
//!
//! Every row and column seed is mapped (numpy z, psi 1), truncated on all
//! layers by `--psi`, and for each (row, col) the output is the row's ws with
//! the `--styles` layers replaced by the column's: `[R, C, num_ws, w_dim]`.

use super::{Model, ModelMapper};
use crate::cli::MixArgs;
use crate::error::{Failure, Result};
use crate::interrupt;
use crate::npyio::{Dtype, OutputFile};
use crate::spec::IndexSpec;

/// Seeds mapped per batch.
const BATCH: usize = 256;

pub fn run(args: &MixArgs, quiet: bool) -> Result<()> {
    let net = super::load_model(&args.net, quiet)?;
    let spec = *net.spec();
    let w_dim = spec.w_dim;
    let num_ws = super::num_ws(&args.net, &spec);
    if args.styles.max() as usize >= num_ws {
        return Err(Failure::msg(format!(
            "--styles {}: layer {} is out of range (num_ws {num_ws}: layers 0-{})",
            args.styles,
            args.styles.max(),
            num_ws - 1
        )));
    }
    let layers: Vec<usize> = args.styles.iter().map(|l| l as usize).collect();
    let label = super::one_hot(args.class, spec.c_dim)?;

    let (r, c) = (args.rows.len(), args.cols.len());
    let shape = [r, c, num_ws as u64, w_dim as u64];
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Failure::msg(format!("a {r} x {c} grid is too large")))?;

    let mut out = OutputFile::create(&args.out)?;
    let bar = super::progress(r + c, quiet, "mixing");
    let _polling = interrupt::Polling::start();
    let mut mapper = net.mapper(args.net.threads);
    let mut job = Mapping {
        net: &net,
        label: &label,
        psi: args.psi,
        bar: &bar,
    };

    // Truncated w of every column (all ws rows of a column are this w).
    let cols_w = job.map_all(&mut mapper, &args.cols)?;

    let ws_len = num_ws * w_dim;
    let mut row_ws = super::buffer::<f32>(1, ws_len, "--num-ws")?;
    let mut col_ws = super::buffer::<f32>(1, ws_len, "--num-ws")?;
    let mut mixed = super::buffer::<f32>(1, ws_len, "--num-ws")?;
    let mut npy = out.npy::<f32>(Dtype::F32, &shape)?;
    let mut seeds = args.rows.iter();
    let mut left = super::to_usize(r);
    while left > 0 {
        interrupt::check()?;
        let b = left.min(BATCH);
        let rows_w = job.map_seeds(&mut mapper, &mut seeds, b)?;
        for row_w in rows_w.chunks_exact(w_dim) {
            stylemap::broadcast::broadcast(row_w, w_dim, num_ws, &mut row_ws)?;
            for col_w in cols_w.chunks_exact(w_dim) {
                stylemap::broadcast::broadcast(col_w, w_dim, num_ws, &mut col_ws)?;
                stylemap::broadcast::mix_layers(&row_ws, &col_ws, &layers, num_ws, &mut mixed)?;
                npy.write(&mixed)?;
            }
        }
        left -= b;
    }
    npy.finish()?;
    interrupt::check()?;
    bar.finish_and_clear();
    out.commit()
}

/// Maps seeds to truncated w.
struct Mapping<'a> {
    net: &'a Model,
    label: &'a [f32],
    psi: f32,
    bar: &'a indicatif::ProgressBar,
}

impl Mapping<'_> {
    /// w of every seed of `spec`, truncated: `[len, w_dim]`.
    fn map_all(&mut self, mapper: &mut ModelMapper<'_>, spec: &IndexSpec) -> Result<Vec<f32>> {
        let w_dim = self.net.spec().w_dim;
        let n = super::to_usize(spec.len());
        let mut all = Vec::new();
        all.try_reserve_exact(n.saturating_mul(w_dim))
            .map_err(|_| {
                Failure::msg(format!(
                    "--cols {spec}: {n} column seeds do not fit in memory"
                ))
            })?;
        let mut seeds = spec.iter();
        let mut left = n;
        while left > 0 {
            interrupt::check()?;
            let b = left.min(BATCH);
            all.extend_from_slice(&self.map_seeds(mapper, &mut seeds, b)?);
            left -= b;
        }
        Ok(all)
    }

    /// w of the next `b` seeds, truncated: `[b, w_dim]`.
    fn map_seeds(
        &mut self,
        mapper: &mut ModelMapper<'_>,
        seeds: &mut impl Iterator<Item = u32>,
        b: usize,
    ) -> Result<Vec<f32>> {
        let spec = *self.net.spec();
        let mut z = super::buffer::<f32>(b, spec.z_dim, "seeds")?;
        for row in z.chunks_exact_mut(spec.z_dim) {
            stylemap::seeds::z_from_seed_numpy(seeds.next().unwrap_or_default(), row);
        }
        let mut c = Vec::with_capacity(b * self.label.len());
        for _ in 0..b {
            c.extend_from_slice(self.label);
        }
        let mut w = super::buffer::<f32>(b, spec.w_dim, "seeds")?;
        mapper.map(&z, &c, &mut w)?;
        // All layers are truncated, so truncating w once equals truncating
        // each of its num_ws copies.
        super::truncate(&mut w, self.net.w_avg(), 1, self.psi, None)?;
        self.bar.inc(b as u64);
        Ok(w)
    }
}
