//! Portable batched kernel on `wide::f32x8`: panels of 8 outputs, blocks of
//! 4 samples (4 accumulator vectors, one weight load feeding 4 FMAs).
//!
//! As with the portable GEMV, `wide` picks the instructions when the crate
//! is compiled: `mul_add` is a fused multiply-add with AVX+FMA or NEON and a
//! multiply then an add otherwise (then results equal the scalar oracle's bit
//! for bit, since the order of the sum is the same).

use wide::f32x8;

use crate::spec::Activation;

/// Panel width of [`Kernel::Portable`](crate::Kernel::Portable)'s packed layout.
pub const NR: usize = 8;

/// Samples per register block.
const MR: usize = 4;

#[inline(always)]
fn load(s: &[f32]) -> f32x8 {
    let mut a = [0.0f32; NR];
    let n = s.len().min(NR);
    a[..n].copy_from_slice(&s[..n]);
    f32x8::from(a)
}

/// `y[s, :] = act(W x[s, :] + b)` for `W [bias.len(), inp]` packed in panels
/// of [`NR`] = 8 rows (see [`super::pack_layer`]); `x [batch, inp]`,
/// `y [batch, bias.len()]`, row-major.
///
/// Lengths are the caller's contract (see [`super::gemm_packed_bias_act`]
/// for the checked entry point); if they do not chain, nothing is written.
pub fn gemm_packed_f32x8(
    packed: &[f32],
    bias: &[f32],
    x: &[f32],
    inp: usize,
    act: Activation,
    y: &mut [f32],
) {
    let Some((batch, out)) = super::dims(packed.len(), bias.len(), x.len(), inp, y.len(), NR)
    else {
        return;
    };
    for (p, panel) in packed.chunks_exact(inp * NR).enumerate() {
        let col0 = p * NR;
        let cols = NR.min(out - col0);
        let bv = load(&bias[col0..col0 + cols]);
        let tile = Tile {
            panel,
            x,
            inp,
            y: &mut *y,
            out,
            col0,
            cols,
            bias: bv,
            act,
        };
        tile.run(batch);
    }
}

/// One panel against the whole batch.
struct Tile<'a> {
    panel: &'a [f32],
    x: &'a [f32],
    inp: usize,
    y: &'a mut [f32],
    out: usize,
    col0: usize,
    cols: usize,
    bias: f32x8,
    act: Activation,
}

impl Tile<'_> {
    fn run(mut self, batch: usize) {
        let mut s = 0;
        while s + MR <= batch {
            self.block::<MR>(s);
            s += MR;
        }
        match batch - s {
            1 => self.block::<1>(s),
            2 => self.block::<2>(s),
            3 => self.block::<3>(s),
            _ => {}
        }
    }

    /// Samples `s0 .. s0 + M`.
    #[inline(always)]
    fn block<const M: usize>(&mut self, s0: usize) {
        let inp = self.inp;
        let xs: [&[f32]; M] = core::array::from_fn(|i| &self.x[(s0 + i) * inp..(s0 + i + 1) * inp]);
        let mut acc = [f32x8::ZERO; M];
        for (k, wk) in self.panel.chunks_exact(NR).enumerate() {
            let wv = load(wk);
            for (a, xi) in acc.iter_mut().zip(&xs) {
                *a = wv.mul_add(f32x8::splat(xi[k]), *a);
            }
        }
        let slope = f32x8::splat(crate::spec::LRELU_SLOPE);
        for (i, a) in acc.into_iter().enumerate() {
            let v = a + self.bias;
            let v = match self.act {
                Activation::LeakyRelu => v.simd_lt(f32x8::ZERO).select(v * slope, v),
                Activation::Linear => v,
            };
            let row = (s0 + i) * self.out + self.col0;
            self.y[row..row + self.cols].copy_from_slice(&v.to_array()[..self.cols]);
        }
    }
}
