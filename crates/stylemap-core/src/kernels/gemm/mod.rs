//! Batched fused kernels over packed weights: `Y = act(X Wᵀ + b)` for many
//! samples in one pass over the weights.
//!
//! A batch of `B` samples through one layer is `y[s, :] = act(W x[s, :] + b)`
//! for `s in 0..B`, with `x [B, in]` and `y [B, out]` row-major (sample after
//! sample). The per-sample [GEMV kernels](super) stream all of `W` once per
//! sample; these kernels stream it once per batch and keep an `MR x NR` block
//! of results (`MR` samples times `NR` outputs) in vector registers, so each
//! weight load feeds `MR` fused multiply-adds and no horizontal sum is ever
//! taken.
//!
//! # Packed layout
//!
//! [`pack_layer`] rearranges a folded row-major `W [out, in]` (see
//! [`crate::fold`]) into `ceil(out / NR)` **panels** of `NR` output rows, each
//! stored **k-major**:
//!
//! ```text
//! panel p = W[p*NR .. p*NR + NR, :]          (rows past `out` are zeros)
//! packed[p * (in * NR) + k * NR + j] = W[p*NR + j, k]     j < NR, k < in
//! ```
//!
//! so the `NR` weights that multiply `x[s, k]` for one panel are contiguous
//! (one or two aligned vector loads), and a whole layer is one sequential
//! stream of [`packed_len`]`(out, in, NR) = ceil(out/NR) * NR * in` floats.
//! The bias stays a plain `[out]` vector. `NR` depends on the kernel
//! ([`Kernel::packed_nr`]): the layout a kernel reads is the layout packed
//! with its own `NR`, so pack with the kernel that will run it.
//!
//! | [`Kernel`] | NR | register block (MR samples x NR outputs) | k block |
//! |---|---|---|---|
//! | `Scalar` | 8 | plain loops (the oracle) | all |
//! | `Portable` | 8 | 4 x 8 (`wide::f32x8`) | all |
//! | `Avx2` | 16 | 6 x 16 (12 ymm accumulators) | 256 |
//! | `Avx512` | 32 | 14 x 32 (28 zmm accumulators) | 512 |
//! | `Neon` | 16 | 6 x 16 (24 q accumulators) | 256 |
//!
//! A whole network packs into one buffer with [`pack_network`]; its layout
//! is described at [`PackedNetwork`].
//!
//! # Numerics
//!
//! Every kernel computes each output as one accumulator, summed over `k` in
//! index order starting from 0, then `+ b`, then leaky ReLU (exactly
//! the GEMV kernels' epilogue): no k-splitting, no reassociation. Hence
//!
//! - the result for a sample never depends on the batch size, on the
//!   sample's position in the batch, or on the other samples (bit for bit);
//! - [`Kernel::Scalar`] (`acc += w * x`, two roundings) equals the scalar
//!   GEMV oracle [`super::scalar::gemv_f32`] bit for bit;
//! - the FMA kernels (AVX2, AVX-512, NEON) round once per step and all give
//!   the same bits as each other; the portable kernel rounds like one of
//!   these two families depending on the `wide` backend it was built with.
//!
//! Against the scalar oracle, the difference is bounded by the usual dot
//! product bound (see `tests/gemm.rs`).

pub mod portable;
pub mod scalar;

#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
mod simd;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub mod neon;
#[cfg(target_arch = "x86_64")]
pub mod x86;

mod network;

pub use network::{BATCH_CHUNK, PackedLayer, PackedNetwork, batch_scratch_len};

use super::Kernel;
use crate::error::{Error, Operand, check_len};
use crate::spec::{Activation, MappingSpec};

impl Kernel {
    /// The panel width `NR` of this kernel's packed layout (see
    /// [the layout](self#packed-layout)): weights for a kernel must be packed
    /// with this width.
    pub const fn packed_nr(self) -> usize {
        match self {
            Kernel::Scalar => scalar::NR,
            Kernel::Portable => portable::NR,
            Kernel::Avx2 => AVX2_NR,
            Kernel::Avx512 => AVX512_NR,
            Kernel::Neon => NEON_NR,
        }
    }
}

/// Panel width of the AVX2 kernel (2 ymm vectors).
pub(crate) const AVX2_NR: usize = 16;
/// Panel width of the AVX-512 kernel (2 zmm vectors).
pub(crate) const AVX512_NR: usize = 32;
/// Panel width of the NEON kernel (4 q vectors).
pub(crate) const NEON_NR: usize = 16;

/// Alignment, in floats, of every layer section inside a packed network
/// buffer (16 floats = 64 bytes, one cache line): if the buffer starts on a
/// 64-byte boundary, so does every layer's packed weight block.
pub const SECTION_ALIGN: usize = 16;

/// Elements of `W [out, in]` packed in panels of `nr` rows:
/// `ceil(out / nr) * nr * in`. Saturates at `usize::MAX` on overflow; 0 if
/// any argument is 0.
pub const fn packed_len(out: usize, inp: usize, nr: usize) -> usize {
    match checked_packed_len(out, inp, nr) {
        Some(n) => n,
        None => usize::MAX,
    }
}

const fn checked_packed_len(out: usize, inp: usize, nr: usize) -> Option<usize> {
    if nr == 0 {
        return Some(0);
    }
    let panels = out.div_ceil(nr);
    match panels.checked_mul(nr) {
        Some(rows) => rows.checked_mul(inp),
        None => None,
    }
}

/// Packs a folded row-major `weight [out, in]` into panels of `nr` rows,
/// k-major, zero-padded (see [the layout](self#packed-layout)), into `dst`
/// of exactly [`packed_len`]`(out, in, nr)` elements. Does not allocate.
///
/// Errors if a dimension is 0 (`Operand::Gemv`), the sizes overflow, or a
/// length is wrong; `dst` is untouched on error.
pub fn pack_layer(
    weight: &[f32],
    out: usize,
    inp: usize,
    nr: usize,
    dst: &mut [f32],
) -> Result<(), Error> {
    check_pack(WeightLayout::Panels(nr), weight, out, inp, dst)?;
    for (p, panel) in dst.chunks_exact_mut(inp * nr).enumerate() {
        let rows = nr.min(out - p * nr);
        let src = &weight[p * nr * inp..(p * nr + rows) * inp];
        for (k, dk) in panel.chunks_exact_mut(nr).enumerate() {
            for (j, d) in dk.iter_mut().enumerate() {
                *d = if j < rows { src[j * inp + k] } else { 0.0 };
            }
        }
    }
    Ok(())
}

/// Rounds `n` up to a multiple of [`SECTION_ALIGN`].
const fn align_up(n: usize) -> Option<usize> {
    match n.checked_add(SECTION_ALIGN - 1) {
        Some(m) => Some(m / SECTION_ALIGN * SECTION_ALIGN),
        None => None,
    }
}

/// One layer's place in a packed network buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Section {
    /// Offset of the packed weights.
    pub weight: usize,
    /// Offset of the bias (`out` floats), right after the packed weights.
    pub bias: usize,
    /// Input width.
    pub inp: usize,
    /// Output width.
    pub out: usize,
    /// Activation (gain folded in).
    pub activation: Activation,
}

/// How many elements one layer's packed weights take: panels of `nr` rows
/// ([`packed_len`]), or the AMX layout ([`crate::kernels::amx::packed_layer_len`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum WeightLayout {
    Panels(usize),
    Amx,
}

impl WeightLayout {
    fn len(self, out: usize, inp: usize) -> Option<usize> {
        match self {
            WeightLayout::Panels(nr) => checked_packed_len(out, inp, nr),
            WeightLayout::Amx => crate::kernels::amx::checked_layer_len(out, inp),
        }
    }
}

/// The checks of every `pack_layer`: positive dimensions (and panel
/// width), sizes that fit, `weight [out, in]` and `dst` of exactly the
/// packed length of `layout`.
pub(crate) fn check_pack<T>(
    layout: WeightLayout,
    weight: &[f32],
    out: usize,
    inp: usize,
    dst: &[T],
) -> Result<(), Error> {
    if out == 0 || inp == 0 || matches!(layout, WeightLayout::Panels(0)) {
        return Err(Error::BadDimension(Operand::Gemv));
    }
    let len = layout.len(out, inp).ok_or(Error::TooLarge)?;
    check_len(
        Operand::Gemv,
        weight,
        out.checked_mul(inp).ok_or(Error::TooLarge)?,
    )?;
    check_len(Operand::Gemv, dst, len)
}

/// The sections of a network's packed buffer, in buffer order: the
/// embedding (if any), then each fc layer, each its weights in `layout`,
/// its bias, and padding to [`SECTION_ALIGN`] elements. `spec` must be
/// valid; on overflow the iteration stops early and [`end`](Self::end) is
/// `None`.
#[derive(Clone, Debug)]
pub(crate) struct Sections {
    spec: MappingSpec,
    layout: WeightLayout,
    at: usize,
    i: usize,
    overflow: bool,
}

impl Sections {
    pub(crate) fn new(spec: &MappingSpec, nr: usize) -> Self {
        Sections::with_layout(spec, WeightLayout::Panels(nr))
    }

    pub(crate) fn with_layout(spec: &MappingSpec, layout: WeightLayout) -> Self {
        Sections {
            spec: *spec,
            layout,
            at: 0,
            i: 0,
            overflow: false,
        }
    }

    /// Total length, after the iteration (`None` on overflow).
    pub(crate) fn end(mut self) -> Option<usize> {
        for _ in self.by_ref() {}
        (!self.overflow).then_some(self.at)
    }
}

impl Iterator for Sections {
    type Item = Section;

    fn next(&mut self) -> Option<Section> {
        let s = &self.spec;
        let embeds = usize::from(s.c_dim > 0);
        if self.overflow || self.i >= embeds + s.num_layers {
            return None;
        }
        let (inp, out, activation) = if self.i < embeds {
            (s.c_dim, s.embed_features, Activation::Linear)
        } else {
            let (inp, out) = s.layer_shape(self.i - embeds);
            (inp, out, s.activation)
        };
        let place = || {
            let bias = self.at.checked_add(self.layout.len(out, inp)?)?;
            Some((bias, align_up(bias.checked_add(out)?)?))
        };
        let Some((bias, end)) = place() else {
            self.overflow = true;
            return None;
        };
        let section = Section {
            weight: self.at,
            bias,
            inp,
            out,
            activation,
        };
        self.at = end;
        self.i += 1;
        Some(section)
    }
}

/// Elements of a whole network packed for `kernel` by [`pack_network`]
/// (layout: [`PackedNetwork`]). Saturates at `usize::MAX` for an invalid or
/// overflowing `spec`.
pub fn packed_network_len(spec: &MappingSpec, kernel: Kernel) -> usize {
    if spec.validate().is_err() {
        return usize::MAX;
    }
    Sections::new(spec, kernel.packed_nr())
        .end()
        .unwrap_or(usize::MAX)
}

/// Packs a whole folded network (layout: [`crate::fold`], `spec.param_len()`
/// elements) for `kernel` into `dst` of exactly
/// [`packed_network_len`]`(spec, kernel)` elements (layout:
/// [`PackedNetwork`]). Does not allocate; padding is written as zeros.
///
/// Errors for an invalid `spec` or a wrong length; `dst` is untouched then.
/// Values are copied, not checked ([`PackedNetwork::new`] checks them).
pub fn pack_network(
    spec: &MappingSpec,
    folded: &[f32],
    kernel: Kernel,
    dst: &mut [f32],
) -> Result<(), Error> {
    spec.validate()?;
    check_len(Operand::Params, folded, spec.param_len())?;
    let nr = kernel.packed_nr();
    let len = Sections::new(spec, nr).end().ok_or(Error::TooLarge)?;
    check_len(Operand::Params, dst, len)?;
    dst.fill(0.0);
    let (embed, layers) = crate::fold::layers(spec, folded);
    for (s, l) in Sections::new(spec, nr).zip(embed.into_iter().chain(layers)) {
        let plen = packed_len(s.out, s.inp, nr);
        pack_layer(
            l.weight,
            s.out,
            s.inp,
            nr,
            &mut dst[s.weight..s.weight + plen],
        )?;
        dst[s.bias..s.bias + s.out].copy_from_slice(l.bias);
    }
    Ok(())
}

/// Checked entry point: `y[s, :] = act(W x[s, :] + b)` for every sample `s`,
/// with `W [out, in]` packed by [`pack_layer`] with `kernel.packed_nr()`.
///
/// `out = bias.len()`, `x` is `[batch, in_features]` and `y` is
/// `[batch, out]`, both row-major; `batch = x.len() / in_features` (0 is
/// allowed and does nothing). Errors if `kernel` is unavailable, a dimension
/// is 0, or the lengths do not chain (`packed.len()` must be
/// `packed_len(out, in_features, kernel.packed_nr())`). Numerics are never
/// checked: NaN in gives NaN out.
///
/// The layout cannot be verified: weights packed with another `NR` but the
/// same length give wrong results (never undefined behaviour).
pub fn gemm_packed_bias_act(
    kernel: Kernel,
    packed: &[f32],
    bias: &[f32],
    x: &[f32],
    in_features: usize,
    act: Activation,
    y: &mut [f32],
) -> Result<(), Error> {
    gemm_packed_bias_act_then(kernel, packed, bias, x, in_features, act, y, &[])
}

/// [`gemm_packed_bias_act`], naming `next`: the packed weights the caller
/// will run after these. Once a call has prefetched its own weights it goes
/// on into `next` (only prefetched, never read; any length), so a thread
/// that owns a slice of every layer (the std crate's pool) starts its next
/// layer with its weights on the way instead of prefetching another
/// thread's. Same checks and results as [`gemm_packed_bias_act`].
#[allow(clippy::too_many_arguments)] // the kernel's arguments plus `next`
pub fn gemm_packed_bias_act_then(
    kernel: Kernel,
    packed: &[f32],
    bias: &[f32],
    x: &[f32],
    in_features: usize,
    act: Activation,
    y: &mut [f32],
    next: &[f32],
) -> Result<(), Error> {
    if !kernel.is_available() {
        return Err(Error::KernelUnavailable);
    }
    let out = bias.len();
    super::check_layer_io(in_features, out, x, y)?;
    let nr = kernel.packed_nr();
    let plen = checked_packed_len(out, in_features, nr).ok_or(Error::TooLarge)?;
    check_len(Operand::Gemv, packed, plen)?;
    run(kernel, packed, bias, x, in_features, act, y, next);
    Ok(())
}

/// The dimensions every kernel derives from its slices, in O(1):
/// `(batch, out)`, or `None` if the lengths do not chain for panels of `nr`.
/// Kernels do nothing for `None`, so no length can make them misbehave.
#[inline]
pub(crate) fn dims(
    packed: usize,
    bias: usize,
    x: usize,
    inp: usize,
    y: usize,
    nr: usize,
) -> Option<(usize, usize)> {
    let out = bias;
    if inp == 0 || out == 0 || nr == 0 {
        return None;
    }
    let batch = x / inp;
    let ok = x == batch.checked_mul(inp)?
        && y == batch.checked_mul(out)?
        && packed == checked_packed_len(out, inp, nr)?;
    ok.then_some((batch, out))
}

/// Unchecked dispatch; callers guarantee the lengths chain (as
/// [`gemm_packed_bias_act`] checks) and that `kernel` is available.
#[inline]
#[allow(clippy::too_many_arguments)] // the kernel's arguments plus its choice
pub(crate) fn run(
    kernel: Kernel,
    packed: &[f32],
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
    next: &[f32],
) {
    match kernel {
        Kernel::Scalar => scalar::gemm_packed(packed, scalar::NR, bias, x, inp, act, y),
        Kernel::Portable => portable::gemm_packed_f32x8(packed, bias, x, inp, act, y),
        Kernel::Avx2 | Kernel::Avx512 | Kernel::Neon => {
            #[cfg(target_arch = "x86_64")]
            if x86::dispatch(kernel, packed, bias, x, inp, act, y, next) {
                return;
            }
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            if neon::dispatch(kernel, packed, bias, x, inp, act, y, next) {
                return;
            }
            // Only the SIMD kernels prefetch; targets without them never
            // read `next`.
            let _ = next;
            // Unreachable through the checked entry points; never run an
            // unsupported instruction, compute the same thing with plain loops.
            debug_assert!(false, "{kernel:?} is not available here");
            scalar::gemm_packed(packed, kernel.packed_nr(), bias, x, inp, act, y)
        }
    }
}
