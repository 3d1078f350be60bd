//! The crate's one error type: small, `Copy`, and printable without allocation.

use core::fmt;

/// Names the buffer, tensor or dimension an [`Error`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operand {
    /// `z_dim` of the network description.
    ZDim,
    /// `w_dim` of the network description.
    WDim,
    /// `num_layers` of the network description.
    NumLayers,
    /// `layer_features` (hidden width) of the network description.
    LayerFeatures,
    /// `embed_features` of the network description.
    EmbedFeatures,
    /// `num_ws` of the network description.
    NumWs,
    /// `lr_multiplier` of the network description.
    LrMultiplier,
    /// Raw `fc{i}.weight` of layer `i`.
    FcWeight(usize),
    /// Raw `fc{i}.bias` of layer `i`.
    FcBias(usize),
    /// Raw `embed.weight`.
    EmbedWeight,
    /// Raw `embed.bias`.
    EmbedBias,
    /// The number of raw layers handed to the folding step.
    RawLayers,
    /// The folded parameter buffer.
    Params,
    /// The `w_avg` buffer.
    WAvg,
    /// The latent input `z`.
    Z,
    /// The label input `c`.
    C,
    /// The latent `w` (output of the mapping, or input of truncation).
    W,
    /// The broadcast latents `ws`.
    Ws,
    /// The caller-provided scratch buffer.
    Scratch,
    /// A GEMV operand (weights, bias, input or output of a kernel call).
    Gemv,
    /// The truncation strength `psi`.
    Psi,
    /// int8 scales of fc layer `i` in a pack.
    FcScales(usize),
    /// int8 scales of the label embedding in a pack.
    EmbedScales,
    /// The byte buffer of a pack.
    Pack,
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::ZDim => f.write_str("z_dim"),
            Operand::WDim => f.write_str("w_dim"),
            Operand::NumLayers => f.write_str("num_layers"),
            Operand::LayerFeatures => f.write_str("layer_features"),
            Operand::EmbedFeatures => f.write_str("embed_features"),
            Operand::NumWs => f.write_str("num_ws"),
            Operand::LrMultiplier => f.write_str("lr_multiplier"),
            Operand::FcWeight(i) => write!(f, "fc{i}.weight"),
            Operand::FcBias(i) => write!(f, "fc{i}.bias"),
            Operand::EmbedWeight => f.write_str("embed.weight"),
            Operand::EmbedBias => f.write_str("embed.bias"),
            Operand::RawLayers => f.write_str("raw layer list"),
            Operand::Params => f.write_str("folded parameter buffer"),
            Operand::WAvg => f.write_str("w_avg"),
            Operand::Z => f.write_str("z"),
            Operand::C => f.write_str("c"),
            Operand::W => f.write_str("w"),
            Operand::Ws => f.write_str("ws"),
            Operand::Scratch => f.write_str("scratch buffer"),
            Operand::Gemv => f.write_str("GEMV operand"),
            Operand::Psi => f.write_str("psi"),
            Operand::FcScales(i) => write!(f, "fc{i}.scales"),
            Operand::EmbedScales => f.write_str("embed.scales"),
            Operand::Pack => f.write_str("pack buffer"),
        }
    }
}

/// Everything that can go wrong, checked before any arithmetic starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A dimension that must be positive is zero (or, for `embed_features`,
    /// non-zero on an unconditional network).
    BadDimension(Operand),
    /// The network's sizes overflow `usize`.
    TooLarge,
    /// `lr_multiplier` is not finite and positive.
    BadLrMultiplier,
    /// A buffer or tensor has the wrong number of elements.
    Length {
        /// Which buffer.
        what: Operand,
        /// Elements required.
        expected: usize,
        /// Elements given.
        actual: usize,
    },
    /// A buffer or tensor holds NaN or an infinity.
    NonFinite {
        /// Which buffer.
        what: Operand,
        /// Index of the first non-finite element.
        index: usize,
    },
    /// A conditional input is required (`c_dim > 0`) or given to an
    /// unconditional network.
    Conditioning {
        /// The network's `c_dim`.
        c_dim: usize,
        /// Elements of `c` given.
        actual: usize,
    },
    /// The requested kernel cannot run on this CPU or build.
    KernelUnavailable,
    /// Every input was finite but the result was not: a value exceeded
    /// `f32::MAX` in flight (weights, labels or a truncation `psi` too large
    /// for f32 arithmetic; see the crate's numeric contract).
    Overflow {
        /// The result that would have held the non-finite value.
        what: Operand,
        /// Index of its first non-finite element.
        index: usize,
    },
    /// A buffer does not start on the boundary its kernel needs (AMX tile
    /// rows are cache lines: a misaligned tile load is 7x slower, so the
    /// network refuses rather than run slowly).
    Misaligned {
        /// Which buffer.
        what: Operand,
        /// The alignment required, in bytes.
        align: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadDimension(Operand::EmbedFeatures) => f.write_str(
                "embed_features must be positive for a conditional network and 0 otherwise",
            ),
            Error::BadDimension(what) => write!(f, "{what} must be positive"),
            Error::TooLarge => f.write_str("network sizes overflow the address space"),
            Error::BadLrMultiplier => f.write_str("lr_multiplier must be finite and positive"),
            Error::Length {
                what,
                expected,
                actual,
            } => write!(f, "{what} has {actual} elements, expected {expected}"),
            Error::NonFinite { what, index } => {
                write!(f, "{what} holds a non-finite value at index {index}")
            }
            Error::Conditioning { c_dim, actual } if *c_dim == 0 => write!(
                f,
                "the network is unconditional but a label of {actual} elements was given"
            ),
            Error::Conditioning { c_dim, actual } => write!(
                f,
                "the network is conditional (c_dim {c_dim}) but c has {actual} elements"
            ),
            Error::KernelUnavailable => f.write_str("the requested kernel is not available here"),
            Error::Overflow { what, index } => write!(
                f,
                "{what} overflowed f32 at index {index} although every input was finite \
                 (values too large for f32 arithmetic)"
            ),
            Error::Misaligned { what, align } => write!(
                f,
                "{what} must start on a {align}-byte boundary (hold it in an aligned buffer, \
                 e.g. a #[repr(align({align}))] wrapper)"
            ),
        }
    }
}

impl core::error::Error for Error {}

/// Checks `buf.len() == expected`.
pub(crate) fn check_len<T>(what: Operand, buf: &[T], expected: usize) -> Result<(), Error> {
    if buf.len() == expected {
        Ok(())
    } else {
        Err(Error::Length {
            what,
            expected,
            actual: buf.len(),
        })
    }
}

/// Checks every element of a computed result is finite (inputs having been
/// checked already): a non-finite value can then only be an overflow.
pub(crate) fn check_overflow(what: Operand, buf: &[f32]) -> Result<(), Error> {
    match buf.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::Overflow { what, index }),
    }
}

/// Checks every element of `buf` is finite.
pub(crate) fn check_finite(what: Operand, buf: &[f32]) -> Result<(), Error> {
    match buf.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite { what, index }),
    }
}
