//! Roofline probes: this core's peak FMA throughput and its streaming read
//! bandwidth, so benchmark results can be expressed as a fraction of the
//! machine's bound (see `BENCHMARKS.md` and `benches/roofline.rs`).
//!
//! Nothing here is used by the mapping network; these are measurement loops.
//!
//! - [`fma_loop`] runs [`FMA_CHAINS`] independent multiply-add chains held in
//!   registers (`acc = acc * m + a`), so nothing but FMA issue rate limits it:
//!   [`fma_flops_per_iter`] flops per iteration.
//! - [`stream_sum`] sums a slice with [`SUM_ACCUMULATORS`] independent vector
//!   accumulators: one load and one add per vector, so for working sets past
//!   L1 it runs at the read bandwidth of the level the data sits in.
//!
//! The instruction set is picked with the same [`Kernel`] values as the GEMV
//! kernels: [`Kernel::Avx512`] (`zmm`, 16 lanes) and [`Kernel::Avx2`] (`ymm`
//! with FMA, 8 lanes) use `core::arch` intrinsics behind runtime detection
//! (`x86::avx512f_detected` / `x86::avx2_fma_detected`); every other kernel
//! runs the portable loop (`wide::f32x8`, whose instructions are chosen at
//! compile time). [`best`] picks the widest available.
#![allow(unsafe_code)]

use wide::f32x8;

use super::Kernel;
use crate::error::Error;

/// Independent FMA chains per iteration of [`fma_loop`]. Two FMA ports with a
/// 4-cycle latency need at least 8 in flight; 12 leaves headroom and still
/// fits the 16 `ymm` registers with the two constants.
pub const FMA_CHAINS: usize = 12;

/// Independent vector accumulators of [`stream_sum`] (add latency 4 x 2 ports).
pub const SUM_ACCUMULATORS: usize = 8;

/// The probe instruction set for `kernel`: [`Kernel::Avx512`] and
/// [`Kernel::Avx2`] as themselves, everything else [`Kernel::Portable`].
const fn isa(kernel: Kernel) -> Kernel {
    match kernel {
        Kernel::Avx512 => Kernel::Avx512,
        Kernel::Avx2 => Kernel::Avx2,
        _ => Kernel::Portable,
    }
}

/// The widest probe this CPU can run: [`Kernel::Avx512`], else
/// [`Kernel::Avx2`], else [`Kernel::Portable`].
pub fn best() -> Kernel {
    if Kernel::Avx512.is_available() {
        Kernel::Avx512
    } else if Kernel::Avx2.is_available() {
        Kernel::Avx2
    } else {
        Kernel::Portable
    }
}

/// f32 lanes per vector of the probe run for `kernel`.
pub const fn lanes(kernel: Kernel) -> usize {
    match isa(kernel) {
        Kernel::Avx512 => 16,
        _ => 8,
    }
}

/// Floating-point operations of one [`fma_loop`] iteration for `kernel`:
/// `FMA_CHAINS * lanes * 2` (a multiply-add counts as two).
pub const fn fma_flops_per_iter(kernel: Kernel) -> u64 {
    (FMA_CHAINS * lanes(kernel) * 2) as u64
}

/// Runs `iters` iterations of [`FMA_CHAINS`] independent vector FMA chains
/// with `kernel`'s instruction set ([`fma_flops_per_iter`] flops each) and
/// returns a checksum (so the work cannot be optimised away).
///
/// Errors with [`Error::KernelUnavailable`] if `kernel` cannot run here.
pub fn fma_loop(kernel: Kernel, iters: u64) -> Result<f32, Error> {
    if !kernel.is_available() {
        return Err(Error::KernelUnavailable);
    }
    // Values stay near the fixed point a / (1 - m) = 0.1: no overflow, no
    // subnormals.
    let m = core::hint::black_box(0.999_999_f32);
    let a = core::hint::black_box(1.0e-7_f32);
    match isa(kernel) {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if super::x86::avx512f_detected() => {
            // SAFETY: AVX-512F was detected on this CPU by the guard above.
            Ok(unsafe { x86::fma_avx512(iters, m, a) })
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if super::x86::avx2_fma_detected() => {
            // SAFETY: AVX2 and FMA were detected on this CPU by the guard above.
            Ok(unsafe { x86::fma_avx2(iters, m, a) })
        }
        _ => Ok(fma_portable(iters, m, a)),
    }
}

/// Sums `data` with [`SUM_ACCUMULATORS`] independent vector accumulators and
/// `kernel`'s instruction set (a read-bandwidth probe; the summation order is
/// unspecified).
///
/// Errors with [`Error::KernelUnavailable`] if `kernel` cannot run here.
pub fn stream_sum(kernel: Kernel, data: &[f32]) -> Result<f32, Error> {
    if !kernel.is_available() {
        return Err(Error::KernelUnavailable);
    }
    match isa(kernel) {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if super::x86::avx512f_detected() => {
            // SAFETY: AVX-512F was detected on this CPU by the guard above.
            Ok(unsafe { x86::sum_avx512(data) })
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if super::x86::avx2_fma_detected() => {
            // SAFETY: AVX2 and FMA were detected on this CPU by the guard above.
            Ok(unsafe { x86::sum_avx2(data) })
        }
        _ => Ok(sum_portable(data)),
    }
}

/// The portable FMA chains (`wide::f32x8::mul_add`: a fused multiply-add
/// where the compile-time target has one, else a multiply and an add).
fn fma_portable(iters: u64, m: f32, a: f32) -> f32 {
    let (mv, av) = (f32x8::splat(m), f32x8::splat(a));
    let mut acc = [f32x8::splat(1.0); FMA_CHAINS];
    for _ in 0..iters {
        for r in &mut acc {
            *r = r.mul_add(mv, av);
        }
    }
    acc.iter().fold(f32x8::ZERO, |s, &v| s + v).reduce_add()
}

/// The portable streaming sum.
fn sum_portable(data: &[f32]) -> f32 {
    const STEP: usize = 8 * SUM_ACCUMULATORS;
    let mut acc = [f32x8::ZERO; SUM_ACCUMULATORS];
    let chunks = data.chunks_exact(STEP);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (r, v) in acc.iter_mut().zip(chunk.chunks_exact(8)) {
            let mut lanes = [0.0f32; 8];
            lanes.copy_from_slice(v);
            *r += f32x8::from(lanes);
        }
    }
    let vec = acc.iter().fold(f32x8::ZERO, |s, &v| s + v).reduce_add();
    vec + tail.iter().sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    use super::{FMA_CHAINS, SUM_ACCUMULATORS};

    /// [`FMA_CHAINS`] chains of `_mm512_fmadd_ps`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma_avx512(iters: u64, m: f32, a: f32) -> f32 {
        let (mv, av) = (_mm512_set1_ps(m), _mm512_set1_ps(a));
        let mut acc = [_mm512_set1_ps(1.0); FMA_CHAINS];
        for _ in 0..iters {
            for r in &mut acc {
                *r = _mm512_fmadd_ps(*r, mv, av);
            }
        }
        let s = acc
            .iter()
            .fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v));
        _mm512_reduce_add_ps(s)
    }

    /// [`FMA_CHAINS`] chains of `_mm256_fmadd_ps`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma_avx2(iters: u64, m: f32, a: f32) -> f32 {
        let (mv, av) = (_mm256_set1_ps(m), _mm256_set1_ps(a));
        let mut acc = [_mm256_set1_ps(1.0); FMA_CHAINS];
        for _ in 0..iters {
            for r in &mut acc {
                *r = _mm256_fmadd_ps(*r, mv, av);
            }
        }
        let s = acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, &v| _mm256_add_ps(s, v));
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` has room for the 8 floats stored; storeu has no
        // alignment requirement.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), s) };
        lanes.iter().sum()
    }

    /// Streaming sum with [`SUM_ACCUMULATORS`] `zmm` accumulators.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sum_avx512(data: &[f32]) -> f32 {
        const STEP: usize = 16 * SUM_ACCUMULATORS;
        let mut acc = [_mm512_setzero_ps(); SUM_ACCUMULATORS];
        let chunks = data.chunks_exact(STEP);
        let tail = chunks.remainder();
        for chunk in chunks {
            for (i, r) in acc.iter_mut().enumerate() {
                // SAFETY: `chunk` holds STEP = 16 * SUM_ACCUMULATORS floats,
                // so the 16 at offset 16 * i (i < SUM_ACCUMULATORS) are in
                // bounds; loadu has no alignment requirement.
                let v = unsafe { _mm512_loadu_ps(chunk.as_ptr().add(16 * i)) };
                *r = _mm512_add_ps(*r, v);
            }
        }
        let s = acc
            .iter()
            .fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v));
        _mm512_reduce_add_ps(s) + tail.iter().sum::<f32>()
    }

    /// Streaming sum with [`SUM_ACCUMULATORS`] `ymm` accumulators.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sum_avx2(data: &[f32]) -> f32 {
        const STEP: usize = 8 * SUM_ACCUMULATORS;
        let mut acc = [_mm256_setzero_ps(); SUM_ACCUMULATORS];
        let chunks = data.chunks_exact(STEP);
        let tail = chunks.remainder();
        for chunk in chunks {
            for (i, r) in acc.iter_mut().enumerate() {
                // SAFETY: `chunk` holds STEP = 8 * SUM_ACCUMULATORS floats,
                // so the 8 at offset 8 * i (i < SUM_ACCUMULATORS) are in
                // bounds; loadu has no alignment requirement.
                let v = unsafe { _mm256_loadu_ps(chunk.as_ptr().add(8 * i)) };
                *r = _mm256_add_ps(*r, v);
            }
        }
        let s = acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, &v| _mm256_add_ps(s, v));
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` has room for the 8 floats stored; storeu has no
        // alignment requirement.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), s) };
        lanes.iter().sum::<f32>() + tail.iter().sum::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_available_probe_sums_and_multiplies() {
        let data: [f32; 300] = core::array::from_fn(|i| (i % 7) as f32);
        let exact: f32 = data.iter().sum();
        for &k in Kernel::ALL.iter().filter(|k| k.is_available()) {
            assert_eq!(stream_sum(k, &data), Ok(exact), "{k:?}");
            assert_eq!(stream_sum(k, &[]), Ok(0.0), "{k:?}");
            let c = fma_loop(k, 1000).expect("available");
            // 12 chains * lanes, each near 1.0 after 1000 steps of m = 1 - 1e-6.
            let n = (FMA_CHAINS * lanes(k)) as f32;
            assert!((c / n - 0.999).abs() < 1e-3, "{k:?}: {c}");
        }
        assert!(best().is_available());
    }
}
