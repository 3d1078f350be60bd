//! aarch64 NEON kernel (`f32x4`).
//!
//! NEON is part of the baseline of every aarch64 target that has the `neon`
//! target feature (all the usual ones), so this kernel needs no run-time
//! detection: the module only exists when the feature is enabled at compile
//! time. It instantiates the same generic body as the x86 kernels (the
//! private `kernels::simd` module); the `in % 4` tail is copied into a zeroed
//! vector.
#![allow(unsafe_code)]

use core::arch::aarch64::*;

use super::simd::{self, Simd};
use crate::spec::{Activation, LRELU_SLOPE};

/// Rows per block: as on x86 (32 vector registers hold 8 accumulators
/// easily); not measured on aarch64 hardware.
const ROWS: usize = 8;

/// `y = act(W x + b)`, `W` row-major `[y.len(), x.len()]`, with NEON
/// (4 lanes, 8 rows per block).
///
/// Lengths are the caller's contract (see [`super::gemv_bias_act`] for the
/// checked entry point); a mismatch leaves rows past
/// `min(y.len(), bias.len(), weight.len() / x.len())` untouched, never UB.
pub fn gemv_f32x4_neon(weight: &[f32], bias: &[f32], x: &[f32], act: Activation, y: &mut [f32]) {
    // SAFETY: this module is compiled only with target_feature = "neon", so
    // NEON is available on every CPU this code can run on.
    unsafe { simd::gemv::<Neon, ROWS>(weight, bias, x, act, y) }
}

/// Runs `kernel` if it is [`super::Kernel::Neon`]; returns whether it ran.
#[inline]
pub(crate) fn dispatch(
    kernel: super::Kernel,
    weight: &[f32],
    bias: &[f32],
    x: &[f32],
    act: Activation,
    y: &mut [f32],
) -> bool {
    if kernel == super::Kernel::Neon {
        gemv_f32x4_neon(weight, bias, x, act, y);
        true
    } else {
        false
    }
}

/// NEON: 4 lanes.
pub(crate) struct Neon;

impl Simd for Neon {
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
        // f32 alignment, which a pointer into an f32 slice has; NEON is
        // enabled (module cfg).
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
    unsafe fn mul_add(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is enabled for this build (module cfg).
        unsafe { vfmaq_f32(c, a, b) }
    }

    #[inline(always)]
    unsafe fn reduce(v: float32x4_t) -> f32 {
        // Pairwise: (v0 + v1) + (v2 + v3).
        // SAFETY: NEON is enabled for this build (module cfg).
        unsafe { vaddvq_f32(v) }
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> float32x4_t {
        // SAFETY: p is readable (contract); NEON is enabled (module cfg).
        unsafe { vld1q_dup_f32(p) }
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
