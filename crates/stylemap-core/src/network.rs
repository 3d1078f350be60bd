//! The mapping network: validated once, then z (+ c) -> w with no allocation.

use crate::error::{Error, Operand, check_finite, check_len, check_overflow};
use crate::fold::{self, FoldedLayer};
use crate::kernels::{self, Kernel};
use crate::spec::MappingSpec;
use crate::truncation;

/// The epsilon NVlabs adds inside the root of `normalize_2nd_moment`.
pub const NORMALIZE_EPS: f64 = 1e-8;

/// `dst = src * rsqrt(mean(src^2) + 1e-8)` (NVlabs' `normalize_2nd_moment`).
///
/// The mean of squares is accumulated in f64, so it neither overflows for
/// |src| up to `f32::MAX` nor loses subnormals; `src = 0` gives exactly 0.
/// `dst` and `src` must have the same length.
pub fn normalize_2nd_moment(src: &[f32], dst: &mut [f32]) {
    let sum: f64 = src.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let mean = sum / src.len().max(1) as f64;
    let scale = 1.0 / libm::sqrt(mean + NORMALIZE_EPS);
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = (f64::from(s) * scale) as f32;
    }
}

/// A mapping network over folded parameters held in any storage `P`:
/// `&'static [f32]` in flash, `Vec<f32>` on a host, anything `AsRef<[f32]>`.
///
/// Construction validates the description, every length and every parameter
/// (finite); after that only the caller's buffers are checked per call, in
/// O(1) plus one pass over z and c.
#[derive(Clone, Debug)]
pub struct MappingNetwork<P> {
    spec: MappingSpec,
    params: P,
    w_avg: P,
    kernel: Kernel,
}

impl<P: AsRef<[f32]>> MappingNetwork<P> {
    /// Wraps folded parameters (layout: [`crate::fold`]) and `w_avg [w_dim]`.
    ///
    /// Uses [`Kernel::best`]; see [`with_kernel`](Self::with_kernel).
    pub fn new(spec: MappingSpec, params: P, w_avg: P) -> Result<Self, Error> {
        spec.validate()?;
        check_len(Operand::Params, params.as_ref(), spec.param_len())?;
        check_len(Operand::WAvg, w_avg.as_ref(), spec.w_dim)?;
        check_finite(Operand::Params, params.as_ref())?;
        check_finite(Operand::WAvg, w_avg.as_ref())?;
        Ok(MappingNetwork {
            spec,
            params,
            w_avg,
            kernel: Kernel::best(),
        })
    }

    /// Selects the GEMV kernel; errors if it cannot run here.
    pub fn with_kernel(mut self, kernel: Kernel) -> Result<Self, Error> {
        if !kernel.is_available() {
            return Err(Error::KernelUnavailable);
        }
        self.kernel = kernel;
        Ok(self)
    }

    /// The network description.
    pub fn spec(&self) -> &MappingSpec {
        &self.spec
    }

    /// The kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The folded parameters.
    pub fn params(&self) -> &[f32] {
        self.params.as_ref()
    }

    /// The average latent used by truncation.
    pub fn w_avg(&self) -> &[f32] {
        self.w_avg.as_ref()
    }

    /// Replaces `w_avg` (e.g. after an EMA update or a fresh estimate) and
    /// returns the old one. Errors, leaving the network unchanged, unless the
    /// new one has `w_dim` finite elements.
    pub fn replace_w_avg(&mut self, w_avg: P) -> Result<P, Error> {
        check_len(Operand::WAvg, w_avg.as_ref(), self.spec.w_dim)?;
        check_finite(Operand::WAvg, w_avg.as_ref())?;
        Ok(core::mem::replace(&mut self.w_avg, w_avg))
    }

    /// Takes the network apart: `(spec, folded parameters, w_avg)`.
    pub fn into_parts(self) -> (MappingSpec, P, P) {
        (self.spec, self.params, self.w_avg)
    }

    /// The label embedding (conditional networks) and the fc layers, in order.
    pub fn layers(
        &self,
    ) -> (
        Option<FoldedLayer<'_>>,
        impl Iterator<Item = FoldedLayer<'_>>,
    ) {
        fold::layers(&self.spec, self.params.as_ref())
    }

    /// Checks the caller's buffers for [`forward`](Self::forward).
    fn check_io(&self, z: &[f32], c: &[f32], scratch: &[f32], w: &[f32]) -> Result<(), Error> {
        let s = &self.spec;
        check_len(Operand::Z, z, s.z_dim)?;
        if c.len() != s.c_dim {
            return Err(Error::Conditioning {
                c_dim: s.c_dim,
                actual: c.len(),
            });
        }
        check_len(Operand::W, w, s.w_dim)?;
        if scratch.len() < s.scratch_len() {
            return Err(Error::Length {
                what: Operand::Scratch,
                expected: s.scratch_len(),
                actual: scratch.len(),
            });
        }
        check_finite(Operand::Z, z)?;
        check_finite(Operand::C, c)
    }

    /// Maps one sample: `w = mapping(z, c)` (SPEC §1 steps 1–3).
    ///
    /// `z` has `z_dim` elements; `c` has `c_dim` (empty for unconditional
    /// networks); `w` receives `w_dim`; `scratch` needs at least
    /// [`MappingSpec::scratch_len`] elements.
    ///
    /// Errors for wrong lengths or non-finite `z`/`c` before anything is
    /// written, and with [`Error::Overflow`] (`what` = [`Operand::W`]) if the
    /// result is not finite although the inputs were: weights or a label so
    /// large that an activation exceeded `f32::MAX`. A non-finite activation
    /// anywhere makes every later one non-finite, so checking `w` (O(w_dim))
    /// catches an overflow in any layer; `w`'s contents are then unspecified.
    /// See the crate's numeric contract.
    pub fn forward(
        &self,
        z: &[f32],
        c: &[f32],
        scratch: &mut [f32],
        w: &mut [f32],
    ) -> Result<(), Error> {
        self.check_io(z, c, scratch, w)?;
        let s = &self.spec;
        let half = s.scratch_len() / 2;
        let (a, rest) = scratch.split_at_mut(half);
        let b = &mut rest[..half];
        let inp = s.input_features();
        normalize_2nd_moment(z, &mut a[..s.z_dim]);
        let (embed, layers) = self.layers();
        if let Some(e) = embed {
            // Embed into b, normalise into the tail of a: x = concat(norm(z), norm(embed(c))).
            kernels::run(
                self.kernel,
                e.weight,
                e.bias,
                c,
                e.activation,
                &mut b[..e.out_features],
            );
            normalize_2nd_moment(&b[..e.out_features], &mut a[s.z_dim..inp]);
        }
        let (mut src, mut dst) = (a, b);
        let mut width = inp;
        for (i, layer) in layers.enumerate() {
            let x = &src[..width];
            if i + 1 == s.num_layers {
                kernels::run(
                    self.kernel,
                    layer.weight,
                    layer.bias,
                    x,
                    layer.activation,
                    w,
                );
            } else {
                let y = &mut dst[..layer.out_features];
                kernels::run(
                    self.kernel,
                    layer.weight,
                    layer.bias,
                    x,
                    layer.activation,
                    y,
                );
                core::mem::swap(&mut src, &mut dst);
                width = layer.out_features;
            }
        }
        check_overflow(Operand::W, w)
    }

    /// Broadcasts `w` to `ws [num_ws, w_dim]` and truncates toward this
    /// network's `w_avg` (SPEC §1 steps 4–5); see [`truncation::broadcast_truncate`].
    pub fn broadcast_truncate(
        &self,
        w: &[f32],
        psi: f32,
        cutoff: Option<usize>,
        ws: &mut [f32],
    ) -> Result<(), Error> {
        let t = truncation::Truncation { psi, cutoff };
        truncation::broadcast_truncate(w, self.w_avg(), self.spec.num_ws, t, ws)
    }
}
