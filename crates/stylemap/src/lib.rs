//! StyleGAN's mapping network on a host with `std`: load real checkpoints,
//! map z to w in batches, broadcast, truncate and mix styles.
//!
//! Built on [`stylemap_core`] (re-exported as [`core`]), which does the maths.
//!
//! - [`load()`] / [`inspect()`] read safetensors checkpoints (NVlabs or
//!   rosinality layout) into a [`Network`]; [`Network::builtin`] is an
//!   untrained network that needs no file.
//! - [`Mapper`] maps batches z (+ c) -> w, GEMV or sgemm, multi-threaded;
//!   its GEMV path runs on [`pool::RowPool`], persistent threads that split
//!   each layer's rows (two cores at batch 1, bit-identical to one).
//! - [`broadcast`] turns w into ws and truncates, mixes and interpolates.
//! - [`seeds`] draws z for a seed exactly as numpy does on this machine.
//! - [`wavg`] estimates `w_avg` and applies NVlabs' EMA update.
//!
//! ```
//! use stylemap::{Mapper, Network, broadcast};
//!
//! let net = Network::builtin();
//! let s = *net.spec();
//! let mut z = vec![0.0f32; 2 * s.z_dim];
//! stylemap::seeds::z_from_seed_numpy(0, &mut z[..s.z_dim]);
//! stylemap::seeds::z_from_seed_numpy(1, &mut z[s.z_dim..]);
//! let mut w = vec![0.0f32; 2 * s.w_dim];
//! Mapper::new(&net).map(&z, &[], &mut w)?;
//! let mut ws = vec![0.0f32; 2 * s.num_ws * s.w_dim];
//! broadcast::broadcast(&w, s.w_dim, s.num_ws, &mut ws)?;
//! broadcast::truncate(&mut ws, net.w_avg(), s.num_ws, 0.7, None)?;
//! # Ok::<(), stylemap::Error>(())
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod batch;
pub mod bigbuf;
pub mod broadcast;
mod builtin_w_avg;
pub mod error;
pub mod load;
pub mod network;
pub mod npy;
pub mod pack;
pub mod pool;
pub mod seeds;
pub mod wavg;

pub use batch::Mapper;
pub use error::Error;
pub use load::{Inspection, LoadOptions, inspect, load};
pub use network::{Layout, Network, WAvgSource};
pub use pack::{PackMapper, PackNetwork, load_pack};
pub use stylemap_core as core;
