//! `forward`: arbitrary small networks, weights and inputs (extremes
//! included) through `MappingNetwork::forward` with every available kernel.
//!
//! Checks the numeric contract (`crates/stylemap-core/src/contract.md`):
//! - non-finite parameters, z, c or w_avg -> `NonFinite` naming the first index;
//! - finite inputs -> `Ok` with a finite w, or `Overflow`; `Ok` is guaranteed
//!   when the §6 precondition holds;
//! - every kernel within `F_L` of the exact (f64) evaluation (§3b), and
//!   bit-identical on a second run (§4);
//! - ws from `broadcast_truncate` finite or an `Overflow` error (§5, §6).
#![no_main]
#![allow(clippy::needless_range_loop)] // index-parallel w, exact and bound

#[path = "../../crates/stylemap-core/tests/support/bound.rs"]
mod bound;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stylemap_core::network::normalize_2nd_moment;
use stylemap_core::{Activation, Error, Kernel, MappingNetwork, MappingSpec, Operand};

#[derive(Arbitrary, Debug)]
struct Input {
    z_dim: u8,
    c_dim: u8,
    w_dim: u8,
    hidden: u8,
    embed: u8,
    layers: u8,
    num_ws: u8,
    linear: bool,
    /// Power-of-two scale of the weights (clamped to [-150, 130]).
    weight_exp: i16,
    /// Power-of-two scale of z (clamped to [-160, 130]).
    z_exp: i16,
    /// Raw f32 bits mixed into the weights and inputs (may be NaN/inf).
    raw: Vec<u32>,
    /// Small integers making up most values.
    small: Vec<i8>,
    psi: f32,
    cutoff: Option<u8>,
}

/// Value `i` of a stream: mostly `small[i] / 16 * 2^exp`; where `raw` has an
/// entry whose top bit is set, those exact bits instead (any f32 at all).
fn value(inp: &Input, i: usize, exp: i32, salt: usize) -> f32 {
    let k = i.wrapping_mul(31).wrapping_add(salt);
    if !inp.raw.is_empty() {
        let r = inp.raw[k % inp.raw.len()];
        if r & 0x8000_0000 != 0 && (k / inp.raw.len()).is_multiple_of(4) {
            return f32::from_bits(r.rotate_left(1));
        }
    }
    let s = if inp.small.is_empty() {
        1
    } else {
        inp.small[k % inp.small.len()]
    };
    (f64::from(s) / 16.0 * 2f64.powi(exp)) as f32
}

fn layer<'a>(l: &stylemap_core::fold::FoldedLayer<'a>) -> bound::Layer<'a> {
    bound::Layer {
        weight: l.weight,
        bias: l.bias,
        lrelu: l.activation == Activation::LeakyRelu,
    }
}

fuzz_target!(|inp: Input| {
    let dim = |v: u8, max: u8| usize::from(v % max) + 1;
    let c_dim = usize::from(inp.c_dim % 5);
    let mut spec = MappingSpec::nvlabs(
        dim(inp.z_dim, 24),
        c_dim,
        dim(inp.w_dim, 24),
        dim(inp.layers, 4),
        dim(inp.num_ws, 8),
    );
    spec.layer_features = dim(inp.hidden, 24);
    spec.embed_features = if c_dim > 0 { dim(inp.embed, 12) } else { 0 };
    if inp.linear {
        spec.activation = Activation::Linear;
    }
    spec.validate().expect("small specs are valid");

    let wexp = i32::from(inp.weight_exp.clamp(-150, 130));
    let zexp = i32::from(inp.z_exp.clamp(-160, 130));
    let params: Vec<f32> = (0..spec.param_len())
        .map(|i| value(&inp, i, wexp, 1))
        .collect();
    let w_avg: Vec<f32> = (0..spec.w_dim).map(|i| value(&inp, i, 0, 2)).collect();
    let z: Vec<f32> = (0..spec.z_dim).map(|i| value(&inp, i, zexp, 3)).collect();
    let c: Vec<f32> = (0..spec.c_dim).map(|i| value(&inp, i, 0, 4)).collect();
    let first_bad = |v: &[f32]| v.iter().position(|x| !x.is_finite());

    // §2 at construction.
    let net = match MappingNetwork::new(spec, params.clone(), w_avg.clone()) {
        Ok(net) => {
            assert!(first_bad(&params).is_none() && first_bad(&w_avg).is_none());
            net
        }
        Err(Error::NonFinite {
            what: Operand::Params,
            index,
        }) => {
            assert_eq!(first_bad(&params), Some(index));
            return;
        }
        Err(Error::NonFinite {
            what: Operand::WAvg,
            index,
        }) => {
            assert!(first_bad(&params).is_none());
            assert_eq!(first_bad(&w_avg), Some(index));
            return;
        }
        Err(e) => panic!("unexpected {e:?}"),
    };

    // The bound, from the folded weights (only meaningful for finite z, c).
    let mut x0 = vec![0.0f32; spec.z_dim];
    let inputs_finite = first_bad(&z).is_none() && first_bad(&c).is_none();
    let b = inputs_finite.then(|| {
        normalize_2nd_moment(&z, &mut x0);
        let (embed, fc) = net.layers();
        let fc: Vec<_> = fc.collect();
        let fc: Vec<bound::Layer<'_>> = fc.iter().map(layer).collect();
        bound::network_bound(&x0, embed.as_ref().map(|e| (layer(e), &c[..])), &fc)
    });

    for &kernel in Kernel::ALL.iter().filter(|k| k.is_available()) {
        let net = net.clone().with_kernel(kernel).expect("available");
        let run = || {
            let mut scratch = vec![f32::NAN; spec.scratch_len()];
            let mut w = vec![f32::NAN; spec.w_dim];
            net.forward(&z, &c, &mut scratch, &mut w).map(|()| w)
        };
        let result = run();
        match (&result, &b) {
            (
                Err(Error::NonFinite {
                    what: Operand::Z,
                    index,
                }),
                _,
            ) => {
                assert_eq!(first_bad(&z), Some(*index));
            }
            (
                Err(Error::NonFinite {
                    what: Operand::C,
                    index,
                }),
                _,
            ) => {
                assert!(first_bad(&z).is_none());
                assert_eq!(first_bad(&c), Some(*index));
            }
            (
                Err(Error::Overflow {
                    what: Operand::W,
                    index,
                }),
                Some(b),
            ) => {
                assert!(*index < spec.w_dim);
                assert!(
                    !b.within_range(),
                    "{kernel:?}: overflow although the precondition holds (M = {})",
                    b.max_mag
                );
            }
            (Ok(w), Some(b)) => {
                assert!(w.iter().all(|v| v.is_finite()), "{kernel:?}: {w:?}");
                if b.within_range() {
                    for r in 0..w.len() {
                        let dev = (f64::from(w[r]) - b.exact[r]).abs();
                        assert!(
                            dev <= b.err[r],
                            "{kernel:?} w[{r}] = {} vs exact {} (F_L {})",
                            w[r],
                            b.exact[r],
                            b.err[r]
                        );
                    }
                }
                // §4: the same bits again.
                let again = run().expect("second run");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(w), bits(&again), "{kernel:?} not deterministic");

                // §5/§6 on ws.
                let mut ws = vec![0.0f32; spec.ws_len()];
                let cutoff = inp.cutoff.map(usize::from);
                match net.broadcast_truncate(w, inp.psi, cutoff, &mut ws) {
                    Ok(()) => assert!(ws.iter().all(|v| v.is_finite())),
                    Err(Error::NonFinite {
                        what: Operand::Psi, ..
                    }) => {
                        assert!(!inp.psi.is_finite());
                    }
                    Err(Error::Overflow {
                        what: Operand::Ws,
                        index,
                    }) => {
                        assert!(index < spec.w_dim);
                        let avg = net.w_avg()[index];
                        let t = stylemap_core::truncation::lerp(avg, w[index], inp.psi);
                        assert!(!t.is_finite());
                    }
                    Err(e) => panic!("broadcast_truncate: {e:?}"),
                }
            }
            (r, _) => panic!("{kernel:?}: unexpected {r:?} (inputs finite: {inputs_finite})"),
        }
    }
});
