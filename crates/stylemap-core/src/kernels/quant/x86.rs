//! x86-64 reduced-precision kernels: AVX-512F (one zmm per panel row-slice)
//! and AVX2 + FMA (two ymm), chosen at run time.
//!
//! Thin `#[target_feature]` wrappers around the one generic body (the private
//! `quant::simd` module), over the f32 vector primitives every kernel family
//! shares ([`crate::kernels::x86`]); this file only says how to widen the
//! stored weights:
//!
//! | format | AVX-512F | AVX2 |
//! |---|---|---|
//! | f16 | `vcvtph2ps zmm, m256` | `vcvtph2ps ymm, m128` with F16C, else integer ops (`vpmovzxwd`, masks, a multiply by 2^112) |
//! | bf16 | with AVX-512BW: `vbroadcasti64x4` + `vpshufb` (rows permuted within the vector, put back once per sum); AVX-512F alone: `vpmovzxwd` + `vpslld 16` | `vbroadcasti128` + `vpshufb` |
//! | int8 | `vpmovsxbd` + `vcvtdq2ps` | the same on ymm |
//!
//! Detection is the f32 kernels' (`cpufeatures`, cached) plus F16C, which
//! `cpufeatures` does not know: CPUID leaf 1 ECX bit 29, read once and cached
//! in an atomic, and only trusted together with the AVX2 check (which also
//! verifies that the OS saves the ymm registers). Without F16C the AVX2 f16
//! path never executes `vcvtph2ps`. AVX-512F implies `vcvtph2ps zmm`.
//!
//! The bf16 shuffles: a broadcast load is a load-port operation only, so
//! each 16 weights cost one shuffle uop and the FMA (2 uops) instead of
//! `vpmovzxwd` + `vpslld` + FMA (3); the results are the same bits, since
//! both widen exactly. AVX-512BW (`vpshufb zmm`) is detected separately
//! (`cpufeatures`, cached); an AVX-512F CPU without BW keeps the shifts.
//!
//! AVX-512 BF16 (`vdpbf16ps`) and VNNI (`vpdpbusd`) multiply bf16 or int8
//! *pairs*: they need the activations in bf16/int8 too, which the contract
//! excludes (activations and accumulation are f32). Splitting each f32
//! activation exactly into three bf16 parts keeps it f32 but costs three
//! `vdpbf16ps` (plus a `vpermw` to pair the weights) per 32 weights, and on
//! the 2-core AVX-512 Xeon here one `vdpbf16ps zmm` takes ~2 cycles of
//! *both* 512-bit ports (measured: 8 independent ones 8.5 cycles, 4 of them
//! with 4 FMAs 10 cycles, with 4 `vpermw` 12 cycles): ~7 cycles per 32
//! weights against 3 for the shifts and 2 for the shuffle, so it is not
//! used. (`vpermw zmm` itself measured 1 cycle of both ports, no cheaper
//! than `vpmovzxwd` + `vpslld`.)
#![allow(unsafe_code)]

use core::arch::x86_64::*;
use core::sync::atomic::{AtomicU8, Ordering};

use super::simd::{self, Shapes256, Shapes512, Widen};
use super::{QNR, QWeights};
use crate::kernels::x86::{Avx2, Avx512, avx2_fma_detected, avx512f_detected};
use crate::spec::Activation;

/// 0: not yet detected, 1: absent, 2: present.
static F16C: AtomicU8 = AtomicU8::new(0);

/// Whether this CPU supports F16C (`vcvtph2ps`) along with AVX2 and FMA (and
/// the OS saves the ymm registers). Cached after the first call.
#[inline]
pub fn f16c_detected() -> bool {
    match F16C.load(Ordering::Relaxed) {
        0 => {
            let yes = avx2_fma_detected() && cpuid_f16c();
            F16C.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
        v => v == 2,
    }
}

#[cfg(not(miri))]
fn cpuid_f16c() -> bool {
    // CPUID leaf 1 exists on every x86-64 CPU; F16C is ECX bit 29.
    __cpuid(1).ecx & (1 << 29) != 0
}

#[cfg(miri)]
fn cpuid_f16c() -> bool {
    // Miri has no CPUID; as cpufeatures does, trust the build's features.
    cfg!(target_feature = "f16c")
}

cpufeatures::new!(cpuid_avx512bw, "avx512f", "avx512bw");

/// Whether this CPU (and OS) supports AVX-512F and AVX-512BW (`vpshufb
/// zmm`, used to widen bf16 in one shuffle). Cached after the first call.
#[inline]
pub fn avx512bw_detected() -> bool {
    cpuid_avx512bw::get()
}

/// AVX-512: panels per block at batch 1 etc. (see `simd::Shapes512`).
type S512 = Shapes512;
/// AVX2: see `simd::Shapes256`.
type S256 = Shapes256;

/// `y[s, :] = act(W x[s, :] + b)` with AVX-512F over any reduced-precision
/// layout ([`super`]); `out = bias.len()`, `batch = x.len() / inp`.
///
/// Lengths are not a safety condition: if they do not chain (see
/// [`super::qgemm_bias_act`]) nothing is written.
///
/// # Safety
/// The CPU must support AVX-512F (see [`avx512f_detected`]).
#[target_feature(enable = "avx512f")]
pub unsafe fn qgemm_f32x16_avx512(
    w: QWeights<'_>,
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
) {
    let dims = super::dims(&w, bias.len(), x.len(), inp, y.len());
    // SAFETY: AVX-512F is available (this function's contract); dims are
    // these slices' own.
    unsafe {
        match w {
            QWeights::F16(q) => {
                simd::qgemm::<S512, F16x16, 1, false>(dims, q, &[], 0, bias, x, inp, act, y)
            }
            QWeights::Bf16(q) => {
                simd::qgemm::<S512, Bf16x16, 1, false>(dims, q, &[], 0, bias, x, inp, act, y)
            }
            QWeights::Int8 { q, scales, group } => {
                simd::qgemm::<S512, I8x16, 1, true>(dims, q, scales, group, bias, x, inp, act, y)
            }
        }
    }
}

/// bf16 weights with AVX-512F + BW: each load of 16 weights is one
/// broadcast load and one `vpshufb` (see `Bf16x16Shuf`) instead of
/// `vpmovzxwd` + `vpslld`; the same bits as [`qgemm_f32x16_avx512`] (both
/// widen exactly and run the same FMAs per row).
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512BW (see [`avx512bw_detected`]).
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn qgemm_bf16_f32x16_avx512bw(
    q: &[u16],
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
) {
    let dims = super::dims(&QWeights::Bf16(q), bias.len(), x.len(), inp, y.len());
    // SAFETY: AVX-512F and BW are available (this function's contract); dims
    // are these slices' own.
    unsafe { simd::qgemm::<S512, Bf16x16Shuf, 1, false>(dims, q, &[], 0, bias, x, inp, act, y) }
}

/// `y[s, :] = act(W x[s, :] + b)` with AVX2 + FMA over any reduced-precision
/// layout; f16 is widened with integer operations (no F16C needed; see
/// [`qgemm_f16_f32x8_avx2_f16c`] for the faster F16C path).
///
/// Lengths are not a safety condition: if they do not chain nothing is
/// written.
///
/// # Safety
/// The CPU must support AVX2 and FMA (see [`avx2_fma_detected`]).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn qgemm_f32x8_avx2(
    w: QWeights<'_>,
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
) {
    let dims = super::dims(&w, bias.len(), x.len(), inp, y.len());
    // SAFETY: AVX2 and FMA are available (this function's contract); dims
    // are these slices' own.
    unsafe {
        match w {
            QWeights::F16(q) => {
                simd::qgemm::<S256, F16x8Soft, 2, false>(dims, q, &[], 0, bias, x, inp, act, y)
            }
            QWeights::Bf16(q) => {
                simd::qgemm::<S256, Bf16x8, 2, false>(dims, q, &[], 0, bias, x, inp, act, y)
            }
            QWeights::Int8 { q, scales, group } => {
                simd::qgemm::<S256, I8x8, 2, true>(dims, q, scales, group, bias, x, inp, act, y)
            }
        }
    }
}

/// f16 weights with AVX2 + FMA + F16C (`vcvtph2ps ymm`); same results as
/// the integer widening of [`qgemm_f32x8_avx2`] (both are exact).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C (see [`f16c_detected`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn qgemm_f16_f32x8_avx2_f16c(
    q: &[u16],
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
) {
    let dims = super::dims(&QWeights::F16(q), bias.len(), x.len(), inp, y.len());
    // SAFETY: AVX2, FMA and F16C are available (this function's contract);
    // dims are these slices' own.
    unsafe { simd::qgemm::<S256, F16x8, 2, false>(dims, q, &[], 0, bias, x, inp, act, y) }
}

/// Runs `kernel` if it is an x86 kernel this CPU supports; returns whether
/// it ran.
#[inline]
pub(crate) fn dispatch(
    kernel: crate::Kernel,
    w: QWeights<'_>,
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
) -> bool {
    match (kernel, w) {
        (crate::Kernel::Avx512, QWeights::Bf16(q)) if avx512bw_detected() => {
            // SAFETY: AVX-512F and BW were detected by the guard above.
            unsafe { qgemm_bf16_f32x16_avx512bw(q, bias, x, inp, act, y) };
            true
        }
        (crate::Kernel::Avx512, _) if avx512f_detected() => {
            // SAFETY: AVX-512F was detected on this CPU by the guard above.
            unsafe { qgemm_f32x16_avx512(w, bias, x, inp, act, y) };
            true
        }
        (crate::Kernel::Avx2, QWeights::F16(q)) if f16c_detected() => {
            // SAFETY: AVX2, FMA and F16C were detected by the guard above.
            unsafe { qgemm_f16_f32x8_avx2_f16c(q, bias, x, inp, act, y) };
            true
        }
        (crate::Kernel::Avx2, _) if avx2_fma_detected() => {
            // SAFETY: AVX2 and FMA were detected on this CPU by the guard above.
            unsafe { qgemm_f32x8_avx2(w, bias, x, inp, act, y) };
            true
        }
        _ => false,
    }
}

/// f16 on AVX-512F: one `vcvtph2ps zmm, m256`.
struct F16x16;

impl Widen<1> for F16x16 {
    type S = Avx512;
    type T = u16;

    #[inline(always)]
    unsafe fn widen(p: *const u16) -> [__m512; 1] {
        // SAFETY: AVX-512F is available and the 16 u16 (32 bytes) at p are
        // readable (contract); loadu has no alignment requirement.
        unsafe { [_mm512_cvtph_ps(_mm256_loadu_si256(p.cast()))] }
    }
}

/// bf16 on AVX-512F: zero-extend to 32 bits, shift into the high half.
struct Bf16x16;

impl Widen<1> for Bf16x16 {
    type S = Avx512;
    type T = u16;

    #[inline(always)]
    unsafe fn widen(p: *const u16) -> [__m512; 1] {
        // SAFETY: AVX-512F is available and the 16 u16 at p are readable
        // (contract); loadu has no alignment requirement.
        unsafe {
            let h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()));
            [_mm512_castsi512_ps(_mm512_slli_epi32::<16>(h))]
        }
    }
}

/// bf16 on AVX-512F + BW: one `vbroadcasti64x4` (a load-port operation)
/// puts rows 0-7 in 128-bit lanes 0 and 2 and rows 8-15 in lanes 1 and 3;
/// one `vpshufb` moves each lane's rows into the high halves of its four
/// 32-bit lanes and zeroes the low halves (index bytes with bit 7 set), so
/// the f32 lanes hold rows 0-3, 8-11, 4-7, 12-15: exact, and 1 shuffle uop
/// instead of 2 per 16 weights. [`Widen::order`] swaps 128-bit lanes 1 and
/// 2 back, once per finished sum.
struct Bf16x16Shuf;

impl Widen<1> for Bf16x16Shuf {
    type S = Avx512;
    type T = u16;

    #[inline(always)]
    unsafe fn widen(p: *const u16) -> [__m512; 1] {
        // Per 128-bit lane: lanes 0 and 1 take words 0-3 of theirs, lanes 2
        // and 3 words 4-7; -1 (bit 7 set) zeroes the byte.
        const IDX: [i8; 64] = [
            -1, -1, 0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7, //
            -1, -1, 0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7, //
            -1, -1, 8, 9, -1, -1, 10, 11, -1, -1, 12, 13, -1, -1, 14, 15, //
            -1, -1, 8, 9, -1, -1, 10, 11, -1, -1, 12, 13, -1, -1, 14, 15,
        ];
        // SAFETY: AVX-512F and BW are available, the 16 u16 (32 bytes) at p
        // are readable and IDX holds 64 bytes (contract: only instantiated
        // under `enable = "avx512f,avx512bw"`); loadu has no alignment
        // requirement.
        unsafe {
            let idx = _mm512_loadu_si512(IDX.as_ptr().cast());
            let rows = _mm512_broadcast_i64x4(_mm256_loadu_si256(p.cast()));
            [_mm512_castsi512_ps(_mm512_shuffle_epi8(rows, idx))]
        }
    }

    #[inline(always)]
    unsafe fn order(v: [__m512; 1]) -> [__m512; 1] {
        // SAFETY: AVX-512F is available (contract). Lanes (0, 2, 1, 3).
        unsafe { [_mm512_shuffle_f32x4::<0b11_01_10_00>(v[0], v[0])] }
    }
}

/// int8 on AVX-512F: sign-extend to 32 bits, convert (exact).
struct I8x16;

impl Widen<1> for I8x16 {
    type S = Avx512;
    type T = i8;

    #[inline(always)]
    unsafe fn widen(p: *const i8) -> [__m512; 1] {
        // SAFETY: AVX-512F is available and the 16 bytes at p are readable
        // (contract); loadu has no alignment requirement.
        unsafe {
            [_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                p.cast(),
            )))]
        }
    }
}

/// f16 with F16C: two `vcvtph2ps ymm, m128`.
struct F16x8;

impl Widen<2> for F16x8 {
    type S = Avx2;
    type T = u16;

    #[inline(always)]
    unsafe fn widen(p: *const u16) -> [__m256; 2] {
        // SAFETY: F16C is available and the 16 u16 at p are readable
        // (contract: only instantiated under `enable = "f16c"`); loadu has no
        // alignment requirement.
        unsafe {
            [
                _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
                _mm256_cvtph_ps(_mm_loadu_si128(p.add(8).cast())),
            ]
        }
    }
}

/// f16 without F16C: integer widening, exact (see [`f16x8_soft`]).
struct F16x8Soft;

impl Widen<2> for F16x8Soft {
    type S = Avx2;
    type T = u16;

    #[inline(always)]
    unsafe fn widen(p: *const u16) -> [__m256; 2] {
        // SAFETY: AVX2 is available and the 16 u16 at p are readable
        // (contract).
        unsafe {
            [
                f16x8_soft(_mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()))),
                f16x8_soft(_mm256_cvtepu16_epi32(_mm_loadu_si128(p.add(8).cast()))),
            ]
        }
    }
}

/// IEEE binary16 bits (zero-extended in each 32-bit lane) to f32, exactly,
/// with AVX2 integer operations and one multiply: exponent and mantissa
/// shifted into f32 position read as a number `2^-112` times too small
/// (subnormal halves land on f32 subnormals, still exact), so `* 2^112`
/// restores every finite value; inf/NaN (exponent 31) get the f32 exponent
/// 255 with the mantissa kept; then the sign. Relies on subnormals not being
/// flushed (Rust never sets FTZ/DAZ).
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn f16x8_soft(h: __m256i) -> __m256 {
    // SAFETY: AVX2 is available (contract).
    unsafe {
        let em = _mm256_slli_epi32::<13>(_mm256_and_si256(h, _mm256_set1_epi32(0x7fff)));
        let sign = _mm256_slli_epi32::<16>(_mm256_and_si256(h, _mm256_set1_epi32(0x8000)));
        let scaled = _mm256_mul_ps(
            _mm256_castsi256_ps(em),
            _mm256_set1_ps(f32::from_bits(0x7780_0000)),
        );
        let exp = _mm256_and_si256(h, _mm256_set1_epi32(0x7c00));
        let special = _mm256_cmpeq_epi32(exp, _mm256_set1_epi32(0x7c00));
        let infnan = _mm256_castsi256_ps(_mm256_or_si256(em, _mm256_set1_epi32(0x7f80_0000)));
        let v = _mm256_blendv_ps(scaled, infnan, _mm256_castsi256_ps(special));
        _mm256_or_ps(v, _mm256_castsi256_ps(sign))
    }
}

/// bf16 on AVX2: `vbroadcasti128` (a load-port operation) puts 8 rows in
/// both 128-bit lanes, one `vpshufb` moves rows 0-3 (in lane 0) and rows 4-7
/// (in lane 1) into the high halves of the 32-bit lanes and zeroes the low
/// halves: exact, rows in order, one shuffle uop instead of `vpmovzxwd` +
/// `vpslld`.
struct Bf16x8;

impl Widen<2> for Bf16x8 {
    type S = Avx2;
    type T = u16;

    #[inline(always)]
    unsafe fn widen(p: *const u16) -> [__m256; 2] {
        // Lane 0 takes words 0-3, lane 1 words 4-7; -1 (bit 7 set) zeroes.
        const IDX: [i8; 32] = [
            -1, -1, 0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7, //
            -1, -1, 8, 9, -1, -1, 10, 11, -1, -1, 12, 13, -1, -1, 14, 15,
        ];
        // SAFETY: AVX2 is available, the 16 u16 at p are readable and IDX
        // holds 32 bytes (contract); loadu has no alignment requirement.
        unsafe {
            let idx = _mm256_loadu_si256(IDX.as_ptr().cast());
            let lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.cast()));
            let hi = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.add(8).cast()));
            [
                _mm256_castsi256_ps(_mm256_shuffle_epi8(lo, idx)),
                _mm256_castsi256_ps(_mm256_shuffle_epi8(hi, idx)),
            ]
        }
    }
}

/// The former AVX2 bf16 widening (`vpmovzxwd` + `vpslld 16`), kept only to
/// check the shuffles bit for bit in the tests below.
#[cfg(test)]
struct Bf16x8Shift;

#[cfg(test)]
impl Widen<2> for Bf16x8Shift {
    type S = Avx2;
    type T = u16;

    #[inline(always)]
    unsafe fn widen(p: *const u16) -> [__m256; 2] {
        // SAFETY: AVX2 is available and the 16 u16 at p are readable
        // (contract).
        unsafe {
            let lo = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
            let hi = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.add(8).cast()));
            [
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(lo)),
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(hi)),
            ]
        }
    }
}

/// int8 on AVX2: two `vpmovsxbd ymm, m64` + `vcvtdq2ps`.
struct I8x8;

impl Widen<2> for I8x8 {
    type S = Avx2;
    type T = i8;

    #[inline(always)]
    unsafe fn widen(p: *const i8) -> [__m256; 2] {
        // SAFETY: AVX2 is available and the 16 bytes at p are readable
        // (contract); loadl reads 8 bytes, unaligned.
        unsafe {
            let lo = _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast()));
            let hi = _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.add(8).cast()));
            [_mm256_cvtepi32_ps(lo), _mm256_cvtepi32_ps(hi)]
        }
    }
}

const _: () = assert!(QNR == 16, "the widening above assumes 16-row panels");

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::kernels::quant::scalar::{bf16_to_f32, f16_to_f32};
    use std::{vec, vec::Vec};

    /// The no-F16C widening equals the oracle's conversion on all 65536
    /// halves, bit for bit (NaN payloads included).
    #[test]
    #[cfg_attr(miri, ignore = "65536 values are slow under miri")]
    fn soft_f16_widening_is_exact_for_every_half() {
        if !avx2_fma_detected() {
            return;
        }
        let all: [u16; 1 << 16] = core::array::from_fn(|i| i as u16);
        for chunk in all.chunks_exact(QNR) {
            // SAFETY: AVX2 was detected above; chunk holds QNR u16.
            let v = unsafe { soft(chunk.as_ptr()) };
            for (j, &h) in chunk.iter().enumerate() {
                assert_eq!(v[j].to_bits(), f16_to_f32(h).to_bits(), "{h:#06x}");
            }
        }
    }

    /// # Safety
    /// AVX2 is available and `p..p + QNR` is readable.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn soft(p: *const u16) -> [f32; QNR] {
        let mut out = [0.0f32; QNR];
        // SAFETY: AVX2 is enabled here; p holds QNR u16 (caller); out holds
        // QNR floats.
        unsafe {
            let [a, b] = F16x8Soft::widen(p);
            _mm256_storeu_ps(out.as_mut_ptr(), a);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), b);
        }
        out
    }

    /// The shuffle widenings of bf16 (AVX-512BW after [`Widen::order`], and
    /// AVX2) equal the oracle's conversion on all 65536 values, bit for bit.
    #[test]
    #[cfg_attr(miri, ignore = "65536 values are slow under miri")]
    fn bf16_shuffle_widenings_are_exact_for_every_value() {
        let all: [u16; 1 << 16] = core::array::from_fn(|i| i as u16);
        for chunk in all.chunks_exact(QNR) {
            let mut got = vec![];
            if avx512bw_detected() {
                // SAFETY: AVX-512F and BW were detected; chunk holds QNR u16.
                got.push(unsafe { bf16_512(chunk.as_ptr()) });
            }
            if avx2_fma_detected() {
                // SAFETY: AVX2 was detected; chunk holds QNR u16.
                got.push(unsafe { bf16_256(chunk.as_ptr()) });
            }
            for v in got {
                for (j, &h) in chunk.iter().enumerate() {
                    assert_eq!(v[j].to_bits(), bf16_to_f32(h).to_bits(), "{h:#06x}");
                }
            }
        }
    }

    /// # Safety
    /// AVX-512F and BW are available and `p..p + QNR` is readable.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn bf16_512(p: *const u16) -> [f32; QNR] {
        let mut out = [0.0f32; QNR];
        // SAFETY: AVX-512F and BW are enabled here; p holds QNR u16
        // (caller); out holds QNR floats.
        unsafe {
            let v = Bf16x16Shuf::order(Bf16x16Shuf::widen(p));
            _mm512_storeu_ps(out.as_mut_ptr(), v[0]);
        }
        out
    }

    /// # Safety
    /// AVX2 is available and `p..p + QNR` is readable.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn bf16_256(p: *const u16) -> [f32; QNR] {
        let mut out = [0.0f32; QNR];
        // SAFETY: AVX2 is enabled here; p holds QNR u16 (caller); out holds
        // QNR floats.
        unsafe {
            let [a, b] = Bf16x8::widen(p);
            _mm256_storeu_ps(out.as_mut_ptr(), a);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), b);
        }
        out
    }

    /// AVX2 with the former shift widening (the reference for the shuffle).
    ///
    /// # Safety
    /// AVX2 and FMA are available.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn bf16_avx2_shift(q: &[u16], bias: &[f32], x: &[f32], inp: usize, y: &mut [f32]) {
        let act = Activation::LeakyRelu;
        let dims =
            crate::kernels::quant::dims(&QWeights::Bf16(q), bias.len(), x.len(), inp, y.len());
        // SAFETY: AVX2 and FMA are available (contract); dims are these
        // slices' own.
        unsafe { simd::qgemm::<S256, Bf16x8Shift, 2, false>(dims, q, &[], 0, bias, x, inp, act, y) }
    }

    /// The whole bf16 kernels with the shuffle widenings give the bits of
    /// the shift widening (`vpmovzxwd` + `vpslld`: the AVX-512F-only path
    /// that CPUs without BW take, and the former AVX2 path), on every bf16
    /// value, NaN and infinity included, at batches 1, 3 and 9.
    #[test]
    #[cfg_attr(miri, ignore = "slow under miri")]
    fn bf16_shuffle_kernels_match_the_shift_widening() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for (out, inp, batch) in [
            (16usize, 16usize, 1usize),
            (37, 29, 3),
            (512, 512, 1),
            (70, 63, 9),
        ] {
            let plen = out.div_ceil(QNR) * QNR * inp;
            let q: Vec<u16> = (0..plen).map(|_| next() as u16).collect();
            let f = |v: u64| (v >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let bias: Vec<f32> = (0..out).map(|_| f(next())).collect();
            let x: Vec<f32> = (0..batch * inp).map(|_| f(next())).collect();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let act = Activation::LeakyRelu;
            if avx512bw_detected() {
                let (mut a, mut b) = (vec![0.0f32; batch * out], vec![1.0f32; batch * out]);
                // SAFETY: AVX-512F and BW were detected above.
                unsafe {
                    qgemm_f32x16_avx512(QWeights::Bf16(&q), &bias, &x, inp, act, &mut a);
                    qgemm_bf16_f32x16_avx512bw(&q, &bias, &x, inp, act, &mut b);
                }
                assert_eq!(bits(&a), bits(&b), "avx512 {out}x{inp} batch {batch}");
            }
            if avx2_fma_detected() {
                let (mut a, mut b) = (vec![0.0f32; batch * out], vec![1.0f32; batch * out]);
                // SAFETY: AVX2 and FMA were detected above.
                unsafe {
                    bf16_avx2_shift(&q, &bias, &x, inp, &mut a);
                    qgemm_f32x8_avx2(QWeights::Bf16(&q), &bias, &x, inp, act, &mut b);
                }
                assert_eq!(bits(&a), bits(&b), "avx2 {out}x{inp} batch {batch}");
            }
        }
    }

    /// The whole AVX2 f16 kernel without F16C gives the F16C kernel's bits
    /// (both widen exactly, then run the same arithmetic), so the path a
    /// CPU without F16C takes is tested here too.
    #[test]
    #[cfg_attr(miri, ignore = "slow under miri")]
    fn avx2_f16_without_f16c_matches_f16c() {
        if !f16c_detected() {
            return;
        }
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for (out, inp, batch) in [
            (16usize, 16usize, 1usize),
            (37, 29, 3),
            (512, 512, 1),
            (70, 64, 9),
        ] {
            let plen = out.div_ceil(QNR) * QNR * inp;
            // Finite halves only (exponent < 31), any sign, subnormals included.
            let q: Vec<u16> = (0..plen)
                .map(|_| ((next() as u16) % 0x7800) | (next() as u16 & 0x8000))
                .collect();
            let f = |v: u64| (v >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let bias: Vec<f32> = (0..out).map(|_| f(next())).collect();
            let x: Vec<f32> = (0..batch * inp).map(|_| f(next())).collect();
            let (mut a, mut b) = (vec![0.0f32; batch * out], vec![1.0f32; batch * out]);
            let act = Activation::LeakyRelu;
            // SAFETY: F16C (and so AVX2 and FMA) was detected above.
            unsafe {
                qgemm_f32x8_avx2(QWeights::F16(&q), &bias, &x, inp, act, &mut a);
                qgemm_f16_f32x8_avx2_f16c(&q, &bias, &x, inp, act, &mut b);
            }
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{out}x{inp} batch {batch}");
        }
    }
}
