//! [`Network`]: a folded mapping network with its `w_avg`, where it came
//! from, and the built-in untrained network.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::bigbuf::BigBuf;

use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use stylemap_core::fold::{self, RawLayer, RawParams};
use stylemap_core::{Kernel, MappingNetwork, MappingSpec, sampler};

use crate::error::Error;

/// Which state-dict convention a network was loaded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// NVlabs StyleGAN2 / StyleGAN2-ADA / StyleGAN3 `MappingNetwork`
    /// (`fc{i}.weight`, `fc{i}.bias`, `w_avg`, `embed.*`).
    Nvlabs,
    /// rosinality/stylegan2-pytorch (`style.{1..n}.weight/bias`, `latent_avg`).
    Rosinality,
    /// The built-in untrained network of [`Network::builtin`].
    Builtin,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Nvlabs => "nvlabs",
            Layout::Rosinality => "rosinality",
            Layout::Builtin => "builtin",
        })
    }
}

/// Where a network's `w_avg` came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WAvgSource {
    /// Stored with the weights (NVlabs `w_avg`, rosinality `latent_avg`), or
    /// given to [`Network::from_parts`] / [`Network::set_w_avg`].
    Stored,
    /// Estimated as the mean w of `samples` random z
    /// (see [`crate::wavg::estimate_w_avg`]).
    Estimated {
        /// Number of z averaged.
        samples: usize,
    },
}

impl fmt::Display for WAvgSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WAvgSource::Stored => f.write_str("stored"),
            WAvgSource::Estimated { samples } => write!(f, "estimated from {samples} samples"),
        }
    }
}

/// Seed of the built-in network's weights: layer `i` uses
/// `Xoshiro256PlusPlus::seed_from_u64(BUILTIN_SEED + i)`.
pub const BUILTIN_SEED: u64 = 0x5354_594c_454d_4150; // "STYLEMAP"

/// Seed of the z stream that estimates the built-in network's `w_avg`
/// (see [`crate::wavg::estimate_w_avg`]).
pub const BUILTIN_W_AVG_SEED: u64 = 0;

/// Number of samples averaged for the built-in network's `w_avg`.
pub const BUILTIN_W_AVG_SAMPLES: usize = 4096;

/// A mapping network ready to run: folded parameters, `w_avg`, and where
/// they came from.
///
/// Cheap to share by reference: [`crate::Mapper`] borrows it. The folded
/// parameters sit behind an `Arc`, so a [`RowPool`](crate::pool::RowPool)
/// built from the network (and a clone of it) reads the same buffer rather
/// than a copy; changing a shared network (its `w_avg`) copies it first.
#[derive(Clone, Debug)]
pub struct Network {
    core: Arc<MappingNetwork<BigBuf<f32>>>,
    layout: Layout,
    w_avg_source: WAvgSource,
    metadata: BTreeMap<String, String>,
}

impl Network {
    /// Wraps folded parameters (layout of [`stylemap_core::fold`]) and
    /// `w_avg [w_dim]`; the `w_avg` is recorded as [`WAvgSource::Stored`].
    ///
    /// The GEMV kernel is [`kernel_from_env`]'s: the one named by
    /// `STYLEMAP_KERNEL` if set, else [`Kernel::best`]; change it with
    /// [`with_kernel`](Self::with_kernel).
    ///
    /// Errors if the spec is invalid, a length is wrong, a value is not
    /// finite, or `STYLEMAP_KERNEL` names an unknown or unavailable kernel.
    pub fn from_parts(
        spec: MappingSpec,
        folded: Vec<f32>,
        w_avg: Vec<f32>,
        layout: Layout,
    ) -> Result<Network, Error> {
        let kernel = kernel_from_env()?;
        Network::assemble(spec, folded, w_avg, layout, kernel)
    }

    /// [`from_parts`](Self::from_parts) with an explicit kernel (`None`:
    /// [`Kernel::best`]); never reads the environment.
    fn assemble(
        spec: MappingSpec,
        folded: Vec<f32>,
        w_avg: Vec<f32>,
        layout: Layout,
        kernel: Option<Kernel>,
    ) -> Result<Network, Error> {
        // The weights move to a huge-page buffer (crate::bigbuf): every
        // forward streams them.
        let mut core =
            MappingNetwork::new(spec, BigBuf::copy_from(&folded), BigBuf::copy_from(&w_avg))?;
        if let Some(k) = kernel {
            core = core.with_kernel(k)?;
        }
        Ok(Network {
            core: Arc::new(core),
            layout,
            w_avg_source: WAvgSource::Stored,
            metadata: BTreeMap::new(),
        })
    }

    /// Selects the GEMV kernel used by every forward of this network
    /// (overriding `STYLEMAP_KERNEL`); errors with
    /// [`stylemap_core::Error::KernelUnavailable`] if it cannot run here.
    pub fn with_kernel(self, kernel: Kernel) -> Result<Network, Error> {
        let Network {
            core,
            layout,
            w_avg_source,
            metadata,
        } = self;
        let core = Arc::unwrap_or_clone(core).with_kernel(kernel)?;
        Ok(Network {
            core: Arc::new(core),
            layout,
            w_avg_source,
            metadata,
        })
    }

    /// [`builtin`](Self::builtin), honouring `STYLEMAP_KERNEL` (see
    /// [`kernel_from_env`]): errors if it names an unknown or unavailable
    /// kernel.
    pub fn try_builtin() -> Result<Network, Error> {
        match kernel_from_env()? {
            Some(kernel) => Network::builtin().with_kernel(kernel),
            None => Ok(Network::builtin()),
        }
    }

    /// The built-in, **untrained** network: StyleGAN2 at 1024x1024 shapes
    /// (z 512, 8 fc layers of 512, w 512, `num_ws` 18, unconditional,
    /// lr_multiplier 0.01) with NVlabs' initialisation drawn from fixed seeds.
    ///
    /// - Raw weight `fc{i}.weight` (`[512, 512]`, row-major) is
    ///   [`stylemap_core::sampler::fill_box_muller_f64`] over
    ///   `Xoshiro256PlusPlus::seed_from_u64(BUILTIN_SEED + i)` (one stream per
    ///   layer, so layers are generated in parallel), each value divided by
    ///   the lr_multiplier 0.01 in f64 and rounded to f32 (NVlabs:
    ///   `randn / lr_multiplier`). Biases are 0. Then folded with
    ///   [`stylemap_core::fold::fold_nvlabs`], like a loaded checkpoint.
    /// - `w_avg` is the mean w of [`BUILTIN_W_AVG_SAMPLES`] (4096) latents,
    ///   `estimate_w_avg(&net, 4096, BUILTIN_W_AVG_SEED, _)`
    ///   ([`crate::wavg::estimate_w_avg`]), recorded as
    ///   [`WAvgSource::Estimated`]. That estimate costs 17 GFLOP (115 ms in
    ///   release on 2 cores, seconds in a debug build), so its result is
    ///   stored in the source as a constant (`src/builtin_w_avg.rs`); a test
    ///   recomputes it and checks it within 1e-5.
    ///
    /// Uses [`Kernel::best`] and does **not** read `STYLEMAP_KERNEL` (it
    /// cannot fail); [`try_builtin`](Self::try_builtin) does.
    ///
    /// Deterministic and bit-identical on every target. Nothing is cached:
    /// each call rebuilds the weights (35-40 ms in release on the 2-core
    /// x86-64 dev machine; about 0.3 s in a debug build).
    pub fn builtin() -> Network {
        let spec = MappingSpec::STYLEGAN2_1024;
        let lr = spec.lr_multiplier;
        let layer = |i: usize| -> Vec<f32> {
            let (inp, out) = spec.layer_shape(i);
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(BUILTIN_SEED.wrapping_add(i as u64));
            let mut tmp = vec![0.0f64; inp * out];
            sampler::fill_box_muller_f64(&mut rng, &mut tmp);
            tmp.iter().map(|&v| (v / lr) as f32).collect()
        };
        let weights = crate::batch::par_map(0..spec.num_layers, layer);
        let w_avg = crate::builtin_w_avg::BUILTIN_W_AVG.to_vec();
        let mut net = fold_zero_bias(&spec, &weights)
            .and_then(|folded| Network::assemble(spec, folded, w_avg, Layout::Builtin, None))
            .expect("the built-in network's parameters are valid by construction");
        net.w_avg_source = WAvgSource::Estimated {
            samples: BUILTIN_W_AVG_SAMPLES,
        };
        net.metadata.insert(
            "source".into(),
            "built-in untrained network (NVlabs initialisation, fixed seed)".into(),
        );
        net
    }

    /// The core network (folded parameters, `w_avg`, kernel).
    pub fn core(&self) -> &MappingNetwork<BigBuf<f32>> {
        &self.core
    }

    /// The core network as the shared handle the pool's GEMV source keeps
    /// (so it holds no second copy of the weights).
    pub(crate) fn shared_core(&self) -> &Arc<MappingNetwork<BigBuf<f32>>> {
        &self.core
    }

    /// The GEMV kernel every forward of this network uses.
    pub fn kernel(&self) -> Kernel {
        self.core.kernel()
    }

    /// Sizes and hyper-parameters.
    pub fn spec(&self) -> &MappingSpec {
        self.core.spec()
    }

    /// The state-dict convention this network was loaded from.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The average latent used by truncation (`w_dim` elements).
    pub fn w_avg(&self) -> &[f32] {
        self.core.w_avg()
    }

    /// Where [`w_avg`](Self::w_avg) came from.
    pub fn w_avg_source(&self) -> WAvgSource {
        self.w_avg_source
    }

    /// The checkpoint's safetensors metadata (`__metadata__`), verbatim
    /// (see [`mod@crate::load`] for the keys that are read). The built-in network
    /// has `source` only.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Whether this is the untrained [`builtin`](Self::builtin) network (its
    /// outputs are not those of any trained StyleGAN).
    pub fn is_builtin(&self) -> bool {
        self.layout == Layout::Builtin
    }

    /// Replaces `w_avg` (e.g. with one read from a file); the source becomes
    /// [`WAvgSource::Stored`]. Errors unless it has `w_dim` finite elements.
    pub fn set_w_avg(&mut self, w_avg: Vec<f32>) -> Result<(), Error> {
        self.set_w_avg_from(w_avg, WAvgSource::Stored)
    }

    /// Replaces `w_avg` and records where it came from.
    /// Errors unless it has `w_dim` finite elements.
    pub fn set_w_avg_from(&mut self, w_avg: Vec<f32>, source: WAvgSource) -> Result<(), Error> {
        let spec = *self.spec();
        if w_avg.len() != spec.w_dim {
            return Err(Error::invalid(format!(
                "w_avg has {} elements, expected w_dim = {}",
                w_avg.len(),
                spec.w_dim
            )));
        }
        crate::error::check_finite("w_avg", &w_avg, 0)?;
        Arc::make_mut(&mut self.core).replace_w_avg(BigBuf::copy_from(&w_avg))?;
        self.w_avg_source = source;
        Ok(())
    }

    /// Replaces the metadata map (used by the loader).
    pub(crate) fn set_metadata(&mut self, metadata: BTreeMap<String, String>) {
        self.metadata = metadata;
    }
}

/// Folds raw NVlabs fc weights `weights[i]` (`[out_i, in_i]` row-major) of
/// an unconditional `spec`, with every bias 0, into the folded layout
/// ([`stylemap_core::fold::fold_nvlabs`]): the synthetic networks' last step.
pub(crate) fn fold_zero_bias(spec: &MappingSpec, weights: &[Vec<f32>]) -> Result<Vec<f32>, Error> {
    let widest = (0..spec.num_layers)
        .map(|i| spec.layer_shape(i).1)
        .max()
        .unwrap_or(0);
    let bias = vec![0.0f32; widest];
    let layers: Vec<RawLayer<'_>> = weights
        .iter()
        .zip(0..spec.num_layers)
        .map(|(w, i)| RawLayer {
            weight: w,
            bias: &bias[..spec.layer_shape(i).1],
        })
        .collect();
    let raw = RawParams {
        embed: None,
        layers: &layers,
    };
    let mut folded = vec![0.0f32; spec.param_len()];
    fold::fold_nvlabs(spec, &raw, &mut folded)?;
    Ok(folded)
}

/// The kernel named by the environment variable `STYLEMAP_KERNEL`
/// ([`Kernel::ENV_VAR`]), the **only** place this crate reads it.
///
/// Unset, empty or blank: `Ok(None)` (the caller uses [`Kernel::best`]).
/// Otherwise the trimmed value is looked up with [`Kernel::from_name`]
/// (`scalar`, `portable`, `avx2`, `avx512`, `neon`); an unknown name, a
/// kernel this CPU/build cannot run, or a value that is not Unicode is an
/// error. Read by [`Network::from_parts`] (so by [`crate::load()`]) and
/// [`Network::try_builtin`]; a [`crate::Mapper`] or [`crate::pool::RowPool`]
/// uses its network's kernel.
pub fn kernel_from_env() -> Result<Option<Kernel>, Error> {
    let var = Kernel::ENV_VAR;
    let value = match std::env::var(var) {
        Ok(v) => v,
        Err(std::env::VarError::NotPresent) => return Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => {
            return Err(Error::invalid(format!("{var}={v:?} is not valid Unicode")));
        }
    };
    let name = value.trim();
    if name.is_empty() {
        return Ok(None);
    }
    let Some(kernel) = Kernel::from_name(name) else {
        let known: Vec<&str> = Kernel::ALL.iter().map(|k| k.name()).collect();
        return Err(Error::invalid(format!(
            "{var}={name}: unknown kernel (known: {})",
            known.join(", ")
        )));
    };
    if !kernel.is_available() {
        return Err(Error::invalid(format!(
            "{var}={name}: that kernel cannot run on this CPU/build"
        )));
    }
    Ok(Some(kernel))
}
