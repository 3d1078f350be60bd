//! Fused kernels over **reduced-precision weights** (f16, bf16, int8 with f32
//! scales): `y[s, :] = act(W x[s, :] + b)` for a batch of `s` (batch 1 is the
//! GEMV case), activations and accumulation in f32.
//!
//! # Layout (shared by every precision and every kernel)
//!
//! `W [out, in]` (folded, see [`crate::fold`]) is stored in `ceil(out / QNR)`
//! **panels** of [`QNR`] = 16 output rows, each **k-major**, rows past `out`
//! zero:
//!
//! ```text
//! q[p * (in * QNR) + k * QNR + j] = quantize(W[p*QNR + j, k])   j < QNR, k < in
//! ```
//!
//! so the 16 weights multiplying `x[k]` for one panel are contiguous: 32 bytes
//! of f16/bf16 (one `vcvtph2ps` to a zmm, two to ymm) or 16 bytes of int8.
//! One layout for every kernel, so a pack file is kernel-independent.
//!
//! - **f16**: IEEE binary16 bits, round-to-nearest-even from f32.
//! - **bf16**: the top 16 bits of the f32, round-to-nearest-even.
//! - **int8**: `q` in `-127..=127`, with f32 scales per panel row and group of
//!   `group` consecutive inputs:
//!   `scales[p * (groups * QNR) + g * QNR + j]`, `groups = ceil(in / group)`;
//!   group `g` covers `k in g*group .. min((g+1)*group, in)`. `group >= in`
//!   is one scale per row. Padding rows have scale 0.
//!
//! # Arithmetic contract (what the scalar oracle computes)
//!
//! - f16 / bf16: `acc = 0; for k in order: acc += f32(q[r, k]) * x[k]`, then
//!   the shared epilogue (`+ b[r]`, activation), like the f32 GEMV.
//! - int8: for each group in order: `part = 0; for k in group: part +=
//!   f32(q[r, k]) * x[k]`, then `acc += scale[g, r] * part`; then the epilogue.
//!
//! Kernels with FMA round once per multiply-add; the difference from the
//! oracle is bounded like the f32 kernels' (`tests/quant_kernels.rs`). Results for a
//! sample never depend on the batch size or the other samples.

pub mod portable;
pub mod scalar;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
mod simd;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub mod neon;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use super::Kernel;
use crate::spec::Activation;

/// Rows per panel of the reduced-precision layout, for every kernel.
pub const QNR: usize = 16;

/// One layer's reduced-precision packed weights (layout: [module docs](self)).
#[derive(Clone, Copy, Debug)]
pub enum QWeights<'a> {
    /// IEEE binary16 bits, `packed_len(out, in, QNR)` values.
    F16(&'a [u16]),
    /// bfloat16 bits, `packed_len(out, in, QNR)` values.
    Bf16(&'a [u16]),
    /// int8 values with f32 scales per row and group of inputs.
    Int8 {
        /// `packed_len(out, in, QNR)` values in `-127..=127`.
        q: &'a [i8],
        /// `ceil(out / QNR) * ceil(in / group) * QNR` scales.
        scales: &'a [f32],
        /// Inputs per scale group (`>= 1`).
        group: usize,
    },
}

/// Number of int8 scale groups for `inp` inputs in groups of `group`
/// (`group >= 1`).
pub const fn groups(inp: usize, group: usize) -> usize {
    inp.div_ceil(group)
}

/// The dimensions every kernel derives from its slices, in O(1):
/// `(batch, out)`, or `None` if the lengths do not chain. Kernels do nothing
/// for `None`, so no length can make them misbehave.
#[inline]
pub(crate) fn dims(
    w: &QWeights<'_>,
    bias: usize,
    x: usize,
    inp: usize,
    y: usize,
) -> Option<(usize, usize)> {
    let out = bias;
    if inp == 0 || out == 0 {
        return None;
    }
    let batch = x / inp;
    let panels = out.div_ceil(QNR);
    let plen = panels.checked_mul(QNR)?.checked_mul(inp)?;
    let ok_w = match *w {
        QWeights::F16(q) | QWeights::Bf16(q) => q.len() == plen,
        QWeights::Int8 { q, scales, group } => {
            group >= 1
                && q.len() == plen
                && scales.len() == panels.checked_mul(groups(inp, group))?.checked_mul(QNR)?
        }
    };
    let ok = ok_w && x == batch.checked_mul(inp)? && y == batch.checked_mul(out)?;
    ok.then_some((batch, out))
}

/// Checked entry point: `y[s, :] = act(W x[s, :] + b)` for every sample, with
/// `W` in the reduced-precision layout. `out = bias.len()`, `x [batch, in]`,
/// `y [batch, out]` row-major, `batch = x.len() / in_features`.
///
/// Errors if `kernel` is unavailable or the lengths do not chain.
pub fn qgemm_bias_act(
    kernel: Kernel,
    w: QWeights<'_>,
    bias: &[f32],
    x: &[f32],
    in_features: usize,
    act: Activation,
    y: &mut [f32],
) -> Result<(), crate::Error> {
    if !kernel.is_available() {
        return Err(crate::Error::KernelUnavailable);
    }
    if dims(&w, bias.len(), x.len(), in_features, y.len()).is_none() {
        return Err(crate::Error::BadDimension(crate::error::Operand::Gemv));
    }
    run(kernel, w, bias, x, in_features, act, y);
    Ok(())
}

/// Unchecked dispatch; callers guarantee the lengths chain and that `kernel`
/// is available (a kernel that cannot run falls back to the oracle).
#[inline]
pub(crate) fn run(
    kernel: Kernel,
    w: QWeights<'_>,
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
) {
    match kernel {
        Kernel::Scalar => scalar::qgemm(w, bias, x, inp, act, y),
        Kernel::Portable => portable::qgemm_f32x8(w, bias, x, inp, act, y),
        Kernel::Avx2 | Kernel::Avx512 | Kernel::Neon => {
            #[cfg(target_arch = "x86_64")]
            if x86::dispatch(kernel, w, bias, x, inp, act, y) {
                return;
            }
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            if neon::dispatch(kernel, w, bias, x, inp, act, y) {
                return;
            }
            // Unreachable through the checked entry point; never run an
            // unsupported instruction, compute the same thing with plain loops.
            debug_assert!(false, "{kernel:?} is not available here");
            scalar::qgemm(w, bias, x, inp, act, y)
        }
    }
}
