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

/// The output width of one layer, for [`forward_layers`].
pub(crate) trait LayerWidth {
    fn out_features(&self) -> usize;
}

impl LayerWidth for FoldedLayer<'_> {
    fn out_features(&self) -> usize {
        self.out_features
    }
}

/// Checks the caller's buffers for a forward of `batch` samples, the same
/// for every network type: lengths of `z`, `c`, `w`, at least `need`
/// elements of scratch, then finite `z` and `c`; an error before anything
/// is written.
pub(crate) fn check_batch_io(
    s: &MappingSpec,
    z: &[f32],
    c: &[f32],
    batch: usize,
    scratch: &[f32],
    w: &[f32],
    need: usize,
) -> Result<(), Error> {
    let rows = |n: usize| batch.checked_mul(n).ok_or(Error::TooLarge);
    check_len(Operand::Z, z, rows(s.z_dim)?)?;
    if c.len() != rows(s.c_dim)? {
        return Err(Error::Conditioning {
            c_dim: s.c_dim,
            actual: c.len(),
        });
    }
    check_len(Operand::W, w, rows(s.w_dim)?)?;
    if scratch.len() < need {
        return Err(Error::Length {
            what: Operand::Scratch,
            expected: need,
            actual: scratch.len(),
        });
    }
    check_finite(Operand::Z, z)?;
    check_finite(Operand::C, c)
}

/// SPEC §1 steps 1–3 for `n` samples, whatever the weights' layout: the
/// one driver behind every forward in the crate.
///
/// `x = concat(norm(z), norm(embed(c)))` per sample, then every layer in
/// order, ping-ponging between `a` and `b` (each at least `n` times the
/// widest layer input; `b` also holds the embedding), the last layer
/// writing `w [n, w_dim]`. `run(layer, x, y)` computes one layer for the
/// whole chunk: `x [n, in]` to `y [n, out]`, row-major. Lengths are the
/// caller's contract (checked by the public entry points).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_layers<T: LayerWidth>(
    spec: &MappingSpec,
    z: &[f32],
    c: &[f32],
    n: usize,
    a: &mut [f32],
    b: &mut [f32],
    embed: Option<T>,
    layers: impl Iterator<Item = T>,
    mut run: impl FnMut(&T, &[f32], &mut [f32]),
    w: &mut [f32],
) {
    let (zd, cd, inp) = (spec.z_dim, spec.c_dim, spec.input_features());
    for (zs, xs) in z[..n * zd].chunks_exact(zd).zip(a.chunks_exact_mut(inp)) {
        normalize_2nd_moment(zs, &mut xs[..zd]);
    }
    if let Some(e) = embed {
        // Embed into b, normalise each row into the tail of a row of a.
        let ef = e.out_features();
        let eb = &mut b[..n * ef];
        run(&e, &c[..n * cd], eb);
        for (es, xs) in eb.chunks_exact(ef).zip(a.chunks_exact_mut(inp)) {
            normalize_2nd_moment(es, &mut xs[zd..]);
        }
    }
    let (mut src, mut dst) = (a, b);
    let mut width = inp;
    for (i, layer) in layers.enumerate() {
        let x = &src[..n * width];
        let out = layer.out_features();
        if i + 1 == spec.num_layers {
            run(&layer, x, &mut w[..n * spec.w_dim]);
        } else {
            run(&layer, x, &mut dst[..n * out]);
            core::mem::swap(&mut src, &mut dst);
            width = out;
        }
    }
}

/// [`forward_layers`] over a whole batch of `batch >= 1` samples, `chunk`
/// at a time: `scratch` holds the two activation buffers of `min(batch,
/// chunk)` rows (`min(batch, chunk) * spec.scratch_len()` floats), and what
/// is left of it is handed to every `run` call as the kernel's own scratch.
/// `layers()` gives the embedding and the fc layers afresh for each chunk.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_chunks<T: LayerWidth, I: Iterator<Item = T>>(
    spec: &MappingSpec,
    z: &[f32],
    c: &[f32],
    batch: usize,
    chunk: usize,
    scratch: &mut [f32],
    layers: impl Fn() -> (Option<T>, I),
    mut run: impl FnMut(&T, &[f32], &mut [f32], &mut [f32]),
    w: &mut [f32],
) {
    let (zd, cd, wd) = (spec.z_dim, spec.c_dim, spec.w_dim);
    let chunk = batch.min(chunk);
    let half = chunk * (spec.scratch_len() / 2);
    let (a, rest) = scratch.split_at_mut(half);
    let (b, kernel) = rest.split_at_mut(half);
    let mut start = 0;
    while start < batch {
        let n = chunk.min(batch - start);
        let (embed, fc) = layers();
        let run = |l: &T, x: &[f32], y: &mut [f32]| run(l, x, y, kernel);
        forward_layers(
            spec,
            &z[start * zd..],
            &c[start * cd..],
            n,
            a,
            b,
            embed,
            fc,
            run,
            &mut w[start * wd..(start + n) * wd],
        );
        start += n;
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
        check_batch_io(&self.spec, z, c, 1, scratch, w, self.spec.scratch_len())?;
        let half = self.spec.scratch_len() / 2;
        let (a, rest) = scratch.split_at_mut(half);
        let (embed, layers) = self.layers();
        let kernel = self.kernel;
        let run = |l: &FoldedLayer<'_>, x: &[f32], y: &mut [f32]| {
            kernels::run(kernel, l.weight, l.bias, x, l.activation, y);
        };
        forward_layers(
            &self.spec,
            z,
            c,
            1,
            a,
            &mut rest[..half],
            embed,
            layers,
            run,
            w,
        );
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
