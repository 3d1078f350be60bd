//! Where every section of a pack lies, computed from the header alone (the
//! pack stores no offsets, so there are none to forge).

use super::{HEADER_LEN, Precision, SECTION_ALIGN};
use crate::error::Operand;
use crate::kernels::gemm::packed_len;
use crate::kernels::quant::{QNR, groups};
use crate::spec::{Activation, MappingSpec};

/// Rounds `n` up to a multiple of [`SECTION_ALIGN`].
pub(crate) const fn align_up(n: usize) -> Option<usize> {
    match n.checked_add(SECTION_ALIGN - 1) {
        Some(m) => Some(m / SECTION_ALIGN * SECTION_ALIGN),
        None => None,
    }
}

/// Bytes of one layer's weights, bias and scales (unpadded).
fn layer_sizes(
    inp: usize,
    out: usize,
    precision: Precision,
    group: usize,
) -> Option<(usize, usize, usize)> {
    let elems = match precision {
        Precision::F32 => out.checked_mul(inp)?,
        _ => {
            let panels = out.div_ceil(QNR);
            panels.checked_mul(QNR)?.checked_mul(inp)?
        }
    };
    let weight = elems.checked_mul(precision.weight_bytes())?;
    let bias = out.checked_mul(4)?;
    let scales = match precision {
        Precision::Int8 => out
            .div_ceil(QNR)
            .checked_mul(groups(inp, group))?
            .checked_mul(QNR)?
            .checked_mul(4)?,
        _ => 0,
    };
    Some((weight, bias, scales))
}

/// Bytes one reduced-precision layer spans, padding included.
fn layer_span(inp: usize, out: usize, precision: Precision, group: usize) -> Option<usize> {
    let (w, b, s) = layer_sizes(inp, out, precision, group)?;
    align_up(w)?
        .checked_add(align_up(b)?)?
        .checked_add(align_up(s)?)
}

/// The section plan of a pack.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub spec: MappingSpec,
    pub precision: Precision,
    /// int8 group (0 for other precisions).
    pub group: usize,
    /// Byte offset of `w_avg`.
    pub w_avg: usize,
    /// Byte offset of the folded parameters (f32) or the first layer.
    pub body: usize,
    /// Bytes of the whole pack.
    pub total: usize,
}

impl Layout {
    /// The plan for a valid `spec`; `None` if a size overflows `usize`.
    /// O(1): hidden layers all have the same shape.
    pub fn new(spec: &MappingSpec, precision: Precision, group: usize) -> Option<Layout> {
        if precision == Precision::Int8 && group == 0 {
            return None;
        }
        let w_avg = HEADER_LEN;
        let body = align_up(w_avg.checked_add(spec.w_dim.checked_mul(4)?)?)?;
        let span = match precision {
            Precision::F32 => align_up(spec.param_len().checked_mul(4)?)?,
            _ => {
                let l = |i: usize| {
                    let (inp, out) = spec.layer_shape(i);
                    layer_span(inp, out, precision, group)
                };
                let embed = if spec.c_dim > 0 {
                    layer_span(spec.c_dim, spec.embed_features, precision, group)?
                } else {
                    0
                };
                let n = spec.num_layers;
                let mut fc = l(0)?;
                if n >= 2 {
                    fc = fc.checked_add(l(n - 1)?)?;
                }
                if n >= 3 {
                    fc = fc.checked_add(l(1)?.checked_mul(n - 2)?)?;
                }
                embed.checked_add(fc)?
            }
        };
        let total = body.checked_add(span)?;
        Some(Layout {
            spec: *spec,
            precision,
            group: if precision == Precision::Int8 {
                group
            } else {
                0
            },
            w_avg,
            body,
            total,
        })
    }

    /// The reduced-precision layers in order (embedding first). Call only
    /// after [`Layout::new`] succeeded: every offset then fits.
    pub fn places(&self) -> Places {
        Places {
            layout: *self,
            i: 0,
            at: self.body,
        }
    }
}

/// Which layer a [`Place`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    Embed,
    Fc(usize),
}

impl Which {
    pub fn weight(self) -> Operand {
        match self {
            Which::Embed => Operand::EmbedWeight,
            Which::Fc(i) => Operand::FcWeight(i),
        }
    }
    pub fn bias(self) -> Operand {
        match self {
            Which::Embed => Operand::EmbedBias,
            Which::Fc(i) => Operand::FcBias(i),
        }
    }
    pub fn scales(self) -> Operand {
        match self {
            Which::Embed => Operand::EmbedScales,
            Which::Fc(i) => Operand::FcScales(i),
        }
    }
}

/// Byte ranges of one reduced-precision layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Place {
    pub which: Which,
    pub inp: usize,
    pub out: usize,
    pub activation: Activation,
    /// `(offset, len)` in bytes, unpadded.
    pub weight: (usize, usize),
    pub bias: (usize, usize),
    /// Empty unless int8.
    pub scales: (usize, usize),
}

/// Iterator over the [`Place`]s of a [`Layout`] (none for f32 packs).
#[derive(Clone, Debug)]
pub(crate) struct Places {
    layout: Layout,
    i: usize,
    at: usize,
}

impl Iterator for Places {
    type Item = Place;

    fn next(&mut self) -> Option<Place> {
        let l = &self.layout;
        let s = &l.spec;
        if l.precision == Precision::F32 {
            return None;
        }
        let embeds = usize::from(s.c_dim > 0);
        if self.i >= embeds + s.num_layers {
            return None;
        }
        let (which, inp, out, activation) = if self.i < embeds {
            (Which::Embed, s.c_dim, s.embed_features, Activation::Linear)
        } else {
            let i = self.i - embeds;
            let (inp, out) = s.layer_shape(i);
            (Which::Fc(i), inp, out, s.activation)
        };
        // Layout::new proved every sum below fits.
        let (w, b, sc) = layer_sizes(inp, out, l.precision, l.group)?;
        let weight = (self.at, w);
        let bias_at = self.at.checked_add(align_up(w)?)?;
        let scales_at = bias_at.checked_add(align_up(b)?)?;
        self.at = scales_at.checked_add(align_up(sc)?)?;
        self.i += 1;
        Some(Place {
            which,
            inp,
            out,
            activation,
            weight,
            bias: (bias_at, b),
            scales: (scales_at, sc),
        })
    }
}

/// `ceil(out / QNR) * QNR * inp`, the element count of one packed layer.
pub(crate) fn qlen(out: usize, inp: usize) -> usize {
    packed_len(out, inp, QNR)
}
