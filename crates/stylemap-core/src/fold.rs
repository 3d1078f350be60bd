//! From raw NVlabs parameters to the folded inference layout.
//!
//! NVlabs stores raw parameters and applies gains at run time:
//! `y = lrelu(x @ (W * wg)^T + b * bg) * sqrt(2)` with `wg = lr / sqrt(in)`
//! (computed in f64, rounded to f32) and `bg = lr`. Leaky ReLU is positively
//! homogeneous, so the gain can move inside: `lrelu(a) * g == lrelu(g * a)`.
//! Folding does this once, so inference is a plain `act(W' x + b')`:
//!
//! ```text
//! W'[r, k] = f32( W[r, k] * f64(wg) * gain )      b'[r] = f32( b[r] * lr * gain )
//! ```
//!
//! each rounded once from f64 (`gain` = sqrt(2) for lrelu, 1 for linear; the
//! embedding uses lr 1, linear).
//!
//! # Layout
//!
//! One contiguous `[f32]` of [`MappingSpec::param_len`] elements, in order:
//!
//! | section | shape | present |
//! |---|---|---|
//! | `embed.W'` | `[embed_features, c_dim]` row-major | `c_dim > 0` |
//! | `embed.b'` | `[embed_features]` | `c_dim > 0` |
//! | `fc{i}.W'` | `[out_i, in_i]` row-major | for each layer `i` |
//! | `fc{i}.b'` | `[out_i]` | for each layer `i` |
//!
//! (`fc{i}.W'` is immediately followed by `fc{i}.b'`.) This is the layout the
//! kernels stream; a later packed layout will be built from this one.

use crate::error::{Error, Operand, check_finite, check_len};
use crate::spec::{Activation, MappingSpec};

/// One raw fully connected layer as a state dict stores it.
#[derive(Clone, Copy, Debug)]
pub struct RawLayer<'a> {
    /// `weight [out, in]`, row-major.
    pub weight: &'a [f32],
    /// `bias [out]`.
    pub bias: &'a [f32],
}

/// All raw parameters of a mapping network (`w_avg` is kept apart: it is not folded).
#[derive(Clone, Copy, Debug)]
pub struct RawParams<'a> {
    /// `embed.weight` / `embed.bias`, for conditional networks.
    pub embed: Option<RawLayer<'a>>,
    /// `fc0 .. fc{num_layers-1}`.
    pub layers: &'a [RawLayer<'a>],
}

/// The weight gain NVlabs applies: `lr / sqrt(in)` in f64, rounded to f32.
pub fn weight_gain(lr_multiplier: f64, in_features: usize) -> f32 {
    (lr_multiplier / libm::sqrt(in_features as f64)) as f32
}

fn fold_layer(
    raw: RawLayer<'_>,
    (inp, out): (usize, usize),
    lr: f64,
    gain: f64,
    names: (Operand, Operand),
    dst: &mut [f32],
) -> Result<(), Error> {
    check_len(names.0, raw.weight, inp * out)?;
    check_len(names.1, raw.bias, out)?;
    check_finite(names.0, raw.weight)?;
    check_finite(names.1, raw.bias)?;
    let wg = f64::from(weight_gain(lr, inp)) * gain;
    let bg = f64::from(lr as f32) * gain;
    let (w_dst, b_dst) = dst.split_at_mut(inp * out);
    for (d, &s) in w_dst.iter_mut().zip(raw.weight) {
        *d = (f64::from(s) * wg) as f32;
    }
    for (d, &s) in b_dst.iter_mut().zip(raw.bias) {
        *d = (f64::from(s) * bg) as f32;
    }
    // A huge raw weight times its gain can still overflow f32.
    check_finite(names.0, w_dst)?;
    check_finite(names.1, b_dst)
}

/// Folds raw NVlabs parameters into `out` (exactly `spec.param_len()` elements).
///
/// Errors name the offending tensor: wrong element count, NaN/Inf, or a
/// folded value that overflows f32. `out` is fully written only on success.
pub fn fold_nvlabs(spec: &MappingSpec, raw: &RawParams<'_>, out: &mut [f32]) -> Result<(), Error> {
    spec.validate()?;
    check_len(Operand::Params, out, spec.param_len())?;
    if raw.layers.len() != spec.num_layers {
        return Err(Error::Length {
            what: Operand::RawLayers,
            expected: spec.num_layers,
            actual: raw.layers.len(),
        });
    }
    let mut rest = out;
    match (spec.c_dim, raw.embed) {
        (0, None) => {}
        (0, Some(e)) => {
            return Err(Error::Conditioning {
                c_dim: 0,
                actual: e.weight.len(),
            });
        }
        (c_dim, None) => return Err(Error::Conditioning { c_dim, actual: 0 }),
        (c_dim, Some(e)) => {
            let n = spec.embed_features * (c_dim + 1);
            let (dst, tail) = rest.split_at_mut(n);
            let shape = (c_dim, spec.embed_features);
            let names = (Operand::EmbedWeight, Operand::EmbedBias);
            fold_layer(e, shape, 1.0, 1.0, names, dst)?;
            rest = tail;
        }
    }
    let gain = spec.activation.gain();
    for (i, &layer) in raw.layers.iter().enumerate() {
        let (inp, o) = spec.layer_shape(i);
        let (dst, tail) = rest.split_at_mut(o * (inp + 1));
        let names = (Operand::FcWeight(i), Operand::FcBias(i));
        fold_layer(layer, (inp, o), spec.lr_multiplier, gain, names, dst)?;
        rest = tail;
    }
    Ok(())
}

/// A folded layer: what one kernel call consumes.
#[derive(Clone, Copy, Debug)]
pub struct FoldedLayer<'a> {
    /// `W'` row-major `[out, in]`.
    pub weight: &'a [f32],
    /// `b'` `[out]`.
    pub bias: &'a [f32],
    /// Input width.
    pub in_features: usize,
    /// Output width.
    pub out_features: usize,
    /// Activation (gain already folded in).
    pub activation: Activation,
}

/// Splits a folded buffer into its embedding (if any) and fc layers, in order.
/// `params` must hold `spec.param_len()` elements of a validated `spec`.
pub(crate) fn layers<'a>(
    spec: &'a MappingSpec,
    params: &'a [f32],
) -> (
    Option<FoldedLayer<'a>>,
    impl Iterator<Item = FoldedLayer<'a>> + 'a,
) {
    let split = |rest: &mut &'a [f32], inp: usize, out: usize, activation| {
        let (w, tail) = rest.split_at(inp * out);
        let (b, tail) = tail.split_at(out);
        *rest = tail;
        FoldedLayer {
            weight: w,
            bias: b,
            in_features: inp,
            out_features: out,
            activation,
        }
    };
    let mut rest = params;
    let embed = (spec.c_dim > 0).then(|| {
        split(
            &mut rest,
            spec.c_dim,
            spec.embed_features,
            Activation::Linear,
        )
    });
    let fc = (0..spec.num_layers).map(move |i| {
        let (inp, out) = spec.layer_shape(i);
        split(&mut rest, inp, out, spec.activation)
    });
    (embed, fc)
}
