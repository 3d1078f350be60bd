//! `npy`: arbitrary bytes (and mutated valid files) through the `.npy`
//! reader. Checks: an `Ok` or a clean `Error` (no panic, no hang, no
//! allocation beyond the input's size); on `Ok` the values are finite, their
//! number matches the shape, streaming in arbitrary chunks gives the same
//! values, and writing them back and re-reading is the identity.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use stylemap::npy::{self, Reader};

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.npy");
    let Ok((shape, values)) = npy::read_f32_bytes(data, name) else {
        return;
    };
    assert_eq!(npy::element_count(&shape), Some(values.len() as u64));
    assert!(values.iter().all(|v| v.is_finite()));

    // Streaming in uneven chunks gives the same values.
    let mut r = Reader::new(data, data.len() as u64, name).expect("header read twice");
    let mut got = vec![0.0f32; values.len()];
    let mut at = 0;
    let mut step = 1;
    while at < got.len() {
        let end = (at + step).min(got.len());
        r.read_f32(&mut got[at..end], 3).expect("chunk");
        at = end;
        step = step * 3 + 1;
    }
    assert_eq!(r.remaining(), 0);
    assert!(r.read_f32(&mut [0.0], 1).is_err());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&values));

    // Write -> read is the identity (as f32).
    let bytes = npy::to_bytes(&shape, &values).expect("write");
    let (shape2, values2) = npy::read_f32_bytes(&bytes, name).expect("re-read");
    assert_eq!(shape2, shape);
    assert_eq!(bits(&values2), bits(&values));
});
