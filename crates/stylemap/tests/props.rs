//! Property tests of the numeric contract (`crates/stylemap-core/src/contract.md`)
//! at small sizes, through the std crate: the core forward, the batched
//! `Mapper` (GEMV and GEMM paths, any batch size and thread count),
//! broadcast/truncation/mixing, and round trips (raw weights -> fold ->
//! forward against an f64 evaluation of the raw parameters; `.npy` write ->
//! read). The fuzz targets under `fuzz/` check the same invariants at larger
//! scale.

#[path = "../../stylemap-core/tests/support/bound.rs"]
mod bound;

use proptest::prelude::*;
use stylemap::batch::{DEFAULT_AMX_THRESHOLD, GemmBackend};
use stylemap::core::fold::{self, FoldedLayer, RawLayer, RawParams};
use stylemap::core::kernels::amx::{self, AmxNetwork};
use stylemap::core::network::normalize_2nd_moment;
use stylemap::core::truncation;
use stylemap::core::{Activation, Error as CoreError, Kernel, MappingSpec};
use stylemap::{Layout, Mapper, Network, broadcast, npy};

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Finite f32 values concentrated on the contract's extremes.
fn extreme_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -4.0f32..4.0,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => prop_oneof![Just(f32::MAX), Just(-f32::MAX), Just(3.0e38f32)],
        1 => (1u32..0x80_0000).prop_map(f32::from_bits), // subnormals
        1 => any::<u32>().prop_map(|b| {
            let v = f32::from_bits(b & 0x7fff_ffff);
            let v = if v.is_finite() { v } else { 1.0 };
            if b & 1 == 0 { v } else { -v }
        }),
    ]
}

#[derive(Clone, Debug)]
struct RawNet {
    spec: MappingSpec,
    fc: Vec<(Vec<f32>, Vec<f32>)>,
    embed: Option<(Vec<f32>, Vec<f32>)>,
    w_avg: Vec<f32>,
}

/// A small network with NVlabs-scale raw weights (randn / lr) and biases.
fn raw_net() -> impl Strategy<Value = RawNet> {
    (
        1usize..7,
        0usize..3,
        1usize..6,
        1usize..4,
        1usize..7,
        1usize..5,
        1usize..5,
        any::<bool>(),
    )
        .prop_flat_map(|(z, c, w, layers, hidden, embed, num_ws, linear)| {
            let mut spec = MappingSpec::nvlabs(z, c, w, layers, num_ws);
            spec.layer_features = hidden;
            spec.embed_features = if c > 0 { embed } else { 0 };
            if linear {
                spec.activation = Activation::Linear;
            }
            let fc: Vec<_> = (0..layers)
                .map(|i| {
                    let (inp, out) = spec.layer_shape(i);
                    (
                        prop::collection::vec(-300.0f32..300.0, inp * out),
                        prop::collection::vec(-50.0f32..50.0, out),
                    )
                })
                .collect();
            let ef = spec.embed_features;
            let embed = (
                prop::collection::vec(-2.0f32..2.0, ef * c),
                prop::collection::vec(-1.0f32..1.0, ef),
            );
            (
                Just(spec),
                fc,
                embed,
                prop::collection::vec(-2.0f32..2.0, w),
            )
        })
        .prop_map(|(spec, fc, embed, w_avg)| RawNet {
            spec,
            fc,
            embed: (spec.c_dim > 0).then_some(embed),
            w_avg,
        })
}

fn fold_raw(raw: &RawNet) -> Vec<f32> {
    let layers: Vec<RawLayer<'_>> = raw
        .fc
        .iter()
        .map(|(w, b)| RawLayer { weight: w, bias: b })
        .collect();
    let params = RawParams {
        embed: raw
            .embed
            .as_ref()
            .map(|(w, b)| RawLayer { weight: w, bias: b }),
        layers: &layers,
    };
    let mut out = vec![0.0f32; raw.spec.param_len()];
    fold::fold_nvlabs(&raw.spec, &params, &mut out).expect("fold");
    out
}

fn network(raw: &RawNet) -> Network {
    Network::from_parts(raw.spec, fold_raw(raw), raw.w_avg.clone(), Layout::Nvlabs).expect("net")
}

fn layer<'a>(l: &FoldedLayer<'a>) -> bound::Layer<'a> {
    bound::Layer {
        weight: l.weight,
        bias: l.bias,
        lrelu: l.activation == Activation::LeakyRelu,
    }
}

fn network_bound(net: &Network, z: &[f32], c: &[f32]) -> bound::Bound {
    network_bound_with(bound::Model::Fma, net, z, c)
}

/// The whole-network bound of contract §3b (`Model::Fma`) or §3c
/// (`Model::Amx`) for one sample.
fn network_bound_with(model: bound::Model, net: &Network, z: &[f32], c: &[f32]) -> bound::Bound {
    let mut x0 = vec![0.0f32; z.len()];
    normalize_2nd_moment(z, &mut x0);
    let (embed, fc) = net.core().layers();
    let fc: Vec<_> = fc.collect();
    let fc: Vec<bound::Layer<'_>> = fc.iter().map(layer).collect();
    bound::network_bound_with(model, &x0, embed.as_ref().map(|e| (layer(e), c)), &fc)
}

/// Set (to anything but `0`) to fail instead of skipping the AMX
/// properties where AMX cannot run (as `crates/stylemap-core/tests/amx.rs`).
const REQUIRE_AMX: &str = "STYLEMAP_REQUIRE_AMX";

/// Whether the AMX kernel can run here; otherwise notes the skip once, or
/// fails the property if [`REQUIRE_AMX`] asks for AMX.
fn amx_here() -> Result<bool, TestCaseError> {
    if amx::is_available() {
        return Ok(true);
    }
    let required =
        std::env::var(REQUIRE_AMX).is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0");
    prop_assert!(
        !required,
        "{} is set, but AMX is required and unavailable here",
        REQUIRE_AMX
    );
    static NOTE: std::sync::Once = std::sync::Once::new();
    NOTE.call_once(|| {
        eprintln!(
            "AMX is not available here: AMX properties skipped (set {REQUIRE_AMX}=1 to fail instead)"
        )
    });
    Ok(false)
}

/// SPEC §1 in f64 straight from the raw parameters (no folding): gains
/// applied at run time, wg = lr / sqrt(in) rounded to f32 as NVlabs does.
fn raw_forward_f64(raw: &RawNet, z: &[f32], c: &[f32]) -> Vec<f64> {
    let s = &raw.spec;
    let norm = |v: &[f64]| bound::normalize(v).0;
    let z64: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
    let mut x = norm(&z64);
    if let Some((w, b)) = &raw.embed {
        let e: Vec<f64> = (0..s.embed_features)
            .map(|r| {
                let wg = f64::from(fold::weight_gain(1.0, s.c_dim));
                (0..s.c_dim)
                    .map(|k| f64::from(w[r * s.c_dim + k]) * wg * f64::from(c[k]))
                    .sum::<f64>()
                    + f64::from(b[r])
            })
            .collect();
        x.extend(norm(&e));
    }
    let gain = s.activation.gain();
    for (i, (w, b)) in raw.fc.iter().enumerate() {
        let (inp, out) = s.layer_shape(i);
        let wg = f64::from(fold::weight_gain(s.lr_multiplier, inp));
        let bg = f64::from(s.lr_multiplier as f32);
        x = (0..out)
            .map(|r| {
                let a: f64 = (0..inp)
                    .map(|k| f64::from(w[r * inp + k]) * wg * x[k])
                    .sum::<f64>()
                    + f64::from(b[r]) * bg;
                let a = match s.activation {
                    Activation::LeakyRelu if a < 0.0 => a * f64::from(0.2f32),
                    _ => a,
                };
                a * gain
            })
            .collect();
    }
    x
}

fn latents(n: usize, len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(extreme_f32(), n * len)
}

fn one_hots(n: usize, c_dim: usize, classes: &[usize]) -> Vec<f32> {
    let mut c = vec![0.0f32; n * c_dim];
    if c_dim > 0 {
        for s in 0..n {
            c[s * c_dim + classes[s % classes.len()] % c_dim] = 1.0;
        }
    }
    c
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn kernels() -> Vec<Kernel> {
    Kernel::ALL
        .iter()
        .copied()
        .filter(|k| k.is_available())
        .collect()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // Miri (`.ci/miri-std.sh`) runs a handful: it is ~1000x slower.
        cases: if cfg!(miri) { 3 } else { 128 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// §1, §3b, §6: finite z and c give Ok and a finite w within F_L of the
    /// exact value for every kernel when the precondition holds; an overflow
    /// is an error, never a silent inf/NaN. Round trip: raw -> fold -> forward
    /// agrees with the raw f64 evaluation within 2 F_L.
    #[test]
    fn forward_contract_and_fold_round_trip(
        raw in raw_net(),
        z in latents(1, 8),
        classes in prop::collection::vec(0usize..8, 1),
    ) {
        let s = raw.spec;
        let z = &z[..s.z_dim.min(z.len())];
        prop_assume!(z.len() == s.z_dim);
        let c = one_hots(1, s.c_dim, &classes);
        let net = network(&raw);
        let b = network_bound(&net, z, &c);
        let reference = raw_forward_f64(&raw, z, &c);
        for kernel in kernels() {
            let core = net.core().clone().with_kernel(kernel).unwrap();
            let mut scratch = vec![0.0f32; s.scratch_len()];
            let mut w = vec![0.0f32; s.w_dim];
            match core.forward(z, &c, &mut scratch, &mut w) {
                Ok(()) => {
                    prop_assert!(w.iter().all(|v| v.is_finite()));
                    if b.within_range() {
                        for r in 0..s.w_dim {
                            let d = (f64::from(w[r]) - b.exact[r]).abs();
                            prop_assert!(d <= b.err[r], "{kernel:?} w[{r}] {} exact {} F {}", w[r], b.exact[r], b.err[r]);
                            let d = (f64::from(w[r]) - reference[r]).abs();
                            prop_assert!(d <= 2.0 * b.err[r], "{kernel:?} raw f64 w[{r}] {} vs {} (2F {})", w[r], reference[r], 2.0 * b.err[r]);
                        }
                    }
                }
                Err(CoreError::Overflow { .. }) => prop_assert!(!b.within_range()),
                Err(e) => prop_assert!(false, "{kernel:?}: {e}"),
            }
        }
    }

    /// §3 and §4 for the batched Mapper: every batch size, thread count and
    /// path (per-sample GEMV, sgemm) is within F_L of the exact value per
    /// sample; the GEMV path equals the core forward bit for bit; the same
    /// configuration gives the same bits whatever the thread count.
    #[test]
    fn mapper_agrees_and_is_deterministic(
        raw in raw_net(),
        n in 0usize..10,
        z in latents(9, 6),
        classes in prop::collection::vec(0usize..8, 1..4),
    ) {
        let s = raw.spec;
        let net = network(&raw);
        let zs: Vec<f32> = z.iter().copied().cycle().take(n * s.z_dim).collect();
        let cs = one_hots(n, s.c_dim, &classes);
        let bounds: Vec<bound::Bound> = (0..n)
            .map(|i| network_bound(&net, &zs[i * s.z_dim..(i + 1) * s.z_dim], &cs[i * s.c_dim..(i + 1) * s.c_dim]))
            .collect();
        prop_assume!(bounds.iter().all(bound::Bound::within_range));
        let core = net.core();
        let mut per_sample = vec![0.0f32; n * s.w_dim];
        let mut scratch = vec![0.0f32; s.scratch_len()];
        for i in 0..n {
            core.forward(
                &zs[i * s.z_dim..(i + 1) * s.z_dim],
                &cs[i * s.c_dim..(i + 1) * s.c_dim],
                &mut scratch,
                &mut per_sample[i * s.w_dim..(i + 1) * s.w_dim],
            ).unwrap();
        }
        for threshold in [usize::MAX, 0] {
            let mut first: Option<Vec<u32>> = None;
            for threads in [1usize, 2, 3] {
                let mut w = vec![f32::NAN; n * s.w_dim];
                Mapper::new(&net)
                    .with_threads(threads)
                    .with_gemm_threshold(threshold)
                    .map(&zs, &cs, &mut w)
                    .unwrap();
                for (i, b) in bounds.iter().enumerate() {
                    for r in 0..s.w_dim {
                        let v = w[i * s.w_dim + r];
                        prop_assert!(v.is_finite());
                        let d = (f64::from(v) - b.exact[r]).abs();
                        prop_assert!(d <= b.err[r], "threshold {threshold} threads {threads} sample {i} w[{r}] {v} exact {} F {}", b.exact[r], b.err[r]);
                    }
                }
                if threshold == usize::MAX {
                    prop_assert_eq!(bits(&w), bits(&per_sample), "GEMV path != core forward");
                }
                match &first {
                    None => first = Some(bits(&w)),
                    Some(f) => prop_assert_eq!(f, &bits(&w), "threads {} changed bits", threads),
                }
            }
        }
    }

    /// §5 on random ws: psi 1 no-op, psi 0 exactly w_avg, cutoff 0 no-op,
    /// cutoff past num_ws = all; errors only on a genuine overflow, and then
    /// nothing is written.
    #[test]
    fn truncation_rules(
        w_dim in 1usize..6,
        num_ws in 1usize..6,
        n in 1usize..4,
        values in prop::collection::vec(extreme_f32(), 1..40),
        psi in prop_oneof![Just(1.0f32), Just(0.0f32), -3.0f32..3.0, extreme_f32()],
        cutoff in prop::option::of(0usize..9),
    ) {
        let val = |i: usize| values[i % values.len()];
        let w: Vec<f32> = (0..n * w_dim).map(val).collect();
        let w_avg: Vec<f32> = (0..w_dim).map(|i| val(i * 5 + 1)).collect();
        let mut ws = vec![0.0f32; n * num_ws * w_dim];
        broadcast::broadcast(&w, w_dim, num_ws, &mut ws).unwrap();
        let before = ws.clone();
        let rows = cutoff.unwrap_or(num_ws).min(num_ws);
        match broadcast::truncate(&mut ws, &w_avg, num_ws, psi, cutoff) {
            Ok(()) => {
                for (i, (&got, &orig)) in ws.iter().zip(&before).enumerate() {
                    let (k, l) = (i % w_dim, (i / w_dim) % num_ws);
                    prop_assert!(got.is_finite());
                    if psi == 1.0 || l >= rows {
                        prop_assert_eq!(got.to_bits(), orig.to_bits());
                    } else if psi == 0.0 {
                        prop_assert_eq!(got.to_bits(), w_avg[k].to_bits());
                    } else {
                        prop_assert_eq!(got.to_bits(), truncation::lerp(w_avg[k], orig, psi).to_bits());
                    }
                }
                if cutoff.is_some_and(|c| c >= num_ws) {
                    let mut all = before.clone();
                    broadcast::truncate(&mut all, &w_avg, num_ws, psi, None).unwrap();
                    prop_assert_eq!(bits(&all), bits(&ws));
                }
            }
            Err(e) => {
                prop_assert_eq!(bits(&ws), bits(&before), "written on error");
                let overflow = before.iter().enumerate().any(|(i, &v)| {
                    (i / w_dim) % num_ws < rows && !truncation::lerp(w_avg[i % w_dim], v, psi).is_finite()
                });
                prop_assert!(overflow, "spurious error {}", e);
            }
        }
    }

    /// `.npy` write -> read is the identity, for f32 and (rounded) f64, any
    /// shape of up to 4 dimensions including empty and scalar arrays.
    #[test]
    fn npy_round_trip(
        shape in prop::collection::vec(0u64..5, 0..4),
        values in prop::collection::vec(extreme_f32(), 0..300),
        wide in prop::collection::vec(-1.0e30f64..1.0e30, 0..300),
    ) {
        let count = npy::element_count(&shape).unwrap() as usize;
        prop_assume!(values.len() >= count && wide.len() >= count);
        let name = std::path::Path::new("p.npy");
        let bytes = npy::to_bytes(&shape, &values[..count]).unwrap();
        prop_assert_eq!(bytes.len() - count * 4, npy::read_header(&mut &bytes[..], bytes.len() as u64, name).unwrap().data_start as usize);
        let (s2, v2) = npy::read_f32_bytes(&bytes, name).unwrap();
        prop_assert_eq!(&s2, &shape);
        prop_assert_eq!(bits(&v2), bits(&values[..count]));
        let bytes = npy::to_bytes(&shape, &wide[..count]).unwrap();
        let (s3, v3) = npy::read_f32_bytes(&bytes, name).unwrap();
        prop_assert_eq!(&s3, &shape);
        let want: Vec<f32> = wide[..count].iter().map(|&v| v as f32).collect();
        prop_assert_eq!(bits(&v3), bits(&want));
    }
}

/// Fewer cases for the AMX property: each maps 30..=70 samples through up
/// to a dozen mapper configurations (threads started per call) and bounds
/// every sample.
fn amx_config() -> ProptestConfig {
    ProptestConfig {
        cases: 12,
        ..config()
    }
}

proptest! {
    #![proptest_config(amx_config())]

    /// §3c and §4 for the Mapper's AMX path (batches of 30..=70, around
    /// `DEFAULT_AMX_THRESHOLD`): `GemmBackend::Amx` and `Auto` are within
    /// the AMX whole-network bound of the exact value per sample and give
    /// the same bits on 1, 2 and 3 threads (the batch split differently);
    /// `Amx` equals the core's `AmxNetwork::forward_batch` bit for bit, and
    /// `Auto` equals `Amx` from the threshold on where `amx_usable`, the
    /// packed path below it. (`Packed` equals `PackedNetwork::forward_batch`:
    /// `pool.rs` `packed_mode_is_bit_identical_to_the_packed_network`.)
    /// Ignored under Miri, where AMX never runs: generating its inputs alone
    /// took two minutes there.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn mapper_amx_path_is_within_its_bound_and_deterministic(
        raw in raw_net(),
        n in 30usize..=70,
        z in latents(70, 6),
        classes in prop::collection::vec(0usize..8, 1..4),
    ) {
        if !amx_here()? {
            return Ok(());
        }
        let s = raw.spec;
        let net = network(&raw);
        let zs: Vec<f32> = z.iter().copied().cycle().take(n * s.z_dim).collect();
        let cs = one_hots(n, s.c_dim, &classes);
        let sample = |i: usize| (&zs[i * s.z_dim..(i + 1) * s.z_dim], &cs[i * s.c_dim..(i + 1) * s.c_dim]);
        let bounds: Vec<bound::Bound> = (0..n)
            .map(|i| {
                let (z, c) = sample(i);
                network_bound_with(bound::Model::Amx, &net, z, c)
            })
            .collect();
        prop_assume!(bounds.iter().all(bound::Bound::within_range));
        // 64-byte aligned, as `AmxNetwork::new` requires.
        let mut packed = stylemap::bigbuf::BigBuf::<u32>::zeroed(amx::network_len(&s));
        amx::pack_network(&s, net.core().params(), &mut packed).unwrap();
        let core = AmxNetwork::new(s, packed).unwrap();
        let mut want = vec![f32::NAN; n * s.w_dim];
        let mut scratch = vec![f32::NAN; core.scratch_len(n)];
        core.forward_batch(&zs, &cs, n, &mut scratch, &mut want).unwrap();
        let map = |backend: GemmBackend, threads: usize| {
            let mut w = vec![f32::NAN; n * s.w_dim];
            let mut m = Mapper::new(&net).with_threads(threads).with_gemm_backend(backend);
            m.map(&zs, &cs, &mut w).map(|()| (w, m.amx_usable()))
        };
        for backend in [GemmBackend::Amx, GemmBackend::Auto] {
            let mut first: Option<Vec<u32>> = None;
            for threads in [1usize, 2, 3] {
                let (w, usable) = map(backend, threads).unwrap();
                for (i, b) in bounds.iter().enumerate() {
                    for r in 0..s.w_dim {
                        let v = w[i * s.w_dim + r];
                        let d = (f64::from(v) - b.exact[r]).abs();
                        prop_assert!(d <= b.err[r], "{backend:?} threads {threads} sample {i} w[{r}] {v} exact {} F {}", b.exact[r], b.err[r]);
                    }
                }
                match &first {
                    None => first = Some(bits(&w)),
                    Some(f) => prop_assert_eq!(f, &bits(&w), "{:?}: threads {} changed bits", backend, threads),
                }
                let amx_path = backend == GemmBackend::Amx || (n >= DEFAULT_AMX_THRESHOLD && usable);
                if amx_path {
                    prop_assert_eq!(bits(&w), bits(&want), "{:?} threads {}: != AmxNetwork::forward_batch", backend, threads);
                } else {
                    let (p, _) = map(GemmBackend::Packed, 1).unwrap();
                    prop_assert_eq!(bits(&w), bits(&p), "Auto below the AMX threshold != Packed");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// §2 and §6 through the std API (deterministic)
// ---------------------------------------------------------------------------

fn small_net() -> (RawNet, Network) {
    let mut spec = MappingSpec::nvlabs(4, 0, 3, 2, 3);
    spec.layer_features = 5;
    let raw = RawNet {
        spec,
        fc: vec![
            (
                (0..20).map(|i| (i as f32 - 9.5) * 10.0).collect(),
                vec![1.0; 5],
            ),
            (
                (0..15).map(|i| (7.0 - i as f32) * 20.0).collect(),
                vec![-1.0; 3],
            ),
        ],
        embed: None,
        w_avg: vec![0.1, 0.2, 0.3],
    };
    let net = network(&raw);
    (raw, net)
}

#[test]
fn mapper_names_the_first_non_finite_sample_and_element() {
    let (_, net) = small_net();
    for threshold in [usize::MAX, 0] {
        for (bad, kind) in [(f32::NAN, "NaN"), (f32::NEG_INFINITY, "an infinity")] {
            let mut z = vec![0.5f32; 4 * 4];
            z[2 * 4 + 3] = bad;
            z[3 * 4] = f32::NAN;
            let mut w = vec![9.0f32; 4 * 3];
            let e = Mapper::new(&net)
                .with_gemm_threshold(threshold)
                .with_threads(2)
                .map(&z, &[], &mut w)
                .unwrap_err()
                .to_string();
            assert_eq!(e, format!("z holds {kind} at sample 2, element 3"));
            assert_eq!(w, vec![9.0; 12], "w written on error");
        }
    }
}

#[test]
fn broadcast_and_mixing_reject_non_finite_inputs() {
    let mut ws = vec![0.0f32; 2 * 3 * 2];
    let e = broadcast::broadcast(&[1.0, 2.0, f32::NAN, 0.0], 2, 3, &mut ws).unwrap_err();
    assert_eq!(e.to_string(), "w holds NaN at sample 1, element 0");
    assert_eq!(ws, vec![0.0; 12]);
    let mut ws = vec![1.0f32; 12];
    ws[7] = f32::INFINITY;
    let e = broadcast::truncate(&mut ws, &[0.0, 0.0], 3, 0.5, None).unwrap_err();
    assert_eq!(e.to_string(), "ws holds an infinity at sample 1, element 1");
    let (a, mut b) = (vec![1.0f32; 6], vec![2.0f32; 6]);
    b[4] = f32::NAN;
    let mut out = vec![0.0f32; 6];
    assert!(broadcast::mix_layers(&a, &b, &[0], 3, &mut out).is_err());
    assert!(broadcast::mix_crossover(&a, &b, 1, 3, &mut out).is_err());
    assert!(broadcast::lerp(&a, &b, 0.5, &mut out).is_err());
    assert_eq!(out, vec![0.0; 6]);
    // A finite extrapolation past f32::MAX is an overflow error, not an inf.
    let big = vec![3.0e38f32; 6];
    let e = broadcast::lerp(&a, &big, 2.0, &mut out).unwrap_err();
    assert!(e.to_string().contains("overflow"), "{e}");
    assert_eq!(out, vec![0.0; 6]);
    let e = broadcast::truncate(&mut big.clone(), &[-3.0e38, 0.0], 3, 3.0, None).unwrap_err();
    assert!(e.to_string().contains("overflow"), "{e}");
}

/// A network whose weights of 1e30 (finite) overflow f32 inside it, and two
/// latents for it.
fn overflowing_net() -> (Network, Vec<f32>) {
    let spec = MappingSpec::nvlabs(3, 0, 2, 2, 2);
    let net = Network::from_parts(
        spec,
        vec![1.0e30; spec.param_len()],
        vec![0.0; 2],
        Layout::Nvlabs,
    )
    .unwrap();
    (net, vec![0.5f32; 2 * 3])
}

/// Weights of 1e30 (finite) overflow f32 inside the network: an error on
/// every path, never a silent inf/NaN.
#[test]
fn overflow_is_an_error_on_the_gemv_path() {
    let (net, z) = overflowing_net();
    let mut w = vec![0.0f32; 2 * 2];
    let e = Mapper::new(&net)
        .with_gemm_threshold(usize::MAX)
        .map(&z, &[], &mut w)
        .unwrap_err();
    assert!(e.to_string().contains("overflowed f32"), "{e}");
}

/// The same through the batched paths (packed GEMM, sgemm and, where it
/// runs, AMX).
#[test]
fn overflow_is_an_error_on_the_gemm_path() {
    let (net, z) = overflowing_net();
    let amx = amx::is_available().then_some(GemmBackend::Amx);
    for backend in [GemmBackend::Packed, GemmBackend::Sgemm]
        .into_iter()
        .chain(amx)
    {
        let mut w = vec![0.0f32; 2 * 2];
        let r = Mapper::new(&net)
            .with_gemm_threshold(0)
            .with_gemm_backend(backend)
            .map(&z, &[], &mut w);
        assert!(r.is_err(), "{backend:?}: silent non-finite w: {w:?}");
    }
}
