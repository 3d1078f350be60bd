//! The agreement bound of the numeric contract (`src/contract.md`, §3),
//! computed in f64 from the folded weights, for two error models: the FMA
//! kernels' (§3a/b: scalar, portable, AVX2, AVX-512, NEON, packed, sgemm)
//! and the AMX kernel's (§3c: `kernels::amx`, each f32 operand split into
//! three bf16 parts, six part products summed in f32 on the tile unit).
//!
//! Plain slices only (no crate types), so the core's tests, the std crate's
//! property tests and the fuzz targets all include this one file with
//! `#[path = ...] mod bound;`.
#![allow(dead_code)] // each includer uses its own subset

/// f32's machine epsilon, `2^-23`.
pub const EPS: f64 = f32::EPSILON as f64;

/// f32's smallest subnormal, `2^-149`: the absolute error a product (or the
/// slope multiply) can make when it underflows.
pub const TINY: f64 = 1.401_298_464_324_817e-45;

/// f32's smallest normal, `2^-126`: the AMX tile unit flushes bf16 inputs
/// and f32 results below it to zero (not to a subnormal), so a flushed input
/// part or sum costs up to this much instead of [`TINY`].
pub const TINY_AMX: f64 = 1.175_494_350_822_287_5e-38;

/// Which kernels a bound is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// One f32 evaluation of `b + sum_k W_k x_k` in any order, with or
    /// without FMA (every kernel but AMX): within
    /// `(n + 2) (eps (sum_k |W_k x_k| + |b|) + tiny)` of the exact value.
    Fma,
    /// The AMX kernel (`kernels::amx`): within
    /// `(4n + 2) eps (sum_k |W_k x_k| + |b|) + tiny_amx (6n + 2 + 3 sum_k (|W_k| + |x_k|))`
    /// of the exact value (see [`amx_eval`]).
    Amx,
}

impl Model {
    /// The bound on one evaluation of a row of input width `n`, with
    /// `mag = sum_k |W_k| |x_k| + |b|` and `size = sum_k (|W_k| + |x_k|)`
    /// (used by [`Model::Amx`] only).
    pub fn eval(self, n: f64, mag: f64, size: f64) -> f64 {
        match self {
            Model::Fma => (n + 2.0) * (EPS * mag + TINY),
            Model::Amx => amx_eval(n, mag, size),
        }
    }
}

/// One AMX evaluation of a row (contract §3c), in the terms of
/// [`Model::eval`]: `(4n + 2) eps mag + tiny_amx (6n + 2 + 3 size)`.
///
/// - Each operand is split exactly, `v = v0 + v1 + v2` (`amx::split3`:
///   `|v1| <= 2^-8 |v|`, `|v2| <= 2^-16 |v|`, so
///   `sum_i |v_i| <= (1 + 2^-7 + 2^-16) |v| < 1.008 |v|`).
/// - The six kept part products (`i + j <= 2`) are exact in f32; the tile
///   unit adds them into an f32 accumulator that starts at 0, `6n` additions,
///   and the epilogue adds the bias: `6n + 1` roundings at `u = eps / 2`,
///   in any order within `gamma_{6n+1} 1.008^2 (sum_k |W_k x_k| + |b|)
///   <= (3.05 n + 0.51) eps mag` (Higham 3.1).
/// - The three dropped products (`x1 w2 + x2 w1 + x2 w2`) are below
///   `(2^-23 + 2^-32) |W_k x_k|`, and the leaky ReLU multiply rounds once
///   more: `(3.05 n + 2.03) eps mag` in all, rounded up to `(4n + 2)` for
///   every `n >= 1`.
/// - Flushing: a bf16 input part below `2^-126` becomes 0. The flushed parts
///   of `x_k` lose less than `2.02 tiny_amx |W_k|` (only `x1`, `x2`: at most
///   `tiny_amx (2 |w0| + |w1|)`; `x0` too: then `|x_k| < 1.004 tiny_amx`),
///   and symmetrically for `W_k`: `3 tiny_amx (|W_k| + |x_k|)` per `k`. A
///   product or sum below `2^-126` flushed to 0 loses less than `tiny_amx`
///   per addition (`6n`), and the epilogue's add and multiply at most f32's
///   subnormal spacing each (`2`).
pub fn amx_eval(n: f64, mag: f64, size: f64) -> f64 {
    (4.0 * n + 2.0) * EPS * mag + TINY_AMX * (6.0 * n + 2.0 + 3.0 * size)
}

/// The leaky ReLU slope exactly as the kernels use it (`0.2f32`).
pub const SLOPE: f64 = 0.2f32 as f64;

/// The epsilon inside NVlabs' `normalize_2nd_moment`.
pub const NORMALIZE_EPS: f64 = 1e-8;

/// One folded layer: `y = act(W x + b)`, `W` row-major `[bias.len(), in]`.
#[derive(Clone, Copy, Debug)]
pub struct Layer<'a> {
    /// `W'`, row-major.
    pub weight: &'a [f32],
    /// `b'`.
    pub bias: &'a [f32],
    /// Leaky ReLU (true) or identity (false).
    pub lrelu: bool,
}

impl Layer<'_> {
    fn rows(&self) -> impl Iterator<Item = (&[f32], f64)> + '_ {
        let cols = (self.weight.len() / self.bias.len().max(1)).max(1);
        self.weight
            .chunks_exact(cols)
            .zip(self.bias)
            .map(|(r, &b)| (r, f64::from(b)))
    }

    fn act(&self, v: f64) -> f64 {
        if self.lrelu && v < 0.0 { v * SLOPE } else { v }
    }
}

/// The exact (f64) layer output for an f64 input.
pub fn exact_layer(l: &Layer<'_>, x: &[f64]) -> Vec<f64> {
    l.rows()
        .map(|(row, b)| {
            let dot: f64 = row.iter().zip(x).map(|(&w, &v)| f64::from(w) * v).sum();
            l.act(dot + b)
        })
        .collect()
}

/// Per-layer statement (contract §3a): two kernels given the same f32 input
/// `x` differ on row `r` by at most
/// `2 (n + 2) (eps (sum_k |W[r,k] x[k]| + |b[r]|) + tiny)`
/// (`tiny` = 2^-149 covers products that underflow).
pub fn layer_pair_bound(l: &Layer<'_>, x: &[f32]) -> Vec<f64> {
    let n = x.len() as f64;
    l.rows()
        .map(|(row, b)| {
            let mag: f64 = row
                .iter()
                .zip(x)
                .map(|(&w, &v)| (f64::from(w) * f64::from(v)).abs())
                .sum();
            2.0 * (n + 2.0) * (EPS * (mag + b.abs()) + TINY)
        })
        .collect()
}

/// Contract §3c per layer: one AMX evaluation on the f32 input `x` is within
/// this of the exact value on row `r`
/// ([`amx_eval`]: `(4n + 2) eps (sum_k |W[r,k] x[k]| + |b[r]|) + tiny_amx (6n + 2 + 3 sum_k (|W[r,k]| + |x[k]|))`).
pub fn amx_layer_bound(l: &Layer<'_>, x: &[f32]) -> Vec<f64> {
    let n = x.len() as f64;
    l.rows()
        .map(|(row, b)| {
            let (mut mag, mut size) = (b.abs(), 0.0f64);
            for (&w, &v) in row.iter().zip(x) {
                let (w, v) = (f64::from(w).abs(), f64::from(v).abs());
                mag += w * v;
                size += w + v;
            }
            amx_eval(n, mag, size)
        })
        .collect()
}

/// Contract §3c per layer: the AMX kernel and any FMA kernel (the scalar
/// oracle included) given the same f32 input `x` differ on row `r` by at
/// most the sum of their single-evaluation bounds,
/// [`amx_layer_bound`] + `(n + 2) (eps (sum_k |W[r,k] x[k]| + |b[r]|) + tiny)`
/// (half of [`layer_pair_bound`]).
pub fn amx_layer_pair_bound(l: &Layer<'_>, x: &[f32]) -> Vec<f64> {
    let fma = layer_pair_bound(l, x);
    amx_layer_bound(l, x)
        .into_iter()
        .zip(fma)
        .map(|(a, f)| a + f / 2.0)
        .collect()
}

/// One step of the whole-network recursion (contract §3b) for the FMA
/// kernels: [`propagate_with`]`(Model::Fma, ..)`.
pub fn propagate(l: &Layer<'_>, x: &[f64], f: &[f64]) -> (Vec<f64>, Vec<f64>, f64) {
    propagate_with(Model::Fma, l, x, f)
}

/// One step of the whole-network recursion (contract §3b, §3c): given the
/// exact input `x` and a bound `f` on a kernel's deviation from it, returns
/// the exact output, the bound on the output
/// `F' = |W| F + model.eval(n, |W| (|x| + F) + |b|, sum_k (|W_k| + |x_k| + F_k))`,
/// i.e. for [`Model::Fma`] `F' = |W| F + (n + 2) (eps (|W| (|x| + F) + |b|) + tiny)`,
/// and the largest magnitude `M = max_r sum_k |W[r,k]| (|x[k]| + F[k]) + |b[r]|`
/// that the kernel's partial sums can reach (the overflow precondition, §6).
pub fn propagate_with(
    model: Model,
    l: &Layer<'_>,
    x: &[f64],
    f: &[f64],
) -> (Vec<f64>, Vec<f64>, f64) {
    let n = x.len() as f64;
    let y = exact_layer(l, x);
    let mut max_mag = 0.0f64;
    let err = l
        .rows()
        .map(|(row, b)| {
            let (mut wf, mut mag, mut size) = (0.0f64, 0.0f64, 0.0f64);
            for ((&w, &xv), &fv) in row.iter().zip(x).zip(f) {
                let w = f64::from(w).abs();
                wf += w * fv;
                mag += w * (xv.abs() + fv);
                size += w + xv.abs() + fv;
            }
            max_mag = max_mag.max(mag + b.abs());
            wf + model.eval(n, mag + b.abs(), size)
        })
        .collect();
    (y, err, max_mag)
}

/// `normalize_2nd_moment` in f64.
pub fn normalize(v: &[f64]) -> (Vec<f64>, f64) {
    let mean = v.iter().map(|x| x * x).sum::<f64>() / v.len().max(1) as f64;
    let s = (mean + NORMALIZE_EPS).sqrt();
    (v.iter().map(|x| x / s).collect(), s)
}

/// The exact network output and the contract's bound `F_L` on every
/// kernel's deviation from it: `|w_kernel - w_exact| <= F_L`, so any two
/// kernels (the scalar oracle included), batch sizes or thread counts agree
/// within `2 F_L`.
#[derive(Clone, Debug)]
pub struct Bound {
    /// The exact (f64) w.
    pub exact: Vec<f64>,
    /// `F_L`, per element of w.
    pub err: Vec<f64>,
    /// The largest `M` of [`propagate`] over all layers (embedding
    /// included): when `M <= f32::MAX / 2` no kernel can overflow, so the
    /// forward pass must succeed (§6).
    pub max_mag: f64,
}

impl Bound {
    /// Whether the contract guarantees `Ok` (no overflow is possible).
    pub fn within_range(&self) -> bool {
        self.max_mag <= f64::from(f32::MAX) / 2.0 && self.err.iter().all(|e| e.is_finite())
    }
}

/// Contract §3b over a whole network. `x0_z` is the normalised z exactly as
/// the crate computes it (shared f64 code, identical for every kernel);
/// `embed` is the label embedding with its input `c`; `layers` the fc layers.
///
/// Embedding: `F_e` from [`propagate`] with `F = 0`; its normalisation
/// `v = e / s(e)` moves by at most
/// `(|de_j| + |v_j| ||de||_2 / sqrt(m)) / s_low` (`s_low` a lower bound on
/// any kernel's `s`), plus the f32 rounding of `v`.
pub fn network_bound(
    x0_z: &[f32],
    embed: Option<(Layer<'_>, &[f32])>,
    layers: &[Layer<'_>],
) -> Bound {
    network_bound_with(Model::Fma, x0_z, embed, layers)
}

/// Contract §3c over a whole network: [`network_bound`] for the AMX kernel
/// (the embedding and every layer run on AMX; the normalisations are the
/// shared f32 code). `|w_amx - w_exact| <= F_L`, so the AMX path and any FMA
/// path agree within `F_L(amx) + F_L(fma)`.
pub fn network_bound_amx(
    x0_z: &[f32],
    embed: Option<(Layer<'_>, &[f32])>,
    layers: &[Layer<'_>],
) -> Bound {
    network_bound_with(Model::Amx, x0_z, embed, layers)
}

/// [`network_bound`] with every layer's evaluation bounded by `model`
/// ([`propagate_with`]).
pub fn network_bound_with(
    model: Model,
    x0_z: &[f32],
    embed: Option<(Layer<'_>, &[f32])>,
    layers: &[Layer<'_>],
) -> Bound {
    let mut x: Vec<f64> = x0_z.iter().map(|&v| f64::from(v)).collect();
    let mut f = vec![0.0f64; x.len()];
    let mut max_mag = 0.0f64;
    if let Some((e, c)) = embed {
        let c64: Vec<f64> = c.iter().map(|&v| f64::from(v)).collect();
        let (e_exact, fe, m) = propagate_with(model, &e, &c64, &vec![0.0; c.len()]);
        max_mag = m;
        let m = e_exact.len().max(1) as f64;
        let (v, s) = normalize(&e_exact);
        let fe_norm = fe.iter().map(|d| d * d).sum::<f64>().sqrt() / m.sqrt();
        let s_low = (s - fe_norm).max(NORMALIZE_EPS.sqrt());
        for (j, &vj) in v.iter().enumerate() {
            let dv = (fe[j] + vj.abs() * fe_norm) / s_low;
            // f32 rounding of v, and a margin for the f64 arithmetic.
            f.push(dv * (1.0 + EPS) + EPS * vj.abs() + TINY);
            x.push(vj);
        }
    }
    for l in layers {
        let (y, e, m) = propagate_with(model, l, &x, &f);
        x = y;
        f = e;
        max_mag = max_mag.max(m);
    }
    Bound {
        exact: x,
        err: f,
        max_mag,
    }
}
