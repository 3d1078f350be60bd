//! Fused GEMV kernels: `y = act(W x + b)` for one fully connected layer.
//!
//! Every kernel computes the same thing on the same row-major layout
//! (`W` is `[out, in]`, gains already folded in, see [`crate::fold`]):
//!
//! ```text
//! y[r] = act(sum_k W[r, k] * x[k] + b[r])      act = lrelu(., 0.2) or identity
//! ```
//!
//! [`scalar`] is the oracle every other kernel is tested against; it never
//! changes. [`portable`] uses `wide`'s 8-lane vectors, whose backend is chosen
//! when the crate is compiled (SSE2/AVX/NEON/simd128 or plain arrays).
//! The hand-written kernels share one generic body and are chosen at run time:
//!
//! | [`Kernel`] | function | where |
//! |---|---|---|
//! | [`Kernel::Avx512`] | `x86::gemv_f32x16_avx512` | x86-64 with AVX-512F (detected) |
//! | [`Kernel::Avx2`] | `x86::gemv_f32x8_avx2` | x86-64 with AVX2 + FMA (detected) |
//! | [`Kernel::Neon`] | `neon::gemv_f32x4_neon` | aarch64 (NEON is baseline) |
//!
//! The batched kernels (many samples per pass over packed weights) live in
//! [`gemm`]; the same [`Kernel`] value selects them. [`amx`] is a batched
//! f32 kernel of its own on Intel AMX tiles (f32 accuracy through an exact
//! three-way bf16 split), with its own availability check.
//!
//! # Dispatch
//!
//! Every variant exists on every target; [`Kernel::is_available`] says
//! whether it can run here. x86 features are detected with `cpufeatures`
//! (CPUID/XGETBV, no `std`), once, and cached in an atomic; the dispatcher
//! re-checks that cached flag before every intrinsics call, so no path can
//! execute an instruction the CPU lacks. [`Kernel::best`] picks the fastest
//! available kernel; the `force-scalar` feature pins it to [`Kernel::Scalar`].
//! To force a kernel: [`gemv_bias_act`]'s `kernel` argument or
//! `MappingNetwork::with_kernel`. The core has no environment; the std crate
//! and this crate's tests honour the variable named by [`Kernel::ENV_VAR`]
//! (`STYLEMAP_KERNEL=avx2`, looked up with [`Kernel::from_name`]).

pub mod amx;
pub mod gemm;
pub mod portable;
pub mod probe;
pub mod quant;
pub mod scalar;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
mod simd;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub mod neon;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use crate::error::{Error, Operand};
use crate::spec::Activation;

/// A GEMV implementation.
///
/// Every variant exists on every target; the ones that cannot run here report
/// `false` from [`is_available`](Self::is_available) and are refused by the
/// checked entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kernel {
    /// Plain scalar loops: the test oracle.
    Scalar,
    /// `wide::f32x8`, four rows at a time, scalar tail; instructions chosen
    /// at compile time.
    Portable,
    /// x86-64 AVX2 + FMA, 8 lanes (`x86::gemv_f32x8_avx2`); detected at run time.
    Avx2,
    /// x86-64 AVX-512F, 16 lanes (`x86::gemv_f32x16_avx512`); detected at run time.
    Avx512,
    /// aarch64 NEON, 4 lanes (`neon::gemv_f32x4_neon`); baseline on aarch64.
    Neon,
}

impl Kernel {
    /// Every kernel this build knows, available or not.
    pub const ALL: &'static [Kernel] = &[
        Kernel::Scalar,
        Kernel::Portable,
        Kernel::Avx2,
        Kernel::Avx512,
        Kernel::Neon,
    ];

    /// The environment variable that forces a kernel by [`name`](Self::name)
    /// where there is an environment (the std crate, the test suites). The
    /// core itself never reads it.
    pub const ENV_VAR: &'static str = "STYLEMAP_KERNEL";

    /// The fastest kernel this CPU and build can run (scalar with the
    /// `force-scalar` feature). Detection runs once; later calls read a cache.
    pub fn best() -> Kernel {
        if cfg!(feature = "force-scalar") {
            Kernel::Scalar
        } else if Kernel::Avx512.is_available() {
            Kernel::Avx512
        } else if Kernel::Avx2.is_available() {
            Kernel::Avx2
        } else if Kernel::Neon.is_available() {
            Kernel::Neon
        } else {
            Kernel::Portable
        }
    }

    /// Whether this kernel can run here (this build, this CPU).
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar | Kernel::Portable => true,
            Kernel::Avx2 => avx2_available(),
            Kernel::Avx512 => avx512_available(),
            Kernel::Neon => cfg!(all(target_arch = "aarch64", target_feature = "neon")),
        }
    }

    /// A short lowercase name (`scalar`, `portable`, `avx2`, `avx512`,
    /// `neon`), as used in benchmarks and [`ENV_VAR`](Self::ENV_VAR).
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Portable => "portable",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
            Kernel::Neon => "neon",
        }
    }

    /// Looks a kernel up by [`name`](Self::name) (available or not).
    pub fn from_name(name: &str) -> Option<Kernel> {
        Kernel::ALL.iter().copied().find(|k| k.name() == name)
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_available() -> bool {
    x86::avx2_fma_detected()
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_available() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn avx512_available() -> bool {
    x86::avx512f_detected()
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512_available() -> bool {
    false
}

/// Checked entry point: `y = act(W x + b)` with `W` row-major `[y.len(), x.len()]`.
///
/// Errors if the lengths do not chain or `x` is empty, or if `kernel` is not
/// available. Numerics are never checked: NaN in gives NaN out.
pub fn gemv_bias_act(
    kernel: Kernel,
    weight: &[f32],
    bias: &[f32],
    x: &[f32],
    act: Activation,
    y: &mut [f32],
) -> Result<(), Error> {
    if !kernel.is_available() {
        return Err(Error::KernelUnavailable);
    }
    if x.is_empty() {
        return Err(Error::BadDimension(Operand::Gemv));
    }
    let expected = y.len().checked_mul(x.len()).ok_or(Error::TooLarge)?;
    crate::error::check_len(Operand::Gemv, weight, expected)?;
    crate::error::check_len(Operand::Gemv, bias, y.len())?;
    run(kernel, weight, bias, x, act, y);
    Ok(())
}

/// Unchecked dispatch; callers guarantee `weight.len() == y.len() * x.len()`,
/// `bias.len() == y.len()`, `!x.is_empty()` and that `kernel` is available.
#[inline]
pub(crate) fn run(
    kernel: Kernel,
    weight: &[f32],
    bias: &[f32],
    x: &[f32],
    act: Activation,
    y: &mut [f32],
) {
    match kernel {
        Kernel::Scalar => scalar::gemv_f32(weight, bias, x, act, y),
        Kernel::Portable => portable::gemv_f32x8(weight, bias, x, act, y),
        Kernel::Avx2 | Kernel::Avx512 | Kernel::Neon => {
            #[cfg(target_arch = "x86_64")]
            if x86::dispatch(kernel, weight, bias, x, act, y) {
                return;
            }
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            if neon::dispatch(kernel, weight, bias, x, act, y) {
                return;
            }
            // Unreachable through the checked entry points; never run an
            // unsupported instruction, compute the same thing portably.
            debug_assert!(false, "{kernel:?} is not available here");
            portable::gemv_f32x8(weight, bias, x, act, y)
        }
    }
}

/// The checks every batched layer entry point makes on `x [batch, in]` and
/// `y [batch, out]`: both widths positive, the lengths chain. Returns the
/// batch size.
pub(crate) fn check_layer_io(
    in_features: usize,
    out: usize,
    x: &[f32],
    y: &[f32],
) -> Result<usize, Error> {
    if in_features == 0 || out == 0 {
        return Err(Error::BadDimension(Operand::Gemv));
    }
    let batch = x.len() / in_features;
    crate::error::check_len(Operand::Gemv, x, batch * in_features)?;
    crate::error::check_len(
        Operand::Gemv,
        y,
        batch.checked_mul(out).ok_or(Error::TooLarge)?,
    )?;
    Ok(batch)
}

/// The fused epilogue shared by every kernel: bias, then activation.
/// (The activation gain is folded into the weights and bias.)
#[inline(always)]
pub(crate) fn epilogue(acc: f32, bias: f32, act: Activation) -> f32 {
    let v = acc + bias;
    match act {
        Activation::LeakyRelu if v < 0.0 => v * crate::spec::LRELU_SLOPE,
        _ => v,
    }
}
