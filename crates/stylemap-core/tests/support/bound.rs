//! The agreement bound of the numeric contract (`src/contract.md`, §3),
//! computed in f64 from the folded weights.
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

/// One step of the whole-network recursion (contract §3b): given the exact
/// input `x` and a bound `f` on any kernel's deviation from it, returns the
/// exact output, the bound on the output
/// `F' = |W| F + (n + 2) (eps (|W| (|x| + F) + |b|) + tiny)`, and the largest
/// magnitude `M = max_r sum_k |W[r,k]| (|x[k]| + F[k]) + |b[r]|` that any
/// kernel's partial sums can reach (the overflow precondition, §6).
pub fn propagate(l: &Layer<'_>, x: &[f64], f: &[f64]) -> (Vec<f64>, Vec<f64>, f64) {
    let n = x.len() as f64;
    let y = exact_layer(l, x);
    let mut max_mag = 0.0f64;
    let err = l
        .rows()
        .map(|(row, b)| {
            let (mut wf, mut mag) = (0.0f64, 0.0f64);
            for ((&w, &xv), &fv) in row.iter().zip(x).zip(f) {
                let w = f64::from(w).abs();
                wf += w * fv;
                mag += w * (xv.abs() + fv);
            }
            max_mag = max_mag.max(mag + b.abs());
            wf + (n + 2.0) * (EPS * (mag + b.abs()) + TINY)
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
    let mut x: Vec<f64> = x0_z.iter().map(|&v| f64::from(v)).collect();
    let mut f = vec![0.0f64; x.len()];
    let mut max_mag = 0.0f64;
    if let Some((e, c)) = embed {
        let c64: Vec<f64> = c.iter().map(|&v| f64::from(v)).collect();
        let (e_exact, fe, m) = propagate(&e, &c64, &vec![0.0; c.len()]);
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
        let (y, e, m) = propagate(l, &x, &f);
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
