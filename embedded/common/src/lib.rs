//! What the stylemap firmware computes, in one place, so that the firmware
//! (Cortex-M, under QEMU) and the host check compute it with the same code:
//!
//! for each seed: `z = RandomState(seed).randn(z_dim)` (numpy's legacy
//! sampler with the correctly rounded log: the same bits on every target),
//! `w = mapping(z)`, `ws = broadcast_truncate(w, psi 0.7, all layers)`, and
//! an FNV-1a-64 checksum over the bits of every ws value.
//!
//! [`run`] prints one line per seed and a final `checksum` line into any
//! [`core::fmt::Write`]; the firmware sends them over semihosting, the host
//! check to stdout, and CI compares the lines. The network is anything that
//! implements [`Mapper`]: the f32 [`MappingNetwork`] (the Cortex-M0 firmware,
//! over the deterministic [`synth`] network) or an int8 pack.
//!
//! Everything here is `no_std`, allocation-free and free of `unsafe`; with
//! the `firmware` feature, [`fw`] adds the Cortex-M side (semihosting
//! console and exit, panic and HardFault handlers, the painted-stack reading),
//! which holds this crate's only `unsafe`.
#![no_std]
#![deny(unsafe_code)]

use core::fmt::{self, Write};
use core::ops::Range;

use stylemap_core::pack::{Pack, PackError};
use stylemap_core::sampler::NumpyRandomState;
use stylemap_core::{Error, Kernel, MappingNetwork, MappingSpec};

#[cfg(feature = "firmware")]
pub mod fw;
pub mod synth;

/// Seeds the Cortex-M0 firmware maps.
pub const M0_SEEDS: Range<u32> = 0..8;

/// Seeds the Cortex-M4F firmware maps (34-47 ms each under QEMU on the CI
/// machine, see README.md: 8 keep the QEMU run under a second).
pub const M4F_SEEDS: Range<u32> = 0..8;

/// Truncation strength used everywhere (NVlabs' usual 0.7), all layers truncated.
pub const PSI: f32 = 0.7;

/// The kernel the firmware and the host check both run. The scalar oracle
/// adds in index order with one f32 accumulator and no FMA, so the result is
/// the same bits on a Cortex-M4F FPU, in Cortex-M0 soft-float and on x86-64.
pub const KERNEL: Kernel = Kernel::Scalar;

/// FNV-1a, 64-bit, over little-endian bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The empty hash.
    pub const fn new() -> Self {
        Fnv1a64(Self::OFFSET)
    }

    /// Hashes bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// Hashes the IEEE bits of each value, little-endian.
    pub fn write_f32s(&mut self, values: &[f32]) {
        for v in values {
            self.write(&v.to_bits().to_le_bytes());
        }
    }

    /// The hash so far.
    pub const fn finish(&self) -> u64 {
        self.0
    }
}

/// The sizes [`run`] needs from a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Length of z.
    pub z_dim: usize,
    /// Length of w.
    pub w_dim: usize,
    /// Rows of ws.
    pub num_ws: usize,
    /// Elements of forward scratch.
    pub scratch_len: usize,
}

impl Dims {
    /// The sizes of an f32 network described by `spec`.
    pub const fn of_spec(spec: &MappingSpec) -> Dims {
        let widest = if spec.input_features() > spec.layer_features {
            spec.input_features()
        } else {
            spec.layer_features
        };
        Dims {
            z_dim: spec.z_dim,
            w_dim: spec.w_dim,
            num_ws: spec.num_ws,
            scratch_len: 2 * widest,
        }
    }

    /// Elements of ws: `num_ws * w_dim`.
    pub const fn ws_len(&self) -> usize {
        self.num_ws * self.w_dim
    }
}

/// A mapping network [`run`] can drive: unconditional, z -> w -> ws.
pub trait Mapper {
    /// Its sizes.
    fn dims(&self) -> Dims;
    /// A short description for the header line (precision, kernel).
    fn describe(&self, out: &mut dyn Write) -> fmt::Result;
    /// `w = mapping(z)` with caller scratch.
    fn forward(&self, z: &[f32], scratch: &mut [f32], w: &mut [f32]) -> Result<(), Error>;
    /// `ws = broadcast(w)`, then truncate every row toward `w_avg` with `psi`.
    fn broadcast_truncate(&self, w: &[f32], psi: f32, ws: &mut [f32]) -> Result<(), Error>;
}

impl<P: AsRef<[f32]>> Mapper for MappingNetwork<P> {
    fn dims(&self) -> Dims {
        Dims {
            scratch_len: self.spec().scratch_len(),
            ..Dims::of_spec(self.spec())
        }
    }

    fn describe(&self, out: &mut dyn Write) -> fmt::Result {
        write!(out, "f32 kernel {}", self.kernel().name())
    }

    fn forward(&self, z: &[f32], scratch: &mut [f32], w: &mut [f32]) -> Result<(), Error> {
        MappingNetwork::forward(self, z, &[], scratch, w)
    }

    fn broadcast_truncate(&self, w: &[f32], psi: f32, ws: &mut [f32]) -> Result<(), Error> {
        MappingNetwork::broadcast_truncate(self, w, psi, None, ws)
    }
}

impl<B: AsRef<[u8]>> Mapper for Pack<B> {
    fn dims(&self) -> Dims {
        Dims {
            scratch_len: self.scratch_len(),
            ..Dims::of_spec(self.spec())
        }
    }

    fn describe(&self, out: &mut dyn Write) -> fmt::Result {
        write!(out, "{} pack", self.precision())?;
        if let Some(g) = self.int8_group() {
            write!(out, " group {g}")?;
        }
        write!(
            out,
            " crc32 {:#010x} kernel {}",
            self.checksum(),
            KERNEL.name()
        )
    }

    fn forward(&self, z: &[f32], scratch: &mut [f32], w: &mut [f32]) -> Result<(), Error> {
        Pack::forward(self, KERNEL, z, &[], scratch, w)
    }

    fn broadcast_truncate(&self, w: &[f32], psi: f32, ws: &mut [f32]) -> Result<(), Error> {
        Pack::broadcast_truncate(self, w, psi, None, ws)
    }
}

/// The caller's buffers, each at least as long as [`Dims`] says (longer is
/// fine: only the prefix is used). Firmware keeps them in `.bss`.
#[derive(Debug)]
pub struct Buffers<'a> {
    /// `z_dim`.
    pub z: &'a mut [f32],
    /// `scratch_len`.
    pub scratch: &'a mut [f32],
    /// `w_dim`.
    pub w: &'a mut [f32],
    /// `num_ws * w_dim`.
    pub ws: &'a mut [f32],
}

/// Why [`run`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunError {
    /// The core refused (lengths, non-finite values, overflow).
    Core(Error),
    /// The pack is malformed (or misaligned).
    Pack(PackError),
    /// A caller buffer is shorter than the network needs.
    BufferTooSmall,
    /// The network bytes are not aligned for f32 or have the wrong length.
    BadBlob,
    /// Writing the report failed.
    Fmt,
}

impl From<Error> for RunError {
    fn from(e: Error) -> Self {
        RunError::Core(e)
    }
}

impl From<PackError> for RunError {
    fn from(e: PackError) -> Self {
        RunError::Pack(e)
    }
}

impl From<fmt::Error> for RunError {
    fn from(_: fmt::Error) -> Self {
        RunError::Fmt
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Core(e) => write!(f, "stylemap-core: {e}"),
            RunError::Pack(e) => write!(f, "pack: {e}"),
            RunError::BufferTooSmall => f.write_str("a caller buffer is too small for the network"),
            RunError::BadBlob => f.write_str("network bytes misaligned or of the wrong length"),
            RunError::Fmt => f.write_str("writing the report failed"),
        }
    }
}

fn prefix(buf: &mut [f32], len: usize) -> Result<&mut [f32], RunError> {
    buf.get_mut(..len).ok_or(RunError::BufferTooSmall)
}

/// Maps `seeds` through `net`, prints the report into `out` and returns the
/// checksum over all ws values of all seeds, in order.
///
/// The report (compared line by line between firmware and host):
///
/// ```text
/// stylemap <label>: <net.describe()> z_dim 512 w_dim 512 num_ws 18 psi 0.7 seeds 0..3
/// seed 0 fnv1a64 0x0123456789abcdef w0 0x3f800000
/// ...
/// checksum <label> seeds 0..3 fnv1a64 0x0123456789abcdef
/// ```
///
/// (`w0` is the bit pattern of `w[0]`, before truncation.) Values are printed
/// as bits, never with float formatting, which would cost the Cortex-M0 flash.
pub fn run<M: Mapper + ?Sized, O: Write + ?Sized>(
    label: &str,
    net: &M,
    seeds: Range<u32>,
    bufs: Buffers<'_>,
    out: &mut O,
) -> Result<u64, RunError> {
    let d = net.dims();
    let z = prefix(bufs.z, d.z_dim)?;
    let scratch = prefix(bufs.scratch, d.scratch_len)?;
    let w = prefix(bufs.w, d.w_dim)?;
    let ws = prefix(bufs.ws, d.ws_len())?;
    let mut out = Dyn(out);
    write!(out, "stylemap {label}: ")?;
    net.describe(&mut out)?;
    writeln!(
        out,
        " z_dim {} w_dim {} num_ws {} psi 0.7 seeds {}..{}",
        d.z_dim, d.w_dim, d.num_ws, seeds.start, seeds.end
    )?;
    let mut total = Fnv1a64::new();
    for seed in seeds.clone() {
        NumpyRandomState::new(seed).randn_f32(z);
        net.forward(z, scratch, w)?;
        net.broadcast_truncate(w, PSI, ws)?;
        let mut one = Fnv1a64::new();
        one.write_f32s(ws);
        total.write_f32s(ws);
        writeln!(
            out,
            "seed {seed} fnv1a64 {:#018x} w0 {:#010x}",
            one.finish(),
            w[0].to_bits()
        )?;
    }
    writeln!(
        out,
        "checksum {label} seeds {}..{} fnv1a64 {:#018x}",
        seeds.start,
        seeds.end,
        total.finish()
    )?;
    Ok(total.finish())
}

/// `&mut O` for an unsized `O: Write` as a `dyn Write`.
struct Dyn<'a, O: Write + ?Sized>(&'a mut O);

impl<O: Write + ?Sized> Write for Dyn<'_, O> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_values() {
        // Reference values of the FNV-1a 64-bit test suite.
        let mut h = Fnv1a64::new();
        assert_eq!(h.finish(), 0xcbf2_9ce4_8422_2325);
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv1a64::new();
        h.write(b"foobar");
        assert_eq!(h.finish(), 0x8594_4171_f739_67e8);
    }
}
