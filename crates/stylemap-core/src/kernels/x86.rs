//! x86-64 kernels: AVX2+FMA (`f32x8`) and AVX-512F (`f32x16`), chosen at run
//! time.
//!
//! Both are thin `#[target_feature]` wrappers around the one generic GEMV body
//! shared with the NEON kernel (the private `kernels::simd` module). This
//! file also holds the x86 `Simd` implementations (how to load, broadcast,
//! multiply-add, reduce, store and prefetch a vector) that the batched
//! (`kernels::gemm`) and reduced-precision (`kernels::quant`) kernels use. CPU support is
//! detected with `cpufeatures` (CPUID + XGETBV, so the OS must also save the
//! wide registers), which works without `std` and caches its answer in an
//! atomic after the first call.
//!
//! Under Miri, `cpufeatures` reports only the features enabled at compile
//! time, so by default [`super::Kernel::best`] picks the portable kernel there;
//! building with `-C target-feature=+avx2,+fma` (or
//! `+avx512f,+avx512bw,+avx512vl,+avx512dq`; `wide` does not build with
//! `+avx512f` alone) makes Miri run these kernels too.
//!
//! Alignment: the kernels use unaligned loads and never peel, so results do
//! not depend on addresses. Speed does when a layer is cache-resident: a
//! 512x512 layer in L2 takes ~7.5 µs with AVX-512 when the weights are 64-byte
//! aligned and ~12.5 µs when they are not (streaming from L3 hides it).
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::simd::{self, Simd};
use crate::spec::{Activation, LRELU_SLOPE};

cpufeatures::new!(cpuid_avx2_fma, "avx2", "fma");
cpufeatures::new!(cpuid_avx512f, "avx512f");

/// Rows per block. Measured on a 2-core AVX-512 Xeon, 512x512: 8 rows beat
/// 2, 4 and 6 when the layer sits in L2 (AVX2 12.4 vs 14.8 µs at 4 rows) and
/// tie when the 8-layer network streams from L3 (~300 µs, the bandwidth bound).
const ROWS: usize = 8;

/// Whether this CPU (and OS) supports AVX2 and FMA. Cached after the first call.
#[inline]
pub fn avx2_fma_detected() -> bool {
    cpuid_avx2_fma::get()
}

/// Whether this CPU (and OS) supports AVX-512F. Cached after the first call.
#[inline]
pub fn avx512f_detected() -> bool {
    cpuid_avx512f::get()
}

/// `y = act(W x + b)`, `W` row-major `[y.len(), x.len()]`, with AVX2 + FMA
/// (8 lanes, 8 rows per block, masked tail).
///
/// Lengths are not a safety condition: rows past
/// `min(y.len(), bias.len(), weight.len() / x.len())` are left untouched.
///
/// # Safety
/// The CPU must support AVX2 and FMA (see [`avx2_fma_detected`]).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gemv_f32x8_avx2(
    weight: &[f32],
    bias: &[f32],
    x: &[f32],
    act: Activation,
    y: &mut [f32],
) {
    // SAFETY: AVX2 and FMA are available (this function's contract).
    unsafe { simd::gemv::<Avx2, ROWS>(weight, bias, x, act, y) }
}

/// `y = act(W x + b)`, `W` row-major `[y.len(), x.len()]`, with AVX-512F
/// (16 lanes, 8 rows per block, masked tail).
///
/// Lengths are not a safety condition: rows past
/// `min(y.len(), bias.len(), weight.len() / x.len())` are left untouched.
///
/// # Safety
/// The CPU must support AVX-512F (see [`avx512f_detected`]).
#[target_feature(enable = "avx512f")]
pub unsafe fn gemv_f32x16_avx512(
    weight: &[f32],
    bias: &[f32],
    x: &[f32],
    act: Activation,
    y: &mut [f32],
) {
    // SAFETY: AVX-512F is available (this function's contract).
    unsafe { simd::gemv::<Avx512, ROWS>(weight, bias, x, act, y) }
}

/// Runs `kernel` if it is an x86 kernel this CPU supports; returns whether it ran.
#[inline]
pub(crate) fn dispatch(
    kernel: super::Kernel,
    weight: &[f32],
    bias: &[f32],
    x: &[f32],
    act: Activation,
    y: &mut [f32],
) -> bool {
    match kernel {
        super::Kernel::Avx512 if avx512f_detected() => {
            // SAFETY: AVX-512F was detected on this CPU by the guard above.
            unsafe { gemv_f32x16_avx512(weight, bias, x, act, y) };
            true
        }
        super::Kernel::Avx2 if avx2_fma_detected() => {
            // SAFETY: AVX2 and FMA were detected on this CPU by the guard above.
            unsafe { gemv_f32x8_avx2(weight, bias, x, act, y) };
            true
        }
        _ => false,
    }
}

/// Sums the four lanes of `s` as `(s0 + s2) + (s1 + s3)`.
#[inline(always)]
fn reduce128(s: __m128) -> f32 {
    // SAFETY: SSE is part of the x86-64 baseline, enabled on every x86-64 target.
    unsafe {
        let t = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps::<0b01>(t, t)))
    }
}

/// AVX2 + FMA: 8 lanes.
pub(crate) struct Avx2;

impl Avx2 {
    /// Lane mask for lanes `0..n`.
    ///
    /// # Safety
    /// AVX is available.
    #[inline(always)]
    pub(crate) unsafe fn mask(n: usize) -> __m256i {
        // SAFETY: AVX is available (contract).
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes)
        }
    }

    /// Halves then [`reduce128`]: lane i + lane i+4 first.
    ///
    /// # Safety
    /// AVX is available.
    #[inline(always)]
    unsafe fn reduce256(v: __m256) -> f32 {
        // SAFETY: AVX is available (contract).
        let s = unsafe { _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v)) };
        reduce128(s)
    }
}

impl Simd for Avx2 {
    const LANES: usize = 8;
    type V = __m256;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: AVX is available (contract).
        unsafe { _mm256_setzero_ps() }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: AVX is available and 8 floats at p are readable (contract);
        // loadu has no alignment requirement.
        unsafe { _mm256_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> __m256 {
        // SAFETY: AVX2 is available (contract). maskload reads only the lanes
        // whose mask is set, lanes 0..n, which are readable (contract), and
        // zeroes the others.
        unsafe { _mm256_maskload_ps(p, Avx2::mask(n)) }
    }

    #[inline(always)]
    unsafe fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA is available (contract).
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }

    #[inline(always)]
    unsafe fn reduce(v: __m256) -> f32 {
        // SAFETY: AVX is available (contract).
        unsafe { Avx2::reduce256(v) }
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> __m256 {
        // SAFETY: AVX is available and p is readable (contract).
        unsafe { _mm256_set1_ps(p.read()) }
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

/// AVX-512F: 16 lanes.
pub(crate) struct Avx512;

impl Simd for Avx512 {
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
    unsafe fn mul_add(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (contract).
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }

    #[inline(always)]
    unsafe fn reduce(v: __m512) -> f32 {
        // SAFETY: AVX-512F (which implies AVX) is available (contract).
        unsafe {
            // lane i + lane i+8, then the 8-lane reduction.
            let lo = _mm512_castps512_ps256(v);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            Avx2::reduce256(_mm256_add_ps(lo, hi))
        }
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> __m512 {
        // SAFETY: AVX-512F is available and p is readable (contract).
        unsafe { _mm512_set1_ps(p.read()) }
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
