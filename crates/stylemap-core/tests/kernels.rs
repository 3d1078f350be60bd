//! Every available kernel against the scalar oracle, on every size 1..=70,
//! 512 and 1024, with misaligned slices; bit-for-bit determinism; and a check
//! that every kernel this CPU supports was actually run.
//!
//! Environment: `STYLEMAP_KERNEL` and `STYLEMAP_REQUIRE_KERNELS`, see
//! `common/mod.rs` (shared with `gemm.rs`).
//!
//! Tolerance (stated, not tuned): two f32 dot products of length n summed in
//! different orders each lie within gamma_n * sum|W||x| of the exact value
//! (gamma_n = n eps / (1 - n eps), Higham 3.1), so they differ by at most
//! `2 (n + 2) eps (sum_k |W[r,k] x[k]| + |b[r]|)`; the +2 covers the bias
//! add and FMA-vs-separate rounding. lrelu has slope <= 1 and cannot widen it
//! (`common::dot_bound`).

mod common;

use common::{
    assert_all_exercised, assert_required_kernels, dot_bound as bound, for_each_kernel, under_test,
    uniform,
};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use stylemap_core::kernels::{self, Kernel};
use stylemap_core::{Activation, Error};

/// Runs `kernel` and the oracle on `rows x cols` starting `offset` floats into
/// their buffers (so SIMD loads are misaligned for odd offsets).
fn check(kernel: Kernel, rows: usize, cols: usize, offset: usize, act: Activation, seed: u64) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let wbuf = uniform(&mut rng, rows * cols + offset);
    let bbuf = uniform(&mut rng, rows + offset);
    let xbuf = uniform(&mut rng, cols + offset);
    let (w, b, x) = (&wbuf[offset..], &bbuf[offset..], &xbuf[offset..]);
    let mut want = vec![0.0f32; rows];
    let mut got = vec![f32::NAN; rows + offset];
    kernels::gemv_bias_act(Kernel::Scalar, w, b, x, act, &mut want).unwrap();
    kernels::gemv_bias_act(kernel, w, b, x, act, &mut got[offset..]).unwrap();
    for r in 0..rows {
        let tol = bound(&w[r * cols..(r + 1) * cols], b[r], x);
        let (g, e) = (got[offset + r], want[r]);
        assert!(
            (g - e).abs() <= tol,
            "{kernel:?} {rows}x{cols}+{offset} {act:?} row {r}: {g} vs oracle {e} (tol {tol})"
        );
    }
}

#[test]
fn every_kernel_matches_the_oracle_on_sizes_1_to_70() {
    let sizes: Vec<usize> = if cfg!(miri) {
        vec![1, 7, 8, 9, 17, 33]
    } else {
        (1..=70).collect()
    };
    let ran = for_each_kernel(|kernel| {
        for &rows in &sizes {
            for &cols in &sizes {
                let act = if (rows + cols) % 2 == 0 {
                    Activation::LeakyRelu
                } else {
                    Activation::Linear
                };
                check(
                    kernel,
                    rows,
                    cols,
                    (rows * 7 + cols) % 3,
                    act,
                    (rows * 100 + cols) as u64,
                );
            }
        }
    });
    assert_all_exercised(&ran);
}

#[test]
#[cfg_attr(miri, ignore = "large sizes are slow under miri")]
fn every_kernel_matches_the_oracle_on_network_sizes() {
    let ran = for_each_kernel(|kernel| {
        for &(rows, cols) in &[(512, 512), (1024, 1024), (512, 1034), (19, 512), (512, 37)] {
            for offset in [0, 1] {
                check(
                    kernel,
                    rows,
                    cols,
                    offset,
                    Activation::LeakyRelu,
                    7 + offset as u64,
                );
            }
        }
    });
    assert_all_exercised(&ran);
}

#[test]
fn lrelu_epilogue_is_exact_on_known_values() {
    // W = I, b = 0: y = lrelu(x) exactly, for every kernel (gain is folded elsewhere).
    for kernel in under_test() {
        for n in [1usize, 5, 8, 13, 16, 17] {
            let mut w = vec![0.0f32; n * n];
            for i in 0..n {
                w[i * n + i] = 1.0;
            }
            let x: Vec<f32> = (0..n).map(|i| i as f32 - 3.0).collect();
            let mut y = vec![0.0f32; n];
            kernels::gemv_bias_act(kernel, &w, &vec![0.0; n], &x, Activation::LeakyRelu, &mut y)
                .unwrap();
            let want: Vec<f32> = x
                .iter()
                .map(|&v| if v < 0.0 { v * 0.2 } else { v })
                .collect();
            assert_eq!(y, want, "{kernel:?} n={n}");
        }
    }
}

#[test]
fn checked_gemv_rejects_bad_lengths() {
    let mut y = [0.0f32; 2];
    let lin = Activation::Linear;
    for kernel in under_test() {
        assert!(
            kernels::gemv_bias_act(kernel, &[0.0; 5], &[0.0; 2], &[0.0; 3], lin, &mut y).is_err()
        );
        assert!(
            kernels::gemv_bias_act(kernel, &[0.0; 6], &[0.0; 1], &[0.0; 3], lin, &mut y).is_err()
        );
        assert_eq!(
            kernels::gemv_bias_act(kernel, &[], &[0.0; 2], &[], lin, &mut y),
            Err(Error::BadDimension(stylemap_core::Operand::Gemv))
        );
    }
}

#[test]
fn kernel_names_round_trip() {
    for &k in Kernel::ALL {
        assert_eq!(Kernel::from_name(k.name()), Some(k));
    }
    assert!(Kernel::best().is_available());
}

#[test]
fn unavailable_kernels_are_refused() {
    let mut y = [0.0f32; 2];
    for &k in Kernel::ALL.iter().filter(|k| !k.is_available()) {
        assert_eq!(
            kernels::gemv_bias_act(
                k,
                &[0.0; 6],
                &[0.0; 2],
                &[0.0; 3],
                Activation::Linear,
                &mut y
            ),
            Err(Error::KernelUnavailable),
            "{k:?}"
        );
    }
}

/// Detection agrees with std's independent detector, `best()` picks the
/// widest available kernel, and `STYLEMAP_REQUIRE_KERNELS` holds.
#[test]
fn detection_matches_std_and_required_kernels_are_available() {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        let avx512 = std::is_x86_feature_detected!("avx512f");
        assert_eq!(Kernel::Avx2.is_available(), avx2);
        assert_eq!(Kernel::Avx512.is_available(), avx512);
        assert!(!Kernel::Neon.is_available());
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        assert!(Kernel::Neon.is_available());
        assert!(!Kernel::Avx2.is_available() && !Kernel::Avx512.is_available());
    }
    assert!(Kernel::Scalar.is_available() && Kernel::Portable.is_available());

    let preference = [Kernel::Avx512, Kernel::Avx2, Kernel::Neon, Kernel::Portable];
    let want = if cfg!(feature = "force-scalar") {
        Kernel::Scalar
    } else {
        preference.into_iter().find(|k| k.is_available()).unwrap()
    };
    assert_eq!(Kernel::best(), want);
    assert_eq!(Kernel::best(), Kernel::best(), "the choice is stable");

    assert_required_kernels();
}

/// Each kernel is deterministic: the same input twice, the same values at
/// another alignment, and any contiguous subset of rows (as a thread's share
/// would be) all give bit-identical outputs.
#[test]
fn every_kernel_is_bit_deterministic() {
    let shapes: &[(usize, usize)] = if cfg!(miri) {
        &[(11, 21), (9, 16)]
    } else {
        &[(37, 70), (512, 512), (9, 1034), (64, 31)]
    };
    let ran = for_each_kernel(|kernel| {
        for &(rows, cols) in shapes {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64((rows * cols) as u64);
            let w = uniform(&mut rng, rows * cols);
            let b = uniform(&mut rng, rows);
            let x = uniform(&mut rng, cols);
            let act = Activation::LeakyRelu;
            let run = |w: &[f32], b: &[f32], x: &[f32]| {
                let mut y = vec![f32::NAN; b.len()];
                kernels::gemv_bias_act(kernel, w, b, x, act, &mut y).unwrap();
                y.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
            };
            let first = run(&w, &b, &x);
            assert_eq!(
                first,
                run(&w, &b, &x),
                "{kernel:?} {rows}x{cols}: second run"
            );

            for offset in [1usize, 3] {
                let shift = |v: &[f32]| {
                    let mut buf = vec![0.0f32; v.len() + offset];
                    buf[offset..].copy_from_slice(v);
                    buf
                };
                let (ws, bs, xs) = (shift(&w), shift(&b), shift(&x));
                let moved = run(&ws[offset..], &bs[offset..], &xs[offset..]);
                assert_eq!(first, moved, "{kernel:?} {rows}x{cols}: offset {offset}");
            }

            for (lo, hi) in [
                (0, rows / 2),
                (rows / 2, rows),
                (1, rows),
                (rows / 3, rows - 1),
            ] {
                if lo >= hi {
                    continue;
                }
                let part = run(&w[lo * cols..hi * cols], &b[lo..hi], &x);
                assert_eq!(
                    part,
                    first[lo..hi],
                    "{kernel:?} {rows}x{cols}: rows {lo}..{hi} alone"
                );
            }
        }
    });
    assert_all_exercised(&ran);
}
