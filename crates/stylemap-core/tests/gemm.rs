//! The batched path: packing, every available batched kernel against the
//! scalar row-major GEMV oracle (sample by sample) on awkward sizes with
//! misaligned buffers, bit-level properties (batch invariance, determinism,
//! the scalar kernel equals the oracle, FMA kernels agree), the checked entry
//! point's errors, and the whole batched network against per-sample
//! `MappingNetwork::forward`.
//!
//! Environment: `STYLEMAP_KERNEL` and `STYLEMAP_REQUIRE_KERNELS`, see
//! `common/mod.rs` (shared with `kernels.rs`).
//!
//! Tolerances (stated, not tuned):
//! - one layer: `common::dot_bound`, `2 (n + 2) eps (sum_k |W[r,k] x[s,k]| + |b[r]|)`
//!   per output, the bound on two f32 evaluations of the same dot product in
//!   different orders;
//! - whole network: that bound propagated through the layers in f64
//!   ([`network_bound`]): with `d` the bound on the inputs' difference,
//!   `d'[r] = sum_k |W[r,k]| d[k] + 2 (n + 2) (eps (sum_k |W[r,k]| (|x[k]| + d[k]) + |b[r]|) + tiny)`
//!   (lrelu is 1-Lipschitz; `tiny` = 2^-149 covers underflowing products).
//!   The same recursion as the contract's `F` (`src/contract.md` §3), for a
//!   difference of two paths and taken around the per-sample path's computed
//!   activations instead of the exact ones. Labels are one-hot, for which both paths
//!   embed exactly (one non-zero product), so the first layer's inputs agree
//!   bit for bit.

mod common;

use common::{
    assert_all_exercised, assert_required_kernels, dot_bound, for_each_kernel, normal, under_test,
    uniform,
};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use stylemap_core::kernels::{self, Kernel, gemm};
use stylemap_core::{Activation, Error, MappingNetwork, MappingSpec, Operand, PackedNetwork};

/// `v` copied `offset` floats into a fresh buffer (misaligns SIMD loads and
/// stores for odd offsets); returns the buffer.
fn shifted(v: &[f32], offset: usize) -> Vec<f32> {
    let mut buf = vec![f32::NAN; v.len() + offset];
    buf[offset..].copy_from_slice(v);
    buf
}

/// Packs `w [out, inp]` for `kernel`, `offset` floats into the buffer.
fn pack(kernel: Kernel, w: &[f32], out: usize, inp: usize, offset: usize) -> Vec<f32> {
    let nr = kernel.packed_nr();
    let mut buf = vec![f32::NAN; gemm::packed_len(out, inp, nr) + offset];
    gemm::pack_layer(w, out, inp, nr, &mut buf[offset..]).unwrap();
    buf
}

/// Runs the batched `kernel` on `batch` samples of `out x inp`, every buffer
/// `offset` floats into its allocation, and checks every output against the
/// scalar GEMV oracle run sample by sample.
fn check(kernel: Kernel, out: usize, inp: usize, batch: usize, offset: usize, seed: u64) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let w = uniform(&mut rng, out * inp);
    let b = uniform(&mut rng, out);
    let x = uniform(&mut rng, batch * inp);
    let act = if seed.is_multiple_of(2) {
        Activation::LeakyRelu
    } else {
        Activation::Linear
    };
    let packed = pack(kernel, &w, out, inp, offset);
    let (bs, xs) = (shifted(&b, offset), shifted(&x, offset));
    let mut got = vec![f32::NAN; batch * out + offset];
    gemm::gemm_packed_bias_act(
        kernel,
        &packed[offset..],
        &bs[offset..],
        &xs[offset..],
        inp,
        act,
        &mut got[offset..],
    )
    .unwrap();
    let mut want = vec![0.0f32; out];
    for s in 0..batch {
        let xr = &x[s * inp..(s + 1) * inp];
        kernels::gemv_bias_act(Kernel::Scalar, &w, &b, xr, act, &mut want).unwrap();
        for r in 0..out {
            let tol = dot_bound(&w[r * inp..(r + 1) * inp], b[r], xr);
            let g = got[offset + s * out + r];
            assert!(
                (g - want[r]).abs() <= tol,
                "{kernel:?} {out}x{inp} B={batch} +{offset} {act:?} sample {s} out {r}: \
                 {g} vs oracle {} (tol {tol})",
                want[r]
            );
        }
    }
}

#[test]
fn every_kernel_matches_the_oracle_on_awkward_sizes() {
    let sizes: Vec<usize> = if cfg!(miri) {
        vec![1, 7, 17]
    } else {
        vec![
            1, 2, 3, 5, 7, 8, 9, 12, 15, 16, 17, 23, 31, 32, 33, 40, 47, 48, 49, 63, 64, 65, 70,
        ]
    };
    let batches: &[usize] = if cfg!(miri) {
        &[1, 5, 9]
    } else {
        &[1, 2, 3, 5, 6, 7, 8, 9, 11, 13, 14, 16, 17, 19, 20]
    };
    let ran = for_each_kernel(|kernel| {
        let mut n = 0usize;
        for &out in &sizes {
            for &inp in &sizes {
                // Walk the batch sizes across the shapes so every (shape,
                // batch) class is hit without the full product.
                let batch = batches[n % batches.len()];
                check(kernel, out, inp, batch, n % 3, (out * 1000 + inp) as u64);
                n += 1;
            }
        }
    });
    assert_all_exercised(&ran);
}

/// Every batch size 1..=20 and 64 (every register-block tail of every
/// kernel, blocks plus tails) on shapes with a partial last panel.
#[test]
fn every_kernel_matches_the_oracle_on_every_batch_size() {
    let (shapes, batches): (&[(usize, usize)], Vec<usize>) = if cfg!(miri) {
        (&[(19, 5)], vec![1, 3, 8, 9])
    } else {
        (
            &[(37, 21), (70, 64), (16, 3)],
            (1..=20).chain([64]).collect(),
        )
    };
    let ran = for_each_kernel(|kernel| {
        for &(out, inp) in shapes {
            for &batch in &batches {
                check(
                    kernel,
                    out,
                    inp,
                    batch,
                    batch % 2,
                    (batch * 31 + out) as u64,
                );
            }
        }
    });
    assert_all_exercised(&ran);
}

#[test]
#[cfg_attr(miri, ignore = "large sizes are slow under miri")]
fn every_kernel_matches_the_oracle_on_network_sizes() {
    let cases = [
        (512, 512, 8, 0),
        (512, 512, 3, 1),
        (1024, 1024, 2, 0),
        (512, 1034, 9, 1),
        (19, 512, 17, 1),
        (512, 37, 20, 0),
        (70, 600, 64, 1),
    ];
    let ran = for_each_kernel(|kernel| {
        for &(out, inp, batch, offset) in &cases {
            check(kernel, out, inp, batch, offset, (out + inp) as u64);
        }
    });
    assert_all_exercised(&ran);
}

/// Runs `kernel` on `x [batch, inp]` and returns the output bits.
fn run_bits(kernel: Kernel, packed: &[f32], b: &[f32], x: &[f32], inp: usize) -> Vec<u32> {
    let batch = x.len() / inp;
    let mut y = vec![f32::NAN; batch * b.len()];
    gemm::gemm_packed_bias_act(kernel, packed, b, x, inp, Activation::LeakyRelu, &mut y).unwrap();
    y.iter().map(|v| v.to_bits()).collect()
}

/// A sample's result does not depend on the batch around it: the same
/// samples alone, in sub-batches at any position, at another alignment and
/// on a second run all give the same bits.
#[test]
fn every_kernel_is_batch_invariant_and_deterministic() {
    let shapes: &[(usize, usize, usize)] = if cfg!(miri) {
        &[(19, 9, 11)]
    } else {
        &[(37, 70, 29), (512, 512, 21), (33, 1034, 13), (64, 31, 64)]
    };
    let ran = for_each_kernel(|kernel| {
        for &(out, inp, batch) in shapes {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64((out * inp + batch) as u64);
            let w = uniform(&mut rng, out * inp);
            let b = uniform(&mut rng, out);
            let x = uniform(&mut rng, batch * inp);
            let packed = pack(kernel, &w, out, inp, 0);
            let all = run_bits(kernel, &packed, &b, &x, inp);
            assert_eq!(
                all,
                run_bits(kernel, &packed, &b, &x, inp),
                "{kernel:?}: rerun"
            );
            for offset in [1usize, 3] {
                let (ps, bs, xs) = (
                    pack(kernel, &w, out, inp, offset),
                    shifted(&b, offset),
                    shifted(&x, offset),
                );
                let moved = run_bits(kernel, &ps[offset..], &bs[offset..], &xs[offset..], inp);
                assert_eq!(all, moved, "{kernel:?} {out}x{inp}: offset {offset}");
            }
            for (lo, hi) in [
                (0, 1),
                (batch - 1, batch),
                (1, batch),
                (3, batch - 2),
                (5, 6),
            ] {
                if lo >= hi || hi > batch {
                    continue;
                }
                let part = run_bits(kernel, &packed, &b, &x[lo * inp..hi * inp], inp);
                assert_eq!(
                    part,
                    all[lo * out..hi * out],
                    "{kernel:?} {out}x{inp}: samples {lo}..{hi} alone"
                );
            }
        }
    });
    assert_all_exercised(&ran);
}

/// The scalar batched kernel does the oracle's operations in the oracle's
/// order, so it equals it bit for bit, for any panel width.
#[test]
fn scalar_batched_kernel_equals_the_gemv_oracle_bit_for_bit() {
    let (out, inp, batch) = if cfg!(miri) { (11, 6, 3) } else { (45, 67, 9) };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let w = uniform(&mut rng, out * inp);
    let b = uniform(&mut rng, out);
    let x = uniform(&mut rng, batch * inp);
    let mut want = vec![0.0f32; batch * out];
    for (xr, yr) in x.chunks(inp).zip(want.chunks_mut(out)) {
        kernels::gemv_bias_act(Kernel::Scalar, &w, &b, xr, Activation::LeakyRelu, yr).unwrap();
    }
    for nr in [1, 3, 8, 16, 32] {
        let mut packed = vec![0.0f32; gemm::packed_len(out, inp, nr)];
        gemm::pack_layer(&w, out, inp, nr, &mut packed).unwrap();
        let mut got = vec![f32::NAN; batch * out];
        gemm::scalar::gemm_packed(&packed, nr, &b, &x, inp, Activation::LeakyRelu, &mut got);
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "nr {nr}"
        );
    }
}

/// Naming the weights that run next (only prefetched) changes no bit, and
/// no `next` (empty, unrelated, short, the weights themselves) is read.
#[test]
fn next_weights_are_only_a_hint() {
    let (out, inp, batch) = if cfg!(miri) {
        (17, 33, 3)
    } else {
        (70, 600, 20)
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(21);
    let w = uniform(&mut rng, out * inp);
    let b = uniform(&mut rng, out);
    let x = uniform(&mut rng, batch * inp);
    let ran = for_each_kernel(|kernel| {
        let packed = pack(kernel, &w, out, inp, 0);
        let want = run_bits(kernel, &packed, &b, &x, inp);
        let other = uniform(&mut rng, 3 * packed.len());
        for next in [&[][..], &other[..], &other[..5], &packed[..]] {
            let mut y = vec![f32::NAN; batch * out];
            gemm::gemm_packed_bias_act_then(
                kernel,
                &packed,
                &b,
                &x,
                inp,
                Activation::LeakyRelu,
                &mut y,
                next,
            )
            .unwrap();
            let got: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "{kernel:?}, next of {}", next.len());
        }
    });
    assert_all_exercised(&ran);
}

/// AVX2, AVX-512 and NEON all sum with one FMA per term in index order, so
/// whichever of them run here agree bit for bit (different panel widths
/// and block shapes included).
#[test]
fn fma_kernels_agree_bit_for_bit() {
    let fma: Vec<Kernel> = under_test()
        .into_iter()
        .filter(|k| matches!(k, Kernel::Avx2 | Kernel::Avx512 | Kernel::Neon))
        .collect();
    let (out, inp, batch) = (53, 77, 19);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(8);
    let w = uniform(&mut rng, out * inp);
    let b = uniform(&mut rng, out);
    let x = uniform(&mut rng, batch * inp);
    let results: Vec<Vec<u32>> = fma
        .iter()
        .map(|&k| run_bits(k, &pack(k, &w, out, inp, 0), &b, &x, inp))
        .collect();
    for (k, r) in fma.iter().zip(&results).skip(1) {
        assert_eq!(r, &results[0], "{k:?} vs {:?}", fma[0]);
    }
}

#[test]
fn lrelu_epilogue_is_exact_on_known_values() {
    // W = I: y[s, r] = lrelu((0 + x[s, r]) + b[r]) exactly, with -0.0,
    // subnormals and a NaN bias (the products with 0 are exact zeros).
    let n = 21;
    let mut w = vec![0.0f32; n * n];
    for i in 0..n {
        w[i * n + i] = 1.0;
    }
    let x: Vec<f32> = (0..2 * n)
        .map(|i| match i {
            0 => -0.0,
            1 => f32::from_bits(0x8000_0001), // negative subnormal
            _ => i as f32 - 20.5,
        })
        .collect();
    let b: Vec<f32> = (0..n)
        .map(|r| match r {
            4 => f32::NAN,
            5 => -0.0,
            6 => 1.5,
            _ => 0.0,
        })
        .collect();
    let want: Vec<u32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let v = (0.0 + v) + b[i % n];
            if v < 0.0 { v * 0.2 } else { v }.to_bits()
        })
        .collect();
    for kernel in under_test() {
        let packed = pack(kernel, &w, n, n, 0);
        let got = run_bits(kernel, &packed, &b, &x, n);
        // NaN payload and sign are not specified (Miri randomises them).
        let nan = |v: u32| f32::from_bits(v).is_nan();
        for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == e || (nan(g) && nan(e)),
                "{kernel:?} [{i}]: {g:#x} vs {e:#x}"
            );
        }
    }
}

#[test]
fn packing_follows_the_documented_layout() {
    let (out, inp, nr) = (5, 3, 4);
    let w: Vec<f32> = (0..out * inp).map(|i| i as f32 + 1.0).collect();
    let mut p = vec![f32::NAN; gemm::packed_len(out, inp, nr)];
    assert_eq!(p.len(), 2 * nr * inp);
    gemm::pack_layer(&w, out, inp, nr, &mut p).unwrap();
    for panel in 0..2 {
        for k in 0..inp {
            for j in 0..nr {
                let r = panel * nr + j;
                let want = if r < out { w[r * inp + k] } else { 0.0 };
                assert_eq!(
                    p[panel * inp * nr + k * nr + j],
                    want,
                    "panel {panel} k {k} j {j}"
                );
            }
        }
    }
    assert_eq!(gemm::packed_len(0, 3, 4), 0);
    assert_eq!(gemm::packed_len(usize::MAX, 2, 4), usize::MAX);
    let err = |w: &[f32], out, inp, nr, dst: &mut [f32]| gemm::pack_layer(w, out, inp, nr, dst);
    let mut dst = vec![0.0f32; 24];
    assert_eq!(
        err(&w, out, inp, 0, &mut dst),
        Err(Error::BadDimension(Operand::Gemv))
    );
    assert!(matches!(
        err(&w[1..], out, inp, nr, &mut dst),
        Err(Error::Length { .. })
    ));
    assert!(matches!(
        err(&w, out, inp, nr, &mut dst[1..]),
        Err(Error::Length { .. })
    ));
}

#[test]
fn checked_gemm_rejects_bad_arguments() {
    let lin = Activation::Linear;
    for kernel in under_test() {
        let nr = kernel.packed_nr();
        let packed = vec![0.0f32; gemm::packed_len(2, 3, nr)];
        let call = |p: &[f32], b: &[f32], x: &[f32], inp: usize, y: &mut [f32]| {
            gemm::gemm_packed_bias_act(kernel, p, b, x, inp, lin, y)
        };
        let mut y = [7.0f32; 4];
        assert_eq!(call(&packed, &[0.0; 2], &[1.0; 6], 3, &mut y), Ok(()));
        assert_eq!(y, [0.0; 4]);
        assert_eq!(call(&packed, &[0.0; 2], &[], 3, &mut []), Ok(()), "batch 0");
        let mut y = [7.0f32; 4];
        assert!(call(&packed[1..], &[0.0; 2], &[1.0; 6], 3, &mut y).is_err());
        assert!(call(&packed, &[0.0; 2], &[1.0; 5], 3, &mut y).is_err());
        assert!(call(&packed, &[0.0; 2], &[1.0; 6], 3, &mut y[..3]).is_err());
        assert_eq!(
            call(&packed, &[0.0; 2], &[1.0; 6], 0, &mut y),
            Err(Error::BadDimension(Operand::Gemv))
        );
        assert_eq!(
            call(&packed, &[], &[1.0; 6], 3, &mut y),
            Err(Error::BadDimension(Operand::Gemv))
        );
        assert_eq!(y, [7.0; 4], "{kernel:?}: y written before an error");
    }
    for &k in Kernel::ALL.iter().filter(|k| !k.is_available()) {
        let packed = vec![0.0f32; gemm::packed_len(2, 3, k.packed_nr())];
        assert_eq!(
            gemm::gemm_packed_bias_act(k, &packed, &[0.0; 2], &[0.0; 3], 3, lin, &mut [0.0; 2]),
            Err(Error::KernelUnavailable),
            "{k:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// The whole network.

/// Folded parameters and w_avg of a random network (NVlabs init: randn / lr).
fn folded_net(spec: MappingSpec, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let raw = common::raw_net(spec, seed);
    (raw.fold().unwrap(), raw.w_avg)
}

fn packed_net(
    spec: MappingSpec,
    kernel: Kernel,
    params: &[f32],
    w_avg: &[f32],
) -> PackedNetwork<Vec<f32>> {
    let mut packed = vec![f32::NAN; gemm::packed_network_len(&spec, kernel)];
    gemm::pack_network(&spec, params, kernel, &mut packed).unwrap();
    PackedNetwork::new(spec, kernel, packed, w_avg.to_vec()).unwrap()
}

/// The per-output bound on |batched - per-sample| for one sample (see the
/// module docs), from the per-sample path's own intermediate activations.
fn network_bound(net: &MappingNetwork<&[f32]>, z: &[f32], c: &[f32]) -> Vec<f64> {
    let s = net.spec();
    let eps = f64::from(f32::EPSILON);
    let mut x = vec![0.0f32; s.input_features()];
    stylemap_core::network::normalize_2nd_moment(z, &mut x[..s.z_dim]);
    let (embed, layers) = net.layers();
    if let Some(e) = embed {
        let mut y = vec![0.0f32; e.out_features];
        kernels::gemv_bias_act(net.kernel(), e.weight, e.bias, c, e.activation, &mut y).unwrap();
        stylemap_core::network::normalize_2nd_moment(&y, &mut x[s.z_dim..]);
    }
    let mut d = vec![0.0f64; x.len()];
    for l in layers {
        let n = l.in_features;
        let mut y = vec![0.0f32; l.out_features];
        kernels::gemv_bias_act(net.kernel(), l.weight, l.bias, &x, l.activation, &mut y).unwrap();
        d = (0..l.out_features)
            .map(|r| {
                let row = &l.weight[r * n..(r + 1) * n];
                let (mut prop, mut mag) = (0.0f64, f64::from(l.bias[r].abs()));
                for k in 0..n {
                    let a = f64::from(row[k].abs());
                    prop += a * d[k];
                    mag += a * (f64::from(x[k].abs()) + d[k]);
                }
                prop + 2.0 * (n as f64 + 2.0) * (eps * mag + common::TINY)
            })
            .collect();
        x = y;
    }
    d
}

fn specs() -> Vec<MappingSpec> {
    let mut odd = MappingSpec::nvlabs(37, 0, 19, 4, 12);
    odd.layer_features = 23;
    let mut odd_cond = MappingSpec::nvlabs(37, 5, 19, 3, 9);
    odd_cond.layer_features = 23;
    odd_cond.embed_features = 11;
    odd_cond.lr_multiplier = 0.05;
    let mut linear = MappingSpec::nvlabs(8, 0, 8, 2, 4);
    linear.activation = Activation::Linear;
    linear.lr_multiplier = 1.0;
    let one_layer = MappingSpec::nvlabs(3, 2, 5, 1, 2);
    let mut v = vec![odd, odd_cond, linear, one_layer];
    if !cfg!(miri) {
        v.push(MappingSpec::nvlabs(64, 10, 64, 8, 10));
    }
    v
}

/// Checks `forward_batch` on `batch` samples against per-sample `forward`
/// (same kernel) within [`network_bound`].
fn check_network(
    spec: MappingSpec,
    (params, w_avg): &(Vec<f32>, Vec<f32>),
    kernel: Kernel,
    batch: usize,
    seed: u64,
) {
    let net = MappingNetwork::new(spec, &params[..], &w_avg[..])
        .unwrap()
        .with_kernel(kernel)
        .unwrap();
    let packed = packed_net(spec, kernel, params, w_avg);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed + 1000);
    let z = normal(&mut rng, batch * spec.z_dim, 1.0);
    let mut c = vec![0.0f32; batch * spec.c_dim];
    for (s, row) in c.chunks_mut(spec.c_dim.max(1)).enumerate().take(batch) {
        if spec.c_dim > 0 {
            row[(s * 7) % spec.c_dim] = 1.0;
        }
    }
    let mut scratch = vec![f32::NAN; packed.scratch_len(batch)];
    let mut w = vec![f32::NAN; batch * spec.w_dim];
    packed
        .forward_batch(&z, &c, batch, &mut scratch, &mut w)
        .unwrap();
    let mut one = vec![0.0f32; spec.w_dim];
    let mut scratch1 = vec![0.0f32; spec.scratch_len()];
    for s in 0..batch {
        let zs = &z[s * spec.z_dim..(s + 1) * spec.z_dim];
        let cs = &c[s * spec.c_dim..(s + 1) * spec.c_dim];
        net.forward(zs, cs, &mut scratch1, &mut one).unwrap();
        let tol = network_bound(&net, zs, cs);
        for (i, (&g, &e)) in w[s * spec.w_dim..(s + 1) * spec.w_dim]
            .iter()
            .zip(&one)
            .enumerate()
        {
            assert!(
                f64::from((g - e).abs()) <= tol[i],
                "{spec:?} {kernel:?} B={batch} sample {s} w[{i}]: batched {g} vs forward {e} \
                 (bound {})",
                tol[i]
            );
        }
    }
}

#[test]
fn batched_forward_matches_per_sample_forward() {
    let batches: &[usize] = if cfg!(miri) { &[1, 3] } else { &[1, 7, 64] };
    // Under Miri (slow), two of the shape classes: conditional with odd
    // widths, and one layer.
    let specs: Vec<MappingSpec> = if cfg!(miri) {
        vec![specs()[1], specs()[3]]
    } else {
        specs()
    };
    let nets: Vec<_> = specs
        .iter()
        .enumerate()
        .map(|(n, &spec)| folded_net(spec, n as u64))
        .collect();
    let ran = for_each_kernel(|kernel| {
        for (n, (&spec, net)) in specs.iter().zip(&nets).enumerate() {
            for &batch in batches {
                check_network(spec, net, kernel, batch, n as u64);
            }
        }
    });
    assert_all_exercised(&ran);
}

#[test]
#[cfg_attr(miri, ignore = "large network is slow under miri")]
fn batched_forward_matches_per_sample_forward_on_stylegan2_shapes() {
    // Three samples keep this under ~2 s in debug builds; batch sizes 1, 7
    // and 64 are covered on the smaller networks above.
    let spec = MappingSpec::STYLEGAN2_1024;
    let net = folded_net(spec, 42);
    let ran = for_each_kernel(|kernel| check_network(spec, &net, kernel, 3, 42));
    assert_all_exercised(&ran);
}

/// Batches longer than one pass through the layers (`BATCH_CHUNK`) give
/// the same bits as the same samples mapped in small batches.
#[test]
fn long_batches_equal_short_batches_bit_for_bit() {
    let spec = MappingSpec::nvlabs(5, 3, 4, 2, 3);
    let batch = if cfg!(miri) {
        20
    } else {
        2 * gemm::BATCH_CHUNK + 3
    };
    let (params, w_avg) = folded_net(spec, 9);
    let ran = for_each_kernel(|kernel| {
        let net = packed_net(spec, kernel, &params, &w_avg);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(10);
        let z = normal(&mut rng, batch * spec.z_dim, 1.0);
        let c: Vec<f32> = (0..batch * spec.c_dim)
            .map(|i| if i % 4 == 0 { 1.0 } else { 0.0 })
            .collect();
        let map = |lo: usize, hi: usize| {
            let n = hi - lo;
            let mut scratch = vec![0.0f32; net.scratch_len(n)];
            let mut w = vec![0.0f32; n * spec.w_dim];
            net.forward_batch(
                &z[lo * spec.z_dim..hi * spec.z_dim],
                &c[lo * spec.c_dim..hi * spec.c_dim],
                n,
                &mut scratch,
                &mut w,
            )
            .unwrap();
            w.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
        };
        let all = map(0, batch);
        let mut parts = Vec::new();
        let mut lo = 0;
        while lo < batch {
            let hi = (lo + 5).min(batch);
            parts.extend(map(lo, hi));
            lo = hi;
        }
        assert_eq!(all, parts, "{kernel:?}");
    });
    assert_all_exercised(&ran);
}

#[test]
fn packed_network_layout_is_aligned_and_complete() {
    let mut spec = MappingSpec::nvlabs(37, 5, 19, 3, 9);
    spec.layer_features = 23;
    spec.embed_features = 11;
    let (params, w_avg) = folded_net(spec, 3);
    for &kernel in Kernel::ALL {
        let nr = kernel.packed_nr();
        let len = gemm::packed_network_len(&spec, kernel);
        let mut buf = vec![f32::NAN; len];
        gemm::pack_network(&spec, &params, kernel, &mut buf).unwrap();
        assert!(
            buf.iter().all(|v| v.is_finite()),
            "{kernel:?}: padding is zeroed"
        );
        if !kernel.is_available() {
            continue;
        }
        let net = PackedNetwork::new(spec, kernel, &buf[..], &w_avg[..]).unwrap();
        let (embed, layers) = net.layers();
        let folded = MappingNetwork::new(spec, &params[..], &w_avg[..]).unwrap();
        let (fe, fl) = folded.layers();
        let base = buf.as_ptr() as usize;
        for (p, f) in embed
            .into_iter()
            .chain(layers)
            .zip(fe.into_iter().chain(fl))
        {
            assert_eq!(
                (p.in_features, p.out_features),
                (f.in_features, f.out_features)
            );
            assert_eq!(p.nr, nr);
            assert_eq!(
                (p.weight.as_ptr() as usize - base) / 4 % gemm::SECTION_ALIGN,
                0
            );
            assert_eq!(p.bias, f.bias);
            let mut want = vec![0.0f32; gemm::packed_len(f.out_features, f.in_features, nr)];
            gemm::pack_layer(f.weight, f.out_features, f.in_features, nr, &mut want).unwrap();
            assert_eq!(p.weight, &want[..]);
        }
    }
    assert_eq!(
        gemm::packed_network_len(&MappingSpec { z_dim: 0, ..spec }, Kernel::Scalar),
        usize::MAX
    );
}

#[test]
fn packed_network_rejects_bad_inputs_before_writing() {
    let spec = MappingSpec::nvlabs(3, 2, 5, 1, 2);
    let (params, w_avg) = folded_net(spec, 4);
    let kernel = Kernel::best();
    let mut buf = vec![0.0f32; gemm::packed_network_len(&spec, kernel)];
    assert!(matches!(
        gemm::pack_network(&spec, &params[1..], kernel, &mut buf),
        Err(Error::Length {
            what: Operand::Params,
            ..
        })
    ));
    assert!(matches!(
        gemm::pack_network(&spec, &params, kernel, &mut buf[1..]),
        Err(Error::Length {
            what: Operand::Params,
            ..
        })
    ));
    gemm::pack_network(&spec, &params, kernel, &mut buf).unwrap();
    assert!(matches!(
        PackedNetwork::new(spec, kernel, &buf[1..], &w_avg[..]),
        Err(Error::Length {
            what: Operand::Params,
            ..
        })
    ));
    let mut bad = buf.clone();
    bad[2] = f32::INFINITY;
    assert_eq!(
        PackedNetwork::new(spec, kernel, &bad[..], &w_avg[..]).err(),
        Some(Error::NonFinite {
            what: Operand::Params,
            index: 2
        })
    );
    for &k in Kernel::ALL.iter().filter(|k| !k.is_available()) {
        assert_eq!(
            PackedNetwork::new(spec, k, &buf[..], &w_avg[..]).err(),
            Some(Error::KernelUnavailable)
        );
    }
    let net = PackedNetwork::new(spec, kernel, &buf[..], &w_avg[..]).unwrap();
    let batch = 2;
    let ns = net.scratch_len(batch);
    assert_eq!(ns, batch * spec.scratch_len());
    common::assert_batch_io_errors(batch, ns, |z, c, scratch, w| {
        net.forward_batch(z, c, batch, scratch, w)
    });
    assert_eq!(net.forward_batch(&[], &[], 0, &mut [], &mut []), Ok(()));
}

#[test]
fn kernels_report_consistent_panel_widths() {
    for &k in Kernel::ALL {
        let nr = k.packed_nr();
        assert!(nr > 0 && nr <= 64, "{k:?}");
    }
    assert_required_kernels();
}
