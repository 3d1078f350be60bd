//! `broadcast`: arbitrary w, w_avg, psi, cutoff, mixing specs and
//! interpolation weights through `stylemap::broadcast` and the core's
//! `broadcast_truncate`. Checks: an error, or a ws that satisfies the
//! contract (§5): finite; rows >= cutoff equal w; psi 1 changes nothing;
//! psi 0 gives w_avg exactly; other rows are `lerp(w_avg, w, psi)`; a cutoff
//! past num_ws truncates all rows; errors only for non-finite inputs or a
//! genuine overflow, and nothing is written on error.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stylemap::broadcast;
use stylemap_core::truncation::{self, Truncation};

#[derive(Arbitrary, Debug)]
struct Input {
    w_dim: u8,
    num_ws: u8,
    samples: u8,
    values: Vec<f32>,
    psi: f32,
    cutoff: Option<u16>,
    layers: Vec<u8>,
    crossover: u8,
    t: f32,
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fuzz_target!(|inp: Input| {
    let w_dim = usize::from(inp.w_dim % 9) + 1;
    let num_ws = usize::from(inp.num_ws % 7) + 1;
    let n = usize::from(inp.samples % 4);
    let val = |i: usize| {
        if inp.values.is_empty() {
            0.0
        } else {
            inp.values[i % inp.values.len()]
        }
    };
    let w: Vec<f32> = (0..n * w_dim).map(val).collect();
    let w_avg: Vec<f32> = (0..w_dim).map(|i| val(i * 7 + 3)).collect();
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    let cutoff = inp.cutoff.map(usize::from);
    let rows = cutoff.unwrap_or(num_ws).min(num_ws);

    // Broadcast.
    let mut ws = vec![-7.0f32; n * num_ws * w_dim];
    match broadcast::broadcast(&w, w_dim, num_ws, &mut ws) {
        Ok(()) => {
            assert!(finite(&w));
            for (s, sample) in ws.chunks_exact(num_ws * w_dim).enumerate() {
                for row in sample.chunks_exact(w_dim) {
                    assert_eq!(bits(row), bits(&w[s * w_dim..(s + 1) * w_dim]));
                }
            }
        }
        Err(_) => {
            assert!(!finite(&w));
            assert!(ws.iter().all(|&v| v == -7.0), "written on error");
            return;
        }
    }

    // Truncate.
    let before = ws.clone();
    match broadcast::truncate(&mut ws, &w_avg, num_ws, inp.psi, cutoff) {
        Ok(()) => {
            assert!(finite(&ws) && inp.psi.is_finite() && finite(&w_avg));
            for (i, (&got, &orig)) in ws.iter().zip(&before).enumerate() {
                let (k, layer) = (i % w_dim, (i / w_dim) % num_ws);
                if inp.psi == 1.0 || layer >= rows {
                    assert_eq!(got.to_bits(), orig.to_bits());
                } else if inp.psi == 0.0 {
                    assert_eq!(got.to_bits(), w_avg[k].to_bits());
                } else {
                    assert_eq!(
                        got.to_bits(),
                        truncation::lerp(w_avg[k], orig, inp.psi).to_bits()
                    );
                }
            }
            // The core agrees sample by sample, and a cutoff past num_ws is "all".
            for s in 0..n {
                let t = Truncation {
                    psi: inp.psi,
                    cutoff,
                };
                let mut one = vec![0.0f32; num_ws * w_dim];
                truncation::broadcast_truncate(
                    &w[s * w_dim..(s + 1) * w_dim],
                    &w_avg,
                    num_ws,
                    t,
                    &mut one,
                )
                .expect("core agrees");
                assert_eq!(
                    bits(&one),
                    bits(&ws[s * num_ws * w_dim..(s + 1) * num_ws * w_dim])
                );
                if cutoff.is_some_and(|c| c >= num_ws) {
                    let all = Truncation {
                        psi: inp.psi,
                        cutoff: None,
                    };
                    let mut again = vec![0.0f32; num_ws * w_dim];
                    truncation::broadcast_truncate(
                        &w[s * w_dim..(s + 1) * w_dim],
                        &w_avg,
                        num_ws,
                        all,
                        &mut again,
                    )
                    .expect("clamped");
                    assert_eq!(bits(&again), bits(&one));
                }
            }
        }
        Err(e) => {
            assert_eq!(bits(&ws), bits(&before), "written on error: {e}");
            if inp.psi.is_finite() && finite(&w_avg) && n > 0 {
                // Must be a genuine overflow.
                let overflow = before.iter().enumerate().any(|(i, &v)| {
                    (i / w_dim) % num_ws < rows
                        && !truncation::lerp(w_avg[i % w_dim], v, inp.psi).is_finite()
                });
                assert!(overflow, "spurious error: {e}");
            }
        }
    }

    // Mixing and interpolation on the first sample.
    if n == 0 {
        return;
    }
    let len = num_ws * w_dim;
    let (a, b) = (&before[..len], &ws[..len]);
    let mut out = vec![0.0f32; len];
    let layers: Vec<usize> = inp.layers.iter().map(|&l| usize::from(l % 9)).collect();
    match broadcast::mix_layers(a, b, &layers, num_ws, &mut out) {
        Ok(()) => {
            for (l, (row, (ra, rb))) in out
                .chunks_exact(w_dim)
                .zip(a.chunks_exact(w_dim).zip(b.chunks_exact(w_dim)))
                .enumerate()
            {
                let want = if layers.contains(&l) { rb } else { ra };
                assert_eq!(bits(row), bits(want));
            }
        }
        Err(_) => assert!(layers.iter().any(|&l| l >= num_ws) || !finite(b)),
    }
    let k = usize::from(inp.crossover % 9);
    match broadcast::mix_crossover(a, b, k, num_ws, &mut out) {
        Ok(()) => {
            assert_eq!(bits(&out[..k * w_dim]), bits(&a[..k * w_dim]));
            assert_eq!(bits(&out[k * w_dim..]), bits(&b[k * w_dim..]));
        }
        Err(_) => assert!(k > num_ws || !finite(b)),
    }
    for f in [broadcast::lerp, broadcast::slerp] {
        let mut out = vec![-3.0f32; len];
        match f(a, b, inp.t, &mut out) {
            Ok(()) => assert!(finite(&out)),
            Err(_) => assert!(out.iter().all(|&v| v == -3.0), "written on error"),
        }
    }
    let mut out = vec![0.0f32; len];
    if broadcast::lerp(a, b, 0.0, &mut out).is_ok() {
        assert_eq!(bits(&out), bits(a));
    }
});
