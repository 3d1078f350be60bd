//! aarch64 NEON batched kernel: panels of 16 outputs (4 q registers), blocks
//! of 6 samples (24 of the 32 vector registers as accumulators).
//!
//! NEON is baseline wherever this module is compiled (`target_feature =
//! "neon"`), so no detection. Same generic body as the x86 kernels (the
//! private `kernels::gemm::simd` module). Not measured on aarch64 hardware;
//! tested under qemu.
#![allow(unsafe_code)]

use core::arch::aarch64::*;

use super::simd::{self, GemmSimd};
use crate::spec::{Activation, LRELU_SLOPE};

/// Vectors per panel.
const NV: usize = super::NEON_NR / 4;
/// `k` per block (256 x 16 weights, 16 KiB).
const KC: usize = 256;

/// `y[s, :] = act(W x[s, :] + b)` with NEON, `W [bias.len(), inp]` packed in
/// panels of 16 rows (see [`super::pack_layer`]), `x [batch, inp]`,
/// `y [batch, bias.len()]` row-major.
///
/// Lengths are the caller's contract (see [`super::gemm_packed_bias_act`]);
/// if they do not chain, nothing is written.
pub fn gemm_packed_f32x4_neon(
    packed: &[f32],
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
) {
    // SAFETY: this module is compiled only with target_feature = "neon", so
    // NEON is available on every CPU this code can run on.
    unsafe { simd::gemm::<Neon, simd::Rows6, NV, KC>(packed, bias, x, inp, act, y) }
}

/// Runs `kernel` if it is [`crate::Kernel::Neon`]; returns whether it ran.
#[inline]
pub(crate) fn dispatch(
    kernel: crate::Kernel,
    packed: &[f32],
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
) -> bool {
    if kernel == crate::Kernel::Neon {
        gemm_packed_f32x4_neon(packed, bias, x, inp, act, y);
        true
    } else {
        false
    }
}

/// NEON: 4 lanes.
struct Neon;

impl GemmSimd for Neon {
    const LANES: usize = 4;
    type V = float32x4_t;

    #[inline(always)]
    unsafe fn zero() -> float32x4_t {
        // SAFETY: NEON is enabled for this build (module cfg).
        unsafe { vdupq_n_f32(0.0) }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> float32x4_t {
        // SAFETY: 4 floats at p are readable (contract); vld1q needs only
        // f32 alignment; NEON is enabled (module cfg).
        unsafe { vld1q_f32(p) }
    }

    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> float32x4_t {
        let mut lanes = [0.0f32; 4];
        // SAFETY: n < 4 floats at p are readable (contract) and fit in `lanes`;
        // a local array cannot overlap the caller's slice.
        unsafe { core::ptr::copy_nonoverlapping(p, lanes.as_mut_ptr(), n) };
        // SAFETY: `lanes` holds 4 floats; NEON is enabled (module cfg).
        unsafe { vld1q_f32(lanes.as_ptr()) }
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> float32x4_t {
        // SAFETY: p is readable (contract); NEON is enabled (module cfg).
        unsafe { vld1q_dup_f32(p) }
    }

    #[inline(always)]
    unsafe fn mul_add(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is enabled for this build (module cfg).
        unsafe { vfmaq_f32(c, a, b) }
    }

    #[inline(always)]
    unsafe fn bias_act(acc: float32x4_t, bias: float32x4_t, act: Activation) -> float32x4_t {
        // SAFETY: NEON is enabled for this build (module cfg).
        unsafe {
            let v = vaddq_f32(acc, bias);
            match act {
                Activation::LeakyRelu => {
                    // Ordered less-than: false for NaN and -0.0, as `v < 0.0`.
                    let neg = vcltq_f32(v, vdupq_n_f32(0.0));
                    vbslq_f32(neg, vmulq_n_f32(v, LRELU_SLOPE), v)
                }
                Activation::Linear => v,
            }
        }
    }

    #[inline(always)]
    unsafe fn store(p: *mut f32, v: float32x4_t) {
        // SAFETY: 4 floats at p are writable (contract); NEON is enabled.
        unsafe { vst1q_f32(p, v) }
    }

    #[inline(always)]
    unsafe fn store_partial(p: *mut f32, v: float32x4_t, n: usize) {
        let mut lanes = [0.0f32; 4];
        // SAFETY: `lanes` holds 4 floats; NEON is enabled (module cfg).
        unsafe { vst1q_f32(lanes.as_mut_ptr(), v) };
        // SAFETY: n < 4 floats at p are writable (contract); a local array
        // cannot overlap the caller's slice.
        unsafe { core::ptr::copy_nonoverlapping(lanes.as_ptr(), p, n) };
    }

    #[inline(always)]
    unsafe fn prefetch(_p: *const f32) {
        // The stable aarch64 intrinsics have no prefetch; the hardware
        // prefetchers follow the sequential panel stream.
    }
}
