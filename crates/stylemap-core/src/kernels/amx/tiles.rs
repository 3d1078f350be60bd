//! The AMX instructions themselves: detection (CPUID, XCR0 and Linux's
//! per-process permission), the tile loop and the activation split.
//!
//! Rust has no stable AMX intrinsics, so the tile loop is one `asm!` block
//! that loads its own tile configuration and releases the tiles before it
//! returns: no tile state lives across blocks or calls.
#![allow(unsafe_code)]

use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

use super::{PAIR_U32, TILE_U32};

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

/// `C += A Bᵀ` over `chunks` chunks of 32 `k`, for one block of 32 rows and
/// `n_pairs` blocks of 32 columns, with the six bf16 products of the
/// three-way split (see [`super`]).
///
/// - `a`: the block's split activations, `chunks * PAIR_U32` u32 laid out
///   `[chunk][part][half][16 rows][16 pairs]`;
/// - `b`: the first column block's weights at the first chunk; column block
///   `j` starts `j * b_pair_stride` u32 later, same layout per chunk;
/// - `c`: 32 rows of `c_stride` f32, column block `j` at `32 * j`.
///
/// Panics (before any tile instruction) if a slice is too short; the caller
/// must have checked [`available`].
pub(super) fn tile_block(
    a: &[u32],
    b: &[u32],
    b_pair_stride: usize,
    c: &mut [f32],
    c_stride: usize,
    n_pairs: usize,
    chunks: usize,
) {
    if n_pairs == 0 || chunks == 0 {
        return;
    }
    assert!(available());
    assert!(a.len() >= chunks * PAIR_U32);
    assert!(b.len() >= (n_pairs - 1) * b_pair_stride + chunks * PAIR_U32);
    assert!(c_stride >= 32 * n_pairs && c.len() >= 31 * c_stride + 32 * n_pairs);
    debug_assert_eq!(PAIR_U32, 6 * TILE_U32);
    let cfg = &CONFIG;
    // SAFETY: AMX-BF16 is available and permitted (`available`). Every tile
    // access is in bounds by the asserts above: A tiles read
    // `a[0 .. chunks * PAIR_U32]`, B tiles `b[j * b_pair_stride + ..]` for
    // `j < n_pairs` up to `chunks * PAIR_U32` each, C tiles rows `0..32` of
    // `c_stride` at columns `32 j .. 32 j + 32`. Tiles are configured,
    // used and released inside this one block.
    unsafe {
        asm!(
            "ldtilecfg [{cfg}]",
            "mov {s:e}, 64",
            "2:",
            // C tiles: rows 0-15 at c, rows 16-31 at c + 16 * c_stride.
            "mov {pa}, {cs}",
            "shl {pa}, 4",
            "add {pa}, {c}",
            "tileloadd tmm0, [{c} + {cs}]",
            "tileloadd tmm1, [{c} + {cs} + 64]",
            "tileloadd tmm2, [{pa} + {cs}]",
            "tileloadd tmm3, [{pa} + {cs} + 64]",
            "mov {pa}, {a}",
            "mov {pb}, {b}",
            "mov {k}, {chunks}",
            "3:",
            // x0 w0
            "tileloadd tmm4, [{pa} + {s}]",
            "tileloadd tmm5, [{pa} + {s} + 1024]",
            "tileloadd tmm6, [{pb} + {s}]",
            "tileloadd tmm7, [{pb} + {s} + 1024]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            // x0 w1
            "tileloadd tmm6, [{pb} + {s} + 2048]",
            "tileloadd tmm7, [{pb} + {s} + 3072]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            // x0 w2
            "tileloadd tmm6, [{pb} + {s} + 4096]",
            "tileloadd tmm7, [{pb} + {s} + 5120]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            // x1 w1
            "tileloadd tmm4, [{pa} + {s} + 2048]",
            "tileloadd tmm5, [{pa} + {s} + 3072]",
            "tileloadd tmm6, [{pb} + {s} + 2048]",
            "tileloadd tmm7, [{pb} + {s} + 3072]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            // x1 w0
            "tileloadd tmm6, [{pb} + {s}]",
            "tileloadd tmm7, [{pb} + {s} + 1024]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            // x2 w0
            "tileloadd tmm4, [{pa} + {s} + 4096]",
            "tileloadd tmm5, [{pa} + {s} + 5120]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {pa}, 6144",
            "add {pb}, 6144",
            "dec {k}",
            "jnz 3b",
            "mov {pa}, {cs}",
            "shl {pa}, 4",
            "add {pa}, {c}",
            "tilestored [{c} + {cs}], tmm0",
            "tilestored [{c} + {cs} + 64], tmm1",
            "tilestored [{pa} + {cs}], tmm2",
            "tilestored [{pa} + {cs} + 64], tmm3",
            "add {c}, 128",
            "add {b}, {bps}",
            "dec {np}",
            "jnz 2b",
            "tilerelease",
            cfg = in(reg) cfg.0.as_ptr(),
            a = in(reg) a.as_ptr(),
            b = inout(reg) b.as_ptr() => _,
            bps = in(reg) b_pair_stride * 4,
            c = inout(reg) c.as_mut_ptr() => _,
            cs = in(reg) c_stride * 4,
            np = inout(reg) n_pairs => _,
            chunks = in(reg) chunks,
            k = out(reg) _,
            pa = out(reg) _,
            pb = out(reg) _,
            s = out(reg) _,
            options(nostack),
        );
    }
}

/// Splits rows of `x` into the three bf16 parts of the A layout; see
/// [`super::split_block`].
pub(super) fn split_block(x: &[f32], inp: usize, rows: usize, k0: usize, dst: &mut [u32]) {
    assert!(available());
    // SAFETY: AVX-512F and BW are part of `available`.
    unsafe { split_block_avx512(x, inp, rows, k0, dst) }
}

#[target_feature(enable = "avx512f,avx512bw")]
fn split_block_avx512(x: &[f32], inp: usize, rows: usize, k0: usize, dst: &mut [u32]) {
    super::split_block(x, inp, rows, k0, dst)
}
