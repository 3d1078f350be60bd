//! Batching: results do not depend on batch size, path (GEMV/GEMM) or thread
//! count beyond f32 rounding, and bad arguments are errors.

mod common;

use common::{core_forward, fixture, max_abs_diff};
use stylemap::core::sampler;
use stylemap::{LoadOptions, Mapper, Network, load};

const TOL: f32 = 1e-5;

fn zs(net: &Network, n: usize, seed: u64) -> Vec<f32> {
    let zd = net.spec().z_dim;
    let mut z = vec![0.0f32; n * zd];
    for (i, row) in z.chunks_exact_mut(zd).enumerate() {
        sampler::z_from_seed_xoshiro(seed + i as u64, row);
    }
    z
}

fn labels(net: &Network, n: usize) -> Vec<f32> {
    let cd = net.spec().c_dim;
    let mut c = vec![0.0f32; n * cd];
    for (i, row) in c.chunks_exact_mut(cd.max(1)).enumerate().take(n) {
        if cd > 0 {
            row[i % cd] = 1.0;
        }
    }
    c
}

/// `thorough`: every thread count and threshold (cheap for the tiny fixtures;
/// the 8x512 built-in network takes the short list in debug builds).
fn check_consistency(net: &Network, thorough: bool) {
    let s = *net.spec();
    let n = 64;
    let z = zs(net, n, 1000);
    let c = labels(net, n);
    let reference = core_forward(net, &z, &c);
    let mut scale = 0.0f32;
    for v in &reference {
        scale = scale.max(v.abs());
    }
    assert!(scale > 0.1, "outputs are not trivially small");
    // Batch 64 through every path and thread count.
    let (threads_list, thresholds): (&[usize], &[usize]) = if thorough {
        (&[1, 2, 3], &[0, 1, 8, 65, usize::MAX])
    } else {
        (&[1, 2], &[0, usize::MAX])
    };
    for &threads in threads_list {
        for &threshold in thresholds {
            let mut w = vec![0.0f32; n * s.w_dim];
            let mut m = Mapper::new(net)
                .with_threads(threads)
                .with_gemm_threshold(threshold);
            m.map(&z, &c, &mut w).unwrap();
            let d = max_abs_diff(&w, &reference);
            assert!(
                d <= TOL,
                "batch 64, threads {threads}, threshold {threshold}: {d}"
            );
            // Buffers are reused: a second call gives the same bits.
            let mut w2 = vec![0.0f32; n * s.w_dim];
            m.map(&z, &c, &mut w2).unwrap();
            assert_eq!(w, w2);
        }
    }
    // Batch 1, one sample at a time, both paths.
    for threshold in [0, usize::MAX] {
        let mut m = Mapper::new(net).with_gemm_threshold(threshold);
        let mut w = vec![0.0f32; n * s.w_dim];
        for i in 0..n {
            m.map(
                &z[i * s.z_dim..(i + 1) * s.z_dim],
                &c[i * s.c_dim..(i + 1) * s.c_dim],
                &mut w[i * s.w_dim..(i + 1) * s.w_dim],
            )
            .unwrap();
        }
        let d = max_abs_diff(&w, &reference);
        assert!(d <= TOL, "batch 1, threshold {threshold}: {d}");
    }
    // Odd batch sizes with uneven thread chunks.
    for k in [2, 3, 7, 13] {
        let mut w = vec![0.0f32; k * s.w_dim];
        Mapper::new(net)
            .with_threads(2)
            .map(&z[..k * s.z_dim], &c[..k * s.c_dim], &mut w)
            .unwrap();
        let d = max_abs_diff(&w, &reference[..k * s.w_dim]);
        assert!(d <= TOL, "batch {k}: {d}");
    }
    // The GEMM path on its own does not depend on the thread count at all.
    let run = |threads| {
        let mut w = vec![0.0f32; n * s.w_dim];
        Mapper::new(net)
            .with_threads(threads)
            .with_gemm_threshold(0)
            .map(&z, &c, &mut w)
            .unwrap();
        w
    };
    assert!(max_abs_diff(&run(1), &run(2)) <= TOL);
}

#[test]
fn builtin_batch_1_vs_64_vs_threads() {
    // Max difference seen on x86-64 (AVX2/FMA sgemm vs the portable GEMV
    // kernel): 7.6e-6 with |w| up to 7.9, i.e. f32 summation-order noise.
    check_consistency(&Network::builtin(), false);
}

#[test]
fn fixtures_batch_1_vs_64_vs_threads() {
    for file in [
        "nvlabs_uncond.safetensors",
        "nvlabs_cond.safetensors",
        "nvlabs_bf16.safetensors",
        "rosinality.safetensors",
    ] {
        let net = load(&fixture(file), &LoadOptions::default()).unwrap();
        check_consistency(&net, true);
    }
}

#[test]
fn bad_arguments_are_errors_and_write_nothing() {
    let net = load(
        &fixture("nvlabs_uncond.safetensors"),
        &LoadOptions::default(),
    )
    .unwrap();
    let cond = load(&fixture("nvlabs_cond.safetensors"), &LoadOptions::default()).unwrap();
    let s = *net.spec();
    let mut m = Mapper::new(&net);
    let z = zs(&net, 3, 0);
    let mut w = vec![7.0f32; 3 * s.w_dim];
    let msg = |r: Result<(), stylemap::Error>| r.unwrap_err().to_string();
    assert!(msg(m.map(&z[..s.z_dim * 2], &[], &mut w)).contains("z has"));
    assert!(msg(m.map(&z, &[], &mut w[..s.w_dim * 3 - 1])).contains("w_dim"));
    assert!(msg(m.map(&z, &[1.0; 3], &mut w)).contains("unconditional"));
    let mut bad = z.clone();
    bad[s.z_dim + 2] = f32::NAN;
    let e = msg(m.map(&bad, &[], &mut w));
    assert!(
        e.contains("NaN") && e.contains("sample 1") && e.contains("element 2"),
        "{e}"
    );
    assert!(w.iter().all(|&v| v == 7.0), "nothing written on error");
    // Conditional network: c is required and checked.
    let cs = *cond.spec();
    let mut mc = Mapper::new(&cond);
    let zc = zs(&cond, 2, 0);
    let mut wc = vec![0.0f32; 2 * cs.w_dim];
    assert!(msg(mc.map(&zc, &[], &mut wc)).contains("c has"));
    let mut c = labels(&cond, 2);
    c[1] = f32::INFINITY;
    assert!(msg(mc.map(&zc, &c, &mut wc)).contains("infinity"));
    // Empty batch is fine.
    m.map(&[], &[], &mut []).unwrap();
    // Zero z is fine (normalisation of 0 gives 0).
    let mut w1 = vec![0.0f32; s.w_dim];
    m.map(&vec![0.0; s.z_dim], &[], &mut w1).unwrap();
    assert!(w1.iter().all(|v| v.is_finite()));
}
