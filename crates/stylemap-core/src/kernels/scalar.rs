//! The scalar oracle: one row at a time, one f32 accumulator, in index order.
//! Never optimised, never changed: every other kernel is tested against it.

use crate::spec::Activation;

/// `y = act(W x + b)`, `W` row-major `[y.len(), x.len()]`.
///
/// Lengths are the caller's contract (see [`super::gemv_bias_act`] for the
/// checked entry point); a mismatch gives a wrong answer, never UB.
pub fn gemv_f32(weight: &[f32], bias: &[f32], x: &[f32], act: Activation, y: &mut [f32]) {
    let cols = x.len().max(1);
    for ((row, &b), out) in weight.chunks_exact(cols).zip(bias).zip(y.iter_mut()) {
        let mut acc = 0.0f32;
        for (&w, &xv) in row.iter().zip(x) {
            acc += w * xv;
        }
        *out = super::epilogue(acc, b, act);
    }
}
