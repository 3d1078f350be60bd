//! A correctly rounded natural logarithm for the legacy (numpy) sampler.
//!
//! numpy computes `ln(r2)` with the platform C library. glibc's `log`
//! (>= 2.28) has an error below 0.52 ULP: on the polar method's inputs it
//! returned the correctly rounded result in all but 0.08 % of cases (glibc
//! 2.36, x86-64). `libm::log` (a FreeBSD port, error < 1 ULP) is misrounded
//! on about 7 % of those inputs, which changed about 3 % of numpy's deviates
//! by 1-3 ULP. Returning the correctly rounded value — the one answer every
//! good libm agrees on — makes the polar method reproduce numpy whenever the
//! platform log is itself correctly rounded.
//!
//! Method (Ziv's strategy, double-double arithmetic, no FMA needed):
//! `x = 2^k · m` with `m` in `[√2/2, √2]`, `s = (m - 1) / (m + 1)` and
//! `ln m = 2 atanh s = 2s (1 + s²/3 + s⁴/5 + …)`, `|s| <= 0.1716`.
//! A fast evaluation (relative error below 2^-62) is accepted when its
//! rounding to `f64` is unambiguous within a 2^-61 bound; otherwise (about
//! 1 % of calls) the whole series is summed in double-double, accurate to
//! about 2^-100, and rounded.

/// `ln 2` split in three: `LN2_HI` has 32 significant bits (so `k · LN2_HI`
/// is exact for `|k| < 2^21`), `LN2_HI + LN2_MID + LN2_LO` = `ln 2` to about
/// 2^-140.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// Second part of `ln 2` (0x1.a39ef35793c76p-33).
const LN2_MID: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// Third part of `ln 2` (0x1.cc01f97b57a08p-87).
const LN2_LO: f64 = f64::from_bits(0x3a8c_c01f_97b5_7a08);

/// `√2` rounded to nearest (0x1.6a09e667f3bcdp+0).
const SQRT_2: f64 = f64::from_bits(0x3ff6_a09e_667f_3bcd);

/// `2^54`, to normalise subnormal inputs.
const TWO_POW_54: f64 = 18_014_398_509_481_984.0;

/// Relative error bound accepted for the fast path (its actual error is
/// below 2^-62.8, see `fast_log_m`).
const FAST_EPS: f64 = 1.0 / 2_305_843_009_213_693_952.0; // 2^-61

/// `1/5, 1/7, …, 1/27`: the coefficients of `Q` in `fast_log_m`.
const Q_COEFFS: [f64; 12] = {
    let mut c = [0.0; 12];
    let mut i = 0;
    while i < 12 {
        // `2i + 5 <= 27`, exactly representable.
        c[i] = 1.0 / (2 * i + 5) as f64;
        i += 1;
    }
    c
};

/// Number of odd reciprocals `1/(2j+1)` used by the slow path (`j < SLOW_TERMS`).
/// `s² <= 0.0295 < 2^-5.08`, so the first omitted term is below 2^-110
/// relative.
const SLOW_TERMS: usize = 22;

/// A double-double: unevaluated sum `hi + lo` with `|lo| <= ulp(hi) / 2`.
#[derive(Clone, Copy)]
struct Dd {
    hi: f64,
    lo: f64,
}

/// Exact sum `a + b = s + e` (Knuth).
#[inline]
const fn two_sum(a: f64, b: f64) -> Dd {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    Dd { hi: s, lo: e }
}

/// Exact sum `a + b = s + e`, valid when `|a| >= |b|` or `a == 0`.
#[inline]
const fn fast_two_sum(a: f64, b: f64) -> Dd {
    let s = a + b;
    let e = b - (s - a);
    Dd { hi: s, lo: e }
}

/// Veltkamp split of `a` into two halves of at most 26 significant bits.
#[inline]
const fn split(a: f64) -> (f64, f64) {
    let t = 134_217_729.0 * a; // 2^27 + 1
    let hi = t - (t - a);
    (hi, a - hi)
}

/// Exact product `a * b = p + e` (Dekker), for `|a|, |b|` well inside range.
#[inline]
const fn two_prod(a: f64, b: f64) -> Dd {
    let p = a * b;
    let (ah, al) = split(a);
    let (bh, bl) = split(b);
    let e = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
    Dd { hi: p, lo: e }
}

/// Double-double sum (relative error about 2^-104).
#[inline]
const fn dd_add(a: Dd, b: Dd) -> Dd {
    let s = two_sum(a.hi, b.hi);
    let t = two_sum(a.lo, b.lo);
    let r = fast_two_sum(s.hi, s.lo + t.hi);
    fast_two_sum(r.hi, r.lo + t.lo)
}

/// Double-double product (relative error about 2^-104).
#[inline]
const fn dd_mul(a: Dd, b: Dd) -> Dd {
    let p = two_prod(a.hi, b.hi);
    fast_two_sum(p.hi, p.lo + (a.hi * b.lo + a.lo * b.hi))
}

/// `1/(2j+1)` as double-doubles, computed at compile time.
const ODD_RECIPROCALS: [Dd; SLOW_TERMS] = {
    let mut table = [Dd { hi: 0.0, lo: 0.0 }; SLOW_TERMS];
    let mut j = 0;
    while j < SLOW_TERMS {
        // `2j + 1 <= 43`, exactly representable.
        let d = (2 * j + 1) as f64;
        let hi = 1.0 / d;
        // 1 - hi*d exactly, then divided by d: lo is within 2^-53 of the
        // true remainder, i.e. the pair is accurate to about 2^-106.
        let p = two_prod(hi, d);
        let lo = ((1.0 - p.hi) - p.lo) / d;
        table[j] = Dd { hi, lo };
        j += 1;
    }
    table
};

/// `k · ln 2` as a double-double (error about 2^-106 relative).
#[inline]
fn k_ln2(k: i32) -> Dd {
    let kf = f64::from(k);
    // Exact: LN2_HI has 32 significant bits and |k| < 2^11.
    let hi = kf * LN2_HI;
    let mid = two_prod(kf, LN2_MID);
    dd_add(
        Dd { hi, lo: 0.0 },
        Dd {
            hi: mid.hi,
            lo: mid.lo + kf * LN2_LO,
        },
    )
}

/// `s = (m - 1) / (m + 1)` as a double-double, for `m` in `[√2/2, √2]`.
#[inline]
fn reduced_s(m: f64) -> Dd {
    // Exact by Sterbenz's lemma since 1/2 <= m <= 2.
    let num = m - 1.0;
    let den = two_sum(m, 1.0);
    // One division: `sh` need not be correctly rounded, the residual below
    // corrects it.
    let inv = 1.0 / den.hi;
    let sh = num * inv;
    // num - sh*(den.hi + den.lo), with the leading cancellation done exactly
    // (Sterbenz: sh*den.hi is within a few ULP of num).
    let p = two_prod(sh, den.hi);
    let r = ((num - p.hi) - p.lo) - sh * den.lo;
    fast_two_sum(sh, r * inv)
}

/// Fast `ln m` (relative error below 2^-62.8).
///
/// `ln m = 2s + 2s·z·P(z)` with `z = s²`, `P(z) = 1/3 + z·Q(z)` and
/// `Q(z) = 1/5 + z/7 + … + z^11/27` evaluated in plain `f64` (relative error
/// < 2^-50.4 including truncation). `z·Q/P < 2^-5.8` and `zP/(1+zP) < 2^-6.6`,
/// so Q's error reaches the result scaled by 2^-12.4; everything else is
/// double-double.
#[inline]
fn fast_log_m(s: Dd) -> Dd {
    let z = dd_mul(s, s);
    let zh = z.hi;
    let mut q = 0.0;
    for c in Q_COEFFS.iter().rev() {
        q = q * zh + c;
    }
    let p = dd_add(ODD_RECIPROCALS[1], two_prod(zh, q));
    let two_s = Dd {
        hi: 2.0 * s.hi,
        lo: 2.0 * s.lo,
    };
    let t = dd_mul(dd_mul(two_s, z), p);
    dd_add(two_s, t)
}

/// Accurate `ln m` (relative error about 2^-100): the full series in
/// double-double.
fn slow_log_m(s: Dd) -> Dd {
    let z = dd_mul(s, s);
    let mut acc = ODD_RECIPROCALS[SLOW_TERMS - 1];
    let mut j = SLOW_TERMS - 1;
    while j > 0 {
        j -= 1;
        acc = dd_add(dd_mul(acc, z), ODD_RECIPROCALS[j]);
    }
    let two_s = Dd {
        hi: 2.0 * s.hi,
        lo: 2.0 * s.lo,
    };
    dd_mul(two_s, acc)
}

/// Correctly rounded natural logarithm (round to nearest) of a positive
/// finite `x`.
///
/// For `x <= 0`, infinities and NaN it defers to `libm::log` (NaN, `-inf`,
/// `+inf`). For positive finite `x` the result is the exact `ln x` rounded to
/// nearest, except possibly for inputs whose logarithm lies within about
/// 2^-100 (relative) of a rounding midpoint; no such input is known to occur.
pub(crate) fn ln(x: f64) -> f64 {
    if !(x > 0.0 && x < f64::INFINITY) {
        return libm::log(x);
    }
    let (x, mut k) = if x < f64::MIN_POSITIVE {
        (x * TWO_POW_54, -54)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    // Biased exponent is in 1..=2046 here; the cast is lossless.
    #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
    let biased = ((bits >> 52) & 0x7ff) as i32;
    k += biased - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > SQRT_2 {
        m *= 0.5;
        k += 1;
    }
    let s = reduced_s(m);
    let kl = k_ln2(k);

    // Fast path with Ziv's rounding test. |k ln2| and |ln m| never cancel by
    // more than a factor 3 (|ln m| <= ln2 / 2), so a relative error bound on
    // ln m (and on k ln2) carries over to the sum up to that factor; FAST_EPS
    // leaves a margin of more than 2^1.8 on top of it.
    let y = dd_add(kl, fast_log_m(s));
    let err = 3.0 * FAST_EPS * y.hi.abs();
    let up = y.hi + (y.lo + err);
    let down = y.hi + (y.lo - err);
    if up == y.hi && down == y.hi {
        return y.hi;
    }
    let y = dd_add(kl, slow_log_m(s));
    y.hi + y.lo
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values: `float(Decimal(x).ln())` with 60 significant digits
    /// (Python's `decimal`), i.e. correctly rounded `ln x`.
    const REFERENCE: [(u64, u64); 11] = [
        // Four polar-method inputs on which glibc 2.36's log is misrounded
        // (the first is seed 42's 39th pair in numpy's randn).
        (0x3fee_7c3c_a362_c8d0, 0xbfa8_d3d9_d28b_926f), // 0.9526656333094028
        (0x3fe0_9b8d_d364_a75f, 0xbfe4_fcea_6dfe_2577), // 0.5189885262272859
        (0x3fe2_3930_cad8_7037, 0xbfe2_0456_2fdf_ae18), // 0.5694812738252101
        (0x3fd8_a52d_1cc5_93b0, 0xbfee_89a0_6e57_fa76), // 0.38508155641312225
        (0x3fe0_0000_0000_0000, 0xbfe6_2e42_fefa_39ef), // 0.5
        (0x3ff8_0000_0000_0000, 0x3fd9_f323_ecbf_984c), // 1.5
        (0x3ff0_0000_0000_0001, 0x3caf_ffff_ffff_ffff), // 1 + 2^-52
        (0x3fef_ffff_ffff_ffff, 0xbca0_0000_0000_0000), // 1 - 2^-53
        (0x0000_0000_0000_0001, 0xc087_4385_446d_71c3), // min subnormal
        (0x7fef_ffff_ffff_ffff, 0x4086_2e42_fefa_39ef), // f64::MAX
        (0x3970_0000_0000_0000, 0xc052_0596_6f2b_4f12), // 2^-104
    ];

    #[test]
    fn reference_values() {
        for &(x, want) in &REFERENCE {
            let got = ln(f64::from_bits(x));
            assert_eq!(got.to_bits(), want, "ln({:e})", f64::from_bits(x));
        }
    }

    #[test]
    fn special_cases() {
        assert_eq!(ln(1.0).to_bits(), 0.0f64.to_bits());
        assert!(ln(0.0).is_infinite() && ln(0.0) < 0.0);
        assert!(ln(-1.0).is_nan());
        assert!(ln(f64::NAN).is_nan());
        assert_eq!(ln(f64::INFINITY), f64::INFINITY);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn close_to_libm_and_fast_path_agrees_with_slow_path() {
        // Within 1 ULP of libm (both are < 1 ULP from the truth), and the
        // fast path, whenever it passes the rounding test, equals the
        // rounded slow path.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let x = f64::from_bits(0x3c00_0000_0000_0000 + (state >> 12) % 0x0440_0000_0000_0000);
            let got = ln(x);
            let reference = libm::log(x);
            let d = got.to_bits().abs_diff(reference.to_bits());
            assert!(d <= 1, "ln({x:e}) = {got:e}, libm {reference:e}");

            let bits = x.to_bits();
            #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
            let mut k = ((bits >> 52) & 0x7ff) as i32 - 1023;
            let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
            if m > SQRT_2 {
                m *= 0.5;
                k += 1;
            }
            let s = reduced_s(m);
            let fast = dd_add(k_ln2(k), fast_log_m(s));
            let slow = dd_add(k_ln2(k), slow_log_m(s));
            let diff = ((fast.hi - slow.hi) + (fast.lo - slow.lo)).abs();
            assert!(
                diff <= 3.0 * FAST_EPS * slow.hi.abs(),
                "fast path error at {x:e}"
            );
        }
    }
}
