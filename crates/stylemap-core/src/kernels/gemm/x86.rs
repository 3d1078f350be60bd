//! x86-64 batched kernels: AVX2+FMA (panels of 16, 6 x 16 register
//! blocks) and AVX-512F (panels of 32, 14 x 32 register blocks), chosen at
//! run time.
//!
//! Thin `#[target_feature]` wrappers around the one generic batched body
//! shared with NEON (the private `kernels::gemm::simd` module), over the
//! vector primitives of [`crate::kernels::x86`] (one implementation per
//! instruction set for every kernel family).
//! Detection is the GEMV kernels' ([`crate::kernels::x86`]): `cpufeatures`,
//! cached.
//!
//! # Block shapes (measured)
//!
//! On the project's 2-core AVX-512 Xeon (KVM), one thread, with the weights
//! in L1 the 8 x 32, 12 x 32 and 14 x 32 blocks all run at ~0.87 of the
//! measured FMA peak (~212 of 241 GFLOP/s; embedded-broadcast FMAs were
//! slower). Over a whole 512 x 512 layer the 14 x 32 block with the full
//! `k` range per block (KC = 512: a 64 KiB panel, read from L2 by every
//! sample block) beat 8 x 32 with KC = 256 by 5-10% at B = 64 and 128
//! (`examples/gemm_probe.rs`, interleaved runs); 14 rows leave 28
//! accumulators, 2 weight vectors and 1 broadcast in the 32 registers.
//! Batches are cut into balanced blocks, so B = 64 runs as 5 blocks of
//! 12-13 samples, not 4 of 14 and one of 8.
#![allow(unsafe_code)]

use super::simd;
use crate::kernels::x86::{Avx2, Avx512, avx2_fma_detected, avx512f_detected};
use crate::spec::Activation;

/// AVX-512: vectors per panel.
const AVX512_NV: usize = super::AVX512_NR / 16;
/// AVX-512: `k` per block (512 x 32 weights, 64 KiB, read from L2; see
/// the module docs).
const AVX512_KC: usize = 512;
/// AVX2: `k` per block (256 x 16 weights, 16 KiB).
const AVX2_KC: usize = 256;
/// AVX2: vectors per panel.
const AVX2_NV: usize = super::AVX2_NR / 8;

/// `y[s, :] = act(W x[s, :] + b)` with AVX-512F, `W [bias.len(), inp]`
/// packed in panels of 32 rows (see [`super::pack_layer`]), `x [batch, inp]`,
/// `y [batch, bias.len()]` row-major.
///
/// `next`: the weights the caller runs after these (prefetched once this
/// call's own are, never read; may be empty). Lengths are not a safety
/// condition: if they do not chain (see [`super::gemm_packed_bias_act`])
/// nothing is written.
///
/// # Safety
/// The CPU must support AVX-512F (see [`avx512f_detected`]).
#[target_feature(enable = "avx512f")]
pub unsafe fn gemm_packed_f32x16_avx512(
    packed: &[f32],
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
    next: &[f32],
) {
    // SAFETY: AVX-512F is available (this function's contract).
    unsafe {
        simd::gemm::<Avx512, simd::Rows14, AVX512_NV, AVX512_KC>(packed, bias, x, inp, act, y, next)
    }
}

/// `y[s, :] = act(W x[s, :] + b)` with AVX2 + FMA, `W [bias.len(), inp]`
/// packed in panels of 16 rows (see [`super::pack_layer`]), `x [batch, inp]`,
/// `y [batch, bias.len()]` row-major.
///
/// `next`: as for [`gemm_packed_f32x16_avx512`]. Lengths are not a safety
/// condition: if they do not chain (see [`super::gemm_packed_bias_act`])
/// nothing is written.
///
/// # Safety
/// The CPU must support AVX2 and FMA (see [`avx2_fma_detected`]).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gemm_packed_f32x8_avx2(
    packed: &[f32],
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
    next: &[f32],
) {
    // SAFETY: AVX2 and FMA are available (this function's contract).
    unsafe { simd::gemm::<Avx2, simd::Rows6, AVX2_NV, AVX2_KC>(packed, bias, x, inp, act, y, next) }
}

/// Runs `kernel` if it is an x86 kernel this CPU supports; returns whether it ran.
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
    match kernel {
        crate::Kernel::Avx512 if avx512f_detected() => {
            // SAFETY: AVX-512F was detected on this CPU by the guard above.
            unsafe { gemm_packed_f32x16_avx512(packed, bias, x, inp, act, y, next) };
            true
        }
        crate::Kernel::Avx2 if avx2_fma_detected() => {
            // SAFETY: AVX2 and FMA were detected on this CPU by the guard above.
            unsafe { gemm_packed_f32x8_avx2(packed, bias, x, inp, act, y, next) };
            true
        }
        _ => false,
    }
}
