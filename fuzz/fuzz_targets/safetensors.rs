//! `safetensors`: arbitrary bytes (and mutated fixture checkpoints) through
//! `stylemap::load::inspect_bytes` and `load_bytes`. Checks: an `Ok` or a
//! clean `Error` whose message is one line, with no control character even
//! where it quotes the file's tensor names (no panic, no hang, no allocation
//! beyond what the input's size justifies); on `Ok` the network is usable:
//! mapping a z gives a finite w or an overflow error, never a silent NaN.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use stylemap::{LoadOptions, Mapper};

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.safetensors");
    if let Err(e) = stylemap::load::inspect_bytes(data, name) {
        assert_one_line(&e);
    }
    // Few samples if w_avg must be estimated; a fallback num_ws when the
    // metadata has none.
    let opts = LoadOptions {
        w_avg_samples: 4,
        ..LoadOptions::default()
    };
    let net = match stylemap::load::load_bytes(data, name, &opts) {
        Ok(net) => net,
        Err(e) => {
            assert_one_line(&e);
            let opts = LoadOptions {
                num_ws: Some(3),
                ..opts
            };
            match stylemap::load::load_bytes(data, name, &opts) {
                Ok(net) => net,
                Err(e) => return assert_one_line(&e),
            }
        }
    };
    let s = *net.spec();
    s.validate().expect("a loaded spec is valid");
    assert!(net.w_avg().iter().all(|v| v.is_finite()));
    let z: Vec<f32> = (0..s.z_dim).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut c = vec![0.0f32; s.c_dim];
    if let Some(first) = c.first_mut() {
        *first = 1.0;
    }
    let mut w = vec![0.0f32; s.w_dim];
    match Mapper::new(&net).with_threads(1).map(&z, &c, &mut w) {
        Ok(()) => assert!(w.iter().all(|v| v.is_finite()), "{w:?}"),
        Err(e) => assert!(e.to_string().contains("overflow"), "{e}"),
    }
});

/// An error message is one line with no control character, even where it
/// quotes the file's text.
fn assert_one_line(e: &stylemap::Error) {
    let msg = e.to_string();
    assert!(!msg.contains(char::is_control), "{msg:?}");
}
