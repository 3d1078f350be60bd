//! The network description: sizes and hyper-parameters, validated once.

use crate::error::{Error, Operand};

/// The activation of the fully connected layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Leaky ReLU with slope 0.2, times a gain of sqrt(2) (NVlabs' `lrelu`).
    LeakyRelu,
    /// Identity, gain 1 (NVlabs' `linear`).
    Linear,
}

impl Activation {
    /// The gain NVlabs multiplies after the activation.
    pub const fn gain(self) -> f64 {
        match self {
            Activation::LeakyRelu => core::f64::consts::SQRT_2,
            Activation::Linear => 1.0,
        }
    }
}

/// Slope of the leaky ReLU for negative inputs.
pub const LRELU_SLOPE: f32 = 0.2;

/// The `lr_multiplier` of every official NVlabs mapping network.
pub const DEFAULT_LR_MULTIPLIER: f64 = 0.01;

/// Sizes and hyper-parameters of an NVlabs `MappingNetwork`.
///
/// Feature sizes are `[z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]`,
/// as in NVlabs' code (`layer_features` and `embed_features` default to `w_dim` there).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MappingSpec {
    /// Length of z.
    pub z_dim: usize,
    /// Length of the label c (0 for unconditional networks).
    pub c_dim: usize,
    /// Length of w.
    pub w_dim: usize,
    /// Number of fully connected layers.
    pub num_layers: usize,
    /// Width of the hidden layers.
    pub layer_features: usize,
    /// Width of the label embedding (0 when `c_dim == 0`).
    pub embed_features: usize,
    /// Number of copies of w in ws (one per synthesis input).
    pub num_ws: usize,
    /// Learning-rate multiplier of the fc layers (the embedding always uses 1).
    pub lr_multiplier: f64,
    /// Activation of the fc layers.
    pub activation: Activation,
}

impl MappingSpec {
    /// An NVlabs mapping network with `layer_features = embed_features = w_dim`,
    /// lr_multiplier 0.01 and leaky ReLU.
    pub const fn nvlabs(
        z_dim: usize,
        c_dim: usize,
        w_dim: usize,
        num_layers: usize,
        num_ws: usize,
    ) -> Self {
        MappingSpec {
            z_dim,
            c_dim,
            w_dim,
            num_layers,
            layer_features: w_dim,
            embed_features: if c_dim > 0 { w_dim } else { 0 },
            num_ws,
            lr_multiplier: DEFAULT_LR_MULTIPLIER,
            activation: Activation::LeakyRelu,
        }
    }

    /// StyleGAN2 at 1024x1024: 512 -> 8 x 512, num_ws 18.
    pub const STYLEGAN2_1024: MappingSpec = MappingSpec::nvlabs(512, 0, 512, 8, 18);

    /// StyleGAN3 (any resolution): 512 -> 2 x 512, num_ws 16.
    pub const STYLEGAN3: MappingSpec = MappingSpec::nvlabs(512, 0, 512, 2, 16);

    /// Checks every size and hyper-parameter; all other methods assume this passed.
    pub fn validate(&self) -> Result<(), Error> {
        let positive = [
            (self.z_dim, Operand::ZDim),
            (self.w_dim, Operand::WDim),
            (self.num_layers, Operand::NumLayers),
            (self.layer_features, Operand::LayerFeatures),
            (self.num_ws, Operand::NumWs),
        ];
        for (value, what) in positive {
            if value == 0 {
                return Err(Error::BadDimension(what));
            }
        }
        if (self.c_dim > 0) != (self.embed_features > 0) {
            return Err(Error::BadDimension(Operand::EmbedFeatures));
        }
        if !(self.lr_multiplier.is_finite() && self.lr_multiplier > 0.0) {
            return Err(Error::BadLrMultiplier);
        }
        self.checked_param_len().ok_or(Error::TooLarge)?;
        self.num_ws.checked_mul(self.w_dim).ok_or(Error::TooLarge)?;
        self.scratch_len_checked().ok_or(Error::TooLarge)?;
        Ok(())
    }

    /// Input width of the first fc layer: `z_dim + embed_features`.
    pub const fn input_features(&self) -> usize {
        self.z_dim + self.embed_features
    }

    /// `(in_features, out_features)` of fc layer `i`.
    pub const fn layer_shape(&self, i: usize) -> (usize, usize) {
        let inp = if i == 0 {
            self.input_features()
        } else {
            self.layer_features
        };
        let out = if i + 1 == self.num_layers {
            self.w_dim
        } else {
            self.layer_features
        };
        (inp, out)
    }

    fn checked_param_len(&self) -> Option<usize> {
        // Closed form, so an absurd num_layers cannot make validation loop.
        let layer = |inp: usize, out: usize| out.checked_mul(inp)?.checked_add(out);
        let inp = self.z_dim.checked_add(self.embed_features)?;
        let embed = layer(self.c_dim, self.embed_features)?;
        let layers = match self.num_layers {
            0 => 0,
            1 => layer(inp, self.w_dim)?,
            n => {
                let hidden = layer(self.layer_features, self.layer_features)?.checked_mul(n - 2)?;
                layer(inp, self.layer_features)?
                    .checked_add(hidden)?
                    .checked_add(layer(self.layer_features, self.w_dim)?)?
            }
        };
        embed.checked_add(layers)
    }

    /// Elements of the folded parameter buffer (see [`crate::fold`] for its layout).
    ///
    /// Only meaningful for a spec that passed [`validate`](Self::validate)
    /// (saturates instead of overflowing otherwise).
    pub fn param_len(&self) -> usize {
        self.checked_param_len().unwrap_or(usize::MAX)
    }

    fn scratch_len_checked(&self) -> Option<usize> {
        let widest = if self.input_features() > self.layer_features {
            self.input_features()
        } else {
            self.layer_features
        };
        widest.checked_mul(2)
    }

    /// Elements of scratch that [`crate::MappingNetwork::forward`] needs:
    /// two activation buffers of the widest layer input.
    pub fn scratch_len(&self) -> usize {
        self.scratch_len_checked().unwrap_or(usize::MAX)
    }

    /// Elements of a ws buffer: `num_ws * w_dim`.
    pub const fn ws_len(&self) -> usize {
        self.num_ws.saturating_mul(self.w_dim)
    }

    /// Multiply-adds per sample (the embedding included).
    pub fn macs(&self) -> usize {
        let mut total = self.embed_features * self.c_dim;
        for i in 0..self.num_layers {
            let (inp, out) = self.layer_shape(i);
            total += inp * out;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stylegan2_sizes_match_spec_section_5() {
        let s = MappingSpec::STYLEGAN2_1024;
        s.validate().unwrap();
        assert_eq!(s.param_len(), 8 * (512 * 512 + 512));
        assert_eq!(s.macs(), 2_097_152);
        assert_eq!(s.ws_len(), 18 * 512);
    }

    #[test]
    fn shapes_chain_with_hidden_and_embed_widths() {
        let mut s = MappingSpec::nvlabs(37, 5, 19, 3, 9);
        s.layer_features = 23;
        s.embed_features = 11;
        s.validate().unwrap();
        assert_eq!(s.layer_shape(0), (48, 23));
        assert_eq!(s.layer_shape(1), (23, 23));
        assert_eq!(s.layer_shape(2), (23, 19));
        assert_eq!(
            s.param_len(),
            11 * 5 + 11 + 48 * 23 + 23 + 23 * 23 + 23 + 23 * 19 + 19
        );
        assert_eq!(s.scratch_len(), 96);
    }

    #[test]
    fn bad_specs_are_rejected() {
        let ok = MappingSpec::nvlabs(4, 0, 4, 2, 3);
        let cases = [
            (
                MappingSpec { z_dim: 0, ..ok },
                Error::BadDimension(Operand::ZDim),
            ),
            (
                MappingSpec { num_ws: 0, ..ok },
                Error::BadDimension(Operand::NumWs),
            ),
            (
                MappingSpec {
                    num_layers: 0,
                    ..ok
                },
                Error::BadDimension(Operand::NumLayers),
            ),
            (
                MappingSpec { c_dim: 3, ..ok },
                Error::BadDimension(Operand::EmbedFeatures),
            ),
            (
                MappingSpec {
                    lr_multiplier: f64::NAN,
                    ..ok
                },
                Error::BadLrMultiplier,
            ),
            (
                MappingSpec {
                    lr_multiplier: -1.0,
                    ..ok
                },
                Error::BadLrMultiplier,
            ),
            (
                MappingSpec {
                    z_dim: usize::MAX,
                    ..ok
                },
                Error::TooLarge,
            ),
        ];
        for (spec, err) in cases {
            assert_eq!(spec.validate(), Err(err), "{spec:?}");
        }
    }
}
