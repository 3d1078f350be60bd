//! `stylemap bench`: times `Mapper::map` (or a pack's batch map) on this
//! device, without cargo.
//!
//! For each thread count and batch size: one mapper per thread count
//! (its worker pool is kept across batch sizes, as an application would keep
//! it), warm-up calls, then timed calls; the median call time divided by the
//! batch is the result. Latents are Box-Muller over xoshiro256++ (seeds
//! 0..B), not timed; a conditional network gets the one-hot label of class 0.
//!
//! Output: a table (variant, threads, batch, µs/sample, samples/s), or with
//! `--json` one line per case, exactly
//! `{"variant": "mapper-<kernel>", "threads": T, "batch": B, "us_per_sample": X}`
//! (`mapper-amx` for the cases the AMX kernel ran, see `--gemm`)
//! (`pack-<precision>-<kernel>` for f16/bf16/int8 packs, which run on
//! `stylemap::PackMapper`: panels split between a persistent pool's threads,
//! the batch split from `PACK_SPLIT_THRESHOLD` on).

use std::io::Write;
use std::time::{Duration, Instant};

use stylemap::batch::GemmBackend;
use stylemap::core::Kernel;
use stylemap::core::sampler::z_from_seed_xoshiro;

use crate::cli::{BenchArgs, NetArgs};
use crate::error::{Failure, Result};

/// Timed seconds per case when neither `--iters` nor `--seconds` is given.
pub const DEFAULT_SECONDS: f64 = 0.3;

/// Warm-up calls before the timed ones (at least; `--seconds` also warms up
/// for a tenth of its budget).
const WARMUP_CALLS: usize = 2;

/// Fewest timed calls per case with `--seconds`.
const MIN_TIMED_CALLS: usize = 3;

/// How long each case is timed.
#[derive(Clone, Copy, Debug)]
enum Budget {
    /// Exactly this many timed calls.
    Iters(usize),
    /// Timed calls until this much time has passed.
    Time(Duration),
}

/// One measured case.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// `mapper-<kernel>` or `pack-<precision>-<kernel>`.
    pub variant: String,
    /// Threads given to the mapper.
    pub threads: usize,
    /// Samples per call.
    pub batch: usize,
    /// Median microseconds per call, divided by the batch.
    pub us_per_sample: f64,
}

impl Case {
    /// The `--json` line (no trailing newline).
    pub fn json(&self) -> String {
        format!(
            "{{\"variant\": \"{}\", \"threads\": {}, \"batch\": {}, \"us_per_sample\": {:.3}}}",
            json_escape(&self.variant),
            self.threads,
            self.batch,
            self.us_per_sample
        )
    }
}

pub fn run(args: &BenchArgs, quiet: bool) -> Result<()> {
    let net_args = NetArgs {
        weights: args.weights.clone(),
        num_ws: None,
        lr_multiplier: args.lr_multiplier,
        threads: 0,
    };
    let mut net = super::load_model(&net_args, quiet)?;
    if let Some(kernel) = args.kernel {
        if !kernel.is_available() {
            return Err(Failure::msg(format!(
                "kernel {} is not available on this CPU (available: {})",
                kernel.name(),
                available_kernels()
            )));
        }
        net = net.with_kernel(kernel)?;
    }
    let full = matches!(net, super::Model::Full(_));
    if args.gemm == GemmBackend::Amx && !(full && stylemap::core::kernels::amx::is_available()) {
        return Err(Failure::msg(if full {
            "--gemm amx: this CPU (or OS) cannot run AMX tiles".to_string()
        } else {
            "--gemm applies to full networks, not packs".to_string()
        }));
    }
    let budget = match (args.iters, args.seconds) {
        (Some(n), _) => Budget::Iters(n),
        (None, Some(s)) => Budget::Time(Duration::from_secs_f64(s)),
        (None, None) => Budget::Time(Duration::from_secs_f64(DEFAULT_SECONDS)),
    };
    let variant = match &net {
        super::Model::Full(_) => format!("mapper-{}", net.kernel().name()),
        super::Model::Packed(p) => format!("pack-{}-{}", p.precision(), net.kernel().name()),
    };
    let s = *net.spec();
    if !quiet && !args.json {
        let how = match budget {
            Budget::Iters(n) => format!("median of {n} timed calls"),
            Budget::Time(d) => format!("median of the calls in {:.2} s", d.as_secs_f64()),
        };
        eprintln!(
            "timing {} weights: kernel {}, {} layers, z {} -> w {}, {how} per case after warm-up",
            net.precision_name(),
            net.kernel().name(),
            s.num_layers,
            s.z_dim,
            s.w_dim
        );
    }

    let mut out = std::io::stdout().lock();
    let write_err = |e: std::io::Error| Failure::msg(format!("cannot write to stdout: {e}"));
    if !args.json {
        writeln!(
            out,
            "{:<18} {:>7} {:>6} {:>12} {:>12}",
            "variant", "threads", "batch", "µs/sample", "samples/s"
        )
        .map_err(write_err)?;
    }
    for &threads in &args.threads {
        let mut mapper = net.mapper(threads).with_gemm_backend(args.gemm);
        for &batch in &args.batch {
            let mut z = super::buffer::<f32>(batch, s.z_dim, "z")?;
            for (seed, row) in z.chunks_exact_mut(s.z_dim).enumerate() {
                z_from_seed_xoshiro(seed as u64, row);
            }
            let mut c = super::buffer::<f32>(batch, s.c_dim, "c")?;
            if s.c_dim > 0 {
                for row in c.chunks_exact_mut(s.c_dim) {
                    row[0] = 1.0;
                }
            }
            let mut w = super::buffer::<f32>(batch, s.w_dim, "w")?;
            let secs = time_median(budget, || mapper.map(&z, &c, &mut w))?;
            let case = Case {
                variant: if mapper.runs_amx(batch) {
                    "mapper-amx".to_string()
                } else {
                    variant.clone()
                },
                threads,
                batch,
                us_per_sample: secs * 1e6 / batch as f64,
            };
            if args.json {
                writeln!(out, "{}", case.json()).map_err(write_err)?;
            } else {
                writeln!(
                    out,
                    "{:<18} {:>7} {:>6} {:>12.2} {:>12.0}",
                    case.variant,
                    case.threads,
                    case.batch,
                    case.us_per_sample,
                    1e6 / case.us_per_sample
                )
                .map_err(write_err)?;
            }
            out.flush().map_err(write_err)?;
        }
    }
    Ok(())
}

/// Warm-up, then the timed calls of `budget`; the median seconds per call.
fn time_median(
    budget: Budget,
    mut f: impl FnMut() -> std::result::Result<(), stylemap::Error>,
) -> Result<f64> {
    let warm_for = match budget {
        Budget::Iters(_) => Duration::ZERO,
        Budget::Time(d) => d / 10,
    };
    let warm = Instant::now();
    let mut calls = 0;
    while calls < WARMUP_CALLS || warm.elapsed() < warm_for {
        f()?;
        calls += 1;
    }
    let mut times = Vec::new();
    let start = Instant::now();
    loop {
        let done = match budget {
            Budget::Iters(n) => times.len() >= n,
            Budget::Time(d) => times.len() >= MIN_TIMED_CALLS && start.elapsed() >= d,
        };
        if done {
            break;
        }
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(&mut times))
}

/// The median of `v` (sorted in place), the mean of the middle two for an
/// even length; 0 for an empty slice.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// The kernels this CPU can run, by name, comma-separated.
pub fn available_kernels() -> String {
    Kernel::ALL
        .iter()
        .filter(|k| k.is_available())
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `s` as the inside of a JSON string.
fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_format() {
        let case = Case {
            variant: "mapper-avx2".into(),
            threads: 2,
            batch: 64,
            us_per_sample: 12.345_678,
        };
        assert_eq!(
            case.json(),
            r#"{"variant": "mapper-avx2", "threads": 2, "batch": 64, "us_per_sample": 12.346}"#
        );
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }

    #[test]
    fn median_odd_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn iters_budget_times_exactly_n_calls() {
        let mut calls = 0;
        let t = time_median(Budget::Iters(3), || {
            calls += 1;
            Ok(())
        })
        .expect("no error");
        assert_eq!(calls, WARMUP_CALLS + 3);
        assert!(t >= 0.0);
    }
}
