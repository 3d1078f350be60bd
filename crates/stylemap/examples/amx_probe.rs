//! Minimum-of-N timing of the AMX kernel (`stylemap_core::kernels::amx`) on
//! one cache-resident 512x512 layer, next to the packed AVX-512 kernel, and
//! its largest error against f64 on the same data.
mod timing;

use timing::min_time;

use stylemap::core::kernels::amx;
use stylemap::core::kernels::gemm::{gemm_packed_bias_act, pack_layer, packed_len};
use stylemap::core::{Activation, Kernel};

fn main() {
    if !amx::is_available() {
        println!("AMX is not available here");
        return;
    }
    let (out, inp) = (512, 512);
    let w: Vec<f32> = (0..out * inp)
        .map(|i| ((i * 37) % 101) as f32 / 1000.0 - 0.05 + (i % 7) as f32 * 1.3e-5)
        .collect();
    let bias = vec![0.1f32; out];
    let k = Kernel::best();
    let mut p = vec![0.0; packed_len(out, inp, k.packed_nr())];
    pack_layer(&w, out, inp, k.packed_nr(), &mut p).unwrap();
    let mut pv = vec![0u32; amx::packed_layer_len(out, inp)];
    amx::pack_layer(&w, out, inp, &mut pv).unwrap();
    let pa = stylemap::bigbuf::BigBuf::copy_from(&pv);
    let mut acc =
        stylemap::bigbuf::BigBuf::copy_from(&vec![0.0f32; amx::layer_scratch_len(out, inp)]);
    for b in [8usize, 16, 32, 64, 128, 256] {
        let x: Vec<f32> = (0..b * inp)
            .map(|i| ((i * 13) % 97) as f32 / 97.0 - 0.3 + (i % 11) as f32 * 1.7e-6)
            .collect();
        let mut y = vec![0.0f32; b * out];
        let mut ya = vec![0.0f32; b * out];
        let act = Activation::Linear;
        let t = min_time(200, || {
            gemm_packed_bias_act(k, &p, &bias, &x, inp, act, &mut y).unwrap()
        });
        let ta = min_time(200, || {
            amx::gemm_bias_act(&pa, &bias, &x, inp, act, &mut ya, &mut acc).unwrap()
        });
        let (mut e_f, mut e_a, mut mag) = (0.0f64, 0.0f64, 0.0f64);
        for s in 0..b {
            for r in 0..out {
                let exact: f64 = (0..inp)
                    .map(|k| f64::from(w[r * inp + k]) * f64::from(x[s * inp + k]))
                    .sum::<f64>()
                    + 0.1f64 as f32 as f64;
                e_f = e_f.max((f64::from(y[s * out + r]) - exact).abs());
                e_a = e_a.max((f64::from(ya[s * out + r]) - exact).abs());
                mag = mag.max(exact.abs());
            }
        }
        let gf = |t: f64| 2.0 * (out * inp * b) as f64 / t / 1e9;
        println!(
            "B={b:4}: {k:?} {:8.2} µs {:6.1} GFLOP/s | amx {:8.2} µs {:6.1} GFLOP/s | max err vs f64: fma {e_f:.2e} amx {e_a:.2e} (max |y| {mag:.2})",
            t * 1e6,
            gf(t),
            ta * 1e6,
            gf(ta)
        );
    }
}
