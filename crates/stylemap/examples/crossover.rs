//! Measures the crossovers [`stylemap::Mapper`] uses, on the built-in 8x512
//! network: per-sample GEMV (row-split pool) vs the packed GEMM at small
//! batches, and, on two threads, splitting each layer's rows vs splitting
//! the batch. Prints the median µs per sample of interleaved rounds, so a
//! busy machine slows every variant alike.
//!
//! ```text
//! cargo run --release -p stylemap --example crossover [-- ROUNDS [B1,B2,..]]
//! ```

use std::time::Instant;

use stylemap::batch::GemmBackend;
use stylemap::{Mapper, Network};

fn main() -> Result<(), stylemap::Error> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(15);
    let net = Network::try_builtin()?;
    let s = *net.spec();
    println!(
        "kernel {:?}; median of {rounds} interleaved rounds, µs per sample",
        net.kernel()
    );
    // (label, threads, gemm threshold, split threshold, backend, largest
    // batch split on the pool's threads)
    let amx = Mapper::new(&net).amx_usable();
    let (rows, batch, pool, scoped) = (usize::MAX, 0, usize::MAX, 0);
    let mut variants: Vec<(&str, usize, usize, usize, GemmBackend, usize)> = vec![
        ("gemv 1t", 1, usize::MAX, rows, GemmBackend::Packed, pool),
        ("packed 1t", 1, 0, rows, GemmBackend::Packed, pool),
        (
            "gemv 2t (rows)",
            2,
            usize::MAX,
            rows,
            GemmBackend::Packed,
            pool,
        ),
        ("packed 2t rows", 2, 0, rows, GemmBackend::Packed, pool),
        (
            "packed 2t batch pool",
            2,
            0,
            batch,
            GemmBackend::Packed,
            pool,
        ),
        (
            "packed 2t batch scoped",
            2,
            0,
            batch,
            GemmBackend::Packed,
            scoped,
        ),
    ];
    if amx {
        variants.push(("amx 1t", 1, 0, batch, GemmBackend::Amx, pool));
        variants.push(("amx 2t rows", 2, 0, rows, GemmBackend::Amx, pool));
        variants.push(("amx 2t batch pool", 2, 0, batch, GemmBackend::Amx, pool));
        variants.push(("amx 2t batch scoped", 2, 0, batch, GemmBackend::Amx, scoped));
    }
    let batches: Vec<usize> = match std::env::args().nth(2) {
        Some(list) => list.split(',').filter_map(|b| b.parse().ok()).collect(),
        None => vec![1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128, 256, 512],
    };
    let mut mappers: Vec<Mapper<'_>> = variants
        .iter()
        .map(|&(_, t, g, sp, backend, pool)| {
            Mapper::new(&net)
                .with_gemm_backend(backend)
                .with_threads(t)
                .with_gemm_threshold(g)
                .with_split_threshold(sp)
                .with_pool_split_max(pool)
        })
        .collect();
    print!("{:>6}", "batch");
    for v in &variants {
        print!(" {:>22}", v.0);
    }
    println!();
    for &b in &batches {
        let z: Vec<f32> = (0..b * s.z_dim)
            .map(|i| ((i * 7919) % 997) as f32 / 500.0 - 1.0)
            .collect();
        let mut w = vec![0.0f32; b * s.w_dim];
        let reps = (2048 / b).clamp(2, 64);
        let mut times = vec![Vec::new(); variants.len()];
        for _ in 0..rounds {
            for (m, t) in mappers.iter_mut().zip(&mut times) {
                m.map(&z, &[], &mut w)?; // warm
                let start = Instant::now();
                for _ in 0..reps {
                    m.map(&z, &[], &mut w)?;
                }
                t.push(start.elapsed().as_secs_f64() * 1e6 / (reps * b) as f64);
            }
        }
        print!("{b:>6}");
        for t in &mut times {
            t.sort_by(f64::total_cmp);
            print!(" {:>22.1}", t[t.len() / 2]);
        }
        println!();
    }
    Ok(())
}
