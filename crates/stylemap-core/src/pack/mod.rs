//! Packs: a ready-to-run mapping network in one byte buffer, loadable
//! zero-copy from flash (`include_bytes!`) with full validation.
//!
//! A pack holds the network description, `w_avg`, and the weights already
//! folded ([`crate::fold`]) and, for reduced precision, already packed in
//! the [`kernels::quant`] layout (f16, bf16, or int8
//! with f32 scales per row and group of inputs). [`Pack::parse`] checks
//! everything once (magic, version, sizes, alignment, checksum, every value);
//! after that [`Pack::forward`] and [`Pack::forward_batch`] only check the
//! caller's buffers, allocate nothing and never panic.
//!
//! # Format, version 1
//!
//! All integers and floats are **little-endian**. Sizes in bytes. The pack
//! stores no offsets: every section's place follows from the header, so a
//! pack cannot point outside itself.
//!
//! ## Header (128 bytes)
//!
//! | offset | type | field |
//! |---:|---|---|
//! | 0 | `[u8; 8]` | magic [`MAGIC`] = `b"SMAPPACK"` |
//! | 8 | u32 | format version, [`VERSION`] = 1 |
//! | 12 | u32 | header length, [`HEADER_LEN`] = 128 |
//! | 16 | u64 | total length of the pack, checksum included |
//! | 24 | u32 | precision: 0 f32, 1 f16, 2 bf16, 3 int8 ([`Precision`]) |
//! | 28 | u32 | flags: bit 0 = gains folded ([`FLAG_LR_FOLDED`], required); other bits 0 |
//! | 32 | u32 | activation of the fc layers: 0 leaky ReLU (gain folded), 1 linear |
//! | 36 | u32 | int8 group: inputs per scale (>= 1); 0 for other precisions |
//! | 40 | u32 | z_dim |
//! | 44 | u32 | c_dim (0: unconditional) |
//! | 48 | u32 | w_dim |
//! | 52 | u32 | num_layers |
//! | 56 | u32 | layer_features |
//! | 60 | u32 | embed_features (0 iff c_dim is 0) |
//! | 64 | u32 | num_ws |
//! | 68 | u32 | panel rows of the weight layout: [`QNR`] = 16; 0 for f32 |
//! | 72 | f64 | lr_multiplier the weights were folded with (information only) |
//! | 80 | `[u8; 44]` | reserved, zero |
//! | 124 | u32 | CRC-32 (zlib's) of bytes `0..124` followed by `128..total` |
//!
//! ## Sections
//!
//! Each starts at a multiple of [`SECTION_ALIGN`] = 64 bytes from the start
//! of the pack; the bytes between sections and after the last are zero; the
//! total length is a multiple of 64.
//!
//! | section | contents |
//! |---|---|
//! | `w_avg` | `w_dim` f32, at byte 128 |
//! | f32 packs: `params` | the folded buffer of [`crate::fold`] (`spec.param_len()` f32): what [`MappingNetwork`] runs |
//! | f16/bf16/int8 packs, per layer (`embed` first if `c_dim > 0`, then `fc0..`): `weight` | [`kernels::quant`] layout, `ceil(out/16)*16*in` u16 (f16/bf16 bits) or i8 |
//! | `bias` | `out` f32 (folded) |
//! | `scales` (int8 only) | `ceil(out/16) * ceil(in/group) * 16` f32 |
//!
//! Values: every f32, f16 and bf16 is finite; int8 values are in
//! `-127..=127`; weights and scales of the padding rows of a panel are 0.
//! The embedding (linear, lr 1) is stored in the pack's precision like the
//! fc layers.
//!
//! # Loading from flash
//!
//! The f32/u16 views need the buffer to start on a 4-byte boundary (64 for
//! the fastest SIMD loads); `include_bytes!` only guarantees 1. Wrap it:
//!
//! ```
//! use stylemap_core::kernels::quant::QWeights;
//! use stylemap_core::pack::{self, Pack, Precision, QLayer, Weights};
//! use stylemap_core::{Kernel, MappingSpec};
//!
//! /// Gives the bytes inside the alignment of the struct.
//! #[repr(C, align(64))]
//! struct Aligned<T: ?Sized>(T);
//!
//! // In firmware:
//! //     static PACK: &Aligned<[u8]> = &Aligned(*include_bytes!("net.smap"));
//! //     let pack = Pack::parse(&PACK.0)?;
//! // (the unsized coercion keeps the file's length out of the source.)
//! static NOT_A_PACK: &Aligned<[u8]> = &Aligned([0u8; 16]);
//! assert!(Pack::parse(&NOT_A_PACK.0).is_err());
//!
//! // A tiny int8 network 4 -> 4 -> 3, written here instead of included:
//! // one panel of 16 rows per layer (rows past `out` zero), one scale group.
//! let mut spec = MappingSpec::nvlabs(4, 0, 3, 2, 5);
//! spec.layer_features = 4;
//! let q0: [i8; 64] = core::array::from_fn(|i| if i % 16 < 4 { (i % 7) as i8 - 3 } else { 0 });
//! let q1: [i8; 64] = core::array::from_fn(|i| if i % 16 < 3 { (i % 5) as i8 - 2 } else { 0 });
//! let s0: [f32; 16] = core::array::from_fn(|j| if j < 4 { 0.05 } else { 0.0 });
//! let s1: [f32; 16] = core::array::from_fn(|j| if j < 3 { 0.1 } else { 0.0 });
//! let layers = [
//!     QLayer { weights: QWeights::Int8 { q: &q0, scales: &s0, group: 4 }, bias: &[0.0; 4] },
//!     QLayer { weights: QWeights::Int8 { q: &q1, scales: &s1, group: 4 }, bias: &[0.1; 3] },
//! ];
//! let mut buf = Aligned([0u8; 1024]);
//! let n = pack::write(&spec, &[0.0; 3], Weights::Quant(&layers), &mut buf.0)?;
//! assert_eq!(n, pack::pack_len(&spec, Precision::Int8, 4)?);
//!
//! let pack = Pack::parse(&buf.0[..n])?;
//! assert_eq!((pack.precision(), pack.int8_group()), (Precision::Int8, Some(4)));
//! let mut scratch = [0.0f32; 8];
//! assert_eq!(pack.scratch_len(), scratch.len());
//! let (z, mut w) = ([0.5f32, -1.0, 2.0, 0.25], [0.0f32; 3]);
//! pack.forward(Kernel::best(), &z, &[], &mut scratch, &mut w)?;
//! let mut ws = [0.0f32; 5 * 3];
//! pack.broadcast_truncate(&w, 0.7, None, &mut ws)?;
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```

mod crc32;
mod layout;
mod write;

use core::fmt;

pub use crc32::{Crc32, crc32};
pub use write::{QLayer, Weights, pack_len, write};

use crate::error::{Error, Operand, check_overflow};
use crate::fold::{self, FoldedLayer};
use crate::kernels::quant::{self, QNR, QWeights};
use crate::kernels::{self, Kernel};
use crate::network::{LayerWidth, check_batch_io, forward_layers};
use crate::spec::{Activation, MappingSpec};
use crate::truncation;
use layout::{Layout, Place, align_up};

/// The first 8 bytes of every pack.
pub const MAGIC: [u8; 8] = *b"SMAPPACK";
/// The format version this build reads and writes.
pub const VERSION: u32 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 128;
/// Alignment of every section, relative to the start of the pack.
pub const SECTION_ALIGN: usize = 64;
/// Alignment the start of a pack must have ([`Pack::parse`] refuses less).
pub const MIN_ALIGN: usize = 4;
/// Header flag: weights and biases have the layer gains folded in.
pub const FLAG_LR_FOLDED: u32 = 1;
/// Offset of the CRC-32 in the header.
pub const CHECKSUM_OFFSET: usize = 124;

/// Header offsets (see the [format table](self#header-128-bytes)).
mod at {
    pub const VERSION: usize = 8;
    pub const HEADER_LEN: usize = 12;
    pub const TOTAL: usize = 16;
    pub const PRECISION: usize = 24;
    pub const FLAGS: usize = 28;
    pub const ACTIVATION: usize = 32;
    pub const GROUP: usize = 36;
    pub const DIMS: usize = 40;
    pub const QNR: usize = 68;
    pub const LR: usize = 72;
    pub const RESERVED: usize = 80;
}

/// Element type of a pack's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32, folded row-major ([`crate::fold`]).
    F32,
    /// IEEE binary16, round-to-nearest-even from f32.
    F16,
    /// bfloat16, round-to-nearest-even from f32.
    Bf16,
    /// int8 in `-127..=127` with f32 scales per row and group of inputs.
    Int8,
}

impl Precision {
    /// Every precision, in code order.
    pub const ALL: [Precision; 4] = [
        Precision::F32,
        Precision::F16,
        Precision::Bf16,
        Precision::Int8,
    ];

    /// The header code.
    pub const fn code(self) -> u32 {
        match self {
            Precision::F32 => 0,
            Precision::F16 => 1,
            Precision::Bf16 => 2,
            Precision::Int8 => 3,
        }
    }

    /// The precision with header code `code`.
    pub const fn from_code(code: u32) -> Option<Precision> {
        match code {
            0 => Some(Precision::F32),
            1 => Some(Precision::F16),
            2 => Some(Precision::Bf16),
            3 => Some(Precision::Int8),
            _ => None,
        }
    }

    /// Lowercase name: `f32`, `f16`, `bf16`, `int8`.
    pub const fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }

    /// Looks a precision up by [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Bytes per stored weight.
    pub const fn weight_bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 | Precision::Bf16 => 2,
            Precision::Int8 => 1,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a byte buffer is not a usable pack (or a pack cannot be written).
/// Small, `Copy`, printable without allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PackError {
    /// Shorter than the 128-byte header.
    TooShort {
        /// Bytes given.
        len: usize,
    },
    /// The first 8 bytes are not [`MAGIC`].
    BadMagic,
    /// A format version this build does not read.
    UnsupportedVersion(u32),
    /// This target is big-endian; packs are little-endian and read in place.
    BigEndianTarget,
    /// The buffer does not start on a [`MIN_ALIGN`]-byte boundary.
    Misaligned {
        /// Address modulo [`SECTION_ALIGN`].
        offset: usize,
    },
    /// The header's total length is not the buffer's (truncated or trailing bytes).
    LengthMismatch {
        /// Total length stated in the header.
        header: u64,
        /// Bytes given.
        actual: usize,
    },
    /// The stored CRC-32 does not match the contents.
    BadChecksum {
        /// Stored in the header.
        stored: u32,
        /// Computed over the buffer.
        computed: u32,
    },
    /// A header field has a value this version does not define.
    BadHeader {
        /// Byte offset of the field.
        offset: usize,
        /// Its value (truncated to 32 bits).
        value: u32,
    },
    /// Unknown precision code.
    BadPrecision(u32),
    /// int8 group 0, or a non-zero group for another precision.
    BadGroup(u32),
    /// The dims describe no valid network (the core's error says why).
    Spec(Error),
    /// The dims need a different length than the header states.
    SizeMismatch {
        /// Bytes the dims, precision and group require.
        expected: usize,
        /// Total length stated in the header.
        header: u64,
    },
    /// A stored value is NaN or infinite (or would be as f16/bf16).
    NonFinite {
        /// The section.
        what: Operand,
        /// Element index within it.
        index: usize,
    },
    /// An int8 weight is -128.
    Int8OutOfRange {
        /// The section.
        what: Operand,
        /// Element index within it.
        index: usize,
    },
    /// Padding (between sections, or the padding rows of a panel) is not zero.
    NonZeroPadding {
        /// The section whose padding rows are not zero, or
        /// [`Operand::Pack`] for bytes between sections.
        what: Operand,
        /// Byte offset in the pack, or element index in the section.
        index: usize,
    },
    /// Writer: the layers given do not all have the same precision and group.
    MixedPrecision,
    /// Writer: the output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        actual: usize,
    },
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackError::TooShort { len } => write!(
                f,
                "not a pack: {len} bytes, shorter than the {HEADER_LEN}-byte header"
            ),
            PackError::BadMagic => f.write_str("not a pack: bad magic (expected \"SMAPPACK\")"),
            PackError::UnsupportedVersion(v) => write!(
                f,
                "pack format version {v} is not supported (this build reads version {VERSION})"
            ),
            PackError::BigEndianTarget => {
                f.write_str("packs are little-endian and cannot be read in place on this target")
            }
            PackError::Misaligned { offset } => write!(
                f,
                "the pack's bytes start at address {offset} mod 64, but must be {MIN_ALIGN}-byte \
                 aligned: wrap include_bytes! in a #[repr(C, align(64))] struct"
            ),
            PackError::LengthMismatch { header, actual } if (*actual as u64) < *header => write!(
                f,
                "truncated pack: the header says {header} bytes, {actual} given"
            ),
            PackError::LengthMismatch { header, actual } => write!(
                f,
                "pack length mismatch: the header says {header} bytes, {actual} given"
            ),
            PackError::BadChecksum { stored, computed } => write!(
                f,
                "corrupt pack: CRC-32 is {computed:#010x}, the header says {stored:#010x}"
            ),
            PackError::BadHeader { offset, value } => write!(
                f,
                "bad pack header: field at byte {offset} has unsupported value {value}"
            ),
            PackError::BadPrecision(p) => write!(
                f,
                "bad pack header: unknown precision code {p} (0 f32, 1 f16, 2 bf16, 3 int8)"
            ),
            PackError::BadGroup(0) => f.write_str("bad pack header: int8 group size is 0"),
            PackError::BadGroup(g) => write!(
                f,
                "bad pack header: group size {g} given for a precision without groups"
            ),
            PackError::Spec(e) => write!(f, "bad pack header: {e}"),
            PackError::SizeMismatch { expected, header } => write!(
                f,
                "bad pack header: the dims need {expected} bytes but the header says {header}"
            ),
            PackError::NonFinite { what, index } => {
                write!(f, "pack {what} holds a non-finite value at index {index}")
            }
            PackError::Int8OutOfRange { what, index } => write!(
                f,
                "pack {what} holds -128 at index {index} (int8 weights are -127..=127)"
            ),
            PackError::NonZeroPadding {
                what: Operand::Pack,
                index,
            } => write!(f, "pack padding at byte {index} is not zero"),
            PackError::NonZeroPadding { what, index } => write!(
                f,
                "pack {what} has a non-zero padding-row value at index {index}"
            ),
            PackError::MixedPrecision => {
                f.write_str("pack layers must all have the same precision and int8 group")
            }
            PackError::BufferTooSmall { need, actual } => {
                write!(f, "pack output buffer has {actual} bytes, {need} needed")
            }
        }
    }
}

impl core::error::Error for PackError {}

impl From<Error> for PackError {
    fn from(e: Error) -> Self {
        PackError::Spec(e)
    }
}

/// One reduced-precision layer of a pack: what one
/// [`qgemm_bias_act`](crate::kernels::quant::qgemm_bias_act) call consumes.
#[derive(Clone, Copy, Debug)]
pub struct PackLayer<'a> {
    /// Packed weights (and scales for int8).
    pub weights: QWeights<'a>,
    /// `b'` `[out]`, folded.
    pub bias: &'a [f32],
    /// Input width.
    pub in_features: usize,
    /// Output width.
    pub out_features: usize,
    /// Activation (gain folded in).
    pub activation: Activation,
}

impl LayerWidth for PackLayer<'_> {
    fn out_features(&self) -> usize {
        self.out_features
    }
}

impl<'a> PackLayer<'a> {
    /// Panels (blocks of [`QNR`] output rows) of this layer.
    pub fn panels(&self) -> usize {
        self.out_features.div_ceil(QNR)
    }

    /// Output rows `start * QNR .. min(end * QNR, out)` as a layer of their
    /// own (for splitting a layer's rows between threads: each panel is a
    /// contiguous block of weights and scales). `None` unless
    /// `start < end <= panels()`.
    pub fn panel_range(&self, start: usize, end: usize) -> Option<PackLayer<'a>> {
        if start >= end || end > self.panels() {
            return None;
        }
        let inp = self.in_features;
        let rows = (start * QNR, (end * QNR).min(self.out_features));
        let weights = match self.weights {
            QWeights::F16(q) => QWeights::F16(q.get(start * inp * QNR..end * inp * QNR)?),
            QWeights::Bf16(q) => QWeights::Bf16(q.get(start * inp * QNR..end * inp * QNR)?),
            QWeights::Int8 { q, scales, group } => {
                let g = quant::groups(inp, group) * QNR;
                QWeights::Int8 {
                    q: q.get(start * inp * QNR..end * inp * QNR)?,
                    scales: scales.get(start * g..end * g)?,
                    group,
                }
            }
        };
        Some(PackLayer {
            weights,
            bias: self.bias.get(rows.0..rows.1)?,
            in_features: inp,
            out_features: rows.1 - rows.0,
            activation: self.activation,
        })
    }
}

/// One section of a pack, for tools that describe packs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionInfo {
    /// What it holds: [`Operand::WAvg`], [`Operand::Params`] (f32 packs),
    /// or a layer's weight, bias or scales.
    pub what: Operand,
    /// Byte offset from the start of the pack.
    pub offset: usize,
    /// Bytes, padding excluded.
    pub len: usize,
}

/// A validated pack over any byte storage `B`: `&'static [u8]` in flash, an
/// owned aligned buffer on a host. See the [module docs](self) for the
/// format and an example.
#[derive(Clone, Debug)]
pub struct Pack<B = &'static [u8]> {
    bytes: B,
    layout: Layout,
    checksum: u32,
}

/// Typed views of the whole pack (every section offset is a multiple of 64).
#[derive(Clone, Copy)]
struct Views<'a> {
    f32s: &'a [f32],
    u16s: &'a [u16],
    i8s: &'a [i8],
}

impl<'a> Views<'a> {
    /// Casts `b` (length a multiple of 64, 4-aligned) in O(1).
    fn new(b: &'a [u8]) -> Option<Views<'a>> {
        Some(Views {
            f32s: bytemuck::try_cast_slice(b).ok()?,
            u16s: bytemuck::try_cast_slice(b).ok()?,
            i8s: bytemuck::cast_slice(b),
        })
    }

    fn f32s(&self, (off, len): (usize, usize)) -> &'a [f32] {
        &self.f32s[off / 4..(off + len) / 4]
    }

    fn layer(&self, p: &Place, precision: Precision, group: usize) -> PackLayer<'a> {
        let (off, len) = p.weight;
        let weights = match precision {
            Precision::Int8 => QWeights::Int8 {
                q: &self.i8s[off..off + len],
                scales: self.f32s(p.scales),
                group,
            },
            Precision::Bf16 => QWeights::Bf16(&self.u16s[off / 2..(off + len) / 2]),
            // F32 packs have no places.
            Precision::F16 | Precision::F32 => QWeights::F16(&self.u16s[off / 2..(off + len) / 2]),
        };
        PackLayer {
            weights,
            bias: self.f32s(p.bias),
            in_features: p.inp,
            out_features: p.out,
            activation: p.activation,
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

/// The CRC-32 a pack stores: over everything but the checksum field.
pub fn pack_checksum(bytes: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(&bytes[..CHECKSUM_OFFSET.min(bytes.len())]);
    c.update(bytes.get(CHECKSUM_OFFSET + 4..).unwrap_or(&[]));
    c.finish()
}

/// Reads and checks the header; returns the layout and stored checksum.
fn parse_header(b: &[u8]) -> Result<(Layout, u32), PackError> {
    if b.len() < HEADER_LEN {
        return Err(PackError::TooShort { len: b.len() });
    }
    if b[..8] != MAGIC {
        return Err(PackError::BadMagic);
    }
    let version = u32_at(b, at::VERSION);
    if version != VERSION {
        return Err(PackError::UnsupportedVersion(version));
    }
    if cfg!(target_endian = "big") {
        return Err(PackError::BigEndianTarget);
    }
    let addr = b.as_ptr() as usize;
    if !addr.is_multiple_of(MIN_ALIGN) {
        return Err(PackError::Misaligned {
            offset: addr % SECTION_ALIGN,
        });
    }
    let header_len = u32_at(b, at::HEADER_LEN);
    if header_len as usize != HEADER_LEN {
        return Err(PackError::BadHeader {
            offset: at::HEADER_LEN,
            value: header_len,
        });
    }
    let total = u64_at(b, at::TOTAL);
    if total != b.len() as u64 {
        return Err(PackError::LengthMismatch {
            header: total,
            actual: b.len(),
        });
    }
    let stored = u32_at(b, CHECKSUM_OFFSET);
    let computed = pack_checksum(b);
    if stored != computed {
        return Err(PackError::BadChecksum { stored, computed });
    }
    let code = u32_at(b, at::PRECISION);
    let precision = Precision::from_code(code).ok_or(PackError::BadPrecision(code))?;
    let flags = u32_at(b, at::FLAGS);
    if flags != FLAG_LR_FOLDED {
        return Err(PackError::BadHeader {
            offset: at::FLAGS,
            value: flags,
        });
    }
    let act = u32_at(b, at::ACTIVATION);
    let activation = match act {
        0 => Activation::LeakyRelu,
        1 => Activation::Linear,
        _ => {
            return Err(PackError::BadHeader {
                offset: at::ACTIVATION,
                value: act,
            });
        }
    };
    let group = u32_at(b, at::GROUP);
    if (precision == Precision::Int8) != (group > 0) {
        return Err(PackError::BadGroup(group));
    }
    let qnr = u32_at(b, at::QNR);
    let want_qnr = if precision == Precision::F32 { 0 } else { QNR };
    if qnr as usize != want_qnr {
        return Err(PackError::BadHeader {
            offset: at::QNR,
            value: qnr,
        });
    }
    if let Some(i) = b[at::RESERVED..CHECKSUM_OFFSET]
        .iter()
        .position(|&v| v != 0)
    {
        return Err(PackError::BadHeader {
            offset: at::RESERVED + i,
            value: u32::from(b[at::RESERVED + i]),
        });
    }
    let dim = |i: usize| -> Result<usize, PackError> {
        usize::try_from(u32_at(b, at::DIMS + 4 * i)).map_err(|_| PackError::Spec(Error::TooLarge))
    };
    let lr = f64::from_bits(u64_at(b, at::LR));
    let spec = MappingSpec {
        z_dim: dim(0)?,
        c_dim: dim(1)?,
        w_dim: dim(2)?,
        num_layers: dim(3)?,
        layer_features: dim(4)?,
        embed_features: dim(5)?,
        num_ws: dim(6)?,
        lr_multiplier: lr,
        activation,
    };
    spec.validate()?;
    let group = usize::try_from(group).map_err(|_| PackError::Spec(Error::TooLarge))?;
    let layout = Layout::new(&spec, precision, group).ok_or(PackError::Spec(Error::TooLarge))?;
    if layout.total as u64 != total {
        return Err(PackError::SizeMismatch {
            expected: layout.total,
            header: total,
        });
    }
    Ok((layout, stored))
}

/// First non-finite f32.
fn first_nonfinite(v: &[f32]) -> Option<usize> {
    v.iter().position(|x| !x.is_finite())
}

/// Checks one reduced-precision layer's values: finite weights, scales and
/// bias; int8 in range; zero padding rows. Shared by the parser and writer.
pub(crate) fn check_layer(
    l: &PackLayer<'_>,
    names: (Operand, Operand, Operand),
) -> Result<(), PackError> {
    let (inp, out) = (l.in_features, l.out_features);
    let (w_name, b_name, s_name) = names;
    let padding_row = |i: usize, width: usize| (i / (width * QNR)) * QNR + i % QNR >= out;
    let pad = |what, index| Err(PackError::NonZeroPadding { what, index });
    match l.weights {
        QWeights::F16(q) | QWeights::Bf16(q) => {
            let exp_all_ones = match l.weights {
                QWeights::F16(_) => 0x7c00u16,
                _ => 0x7f80u16,
            };
            for (i, &h) in q.iter().enumerate() {
                if h & exp_all_ones == exp_all_ones {
                    return Err(PackError::NonFinite {
                        what: w_name,
                        index: i,
                    });
                }
                if h != 0 && padding_row(i, inp) {
                    return pad(w_name, i);
                }
            }
        }
        QWeights::Int8 { q, scales, group } => {
            for (i, &v) in q.iter().enumerate() {
                if v == i8::MIN {
                    return Err(PackError::Int8OutOfRange {
                        what: w_name,
                        index: i,
                    });
                }
                if v != 0 && padding_row(i, inp) {
                    return pad(w_name, i);
                }
            }
            let groups = quant::groups(inp, group);
            for (i, &s) in scales.iter().enumerate() {
                if !s.is_finite() {
                    return Err(PackError::NonFinite {
                        what: s_name,
                        index: i,
                    });
                }
                if s != 0.0 && padding_row(i, groups) {
                    return pad(s_name, i);
                }
            }
        }
    }
    if let Some(index) = first_nonfinite(l.bias) {
        return Err(PackError::NonFinite {
            what: b_name,
            index,
        });
    }
    Ok(())
}

impl<B: AsRef<[u8]>> Pack<B> {
    /// Validates `bytes` as a pack (see the [format](self#format-version-1)):
    /// magic, version, alignment (at least [`MIN_ALIGN`]), length, CRC-32,
    /// every header field, the section plan, zero padding, and every value.
    /// O(length); no allocation; never panics.
    pub fn parse(bytes: B) -> Result<Pack<B>, PackError> {
        let b = bytes.as_ref();
        let (layout, checksum) = parse_header(b)?;
        let v = Views::new(b).ok_or(PackError::Misaligned {
            offset: b.as_ptr() as usize % SECTION_ALIGN,
        })?;
        // Sections in order; the gaps between them must be zero.
        let mut end = HEADER_LEN;
        let mut gap = |off: usize, len: usize| -> Result<(), PackError> {
            if let Some(i) = b[end..off].iter().position(|&x| x != 0) {
                return Err(PackError::NonZeroPadding {
                    what: Operand::Pack,
                    index: end + i,
                });
            }
            end = off + len;
            Ok(())
        };
        let w_avg = (layout.w_avg, layout.spec.w_dim * 4);
        gap(w_avg.0, w_avg.1)?;
        if let Some(index) = first_nonfinite(v.f32s(w_avg)) {
            return Err(PackError::NonFinite {
                what: Operand::WAvg,
                index,
            });
        }
        if layout.precision == Precision::F32 {
            let params = (layout.body, layout.spec.param_len() * 4);
            gap(params.0, params.1)?;
            if let Some(index) = first_nonfinite(v.f32s(params)) {
                return Err(PackError::NonFinite {
                    what: Operand::Params,
                    index,
                });
            }
        }
        for p in layout.places() {
            gap(p.weight.0, p.weight.1)?;
            gap(p.bias.0, p.bias.1)?;
            gap(p.scales.0, p.scales.1)?;
            let l = v.layer(&p, layout.precision, layout.group);
            let w = p.which;
            check_layer(&l, (w.weight(), w.bias(), w.scales()))?;
        }
        gap(layout.total, 0)?;
        Ok(Pack {
            bytes,
            layout,
            checksum,
        })
    }

    /// The network description.
    pub fn spec(&self) -> &MappingSpec {
        &self.layout.spec
    }

    /// Element type of the weights.
    pub fn precision(&self) -> Precision {
        self.layout.precision
    }

    /// Inputs per int8 scale (`None` unless int8).
    pub fn int8_group(&self) -> Option<usize> {
        (self.layout.precision == Precision::Int8).then_some(self.layout.group)
    }

    /// The format version (always [`VERSION`] for a parsed pack).
    pub fn version(&self) -> u32 {
        VERSION
    }

    /// Whether the layer gains are folded into the weights (always, in version 1).
    pub fn lr_folded(&self) -> bool {
        true
    }

    /// The stored CRC-32.
    pub fn checksum(&self) -> u32 {
        self.checksum
    }

    /// Bytes of the pack.
    pub fn len(&self) -> usize {
        self.layout.total
    }

    /// Always false: a pack has at least a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The underlying bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// Takes the pack apart, returning its storage.
    pub fn into_bytes(self) -> B {
        self.bytes
    }

    /// Typed views; an error only if `B::as_ref` now returns other bytes than
    /// were parsed (a misbehaving storage type).
    fn views(&self) -> Result<Views<'_>, Error> {
        let b = self.bytes.as_ref();
        let changed = Error::Length {
            what: Operand::Pack,
            expected: self.layout.total,
            actual: b.len(),
        };
        if b.len() != self.layout.total {
            return Err(changed);
        }
        Views::new(b).ok_or(changed)
    }

    /// The average latent used by truncation (`w_dim` elements).
    pub fn w_avg(&self) -> &[f32] {
        match self.views() {
            Ok(v) => v.f32s((self.layout.w_avg, self.layout.spec.w_dim * 4)),
            Err(_) => &[],
        }
    }

    /// The folded parameters ([`crate::fold`] layout) of an f32 pack;
    /// `None` for reduced precision.
    pub fn folded_params(&self) -> Option<&[f32]> {
        let l = &self.layout;
        (l.precision == Precision::F32)
            .then(|| self.views().ok())
            .flatten()
            .map(|v| v.f32s((l.body, l.spec.param_len() * 4)))
    }

    /// An f32 pack as a [`MappingNetwork`] borrowing its buffers (re-checks
    /// the values: O(parameters)); `None` for reduced precision.
    pub fn mapping_network(&self) -> Option<Result<MappingNetwork<&[f32]>, Error>> {
        let params = self.folded_params()?;
        Some(MappingNetwork::new(*self.spec(), params, self.w_avg()))
    }

    /// The reduced-precision layers in order (the embedding first for
    /// conditional networks); empty for f32 packs.
    pub fn layers(&self) -> impl Iterator<Item = PackLayer<'_>> {
        let l = self.layout;
        let views = self.views().ok();
        l.places()
            .filter_map(move |p| Some(views.as_ref()?.layer(&p, l.precision, l.group)))
    }

    /// Every section with its byte offset and unpadded length, in order.
    pub fn sections(&self) -> impl Iterator<Item = SectionInfo> + '_ {
        let l = self.layout;
        let head = [
            Some(SectionInfo {
                what: Operand::WAvg,
                offset: l.w_avg,
                len: l.spec.w_dim * 4,
            }),
            (l.precision == Precision::F32).then(|| SectionInfo {
                what: Operand::Params,
                offset: l.body,
                len: l.spec.param_len() * 4,
            }),
        ];
        let layers = l.places().flat_map(|p| {
            let w = p.which;
            [
                Some((w.weight(), p.weight)),
                Some((w.bias(), p.bias)),
                (p.scales.1 > 0).then_some((w.scales(), p.scales)),
            ]
            .into_iter()
            .flatten()
            .map(|(what, (offset, len))| SectionInfo { what, offset, len })
        });
        head.into_iter().flatten().chain(layers)
    }

    /// Elements of scratch [`forward`](Self::forward) needs: two activation
    /// buffers of the widest layer input ([`MappingSpec::scratch_len`]).
    pub fn scratch_len(&self) -> usize {
        self.layout.spec.scratch_len()
    }

    /// Elements of scratch [`forward_batch`](Self::forward_batch) needs for
    /// `batch` samples: `min(batch, BATCH_CHUNK) * scratch_len()` (see
    /// [`kernels::gemm::batch_scratch_len`]). Saturates.
    pub fn batch_scratch_len(&self, batch: usize) -> usize {
        kernels::gemm::batch_scratch_len(&self.layout.spec, batch)
    }

    /// Maps one sample: `w = mapping(z, c)` (SPEC §1 steps 1–3), exactly as
    /// [`forward_batch`](Self::forward_batch) with a batch of 1. `scratch`
    /// needs [`scratch_len`](Self::scratch_len) elements.
    pub fn forward(
        &self,
        kernel: Kernel,
        z: &[f32],
        c: &[f32],
        scratch: &mut [f32],
        w: &mut [f32],
    ) -> Result<(), Error> {
        self.forward_batch(kernel, z, c, 1, scratch, w)
    }

    /// Maps `batch` samples: `w[s] = mapping(z[s], c[s])`.
    ///
    /// `z [batch, z_dim]`, `c [batch, c_dim]` (empty for unconditional
    /// networks), `w [batch, w_dim]`, row-major; `scratch` needs
    /// [`batch_scratch_len`](Self::batch_scratch_len)`(batch)` elements.
    /// z (and the label embedding) are normalised in f64 with
    /// [`normalize_2nd_moment`](crate::network::normalize_2nd_moment); each layer is one
    /// [`kernels::quant`] call per chunk of
    /// [`kernels::gemm::BATCH_CHUNK`] samples (reduced precision) or one f32
    /// GEMV per sample (f32 packs), so a sample's result never depends on the
    /// batch. Errors like [`MappingNetwork::forward`]: wrong lengths,
    /// non-finite z/c, an unavailable `kernel` (before anything is written),
    /// or [`Error::Overflow`] if w is not finite.
    pub fn forward_batch(
        &self,
        kernel: Kernel,
        z: &[f32],
        c: &[f32],
        batch: usize,
        scratch: &mut [f32],
        w: &mut [f32],
    ) -> Result<(), Error> {
        if !kernel.is_available() {
            return Err(Error::KernelUnavailable);
        }
        let s = self.layout.spec;
        check_batch_io(&s, z, c, batch, scratch, w, self.batch_scratch_len(batch))?;
        let views = self.views()?;
        if batch == 0 {
            return Ok(());
        }
        let l = self.layout;
        let chunk = batch.min(kernels::gemm::BATCH_CHUNK);
        let half = chunk * (s.scratch_len() / 2);
        let (a, rest) = scratch.split_at_mut(half);
        let b = &mut rest[..half];
        let (zd, cd, wd) = (s.z_dim, s.c_dim, s.w_dim);
        let folded =
            (l.precision == Precision::F32).then(|| views.f32s((l.body, s.param_len() * 4)));
        let mut start = 0;
        while start < batch {
            let n = chunk.min(batch - start);
            let zs = &z[start * zd..(start + n) * zd];
            let cs = &c[start * cd..(start + n) * cd];
            let ws = &mut w[start * wd..(start + n) * wd];
            match folded {
                Some(params) => {
                    let (embed, layers) = fold::layers(&s, params);
                    let run = |l: &FoldedLayer<'_>, x: &[f32], y: &mut [f32]| {
                        for (xs, ys) in x
                            .chunks_exact(l.in_features)
                            .zip(y.chunks_exact_mut(l.out_features))
                        {
                            kernels::run(kernel, l.weight, l.bias, xs, l.activation, ys);
                        }
                    };
                    forward_layers(&s, zs, cs, n, a, b, embed, layers, run, ws);
                }
                None => {
                    let mut places = l.places();
                    let embed = if s.c_dim > 0 {
                        places.next().map(|p| views.layer(&p, l.precision, l.group))
                    } else {
                        None
                    };
                    let layers = places.map(|p| views.layer(&p, l.precision, l.group));
                    let run = |l: &PackLayer<'_>, x: &[f32], y: &mut [f32]| {
                        quant::run(kernel, l.weights, l.bias, x, l.in_features, l.activation, y);
                    };
                    forward_layers(&s, zs, cs, n, a, b, embed, layers, run, ws);
                }
            }
            start += n;
        }
        check_overflow(Operand::W, w)
    }

    /// Broadcasts one sample's `w` to `ws [num_ws, w_dim]` and truncates
    /// toward this pack's `w_avg` (SPEC §1 steps 4–5); see
    /// [`truncation::broadcast_truncate`].
    pub fn broadcast_truncate(
        &self,
        w: &[f32],
        psi: f32,
        cutoff: Option<usize>,
        ws: &mut [f32],
    ) -> Result<(), Error> {
        let t = truncation::Truncation { psi, cutoff };
        truncation::broadcast_truncate(w, self.w_avg(), self.layout.spec.num_ws, t, ws)
    }
}

use crate::network::MappingNetwork;

/// Bytes a section of `len` bytes takes once padded (for tools).
pub const fn padded(len: usize) -> usize {
    match align_up(len) {
        Some(n) => n,
        None => usize::MAX,
    }
}
