//! A whole mapping network on the AMX kernel, batched.

use super::{layer_scratch_len, pack_layer, run};
use crate::error::{Error, Operand, check_len};
use crate::kernels::gemm::{Section, Sections, WeightLayout};
use crate::network::{LayerWidth, check_batch_io, forward_chunks};
use crate::spec::{Activation, MappingSpec};

/// Samples per pass through the layers in [`AmxNetwork::forward_batch`]:
/// the two activation buffers (2 x 128 x 512 f32 = 512 KiB) stay in L2 next
/// to the 1.5 MiB layer being read. Results do not depend on it.
pub const AMX_BATCH_CHUNK: usize = 128;

/// One layer of an [`AmxNetwork`]: what one [`gemm_bias_act`](super::gemm_bias_act)
/// call consumes.
#[derive(Clone, Copy, Debug)]
pub struct AmxLayer<'a> {
    /// `W'` packed by [`pack_layer`].
    pub weight: &'a [u32],
    /// `b'` `[out]`.
    pub bias: &'a [f32],
    /// Input width.
    pub in_features: usize,
    /// Output width.
    pub out_features: usize,
    /// Activation (gain already folded in).
    pub activation: Activation,
}

impl<'a> AmxLayer<'a> {
    /// The layer restricted to outputs `cols` (which must start on a
    /// multiple of [`BLOCK_COLS`](super::BLOCK_COLS)): a column block's
    /// weights are contiguous, so this is a sub-slice, and its results are
    /// the whole layer's bits for those outputs. `None` if `cols` is empty,
    /// misaligned or out of range.
    pub fn columns(&self, cols: core::ops::Range<usize>) -> Option<AmxLayer<'a>> {
        let bc = super::BLOCK_COLS;
        if cols.is_empty() || !cols.start.is_multiple_of(bc) || cols.end > self.out_features {
            return None;
        }
        let per_block = self.in_features.div_ceil(super::CHUNK) * super::PAIR_U32;
        let (b0, b1) = (cols.start / bc, cols.end.div_ceil(bc));
        Some(AmxLayer {
            weight: self.weight.get(b0 * per_block..b1 * per_block)?,
            bias: self.bias.get(cols.clone())?,
            in_features: self.in_features,
            out_features: cols.len(),
            activation: self.activation,
        })
    }
}

impl LayerWidth for AmxLayer<'_> {
    fn out_features(&self) -> usize {
        self.out_features
    }
}

/// The sections of `spec`'s buffer (embedding first if `c_dim > 0`), each
/// starting on 16 u32 (64 bytes): the embedding, the total length and the
/// fc layers; `None` on overflow.
fn sections(spec: &MappingSpec) -> Option<(Option<Section>, usize, Sections)> {
    let (embed, fc) = walk(spec);
    let len = fc.clone().end()?;
    Some((embed, len, fc))
}

/// The embedding's section and the fc layers' walker, without the length
/// (for a `spec` already known not to overflow).
fn walk(spec: &MappingSpec) -> (Option<Section>, Sections) {
    let mut fc = Sections::with_layout(spec, WeightLayout::Amx);
    let embed = if spec.c_dim > 0 { fc.next() } else { None };
    (embed, fc)
}

/// u32 of a whole network packed by [`pack_network`]. Saturates at
/// `usize::MAX` for an invalid or overflowing `spec`.
pub fn network_len(spec: &MappingSpec) -> usize {
    if spec.validate().is_err() {
        return usize::MAX;
    }
    sections(spec).map_or(usize::MAX, |(_, len, _)| len)
}

/// Packs a folded network (layout: [`crate::fold`]) into `dst` of exactly
/// [`network_len`]`(spec)` u32: per layer (embedding first), the weights by
/// [`pack_layer`], then the bias as f32 bits, then zeros to 16 u32.
/// Errors for an invalid `spec` or a wrong length; `dst` is untouched then.
pub fn pack_network(spec: &MappingSpec, folded: &[f32], dst: &mut [u32]) -> Result<(), Error> {
    spec.validate()?;
    check_len(Operand::Params, folded, spec.param_len())?;
    let (embed, len, layers) = sections(spec).ok_or(Error::TooLarge)?;
    check_len(Operand::Params, dst, len)?;
    dst.fill(0);
    let (fembed, flayers) = crate::fold::layers(spec, folded);
    let all = embed.into_iter().chain(layers);
    for (s, l) in all.zip(fembed.into_iter().chain(flayers)) {
        pack_layer(l.weight, s.out, s.inp, &mut dst[s.weight..s.bias])?;
        for (d, b) in dst[s.bias..s.bias + s.out].iter_mut().zip(l.bias) {
            *d = b.to_bits();
        }
    }
    Ok(())
}

/// A mapping network on the AMX kernel (see [`super`]): weights packed by
/// [`pack_network`] in any storage `P`, run on batches with caller scratch
/// and no allocation. Computes what
/// [`MappingNetwork::forward`](crate::MappingNetwork::forward) computes per
/// sample, with f32 accuracy but other summation (bounded in `tests/amx.rs`).
#[derive(Clone, Debug)]
pub struct AmxNetwork<P> {
    spec: MappingSpec,
    packed: P,
    /// The largest layer's kernel scratch.
    acc: usize,
}

impl<P: AsRef<[u32]>> AmxNetwork<P> {
    /// Wraps a buffer written by [`pack_network`]. Errors if AMX is not
    /// available here, `spec` is invalid, the length is wrong, the buffer
    /// does not start on 64 bytes ([`Error::Misaligned`]: every layer then
    /// starts on one, which the tile loads need for speed) or a weight or
    /// bias is not finite.
    pub fn new(spec: MappingSpec, packed: P) -> Result<Self, Error> {
        if !super::is_available() {
            return Err(Error::KernelUnavailable);
        }
        spec.validate()?;
        let (embed, len, layers) = sections(&spec).ok_or(Error::TooLarge)?;
        let p = packed.as_ref();
        check_len(Operand::Params, p, len)?;
        if !(p.as_ptr() as usize).is_multiple_of(64) {
            return Err(Error::Misaligned {
                what: Operand::Params,
                align: 64,
            });
        }
        let mut acc = 0;
        for s in embed.into_iter().chain(layers) {
            let bad_weight = p[s.weight..s.bias]
                .iter()
                .position(|&v| v & 0x7f80 == 0x7f80 || v & 0x7f80_0000 == 0x7f80_0000);
            let bad_bias = p[s.bias..s.bias + s.out]
                .iter()
                .position(|&v| !f32::from_bits(v).is_finite());
            if let Some(i) = bad_weight
                .map(|i| s.weight + i)
                .or(bad_bias.map(|i| s.bias + i))
            {
                return Err(Error::NonFinite {
                    what: Operand::Params,
                    index: i,
                });
            }
            acc = acc.max(layer_scratch_len(s.out, s.inp));
        }
        Ok(AmxNetwork { spec, packed, acc })
    }

    /// The network description.
    pub fn spec(&self) -> &MappingSpec {
        &self.spec
    }

    /// The packed buffer.
    pub fn packed(&self) -> &[u32] {
        self.packed.as_ref()
    }

    fn view(&self, l: Section) -> AmxLayer<'_> {
        let p = self.packed.as_ref();
        AmxLayer {
            weight: &p[l.weight..l.bias],
            bias: bytemuck::cast_slice(&p[l.bias..l.bias + l.out]),
            in_features: l.inp,
            out_features: l.out,
            activation: l.activation,
        }
    }

    /// The label embedding (conditional networks) and the fc layers, in order.
    pub fn layers(&self) -> (Option<AmxLayer<'_>>, impl Iterator<Item = AmxLayer<'_>>) {
        // `new` checked that the sizes fit: no need to walk to the end.
        let (embed, layers) = walk(&self.spec);
        (embed.map(|s| self.view(s)), layers.map(|s| self.view(s)))
    }

    /// f32 of scratch [`forward_batch`](Self::forward_batch) needs for
    /// `batch` samples: two activation buffers of `min(batch,
    /// AMX_BATCH_CHUNK)` rows plus the largest layer's kernel scratch
    /// (0 for batch 0)
    /// ([`layer_scratch_len`](super::layer_scratch_len)). Saturates.
    pub fn scratch_len(&self, batch: usize) -> usize {
        if batch == 0 {
            return 0;
        }
        batch
            .min(AMX_BATCH_CHUNK)
            .saturating_mul(self.spec.scratch_len())
            .saturating_add(self.acc)
    }

    /// Maps `batch` samples: `w[s] = mapping(z[s], c[s])` (SPEC §1 steps
    /// 1–3), `z [batch, z_dim]`, `c [batch, c_dim]` (empty if
    /// unconditional), `w [batch, w_dim]`, row-major. Errors only for wrong
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
        let run = |l: &AmxLayer<'_>, x: &[f32], y: &mut [f32], acc: &mut [f32]| {
            run(l.weight, l.bias, x, l.in_features, l.activation, y, acc);
        };
        let layers = || self.layers();
        forward_chunks(
            &self.spec,
            z,
            c,
            batch,
            AMX_BATCH_CHUNK,
            scratch,
            layers,
            run,
            w,
        );
        Ok(())
    }
}
