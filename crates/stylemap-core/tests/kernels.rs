//! Every available kernel against the scalar oracle, on every size 1..=70,
//! 512 and 1024, with misaligned slices.
//!
//! Tolerance (stated, not tuned): two f32 dot products of length n summed in
//! different orders each lie within gamma_n * sum|W||x| of the exact value
//! (gamma_n = n eps / (1 - n eps), Higham 3.1), so they differ by at most
//! `2 (n + 2) eps (sum_k |W[r,k] x[k]| + |b[r]|)`; the +2 covers the bias
//! add and FMA-vs-separate rounding. lrelu has slope <= 1 and cannot widen it.

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use stylemap_core::kernels::{self, Kernel};
use stylemap_core::{Activation, Error};

fn uniform(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0)
        .collect()
}

fn bound(w: &[f32], b: f32, x: &[f32]) -> f32 {
    let mag: f64 = w
        .iter()
        .zip(x)
        .map(|(&a, &c)| f64::from((a * c).abs()))
        .sum();
    let n = x.len() as f64;
    (2.0 * (n + 2.0) * f64::from(f32::EPSILON) * (mag + f64::from(b.abs()))) as f32
}

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

fn available() -> impl Iterator<Item = Kernel> {
    Kernel::ALL.iter().copied().filter(|k| k.is_available())
}

#[test]
fn every_kernel_matches_the_oracle_on_sizes_1_to_70() {
    let sizes: Vec<usize> = if cfg!(miri) {
        vec![1, 7, 8, 9, 17, 33]
    } else {
        (1..=70).collect()
    };
    for kernel in available() {
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
    }
}

#[test]
#[cfg_attr(miri, ignore = "large sizes are slow under miri")]
fn every_kernel_matches_the_oracle_on_network_sizes() {
    for kernel in available() {
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
    }
}

#[test]
fn lrelu_epilogue_is_exact_on_known_values() {
    // W = I, b = 0: y = lrelu(x) exactly, for every kernel (gain is folded elsewhere).
    for kernel in available() {
        for n in [1usize, 5, 8, 13] {
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
    for kernel in available() {
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
