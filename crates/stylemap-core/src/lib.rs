//! StyleGAN's mapping network for `no_std`: z (+ label c) -> w -> ws, exactly
//! as NVlabs' StyleGAN2 / StyleGAN2-ADA / StyleGAN3 `MappingNetwork` computes it.
//!
//! - [`MappingSpec`] describes a network; [`fold::fold_nvlabs`] turns raw
//!   state-dict parameters into the inference layout once; [`MappingNetwork`]
//!   borrows (or owns) that buffer and runs [`MappingNetwork::forward`] with
//!   caller-provided scratch: no heap, no large stack arrays.
//! - [`truncation`] broadcasts w to `num_ws` rows and applies the truncation trick.
//! - [`kernels`] holds the fused GEMV kernels: a scalar oracle, a portable
//!   SIMD kernel and hand-written AVX2 / AVX-512 / NEON kernels picked at run
//!   time, chosen by a [`Kernel`] value.
//! - [`kernels::gemm`] is the batched path: weights packed once into panels
//!   ([`kernels::gemm::pack_network`]), register-blocked kernels that stream
//!   them once per batch, and [`PackedNetwork::forward_batch`] for many
//!   samples per call, still without allocation.
//! - [`kernels::amx`] runs the batched layers on Intel AMX tiles where the
//!   CPU and OS allow it, with f32 accuracy: each operand split exactly into
//!   three bf16 parts, [`kernels::amx::AmxNetwork::forward_batch`] for a
//!   whole network.
//! - [`sampler`] draws z: numpy's `RandomState(seed).randn` bit for bit, and
//!   Box-Muller over xoshiro256++.
//!
//! # Example: z -> ws for a tiny network
//!
//! ```
//! use stylemap_core::{MappingNetwork, MappingSpec, fold, sampler, truncation::Truncation};
//!
//! // A 2-layer network 4 -> 4 -> 3, broadcast to 5 synthesis layers.
//! let mut spec = MappingSpec::nvlabs(4, 0, 3, 2, 5);
//! spec.layer_features = 4;
//! // Raw parameters as a state dict holds them (NVlabs init: randn / lr, so large).
//! let w0: [f32; 16] = core::array::from_fn(|i| (i as f32 - 7.5) * 20.0);
//! let w1: [f32; 12] = core::array::from_fn(|i| (5.5 - i as f32) * 30.0);
//! let (b0, b1) = ([1.0f32; 4], [-2.0f32; 3]);
//! let layers = [
//!     fold::RawLayer { weight: &w0, bias: &b0 },
//!     fold::RawLayer { weight: &w1, bias: &b1 },
//! ];
//! let raw = fold::RawParams { embed: None, layers: &layers };
//! let mut params = [0.0f32; 16 + 4 + 12 + 3];
//! fold::fold_nvlabs(&spec, &raw, &mut params)?;
//! let w_avg = [0.1f32, 0.2, 0.3];
//! let net = MappingNetwork::new(spec, &params[..], &w_avg[..])?;
//!
//! // z for seed 85 exactly as NVlabs' gen_images.py draws it.
//! let mut z = [0.0f32; 4];
//! sampler::z_from_seed_numpy(85, &mut z);
//!
//! let mut scratch = [0.0f32; 8];
//! assert_eq!(spec.scratch_len(), scratch.len());
//! let mut w = [0.0f32; 3];
//! net.forward(&z, &[], &mut scratch, &mut w)?;
//!
//! let mut ws = [0.0f32; 5 * 3];
//! net.broadcast_truncate(&w, 0.7, Some(2), &mut ws)?;
//! assert_eq!(&ws[6..9], &w); // layer 2 is past the cutoff: untouched
//! # Ok::<(), stylemap_core::Error>(())
//! ```
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod fold;
pub mod kernels;
pub mod network;
pub mod pack;
pub mod sampler;
pub mod spec;
pub mod truncation;

/// The numeric contract: what is promised for every input, and how it is tested.
#[doc = include_str!("contract.md")]
pub mod contract {}

pub use error::{Error, Operand};
pub use kernels::Kernel;
pub use kernels::gemm::PackedNetwork;
pub use network::MappingNetwork;
pub use spec::{Activation, MappingSpec};
