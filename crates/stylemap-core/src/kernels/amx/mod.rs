//! f32 layers on AMX tiles: `Y = act(X Wᵀ + b)` with every operand split
//! exactly into three bf16 parts, for large batches on CPUs with AMX-BF16.
//!
//! AMX multiplies bf16 tiles (8 significant bits) into f32 accumulators, 16x
//! the multiply-adds per cycle of 512-bit f32 FMAs. An f32 `v` is the exact
//! sum `v0 + v1 + v2` of three bf16 numbers ([`split3`]: `v0` is `v`
//! rounded to bf16, `v1` the remainder rounded, `v2` what is left), with
//! `|v1| <= 2^-8 |v|` and `|v2| <= 2^-16 |v|` (up to a factor
//! `1 + 2^-16` for the 128 largest f32 magnitudes, whose `v0` is truncated
//! rather than rounded to infinity), so
//!
//! ```text
//! x·w = Σ_{i+j <= 2} x_i w_j  +  (x1 w2 + x2 w1 + x2 w2)
//! ```
//!
//! The six kept products are each exact in f32 (8 x 8 bits) and are summed
//! in f32 by the tile unit; the three dropped are below `2^-23 |x w|`, two
//! units of f32 rounding. So the result carries the error of an f32 dot
//! product of length `6 k` (the bound `tests/amx.rs` checks against f64),
//! not the error of bf16: an f32 GEMM at six bf16 products per
//! multiply-add, 2.7x the FMA peak. It is not bit-identical to the FMA
//! kernels (different summation), but a sample's result never depends on
//! its batch or its position in it: rows of a tile product are independent.
//!
//! # Layouts (u32 = a pair of bf16, lower half first)
//!
//! - Weights, packed once ([`pack_layer`]): `out` padded to blocks of 32
//!   columns, `in` to chunks of 32; per column block, per chunk, per part,
//!   per half of 16 columns, one 1 KiB tile in AMX's pair layout: row `i`
//!   holds, for each of the 16 columns, `w[col, 2i] | w[col, 2i+1] << 16`.
//!   A block's chunks are contiguous, so a layer is one sequential stream.
//! - Activations, split per call for blocks of 32 rows and [`K_BLOCK`]
//!   chunks (96 KiB, L2-resident while every column block reuses it):
//!   `[chunk][part][half][16 rows][16 pairs]`. [`ROW_GROUP`] row blocks
//!   are split at once; each column block then runs on all of them in
//!   turn, so its weights come from L3 once per group.
//! - Results accumulate in a caller's `acc` of 32 rows per row block, then
//!   take the bias and activation into `y`.
//!
//! Denormals: tiles flush bf16 inputs and f32 outputs below `2^-126` to
//! zero, an absolute error under `1e-37` per term.

#[cfg(all(target_arch = "x86_64", not(miri), not(feature = "force-scalar")))]
mod tiles;

mod network;

pub use network::{AMX_BATCH_CHUNK, AmxLayer, AmxNetwork, network_len, pack_network};

use crate::error::{Error, Operand, check_len};
use crate::kernels::gemm::{WeightLayout, check_pack};
use crate::spec::Activation;

/// `k` per tile chunk (16 pairs).
pub const CHUNK: usize = 32;
/// Rows (samples) per block: two tiles of 16.
pub const BLOCK_ROWS: usize = 32;
/// Columns (outputs) per block: two tiles of 16.
pub const BLOCK_COLS: usize = 32;
/// u32 in one tile (16 rows x 64 bytes).
const TILE_U32: usize = 256;
/// u32 per chunk of one block: 3 parts x 2 halves x 1 tile.
const PAIR_U32: usize = 6 * TILE_U32;
/// Chunks per activation split (512 `k`): the split block (96 KiB per row
/// block) stays in L2 while every column block reads it. Measured against 2, 8 and 16 in
/// `examples/amx_probe.rs`.
pub const K_BLOCK: usize = 16;
/// Row blocks (of 32 samples) run together: each column block's weights
/// are loaded from L3 once for the group and reused from cache by its other
/// blocks, instead of the whole layer being streamed once per row block.
/// 4 (128 samples: four 96 KiB split blocks and one column block's 96 KiB
/// of weights in L2) measured 5-7 % faster than 1 at B = 512 on one
/// thread, 2 in between (`examples/crossover.rs`).
pub const ROW_GROUP: usize = 4;

/// Whether the AMX kernel can run in this process: x86-64 with AMX-BF16,
/// AMX-TILE, AVX-512F/BW/BF16, enabled by the OS, and on Linux the tile-data
/// permission granted (asked for once, process-wide). Always `false` under
/// Miri, with `force-scalar`, and on other targets.
pub fn is_available() -> bool {
    #[cfg(all(target_arch = "x86_64", not(miri), not(feature = "force-scalar")))]
    return tiles::available();
    #[cfg(not(all(target_arch = "x86_64", not(miri), not(feature = "force-scalar"))))]
    return false;
}

/// bf16 flops of one round of [`tdp_loop`]: four 16 x 16 x 32 tile
/// products, a multiply-add counting two.
pub const TDP_FLOPS_PER_ITER: u64 = 4 * 16 * 16 * 32 * 2;

/// Runs `iters` rounds of four independent tile products on zeroed tiles
/// (no memory traffic): timing it gives the tile unit's peak, in bf16 flops
/// ([`TDP_FLOPS_PER_ITER`] per round); an f32 flop of this module's kernel
/// costs six. Errors if AMX is unavailable.
pub fn tdp_loop(iters: u64) -> Result<(), Error> {
    if !is_available() {
        return Err(Error::KernelUnavailable);
    }
    #[cfg(all(target_arch = "x86_64", not(miri), not(feature = "force-scalar")))]
    tiles::tdp_loop(iters);
    #[cfg(not(all(target_arch = "x86_64", not(miri), not(feature = "force-scalar"))))]
    let _ = iters;
    Ok(())
}

/// The three bf16 parts of `v` (bits in the low half), each rounded to
/// nearest even: `v == p0 + p1 + p2` exactly for every finite `v` whose
/// parts are normal (`|v| >= 2^-110`). A non-finite `v` stays non-finite in
/// `p0` (never becomes a number), and a finite `v` that would round to
/// infinity is truncated instead.
#[inline(always)]
pub fn split3(v: f32) -> [u32; 3] {
    let h0 = bf16_hi(v);
    let r1 = v - f32::from_bits(h0);
    let h1 = bf16_hi(r1);
    let r2 = r1 - f32::from_bits(h1);
    [h0 >> 16, h1 >> 16, bf16_hi(r2) >> 16]
}

/// `v` rounded to bf16 (nearest even), as f32 bits; truncated if `v` is not
/// finite or would round to infinity.
#[inline(always)]
fn bf16_hi(v: f32) -> u32 {
    const HI: u32 = 0xffff_0000;
    const EXP: u32 = 0x7f80_0000;
    let b = v.to_bits();
    let r = b.wrapping_add(0x7fff + ((b >> 16) & 1)) & HI;
    if b & EXP != EXP && r & EXP != EXP {
        r
    } else {
        b & HI
    }
}

/// u32 of one layer `W [out, in]` packed by [`pack_layer`]:
/// `ceil(out/32)*32 * ceil(in/32)*32 / 2 * 3`. Saturates on overflow.
pub const fn packed_layer_len(out: usize, inp: usize) -> usize {
    match checked_layer_len(out, inp) {
        Some(n) => n,
        None => usize::MAX,
    }
}

pub(crate) const fn checked_layer_len(out: usize, inp: usize) -> Option<usize> {
    let blocks = out.div_ceil(BLOCK_COLS);
    let chunks = inp.div_ceil(CHUNK);
    match blocks.checked_mul(chunks) {
        Some(n) => n.checked_mul(PAIR_U32),
        None => None,
    }
}

/// Packs a folded row-major `weight [out, in]` into `dst` of exactly
/// [`packed_layer_len`]`(out, in)` u32 (see [the layout](self#layouts-u32--a-pair-of-bf16-lower-half-first)),
/// zero-padded. Errors for a zero dimension, overflow or a wrong length;
/// `dst` is untouched then.
pub fn pack_layer(weight: &[f32], out: usize, inp: usize, dst: &mut [u32]) -> Result<(), Error> {
    check_pack(WeightLayout::Amx, weight, out, inp, dst)?;
    let part = |col: usize, k: usize, p: usize| -> u32 {
        if col < out && k < inp {
            split3(weight[col * inp + k])[p]
        } else {
            0
        }
    };
    let chunks = inp.div_ceil(CHUNK);
    for (t, tile) in dst.chunks_exact_mut(TILE_U32).enumerate() {
        // t = ((block * chunks + chunk) * 3 + part) * 2 + half
        let half = t % 2;
        let p = t / 2 % 3;
        let chunk = t / 6 % chunks;
        let block = t / 6 / chunks;
        for (i, row) in tile.chunks_exact_mut(16).enumerate() {
            let k = chunk * CHUNK + 2 * i;
            for (n, d) in row.iter_mut().enumerate() {
                let col = block * BLOCK_COLS + half * 16 + n;
                *d = part(col, k, p) | part(col, k + 1, p) << 16;
            }
        }
    }
    Ok(())
}

/// f32 of scratch [`gemm_bias_act`] needs for a layer `[out, in]`:
/// [`ROW_GROUP`] 32-row accumulators, their split activations of up to
/// [`K_BLOCK`] chunks, and room to align both to 64 bytes. Saturates on
/// overflow.
pub const fn layer_scratch_len(out: usize, inp: usize) -> usize {
    let chunks = if inp.div_ceil(CHUNK) < K_BLOCK {
        inp.div_ceil(CHUNK)
    } else {
        K_BLOCK
    };
    acc_len(out)
        .saturating_mul(ROW_GROUP)
        .saturating_add(ROW_GROUP * chunks * PAIR_U32)
        .saturating_add(32)
}

/// Splits `scratch` into the 64-byte-aligned accumulators (`ROW_GROUP *
/// acc_len(out)`) and split buffers (`ROW_GROUP * chunks * PAIR_U32` u32);
/// `None` if it is too short.
#[cfg(all(target_arch = "x86_64", not(miri), not(feature = "force-scalar")))]
fn carve(scratch: &mut [f32], out: usize, chunks: usize) -> Option<(&mut [f32], &mut [u32])> {
    let skip = scratch.as_ptr().align_offset(64).min(16);
    let rest = scratch.get_mut(skip..)?;
    let (acc, rest) = rest.split_at_mut_checked(ROW_GROUP * acc_len(out))?;
    let skip = rest.as_ptr().align_offset(64).min(16);
    let split = rest.get_mut(skip..skip + ROW_GROUP * chunks * PAIR_U32)?;
    Some((acc, bytemuck::cast_slice_mut(split)))
}

/// Row stride of the accumulator for `out` outputs: padded to whole
/// column blocks plus one cache line, so the 16 rows of a tile do not share
/// cache sets.
const fn acc_stride(out: usize) -> usize {
    out.div_ceil(BLOCK_COLS) * BLOCK_COLS + 16
}

/// f32 of one 32-row accumulator for `out` outputs. Saturates on overflow.
const fn acc_len(out: usize) -> usize {
    acc_stride(out).saturating_mul(BLOCK_ROWS)
}

/// Checked entry point: `y[s, :] = act(W x[s, :] + b)` for every sample,
/// `W [out, in]` packed by [`pack_layer`], `out = bias.len()`, `x [batch,
/// in_features]`, `y [batch, out]`, `scratch` at least
/// [`layer_scratch_len`]`(out, in_features)` f32. Errors if AMX is unavailable ([`is_available`]), a dimension
/// is 0 or the lengths do not chain. NaN in gives NaN out.
pub fn gemm_bias_act(
    packed: &[u32],
    bias: &[f32],
    x: &[f32],
    in_features: usize,
    act: Activation,
    y: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    if !is_available() {
        return Err(Error::KernelUnavailable);
    }
    let out = bias.len();
    super::check_layer_io(in_features, out, x, y)?;
    let plen = checked_layer_len(out, in_features).ok_or(Error::TooLarge)?;
    check_len(Operand::Gemv, packed, plen)?;
    let need = layer_scratch_len(out, in_features);
    if scratch.len() < need {
        return Err(Error::Length {
            what: Operand::Scratch,
            expected: need,
            actual: scratch.len(),
        });
    }
    run(packed, bias, x, in_features, act, y, scratch);
    Ok(())
}

/// Unchecked body of [`gemm_bias_act`]: the caller has checked
/// availability and lengths (a bad length panics, never misbehaves).
#[allow(unused_variables)] // only the x86-64 build computes
pub(crate) fn run(
    packed: &[u32],
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    #[cfg(all(target_arch = "x86_64", not(miri), not(feature = "force-scalar")))]
    {
        let out = bias.len();
        let batch = x.len() / inp;
        let chunks = inp.div_ceil(CHUNK);
        let n_blocks = out.div_ceil(BLOCK_COLS);
        let stride = acc_stride(out);
        let (acc, split) = carve(scratch, out, K_BLOCK.min(chunks)).expect("scratch checked");
        let alen = acc_len(out);
        let bstride = chunks * PAIR_U32;
        let mut m0 = 0;
        while m0 < batch {
            let group = ROW_GROUP.min((batch - m0).div_ceil(BLOCK_ROWS));
            let rows_of = |r: usize| BLOCK_ROWS.min(batch - m0 - r * BLOCK_ROWS);
            let mut c0 = 0;
            while c0 < chunks {
                let nc = K_BLOCK.min(chunks - c0);
                let alen_split = nc * PAIR_U32;
                for r in 0..group {
                    let r0 = m0 + r * BLOCK_ROWS;
                    let xb = &x[r0 * inp..(r0 + rows_of(r)) * inp];
                    let a = &mut split[r * alen_split..(r + 1) * alen_split];
                    tiles::split_block(xb, inp, rows_of(r), c0 * CHUNK, a);
                }
                let b = &packed[c0 * PAIR_U32..];
                let a = (&split[..group * alen_split], alen_split);
                let c = (&mut acc[..group * alen], alen);
                let dims = (group, n_blocks, nc);
                tiles::tile_block(a, b, bstride, c, stride, dims, c0 == 0);
                c0 += nc;
            }
            for r in 0..group {
                let r0 = m0 + r * BLOCK_ROWS;
                let yb = &mut y[r0 * out..(r0 + rows_of(r)) * out];
                tiles::epilogue_block(&acc[r * alen..(r + 1) * alen], stride, bias, act, yb);
            }
            m0 += group * BLOCK_ROWS;
        }
    }
}
