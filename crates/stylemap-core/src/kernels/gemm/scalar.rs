//! The batched oracle: plain loops over the packed layout, any panel width.
//!
//! Each output is `acc = 0; acc += W[r, k] * x[s, k]` for `k` in order, then
//! the shared epilogue (bias, then activation): the same operations in the same order as the
//! scalar GEMV [`crate::kernels::scalar::gemv_f32`], so the two agree bit for
//! bit. Never optimised.

use crate::spec::Activation;

/// Panel width of [`Kernel::Scalar`](crate::Kernel::Scalar)'s packed layout.
pub const NR: usize = 8;

/// `y[s, :] = act(W x[s, :] + b)` for `W [bias.len(), inp]` packed in panels
/// of `nr` rows (see [`super::pack_layer`]); `x [batch, inp]`,
/// `y [batch, bias.len()]`, row-major.
///
/// Lengths are the caller's contract (see [`super::gemm_packed_bias_act`]
/// for the checked entry point); if they do not chain, nothing is written.
pub fn gemm_packed(
    packed: &[f32],
    nr: usize,
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
) {
    let Some((batch, out)) = super::dims(packed.len(), bias.len(), x.len(), inp, y.len(), nr)
    else {
        return;
    };
    for (p, panel) in packed.chunks_exact(inp * nr).enumerate() {
        let col0 = p * nr;
        let cols = nr.min(out - col0);
        for s in 0..batch {
            let xs = &x[s * inp..(s + 1) * inp];
            let ys = &mut y[s * out + col0..s * out + col0 + cols];
            for (j, yj) in ys.iter_mut().enumerate() {
                let mut acc = 0.0f32;
                for (k, &xv) in xs.iter().enumerate() {
                    acc += panel[k * nr + j] * xv;
                }
                *yj = crate::kernels::epilogue(acc, bias[col0 + j], act);
            }
        }
    }
}
