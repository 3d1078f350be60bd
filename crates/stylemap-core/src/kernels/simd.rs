//! The per-instruction-set vector primitives ([`Simd`], implemented once
//! per instruction set in `kernels::{x86, neon}`), and the one GEMV body
//! that every hand-written intrinsics kernel instantiates (matrixmultiply
//! style): a kernel is a thin `#[target_feature]` wrapper around [`gemv`].
//! The batched (`kernels::gemm`) and reduced-precision (`kernels::quant`)
//! bodies build on the same [`Simd`] implementations.
//!
//! # The loop
//!
//! `R` rows at a time, one accumulator vector per row: each vector of `x` is
//! loaded once and feeds `R` independent FMAs, so `R` FMA chains hide the FMA
//! latency and `R` weight streams keep enough loads in flight. The `in % LANES`
//! tail is a zero-filled partial load into the same accumulators. Each row is
//! reduced horizontally once, at its end, then the shared scalar
//! [`super::epilogue`] (bias, then lrelu) is applied.
//!
//! No software prefetch: the hardware streamers already follow the `R`
//! sequential row streams. Measured (AVX-512, 512x512 x 8 layers from L3),
//! prefetching the next block's rows one block ahead cost 5–10 µs per forward.
//!
//! # Determinism
//!
//! A row's result depends only on that row, `x`, its bias and the instruction
//! set: the `rows % R` leftover rows run the same per-row arithmetic as the
//! blocked rows, loads are unaligned (no alignment peeling), and the reduction
//! order is fixed by [`Simd::reduce`]. So splitting the rows between threads,
//! or moving the buffers, never changes a bit of the output.
#![allow(unsafe_code)]

use crate::spec::Activation;

/// One vector instruction set, as the GEMV, batched and reduced-precision
/// bodies need it.
///
/// Every method may execute instructions of its instruction set: callers
/// guarantee those target features are enabled (verified at run time, or
/// enabled for the whole build).
pub(crate) trait Simd {
    /// f32 lanes per vector.
    const LANES: usize;
    /// The vector type.
    type V: Copy;

    /// All lanes zero.
    ///
    /// # Safety
    /// The instruction set is available.
    unsafe fn zero() -> Self::V;

    /// Loads `LANES` floats from `p` (any alignment).
    ///
    /// # Safety
    /// The instruction set is available and `p..p + LANES` is readable.
    unsafe fn load(p: *const f32) -> Self::V;

    /// Loads `n` floats from `p` into the low lanes, zeroing the rest; reads
    /// nothing past `p + n`.
    ///
    /// # Safety
    /// The instruction set is available, `0 < n < LANES` and `p..p + n` is
    /// readable.
    unsafe fn load_partial(p: *const f32, n: usize) -> Self::V;

    /// `*p` in every lane.
    ///
    /// # Safety
    /// The instruction set is available and `p` is readable.
    unsafe fn broadcast(p: *const f32) -> Self::V;

    /// `a * b + c`, each lane rounded once.
    ///
    /// # Safety
    /// The instruction set is available.
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;

    /// The sum of the lanes, in a fixed order.
    ///
    /// # Safety
    /// The instruction set is available.
    unsafe fn reduce(v: Self::V) -> f32;

    /// The epilogue per lane, exactly [`crate::kernels::epilogue`]:
    /// `v = acc + bias`, then `v * 0.2` where `v < 0` for leaky ReLU.
    ///
    /// # Safety
    /// The instruction set is available.
    unsafe fn bias_act(acc: Self::V, bias: Self::V, act: Activation) -> Self::V;

    /// Stores `LANES` floats at `p` (any alignment).
    ///
    /// # Safety
    /// The instruction set is available and `p..p + LANES` is writable.
    unsafe fn store(p: *mut f32, v: Self::V);

    /// Stores the low `n` lanes at `p`; writes nothing past `p + n`.
    ///
    /// # Safety
    /// The instruction set is available, `0 < n < LANES` and `p..p + n` is
    /// writable.
    unsafe fn store_partial(p: *mut f32, v: Self::V, n: usize);

    /// Hints that the cache line holding `p` will be read soon. Never
    /// dereferences `p`: any address is allowed.
    ///
    /// # Safety
    /// The instruction set is available.
    unsafe fn prefetch(p: *const f32);
}

/// `y = act(W x + b)` for `W` row-major `[rows, x.len()]`, `R` rows at a time.
///
/// Never reads or writes out of bounds whatever the lengths: it computes
/// `rows = min(y.len(), bias.len(), weight.len() / x.len())` and leaves the
/// rest of `y` untouched (the checked entry point makes them all agree).
///
/// # Safety
/// `S`'s instruction set is available on this CPU.
#[inline(always)]
pub(crate) unsafe fn gemv<S: Simd, const R: usize>(
    weight: &[f32],
    bias: &[f32],
    x: &[f32],
    act: Activation,
    y: &mut [f32],
) {
    let cols = x.len();
    let rows = y
        .len()
        .min(bias.len())
        .min(weight.len().checked_div(cols).unwrap_or(usize::MAX));
    let body = cols - cols % S::LANES;
    let (w, xp) = (weight.as_ptr(), x.as_ptr());
    let mut r = 0;
    while r + R <= rows {
        // SAFETY: rows r..r+R end at (r + R) * cols <= rows * cols <= weight.len()
        // elements, x has cols elements, and the caller guarantees S is available.
        let sums = unsafe { dot_rows::<S, R>(w.add(r * cols), cols, body, xp) };
        for (i, s) in sums.into_iter().enumerate() {
            y[r + i] = super::epilogue(s, bias[r + i], act);
        }
        r += R;
    }
    while r < rows {
        // SAFETY: row r ends at (r + 1) * cols <= rows * cols <= weight.len()
        // elements, x has cols elements, and the caller guarantees S is available.
        let [s] = unsafe { dot_rows::<S, 1>(w.add(r * cols), cols, body, xp) };
        y[r] = super::epilogue(s, bias[r], act);
        r += 1;
    }
}

/// The dot products of `R` consecutive rows of `cols` floats starting at `w`
/// with `x`, each reduced by [`Simd::reduce`].
///
/// # Safety
/// `S` is available; `w..w + R * cols` and `x..x + cols` are readable;
/// `body = cols - cols % LANES`.
#[inline(always)]
unsafe fn dot_rows<S: Simd, const R: usize>(
    w: *const f32,
    cols: usize,
    body: usize,
    x: *const f32,
) -> [f32; R] {
    // SAFETY: S is available (caller).
    let zero = unsafe { S::zero() };
    let mut acc = [zero; R];
    let mut k = 0;
    while k < body {
        // SAFETY: S is available (caller); k + LANES <= body <= cols, so the
        // LANES floats at x + k lie inside x's cols.
        let xv = unsafe { S::load(x.add(k)) };
        for (i, a) in acc.iter_mut().enumerate() {
            // SAFETY: S is available (caller); i < R and k + LANES <= cols, so
            // the LANES floats at w + i * cols + k lie inside row i, which is
            // readable (caller: R rows of cols floats at w).
            *a = unsafe { S::mul_add(S::load(w.add(i * cols + k)), xv, *a) };
        }
        k += S::LANES;
    }
    let tail = cols - body;
    if tail > 0 {
        // SAFETY: S is available (caller); 0 < tail < LANES (body rounds cols
        // down to a multiple of LANES) and x + body .. x + cols is inside x.
        let xv = unsafe { S::load_partial(x.add(body), tail) };
        for (i, a) in acc.iter_mut().enumerate() {
            // SAFETY: as above, and w + i * cols + body .. w + (i + 1) * cols
            // is the end of row i, which is readable (caller).
            *a = unsafe { S::mul_add(S::load_partial(w.add(i * cols + body), tail), xv, *a) };
        }
    }
    // SAFETY: S is available (caller).
    acc.map(|a| unsafe { S::reduce(a) })
}
