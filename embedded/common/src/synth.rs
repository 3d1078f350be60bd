//! A deterministic synthetic network (folded f32 weights from a xorshift
//! stream), for the Cortex-M0 firmware, which has no room for a real one.
//!
//! The firmware's build script calls [`fill`] on the host and embeds the
//! bytes ([`blob_len`], little-endian f32: the folded parameters in
//! [`stylemap_core::fold`]'s layout, then `w_avg`); the host check calls
//! [`fill`] itself. Both then run the same [`stylemap_core::MappingNetwork`].

use stylemap_core::{Error, MappingNetwork, MappingSpec};

use crate::RunError;

/// The Cortex-M0 network: 64 -> 8 x 64, 8 ws rows (133 KB of f32 weights,
/// for 256 KiB of flash and 16 KiB of RAM).
pub const M0_SPEC: MappingSpec = MappingSpec::nvlabs(64, 0, 64, 8, 8);
/// Seed of [`M0_SPEC`]'s weights.
pub const M0_WEIGHT_SEED: u32 = 0x5eed_0001;

/// Bytes of network data wrapped in a 64-byte aligned struct, so that
/// `include_bytes!` data can be viewed as `[f32]` (or parsed as a pack)
/// in place: `static NET: &Aligned<[u8]> = &Aligned(*include_bytes!(..));`.
#[repr(C, align(64))]
pub struct Aligned<B: ?Sized>(pub B);

/// Marsaglia's xorshift32.
#[derive(Clone, Copy, Debug)]
pub struct XorShift32(u32);

impl XorShift32 {
    /// A stream from a non-zero seed (0 is replaced by 1).
    pub const fn new(seed: u32) -> Self {
        XorShift32(if seed == 0 { 1 } else { seed })
    }

    /// The next word.
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// Uniform in `[-1, 1)` with 24 random bits (exact in f32).
    pub fn uniform_pm1(&mut self) -> f32 {
        let v = (self.next_u32() >> 8) as i32 - (1 << 23);
        v as f32 * (1.0 / 8_388_608.0)
    }
}

/// Bytes of the embedded form: `(param_len + w_dim) * 4`.
pub fn blob_len(spec: &MappingSpec) -> usize {
    (spec.param_len() + spec.w_dim) * 4
}

/// Fills folded parameters (`spec.param_len()`) and `w_avg` (`spec.w_dim`):
/// weights uniform with variance `2 / in` (He), biases uniform in
/// `[-0.1, 0.1)`, `w_avg` uniform in `[-0.3, 0.3)`. Unconditional specs only.
pub fn fill(
    spec: &MappingSpec,
    seed: u32,
    params: &mut [f32],
    w_avg: &mut [f32],
) -> Result<(), Error> {
    spec.validate()?;
    if spec.c_dim != 0 || params.len() != spec.param_len() || w_avg.len() != spec.w_dim {
        return Err(Error::BadDimension(stylemap_core::Operand::Params));
    }
    let mut rng = XorShift32::new(seed);
    let mut rest = params;
    for i in 0..spec.num_layers {
        let (inp, out) = spec.layer_shape(i);
        let (layer, tail) = rest.split_at_mut(out * (inp + 1));
        let (w, b) = layer.split_at_mut(out * inp);
        let scale = libm::sqrt(6.0 / inp as f64) as f32;
        for v in w {
            *v = rng.uniform_pm1() * scale;
        }
        for v in b {
            *v = rng.uniform_pm1() * 0.1;
        }
        rest = tail;
    }
    for v in w_avg {
        *v = rng.uniform_pm1() * 0.3;
    }
    Ok(())
}

/// The network in `bytes` (the [`blob_len`] layout), on the [`crate::KERNEL`].
pub fn network_from_blob(
    spec: MappingSpec,
    bytes: &[u8],
) -> Result<MappingNetwork<&[f32]>, RunError> {
    let all: &[f32] = bytemuck::try_cast_slice(bytes).map_err(|_| RunError::BadBlob)?;
    if all.len() != spec.param_len() + spec.w_dim {
        return Err(RunError::BadBlob);
    }
    let (params, w_avg) = all.split_at(spec.param_len());
    Ok(MappingNetwork::new(spec, params, w_avg)?.with_kernel(crate::KERNEL)?)
}
