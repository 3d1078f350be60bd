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

/// Whether AMX-BF16 tiles (and AVX-512F/BW for the split) can run in this
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
    // AVX512F, bit 30 AVX512BW. CPUID.1:ECX bit 27 OSXSAVE (XGETBV usable).
    let leaf1 = core::arch::x86_64::__cpuid(1);
    if leaf1.ecx & (1 << 27) == 0 || core::arch::x86_64::__get_cpuid_max(0).0 < 7 {
        return false;
    }
    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
    let amx = leaf7.edx & (1 << 22) != 0 && leaf7.edx & (1 << 24) != 0;
    let avx512 = leaf7.ebx & (1 << 16) != 0 && leaf7.ebx & (1 << 30) != 0;
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
    // SAFETY: AVX-512F and BW are part of `available`.
    unsafe { split_block_avx512(x, inp, rows, k0, dst) }
}

#[target_feature(enable = "avx512f,avx512bw")]
fn split_block_avx512(x: &[f32], inp: usize, rows: usize, k0: usize, dst: &mut [u32]) {
    // Word m of a pair vector is the high half of value m: word 2m + 1 of
    // the two source vectors taken together.
    let pick = _mm512_set_epi16(
        63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29, 27, 25, 23, 21, 19,
        17, 15, 13, 11, 9, 7, 5, 3, 1,
    );
    for (c, chunk) in dst.chunks_exact_mut(PAIR_U32).enumerate() {
        let kc = k0 + c * CHUNK;
        for r in 0..BLOCK_ROWS {
            let (lo, hi) = if r < rows && kc < inp {
                let row = &x[r * inp + kc..(r + 1) * inp];
                (load_part(row, 0), load_part(row, 16))
            } else {
                (_mm512_setzero_ps(), _mm512_setzero_ps())
            };
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
            let (half, row) = (r / 16, r % 16);
            for (p, (l, h)) in [(l0, h0), (l1, h1), (l2, h2)].into_iter().enumerate() {
                let at = (p * 2 + half) * TILE_U32 + row * 16;
                let out: &mut [u32; 16] = (&mut chunk[at..at + 16]).try_into().unwrap();
                // SAFETY: `out` is 16 u32 = 64 bytes; unaligned store.
                unsafe {
                    _mm512_storeu_si512(
                        out.as_mut_ptr().cast(),
                        _mm512_permutex2var_epi16(l, pick, h),
                    )
                };
            }
        }
    }
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
