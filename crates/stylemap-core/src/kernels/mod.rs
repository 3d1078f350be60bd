//! Fused GEMV kernels: `y = act(W x + b)` for one fully connected layer.
//!
//! Every kernel computes the same thing on the same row-major layout
//! (`W` is `[out, in]`, gains already folded in, see [`crate::fold`]):
//!
//! ```text
//! y[r] = act(sum_k W[r, k] * x[k] + b[r])      act = lrelu(., 0.2) or identity
//! ```
//!
//! [`scalar`] is the oracle every other kernel is tested against; it never
//! changes. [`portable`] uses `wide`'s 8-lane vectors, whose backend is chosen
//! when the crate is compiled (SSE2/AVX/NEON/simd128 or plain arrays).
//! A kernel is a [`Kernel`] value; runtime-dispatched kernels (AVX2, AVX-512,
//! NEON) join the enum and the `match` in [`gemv_bias_act`] and nothing else.

pub mod portable;
pub mod scalar;

use crate::error::{Error, Operand};
use crate::spec::Activation;

/// A GEMV implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kernel {
    /// Plain scalar loops: the test oracle.
    Scalar,
    /// `wide::f32x8`, four rows at a time, scalar tail.
    Portable,
}

impl Kernel {
    /// Every kernel this build knows, available or not.
    pub const ALL: &'static [Kernel] = &[Kernel::Scalar, Kernel::Portable];

    /// The fastest kernel this CPU and build can run (scalar with the
    /// `force-scalar` feature).
    pub fn best() -> Kernel {
        if cfg!(feature = "force-scalar") {
            Kernel::Scalar
        } else {
            Kernel::Portable
        }
    }

    /// Whether this kernel can run here.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar | Kernel::Portable => true,
        }
    }

    /// A short lowercase name (`scalar`, `portable`), as used in benchmarks.
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Portable => "portable",
        }
    }

    /// Looks a kernel up by [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Kernel> {
        Kernel::ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// Checked entry point: `y = act(W x + b)` with `W` row-major `[y.len(), x.len()]`.
///
/// Errors if the lengths do not chain or `x` is empty, or if `kernel` is not
/// available. Numerics are never checked: NaN in gives NaN out.
pub fn gemv_bias_act(
    kernel: Kernel,
    weight: &[f32],
    bias: &[f32],
    x: &[f32],
    act: Activation,
    y: &mut [f32],
) -> Result<(), Error> {
    if !kernel.is_available() {
        return Err(Error::KernelUnavailable);
    }
    if x.is_empty() {
        return Err(Error::BadDimension(Operand::Gemv));
    }
    let expected = y.len().checked_mul(x.len()).ok_or(Error::TooLarge)?;
    crate::error::check_len(Operand::Gemv, weight, expected)?;
    crate::error::check_len(Operand::Gemv, bias, y.len())?;
    run(kernel, weight, bias, x, act, y);
    Ok(())
}

/// Unchecked dispatch; callers guarantee `weight.len() == y.len() * x.len()`,
/// `bias.len() == y.len()`, `!x.is_empty()` and that `kernel` is available.
#[inline]
pub(crate) fn run(
    kernel: Kernel,
    weight: &[f32],
    bias: &[f32],
    x: &[f32],
    act: Activation,
    y: &mut [f32],
) {
    match kernel {
        Kernel::Scalar => scalar::gemv_f32(weight, bias, x, act, y),
        Kernel::Portable => portable::gemv_f32x8(weight, bias, x, act, y),
    }
}

/// The fused epilogue shared by every kernel: bias, then activation.
/// (The activation gain is folded into the weights and bias.)
#[inline(always)]
pub(crate) fn epilogue(acc: f32, bias: f32, act: Activation) -> f32 {
    let v = acc + bias;
    match act {
        Activation::LeakyRelu if v < 0.0 => v * crate::spec::LRELU_SLOPE,
        _ => v,
    }
}
