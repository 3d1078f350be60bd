//! Broadcast w to every synthesis layer and apply the truncation trick.

use crate::error::{Error, Operand, check_finite, check_len};

/// The truncation trick's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Truncation {
    /// Strength: 1 leaves ws untouched, 0 gives `w_avg`, > 1 extrapolates.
    pub psi: f32,
    /// Truncate layers `0..cutoff`; `None` truncates all. A cutoff past
    /// `num_ws` truncates all layers, as NVlabs' slice `ws[:, :cutoff]` does.
    pub cutoff: Option<usize>,
}

impl Truncation {
    /// No truncation (psi 1).
    pub const NONE: Truncation = Truncation {
        psi: 1.0,
        cutoff: None,
    };
}

/// `torch.lerp(start, end, weight)` on the CPU, rounding included:
/// `start + weight * (end - start)` for |weight| < 0.5, else
/// `end - (end - start) * (1 - weight)`. Weight 0 gives `start` exactly.
#[inline]
pub fn lerp(start: f32, end: f32, weight: f32) -> f32 {
    if weight == 0.0 {
        start
    } else if weight.abs() < 0.5 {
        start + weight * (end - start)
    } else {
        end - (end - start) * (1.0 - weight)
    }
}

/// Truncates the `w_dim`-wide rows `0..cutoff` of `ws` toward `w_avg` in place:
/// `ws[i] = lerp(w_avg, ws[i], psi)`. psi = 1 returns without touching `ws`;
/// psi = 0 sets the rows to `w_avg` exactly; a cutoff of 0 changes nothing.
///
/// Errors, leaving `ws` untouched, if `ws.len()` is not a multiple of
/// `w_avg.len()` (which must be non-empty), if `psi`, `w_avg` or `ws` holds
/// NaN or an infinity ([`Error::NonFinite`] naming the first one), or if a
/// truncated value would overflow f32 ([`Error::Overflow`] on
/// [`Operand::Ws`]: `|psi|` or `|ws - w_avg|` near `f32::MAX`). The overflow
/// check is a second pass over the truncated rows, computed before anything
/// is written.
pub fn truncate_in_place(ws: &mut [f32], w_avg: &[f32], t: Truncation) -> Result<(), Error> {
    let w_dim = w_avg.len();
    if w_dim == 0 {
        return Err(Error::BadDimension(Operand::WDim));
    }
    if !ws.len().is_multiple_of(w_dim) {
        let expected = ws.len() / w_dim * w_dim;
        return Err(Error::Length {
            what: Operand::Ws,
            expected,
            actual: ws.len(),
        });
    }
    check_finite(Operand::Psi, &[t.psi])?;
    check_finite(Operand::WAvg, w_avg)?;
    check_finite(Operand::Ws, ws)?;
    if t.psi == 1.0 {
        return Ok(());
    }
    let rows = t.cutoff.unwrap_or(usize::MAX).min(ws.len() / w_dim);
    // Check first, so an overflow leaves `ws` as it was.
    for (r, row) in ws.chunks_exact(w_dim).take(rows).enumerate() {
        for (k, (&v, &avg)) in row.iter().zip(w_avg).enumerate() {
            if !lerp(avg, v, t.psi).is_finite() {
                return Err(Error::Overflow {
                    what: Operand::Ws,
                    index: r * w_dim + k,
                });
            }
        }
    }
    for row in ws.chunks_exact_mut(w_dim).take(rows) {
        for (v, &avg) in row.iter_mut().zip(w_avg) {
            *v = lerp(avg, *v, t.psi);
        }
    }
    Ok(())
}

/// `ws[i, :] = w` for `i in 0..num_ws`, then [`truncate_in_place`].
///
/// `w` and `w_avg` have `w_dim` elements, `ws` has `num_ws * w_dim`.
/// Errors, before anything is written, for wrong lengths, a non-finite
/// `psi`, `w` or `w_avg`, or a truncated value that would overflow f32
/// (see [`truncate_in_place`]).
pub fn broadcast_truncate(
    w: &[f32],
    w_avg: &[f32],
    num_ws: usize,
    t: Truncation,
    ws: &mut [f32],
) -> Result<(), Error> {
    let w_dim = w_avg.len();
    check_len(Operand::W, w, w_dim)?;
    if num_ws == 0 {
        return Err(Error::BadDimension(Operand::NumWs));
    }
    check_len(
        Operand::Ws,
        ws,
        num_ws.checked_mul(w_dim).ok_or(Error::TooLarge)?,
    )?;
    check_finite(Operand::Psi, &[t.psi])?;
    check_finite(Operand::W, w)?;
    check_finite(Operand::WAvg, w_avg)?;
    if t.psi != 1.0 && t.cutoff != Some(0) {
        // Every truncated row is the same: check it once before writing.
        for (index, (&v, &avg)) in w.iter().zip(w_avg).enumerate() {
            if !lerp(avg, v, t.psi).is_finite() {
                return Err(Error::Overflow {
                    what: Operand::Ws,
                    index,
                });
            }
        }
    }
    for row in ws.chunks_exact_mut(w_dim.max(1)) {
        row.copy_from_slice(w);
    }
    truncate_in_place(ws, w_avg, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lerp_endpoints_are_exact() {
        for &(a, b) in &[(0.1f32, 7.3f32), (-3.0, 1e-7), (5.5, 5.5), (1e30, -1e30)] {
            assert_eq!(lerp(a, b, 0.0), a);
            assert_eq!(lerp(a, b, 1.0), b);
        }
        assert_eq!(lerp(1.0, 3.0, 0.25), 1.5);
        assert_eq!(lerp(1.0, 3.0, 1.5), 4.0);
    }

    #[test]
    fn cutoff_limits_the_rows_and_psi_one_is_a_no_op() {
        let w = [1.0f32, 2.0];
        let avg = [0.0f32, 10.0];
        let mut ws = [0.0f32; 8];
        let t = Truncation {
            psi: 0.5,
            cutoff: Some(2),
        };
        broadcast_truncate(&w, &avg, 4, t, &mut ws).unwrap();
        assert_eq!(ws, [0.5, 6.0, 0.5, 6.0, 1.0, 2.0, 1.0, 2.0]);
        broadcast_truncate(&w, &avg, 4, Truncation::NONE, &mut ws).unwrap();
        assert_eq!(ws, [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
        let all = Truncation {
            psi: 0.0,
            cutoff: Some(99),
        };
        broadcast_truncate(&w, &avg, 4, all, &mut ws).unwrap();
        assert_eq!(ws, [0.0, 10.0, 0.0, 10.0, 0.0, 10.0, 0.0, 10.0]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut ws = [0.0f32; 6];
        let nan = Truncation {
            psi: f32::NAN,
            cutoff: None,
        };
        assert_eq!(
            broadcast_truncate(&[1.0, 2.0], &[0.0, 0.0], 3, nan, &mut ws),
            Err(Error::NonFinite {
                what: Operand::Psi,
                index: 0
            })
        );
        assert!(broadcast_truncate(&[1.0], &[0.0, 0.0], 3, Truncation::NONE, &mut ws).is_err());
        assert!(
            broadcast_truncate(&[1.0, 2.0], &[0.0, 0.0], 2, Truncation::NONE, &mut ws).is_err()
        );
        assert!(truncate_in_place(&mut ws[..5], &[0.0, 0.0], Truncation::NONE).is_err());
    }
}
