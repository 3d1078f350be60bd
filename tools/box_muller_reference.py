#!/usr/bin/env python3
"""Box-Muller fixtures for crates/stylemap-core/tests/ (the xoshiro stream).

Writes two kinds of files into crates/stylemap-core/tests/data/:

* ``box_muller_seed{seed}_n513.f64`` / ``.f32``: golden vectors,
  ``fill_box_muller_f64`` / ``fill_box_muller`` over
  ``Xoshiro256PlusPlus::seed_from_u64(seed)`` for 513 values, raw
  little-endian. Shorter fills (1, 2, 511, 512) are prefixes. They are
  produced by an **independent Python implementation** of the stream:
  xoshiro256++ seeded through splitmix64, and the exact sequence of IEEE-754
  double operations of ``sampler/box_muller_math.rs`` (Python floats are
  IEEE doubles, every ``+ - * /`` and ``math.sqrt`` is correctly rounded, and
  Python never fuses), so the bits must agree with Rust's on every target.

* ``box_muller_reference.bin``: accuracy reference, computed with mpmath at
  256 bits and rounded to nearest double. For each of its records (1024
  pseudo-random word pairs, then edge cases: quadrant and octant
  boundaries, tiny angles, u1 near 0, 1/2 and 1) seven little-endian u64:
  ``x, y`` (the two RNG words), then the correctly rounded
  ``ln(u1)``, ``sin(2 pi u2)``, ``cos(2 pi u2)``,
  ``sqrt(-2 ln u1) cos(2 pi u2)``, ``sqrt(-2 ln u1) sin(2 pi u2)`` as f64
  bits, with ``u1 = ((x >> 11) + 1) 2^-53`` and ``u2 = (y >> 11) 2^-53``.

Usage (from anywhere):  python3 tools/box_muller_reference.py
It also prints the worst errors of the emulated computation against mpmath
(for a larger sample, raise the 1024 in ``reference_points``; 3e5 pairs gave
0.81 / 0.75 / 0.75 / 1.68 / 1.68 ULP for ln / sin / cos / r cos / r sin).
Rerunning writes the same bytes.
Needs mpmath (tested with 1.3.0); CI does not run it.
"""

import math
import pathlib
import struct

import mpmath

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "crates" / "stylemap-core" / "tests" / "data"

SEEDS = [0, 1, 42, 2**64 - 1]
N = 513
M64 = (1 << 64) - 1


def f2b(v):
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def b2f(b):
    return struct.unpack("<d", struct.pack("<Q", b & M64))[0]


# ---------------------------------------------------------------------------
# RNG: rand_xoshiro 0.8 Xoshiro256PlusPlus::seed_from_u64
# ---------------------------------------------------------------------------


def splitmix64(state):
    while True:
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        yield z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


def xoshiro256pp(seed):
    sm = splitmix64(seed)
    s = [next(sm) for _ in range(4)]
    while True:
        result = (rotl((s[0] + s[3]) & M64, 23) + s[0]) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        yield result


# ---------------------------------------------------------------------------
# The Rust arithmetic, operation by operation (box_muller_math.rs)
# ---------------------------------------------------------------------------

EXP_2P52 = 0x4330000000000000
TWO_P52 = 2.0**52
TWO_P50 = 2.0**50
TWO_M51 = 2.0**-51
LOW52 = (1 << 52) - 1

LN2_HI = b2f(0x3FE62E42FEE00000)
LN2_LO = b2f(0x3DEA39EF35793C76)
LG = [b2f(b) for b in (
    0x3FE5555555555593, 0x3FD999999997FA04, 0x3FD2492494229359,
    0x3FCC71C51D8E78AF, 0x3FC7466496CB03DE, 0x3FC39A09D078C69F,
    0x3FC2F112DF3E5244,
)]
S = [b2f(b) for b in (
    0xBFC5555555555549, 0x3F8111111110F8A6, 0xBF2A01A019C161D5,
    0x3EC71DE357B1FE7D, 0xBE5AE5E68A2B9CEB, 0x3DE5D93A5ACFD57C,
)]
C = [b2f(b) for b in (
    0x3FA555555555554C, 0xBF56C16C16C15177, 0x3EFA01A019CB1590,
    0xBE927E4F809C52AD, 0x3E21EE9EBDB4B1C4, 0xBDA8FAE9BE8838D4,
)]
PIO2_HI = b2f(0x3FF921FB54000000)
PIO2_LO = b2f(0x3E110B4611A62633)
HEAD26 = 0xFFFFFFFFF8000000


def ln_u1(x):
    k = x >> 11
    top = (-(k >> 52)) & M64
    add = (top & f2b(1.0)) | (~top & M64 & f2b(1.0 - TWO_P52))
    m = b2f(EXP_2P52 | (k & LOW52)) + b2f(add)
    ui = f2b(m) - (53 << 52)
    ix = ui + ((0x3FF00000 - 0x3FE6A09E) << 32)
    kbiased = ix >> 52
    xr = b2f((ix & 0x000FFFFFFFFFFFFF) + (0x3FE6A09E << 32))
    dk = b2f(EXP_2P52 | kbiased) - (TWO_P52 + 1023.0)
    f = xr - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (LG[1] + w * (LG[3] + w * LG[5]))
    t2 = z * (LG[0] + w * (LG[2] + w * (LG[4] + w * LG[6])))
    r = t2 + t1
    return s * (hfsq + r) + dk * LN2_LO - hfsq + f + dk * LN2_HI


def kernel_sincos(x, y):
    z = x * x
    w = z * z
    r = S[1] + z * (S[2] + z * S[3]) + z * w * (S[4] + z * S[5])
    v = z * x
    sin = x - ((z * (0.5 * y - v * r) - y) - v * S[0])
    r = z * (C[0] + z * (C[1] + z * C[2])) + w * w * (C[3] + z * (C[4] + z * C[5]))
    hz = 0.5 * z
    w = 1.0 - hz
    cos = w + (((1.0 - w) - hz) + (z * r - x * y))
    return sin, cos


def sincos_2pi_u2(y):
    j = y >> 11
    jj = j + (1 << 50)
    q = (jj >> 51) & 3
    t_plus = jj & ((1 << 51) - 1)
    x = (b2f(EXP_2P52 | t_plus) - (TWO_P52 + TWO_P50)) * TWO_M51
    xh = b2f(f2b(x) & HEAD26)
    xl = x - xh
    p0 = xh * PIO2_HI
    tail = xl * PIO2_HI + x * PIO2_LO
    hi = p0 + tail
    lo = tail - (hi - p0)
    s, c = kernel_sincos(hi, lo)
    swap = (-(q & 1)) & M64
    sb, cb = f2b(s), f2b(c)
    sin_bits = (sb & ~swap & M64) | (cb & swap)
    cos_bits = (cb & ~swap & M64) | (sb & swap)
    sin_sign = (q >> 1) << 63
    cos_sign = (((q + 1) >> 1) & 1) << 63
    return b2f(sin_bits ^ sin_sign), b2f(cos_bits ^ cos_sign)


def pair(x, y):
    r = math.sqrt(-2.0 * ln_u1(x))
    s, c = sincos_2pi_u2(y)
    return r * c, r * s


def fill(seed, n):
    rng = xoshiro256pp(seed)
    out = []
    while len(out) < n:
        x = next(rng)
        y = next(rng)
        a, b = pair(x, y)
        out += [a, b]
    return out[:n]


# ---------------------------------------------------------------------------
# mpmath reference
# ---------------------------------------------------------------------------


def reference_points():
    pts = []
    sm = splitmix64(0x5EED_B0C5)
    for _ in range(1024):
        pts.append((next(sm), next(sm)))
    # y: j = y >> 11 at quadrant/octant boundaries and tiny reduced angles.
    js = []
    for q in range(4):
        base = q << 51
        for d in (0, 1, 2, 3, 1000, 2**20, 2**26 - 1, 2**26, 2**27 + 5):
            js += [base + d, base - d]
        for o in (1 << 50, 3 << 50):  # octant boundaries, |phi| = pi/4
            for d in (0, 1, 2, 12345):
                js += [base + o + d, base + o - d]
    js = [j % (1 << 53) for j in js] + [(1 << 53) - 1, (1 << 53) - 2]
    # x: k = x >> 11 (u1 = (k + 1) 2^-53): smallest, near 1/2, near 1.
    ks = [0, 1, 2, 3, 2**52 - 2, 2**52 - 1, 2**52, 2**52 + 1,
          2**53 - 3, 2**53 - 2, 2**53 - 1, 2**26, 12345]
    sm = splitmix64(0xED6E)
    for i, j in enumerate(js):
        pts.append((next(sm), (j << 11) | (i & 0x7FF)))
    for k in ks:
        pts.append(((k << 11) | 0x3FF, next(sm)))
    return pts


def rn(v):
    """mpf -> nearest double (mpmath rounds to nearest at 53 bits)."""
    return float(v)


def reference(x, y):
    u1 = mpmath.mpf((x >> 11) + 1) / 2**53
    u2 = mpmath.mpf(y >> 11) / 2**53
    ln = mpmath.log(u1)
    # sinpi / cospi: exact zeros and ones at multiples of 1/4 turn.
    s, c = mpmath.sinpi(2 * u2), mpmath.cospi(2 * u2)
    r = mpmath.sqrt(-2 * ln)
    exact = [ln, s, c, r * c, r * s]
    return [rn(v) for v in exact], exact


def main():
    mpmath.mp.prec = 256
    DATA.mkdir(parents=True, exist_ok=True)
    for seed in SEEDS:
        v = fill(seed, N)
        (DATA / f"box_muller_seed{seed}_n{N}.f64").write_bytes(struct.pack(f"<{N}d", *v))
        (DATA / f"box_muller_seed{seed}_n{N}.f32").write_bytes(struct.pack(f"<{N}f", *v))
        print(f"seed {seed}: first {v[0]!r}, last {v[-1]!r}")

    names = ["ln u1", "sin", "cos", "r cos", "r sin"]
    steps = [0.0] * 5  # distance to the correctly rounded value, in ulps
    error = [0.0] * 5  # |computed - exact| / ulp(exact)
    out = bytearray()
    for x, y in reference_points():
        ref, exact = reference(x, y)
        out += struct.pack("<2Q", x, y) + struct.pack("<5d", *ref)
        s, c = sincos_2pi_u2(y)
        a, b = pair(x, y)
        r = math.sqrt(-2.0 * ln_u1(x))
        got = [ln_u1(x), s, c, a, b]
        for i in range(5):
            d = abs(got[i] - ref[i])
            e = float(abs(mpmath.mpf(got[i]) - exact[i]))
            if ref[i] != 0.0:
                d_ulp, e_ulp = d / math.ulp(ref[i]), e / math.ulp(ref[i])
            else:
                d_ulp = e_ulp = 0.0 if got[i] == 0.0 else math.inf
            if i >= 3 and r:  # outputs: relative to r near zeros of sin/cos
                d_ulp = min(d_ulp, d / math.ulp(r))
                e_ulp = min(e_ulp, e / math.ulp(r))
            steps[i] = max(steps[i], d_ulp)
            error[i] = max(error[i], e_ulp)
    (DATA / "box_muller_reference.bin").write_bytes(bytes(out))
    print(f"{len(out) // 56} reference records; worst over them:")
    for n, d, e in zip(names, steps, error):
        print(f"  {n:6}: {e:.3f} ulp from the exact value, {d:.0f} ulp from the rounded one")


if __name__ == "__main__":
    main()
