//! aarch64 NEON reduced-precision kernel: four q registers per panel
//! row-slice, same generic body as the x86 kernels (the private
//! `quant::simd` module), over the shared NEON primitives
//! ([`crate::kernels::neon`]).
//!
//! Widening: f16 with `fcvtl` (half to single is base ARMv8.0 Advanced SIMD;
//! FEAT_FP16 is only needed for half-precision *arithmetic*), emitted with
//! `asm!` because the `float16x4_t` intrinsics are not stable Rust; bf16 with
//! `ushll #16`; int8 with `sxtl` twice and `scvtf`. NEON is baseline wherever
//! this module is compiled (`target_feature = "neon"`), so no detection. Not
//! measured on aarch64 hardware; tested under qemu.
#![allow(unsafe_code)]

use core::arch::aarch64::*;
use core::arch::asm;

use super::QWeights;
use super::simd::{self, ShapesNeon, Widen};
use crate::kernels::neon::Neon;
use crate::spec::Activation;

/// `y[s, :] = act(W x[s, :] + b)` with NEON over any reduced-precision
/// layout ([`super`]); `out = bias.len()`, `batch = x.len() / inp`.
///
/// Lengths are the caller's contract (see [`super::qgemm_bias_act`]); if
/// they do not chain, nothing is written.
pub fn qgemm_f32x4_neon(
    w: QWeights<'_>,
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
) {
    let dims = super::dims(&w, bias.len(), x.len(), inp, y.len());
    // SAFETY: this module is compiled only with target_feature = "neon", so
    // NEON is available on every CPU this code can run on; dims are these
    // slices' own.
    unsafe {
        match w {
            QWeights::F16(q) => {
                simd::qgemm::<ShapesNeon, F16x4, 4, false>(dims, q, &[], 0, bias, x, inp, act, y)
            }
            QWeights::Bf16(q) => {
                simd::qgemm::<ShapesNeon, Bf16x4, 4, false>(dims, q, &[], 0, bias, x, inp, act, y)
            }
            QWeights::Int8 { q, scales, group } => simd::qgemm::<ShapesNeon, I8x4, 4, true>(
                dims, q, scales, group, bias, x, inp, act, y,
            ),
        }
    }
}

/// Runs `kernel` if it is [`crate::Kernel::Neon`]; returns whether it ran.
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
    if kernel == crate::Kernel::Neon {
        qgemm_f32x4_neon(w, bias, x, inp, act, y);
        true
    } else {
        false
    }
}

/// Four halves (low 64 bits of `h`) to f32 with `fcvtl`, exactly.
///
/// # Safety
/// NEON is available.
#[inline(always)]
unsafe fn fcvtl(h: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: `fcvtl` (half to single, vector) is base ARMv8.0 Advanced
    // SIMD, available wherever NEON is; it reads and writes only the named
    // registers (no memory, no stack, no flags we rely on).
    unsafe {
        asm!(
            "fcvtl {o:v}.4s, {i:v}.4h",
            o = lateout(vreg) out,
            i = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// f16 on NEON: four 8-byte loads, four `fcvtl`.
struct F16x4;

impl Widen<4> for F16x4 {
    type S = Neon;
    type T = u16;

    #[inline(always)]
    unsafe fn widen(p: *const u16) -> [float32x4_t; 4] {
        // SAFETY: NEON is enabled (module cfg); the 16 u16 at p are readable
        // (contract), read as four groups of four with u16 alignment.
        unsafe {
            [
                fcvtl(vld1_u16(p)),
                fcvtl(vld1_u16(p.add(4))),
                fcvtl(vld1_u16(p.add(8))),
                fcvtl(vld1_u16(p.add(12))),
            ]
        }
    }
}

/// bf16 on NEON: `ushll #16` (widen and shift into the high half).
struct Bf16x4;

impl Widen<4> for Bf16x4 {
    type S = Neon;
    type T = u16;

    #[inline(always)]
    unsafe fn widen(p: *const u16) -> [float32x4_t; 4] {
        // SAFETY: NEON is enabled (module cfg); the 16 u16 at p are readable
        // (contract).
        unsafe {
            let a = vld1q_u16(p);
            let b = vld1q_u16(p.add(8));
            [
                vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(a))),
                vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_high_u16(a))),
                vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(b))),
                vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_high_u16(b))),
            ]
        }
    }
}

/// int8 on NEON: one 16-byte load, `sxtl` to 16 then 32 bits, `scvtf`.
struct I8x4;

impl Widen<4> for I8x4 {
    type S = Neon;
    type T = i8;

    #[inline(always)]
    unsafe fn widen(p: *const i8) -> [float32x4_t; 4] {
        // SAFETY: NEON is enabled (module cfg); the 16 bytes at p are
        // readable (contract).
        unsafe {
            let q = vld1q_s8(p);
            let lo = vmovl_s8(vget_low_s8(q));
            let hi = vmovl_s8(vget_high_s8(q));
            [
                vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))),
                vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo))),
                vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))),
                vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi))),
            ]
        }
    }
}
