//! Where w goes: broadcast to ws, truncation, style mixing and interpolation.
//!
//! Shapes are row-major: w is `[N, w_dim]`, ws is `[N, num_ws, w_dim]`.
//! Every function checks its lengths and returns an [`Error`] instead of
//! panicking; nothing is written when an argument is rejected.
//!
//! Numbers (the core's numeric contract): every float input must be finite
//! (NaN or an infinity is an error naming the sample and element), and a
//! result that would not be finite although the inputs are (an extrapolation
//! by a huge `psi` or `t`, values near `f32::MAX`) is an error too, detected
//! before anything is written.

use stylemap_core::truncation::{self, Truncation};

use crate::error::{Error, check_finite};

fn layer_len(len: usize, num_ws: usize, what: &str) -> Result<usize, Error> {
    if num_ws == 0 {
        return Err(Error::invalid("num_ws must be positive"));
    }
    if len == 0 || !len.is_multiple_of(num_ws) {
        return Err(Error::invalid(format!(
            "{what} has {len} elements, not a positive multiple of num_ws {num_ws}"
        )));
    }
    Ok(len / num_ws)
}

/// The first `i` for which `f(i)` is not finite, as an overflow error on `what`.
fn check_results(
    what: &str,
    len: usize,
    row_len: usize,
    f: impl Fn(usize) -> f32,
) -> Result<(), Error> {
    match (0..len).find(|&i| !f(i).is_finite()) {
        None => Ok(()),
        Some(i) => {
            let at = match i.checked_div(row_len) {
                Some(sample) => format!("sample {sample}, element {}", i % row_len),
                None => format!("element {i}"),
            };
            Err(Error::invalid(format!(
                "{what} would overflow f32 at {at} although every input is finite \
                 (values too large for f32 arithmetic)"
            )))
        }
    }
}

/// The argument checks of [`lerp`] and [`slerp`]: equal lengths, a finite
/// `t`, finite `a` and `b`.
fn check_interpolation(a: &[f32], b: &[f32], t: f32, out: &[f32]) -> Result<(), Error> {
    same_len(["a", "b"], a.len(), b.len())?;
    same_len(["a", "out"], a.len(), out.len())?;
    if !t.is_finite() {
        return Err(Error::invalid(format!("t must be finite, got {t}")));
    }
    check_finite("a", a, 0)?;
    check_finite("b", b, 0)?;
    Ok(())
}

fn same_len(names: [&str; 2], a: usize, b: usize) -> Result<(), Error> {
    if a == b {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{} has {a} elements but {} has {b}",
            names[0], names[1]
        )))
    }
}

/// `ws[n, i, :] = w[n, :]` for every sample `n` and layer `i < num_ws`
/// (SPEC §1 step 4).
///
/// `w` is `[N, w_dim]`, `ws` must be `[N, num_ws, w_dim]`. Errors for bad
/// lengths or a non-finite `w`.
pub fn broadcast(w: &[f32], w_dim: usize, num_ws: usize, ws: &mut [f32]) -> Result<(), Error> {
    if w_dim == 0 || num_ws == 0 {
        return Err(Error::invalid("w_dim and num_ws must be positive"));
    }
    if !w.len().is_multiple_of(w_dim) {
        return Err(Error::invalid(format!(
            "w has {} elements, not a multiple of w_dim {w_dim}",
            w.len()
        )));
    }
    let n = w.len() / w_dim;
    let expected = n
        .checked_mul(num_ws)
        .and_then(|v| v.checked_mul(w_dim))
        .ok_or(stylemap_core::Error::TooLarge)?;
    if ws.len() != expected {
        return Err(Error::invalid(format!(
            "ws has {} elements, expected {expected} ({n} samples x num_ws {num_ws} x w_dim {w_dim})",
            ws.len()
        )));
    }
    check_finite("w", w, w_dim)?;
    for (w_row, sample) in w
        .chunks_exact(w_dim)
        .zip(ws.chunks_exact_mut(num_ws * w_dim))
    {
        for layer in sample.chunks_exact_mut(w_dim) {
            layer.copy_from_slice(w_row);
        }
    }
    Ok(())
}

/// The truncation trick on every sample of `ws [N, num_ws, w_dim]`
/// (`w_dim = w_avg.len()`): layers `i < cutoff` (`None`: all; a cutoff past
/// `num_ws` means all) become `w_avg + psi * (ws[i] - w_avg)` with torch's
/// lerp rounding, via [`stylemap_core::truncation::truncate_in_place`].
///
/// psi = 1 leaves `ws` untouched, psi = 0 gives `w_avg` exactly, psi > 1
/// extrapolates, cutoff `Some(0)` changes nothing. Errors, leaving `ws`
/// untouched, for bad lengths, a non-finite psi, `w_avg` or `ws`, or a
/// truncated value that would overflow f32.
pub fn truncate(
    ws: &mut [f32],
    w_avg: &[f32],
    num_ws: usize,
    psi: f32,
    cutoff: Option<usize>,
) -> Result<(), Error> {
    if w_avg.is_empty() {
        return Err(Error::invalid("w_avg is empty"));
    }
    if !psi.is_finite() {
        return Err(Error::invalid(format!("psi must be finite, got {psi}")));
    }
    check_finite("w_avg", w_avg, 0)?;
    let sample_len = num_ws
        .checked_mul(w_avg.len())
        .ok_or(stylemap_core::Error::TooLarge)?;
    layer_len(ws.len(), num_ws, "ws")?;
    if !ws.len().is_multiple_of(sample_len) {
        return Err(Error::invalid(format!(
            "ws has {} elements, not a multiple of num_ws {num_ws} x w_dim {}",
            ws.len(),
            w_avg.len()
        )));
    }
    check_finite("ws", ws, sample_len)?;
    let t = Truncation { psi, cutoff };
    if psi != 1.0 {
        // Overflow check over every sample before the first is written.
        let w_dim = w_avg.len();
        let rows = cutoff.unwrap_or(num_ws).min(num_ws);
        check_results("truncated ws", ws.len(), sample_len, |i| {
            let (k, layer) = (i % w_dim, (i % sample_len) / w_dim);
            if layer < rows {
                truncation::lerp(w_avg[k], ws[i], psi)
            } else {
                0.0
            }
        })?;
    }
    for sample in ws.chunks_exact_mut(sample_len) {
        truncation::truncate_in_place(sample, w_avg, t)?;
    }
    Ok(())
}

/// Style mixing by a layer set, as NVlabs' `style_mixing.py`:
/// `out = base` with the listed layers taken from `other`.
///
/// `base`, `other` and `out` are one sample's ws `[num_ws, w_dim]`. Layers
/// may repeat and come in any order; a layer `>= num_ws` is an error, and
/// so is a non-finite value in `base` or `other`.
pub fn mix_layers(
    base: &[f32],
    other: &[f32],
    layers: &[usize],
    num_ws: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    same_len(["base", "other"], base.len(), other.len())?;
    same_len(["base", "out"], base.len(), out.len())?;
    let w_dim = layer_len(base.len(), num_ws, "base")?;
    if let Some(&bad) = layers.iter().find(|&&l| l >= num_ws) {
        return Err(Error::invalid(format!(
            "style layer {bad} is out of range: the network has {num_ws} ws (layers 0-{})",
            num_ws - 1
        )));
    }
    check_finite("base", base, 0)?;
    check_finite("other", other, 0)?;
    out.copy_from_slice(base);
    for &l in layers {
        let r = l * w_dim..(l + 1) * w_dim;
        out[r.clone()].copy_from_slice(&other[r]);
    }
    Ok(())
}

/// Style mixing by a crossover index (training-time mixing, rosinality):
/// layers `[0, k)` from `first`, `[k, num_ws)` from `second`.
///
/// `k = 0` gives `second`, `k = num_ws` gives `first`; `k > num_ws` is an
/// error, and so is a non-finite value in `first` or `second`. All buffers
/// are one sample's ws `[num_ws, w_dim]`.
pub fn mix_crossover(
    first: &[f32],
    second: &[f32],
    k: usize,
    num_ws: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    same_len(["first", "second"], first.len(), second.len())?;
    same_len(["first", "out"], first.len(), out.len())?;
    let w_dim = layer_len(first.len(), num_ws, "first")?;
    if k > num_ws {
        return Err(Error::invalid(format!(
            "crossover {k} is out of range: the network has {num_ws} ws (0-{num_ws} allowed)"
        )));
    }
    check_finite("first", first, 0)?;
    check_finite("second", second, 0)?;
    let split = k * w_dim;
    out[..split].copy_from_slice(&first[..split]);
    out[split..].copy_from_slice(&second[split..]);
    Ok(())
}

/// Linear interpolation (for w space): `out = a + t * (b - a)`, element-wise,
/// with torch's lerp rounding ([`stylemap_core::truncation::lerp`]: `t = 0`
/// gives `a` and `t = 1` gives `b` exactly). `t` outside `[0, 1]`
/// extrapolates. Errors on unequal lengths, a non-finite `t`, `a` or `b`, or
/// a result that would overflow f32 (nothing is written then).
pub fn lerp(a: &[f32], b: &[f32], t: f32, out: &mut [f32]) -> Result<(), Error> {
    check_interpolation(a, b, t, out)?;
    check_results("lerp", a.len(), 0, |i| truncation::lerp(a[i], b[i], t))?;
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = truncation::lerp(x, y, t);
    }
    Ok(())
}

/// Above this `|cos θ|` between the two vectors, [`slerp`] falls back to
/// [`lerp`] (θ below about 1.8°, or above 178.2°).
pub const SLERP_DOT_THRESHOLD: f64 = 0.9995;

/// Spherical linear interpolation (for z space, e.g. latent walks), computed
/// in f64:
///
/// ```text
/// θ = acos(a·b / (|a| |b|))
/// out = sin((1 - t) θ) / sin θ * a + sin(t θ) / sin θ * b
/// ```
///
/// (the standard formula on the unnormalised vectors, so norms are
/// interpolated too; `t = 0` gives `a`, `t = 1` gives `b`).
///
/// The great circle is undefined for parallel or antiparallel vectors and
/// ill-conditioned near them: when `|cos θ| > SLERP_DOT_THRESHOLD` (0.9995)
/// or either vector is zero, this returns [`lerp`] instead (for
/// antiparallel vectors the path then passes near the origin).
/// Errors on unequal lengths, a non-finite `t`, `a` or `b`, or a result
/// that would overflow f32 (nothing is written then).
pub fn slerp(a: &[f32], b: &[f32], t: f32, out: &mut [f32]) -> Result<(), Error> {
    check_interpolation(a, b, t, out)?;
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let denom = (na * nb).sqrt();
    let cos = if denom > 0.0 { dot / denom } else { 1.0 };
    if cos.is_nan() || cos.abs() > SLERP_DOT_THRESHOLD {
        return lerp(a, b, t, out);
    }
    let theta = cos.acos();
    let sin = theta.sin();
    let t = f64::from(t);
    let (ka, kb) = (((1.0 - t) * theta).sin() / sin, (t * theta).sin() / sin);
    let at = |i: usize| (ka * f64::from(a[i]) + kb * f64::from(b[i])) as f32;
    check_results("slerp", a.len(), 0, at)?;
    for (i, o) in out.iter_mut().enumerate() {
        *o = at(i);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_and_truncate() {
        let w = [1.0f32, 2.0, 3.0, 4.0];
        let mut ws = [0.0f32; 12];
        broadcast(&w, 2, 3, &mut ws).unwrap();
        assert_eq!(ws, [1., 2., 1., 2., 1., 2., 3., 4., 3., 4., 3., 4.]);
        truncate(&mut ws, &[0.0, 0.0], 3, 0.5, Some(2)).unwrap();
        assert_eq!(ws, [0.5, 1., 0.5, 1., 1., 2., 1.5, 2., 1.5, 2., 3., 4.]);
        truncate(&mut ws, &[7.0, 8.0], 3, 0.0, None).unwrap();
        assert_eq!(ws, [7., 8., 7., 8., 7., 8., 7., 8., 7., 8., 7., 8.]);
        assert!(broadcast(&w, 2, 3, &mut ws[..10]).is_err());
        assert!(broadcast(&w[..3], 2, 3, &mut ws).is_err());
        assert!(truncate(&mut ws, &[0.0, 0.0], 3, f32::NAN, None).is_err());
        assert!(truncate(&mut ws, &[0.0, 0.0, 0.0], 3, 0.5, None).is_err());
        assert!(truncate(&mut ws, &[f32::INFINITY, 0.0], 3, 0.5, None).is_err());
    }

    #[test]
    fn mixing() {
        let a: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let b: Vec<f32> = (0..8).map(|v| -(v as f32)).collect();
        let mut out = [0.0f32; 8];
        mix_layers(&a, &b, &[3, 1, 1], 4, &mut out).unwrap();
        assert_eq!(out, [0., 1., -2., -3., 4., 5., -6., -7.]);
        assert!(mix_layers(&a, &b, &[4], 4, &mut out).is_err());
        mix_crossover(&a, &b, 1, 4, &mut out).unwrap();
        assert_eq!(out, [0., 1., -2., -3., -4., -5., -6., -7.]);
        mix_crossover(&a, &b, 4, 4, &mut out).unwrap();
        assert_eq!(out[..], a[..]);
        mix_crossover(&a, &b, 0, 4, &mut out).unwrap();
        assert_eq!(out[..], b[..]);
        assert!(mix_crossover(&a, &b, 5, 4, &mut out).is_err());
        assert!(mix_crossover(&a, &b[..6], 1, 4, &mut out).is_err());
        assert!(mix_layers(&a, &b, &[0], 3, &mut out).is_err());
    }

    #[test]
    fn interpolation() {
        let (a, b) = ([1.0f32, 0.0], [0.0f32, 2.0]);
        let mut out = [0.0f32; 2];
        lerp(&a, &b, 0.25, &mut out).unwrap();
        assert_eq!(out, [0.75, 0.5]);
        slerp(&a, &b, 0.0, &mut out).unwrap();
        assert_eq!(out, a);
        slerp(&a, &b, 1.0, &mut out).unwrap();
        assert!((out[0]).abs() < 1e-7 && (out[1] - 2.0).abs() < 1e-6);
        slerp(&a, &b, 0.5, &mut out).unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((out[0] - h).abs() < 1e-6 && (out[1] - 2.0 * h).abs() < 1e-6);
        // Parallel, antiparallel and zero vectors fall back to lerp.
        for b in [[2.0f32, 0.0], [-1.0, 0.0], [0.0, 0.0]] {
            let mut l = [0.0f32; 2];
            lerp(&a, &b, 0.3, &mut l).unwrap();
            slerp(&a, &b, 0.3, &mut out).unwrap();
            assert_eq!(out, l);
        }
        assert!(slerp(&a, &b[..1], 0.5, &mut out).is_err());
        assert!(lerp(&a, &b, f32::INFINITY, &mut out).is_err());
        assert!(slerp(&[f32::NAN, 0.0], &b, 0.5, &mut out).is_err());
    }
}
