//! Minimum-of-N timing of the packed AVX-512 kernel on one cache-resident
//! 512x512 layer and on the whole network (robust to a busy machine: the
//! minimum of many short runs is a run nobody interrupted).
mod timing;

use timing::min_time;

use stylemap::core::kernels::gemm::{gemm_packed_bias_act, pack_layer, packed_len};
use stylemap::core::{Activation, Kernel};

fn main() {
    let k = Kernel::best();
    let nr = k.packed_nr();
    let (out, inp) = (512, 512);
    let w: Vec<f32> = (0..out * inp)
        .map(|i| ((i * 37) % 101) as f32 / 1000.0 - 0.05)
        .collect();
    let mut p = vec![0.0; packed_len(out, inp, nr)];
    pack_layer(&w, out, inp, nr, &mut p).unwrap();
    let bias = vec![0.1f32; out];
    for b in [8usize, 16, 64, 128] {
        let x: Vec<f32> = (0..b * inp)
            .map(|i| ((i * 13) % 97) as f32 / 97.0)
            .collect();
        let mut y = vec![0.0f32; b * out];
        let t = min_time(400, || {
            gemm_packed_bias_act(k, &p, &bias, &x, inp, Activation::LeakyRelu, &mut y).unwrap()
        });
        let gf = 2.0 * (out * inp * b) as f64 / t / 1e9;
        println!(
            "{k:?} layer 512x512 B={b:4}: {:8.2} µs  {gf:6.1} GFLOP/s",
            t * 1e6
        );
    }
    // Eight distinct layers (8 MiB of weights: L3, not L2) chained as the
    // network chains them: the layer numbers above minus L3 streaming.
    // Set STYLEMAP_PROBE_SMALL_PAGES to hold them in Vecs (4 KiB pages)
    // instead of the huge-page buffers the network uses (stylemap::bigbuf).
    let small = std::env::var_os("STYLEMAP_PROBE_SMALL_PAGES").is_some();
    let layers: Vec<Box<dyn AsRef<[f32]>>> = (0..8)
        .map(|l| {
            let v: Vec<f32> = p.iter().map(|v| v * (1.0 + l as f32 * 1e-3)).collect();
            if small {
                Box::new(v) as Box<dyn AsRef<[f32]>>
            } else {
                Box::new(stylemap::bigbuf::BigBuf::copy_from(&v))
            }
        })
        .collect();
    for b in [64usize, 128] {
        let mut a: Vec<f32> = (0..b * inp)
            .map(|i| ((i * 13) % 97) as f32 / 97.0)
            .collect();
        let mut c = vec![0.0f32; b * out];
        let t = min_time(100, || {
            for l in &layers {
                gemm_packed_bias_act(
                    k,
                    (**l).as_ref(),
                    &bias,
                    &a,
                    inp,
                    Activation::LeakyRelu,
                    &mut c,
                )
                .unwrap();
                std::mem::swap(&mut a, &mut c);
            }
        });
        let gf = 2.0 * (out * inp * b * 8) as f64 / t / 1e9;
        println!(
            "{k:?} 8 distinct layers B={b:4}: {:8.2} µs/sample  {gf:6.1} GFLOP/s",
            t * 1e6 / b as f64
        );
    }
    let net = stylemap::Network::builtin();
    let s = *net.spec();
    let mut m = stylemap::Mapper::new(&net).with_threads(1);
    for b in [8usize, 64, 128, 512] {
        let z: Vec<f32> = (0..b * s.z_dim)
            .map(|i| ((i * 13) % 97) as f32 / 48.0 - 1.0)
            .collect();
        let mut wv = vec![0.0f32; b * s.w_dim];
        let t = min_time(if b > 128 { 30 } else { 100 }, || {
            m.map(&z, &[], &mut wv).unwrap()
        });
        let gf = 2.0 * (s.macs() * b) as f64 / t / 1e9;
        println!(
            "mapper 1t B={b:4}: {:8.2} µs/sample  {gf:6.1} GFLOP/s",
            t * 1e6 / b as f64
        );
    }
}
