//! Writing a pack into a caller's buffer (no allocation). Quantization
//! itself (calibration, rounding) is the std crate's job; this writes
//! already-folded f32 parameters or already-quantized layers, checking them
//! exactly as [`Pack::parse`](super::Pack::parse) will.

use super::layout::{Layout, qlen};
use super::{
    CHECKSUM_OFFSET, FLAG_LR_FOLDED, HEADER_LEN, MAGIC, PackError, PackLayer, Precision, VERSION,
    at, check_layer, first_nonfinite, pack_checksum,
};
use crate::error::{Error, Operand};
use crate::kernels::quant::{self, QNR, QWeights};
use crate::spec::{Activation, MappingSpec};

/// One already-quantized layer to write (layout: [`crate::kernels::quant`]).
#[derive(Clone, Copy, Debug)]
pub struct QLayer<'a> {
    /// Packed weights (and int8 scales).
    pub weights: QWeights<'a>,
    /// Folded bias `[out]`.
    pub bias: &'a [f32],
}

/// The weights of a pack to write.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    /// Folded parameters in the [`crate::fold`] layout (`spec.param_len()`
    /// elements): an f32 pack.
    F32(&'a [f32]),
    /// Reduced-precision layers in order, the embedding first for
    /// conditional networks; all of one precision (and int8 group).
    Quant(&'a [QLayer<'a>]),
}

fn precision_of(w: &QWeights<'_>) -> (Precision, usize) {
    match *w {
        QWeights::F16(_) => (Precision::F16, 0),
        QWeights::Bf16(_) => (Precision::Bf16, 0),
        QWeights::Int8 { group, .. } => (Precision::Int8, group),
    }
}

/// Bytes of a pack of `spec` in `precision` (`int8_group` inputs per scale
/// for int8, ignored otherwise). Errors for an invalid spec, an int8 group
/// of 0, or sizes that overflow.
pub fn pack_len(
    spec: &MappingSpec,
    precision: Precision,
    int8_group: usize,
) -> Result<usize, PackError> {
    spec.validate()?;
    if precision == Precision::Int8 && int8_group == 0 {
        return Err(PackError::BadGroup(0));
    }
    Layout::new(spec, precision, int8_group)
        .map(|l| l.total)
        .ok_or(PackError::Spec(Error::TooLarge))
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

fn put_f32s(out: &mut [u8], at: usize, v: &[f32]) {
    for (d, x) in out[at..at + 4 * v.len()].chunks_exact_mut(4).zip(v) {
        d.copy_from_slice(&x.to_le_bytes());
    }
}

/// Writes a pack of `spec`, `w_avg` and `weights` into the start of `out`
/// (at least [`pack_len`] bytes) and returns its length. Checks everything
/// [`Pack::parse`](super::Pack::parse) checks (lengths, finite values, int8
/// range, zero padding rows, one precision) before writing; `out` is
/// untouched on error. Little-endian on every host.
pub fn write(
    spec: &MappingSpec,
    w_avg: &[f32],
    weights: Weights<'_>,
    out: &mut [u8],
) -> Result<usize, PackError> {
    spec.validate()?;
    crate::error::check_len(Operand::WAvg, w_avg, spec.w_dim)?;
    if let Some(index) = first_nonfinite(w_avg) {
        return Err(PackError::NonFinite {
            what: Operand::WAvg,
            index,
        });
    }
    let (precision, group) = match weights {
        Weights::F32(_) => (Precision::F32, 0),
        Weights::Quant(layers) => layers
            .first()
            .map_or((Precision::F16, 0), |l| precision_of(&l.weights)),
    };
    if precision == Precision::Int8 && group == 0 {
        return Err(PackError::BadGroup(0));
    }
    let layout = Layout::new(spec, precision, group).ok_or(PackError::Spec(Error::TooLarge))?;
    if out.len() < layout.total {
        return Err(PackError::BufferTooSmall {
            need: layout.total,
            actual: out.len(),
        });
    }
    match weights {
        Weights::F32(params) => {
            crate::error::check_len(Operand::Params, params, spec.param_len())?;
            if let Some(index) = first_nonfinite(params) {
                return Err(PackError::NonFinite {
                    what: Operand::Params,
                    index,
                });
            }
        }
        Weights::Quant(layers) => {
            let expected = usize::from(spec.c_dim > 0) + spec.num_layers;
            if layers.len() != expected {
                return Err(PackError::Spec(Error::Length {
                    what: Operand::RawLayers,
                    expected,
                    actual: layers.len(),
                }));
            }
            for (p, l) in layout.places().zip(layers) {
                if precision_of(&l.weights) != (precision, group) {
                    return Err(PackError::MixedPrecision);
                }
                let bad = |what, expected, actual| {
                    Err(PackError::Spec(Error::Length {
                        what,
                        expected,
                        actual,
                    }))
                };
                if l.bias.len() != p.out {
                    return bad(p.which.bias(), p.out, l.bias.len());
                }
                let (n, want) = match l.weights {
                    QWeights::F16(q) | QWeights::Bf16(q) => (q.len(), qlen(p.out, p.inp)),
                    QWeights::Int8 { q, .. } => (q.len(), qlen(p.out, p.inp)),
                };
                if n != want {
                    return bad(p.which.weight(), want, n);
                }
                if let QWeights::Int8 { scales, group, .. } = l.weights {
                    let want = p.out.div_ceil(QNR) * quant::groups(p.inp, group) * QNR;
                    if scales.len() != want {
                        return bad(p.which.scales(), want, scales.len());
                    }
                }
                let view = PackLayer {
                    weights: l.weights,
                    bias: l.bias,
                    in_features: p.inp,
                    out_features: p.out,
                    activation: p.activation,
                };
                let w = p.which;
                check_layer(&view, (w.weight(), w.bias(), w.scales()))?;
            }
        }
    }

    let out = &mut out[..layout.total];
    out.fill(0);
    put(out, 0, &MAGIC);
    put(out, at::VERSION, &VERSION.to_le_bytes());
    put(out, at::HEADER_LEN, &(HEADER_LEN as u32).to_le_bytes());
    put(out, at::TOTAL, &(layout.total as u64).to_le_bytes());
    put(out, at::PRECISION, &precision.code().to_le_bytes());
    put(out, at::FLAGS, &FLAG_LR_FOLDED.to_le_bytes());
    let act: u32 = match spec.activation {
        Activation::LeakyRelu => 0,
        Activation::Linear => 1,
    };
    put(out, at::ACTIVATION, &act.to_le_bytes());
    let u32_of = |v: usize| u32::try_from(v).map_err(|_| PackError::Spec(Error::TooLarge));
    put(out, at::GROUP, &u32_of(group)?.to_le_bytes());
    let dims = [
        spec.z_dim,
        spec.c_dim,
        spec.w_dim,
        spec.num_layers,
        spec.layer_features,
        spec.embed_features,
        spec.num_ws,
    ];
    // Convert all before writing any, so `out` stays zeroed on error.
    let mut dims32 = [0u32; 7];
    for (d, &v) in dims32.iter_mut().zip(&dims) {
        *d = u32_of(v)?;
    }
    for (i, d) in dims32.iter().enumerate() {
        put(out, at::DIMS + 4 * i, &d.to_le_bytes());
    }
    let qnr = if precision == Precision::F32 { 0 } else { QNR };
    put(out, at::QNR, &(qnr as u32).to_le_bytes());
    put(out, at::LR, &spec.lr_multiplier.to_le_bytes());

    put_f32s(out, layout.w_avg, w_avg);
    match weights {
        Weights::F32(params) => put_f32s(out, layout.body, params),
        Weights::Quant(layers) => {
            for (p, l) in layout.places().zip(layers) {
                let at = p.weight.0;
                match l.weights {
                    QWeights::F16(q) | QWeights::Bf16(q) => {
                        for (d, x) in out[at..at + 2 * q.len()].chunks_exact_mut(2).zip(q) {
                            d.copy_from_slice(&x.to_le_bytes());
                        }
                    }
                    QWeights::Int8 { q, scales, .. } => {
                        for (d, &x) in out[at..at + q.len()].iter_mut().zip(q) {
                            *d = x.to_le_bytes()[0];
                        }
                        put_f32s(out, p.scales.0, scales);
                    }
                }
                put_f32s(out, p.bias.0, l.bias);
            }
        }
    }
    let crc = pack_checksum(out);
    put(out, CHECKSUM_OFFSET, &crc.to_le_bytes());
    Ok(layout.total)
}
