//! The reduced-precision oracle: plain loops over the [layout](super), in the
//! order the [arithmetic contract](super#arithmetic-contract-what-the-scalar-oracle-computes)
//! states. Never optimised.

use super::{QNR, QWeights};
use crate::spec::Activation;

/// IEEE binary16 bits to f32 (exact).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match exp {
        0 if man == 0 => sign,
        0 => {
            // Subnormal: man * 2^-24, exact in f32.
            #[allow(clippy::cast_precision_loss)]
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        0x1f => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// bfloat16 bits to f32 (exact).
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `y[s, :] = act(W x[s, :] + b)` over the reduced-precision layout.
/// Lengths are the caller's contract ([`super::qgemm_bias_act`] checks them);
/// if they do not chain, nothing is written.
pub fn qgemm(w: QWeights<'_>, bias: &[f32], x: &[f32], inp: usize, act: Activation, y: &mut [f32]) {
    let Some((batch, out)) = super::dims(&w, bias.len(), x.len(), inp, y.len()) else {
        return;
    };
    let weight = |r: usize, k: usize| -> f32 {
        let i = (r / QNR) * (inp * QNR) + k * QNR + r % QNR;
        match w {
            QWeights::F16(q) => f16_to_f32(q[i]),
            QWeights::Bf16(q) => bf16_to_f32(q[i]),
            QWeights::Int8 { q, .. } => f32::from(q[i]),
        }
    };
    for s in 0..batch {
        let xs = &x[s * inp..(s + 1) * inp];
        for r in 0..out {
            let acc = match w {
                QWeights::F16(_) | QWeights::Bf16(_) => {
                    let mut acc = 0.0f32;
                    for (k, &xv) in xs.iter().enumerate() {
                        acc += weight(r, k) * xv;
                    }
                    acc
                }
                QWeights::Int8 { scales, group, .. } => {
                    let groups = super::groups(inp, group);
                    let mut acc = 0.0f32;
                    for g in 0..groups {
                        let mut part = 0.0f32;
                        for (k, &xv) in xs
                            .iter()
                            .enumerate()
                            .take(inp.min((g + 1) * group))
                            .skip(g * group)
                        {
                            part += weight(r, k) * xv;
                        }
                        let si = (r / QNR) * (groups * QNR) + g * QNR + r % QNR;
                        acc += scales[si] * part;
                    }
                    acc
                }
            };
            y[s * out + r] = crate::kernels::epilogue(acc, bias[r], act);
        }
    }
}
