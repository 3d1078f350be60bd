//! The AMX instructions themselves: detection (CPUID, XCR0 and Linux's
//! per-process permission), the tile loop and the activation split.
//!
//! Rust has no stable AMX intrinsics, so the tile loop is one `asm!` block
//! that loads its own tile configuration and releases the tiles before it
//! returns: no tile state lives across blocks or calls.
#![allow(unsafe_code)]

use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

use core::arch::x86_64::*;

use super::{BLOCK_ROWS, CHUNK, PAIR_U32, TILE_U32};
use crate::spec::Activation;

/// 0: not checked yet, 1: unavailable, 2: available.
static STATE: AtomicU8 = AtomicU8::new(0);

/// Whether AMX-BF16 tiles (and AVX-512F/BW/BF16 for the split) can run in this
/// process. The first call asks Linux for the tile data permission
/// (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, process-wide);
/// the answer is cached.
pub(super) fn available() -> bool {
    match STATE.load(Ordering::Relaxed) {
        2 => true,
        1 => false,
        _ => {
            let ok = detect();
            STATE.store(if ok { 2 } else { 1 }, Ordering::Relaxed);
            ok
        }
    }
}

fn detect() -> bool {
    // CPUID.(7,0): EDX bit 22 AMX-BF16, bit 24 AMX-TILE; EBX bit 16
    // AVX512F, bit 30 AVX512BW; CPUID.(7,1): EAX bit 5 AVX512_BF16.
    // CPUID.1:ECX bit 27 OSXSAVE (XGETBV usable).
    let leaf1 = core::arch::x86_64::__cpuid(1);
    if leaf1.ecx & (1 << 27) == 0 || core::arch::x86_64::__get_cpuid_max(0).0 < 7 {
        return false;
    }
    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
    let amx = leaf7.edx & (1 << 22) != 0 && leaf7.edx & (1 << 24) != 0;
    let avx512 = leaf7.ebx & (1 << 16) != 0
        && leaf7.ebx & (1 << 30) != 0
        && leaf7.eax >= 1
        && core::arch::x86_64::__cpuid_count(7, 1).eax & (1 << 5) != 0;
    if !amx || !avx512 {
        return false;
    }
    let xcr0 = xgetbv0();
    // x87/SSE/AVX (bits 1, 2), opmask/ZMM (5, 6, 7), XTILECFG/XTILEDATA (17, 18).
    let need = (1 << 1) | (1 << 2) | (7 << 5) | (3 << 17);
    xcr0 & need == need && request_tile_permission()
}

fn xgetbv0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: XGETBV with ECX = 0 reads XCR0; `detect` calls it only after
    // CPUID reported OSXSAVE, which makes the instruction valid in user mode.
    unsafe {
        asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi,
             options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

#[cfg(target_os = "linux")]
fn request_tile_permission() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM) only changes the process's
    // permission to use tile data; it reads no memory of ours. The syscall
    // instruction clobbers rcx and r11, declared here.
    unsafe {
        asm!("syscall",
             inlateout("rax") SYS_ARCH_PRCTL => ret,
             in("rdi") ARCH_REQ_XCOMP_PERM,
             in("rsi") XFEATURE_XTILEDATA,
             lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    ret == 0
}

/// Other kernels either enable AMX for every process or not at all; without
/// a way to ask, do not use it.
#[cfg(not(target_os = "linux"))]
fn request_tile_permission() -> bool {
    false
}

/// The tile configuration: palette 1, all eight tiles 16 rows x 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

const CONFIG: TileConfig = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = 64;
        c[48 + t] = 16;
        t += 1;
    }
    TileConfig(c)
};

/// `C += A Bᵀ` over `chunks` chunks of 32 `k`, for `group` blocks of 32
/// rows and `n_pairs` blocks of 32 columns, with the six bf16 products of
/// the three-way split (see [`super`]). Each column block runs on every
/// row block in turn, so its weights are read from memory once per group;
/// one call configures the tiles once (`ldtilecfg` and `tilerelease` wait
/// for every tile operation in flight).
///
/// - `a`: the row blocks' split activations, block `r` at `r * a_group`
///   u32, each `chunks * PAIR_U32` u32 laid out
///   `[chunk][part][half][16 rows][16 pairs]`;
/// - `b`: the first column block's weights at the first chunk; column block
///   `j` starts `j * b_pair_stride` u32 later, same layout per chunk;
/// - `c`: row block `r` at `r * c_group` f32, each 32 rows of `c_stride`
///   f32, column block `j` at `32 * j`.
///
/// With `zero`, the accumulators start at zero instead of `c`'s contents.
///
/// Panics (before any tile instruction) if a slice is too short; the caller
/// must have checked [`available`].
pub(super) fn tile_block(
    (a, a_group): (&[u32], usize),
    b: &[u32],
    b_pair_stride: usize,
    (c, c_group): (&mut [f32], usize),
    c_stride: usize,
    (group, n_pairs, chunks): (usize, usize, usize),
    zero: bool,
) {
    if group == 0 || n_pairs == 0 || chunks == 0 {
        return;
    }
    assert!(available());
    assert!(a_group >= chunks * PAIR_U32 || group == 1);
    assert!(a.len() >= (group - 1) * a_group + chunks * PAIR_U32);
    assert!(b.len() >= (n_pairs - 1) * b_pair_stride + chunks * PAIR_U32);
    assert!(c_stride >= 32 * n_pairs);
    assert!(c_group >= 32 * c_stride || group == 1);
    assert!(c.len() >= (group - 1) * c_group + 31 * c_stride + 32 * n_pairs);
    debug_assert_eq!(PAIR_U32, 6 * TILE_U32);
    let cfg = &CONFIG;
    // Read by the loop from memory: it has no register to spare. Byte
    // strides; the last two rewind a group.
    let prm: [usize; 8] = [
        chunks,
        b_pair_stride * 4,
        usize::from(zero),
        group,
        a_group * 4,
        c_group * 4,
        group * a_group * 4,
        group * c_group * 4,
    ];
    // SAFETY: AMX-BF16 is available and permitted (`available`). Every tile
    // access is in bounds by the asserts above: for row block `r < group`,
    // A tiles read `a[r * a_group ..][.. chunks * PAIR_U32]`, C tiles rows
    // `0..32` of `c_stride` from `c[r * c_group ..]` at columns
    // `32 j .. 32 j + 32` (not read with `zero`); B tiles read
    // `b[j * b_pair_stride + ..]` for `j < n_pairs` up to
    // `chunks * PAIR_U32` each. The look-ahead loads of the last chunk
    // reload that chunk. Tiles are configured, used and released inside
    // this one block.
    unsafe {
        asm!(
            "ldtilecfg [{k}]",
            "mov {s:e}, 64",
            "2:",
            "mov {r}, [{prm} + 24]",
            "8:",
            // C tiles: rows 0-15 at c, rows 16-31 at c + 16 * c_stride;
            // tmm0 = rows 0-15 x cols 0-15, tmm1 = cols 16-31, tmm2/3 rows 16-31.
            "cmp qword ptr [{prm} + 16], 0",
            "je 6f",
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "jmp 7f",
            "6:",
            "mov {pa}, {cs}",
            "shl {pa}, 4",
            "add {pa}, {c}",
            "tileloadd tmm0, [{c} + {cs}]",
            "tileloadd tmm1, [{c} + {cs} + 64]",
            "tileloadd tmm2, [{pa} + {cs}]",
            "tileloadd tmm3, [{pa} + {cs} + 64]",
            "7:",
            // A tiles tmm4/5 (rows 0-15 / 16-31), B tiles tmm6/7 (cols
            // 0-15 / 16-31); each chunk runs the six products, loading a
            // tile as soon as the last product reading its register is
            // issued (tiles are not renamed).
            "mov {pa}, {a}",
            "mov {pb}, {b}",
            "mov {k}, [{prm}]",
            "tileloadd tmm4, [{pa} + {s}]",
            "tileloadd tmm5, [{pa} + {s} + 1024]",
            "tileloadd tmm6, [{pb} + {s}]",
            "tileloadd tmm7, [{pb} + {s} + 1024]",
            "3:",
            // x0 w0, then load w1 as each B tile is done with
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tileloadd tmm6, [{pb} + {s} + 2048]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "tileloadd tmm7, [{pb} + {s} + 3072]",
            // x0 w1, then w2
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tileloadd tmm6, [{pb} + {s} + 4096]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "tileloadd tmm7, [{pb} + {s} + 5120]",
            // x0 w2, then x1 and w1
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm4, [{pa} + {s} + 2048]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tileloadd tmm6, [{pb} + {s} + 2048]",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "tileloadd tmm5, [{pa} + {s} + 3072]",
            "tileloadd tmm7, [{pb} + {s} + 3072]",
            // x1 w1, then w0
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tileloadd tmm6, [{pb} + {s}]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "tileloadd tmm7, [{pb} + {s} + 1024]",
            // x1 w0, then x2
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm4, [{pa} + {s} + 4096]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "tileloadd tmm5, [{pa} + {s} + 5120]",
            // the next chunk (this one again on the last: a harmless reload)
            "mov {na}, {pa}",
            "mov {nb}, {pb}",
            "add {pa}, 6144",
            "add {pb}, 6144",
            "cmp {k}, 1",
            "cmovne {na}, {pa}",
            "cmovne {nb}, {pb}",
            // x2 w0, then x0 and w0 of the next chunk
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm4, [{na} + {s}]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tileloadd tmm6, [{nb} + {s}]",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "tileloadd tmm5, [{na} + {s} + 1024]",
            "tileloadd tmm7, [{nb} + {s} + 1024]",
            "dec {k}",
            "jnz 3b",
            "mov {pa}, {cs}",
            "shl {pa}, 4",
            "add {pa}, {c}",
            "tilestored [{c} + {cs}], tmm0",
            "tilestored [{c} + {cs} + 64], tmm1",
            "tilestored [{pa} + {cs}], tmm2",
            "tilestored [{pa} + {cs} + 64], tmm3",
            // the next row block of the group, then rewind
            "add {a}, [{prm} + 32]",
            "add {c}, [{prm} + 40]",
            "dec {r}",
            "jnz 8b",
            "sub {a}, [{prm} + 48]",
            "sub {c}, [{prm} + 56]",
            "add {c}, 128",
            "add {b}, [{prm} + 8]",
            "dec {np}",
            "jnz 2b",
            "tilerelease",
            prm = in(reg) prm.as_ptr(),
            a = inout(reg) a.as_ptr() => _,
            b = inout(reg) b.as_ptr() => _,
            c = inout(reg) c.as_mut_ptr() => _,
            cs = in(reg) c_stride * 4,
            np = inout(reg) n_pairs => _,
            k = inout(reg) cfg.0.as_ptr() => _,
            pa = out(reg) _,
            pb = out(reg) _,
            na = out(reg) _,
            nb = out(reg) _,
            s = out(reg) _,
            r = out(reg) _,
            options(nostack),
        );
    }
}

/// Splits rows `0..rows` of `x [rows, inp]` into the three bf16 parts of
/// the activation layout for the chunks from `k0` (as many as `dst` holds,
/// `dst.len() / PAIR_U32`); rows past `rows` and `k` past `inp` are zeros.
/// Same parts as [`super::split3`], 32 values at a time.
pub(super) fn split_block(x: &[f32], inp: usize, rows: usize, k0: usize, dst: &mut [u32]) {
    assert!(available());
    assert!(rows <= BLOCK_ROWS && x.len() >= rows * inp);
    // SAFETY: AVX-512F, BW and BF16 are part of `available`.
    unsafe { split_block_avx512(x, inp, rows, k0, dst) }
}

/// The three parts of 32 values (`lo` then `hi`) in the tile pair layout,
/// with `vcvtne2ps2bf16`, or `None` if a value needs [`bf16_hi`]'s care.
///
/// The instruction rounds to nearest even like [`super::split3`] but reads
/// subnormal inputs as zero and rounds to infinity. Neither happens when
/// every value is 0 or `2^-103 <= |v| < 0x7f7f_8000` (bits): the residuals
/// are then multiples of `ulp(v) >= 2^-126`, so 0 or normal, and nothing
/// rounds past the largest bf16. The parts are then `split3`'s, bit for bit.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn split_fast(lo: __m512, hi: __m512) -> Option<[__m512i; 3]> {
    const SMALLEST: i32 = 0x0c00_0000; // 2^-103
    const RANGE: i32 = 0x7f7f_8000 - SMALLEST;
    let abs = _mm512_set1_epi32(0x7fff_ffff);
    let outside = |v: __m512| {
        let a = _mm512_and_si512(_mm512_castps_si512(v), abs);
        let off = _mm512_sub_epi32(a, _mm512_set1_epi32(SMALLEST));
        _mm512_cmpge_epu32_mask(off, _mm512_set1_epi32(RANGE)) & _mm512_test_epi32_mask(a, a)
    };
    if outside(lo) | outside(hi) != 0 {
        return None;
    }
    // The f32 values of the 32 bf16 of `p` (words 0-15 and 16-31).
    let widen = |p: __m512i| {
        let w0 = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(p));
        let w1 = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64::<1>(p));
        (
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(w0)),
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(w1)),
        )
    };
    // Words 0-15 from the second operand, 16-31 from the first: the pair
    // layout's order of `k`.
    let part = |l: __m512, h: __m512| -> __m512i {
        // SAFETY: both are 512-bit vectors of plain bits; no intrinsic casts
        // the bf16 vector type.
        unsafe { core::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(h, l)) }
    };
    let p0 = part(lo, hi);
    let (l0, h0) = widen(p0);
    let (lr, hr) = (_mm512_sub_ps(lo, l0), _mm512_sub_ps(hi, h0));
    let p1 = part(lr, hr);
    let (l1, h1) = widen(p1);
    let p2 = part(_mm512_sub_ps(lr, l1), _mm512_sub_ps(hr, h1));
    Some([p0, p1, p2])
}

#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn split_block_avx512(x: &[f32], inp: usize, rows: usize, k0: usize, dst: &mut [u32]) {
    for (c, chunk) in dst.chunks_exact_mut(PAIR_U32).enumerate() {
        let kc = k0 + c * CHUNK;
        for r in 0..BLOCK_ROWS {
            let (lo, hi) = if r < rows && kc < inp {
                let row = &x[r * inp + kc..(r + 1) * inp];
                (load_part(row, 0), load_part(row, 16))
            } else {
                (_mm512_setzero_ps(), _mm512_setzero_ps())
            };
            let (half, row) = (r / 16, r % 16);
            let parts = split_fast(lo, hi).unwrap_or_else(|| split_exact(lo, hi));
            for (p, v) in parts.into_iter().enumerate() {
                let at = (p * 2 + half) * TILE_U32 + row * 16;
                let out: &mut [u32; 16] = (&mut chunk[at..at + 16]).try_into().unwrap();
                // SAFETY: `out` is 16 u32 = 64 bytes; unaligned store.
                unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), v) };
            }
        }
    }
}

/// The three parts of 32 values with [`bf16_hi`]: any finite or
/// non-finite value, subnormals kept.
#[target_feature(enable = "avx512f,avx512bw")]
fn split_exact(lo: __m512, hi: __m512) -> [__m512i; 3] {
    // Word m of a pair vector is the high half of value m: word 2m + 1 of
    // the two source vectors taken together.
    let pick = _mm512_set_epi16(
        63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29, 27, 25, 23, 21, 19,
        17, 15, 13, 11, 9, 7, 5, 3, 1,
    );
    let (l0, h0) = (bf16_hi(lo), bf16_hi(hi));
    let (lr, hr) = (
        _mm512_sub_ps(lo, _mm512_castsi512_ps(l0)),
        _mm512_sub_ps(hi, _mm512_castsi512_ps(h0)),
    );
    let (l1, h1) = (bf16_hi(lr), bf16_hi(hr));
    let (l2, h2) = (
        bf16_hi(_mm512_sub_ps(lr, _mm512_castsi512_ps(l1))),
        bf16_hi(_mm512_sub_ps(hr, _mm512_castsi512_ps(h1))),
    );
    [(l0, h0), (l1, h1), (l2, h2)].map(|(l, h)| _mm512_permutex2var_epi16(l, pick, h))
}

/// Up to 16 floats of `row` from `at` (zeros past its end).
#[target_feature(enable = "avx512f")]
fn load_part(row: &[f32], at: usize) -> __m512 {
    let n = row.len().saturating_sub(at).min(16);
    let mask: __mmask16 = if n == 16 { !0 } else { (1u16 << n) - 1 };
    let p = row[at.min(row.len())..].as_ptr();
    // SAFETY: the mask enables only the `n` lanes inside `row`.
    unsafe { _mm512_maskz_loadu_ps(mask, p) }
}

/// [`super::bf16_hi`] on 16 lanes: rounded to bf16 (nearest even) as f32
/// bits, truncated where the value is not finite or would round to infinity.
#[target_feature(enable = "avx512f")]
fn bf16_hi(v: __m512) -> __m512i {
    let b = _mm512_castps_si512(v);
    let hi = _mm512_set1_epi32(0xffff_0000u32 as i32);
    let exp = _mm512_set1_epi32(0x7f80_0000);
    let lsb = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
    let bias = _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff));
    let r = _mm512_and_si512(_mm512_add_epi32(b, bias), hi);
    let finite = _mm512_cmpneq_epi32_mask(_mm512_and_si512(b, exp), exp);
    let no_inf = _mm512_cmpneq_epi32_mask(_mm512_and_si512(r, exp), exp);
    _mm512_mask_blend_epi32(finite & no_inf, _mm512_and_si512(b, hi), r)
}

/// `y[r, :] = act(acc[r, :out] + bias)` for the `y.len() / out` rows.
pub(super) fn epilogue_block(
    acc: &[f32],
    stride: usize,
    bias: &[f32],
    act: Activation,
    y: &mut [f32],
) {
    assert!(available());
    // SAFETY: AVX-512F is part of `available`.
    unsafe { epilogue_block_avx512(acc, stride, bias, act, y) }
}

#[target_feature(enable = "avx512f")]
fn epilogue_block_avx512(acc: &[f32], stride: usize, bias: &[f32], act: Activation, y: &mut [f32]) {
    let out = bias.len();
    for (yr, ar) in y.chunks_exact_mut(out).zip(acc.chunks(stride)) {
        for ((v, &s), &b) in yr.iter_mut().zip(ar).zip(bias) {
            *v = crate::kernels::epilogue(s, b, act);
        }
    }
}

/// `iters` rounds of four independent `tdpbf16ps` on zeroed tiles (no
/// loads): the tile unit's peak, for the roofline probe.
pub(super) fn tdp_loop(iters: u64) {
    if iters == 0 {
        return;
    }
    assert!(available());
    let cfg = &CONFIG;
    // SAFETY: AMX-BF16 is available and permitted; the block touches no
    // memory but the 64-byte configuration, and releases the tiles.
    unsafe {
        asm!(
            "ldtilecfg [{cfg}]",
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "tilezero tmm4",
            "tilezero tmm5",
            "tilezero tmm6",
            "tilezero tmm7",
            "2:",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "dec {n}",
            "jnz 2b",
            "tilerelease",
            cfg = in(reg) cfg.0.as_ptr(),
            n = inout(reg) iters => _,
            options(nostack),
        );
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::super::{PAIR_U32, TILE_U32, split3};
    use super::{available, split_block};

    /// What `split_block` must write: `split3`'s parts in the pair layout,
    /// zeros past `rows` and `inp`.
    fn expected(x: &[f32], inp: usize, rows: usize, k0: usize, chunks: usize) -> Vec<u32> {
        let mut want = vec![0u32; chunks * PAIR_U32];
        for c in 0..chunks {
            for r in 0..rows {
                for m in 0..16 {
                    let part = |k: usize, p: usize| {
                        if k < inp {
                            split3(x[r * inp + k])[p]
                        } else {
                            0
                        }
                    };
                    let k = k0 + c * 32 + 2 * m;
                    for p in 0..3 {
                        let at = c * PAIR_U32 + (p * 2 + r / 16) * TILE_U32 + (r % 16) * 16 + m;
                        want[at] = part(k, p) | part(k + 1, p) << 16;
                    }
                }
            }
        }
        want
    }

    /// The vectorised split (its `vcvtne2ps2bf16` path and its exact
    /// fallback) writes `split3`'s bits, for values on both sides of the
    /// fast path's limits (2^-103 and the bf16 overflow), subnormals,
    /// zeros, infinities and NaN, in full and partial rows and chunks.
    #[test]
    fn split_block_is_split3_bit_for_bit() {
        if !available() {
            assert!(
                std::env::var("STYLEMAP_REQUIRE_AMX").as_deref() != Ok("1"),
                "STYLEMAP_REQUIRE_AMX=1 but the AMX kernel cannot run here"
            );
            return;
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let edges = [
            0.0f32,
            -0.0,
            f32::from_bits(0x0c00_0000), // 2^-103: the fast path's smallest
            f32::from_bits(0x0bff_ffff), // just below
            f32::from_bits(0x0080_0000), // smallest normal
            f32::from_bits(0x0000_0001), // smallest subnormal
            f32::from_bits(0x7f7f_7fff), // largest that rounds to a finite bf16
            f32::from_bits(0x7f7f_8000), // rounds to infinity: truncated
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        // Ordinary values take the fast path; one edge value in a group of
        // 32 decides its path; random bits mix both.
        for case in 0..8 {
            let (rows, inp, k0): (usize, usize, usize) =
                [(32, 64, 0), (19, 70, 32), (32, 512, 128), (1, 5, 0)][case % 4];
            let x: Vec<f32> = (0..rows * inp)
                .map(|i| {
                    let ordinary = (next() as u32 >> 9) as f32 * 1e-6 - 4.0;
                    match case {
                        0 | 2 => ordinary,
                        1 | 3 | 5 if i % 37 == 5 => edges[i / 37 % edges.len()],
                        1 | 3 | 5 => ordinary,
                        _ => f32::from_bits(next() as u32),
                    }
                })
                .collect();
            let chunks = (inp.saturating_sub(k0)).div_ceil(32).clamp(1, 16);
            let mut got = vec![u32::MAX; chunks * PAIR_U32];
            split_block(&x, inp, rows, k0, &mut got);
            let want = expected(&x, inp, rows, k0, chunks);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g, w,
                    "case {case}: u32 {i} of the split: {g:#010x} vs {w:#010x}"
                );
            }
        }
    }
}
