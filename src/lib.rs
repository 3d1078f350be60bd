//! `stylemap-suite`: the workspace's shared test kit.
//!
//! Two things live here:
//!
//! * the synthetic "hash nets" of `tools/SYNTHETIC_NETS.md` ([`lowbias32`],
//!   [`hash_unit`], [`SyntheticSpec`], [`SyntheticNet`]): raw float32 mapping-network
//!   parameters generated from a hash, bit for bit identical to what
//!   `tools/reference.py` generates, so large networks never need committing;
//! * the golden fixtures of `tests/fixtures/golden/` written by
//!   `tools/make_golden.py` ([`golden_manifest`], [`Manifest`], [`load_npy_f64`]).
//!
//! Everything panics with a descriptive message on error: this is test code.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::Deserialize;

// --------------------------------------------------------------------------
// Synthetic hash nets
// --------------------------------------------------------------------------

/// Chris Wellons' `lowbias32` integer hash (all arithmetic mod 2^32).
#[must_use]
pub const fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The hash value in `[-1, 1)` of element `i` of tensor `tensor_id`:
/// `(f64(h >> 8) - 2^23) / 2^23` with `h = lowbias32(tensor_id * 0x9E3779B9 + i)`
/// (mod 2^32). Exact in f64.
#[must_use]
pub fn hash_unit(tensor_id: u32, i: u32) -> f64 {
    let h = lowbias32(tensor_id.wrapping_mul(0x9E37_79B9).wrapping_add(i));
    const TWO_23: f64 = 8_388_608.0;
    (f64::from(h >> 8) - TWO_23) / TWO_23
}

/// `sqrt(3)` exactly as the f64 literal of `tools/SYNTHETIC_NETS.md`.
const SQRT3_LITERAL: f64 = 1.732_050_807_568_877_2;

/// Hyper-parameters of a synthetic mapping network (NVlabs names).
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// Human-readable name (the manifest's `name`).
    pub name: String,
    /// The net's number; tensor ids are `salt * 1000 + k`.
    pub salt: u32,
    /// Latent size.
    pub z_dim: usize,
    /// Label size (0 = unconditional).
    pub c_dim: usize,
    /// Output size.
    pub w_dim: usize,
    /// Number of fully connected layers.
    pub num_layers: usize,
    /// Hidden width of the fc layers (NVlabs `layer_features`).
    pub layer_features: usize,
    /// Width of the label embedding (0 when `c_dim == 0`).
    pub embed_features: usize,
    /// Number of broadcast w vectors.
    pub num_ws: usize,
    /// Learning-rate multiplier of the fc layers (0.01 in official configs).
    pub lr_multiplier: f64,
    /// `true` for a linear activation, `false` for lrelu(0.2) * sqrt(2).
    pub linear: bool,
}

impl SyntheticSpec {
    /// Layer widths: `[z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]`.
    #[must_use]
    pub fn features(&self) -> Vec<usize> {
        let mut f = Vec::with_capacity(self.num_layers + 1);
        f.push(self.z_dim + self.embed_features);
        for _ in 1..self.num_layers {
            f.push(self.layer_features);
        }
        f.push(self.w_dim);
        f
    }
}

/// One synthetic tensor: `f32((unit * scale) / lr)` per element, row-major.
fn synthetic_tensor(salt: u32, k: u32, len: usize, scale: f64, lr: f64) -> Vec<f32> {
    let id = salt.wrapping_mul(1000).wrapping_add(k);
    (0..len)
        .map(|i| {
            let i = u32::try_from(i).expect("tensor too large for the hash index");
            // Evaluated left to right in f64, rounded once to f32.
            #[allow(clippy::cast_possible_truncation)]
            let v = ((hash_unit(id, i) * scale) / lr) as f32;
            v
        })
        .collect()
}

/// The raw float32 parameters (as a state dict stores them) of a synthetic net.
#[derive(Debug, Clone)]
pub struct SyntheticNet {
    spec: SyntheticSpec,
    fc_weights: Vec<Vec<f32>>,
    fc_biases: Vec<Vec<f32>>,
    embed_weight: Vec<f32>,
    embed_bias: Vec<f32>,
    w_avg: Vec<f32>,
}

impl SyntheticNet {
    /// Generates every tensor of the net described by `spec`.
    ///
    /// # Panics
    /// If `num_layers == 0`.
    #[must_use]
    pub fn new(spec: SyntheticSpec) -> Self {
        assert!(
            spec.num_layers > 0,
            "a mapping network needs at least one layer"
        );
        let feats = spec.features();
        let salt = spec.salt;
        let mut fc_weights = Vec::with_capacity(spec.num_layers);
        let mut fc_biases = Vec::with_capacity(spec.num_layers);
        for (i, pair) in feats.windows(2).enumerate() {
            let (fin, fout) = (pair[0], pair[1]);
            let k = u32::try_from(2 * i).expect("too many layers");
            fc_weights.push(synthetic_tensor(
                salt,
                k,
                fout * fin,
                SQRT3_LITERAL,
                spec.lr_multiplier,
            ));
            fc_biases.push(synthetic_tensor(salt, k + 1, fout, 50.0, 1.0));
        }
        let (embed_weight, embed_bias) = if spec.c_dim > 0 {
            (
                synthetic_tensor(
                    salt,
                    100,
                    spec.embed_features * spec.c_dim,
                    SQRT3_LITERAL,
                    1.0,
                ),
                synthetic_tensor(salt, 101, spec.embed_features, 0.5, 1.0),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let w_avg = synthetic_tensor(salt, 200, spec.w_dim, 2.0, 1.0);
        Self {
            spec,
            fc_weights,
            fc_biases,
            embed_weight,
            embed_bias,
            w_avg,
        }
    }

    /// The hyper-parameters this net was generated from.
    #[must_use]
    pub fn spec(&self) -> &SyntheticSpec {
        &self.spec
    }

    /// `fc{i}.weight`, shape `[out, in]`, row-major.
    ///
    /// # Panics
    /// If `i >= num_layers`.
    #[must_use]
    pub fn fc_weight(&self, i: usize) -> &[f32] {
        &self.fc_weights[i]
    }

    /// `fc{i}.bias`, shape `[out]`.
    ///
    /// # Panics
    /// If `i >= num_layers`.
    #[must_use]
    pub fn fc_bias(&self, i: usize) -> &[f32] {
        &self.fc_biases[i]
    }

    /// `embed.weight`, shape `[embed_features, c_dim]`; empty for unconditional nets.
    #[must_use]
    pub fn embed_weight(&self) -> &[f32] {
        &self.embed_weight
    }

    /// `embed.bias`, shape `[embed_features]`; empty for unconditional nets.
    #[must_use]
    pub fn embed_bias(&self) -> &[f32] {
        &self.embed_bias
    }

    /// `w_avg`, shape `[w_dim]`.
    #[must_use]
    pub fn w_avg(&self) -> &[f32] {
        &self.w_avg
    }

    /// The whole state dict in NVlabs key order (`fc0.weight`, `fc0.bias`, ...,
    /// then `embed.weight`, `embed.bias` if conditional, then `w_avg`), as
    /// `(key, shape, data)`. Keys carry no `mapping.` prefix.
    #[must_use]
    pub fn state_dict(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        let feats = self.spec.features();
        let mut out = Vec::with_capacity(2 * self.spec.num_layers + 3);
        for i in 0..self.spec.num_layers {
            let (fin, fout) = (feats[i], feats[i + 1]);
            out.push((format!("fc{i}.weight"), vec![fout, fin], self.fc_weight(i)));
            out.push((format!("fc{i}.bias"), vec![fout], self.fc_bias(i)));
        }
        if self.spec.c_dim > 0 {
            let e = self.spec.embed_features;
            out.push((
                "embed.weight".to_owned(),
                vec![e, self.spec.c_dim],
                self.embed_weight(),
            ));
            out.push(("embed.bias".to_owned(), vec![e], self.embed_bias()));
        }
        out.push(("w_avg".to_owned(), vec![self.spec.w_dim], self.w_avg()));
        out
    }
}

// --------------------------------------------------------------------------
// Golden fixtures
// --------------------------------------------------------------------------

/// The activation of a net's fc layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Leaky ReLU, slope 0.2, times sqrt(2).
    Lrelu,
    /// Identity.
    Linear,
}

/// One network of the golden manifest (its weights are a [`SyntheticNet`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldenNet {
    /// Unique name, referenced by [`GoldenCase::net`].
    pub name: String,
    /// Hash salt of the synthetic weights.
    pub salt: u32,
    /// Latent size.
    pub z_dim: usize,
    /// Label size (0 = unconditional).
    pub c_dim: usize,
    /// Output size.
    pub w_dim: usize,
    /// Number of fc layers.
    pub num_layers: usize,
    /// Hidden width of the fc layers.
    pub layer_features: usize,
    /// Width of the label embedding (0 when unconditional).
    pub embed_features: usize,
    /// Number of broadcast w vectors.
    pub num_ws: usize,
    /// Learning-rate multiplier of the fc layers.
    pub lr_multiplier: f64,
    /// Activation of the fc layers.
    pub activation: Activation,
}

impl GoldenNet {
    /// The [`SyntheticSpec`] with these hyper-parameters.
    #[must_use]
    pub fn spec(&self) -> SyntheticSpec {
        SyntheticSpec {
            name: self.name.clone(),
            salt: self.salt,
            z_dim: self.z_dim,
            c_dim: self.c_dim,
            w_dim: self.w_dim,
            num_layers: self.num_layers,
            layer_features: self.layer_features,
            embed_features: self.embed_features,
            num_ws: self.num_ws,
            lr_multiplier: self.lr_multiplier,
            linear: self.activation == Activation::Linear,
        }
    }

    /// Generates this net's weights.
    #[must_use]
    pub fn synthetic(&self) -> SyntheticNet {
        SyntheticNet::new(self.spec())
    }
}

/// One truncated output of a case.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldenWs {
    /// Truncation psi (never 1 except in the explicit `psi = 1` fixtures).
    pub psi: f64,
    /// Truncate layers `i < cutoff`; `None` = all layers.
    pub cutoff: Option<usize>,
    /// File name of the `[num_ws, w_dim]` array, relative to [`golden_dir`].
    pub file: String,
}

/// One (net, seed, class) input and its expected outputs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldenCase {
    /// Name of the [`GoldenNet`].
    pub net: String,
    /// `np.random.RandomState(seed).randn(z_dim)` gives z.
    pub seed: u32,
    /// One-hot label index for conditional nets, else `None`.
    pub class: Option<usize>,
    /// File name of z `[z_dim]` (float64), relative to [`golden_dir`].
    pub z: String,
    /// File name of w `[w_dim]` (psi 1), relative to [`golden_dir`].
    pub w: String,
    /// Truncated outputs `[num_ws, w_dim]`.
    pub ws: Vec<GoldenWs>,
}

impl GoldenCase {
    /// The one-hot label as float32 (`None` for unconditional cases).
    ///
    /// # Panics
    /// If `class >= c_dim`.
    #[must_use]
    pub fn one_hot(&self, c_dim: usize) -> Option<Vec<f32>> {
        self.class.map(|k| {
            assert!(k < c_dim, "class {k} out of range for c_dim {c_dim}");
            let mut c = vec![0.0; c_dim];
            c[k] = 1.0;
            c
        })
    }
}

/// `tests/fixtures/golden/manifest.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version (1).
    pub format: u32,
    /// How the fixtures were generated.
    pub note: String,
    /// numpy version that generated them.
    pub numpy_version: String,
    /// Absolute tolerance on w and ws that implementations must meet.
    pub tolerance_w_abs: f64,
    /// The networks.
    pub nets: Vec<GoldenNet>,
    /// The cases.
    pub cases: Vec<GoldenCase>,
}

impl Manifest {
    /// The net called `name`, if any.
    #[must_use]
    pub fn net(&self, name: &str) -> Option<&GoldenNet> {
        self.nets.iter().find(|n| n.name == name)
    }
}

/// Absolute path of `tests/fixtures/golden/` in the workspace root.
#[must_use]
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden")
}

/// Absolute path of a fixture file named in the manifest.
#[must_use]
pub fn golden_path(file: &str) -> PathBuf {
    golden_dir().join(file)
}

/// Reads and parses the golden manifest.
///
/// # Panics
/// If the file is missing or malformed.
#[must_use]
pub fn golden_manifest() -> Manifest {
    let path = golden_dir().join("manifest.json");
    let f = File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    serde_json::from_reader(BufReader::new(f))
        .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Reads a C-order float64 `.npy` file: `(shape, data)` with data row-major.
///
/// # Panics
/// If the file is missing, not float64, or Fortran-ordered.
#[must_use]
pub fn load_npy_f64(path: impl AsRef<Path>) -> (Vec<usize>, Vec<f64>) {
    let path = path.as_ref();
    let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let npy = npyz::NpyFile::new(BufReader::new(f))
        .unwrap_or_else(|e| panic!("read npy header of {}: {e}", path.display()));
    assert!(
        npy.order() == npyz::Order::C,
        "{}: Fortran order is not supported",
        path.display()
    );
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).expect("dimension overflows usize"))
        .collect();
    let data: Vec<f64> = npy
        .into_vec()
        .unwrap_or_else(|e| panic!("read f64 data of {}: {e}", path.display()));
    assert_eq!(
        data.len(),
        shape.iter().product::<usize>(),
        "{}: data length does not match shape",
        path.display()
    );
    (shape, data)
}

/// [`load_npy_f64`] of a fixture file named in the manifest.
#[must_use]
pub fn load_golden(file: &str) -> (Vec<usize>, Vec<f64>) {
    load_npy_f64(golden_path(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowbias32_matches_python() {
        // Values from tools/reference.py, cross-checked with bash arithmetic.
        assert_eq!(lowbias32(0), 0);
        assert_eq!(lowbias32(1), 0x6889_90c0);
        assert_eq!(lowbias32(2), 0xd113_2181);
        assert_eq!(lowbias32(0xdead_beef), 0xe628_c683);
        assert_eq!(lowbias32(0xffff_ffff), 0x6768_824a);
    }

    #[test]
    #[allow(clippy::float_cmp)] // exact dyadic values
    fn hash_unit_matches_python() {
        assert_eq!(hash_unit(1000, 0), 0.966_017_961_502_075_2);
        assert_eq!(hash_unit(1000, 1), 0.901_836_037_635_803_2);
        assert_eq!(hash_unit(1001, 0), -0.993_012_309_074_401_9);
        assert_eq!(hash_unit(2100, 3), 0.856_499_671_936_035_2);
        assert_eq!(hash_unit(5200, 18), 0.033_228_993_415_832_52);
    }

    fn spec(name: &str) -> SyntheticSpec {
        golden_manifest()
            .net(name)
            .unwrap_or_else(|| panic!("no net {name}"))
            .spec()
    }

    #[test]
    fn tensor_elements_match_python() {
        let n = SyntheticNet::new(spec("uncond_8x512"));
        assert_eq!(n.fc_weight(0)[0].to_bits(), 0x4327_51b8);
        assert_eq!(n.fc_bias(7)[511].to_bits(), 0x4233_1ef6);
        assert_eq!(n.w_avg()[3].to_bits(), 0xbf6b_d048);
        let n = SyntheticNet::new(spec("odd_cond_z37_c5_w19"));
        assert_eq!(n.embed_weight()[10 * 5 + 4].to_bits(), 0x3f97_cf5a);
        assert_eq!(n.embed_bias()[10].to_bits(), 0x3e87_45d8);
        assert_eq!(n.fc_weight(2)[18 * 23 + 22].to_bits(), 0xc15c_1aff);
    }

    /// Order-sensitive checksum of every tensor: per tensor the wrapping sum of
    /// `bits * (index + 1)`, folded as `acc * 31 + sum` (same in Python).
    fn checksum(net: &SyntheticNet) -> u64 {
        net.state_dict().iter().fold(0u64, |acc, (_, _, data)| {
            let s = data.iter().zip(1u64..).fold(0u64, |s, (v, j)| {
                s.wrapping_add(u64::from(v.to_bits()).wrapping_mul(j))
            });
            acc.wrapping_mul(31).wrapping_add(s)
        })
    }

    #[test]
    fn whole_nets_match_python() {
        let expected = [
            ("uncond_8x512", 0x101f_b981_1ffc_0f09_u64),
            ("cond_c10_8x512", 0x9fe4_5b96_cf60_e3cb),
            ("sg3_2x512", 0x24eb_01af_e988_df3c),
            ("odd_z37_w19", 0xe44d_97c1_7d6f_4b1a),
            ("odd_cond_z37_c5_w19", 0x9450_f3fb_2097_bebc),
            ("linear_z8_w8", 0x3a81_b944_aa48_4e5f),
        ];
        for (name, sum) in expected {
            let net = SyntheticNet::new(spec(name));
            assert_eq!(checksum(&net), sum, "{name}");
        }
    }

    #[test]
    fn state_dict_shapes() {
        let n = SyntheticNet::new(spec("odd_cond_z37_c5_w19"));
        let keys: Vec<_> = n
            .state_dict()
            .into_iter()
            .map(|(k, shape, data)| {
                assert_eq!(shape.iter().product::<usize>(), data.len(), "{k}");
                (k, shape)
            })
            .collect();
        let want: Vec<(String, Vec<usize>)> = vec![
            ("fc0.weight".into(), vec![23, 48]),
            ("fc0.bias".into(), vec![23]),
            ("fc1.weight".into(), vec![23, 23]),
            ("fc1.bias".into(), vec![23]),
            ("fc2.weight".into(), vec![19, 23]),
            ("fc2.bias".into(), vec![19]),
            ("embed.weight".into(), vec![11, 5]),
            ("embed.bias".into(), vec![11]),
            ("w_avg".into(), vec![19]),
        ];
        assert_eq!(keys, want);
    }

    #[test]
    fn manifest_files_exist_with_claimed_shapes() {
        let m = golden_manifest();
        assert_eq!(m.format, 1);
        assert!(m.tolerance_w_abs > 0.0 && m.tolerance_w_abs <= 1e-4);
        assert_eq!(m.nets.len(), 6);
        assert!(!m.cases.is_empty());
        let mut n_ws = 0;
        for case in &m.cases {
            let net = m.net(&case.net).expect("case names an unknown net");
            assert_eq!(case.class.is_some(), net.c_dim > 0, "{}", case.net);
            assert_eq!(
                case.one_hot(net.c_dim).map(|c| c.len()),
                case.class.map(|_| net.c_dim)
            );
            assert_eq!(load_golden(&case.z).0, vec![net.z_dim], "{}", case.z);
            assert_eq!(load_golden(&case.w).0, vec![net.w_dim], "{}", case.w);
            for ws in &case.ws {
                assert_eq!(
                    load_golden(&ws.file).0,
                    vec![net.num_ws, net.w_dim],
                    "{}",
                    ws.file
                );
                n_ws += 1;
            }
        }
        assert_eq!(n_ws, 2 + 2 + 1 + 14 + 2 + 1);
    }

    /// Python's w_avg and untruncated rows are copied bit for bit into the
    /// fixtures, so psi = 0 rows must equal the Rust-generated w_avg exactly
    /// and rows at or past the cutoff must equal w exactly.
    #[test]
    #[allow(clippy::float_cmp)]
    fn truncation_rows_are_exact() {
        let m = golden_manifest();
        for case in &m.cases {
            let net = m.net(&case.net).unwrap();
            let w_avg = net.synthetic().w_avg().to_vec();
            let (_, w) = load_golden(&case.w);
            for t in &case.ws {
                let (_, ws) = load_golden(&t.file);
                let cut = t.cutoff.unwrap_or(net.num_ws).min(net.num_ws);
                for (row, r) in ws.chunks(net.w_dim).enumerate() {
                    if row >= cut || t.psi == 1.0 {
                        assert_eq!(r, &w[..], "{} row {row}", t.file);
                    } else if t.psi == 0.0 {
                        for (a, b) in r.iter().zip(&w_avg) {
                            assert_eq!(*a, f64::from(*b), "{} row {row}", t.file);
                        }
                    }
                }
            }
        }
    }

    /// A minimal f64 forward pass over the Rust-generated weights reproduces
    /// every golden w and ws (from the stored z) to far below the tolerance.
    #[test]
    fn f64_forward_reproduces_fixtures() {
        fn norm(x: &[f64]) -> Vec<f64> {
            #[allow(clippy::cast_precision_loss)]
            let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
            let r = (ms + 1e-8).sqrt();
            x.iter().map(|v| v / r).collect()
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        fn fc(x: &[f64], w: &[f32], b: &[f32], lr: f64, lrelu: bool) -> Vec<f64> {
            let fin = x.len();
            let wg = f64::from((lr / (fin as f64).sqrt()) as f32);
            let bg = f64::from(lr as f32);
            w.chunks(fin)
                .zip(b)
                .map(|(row, &bias)| {
                    let dot: f64 = row
                        .iter()
                        .zip(x)
                        .map(|(&wi, &xi)| f64::from(wi) * wg * xi)
                        .sum();
                    let y = dot + f64::from(bias) * bg;
                    if lrelu {
                        (if y >= 0.0 { y } else { 0.2 * y }) * std::f64::consts::SQRT_2
                    } else {
                        y
                    }
                })
                .collect()
        }
        let m = golden_manifest();
        let mut worst = 0.0f64;
        for case in &m.cases {
            let gnet = m.net(&case.net).unwrap();
            let net = gnet.synthetic();
            let s = net.spec();
            let (_, z) = load_golden(&case.z);
            #[allow(clippy::cast_possible_truncation)]
            let z: Vec<f64> = z.iter().map(|&v| f64::from(v as f32)).collect();
            let mut x = norm(&z);
            if let Some(c) = case.one_hot(s.c_dim) {
                let c: Vec<f64> = c.into_iter().map(f64::from).collect();
                let y = fc(&c, net.embed_weight(), net.embed_bias(), 1.0, false);
                x.extend(norm(&y));
            }
            for i in 0..s.num_layers {
                x = fc(
                    &x,
                    net.fc_weight(i),
                    net.fc_bias(i),
                    s.lr_multiplier,
                    !s.linear,
                );
            }
            let (_, w) = load_golden(&case.w);
            for (a, b) in x.iter().zip(&w) {
                worst = worst.max((a - b).abs());
            }
            let w_avg: Vec<f64> = net.w_avg().iter().copied().map(f64::from).collect();
            for t in &case.ws {
                let (_, ws) = load_golden(&t.file);
                let cut = t.cutoff.unwrap_or(s.num_ws);
                for (row, r) in ws.chunks(s.w_dim).enumerate() {
                    for ((got, &xi), &avg) in r.iter().zip(&x).zip(&w_avg) {
                        let want = if row < cut && t.psi != 1.0 {
                            avg + t.psi * (xi - avg)
                        } else {
                            xi
                        };
                        worst = worst.max((got - want).abs());
                    }
                }
            }
        }
        assert!(worst < 1e-9, "worst |rust f64 - golden| = {worst:e}");
    }
}
