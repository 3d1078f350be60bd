//! The Box-Muller sampler's `unsafe` corner: a vectorisable square root, and
//! the run-time dispatch of the fill to AVX-512 / AVX2 builds of the same
//! generic code (x86-64).
//!
//! [`sqrt`] calls the SSE2 / NEON square-root intrinsic: core has no stable
//! `f64::sqrt` in `no_std`, and `libm::sqrt` is a scalar routine (software
//! or inline asm) that LLVM cannot vectorise. Calling an intrinsic needs
//! `unsafe` even where its target feature is on for the whole build.
//!
//! `fill_avx512` / `fill_avx2` are `box_muller::fill_portable` compiled with
//! AVX-512F / AVX2 enabled, so LLVM vectorises the block loop 8 or 4 lanes
//! wide instead of SSE2's 2 (about 1.0 / 1.3 / 2.1 µs for 512 values here).
//! Neither the body nor anything it calls asks for a fused multiply-add, and
//! Rust never contracts `a * b + c` (it emits no `contract` flags), so even
//! though rustc's `avx512f` implies `fma`, every operation stays the same
//! correctly rounded IEEE operation as in the baseline build (the
//! disassembly has no `vfmadd`) and the results are bit-identical (tested
//! below, and by the golden vectors on this AVX-512 machine). CPU support is
//! read from the kernels' cached detection
//! ([`avx512f_detected`](crate::kernels::x86::avx512f_detected),
//! [`avx2_fma_detected`](crate::kernels::x86::avx2_fma_detected)); the
//! `force-scalar` feature turns the dispatch off.
#![allow(unsafe_code)]

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use rand_core::Rng;

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use super::box_muller::{Sample, fill_portable};

/// Correctly rounded square root, in a form LLVM vectorises (`llvm.sqrt`).
///
/// IEEE-754 requires `sqrt` to be correctly rounded, so every branch gives
/// the same bits; they differ only in speed.
#[inline(always)]
pub(super) fn sqrt(x: f64) -> f64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use core::arch::x86_64::{_mm_cvtsd_f64, _mm_set_sd, _mm_sqrt_pd};
        // SAFETY: SSE2 is enabled for the whole build (the cfg above); the
        // intrinsics touch no memory.
        unsafe { _mm_cvtsd_f64(_mm_sqrt_pd(_mm_set_sd(x))) }
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        use core::arch::aarch64::{vdup_n_f64, vget_lane_f64, vsqrt_f64};
        // SAFETY: NEON is enabled for the whole build (the cfg above); the
        // intrinsics touch no memory.
        unsafe { vget_lane_f64::<0>(vsqrt_f64(vdup_n_f64(x))) }
    }
    #[cfg(not(any(
        all(target_arch = "x86_64", target_feature = "sse2"),
        all(target_arch = "aarch64", target_feature = "neon")
    )))]
    {
        libm::sqrt(x)
    }
}

/// `fill_portable` built with AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2<T: Sample, R: Rng + ?Sized>(rng: &mut R, out: &mut [T]) {
    fill_portable(rng, out);
}

/// `fill_portable` built with AVX-512F.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "avx512f")]
unsafe fn fill_avx512<T: Sample, R: Rng + ?Sized>(rng: &mut R, out: &mut [T]) {
    fill_portable(rng, out);
}

/// Runs the AVX-512F build if this CPU has AVX-512F, else the AVX2 build if
/// it has AVX2 (unless the `force-scalar` feature is on); returns whether
/// either ran.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
pub(super) fn fill_dispatched<T: Sample, R: Rng + ?Sized>(rng: &mut R, out: &mut [T]) -> bool {
    if cfg!(feature = "force-scalar") {
        return false;
    }
    if crate::kernels::x86::avx512f_detected() {
        // SAFETY: AVX-512F was detected on this CPU just above.
        unsafe { fill_avx512(rng, out) };
        return true;
    }
    if !crate::kernels::x86::avx2_fma_detected() {
        return false;
    }
    // SAFETY: AVX2 (and FMA, unused here) was detected on this CPU just above.
    unsafe { fill_avx2(rng, out) };
    true
}

#[cfg(all(test, target_arch = "x86_64", target_feature = "sse2"))]
mod tests {
    use rand_core::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    use super::super::box_muller::fill_portable;
    use super::*;

    /// The AVX-512 and AVX2 builds give the baseline build's bits (each
    /// where the CPU has it).
    #[test]
    #[cfg_attr(miri, ignore)]
    fn simd_builds_are_bit_identical_to_the_baseline() {
        use crate::kernels::x86::{avx2_fma_detected, avx512f_detected};
        for seed in 0..50u64 {
            for n in [1usize, 2, 17, 513] {
                let mut want = [0.0f64; 513];
                fill_portable(&mut Xoshiro256PlusPlus::seed_from_u64(seed), &mut want[..n]);
                if avx512f_detected() {
                    let mut got = [0.0f64; 513];
                    // SAFETY: AVX-512F was detected just above.
                    unsafe {
                        fill_avx512(&mut Xoshiro256PlusPlus::seed_from_u64(seed), &mut got[..n])
                    };
                    assert_eq!(
                        got.map(f64::to_bits),
                        want.map(f64::to_bits),
                        "avx512 seed {seed} n {n}"
                    );
                }
                if avx2_fma_detected() {
                    let mut got = [0.0f64; 513];
                    // SAFETY: AVX2 was detected just above.
                    unsafe {
                        fill_avx2(&mut Xoshiro256PlusPlus::seed_from_u64(seed), &mut got[..n])
                    };
                    assert_eq!(
                        got.map(f64::to_bits),
                        want.map(f64::to_bits),
                        "avx2 seed {seed} n {n}"
                    );
                }
            }
        }
    }

    /// The public entry points (dispatched unless `force-scalar`) give the
    /// baseline build's bits and consume the same words.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn dispatched_fill_is_bit_identical_to_the_baseline() {
        for seed in 0..200u64 {
            for n in [0usize, 1, 2, 3, 15, 16, 17, 511, 512, 513] {
                let mut a = [0.0f64; 513];
                let mut b = [0.0f64; 513];
                let mut ra = Xoshiro256PlusPlus::seed_from_u64(seed);
                let mut rb = ra.clone();
                // What `box_muller::fill` does.
                let ran = fill_dispatched(&mut ra, &mut a[..n]);
                if !ran {
                    fill_portable(&mut ra, &mut a[..n]);
                }
                fill_portable(&mut rb, &mut b[..n]);
                let simd = crate::kernels::x86::avx2_fma_detected()
                    || crate::kernels::x86::avx512f_detected();
                assert_eq!(ran, simd && !cfg!(feature = "force-scalar"));
                assert_eq!(
                    a.map(f64::to_bits),
                    b.map(f64::to_bits),
                    "seed {seed} n {n}"
                );
                assert_eq!(ra, rb, "same words consumed");
                let mut a32 = [0.0f32; 513];
                let mut b32 = [0.0f32; 513];
                if !fill_dispatched(&mut ra, &mut a32[..n]) {
                    fill_portable(&mut ra, &mut a32[..n]);
                }
                fill_portable(&mut rb, &mut b32[..n]);
                assert_eq!(
                    a32.map(f32::to_bits),
                    b32.map(f32::to_bits),
                    "seed {seed} n {n}"
                );
            }
        }
    }
}
