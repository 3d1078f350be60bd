//! The one reduced-precision body every hand-written intrinsics kernel
//! instantiates: an instruction set is a [`Simd`] implementation, a weight
//! format is a [`Widen`] implementation (how to turn the 16 stored weights of
//! one panel row-slice into `NV` f32 vectors), and a kernel is a thin
//! `#[target_feature]` wrapper around [`qgemm`] with its block shapes.
//!
//! # The loops
//!
//! ```text
//! for each block of M samples (M = MR, then one block of B % MR):
//!   for each group of P panels (P chosen per M, then the panels left over):
//!     acc[M][P][NV] = 0
//!     for each int8 scale group g (f16/bf16: one group, all of k):
//!       part[M][P][NV] = 0
//!       for k in g:
//!         w[p][v] = widen(panel p + k*QNR + v*LANES)      once per load
//!         for i in 0..M: xb = broadcast(x[s0 + i, k])
//!           part[i][p][v] = fma(w[p][v], xb, part[i][p][v])
//!       int8: acc = fma(part, scale[g, p, v], acc)  (f16/bf16: acc = part)
//!     y[s0 + i, panel rows] = act(acc + bias)            masked past `out`
//! ```
//!
//! Per `k` a block converts `P * NV` vectors once and feeds each to `M`
//! FMAs, with `M * P * NV` independent accumulator chains in flight (at
//! batch 1 the `P` panels are what hides the FMA latency: `P` concurrent
//! sequential weight streams). Converting is the cost that f32 weights do
//! not have: 1-2 uops per vector on the same ports as the FMAs.
//!
//! # Where the time goes (2-core AVX-512 Xeon, 8 x 512 network, batch 1)
//!
//! Every precision widens with 2 vector uops per 16 weights (`vcvtph2ps` is
//! 2; `vpmovzxwd` + `vpslld`; `vpmovsxbd` + `vcvtdq2ps`), plus the FMA: 3
//! uops on the two 512-bit ports, 1.5 cycles per 16 weights whatever the
//! storage. (Since then bf16 widens with one `vpshufb` of a broadcast load
//! when AVX-512BW is there, 2 uops per 16 weights: one 512 x 512 layer
//! resident in L2 went from ~8.6 to ~7.4 µs; see `x86.rs`.) With the weights resident in L2 (one layer repeated) the whole
//! forward takes ~56 µs (f16), ~62 (bf16), ~58 (int8): that port bound. From
//! L3, f16/bf16 (4.2 MB) run at ~135-140 µs, the read bandwidth, and int8
//! (2.1 MB + scales) at ~70 µs, between the two bounds. Software prefetch
//! (256 B .. 4 KiB ahead per stream, at batch 1 and at batch 8) and 4 or 6
//! panels instead of 8 were all within the noise (measured; the hardware
//! streamers follow the `P` sequential streams). AVX-512 BF16/VNNI would
//! need bf16/int8 activations. Batch 8 (8 x 2 blocks) is FMA-bound: ~195 µs
//! per call with the weights in L2, ~240 from L3, whatever the precision.
//!
//! # Numerics
//!
//! Each output's sum runs over `k` in index order, one FMA per term (per
//! int8 group, then one FMA per group to scale and accumulate), then
//! `+ bias`, then leaky ReLU. Nothing depends on `M`, `P`, the batch or the
//! sample's position, so a sample's result is bit-identical at every batch
//! size, and identical between the instruction sets (AVX2, AVX-512, NEON all
//! round once per FMA and widen exactly).
#![allow(unsafe_code)]

use super::QNR;
use crate::kernels::simd::Simd;
use crate::spec::Activation;

/// A stored weight format widened to f32 vectors of `S`: the [`QNR`]
/// weights of one panel at one `k` become `NV = QNR / LANES` vectors.
pub(crate) trait Widen<const NV: usize> {
    /// The instruction set.
    type S: Simd;
    /// The stored element (`u16` bits, `i8`).
    type T: Copy;

    /// Widens the `QNR` values at `p` exactly; vector `v` holds rows
    /// `v * LANES .. (v + 1) * LANES`.
    ///
    /// # Safety
    /// The instruction set is available and `p..p + QNR` is readable.
    unsafe fn widen(p: *const Self::T) -> [<Self::S as Simd>::V; NV];

    /// Puts lanes back in row order. A widening may return the rows in a
    /// fixed lane permutation (when that saves a shuffle per load); the body
    /// then accumulates in that order, lane by lane, and calls this once per
    /// finished partial sum. Lane-wise arithmetic does not care where a row
    /// sits, so the results are the same bits. Default: rows already in order.
    ///
    /// # Safety
    /// The instruction set is available.
    #[inline(always)]
    unsafe fn order(v: [<Self::S as Simd>::V; NV]) -> [<Self::S as Simd>::V; NV] {
        v
    }
}

/// Block shapes of one kernel: samples per block and panels per block for
/// each block height.
pub(crate) trait Shapes {
    /// Samples per full block.
    const MR: usize;

    /// Runs the panels of one block of `m` samples (`1..=MR`), each height
    /// with its own panel count.
    ///
    /// # Safety
    /// As [`panels`], for `m` samples.
    unsafe fn run<D: Widen<NV>, const NV: usize, const SCALED: bool>(c: &Ctx<D::T>, m: usize);
}

/// Defines a [`Shapes`] marker: `shapes!(Name, MR, [(m, panels) ..])`,
/// listing every height `1..=MR`.
macro_rules! shapes {
    ($name:ident, $mr:literal, [$(($m:literal, $p:literal))*]) => {
        #[doc = concat!("Blocks of up to ", stringify!($mr), " samples.")]
        pub(crate) struct $name;

        impl Shapes for $name {
            const MR: usize = $mr;

            #[inline(always)]
            unsafe fn run<D: Widen<NV>, const NV: usize, const SCALED: bool>(
                c: &Ctx<D::T>,
                m: usize,
            ) {
                match m {
                    $(
                        // SAFETY: `m` sample rows are valid (caller).
                        $m => unsafe { panels::<D, NV, $m, $p, SCALED>(c) },
                    )*
                    _ => debug_assert!(false, "block of {m} samples"),
                }
            }
        }
    };
}

// AVX-512 (NV = 1). Batch 1: 8 panels (8 FMA chains, 8 weight streams;
// 4 measured the same). Measured on the 2-core AVX-512 Xeon, 8 x 512 layers
// resident in L2: 8 x 2 blocks ran B = 8 in 190-200 µs against 230-250 for
// 8 x 1 (the int8 partials then spill a little, still faster), 8 x 3 within
// noise of 8 x 2; 4 x 4 and 4 x 2 tie at B = 4.
#[cfg(target_arch = "x86_64")]
shapes!(
    Shapes512,
    8,
    [(1, 8)(2, 4)(3, 4)(4, 4)(5, 2)(6, 2)(7, 2)(8, 2)]
);
// AVX2 (NV = 2, 16 registers): 8 chains at batch 1 and 2, 2 x M above
// (measured: 2 panels at batch 1 is 15% slower than 4; blocks of 6 samples
// tie with 4 at B = 8).
#[cfg(target_arch = "x86_64")]
shapes!(Shapes256, 4, [(1, 4)(2, 2)(3, 1)(4, 1)]);
// NEON (NV = 4, 32 registers): 8 chains at batch 1, 4 x M above.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
shapes!(ShapesNeon, 4, [(1, 2)(2, 1)(3, 1)(4, 1)]);

/// What one block reads and writes: pointers into the caller's slices,
/// already offset to the block's first sample.
pub(crate) struct Ctx<T> {
    /// Packed weights, `panels * inp * QNR`.
    w: *const T,
    /// Scales `[panels][groups][QNR]` (int8 only).
    scales: *const f32,
    /// Inputs per scale group (`inp` for f16/bf16).
    group: usize,
    groups: usize,
    bias: *const f32,
    /// `x + s0 * inp`: sample `i` at `x + i * inp`.
    x: *const f32,
    inp: usize,
    /// `y + s0 * out`: sample `i` at `y + i * out`.
    y: *mut f32,
    out: usize,
    panels: usize,
    act: Activation,
}

/// `y[s, :] = act(W x[s, :] + b)` over the reduced-precision layout
/// ([`super`]), `w` the packed weights of format `D`, `scales`/`group` the
/// int8 scales when `SCALED` (ignored otherwise).
///
/// Never reads or writes out of bounds whatever the lengths: `dims` is the
/// checked [`super::dims`] result for these slices, and nothing is written
/// for `None`.
///
/// # Safety
/// `D::S`'s instruction set is available; `dims` is `super::dims` of exactly
/// these slices (so `w` holds `ceil(out/QNR) * QNR * inp` values, `scales`
/// `ceil(out/QNR) * ceil(inp/group) * QNR` when `SCALED`, `x` `batch * inp`
/// and `y` `batch * out`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn qgemm<Sh: Shapes, D: Widen<NV>, const NV: usize, const SCALED: bool>(
    dims: Option<(usize, usize)>,
    w: &[D::T],
    scales: &[f32],
    group: usize,
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
) {
    let Some((batch, out)) = dims else { return };
    let group = if SCALED { group.clamp(1, inp) } else { inp };
    let mut c = Ctx {
        w: w.as_ptr(),
        scales: scales.as_ptr(),
        group,
        groups: inp.div_ceil(group),
        bias: bias.as_ptr(),
        x: x.as_ptr(),
        inp,
        y: y.as_mut_ptr(),
        out,
        panels: out.div_ceil(QNR),
        act,
    };
    let mut s0 = 0;
    while s0 < batch {
        let m = Sh::MR.min(batch - s0);
        c.x = x.as_ptr().wrapping_add(s0 * inp);
        c.y = y.as_mut_ptr().wrapping_add(s0 * out);
        // SAFETY: samples s0..s0 + m <= batch have rows in x and y; weights,
        // scales and biases are as long as dims checked (caller); S is
        // available (caller).
        unsafe { Sh::run::<D, NV, SCALED>(&c, m) };
        s0 += m;
    }
}

/// All panels for the `M` samples of `c`: groups of `P` panels, then the
/// panels left over in groups of 2 (if `P > 2`) and 1. Every panel runs the
/// same per-output arithmetic whatever group it is in.
///
/// # Safety
/// `D::S` is available; `c` describes valid slices (see [`qgemm`]) with at
/// least `M` samples from `c.x` / `c.y`.
#[inline(always)]
unsafe fn panels<
    D: Widen<NV>,
    const NV: usize,
    const M: usize,
    const P: usize,
    const SCALED: bool,
>(
    c: &Ctx<D::T>,
) {
    let mut p = 0;
    while p + P <= c.panels {
        // SAFETY: panels p..p + P exist (caller).
        unsafe { block::<D, NV, M, P, SCALED>(c, p) };
        p += P;
    }
    if P > 2 {
        while p + 2 <= c.panels {
            // SAFETY: panels p..p + 2 exist (caller).
            unsafe { block::<D, NV, M, 2, SCALED>(c, p) };
            p += 2;
        }
    }
    while p < c.panels {
        // SAFETY: panel p exists (caller).
        unsafe { block::<D, NV, M, 1, SCALED>(c, p) };
        p += 1;
    }
}

/// One register block: `M` samples times panels `p0 .. p0 + P`, all of `k`,
/// then the epilogue.
///
/// # Safety
/// `D::S` is available; panels `p0 .. p0 + P` exist in `c`; `M` sample rows
/// from `c.x` / `c.y` are valid.
#[inline(always)]
unsafe fn block<
    D: Widen<NV>,
    const NV: usize,
    const M: usize,
    const P: usize,
    const SCALED: bool,
>(
    c: &Ctx<D::T>,
    p0: usize,
) {
    let lanes = <D::S as Simd>::LANES;
    let plen = c.inp * QNR;
    // SAFETY: S is available (caller).
    let zero = unsafe { <D::S as Simd>::zero() };
    let mut acc = [[[zero; NV]; P]; M];
    // One stream per panel and one per sample row, each a base pointer
    // indexed by `k` (base + index addressing, no per-step pointer updates).
    let wp: [*const D::T; P] = core::array::from_fn(|j| c.w.wrapping_add((p0 + j) * plen));
    let xr: [*const f32; M] = core::array::from_fn(|i| c.x.wrapping_add(i * c.inp));
    let mut k0 = 0;
    let mut g = 0;
    while k0 < c.inp {
        let kn = c.group.min(c.inp - k0);
        let mut part = [[[zero; NV]; P]; M];
        for k in k0..k0 + kn {
            let mut wv = [[zero; NV]; P];
            for (slot, &ptr) in wv.iter_mut().zip(&wp) {
                // SAFETY: S is available; panel p0 + j exists and k < inp, so
                // the QNR values at k * QNR are inside it (caller).
                *slot = unsafe { D::widen(ptr.add(k * QNR)) };
            }
            for (row, &xp) in part.iter_mut().zip(&xr) {
                // SAFETY: S is available; x[s0 + i, k] with k < inp (caller).
                let xb = unsafe { <D::S as Simd>::broadcast(xp.add(k)) };
                for (pa, wpv) in row.iter_mut().zip(&wv) {
                    for (a, &wvv) in pa.iter_mut().zip(wpv) {
                        // SAFETY: S is available (caller).
                        *a = unsafe { <D::S as Simd>::mul_add(wvv, xb, *a) };
                    }
                }
            }
        }
        for row in part.iter_mut() {
            for pv in row.iter_mut() {
                // SAFETY: S is available (caller).
                *pv = unsafe { D::order(*pv) };
            }
        }
        if SCALED {
            for j in 0..P {
                let sp = c.scales.wrapping_add(((p0 + j) * c.groups + g) * QNR);
                for v in 0..NV {
                    // SAFETY: S is available; scale row g of panel p0 + j has
                    // QNR floats (caller: g < groups).
                    let s = unsafe { <D::S as Simd>::load(sp.add(v * lanes)) };
                    for i in 0..M {
                        // SAFETY: S is available (caller).
                        acc[i][j][v] =
                            unsafe { <D::S as Simd>::mul_add(part[i][j][v], s, acc[i][j][v]) };
                    }
                }
            }
        } else {
            acc = part;
        }
        k0 += kn;
        g += 1;
    }
    // SAFETY: S is available; the panels' bias and y columns exist (caller).
    unsafe { epilogue::<D::S, NV, M, P>(acc, c, p0) }
}

/// `y = act(acc + bias)` for a finished block, masked past `out`.
///
/// # Safety
/// `S` is available; panels `p0 .. p0 + P` exist; `M` rows of `y` from `c.y`.
#[inline(always)]
unsafe fn epilogue<S: Simd, const NV: usize, const M: usize, const P: usize>(
    acc: [[[S::V; NV]; P]; M],
    c: &Ctx<impl Copy>,
    p0: usize,
) {
    let lanes = S::LANES;
    for j in 0..P {
        for v in 0..NV {
            let first = (p0 + j) * QNR + v * lanes;
            if first >= c.out {
                continue;
            }
            let n = c.out - first;
            // SAFETY: S is available; bias[first .. first + min(n, LANES)] is
            // inside bias (out floats).
            let b = unsafe {
                if n >= lanes {
                    S::load(c.bias.add(first))
                } else {
                    S::load_partial(c.bias.add(first), n)
                }
            };
            for (i, a) in acc.iter().enumerate() {
                // SAFETY: S is available; row i of y has `out` writable
                // floats from c.y + i * out (caller), and first + min(n,
                // LANES) <= out.
                unsafe {
                    let r = S::bias_act(a[j][v], b, c.act);
                    let dst = c.y.add(i * c.out + first);
                    if n >= lanes {
                        S::store(dst, r);
                    } else {
                        S::store_partial(dst, r, n);
                    }
                }
            }
        }
    }
}
