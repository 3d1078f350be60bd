//! The one batched body every hand-written intrinsics kernel instantiates:
//! an instruction set is a [`Simd`] implementation (shared with the GEMV
//! and reduced-precision bodies), a kernel is a thin
//! `#[target_feature]` wrapper around [`gemm`] with its block shape.
//!
//! # The loops
//!
//! ```text
//! for each panel p (NR = NV * LANES outputs):
//!   for each k block k0 .. k0 + KC:                    (KC * NR weights)
//!     for each block of <= MR samples s0 ..:           (ceil(B / MR) blocks, balanced)
//!       acc[MR][NV] = k0 == 0 ? 0 : y[s0.., p*NR..]    (partial sums)
//!       for k in k0 .. k0 + KC:
//!         w[v] = load(panel + k*NR + v*LANES)          NV loads
//!         for i in 0..MR:
//!           xb = broadcast(x[s0 + i, k])               1 load
//!           acc[i][v] = fma(w[v], xb, acc[i][v])       NV FMAs
//!       y[s0 + i, p*NR ..] = last k block ? act(acc[i] + bias) : acc[i]
//! ```
//!
//! Per `k` a block does `MR * NV` FMAs for `NV + MR` loads, with `MR * NV`
//! independent accumulator chains in registers. The `KC x NR` weight block
//! stays in L1 or L2 (the kernel's choice of `KC`) while the sample blocks
//! walk over it, each reading its rows of `x` once. The first sample block
//! of each weight block also prefetches the weights [`PF_AHEAD`] blocks
//! ahead (one prefetch per cache line, spread over its `k` loop), so at
//! small batches, where the weights stream from L3 once per batch, the
//! stream overlaps the arithmetic. Edges: the batch is cut into
//! `ceil(B / MR)` blocks whose sizes differ by at most one (each size its
//! own instantiation, see [`Rows`]), so no short, slow block is left at the
//! end; masked bias loads and stores handle `out % NR`; the padded
//! panel rows are zeros and their results are never stored.
//!
//! The `MR` row pointers of `x` are made opaque to the optimiser, so each
//! broadcast is one load at `row + k` with no per-step address arithmetic:
//! the loop is exactly `NV + MR` loads, `MR * NV` FMAs and three integer ops.
//!
//! # Numerics
//!
//! Each output is one accumulator summed over `k` in order with one FMA per
//! term (a partial sum stored to `y` between `k` blocks is reloaded
//! exactly), then `+ bias`, then leaky ReLU: the result for a sample does not
//! depend on `MR`, `KC`, the batch, or the instruction set.
#![allow(unsafe_code)]

use crate::kernels::simd::Simd;
use crate::spec::Activation;

/// How many weight blocks ahead the first sample block prefetches.
/// Measured (AVX-512, 8 x 512 layers, B = 8): 2 beat 1 and 4 by a few
/// percent, and prefetching beats none by ~7%.
const PF_AHEAD: usize = 2;

/// What one register block reads and writes; pointers are into the
/// caller's slices.
#[derive(Clone, Copy)]
pub(crate) struct Block {
    /// Panel start plus `k0 * NR`: `kc * NR` floats, k-major.
    w: *const f32,
    /// `x + s0 * inp + k0`: row `i` of the block at `x + i * inp`.
    x: *const f32,
    inp: usize,
    /// Steps of `k` in this block.
    kc: usize,
    /// `bias + p * NR`: `cols` readable floats.
    bias: *const f32,
    /// Valid outputs in this panel, `1..=NR`.
    cols: usize,
    /// `y + s0 * out + p * NR`; row `i` at `y + i * out`, `cols` writable.
    y: *mut f32,
    out: usize,
    /// Prefetch target (the weights the next block will read); never
    /// dereferenced.
    next: *const f32,
    /// First `k` block: the accumulators start at zero (else from `y`).
    first: bool,
    /// Last `k` block: bias and activation, then store (else store the raw
    /// partial sums to `y`).
    last: bool,
    act: Activation,
}

/// `y[s, :] = act(W x[s, :] + b)` for `W [bias.len(), inp]` packed in
/// panels of `NR = NV * LANES` rows, `MR` samples per register block, `k`
/// in blocks of `KC`.
///
/// Never reads or writes out of bounds whatever the lengths: if they do not
/// chain (see [`super::dims`]) nothing is written.
///
/// # Safety
/// `S`'s instruction set is available on this CPU.
#[inline(always)]
pub(crate) unsafe fn gemm<S: Simd, R: Rows, const NV: usize, const KC: usize>(
    packed: &[f32],
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
    next: &[f32],
) {
    let nr = NV * S::LANES;
    let Some((batch, out)) = super::dims(packed.len(), bias.len(), x.len(), inp, y.len(), nr)
    else {
        return;
    };
    if batch == 0 {
        return;
    }
    let panels = out.div_ceil(nr);
    let blocks = batch.div_ceil(R::MR);
    let panel_len = inp * nr;
    let (wp, bp, xp, yp) = (packed.as_ptr(), bias.as_ptr(), x.as_ptr(), y.as_mut_ptr());
    for p in 0..panels {
        let col0 = p * nr;
        let mut k0 = 0;
        while k0 < inp {
            let kc = KC.min(inp - k0);
            let w = wp.wrapping_add(p * panel_len + k0 * nr);
            // Pointer setup only (never dereferenced here): p < panels,
            // k0 + kc <= inp and col0 < out, so the ranges lie inside packed
            // and bias (checked by dims); x and y are offset per block below.
            let mut blk = Block {
                w,
                x: xp.wrapping_add(k0),
                inp,
                kc,
                bias: bp.wrapping_add(col0),
                cols: nr.min(out - col0),
                y: yp.wrapping_add(col0),
                out,
                // The weights PF_AHEAD blocks after this one's: further on
                // in this call's panels, then on into `next`.
                next: ahead(
                    wp,
                    packed.len(),
                    next,
                    p * panel_len + (k0 + PF_AHEAD * kc) * nr,
                ),
                first: k0 == 0,
                last: k0 + kc == inp,
                act,
            };
            let mut s0 = 0;
            for b in 0..blocks {
                // Balanced: every block has `batch / blocks` samples or one
                // more, so no short block is left at the end.
                let m = batch / blocks + usize::from(b < batch % blocks);
                blk.x = xp.wrapping_add(s0 * inp + k0);
                blk.y = yp.wrapping_add(s0 * out + col0);
                // SAFETY: samples s0..s0 + m <= batch have rows in x (inp
                // floats, of which k0..k0 + kc are read) and in y (columns
                // col0..col0 + cols exist); the weights and biases are in
                // bounds (above); S is available (caller).
                unsafe { R::block::<S, NV>(blk, m, b == 0) };
                s0 += m;
            }
            k0 += kc;
        }
    }
}

/// Where the weight `at` floats into this call's stream lies: in `packed`
/// (at `base`, `len` floats) or past its end in `next`. Only prefetched,
/// never dereferenced, so any result is sound.
#[inline(always)]
fn ahead(base: *const f32, len: usize, next: &[f32], at: usize) -> *const f32 {
    if at < len {
        base.wrapping_add(at)
    } else {
        next.as_ptr().wrapping_add(at - len)
    }
}

/// A register block height `MR` and the blocks of fewer samples left at the
/// end of a batch, each its own instantiation (so the panel is still read
/// once), and nothing taller than needed.
pub(crate) trait Rows {
    /// Samples per full register block.
    const MR: usize;

    /// Runs the block of `m` samples (`1..=MR`); `first`: the first block
    /// of its panel, which prefetches the weights ahead.
    ///
    /// # Safety
    /// As [`block`], for `m` sample rows.
    unsafe fn block<S: Simd, const NV: usize>(blk: Block, m: usize, first: bool);
}

/// Defines a [`Rows`] marker: `rows!(Name, MR, [1 2 .. MR-1])`.
macro_rules! rows {
    ($name:ident, $mr:literal, [$($n:literal)*]) => {
        #[doc = concat!("Register blocks of ", stringify!($mr), " samples.")]
        pub(crate) struct $name;

        impl Rows for $name {
            const MR: usize = $mr;

            #[inline(always)]
            unsafe fn block<S: Simd, const NV: usize>(blk: Block, m: usize, first: bool) {
                match (m, first) {
                    // SAFETY: `m` rows are valid (caller).
                    ($mr, true) => unsafe { block::<S, NV, $mr, true>(blk) },
                    // SAFETY: as above.
                    ($mr, false) => unsafe { block::<S, NV, $mr, false>(blk) },
                    $(
                        // SAFETY: as above.
                        ($n, true) => unsafe { block::<S, NV, $n, true>(blk) },
                        // SAFETY: as above.
                        ($n, false) => unsafe { block::<S, NV, $n, false>(blk) },
                    )*
                    _ => debug_assert!(false, "block of {m} samples"),
                }
            }
        }
    };
}

// AVX2 and NEON.
rows!(Rows6, 6, [1 2 3 4 5]);
// AVX-512.
#[cfg(target_arch = "x86_64")]
rows!(Rows14, 14, [1 2 3 4 5 6 7 8 9 10 11 12 13]);

/// One `M x NR` register block over `kc` steps of `k`, then the epilogue.
/// With `PF`, prefetches the weights of the next block (`blk.next`), one
/// cache line per 16 floats, as it walks its own.
///
/// # Safety
/// `S` is available; `blk.w .. + kc * NR` and `blk.bias .. + cols` are
/// readable; for `i < M`, `blk.x + i * inp .. + kc` is readable and
/// `blk.y + i * out .. + cols` is readable and writable; `1 <= cols <= NR`.
#[inline(always)]
unsafe fn block<S: Simd, const NV: usize, const M: usize, const PF: bool>(blk: Block) {
    let lanes = S::LANES;
    let nr = NV * lanes;
    // SAFETY: S is available (caller).
    let zero = unsafe { S::zero() };
    let mut acc = [[zero; NV]; M];
    if !blk.first {
        for (i, row) in acc.iter_mut().enumerate() {
            for (v, a) in row.iter_mut().enumerate() {
                let first = v * lanes;
                if first < blk.cols {
                    // SAFETY: S is available; row i of y has `cols` readable
                    // floats (caller) and first + min(n, LANES) <= cols.
                    *a =
                        unsafe { load_upto::<S>(blk.y.add(i * blk.out + first), blk.cols - first) };
                }
            }
        }
    }
    // Opaque row pointers: without the barrier LLVM rebuilds them from one
    // base and the row stride each step (a chain of address adds per k);
    // opaque, each broadcast is one load at `row + k`.
    let rows: [*const f32; M] =
        core::hint::black_box(core::array::from_fn(|i| blk.x.wrapping_add(i * blk.inp)));
    let mut w = blk.w;
    let mut next = blk.next;
    for k in 0..blk.kc {
        let mut wv = [zero; NV];
        for (v, slot) in wv.iter_mut().enumerate() {
            // SAFETY: S is available; w = block weights + k * NR with k < kc,
            // so the NR floats at w are inside them (caller).
            *slot = unsafe { S::load(w.add(v * lanes)) };
        }
        if PF {
            let mut line = 0;
            while line < nr {
                // SAFETY: S is available; prefetch never dereferences.
                unsafe { S::prefetch(next.wrapping_add(line)) };
                line += 16;
            }
        }
        for (row, &xr) in acc.iter_mut().zip(&rows) {
            // SAFETY: S is available; xr + k is x[s0 + i, k0 + k] with k < kc
            // and i < M, readable (caller).
            let xb = unsafe { S::broadcast(xr.add(k)) };
            for (a, &wvv) in row.iter_mut().zip(&wv) {
                // SAFETY: S is available (caller).
                *a = unsafe { S::mul_add(wvv, xb, *a) };
            }
        }
        // One past the end at most after the last k.
        w = w.wrapping_add(nr);
        next = next.wrapping_add(nr);
    }
    // SAFETY: S is available (caller); bias and y rows have `cols` floats.
    unsafe { epilogue::<S, NV, M>(acc, blk) }
}

/// Stores a finished block: `act(acc + bias)` on the last `k` block, the raw
/// partial sums otherwise; masked past `cols`.
///
/// # Safety
/// `S` is available; `blk.bias .. + cols` is readable; for `i < M`,
/// `blk.y + i * out .. + cols` is writable; `1 <= cols <= NR`.
#[inline(always)]
unsafe fn epilogue<S: Simd, const NV: usize, const M: usize>(acc: [[S::V; NV]; M], blk: Block) {
    let lanes = S::LANES;
    let mut bv = [acc[0][0]; NV];
    for (v, b) in bv.iter_mut().enumerate() {
        let first = v * lanes;
        if first < blk.cols {
            // SAFETY: S is available; bias + first .. + min(n, LANES) is
            // inside the panel's `cols` biases (caller).
            *b = unsafe { load_upto::<S>(blk.bias.add(first), blk.cols - first) };
        }
    }
    for (i, row) in acc.into_iter().enumerate() {
        for (v, (a, b)) in row.into_iter().zip(bv).enumerate() {
            let first = v * lanes;
            if first >= blk.cols {
                continue;
            }
            let n = blk.cols - first;
            // SAFETY: S is available; row i of y has `cols` writable floats
            // from blk.y + i * out (caller), and first + min(n, LANES) <= cols.
            unsafe {
                let r = if blk.last {
                    S::bias_act(a, b, blk.act)
                } else {
                    a
                };
                let dst = blk.y.add(i * blk.out + first);
                if n >= lanes {
                    S::store(dst, r);
                } else {
                    S::store_partial(dst, r, n);
                }
            }
        }
    }
}

/// Loads `min(n, LANES)` floats from `p`, zero-filling.
///
/// # Safety
/// `S` is available, `n > 0` and `p .. p + min(n, LANES)` is readable.
#[inline(always)]
unsafe fn load_upto<S: Simd>(p: *const f32, n: usize) -> S::V {
    // SAFETY: as the contract; load_partial gets 0 < n < LANES.
    unsafe {
        if n >= S::LANES {
            S::load(p)
        } else {
            S::load_partial(p, n)
        }
    }
}
