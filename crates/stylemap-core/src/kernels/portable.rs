//! Portable SIMD GEMV on `wide::f32x8`.
//!
//! Four rows share each load of `x`, so each 8-wide chunk of `x` feeds four
//! independent accumulators (hiding FMA latency); the `in % 8` tail is scalar.
//! `wide` chooses its instructions when this crate is compiled (two SSE
//! halves on a default x86-64 build, AVX+FMA with `-C target-cpu=x86-64-v3`,
//! NEON on aarch64, plain arrays elsewhere), so this kernel is as portable as
//! the scalar one.

use wide::f32x8;

use crate::spec::Activation;

const LANES: usize = 8;
const ROWS: usize = 4;

#[inline(always)]
fn load(s: &[f32]) -> f32x8 {
    let mut a = [0.0f32; LANES];
    a.copy_from_slice(&s[..LANES]);
    f32x8::from(a)
}

#[inline(always)]
fn dot_tail(row: &[f32], x: &[f32], from: usize) -> f32 {
    let mut acc = 0.0f32;
    for (&w, &xv) in row[from..].iter().zip(&x[from..]) {
        acc += w * xv;
    }
    acc
}

/// `y = act(W x + b)`, `W` row-major `[y.len(), x.len()]`.
///
/// Lengths are the caller's contract (see [`super::gemv_bias_act`] for the
/// checked entry point); a mismatch gives a wrong answer or a panic, never UB.
pub fn gemv_f32x8(weight: &[f32], bias: &[f32], x: &[f32], act: Activation, y: &mut [f32]) {
    let cols = x.len().max(1);
    let body = cols - cols % LANES;
    let mut rows = weight.chunks_exact(cols);
    let mut outs = y.chunks_mut(ROWS);
    let mut biases = bias.chunks(ROWS);
    while let (Some(out), Some(b)) = (outs.next(), biases.next()) {
        if out.len() == ROWS {
            let (Some(r0), Some(r1), Some(r2), Some(r3)) =
                (rows.next(), rows.next(), rows.next(), rows.next())
            else {
                return;
            };
            let mut acc = [f32x8::ZERO; ROWS];
            let mut k = 0;
            while k < body {
                let xv = load(&x[k..]);
                acc[0] = load(&r0[k..]).mul_add(xv, acc[0]);
                acc[1] = load(&r1[k..]).mul_add(xv, acc[1]);
                acc[2] = load(&r2[k..]).mul_add(xv, acc[2]);
                acc[3] = load(&r3[k..]).mul_add(xv, acc[3]);
                k += LANES;
            }
            for (i, row) in [r0, r1, r2, r3].into_iter().enumerate() {
                let sum = acc[i].reduce_add() + dot_tail(row, x, body);
                out[i] = super::epilogue(sum, b[i], act);
            }
        } else {
            for (o, &bi) in out.iter_mut().zip(b) {
                let Some(row) = rows.next() else { return };
                let mut acc = f32x8::ZERO;
                let mut k = 0;
                while k < body {
                    acc = load(&row[k..]).mul_add(load(&x[k..]), acc);
                    k += LANES;
                }
                *o = super::epilogue(acc.reduce_add() + dot_tail(row, x, body), bi, act);
            }
        }
    }
}
