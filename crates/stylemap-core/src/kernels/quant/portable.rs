//! Portable reduced-precision kernel on `wide::f32x8`: each panel row-slice
//! of [`QNR`] = 16 weights is widened (exactly, with the oracle's scalar
//! conversions) into two `f32x8` and fed to the accumulators of every sample
//! of the block, so each weight is converted once per block.
//!
//! Blocks: at batch 1, two panels at a time (4 independent accumulator
//! chains, two weight streams); above, blocks of up to 4 samples times one
//! panel (8 chains). `wide` picks the instructions when the crate is
//! compiled (`mul_add` is an FMA with AVX+FMA or NEON, a multiply then an add
//! otherwise, when the results equal the oracle's bit for bit); on Cortex-M
//! and RISC-V it is plain scalar code, still in this order.
//!
//! Safe code only: slices and iterators, no `unsafe`.

use wide::f32x8;

use super::scalar::bf16_to_f32;
use super::{QNR, QWeights};
use crate::spec::Activation;

const LANES: usize = 8;
const NV: usize = QNR / LANES;
/// Samples per full block.
const MR: usize = 4;

/// A stored weight format and its exact widening.
trait Fmt {
    type T: Copy;
    fn widen(v: Self::T) -> f32;
}

/// IEEE binary16 bits to f32, exactly as [`super::scalar::f16_to_f32`] but
/// branch-free (both cases computed, one selected), so LLVM vectorises a
/// panel's 16 conversions. No f32 subnormal is involved (an f16 subnormal is
/// `(2^-14 + man 2^-24) - 2^-14`, both operands normal and the difference
/// exact by Sterbenz), so flush-to-zero modes cannot change the result.
#[inline(always)]
fn f16_widen(h: u16) -> f32 {
    let h = u32::from(h);
    let em = (h & 0x7fff) << 13;
    let exp = h & 0x7c00;
    // Rebias the exponent by 112 (127 - 15); inf/NaN (31) by 224, to 255.
    let normal = em + (112 << 23) + if exp == 0x7c00 { 112 << 23 } else { 0 };
    let sub = (f32::from_bits(em + (113 << 23)) - f32::from_bits(113 << 23)).to_bits();
    let v = if exp == 0 { sub } else { normal };
    f32::from_bits(v | ((h & 0x8000) << 16))
}

struct F16;
impl Fmt for F16 {
    type T = u16;
    #[inline(always)]
    fn widen(v: u16) -> f32 {
        f16_widen(v)
    }
}

struct Bf16;
impl Fmt for Bf16 {
    type T = u16;
    #[inline(always)]
    fn widen(v: u16) -> f32 {
        bf16_to_f32(v)
    }
}

struct I8;
impl Fmt for I8 {
    type T = i8;
    #[inline(always)]
    fn widen(v: i8) -> f32 {
        f32::from(v)
    }
}

/// The 16 weights of one panel at one `k` as two vectors (one plain loop,
/// which LLVM vectorises where it can).
#[inline(always)]
fn widen<F: Fmt>(s: &[F::T]) -> [f32x8; NV] {
    let mut buf = [0.0f32; QNR];
    for (b, &v) in buf.iter_mut().zip(&s[..QNR]) {
        *b = F::widen(v);
    }
    core::array::from_fn(|v| {
        let mut a = [0.0f32; LANES];
        a.copy_from_slice(&buf[v * LANES..(v + 1) * LANES]);
        f32x8::from(a)
    })
}

/// Up to 8 floats, zero-filled.
#[inline(always)]
fn load_upto(s: &[f32]) -> f32x8 {
    let mut a = [0.0f32; LANES];
    let n = s.len().min(LANES);
    a[..n].copy_from_slice(&s[..n]);
    f32x8::from(a)
}

/// `y[s, :] = act(W x[s, :] + b)` over the reduced-precision layout
/// ([`super`]): `out = bias.len()`, `x [batch, inp]`, `y [batch, out]`.
///
/// Lengths are the caller's contract (see [`super::qgemm_bias_act`] for the
/// checked entry point); if they do not chain, nothing is written.
pub fn qgemm_f32x8(
    w: QWeights<'_>,
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
) {
    let Some((batch, out)) = super::dims(&w, bias.len(), x.len(), inp, y.len()) else {
        return;
    };
    match w {
        QWeights::F16(q) => {
            let c = Ctx {
                w: q,
                scales: &[],
                group: inp,
                bias,
                inp,
                out,
                act,
            };
            c.run::<F16, false>(x, y, batch);
        }
        QWeights::Bf16(q) => {
            let c = Ctx {
                w: q,
                scales: &[],
                group: inp,
                bias,
                inp,
                out,
                act,
            };
            c.run::<Bf16, false>(x, y, batch);
        }
        QWeights::Int8 { q, scales, group } => {
            let c = Ctx {
                w: q,
                scales,
                group: group.clamp(1, inp),
                bias,
                inp,
                out,
                act,
            };
            c.run::<I8, true>(x, y, batch);
        }
    }
}

/// One layer's slices (lengths checked by `dims`).
struct Ctx<'a, T> {
    w: &'a [T],
    scales: &'a [f32],
    group: usize,
    bias: &'a [f32],
    inp: usize,
    out: usize,
    act: Activation,
}

impl<T: Copy> Ctx<'_, T> {
    fn run<F: Fmt<T = T>, const SCALED: bool>(&self, x: &[f32], y: &mut [f32], batch: usize) {
        let (inp, out) = (self.inp, self.out);
        let mut s0 = 0;
        while s0 < batch {
            let m = MR.min(batch - s0);
            let xs = &x[s0 * inp..(s0 + m) * inp];
            let ys = &mut y[s0 * out..(s0 + m) * out];
            match m {
                1 => self.panels::<F, 1, 2, SCALED>(xs, ys),
                2 => self.panels::<F, 2, 1, SCALED>(xs, ys),
                3 => self.panels::<F, 3, 1, SCALED>(xs, ys),
                _ => self.panels::<F, MR, 1, SCALED>(xs, ys),
            }
            s0 += m;
        }
    }

    /// Every panel for the `M` samples in `x`/`y`: `P` at a time, then one.
    #[inline(always)]
    fn panels<F: Fmt<T = T>, const M: usize, const P: usize, const SCALED: bool>(
        &self,
        x: &[f32],
        y: &mut [f32],
    ) {
        let panels = self.out.div_ceil(QNR);
        let mut p = 0;
        while p + P <= panels {
            self.block::<F, M, P, SCALED>(x, y, p);
            p += P;
        }
        while p < panels {
            self.block::<F, M, 1, SCALED>(x, y, p);
            p += 1;
        }
    }

    /// `M` samples times panels `p0 .. p0 + P`, all of `k`, then the epilogue.
    #[inline(always)]
    fn block<F: Fmt<T = T>, const M: usize, const P: usize, const SCALED: bool>(
        &self,
        x: &[f32],
        y: &mut [f32],
        p0: usize,
    ) {
        let (inp, out) = (self.inp, self.out);
        let plen = inp * QNR;
        let groups = inp.div_ceil(self.group);
        let panel: [&[T]; P] =
            core::array::from_fn(|j| &self.w[(p0 + j) * plen..(p0 + j + 1) * plen]);
        let xs: [&[f32]; M] = core::array::from_fn(|i| &x[i * inp..(i + 1) * inp]);
        let mut acc = [[[f32x8::ZERO; NV]; P]; M];
        let mut k0 = 0;
        let mut g = 0;
        while k0 < inp {
            let k1 = (k0 + self.group).min(inp);
            let mut part = [[[f32x8::ZERO; NV]; P]; M];
            for k in k0..k1 {
                let wv: [[f32x8; NV]; P] =
                    core::array::from_fn(|j| widen::<F>(&panel[j][k * QNR..(k + 1) * QNR]));
                for (row, xi) in part.iter_mut().zip(&xs) {
                    let xb = f32x8::splat(xi[k]);
                    for (pa, wpv) in row.iter_mut().zip(&wv) {
                        for (a, &wvv) in pa.iter_mut().zip(wpv) {
                            *a = wvv.mul_add(xb, *a);
                        }
                    }
                }
            }
            if SCALED {
                for j in 0..P {
                    let base = ((p0 + j) * groups + g) * QNR;
                    for v in 0..NV {
                        let s = load_upto(&self.scales[base + v * LANES..base + (v + 1) * LANES]);
                        for (a, pa) in acc.iter_mut().zip(&part) {
                            a[j][v] = pa[j][v].mul_add(s, a[j][v]);
                        }
                    }
                }
            } else {
                acc = part;
            }
            k0 = k1;
            g += 1;
        }
        let slope = f32x8::splat(crate::spec::LRELU_SLOPE);
        for j in 0..P {
            for v in 0..NV {
                let first = (p0 + j) * QNR + v * LANES;
                if first >= out {
                    continue;
                }
                let n = (out - first).min(LANES);
                let b = load_upto(&self.bias[first..first + n]);
                for (i, a) in acc.iter().enumerate() {
                    let t = a[j][v] + b;
                    let t = match self.act {
                        Activation::LeakyRelu => t.simd_lt(f32x8::ZERO).select(t * slope, t),
                        Activation::Linear => t,
                    };
                    let row = i * out + first;
                    y[row..row + n].copy_from_slice(&t.to_array()[..n]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::f16_widen;
    use crate::kernels::quant::scalar::f16_to_f32;

    /// The branch-free widening equals the oracle's on all 65536 halves.
    #[test]
    #[cfg_attr(miri, ignore = "65536 values are slow under miri")]
    fn f16_widening_is_exact_for_every_half() {
        for h in 0..=u16::MAX {
            assert_eq!(f16_widen(h).to_bits(), f16_to_f32(h).to_bits(), "{h:#06x}");
        }
    }
}
