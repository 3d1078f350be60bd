//! x86-64 batched kernels: AVX2+FMA (panels of 16, 6 x 16 register
//! blocks) and AVX-512F (panels of 32, 14 x 32 register blocks), chosen at
//! run time.
//!
//! Thin `#[target_feature]` wrappers around the one generic batched body
//! shared with NEON (the private `kernels::gemm::simd` module); this file
//! only says how to load, broadcast, multiply-add, store and prefetch.
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

use core::arch::x86_64::*;

use super::simd::{self, GemmSimd};
use crate::kernels::x86::{avx2_fma_detected, avx512f_detected};
use crate::spec::{Activation, LRELU_SLOPE};

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
/// Lengths are not a safety condition: if they do not chain (see
/// [`super::gemm_packed_bias_act`]) nothing is written.
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
) {
    // SAFETY: AVX-512F is available (this function's contract).
    unsafe {
        simd::gemm::<Avx512, simd::Rows14, AVX512_NV, AVX512_KC>(packed, bias, x, inp, act, y)
    }
}

/// `y[s, :] = act(W x[s, :] + b)` with AVX2 + FMA, `W [bias.len(), inp]`
/// packed in panels of 16 rows (see [`super::pack_layer`]), `x [batch, inp]`,
/// `y [batch, bias.len()]` row-major.
///
/// Lengths are not a safety condition: if they do not chain (see
/// [`super::gemm_packed_bias_act`]) nothing is written.
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
) {
    // SAFETY: AVX2 and FMA are available (this function's contract).
    unsafe { simd::gemm::<Avx2, simd::Rows6, AVX2_NV, AVX2_KC>(packed, bias, x, inp, act, y) }
}

/// Runs `kernel` if it is an x86 kernel this CPU supports; returns whether it ran.
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
    match kernel {
        crate::Kernel::Avx512 if avx512f_detected() => {
            // SAFETY: AVX-512F was detected on this CPU by the guard above.
            unsafe { gemm_packed_f32x16_avx512(packed, bias, x, inp, act, y) };
            true
        }
        crate::Kernel::Avx2 if avx2_fma_detected() => {
            // SAFETY: AVX2 and FMA were detected on this CPU by the guard above.
            unsafe { gemm_packed_f32x8_avx2(packed, bias, x, inp, act, y) };
            true
        }
        _ => false,
    }
}

/// AVX-512F: 16 lanes.
struct Avx512;

impl GemmSimd for Avx512 {
    const LANES: usize = 16;
    type V = __m512;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: AVX-512F is available (contract).
        unsafe { _mm512_setzero_ps() }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: AVX-512F is available and 16 floats at p are readable
        // (contract); loadu has no alignment requirement.
        unsafe { _mm512_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> __m512 {
        // SAFETY: AVX-512F is available (contract); n < 16 so the shift does
        // not overflow. A zero-masked load reads (and can fault on) only the
        // lanes whose mask bit is set, lanes 0..n, which are readable (contract).
        unsafe { _mm512_maskz_loadu_ps(((1u32 << n) - 1) as __mmask16, p) }
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> __m512 {
        // SAFETY: AVX-512F is available and p is readable (contract).
        unsafe { _mm512_set1_ps(p.read()) }
    }

    #[inline(always)]
    unsafe fn mul_add(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (contract).
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }

    #[inline(always)]
    unsafe fn bias_act(acc: __m512, bias: __m512, act: Activation) -> __m512 {
        // SAFETY: AVX-512F is available (contract).
        unsafe {
            let v = _mm512_add_ps(acc, bias);
            match act {
                Activation::LeakyRelu => {
                    // Ordered less-than: false for NaN and -0.0, as `v < 0.0`.
                    let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, _mm512_setzero_ps());
                    _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(LRELU_SLOPE))
                }
                Activation::Linear => v,
            }
        }
    }

    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: AVX-512F is available and 16 floats at p are writable
        // (contract); storeu has no alignment requirement.
        unsafe { _mm512_storeu_ps(p, v) }
    }

    #[inline(always)]
    unsafe fn store_partial(p: *mut f32, v: __m512, n: usize) {
        // SAFETY: AVX-512F is available (contract); n < 16. A masked store
        // writes (and can fault on) only lanes 0..n, which are writable.
        unsafe { _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as __mmask16, v) }
    }

    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        // SAFETY: prefetch is SSE (x86-64 baseline) and never faults or
        // dereferences: any address is allowed.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
}

/// AVX2 + FMA: 8 lanes.
struct Avx2;

impl Avx2 {
    /// Lane mask for lanes `0..n`.
    ///
    /// # Safety
    /// AVX is available.
    #[inline(always)]
    unsafe fn mask(n: usize) -> __m256i {
        // SAFETY: AVX is available (contract).
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes)
        }
    }
}

impl GemmSimd for Avx2 {
    const LANES: usize = 8;
    type V = __m256;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: AVX is available (contract).
        unsafe { _mm256_setzero_ps() }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: AVX is available and 8 floats at p are readable (contract).
        unsafe { _mm256_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> __m256 {
        // SAFETY: AVX2 is available (contract). maskload reads only the lanes
        // whose mask is set, lanes 0..n, which are readable (contract).
        unsafe { _mm256_maskload_ps(p, Avx2::mask(n)) }
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> __m256 {
        // SAFETY: AVX is available and p is readable (contract).
        unsafe { _mm256_set1_ps(p.read()) }
    }

    #[inline(always)]
    unsafe fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA is available (contract).
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }

    #[inline(always)]
    unsafe fn bias_act(acc: __m256, bias: __m256, act: Activation) -> __m256 {
        // SAFETY: AVX is available (contract).
        unsafe {
            let v = _mm256_add_ps(acc, bias);
            match act {
                Activation::LeakyRelu => {
                    // Ordered less-than: false for NaN and -0.0, as `v < 0.0`.
                    let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(v, _mm256_setzero_ps());
                    let scaled = _mm256_mul_ps(v, _mm256_set1_ps(LRELU_SLOPE));
                    _mm256_blendv_ps(v, scaled, neg)
                }
                Activation::Linear => v,
            }
        }
    }

    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: AVX is available and 8 floats at p are writable (contract).
        unsafe { _mm256_storeu_ps(p, v) }
    }

    #[inline(always)]
    unsafe fn store_partial(p: *mut f32, v: __m256, n: usize) {
        // SAFETY: AVX2 is available (contract). maskstore writes only the
        // lanes whose mask is set, lanes 0..n, which are writable (contract).
        unsafe { _mm256_maskstore_ps(p, Avx2::mask(n), v) }
    }

    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        // SAFETY: prefetch is SSE (x86-64 baseline) and never faults or
        // dereferences: any address is allowed.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
}
