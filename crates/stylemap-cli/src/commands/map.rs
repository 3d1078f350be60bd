//! `stylemap map`: seeds, z or w in; ws `[N, num_ws, w_dim]` (or w
//! `[N, w_dim]` with `--no-broadcast`) out, float32.
//!
//! Seeds and z are mapped in batches of `--batch`, then broadcast to
//! `num_ws` rows and truncated (psi, cutoff) as NVlabs' `gen_images.py` does.
//! w files skip the mapping: `[N, w_dim]` is broadcast and truncated,
//! `[N, num_ws, w_dim]` (projected latents) is truncated as is.

use super::Model;
use crate::cli::MapArgs;
use crate::error::{Failure, Result};
use crate::interrupt;
use crate::npyio::{Dtype, NpyInput, OutputFile, shape_str};
use crate::spec::IndexSpec;

/// Where the latents come from.
enum Latents<'a> {
    /// z drawn from each seed with numpy's legacy sampler.
    Seeds(Box<dyn Iterator<Item = u32> + 'a>),
    /// z from a file `[N, z_dim]`.
    Z(NpyInput),
    /// w from a file: `[N, w_dim]` (`rows == 1`) or `[N, num_ws, w_dim]`.
    W { input: NpyInput, rows: usize },
}

/// Labels for a conditional network, one row per latent.
enum Labels {
    /// Unconditional network.
    None,
    /// The same row for every latent (`--class`, or a `[1, c_dim]` file).
    Same(Vec<f32>),
    /// One row per latent from a file.
    File(Box<NpyInput>),
}

pub fn run(args: &MapArgs, quiet: bool) -> Result<()> {
    // Cheap checks on the input files first: the network may take a while to load.
    let z_file = args.z.as_deref().map(NpyInput::open).transpose()?;
    let w_file = args.w.as_deref().map(NpyInput::open).transpose()?;
    let c_file = args.c.as_deref().map(NpyInput::open).transpose()?;

    let net = super::load_model(&args.net, quiet)?;
    let spec = *net.spec();
    let (z_dim, c_dim, w_dim) = (spec.z_dim, spec.c_dim, spec.w_dim);
    let num_ws = super::num_ws(&args.net, &spec);
    if let Some(k) = args.cutoff
        && k > num_ws
    {
        return Err(Failure::msg(format!(
            "--cutoff {k} is larger than num_ws {num_ws}"
        )));
    }

    let (latents, n) = match (&args.seeds, z_file, w_file) {
        (Some(seeds), _, _) => seeds_source(seeds),
        (None, Some(z), _) => {
            let n = expect_rows(&z, &[z_dim], &format!("[N, {z_dim}]"))?;
            (Latents::Z(z), n)
        }
        (None, None, Some(w)) => {
            let (n, rows) = w_shape(&w, num_ws, w_dim)?;
            if rows > 1 && args.no_broadcast {
                return Err(Failure::msg(format!(
                    "{}: --no-broadcast needs w of shape [N, {w_dim}], got ws {}",
                    w.name(),
                    shape_str(w.shape())
                )));
            }
            (Latents::W { input: w, rows }, n)
        }
        (None, None, None) => unreachable!("clap requires one of --seeds, --z, --w"),
    };
    let mapping = !matches!(latents, Latents::W { .. });

    let labels = if !mapping {
        Labels::None
    } else if let Some(c) = c_file {
        if c_dim == 0 {
            return Err(Failure::msg(format!(
                "{}: --c given but the network is unconditional (c_dim 0)",
                c.name()
            )));
        }
        if c.dtype() != Dtype::F32 {
            return Err(Failure::msg(format!(
                "{}: labels must be float32 '<f4', got float64",
                c.name()
            )));
        }
        let rows = expect_rows(&c, &[c_dim], &format!("[{n}, {c_dim}]"))?;
        if rows == 1 && n != 1 {
            let mut c = c;
            let mut row = super::buffer(1, c_dim, "--c")?;
            c.read_f32(&mut row, c_dim)?;
            Labels::Same(row)
        } else if rows != n {
            return Err(Failure::msg(format!(
                "{}: expected shape [{n}, {c_dim}] (one label per latent) or [1, {c_dim}], got {}",
                c.name(),
                shape_str(c.shape())
            )));
        } else {
            Labels::File(Box::new(c))
        }
    } else {
        match super::one_hot(args.class, c_dim)? {
            c if c.is_empty() => Labels::None,
            c => Labels::Same(c),
        }
    };

    let run = Run {
        net: &net,
        num_ws,
        psi: args.psi,
        cutoff: args.cutoff,
        broadcast: !args.no_broadcast,
        threads: args.net.threads,
    };
    run.execute(latents, labels, n, args.batch, &args.out, quiet)
}

fn seeds_source(seeds: &IndexSpec) -> (Latents<'_>, u64) {
    (Latents::Seeds(Box::new(seeds.iter())), seeds.len())
}

/// Checks a 2-D file `[N, tail...]` and returns N (at least 1).
fn expect_rows(input: &NpyInput, tail: &[usize], expected: &str) -> Result<u64> {
    let shape = input.shape();
    let ok =
        shape.len() == 1 + tail.len() && shape[1..].iter().zip(tail).all(|(&a, &b)| a == b as u64);
    if !ok {
        return Err(Failure::msg(format!(
            "{}: expected shape {expected}, got {}",
            input.name(),
            shape_str(shape)
        )));
    }
    if shape[0] == 0 {
        return Err(Failure::msg(format!(
            "{}: holds no rows (shape {})",
            input.name(),
            shape_str(shape)
        )));
    }
    Ok(shape[0])
}

/// `[N, w_dim]` → (N, 1); `[N, num_ws, w_dim]` → (N, num_ws).
fn w_shape(w: &NpyInput, num_ws: usize, w_dim: usize) -> Result<(u64, usize)> {
    let expected = format!("[N, {w_dim}] or [N, {num_ws}, {w_dim}]");
    if w.shape().len() == 3 {
        Ok((expect_rows(w, &[num_ws, w_dim], &expected)?, num_ws))
    } else {
        Ok((expect_rows(w, &[w_dim], &expected)?, 1))
    }
}

/// The settings of one `map` run.
struct Run<'n> {
    net: &'n Model,
    num_ws: usize,
    psi: f32,
    cutoff: Option<usize>,
    broadcast: bool,
    threads: usize,
}

impl Run<'_> {
    fn execute(
        &self,
        mut latents: Latents<'_>,
        mut labels: Labels,
        n: u64,
        batch: usize,
        out_path: &std::path::Path,
        quiet: bool,
    ) -> Result<()> {
        let spec = *self.net.spec();
        let (z_dim, c_dim, w_dim, num_ws) = (spec.z_dim, spec.c_dim, spec.w_dim, self.num_ws);
        let batch = super::to_usize(n.min(batch as u64));
        let mapping = !matches!(latents, Latents::W { .. });
        let mut z = super::buffer::<f32>(if mapping { batch } else { 0 }, z_dim, "--batch")?;
        let labelled = mapping && !matches!(labels, Labels::None);
        let mut c = super::buffer::<f32>(if labelled { batch } else { 0 }, c_dim, "--batch")?;
        let mut w = super::buffer::<f32>(batch, w_dim, "--batch")?;
        let ws_len = num_ws
            .checked_mul(w_dim)
            .ok_or_else(|| Failure::msg("--num-ws is too large"))?;
        let mut ws =
            super::buffer::<f32>(if self.broadcast { batch } else { 0 }, ws_len, "--batch")?;
        if let Labels::Same(row) = &labels {
            for chunk in c.chunks_exact_mut(c_dim) {
                chunk.copy_from_slice(row);
            }
        }
        let mut mapper = self.net.mapper(self.threads);

        let mut out = OutputFile::create(out_path)?;
        let shape: Vec<u64> = if self.broadcast {
            vec![n, num_ws as u64, w_dim as u64]
        } else {
            vec![n, w_dim as u64]
        };
        let mut npy = out.npy::<f32>(Dtype::F32, &shape)?;
        let bar = super::progress(n, quiet, "mapping");
        let _polling = interrupt::Polling::start();

        let mut done = 0u64;
        while done < n {
            interrupt::check()?;
            let b = super::to_usize((n - done).min(batch as u64));
            let w = &mut w[..b * w_dim];
            match &mut latents {
                Latents::Seeds(seeds) => {
                    for row in z[..b * z_dim].chunks_exact_mut(z_dim) {
                        let seed = seeds.next().unwrap_or_default();
                        stylemap::seeds::z_from_seed_numpy(seed, row);
                    }
                }
                Latents::Z(input) => input.read_f32(&mut z[..b * z_dim], z_dim)?,
                Latents::W { input, rows: 1 } => input.read_f32(w, w_dim)?,
                Latents::W { input, .. } => input.read_f32(&mut ws[..b * ws_len], ws_len)?,
            }
            if mapping {
                let c = match &mut labels {
                    Labels::None => &c[..0],
                    Labels::Same(_) => &c[..b * c_dim],
                    Labels::File(input) => {
                        input.read_f32(&mut c[..b * c_dim], c_dim)?;
                        &c[..b * c_dim]
                    }
                };
                mapper.map(&z[..b * z_dim], c, w)?;
            }
            if !self.broadcast {
                super::truncate(w, self.net.w_avg(), 1, self.psi, None)?;
                npy.write(w)?;
            } else {
                let ws = &mut ws[..b * ws_len];
                if !matches!(latents, Latents::W { rows, .. } if rows > 1) {
                    stylemap::broadcast::broadcast(w, w_dim, num_ws, ws)?;
                }
                super::truncate(ws, self.net.w_avg(), num_ws, self.psi, self.cutoff)?;
                npy.write(ws)?;
            }
            done += b as u64;
            bar.inc(b as u64);
        }
        npy.finish()?;
        interrupt::check()?;
        bar.finish_and_clear();
        out.commit()
    }
}
