//! A whole mapping network over packed weights, batched.

use super::{Section, Sections};
use crate::error::{Error, Operand, check_finite, check_len};
use crate::kernels::Kernel;
use crate::network::{LayerWidth, check_batch_io, forward_chunks};
use crate::spec::{Activation, MappingSpec};
use crate::truncation;

/// Samples per pass through the layers in
/// [`PackedNetwork::forward_batch`]: a batch runs through all layers this
/// many samples at a time, so the two activation buffers (2 x 128 x 512
/// floats = 512 KiB for 512-wide layers) stay in L2 next to the 1 MiB layer
/// being read. Measured on the 2-core AVX-512 Xeon (8 x 512 layers, one
/// thread, B = 512, interleaved runs): 128 was best by 2-6% over 64, 256
/// and 512. Results do not depend on it (each sample's arithmetic is the
/// same in any batch).
pub const BATCH_CHUNK: usize = 128;

/// Elements of scratch [`PackedNetwork::forward_batch`] needs for `batch`
/// samples: two activation buffers of `min(batch, BATCH_CHUNK)` rows of the
/// widest layer input, i.e. `min(batch, BATCH_CHUNK) * spec.scratch_len()`.
/// Saturates at `usize::MAX`.
pub fn batch_scratch_len(spec: &MappingSpec, batch: usize) -> usize {
    batch.min(BATCH_CHUNK).saturating_mul(spec.scratch_len())
}

/// One packed layer of a [`PackedNetwork`]: what one batched kernel call
/// consumes.
#[derive(Clone, Copy, Debug)]
pub struct PackedLayer<'a> {
    /// `W'` packed in panels of [`nr`](Self::nr) rows (see
    /// [`pack_layer`](super::pack_layer)).
    pub weight: &'a [f32],
    /// `b'` `[out]`.
    pub bias: &'a [f32],
    /// Input width.
    pub in_features: usize,
    /// Output width.
    pub out_features: usize,
    /// Activation (gain already folded in).
    pub activation: Activation,
    /// Panel width of the packing.
    pub nr: usize,
}

impl LayerWidth for PackedLayer<'_> {
    fn out_features(&self) -> usize {
        self.out_features
    }
}

/// A mapping network over weights packed for one kernel, run on a batch of
/// samples at a time with no allocation.
///
/// # Buffer layout
///
/// One contiguous `[f32]` of [`packed_network_len`](super::packed_network_len)`(spec, kernel)`
/// elements, written by [`pack_network`](super::pack_network) from the folded
/// layout ([`crate::fold`]), with `NR = kernel.packed_nr()`:
///
/// | section | elements | present |
/// |---|---|---|
/// | `embed.W'` packed | `packed_len(embed_features, c_dim, NR)` | `c_dim > 0` |
/// | `embed.b'` | `embed_features` | `c_dim > 0` |
/// | zero padding | to a multiple of 16 floats | `c_dim > 0` |
/// | `fc{i}.W'` packed | `packed_len(out_i, in_i, NR)` | each layer `i` |
/// | `fc{i}.b'` | `out_i` | each layer `i` |
/// | zero padding | to a multiple of 16 floats | each layer `i` |
///
/// Every section starts at a multiple of [`SECTION_ALIGN`](super::SECTION_ALIGN)
/// floats, so if the buffer starts on a 64-byte boundary every packed weight
/// block and panel does (`NR >= 16`). Alignment never changes results; it
/// only matters for speed when a layer is cache-resident.
///
/// # Semantics
///
/// [`forward_batch`](Self::forward_batch) computes exactly what
/// [`MappingNetwork::forward`](crate::MappingNetwork::forward) computes per
/// sample (same normalisation, embedding and layer order); only the order of
/// the f32 sums inside a dot product can differ (bounded in `tests/gemm.rs`).
/// Results for a sample never depend on the batch it is in.
#[derive(Clone, Debug)]
pub struct PackedNetwork<P> {
    spec: MappingSpec,
    kernel: Kernel,
    packed: P,
    w_avg: P,
}

impl<P: AsRef<[f32]>> PackedNetwork<P> {
    /// Wraps a buffer packed by [`pack_network`](super::pack_network) for
    /// `kernel`, and `w_avg [w_dim]`.
    ///
    /// Errors if `kernel` cannot run here, `spec` is invalid, a length is
    /// wrong, or a value is not finite. The layout itself cannot be checked:
    /// a buffer packed for another kernel with the same length gives wrong
    /// results (never undefined behaviour).
    pub fn new(spec: MappingSpec, kernel: Kernel, packed: P, w_avg: P) -> Result<Self, Error> {
        if !kernel.is_available() {
            return Err(Error::KernelUnavailable);
        }
        spec.validate()?;
        let len = Sections::new(&spec, kernel.packed_nr())
            .end()
            .ok_or(Error::TooLarge)?;
        check_len(Operand::Params, packed.as_ref(), len)?;
        check_len(Operand::WAvg, w_avg.as_ref(), spec.w_dim)?;
        check_finite(Operand::Params, packed.as_ref())?;
        check_finite(Operand::WAvg, w_avg.as_ref())?;
        Ok(PackedNetwork {
            spec,
            kernel,
            packed,
            w_avg,
        })
    }

    /// The network description.
    pub fn spec(&self) -> &MappingSpec {
        &self.spec
    }

    /// The kernel the weights are packed for, and that runs them.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The packed buffer.
    pub fn packed(&self) -> &[f32] {
        self.packed.as_ref()
    }

    /// The average latent used by truncation.
    pub fn w_avg(&self) -> &[f32] {
        self.w_avg.as_ref()
    }

    /// Elements of scratch [`forward_batch`](Self::forward_batch) needs for
    /// `batch` samples (see [`batch_scratch_len`]).
    pub fn scratch_len(&self, batch: usize) -> usize {
        batch_scratch_len(&self.spec, batch)
    }

    fn view(&self, s: Section) -> PackedLayer<'_> {
        let nr = self.kernel.packed_nr();
        let p = self.packed.as_ref();
        PackedLayer {
            weight: &p[s.weight..s.bias],
            bias: &p[s.bias..s.bias + s.out],
            in_features: s.inp,
            out_features: s.out,
            activation: s.activation,
            nr,
        }
    }

    /// The label embedding (conditional networks) and the fc layers, in order.
    pub fn layers(
        &self,
    ) -> (
        Option<PackedLayer<'_>>,
        impl Iterator<Item = PackedLayer<'_>>,
    ) {
        let mut sections = Sections::new(&self.spec, self.kernel.packed_nr());
        let embed = if self.spec.c_dim > 0 {
            sections.next().map(|s| self.view(s))
        } else {
            None
        };
        (embed, sections.map(|s| self.view(s)))
    }

    /// Maps `batch` samples: `w[s] = mapping(z[s], c[s])` (SPEC §1 steps 1–3).
    ///
    /// `z` is `[batch, z_dim]`, `c` is `[batch, c_dim]` (empty for
    /// unconditional networks), `w` receives `[batch, w_dim]`, all row-major;
    /// `scratch` needs at least [`scratch_len`](Self::scratch_len)`(batch)`
    /// elements. The batch runs through the layers [`BATCH_CHUNK`] samples
    /// at a time, each layer one batched kernel call. Errors only for wrong
    /// lengths or non-finite `z`/`c`, before anything is written.
    pub fn forward_batch(
        &self,
        z: &[f32],
        c: &[f32],
        batch: usize,
        scratch: &mut [f32],
        w: &mut [f32],
    ) -> Result<(), Error> {
        check_batch_io(&self.spec, z, c, batch, scratch, w, self.scratch_len(batch))?;
        if batch == 0 {
            return Ok(());
        }
        let kernel = self.kernel;
        let packed = self.packed.as_ref();
        let run = |l: &PackedLayer<'_>, x: &[f32], y: &mut [f32], _: &mut [f32]| {
            // Prefetching runs on past this layer's weights into the rest
            // of the buffer: its bias, then the next layer.
            let next = after(packed, l.weight);
            super::run(
                kernel,
                l.weight,
                l.bias,
                x,
                l.in_features,
                l.activation,
                y,
                next,
            );
        };
        let layers = || self.layers();
        forward_chunks(
            &self.spec,
            z,
            c,
            batch,
            BATCH_CHUNK,
            scratch,
            layers,
            run,
            w,
        );
        Ok(())
    }

    /// Broadcasts one sample's `w` to `ws [num_ws, w_dim]` and truncates
    /// toward this network's `w_avg` (SPEC §1 steps 4–5); see
    /// [`truncation::broadcast_truncate`].
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

/// The part of `buf` after its sub-slice `sub` (empty if `sub` is not in
/// `buf`): address arithmetic only, no unsafe.
fn after<'a>(buf: &'a [f32], sub: &[f32]) -> &'a [f32] {
    let start = buf.as_ptr() as usize;
    let end = sub.as_ptr() as usize + size_of_val(sub);
    let at = end.wrapping_sub(start) / size_of::<f32>();
    buf.get(at..).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::after;

    #[test]
    fn after_is_the_rest_of_the_buffer_or_empty() {
        let buf = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(after(&buf, &buf[1..3]), &buf[3..]);
        assert_eq!(after(&buf, &buf[..]), &[] as &[f32]);
        assert_eq!(after(&buf, &buf[6..]), &[] as &[f32]);
        // A sub-slice ending before the buffer starts is not in it.
        assert_eq!(after(&buf[3..], &buf[..1]), &[] as &[f32]);
    }
}
