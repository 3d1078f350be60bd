//! aarch64 NEON batched kernel: panels of 16 outputs (4 q registers), blocks
//! of 6 samples (24 of the 32 vector registers as accumulators).
//!
//! NEON is baseline wherever this module is compiled (`target_feature =
//! "neon"`), so no detection. Same generic body as the x86 kernels (the
//! private `kernels::gemm::simd` module), over the vector primitives of
//! [`crate::kernels::neon`]. Not measured on aarch64 hardware;
//! tested under qemu.
#![allow(unsafe_code)]

use super::simd;
use crate::kernels::neon::Neon;
use crate::spec::Activation;

/// Vectors per panel.
const NV: usize = super::NEON_NR / 4;
/// `k` per block (256 x 16 weights, 16 KiB).
const KC: usize = 256;

/// `y[s, :] = act(W x[s, :] + b)` with NEON, `W [bias.len(), inp]` packed in
/// panels of 16 rows (see [`super::pack_layer`]), `x [batch, inp]`,
/// `y [batch, bias.len()]` row-major.
///
/// `next`: the weights the caller runs after these (a prefetch hint; the
/// stable aarch64 intrinsics have none, so unused). Lengths are the
/// caller's contract (see [`super::gemm_packed_bias_act`]); if they do not
/// chain, nothing is written.
pub fn gemm_packed_f32x4_neon(
    packed: &[f32],
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
    next: &[f32],
) {
    // SAFETY: this module is compiled only with target_feature = "neon", so
    // NEON is available on every CPU this code can run on.
    unsafe { simd::gemm::<Neon, simd::Rows6, NV, KC>(packed, bias, x, inp, act, y, next) }
}

/// Runs `kernel` if it is [`crate::Kernel::Neon`]; returns whether it ran.
#[inline]
#[allow(clippy::too_many_arguments)] // the kernel's arguments plus its choice
pub(crate) fn dispatch(
    kernel: crate::Kernel,
    packed: &[f32],
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
    next: &[f32],
) -> bool {
    if kernel == crate::Kernel::Neon {
        gemm_packed_f32x4_neon(packed, bias, x, inp, act, y, next);
        true
    } else {
        false
    }
}
