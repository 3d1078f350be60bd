//! The Box-Muller arithmetic, branch-free so that LLVM vectorises it over a
//! block of pairs, and bit-identical on every target.
//!
//! Everything here is a chain of correctly rounded IEEE-754 `f64` operations
//! (`+ - * /`, `sqrt`), exact integer bit manipulation and exact
//! integer -> float conversions; no fused multiply-add, no platform libm, no
//! table look-up, no data-dependent branch. Rust never contracts `a * b + c`,
//! so the scalar, SSE2, AVX2 and NEON builds of this code compute the same
//! bits.
//!
//! # `ln u1`: [`ln_u1`]
//!
//! `u1 = m · 2^-53` with `m = (x >> 11) + 1` in `[1, 2^53]`. `m` is converted
//! to `f64` exactly with the `2^52` exponent trick (the 53rd bit is added
//! back as a constant), so no `u64 -> f64` conversion instruction is needed
//! (SSE2 and AVX2 have none). The logarithm is then **exactly the operation
//! sequence of `libm::log`** (FreeBSD's `e_log.c`: reduction of the mantissa
//! to `[√2/2, √2)`, `s = f / (2 + f)`, the degree-14 polynomial `Lg1..Lg7`,
//! `k ln2` split in two), minus its branches, which never fire on `(0, 1]`.
//! So `ln_u1` is bit-identical to `libm::log(u1)` for every `u1` (by
//! construction; tested),
//! its error is that of `libm::log`, below 1 ULP, and the radius
//! `r = sqrt(-2 ln u1)` is the very value the pre-vectorisation code
//! computed.
//!
//! # `sin, cos (2π u2)`: [`sincos_2pi_u2`]
//!
//! `u2 = j · 2^-53` with `j = y >> 11`. The angle is reduced **exactly** with
//! integer arithmetic on `j`: `j = q' · 2^51 + t` with the nearest quadrant
//! `q'` and `t` in `[-2^50, 2^50)`, so `2π u2 = q' · π/2 + φ` with
//! `φ = (π/2) · t · 2^-51` in `[-π/4, π/4)`. `φ` is formed as a double-double
//! `hi + lo` accurate to about 2^-78 relative (`π/2` split into a 27-bit head
//! and a tail; the head times the top 26 bits of `t · 2^-51` is exact), and
//! fed to FreeBSD's `__kernel_sin(hi, lo, 1)` / `__kernel_cos(hi, lo)`
//! polynomials (as in `libm`, approximation error below 2^-58). The quadrant
//! swaps and negates the results with bit masks.
//!
//! Unlike the pre-vectorisation code, which evaluated `libm::sincos` at the
//! rounded product `fl(2π · u2)`, this approximates `sin` and `cos` of the
//! exact angle `2π u2`.
//!
//! # Accuracy
//!
//! Against the correctly rounded values (ULP = unit in the last place of the
//! exact result):
//!
//! | quantity | bound | measured max |
//! |---|---|---|
//! | `ln u1` | < 1 ULP (`libm::log`'s bound) | 0.81 ULP |
//! | `sin 2πu2`, `cos 2πu2` | < 1 ULP | 0.78 ULP |
//! | outputs `r cos`, `r sin` | < 5 ULP, or 5 ulp(r) near a zero | 1.68 ULP |
//!
//! "Measured" is over 3·10^5 random pairs checked against mpmath at 256 bits
//! (`tools/box_muller_reference.py`) and, for `sin`/`cos`, 4.2·10^6 random
//! and 10^5 edge-case angles (quadrant and octant boundaries, tiny angles)
//! against a double-double Taylor series. The output bound is the sum of
//! the three relative errors (`r`: `ln`'s halved by the square root plus the
//! square root's rounding; `sin`/`cos`; the product's rounding). The tests
//! below keep checking: `ln` bit-identical to `libm::log` and within one
//! step of the correctly rounded `ln` (2^18 random and 2^15 edge values);
//! `sin`/`cos` below 0.8 ULP (2^17 random and 10^5 edge angles); and the
//! committed mpmath set (1175 pairs): `ln`, `sin`, `cos` within one step of
//! the correctly rounded value, outputs within two steps (or 2 ulp(r)).
//!
//! The old `fl(2π · u2)` angle was off by up to 2^-50.3 radians, so compared
//! to the pre-vectorisation values an output moves by at most
//! `r · 2^-50.3 + 5 ulp(z)` (measured: `r · 2^-50.3 + 0.23 ulp(z)`; 45 % of
//! the `f64` values and all of 2·10^6 `f32` values unchanged, see
//! `box_muller_agrees_with_the_libm_reference` in `tests/sampler.rs`).

/// Lanes of one block: pairs computed together by [`pairs`].
pub(super) const BLOCK: usize = 8;

/// Bits of `2^52`: OR-ing a `u64 < 2^52` into its mantissa gives `2^52 + v`.
const EXP_2P52: u64 = 0x4330_0000_0000_0000;
/// `2^52`.
const TWO_P52: f64 = 4_503_599_627_370_496.0;
/// `2^50`.
const TWO_P50: f64 = 1_125_899_906_842_624.0;
/// `2^-51`.
const TWO_M51: f64 = 1.0 / 2_251_799_813_685_248.0;
/// Low 52 bits.
const LOW52: u64 = (1 << 52) - 1;

// `libm::log` (FreeBSD e_log.c) constants, bit for bit.
/// `ln 2` head, 32 significant bits (`k · LN2_HI` is exact).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// `ln 2 - LN2_HI`.
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
const LG1: f64 = f64::from_bits(0x3fe5_5555_5555_5593);
const LG2: f64 = f64::from_bits(0x3fd9_9999_9997_fa04);
const LG3: f64 = f64::from_bits(0x3fd2_4924_9422_9359);
const LG4: f64 = f64::from_bits(0x3fcc_71c5_1d8e_78af);
const LG5: f64 = f64::from_bits(0x3fc7_4664_96cb_03de);
const LG6: f64 = f64::from_bits(0x3fc3_9a09_d078_c69f);
const LG7: f64 = f64::from_bits(0x3fc2_f112_df3e_5244);

// FreeBSD k_sin.c / k_cos.c constants (as in `libm`), bit for bit.
const S1: f64 = f64::from_bits(0xbfc5_5555_5555_5549);
const S2: f64 = f64::from_bits(0x3f81_1111_1110_f8a6);
const S3: f64 = f64::from_bits(0xbf2a_01a0_19c1_61d5);
const S4: f64 = f64::from_bits(0x3ec7_1de3_57b1_fe7d);
const S5: f64 = f64::from_bits(0xbe5a_e5e6_8a2b_9ceb);
const S6: f64 = f64::from_bits(0x3de5_d93a_5acf_d57c);
const C1: f64 = f64::from_bits(0x3fa5_5555_5555_554c);
const C2: f64 = f64::from_bits(0xbf56_c16c_16c1_5177);
const C3: f64 = f64::from_bits(0x3efa_01a0_19cb_1590);
const C4: f64 = f64::from_bits(0xbe92_7e4f_809c_52ad);
const C5: f64 = f64::from_bits(0x3e21_ee9e_bdb4_b1c4);
const C6: f64 = f64::from_bits(0xbda8_fae9_be88_38d4);

/// `π/2` rounded down to 27 significant bits (0x1.921fb54p+0), so that its
/// product with a 26-bit value is exact.
pub(super) const PIO2_HI: f64 = f64::from_bits(0x3ff9_21fb_5400_0000);
/// `π/2 - PIO2_HI` rounded to nearest (0x1.10b4611a62633p-30); the pair is
/// `π/2` to about 2^-86 relative.
pub(super) const PIO2_LO: f64 = f64::from_bits(0x3e11_0b46_11a6_2633);
/// Keeps the sign, the exponent and the top 25 stored mantissa bits: 26
/// significant bits.
const HEAD26: u64 = 0xffff_ffff_f800_0000;

/// `ln(u1)` for `u1 = ((x >> 11) + 1) · 2^-53`, bit-identical to
/// `libm::log(u1)`. Always finite, `<= 0`, `-0.0`-free (`ln 1 = +0`).
#[inline(always)]
pub(super) fn ln_u1(x: u64) -> f64 {
    // m = (x >> 11) + 1 in [1, 2^53], exactly: (2^52 + low52) plus either
    // 1 - 2^52 (bit 52 clear) or 1 (bit 52 set); both sums are exact.
    let k = x >> 11;
    let top = (k >> 52).wrapping_neg(); // all ones iff bit 52 is set
    let add = (top & 1.0f64.to_bits()) | (!top & (1.0 - TWO_P52).to_bits());
    let m = f64::from_bits(EXP_2P52 | (k & LOW52)) + f64::from_bits(add);
    // u1 = m · 2^-53: the same mantissa, the exponent lowered by 53 (exact,
    // u1 >= 2^-53 is normal).
    let ui = m.to_bits() - (53 << 52);

    // libm::log from here on, for a positive normal x that is not 1 (x = 1
    // also comes out as +0 here, as libm returns). Reduce x into
    // [√2/2, √2): the high-word arithmetic of e_log.c on the whole u64
    // (the low word is untouched, no carry crosses into it).
    let ix = ui + ((0x3ff0_0000 - 0x3fe6_a09e) << 32);
    let kbiased = ix >> 52; // k + 1023, in 970..=1023
    let xr = f64::from_bits((ix & 0x000f_ffff_ffff_ffff) + (0x3fe6_a09e << 32));
    // k as f64, exactly (the same trick).
    let dk = f64::from_bits(EXP_2P52 | kbiased) - (TWO_P52 + 1023.0);

    let f = xr - 1.0;
    let hfsq = 0.5 * f * f;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    let r = t2 + t1;
    s * (hfsq + r) + dk * LN2_LO - hfsq + f + dk * LN2_HI
}

/// `(sin φ, cos φ)` for `φ = hi + lo`, `|φ| <= π/4` (about), `|lo|` tiny:
/// FreeBSD's `__kernel_sin(hi, lo, 1)` and `__kernel_cos(hi, lo)`.
#[inline(always)]
fn kernel_sincos(x: f64, y: f64) -> (f64, f64) {
    let z = x * x;
    let w = z * z;
    // __kernel_sin, iy = 1.
    let r = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6);
    let v = z * x;
    let sin = x - ((z * (0.5 * y - v * r) - y) - v * S1);
    // __kernel_cos.
    let r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    let cos = w + (((1.0 - w) - hz) + (z * r - x * y));
    (sin, cos)
}

/// The reduced angle of `u2 = (y >> 11) · 2^-53`: the quadrant `q` (0..=3)
/// and `φ = 2π u2 - q π/2` in `[-π/4, π/4)` as a double-double `(hi, lo)`.
#[inline(always)]
pub(super) fn reduce_u2(y: u64) -> (u64, f64, f64) {
    let j = y >> 11; // u2 = j · 2^-53
    // Nearest quadrant: j + 2^50 = q' · 2^51 + (t + 2^50), t in [-2^50, 2^50).
    let jj = j + (1 << 50);
    let q = (jj >> 51) & 3;
    let t_plus = jj & ((1 << 51) - 1);
    // x = t · 2^-51 in [-1/2, 1/2), exactly (t_plus < 2^51).
    let x = (f64::from_bits(EXP_2P52 | t_plus) - (TWO_P52 + TWO_P50)) * TWO_M51;
    // φ = (π/2) x. The head product is exact (26 x 27 significant bits);
    // |xl · PIO2_HI + x · PIO2_LO| < 2^-24 |xh · PIO2_HI|, so the fast
    // two-sum below is valid.
    let xh = f64::from_bits(x.to_bits() & HEAD26);
    let xl = x - xh;
    let p0 = xh * PIO2_HI;
    let tail = xl * PIO2_HI + x * PIO2_LO;
    let hi = p0 + tail;
    let lo = tail - (hi - p0);
    (q, hi, lo)
}

/// `(sin 2π u2, cos 2π u2)` for `u2 = (y >> 11) · 2^-53`, each within 1 ULP
/// of the correctly rounded value. `|sin|, |cos| <= 1`.
#[inline(always)]
pub(super) fn sincos_2pi_u2(y: u64) -> (f64, f64) {
    let (q, hi, lo) = reduce_u2(y);
    let (s, c) = kernel_sincos(hi, lo);
    // q = 0: (s, c); 1: (c, -s); 2: (-s, -c); 3: (-c, s).
    let swap = (q & 1).wrapping_neg();
    let (sb, cb) = (s.to_bits(), c.to_bits());
    let sin_bits = (sb & !swap) | (cb & swap);
    let cos_bits = (cb & !swap) | (sb & swap);
    let sin_sign = (q >> 1) << 63;
    let cos_sign = (((q + 1) >> 1) & 1) << 63;
    (
        f64::from_bits(sin_bits ^ sin_sign),
        f64::from_bits(cos_bits ^ cos_sign),
    )
}

/// One Box-Muller pair `(r cos θ, r sin θ)` from the two words `x` (radius)
/// and `y` (angle).
#[inline(always)]
pub(super) fn pair(x: u64, y: u64) -> (f64, f64) {
    let r = super::box_muller_simd::sqrt(-2.0 * ln_u1(x));
    let (s, c) = sincos_2pi_u2(y);
    (r * c, r * s)
}

/// [`pair`] over a block of words: lane `i` is `pair(xs[i], ys[i])`, cosine
/// term in `c[i]`, sine term in `s[i]`. A straight loop over fixed arrays
/// with a branch-free body, which LLVM vectorises at the width of whatever
/// target features the caller is compiled with.
#[inline(always)]
pub(super) fn pairs(
    xs: &[u64; BLOCK],
    ys: &[u64; BLOCK],
    c: &mut [f64; BLOCK],
    s: &mut [f64; BLOCK],
) {
    for i in 0..BLOCK {
        let (a, b) = pair(xs[i], ys[i]);
        c[i] = a;
        s[i] = b;
    }
}

#[cfg(test)]
mod tests {
    use super::super::box_muller_simd::sqrt;
    use super::*;

    /// A double-double `hi + lo` (test reference arithmetic, about 2^-104).
    #[derive(Clone, Copy)]
    struct Dd(f64, f64);

    fn two_sum(a: f64, b: f64) -> Dd {
        let s = a + b;
        let bb = s - a;
        Dd(s, (a - (s - bb)) + (b - bb))
    }

    fn split(a: f64) -> (f64, f64) {
        let t = 134_217_729.0 * a;
        let hi = t - (t - a);
        (hi, a - hi)
    }

    fn two_prod(a: f64, b: f64) -> Dd {
        let p = a * b;
        let (ah, al) = split(a);
        let (bh, bl) = split(b);
        Dd(p, ((ah * bh - p) + ah * bl + al * bh) + al * bl)
    }

    fn add(a: Dd, b: Dd) -> Dd {
        let s = two_sum(a.0, b.0);
        let t = two_sum(a.1, b.1);
        let r = two_sum(s.0, s.1 + t.0);
        two_sum(r.0, r.1 + t.1)
    }

    fn mul(a: Dd, b: Dd) -> Dd {
        let p = two_prod(a.0, b.0);
        two_sum(p.0, p.1 + (a.0 * b.1 + a.1 * b.0))
    }

    /// `a / d` for a small exact integer `d`.
    fn div(a: Dd, d: f64) -> Dd {
        let q1 = a.0 / d;
        let p = two_prod(q1, d);
        let r = ((a.0 - p.0) - p.1) + a.1;
        two_sum(q1, r / d)
    }

    /// `π/2` as a double-double (0x1.921fb54442d18p+0 + 0x1.1a62633145c07p-54).
    const PIO2: Dd = Dd(
        f64::from_bits(0x3ff9_21fb_5444_2d18),
        f64::from_bits(0x3c91_a626_3314_5c07),
    );

    /// `(sin, cos)(2π j 2^-53)` to about 2^-100, as double-doubles: the
    /// quadrant from `j` with plain integer arithmetic, then Taylor series.
    fn reference_sincos(j: u64) -> (Dd, Dd) {
        #[allow(clippy::cast_possible_wrap)]
        let j = j as i64;
        let q = (j + (1 << 50)) >> 51; // 0..=4
        #[allow(clippy::cast_precision_loss)]
        let x = (j - (q << 51)) as f64 / 2_251_799_813_685_248.0; // exact
        let phi = mul(PIO2, Dd(x, 0.0));
        let z = mul(phi, phi);
        let (mut s, mut c) = (Dd(0.0, 0.0), Dd(0.0, 0.0));
        let (mut ts, mut tc) = (phi, Dd(1.0, 0.0));
        for k in 0..16 {
            s = add(s, ts);
            c = add(c, tc);
            let n = f64::from(2 * k + 2);
            let neg_z = Dd(-z.0, -z.1);
            ts = div(div(mul(ts, neg_z), n), n + 1.0);
            tc = div(div(mul(tc, neg_z), n - 1.0), n);
        }
        let neg = |d: Dd| Dd(-d.0, -d.1);
        match q & 3 {
            0 => (s, c),
            1 => (c, neg(s)),
            2 => (neg(s), neg(c)),
            _ => (neg(c), s),
        }
    }

    /// `|got - exact| / ulp(exact)`, `exact = e.0 + e.1` (normalised).
    fn ulp_error(got: f64, e: Dd) -> f64 {
        if e.0 == 0.0 {
            return if got == 0.0 { 0.0 } else { f64::INFINITY };
        }
        let a = e.0.abs();
        let ulp = f64::from_bits(a.to_bits() + 1) - a;
        ((got - e.0) - e.1).abs() / ulp
    }

    /// Distance in representable steps (`±0` are 0 apart).
    fn steps(a: f64, b: f64) -> u64 {
        #[allow(clippy::cast_possible_wrap)]
        let ord = |v: f64| {
            let b = v.to_bits() as i64;
            if b < 0 { -(b & i64::MAX) } else { b }
        };
        ord(a).abs_diff(ord(b))
    }

    /// A small deterministic word stream (splitmix64).
    fn words(seed: u64) -> impl Iterator<Item = u64> {
        let mut s = seed;
        core::iter::from_fn(move || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            Some(z ^ (z >> 31))
        })
    }

    /// `u1` exactly, for a word.
    #[allow(clippy::cast_precision_loss)]
    fn u1(x: u64) -> f64 {
        ((x >> 11) + 1) as f64 / 9_007_199_254_740_992.0
    }

    fn check_ln(x: u64) {
        let got = ln_u1(x);
        let u = u1(x);
        assert_eq!(got.to_bits(), libm::log(u).to_bits(), "ln({u:e})");
        assert!(steps(got, super::super::log::ln(u)) <= 1, "ln({u:e})");
        assert!(got <= 0.0 && got.is_finite(), "ln({u:e})");
    }

    #[test]
    fn constants() {
        // PIO2_HI has 27 significant bits and the pair is pi/2 to 2^-80.
        assert_eq!(PIO2_HI.to_bits() & ((1 << 26) - 1), 0);
        let lo = (PIO2.0 - PIO2_HI) + PIO2.1;
        assert_eq!(lo.to_bits(), PIO2_LO.to_bits());
    }

    #[test]
    fn ln_edge_cases_are_libm_log() {
        // u1 = 2^-53 (largest radius), u1 = 1 (ln = +0), around 1/2.
        for k in [
            0u64,
            1,
            2,
            (1 << 52) - 2,
            (1 << 52) - 1,
            1 << 52,
            (1 << 53) - 2,
            (1 << 53) - 1,
        ] {
            check_ln(k << 11);
            check_ln((k << 11) | 0x7ff);
        }
        assert_eq!(ln_u1(u64::MAX).to_bits(), 0, "ln 1 = +0");
        assert_eq!(
            sqrt(-2.0 * ln_u1(0)).to_bits(),
            0x4021_24b2_800e_da48,
            "sqrt(106 ln 2)"
        );
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn ln_is_libm_log_and_within_one_ulp() {
        let mut w = words(1);
        for _ in 0..1 << 18 {
            check_ln(w.next().unwrap());
        }
        // Every u1 near 1 (where ln is smallest) and near 2^-53.
        for k in 0..1 << 14 {
            check_ln(((1u64 << 53) - 1 - k) << 11);
            check_ln(k << 11);
        }
    }

    #[test]
    fn quadrant_points_are_exact() {
        // u2 = 0, 1/4, 1/2, 3/4: (sin, cos) exactly (0, 1), (1, -0),
        // (-0, -1), (-1, 0).
        let want = [(0.0, 1.0), (1.0, -0.0), (-0.0, -1.0), (-1.0, 0.0)];
        for (q, (s, c)) in want.into_iter().enumerate() {
            let (gs, gc) = sincos_2pi_u2((q as u64) << 62);
            assert_eq!(
                (gs.to_bits(), gc.to_bits()),
                (f64::to_bits(s), f64::to_bits(c)),
                "q {q}"
            );
        }
    }

    fn check_sincos(j: u64, worst: &mut f64) {
        let (s, c) = sincos_2pi_u2(j << 11);
        let (rs, rc) = reference_sincos(j);
        let es = ulp_error(s, rs);
        let ec = ulp_error(c, rc);
        assert!(es < 1.0 && ec < 1.0, "j {j:#x}: sin err {es}, cos err {ec}");
        assert!(s.abs() <= 1.0 && c.abs() <= 1.0);
        *worst = worst.max(es).max(ec);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn sincos_is_within_one_ulp_of_a_double_double_reference() {
        let mut worst = 0.0f64;
        let mut w = words(2);
        for _ in 0..1 << 17 {
            check_sincos(w.next().unwrap() >> 11, &mut worst);
        }
        // Around every quadrant and octant boundary, and tiny angles.
        for base in (0..8u64).map(|o| o << 50) {
            for d in (0..1 << 10).chain((0..40).map(|e| 1u64 << e)) {
                check_sincos((base + d) & ((1 << 53) - 1), &mut worst);
                check_sincos(base.wrapping_sub(d) & ((1 << 53) - 1), &mut worst);
            }
        }
        assert!(worst < 0.8, "worst {worst}");
    }

    /// `tests/data/box_muller_reference.bin` (tools/box_muller_reference.py):
    /// words `x, y`, then the correctly rounded `ln u1`, `sin`, `cos`,
    /// `r cos`, `r sin` (mpmath, 256 bits).
    #[test]
    fn mpmath_reference_values() {
        let data = include_bytes!("../../tests/data/box_muller_reference.bin");
        assert_eq!(data.len() % 56, 0);
        let records = if cfg!(miri) { 64 } else { data.len() / 56 };
        let mut reference_ok = 0;
        for rec in data.chunks_exact(56).take(records) {
            let w: [u64; 7] = core::array::from_fn(|i| {
                u64::from_le_bytes(rec[8 * i..8 * i + 8].try_into().unwrap())
            });
            let [x, y, ln, s, c, a, b] = w.map(f64::from_bits);
            let (x, y) = (x.to_bits(), y.to_bits());
            // ln and sin/cos: faithful (the correctly rounded value or a
            // neighbour of it).
            assert!(steps(ln_u1(x), ln) <= 1, "{x:#x}");
            let (gs, gc) = sincos_2pi_u2(y);
            assert!(steps(gs, s) <= 1 && steps(gc, c) <= 1, "{y:#x}");
            // The double-double reference agrees with mpmath.
            let (rs, rc) = reference_sincos(y >> 11);
            if (rs.0 + rs.1, rc.0 + rc.1) == (s, c) {
                reference_ok += 1;
            }
            // The outputs: within 2 ULP of the correctly rounded value, or
            // 2 ulp(r) near a zero of sin/cos.
            let (ga, gb) = pair(x, y);
            let r = sqrt(-2.0 * ln);
            let ulp_r = f64::from_bits(r.to_bits() + 1) - r;
            for (g, want) in [(ga, a), (gb, b)] {
                assert!(
                    steps(g, want) <= 2 || (g - want).abs() <= 2.0 * ulp_r,
                    "{x:#x} {y:#x}: {g:e} vs {want:e}"
                );
            }
        }
        assert_eq!(reference_ok, records, "double-double reference vs mpmath");
    }

    /// The square root used where the target has no SIMD one (`libm::sqrt`,
    /// e.g. on thumbv7em, riscv32, wasm32) gives the same bits.
    #[test]
    fn libm_sqrt_is_the_intrinsic_sqrt() {
        let mut w = words(4);
        let n = if cfg!(miri) { 64 } else { 1 << 16 };
        for i in 0..n {
            // -2 ln u1 is in [0, 73.5]; also any finite positive double.
            let v = if i % 2 == 0 {
                -2.0 * ln_u1(w.next().unwrap())
            } else {
                f64::from_bits((w.next().unwrap() >> 1) % 0x7ff0_0000_0000_0000)
            };
            assert_eq!(sqrt(v).to_bits(), libm::sqrt(v).to_bits(), "{v:e}");
        }
    }

    #[test]
    fn block_lanes_equal_the_scalar_pair() {
        let mut w = words(3);
        for _ in 0..8 {
            let xs: [u64; BLOCK] = core::array::from_fn(|_| w.next().unwrap());
            let ys: [u64; BLOCK] = core::array::from_fn(|_| w.next().unwrap());
            let (mut c, mut s) = ([0.0; BLOCK], [0.0; BLOCK]);
            pairs(&xs, &ys, &mut c, &mut s);
            for i in 0..BLOCK {
                let (a, b) = pair(xs[i], ys[i]);
                assert_eq!((a.to_bits(), b.to_bits()), (c[i].to_bits(), s[i].to_bits()));
            }
        }
    }
}
