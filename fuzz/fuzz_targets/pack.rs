//! `pack`: arbitrary bytes through `stylemap_core::pack::Pack::parse` (and
//! the std loader). The first input byte is a mode: bit 0 set recomputes
//! the CRC-32 of the rest before parsing, so mutations reach the checks
//! behind the checksum. Checks: `parse` returns `Ok` or a one-line error,
//! never panics; on `Ok` every section lies inside the pack, and every
//! available kernel maps a z to a finite w or an `Overflow` error, the same
//! for one sample as in a batch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stylemap_core::pack::{CHECKSUM_OFFSET, HEADER_LEN, Pack, pack_checksum};
use stylemap_core::{Error, Kernel};

/// Largest pack mapped (parse is always run): keeps executions fast.
const MAX_FORWARD_BYTES: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    // 8-byte aligned copy (the parser needs 4).
    let mut words = vec![0u64; body.len().div_ceil(8)];
    let bytes: &mut [u8] = &mut bytemuck::cast_slice_mut(&mut words)[..body.len()];
    bytes.copy_from_slice(body);
    if mode & 1 == 1 && bytes.len() >= HEADER_LEN {
        let c = pack_checksum(bytes);
        bytes[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&c.to_le_bytes());
    }
    let bytes: &[u8] = bytes;
    let pack = match Pack::parse(bytes) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.to_string().contains('\n'));
            // The std loader agrees.
            let std = stylemap::PackNetwork::from_bytes(bytes, std::path::Path::new("f.smap"));
            assert!(std.is_err());
            return;
        }
    };
    assert!(stylemap::PackNetwork::from_bytes(bytes, std::path::Path::new("f.smap")).is_ok());
    for s in pack.sections() {
        assert!(
            s.offset % 64 == 0 && s.offset + s.len <= bytes.len(),
            "{s:?}"
        );
    }
    let spec = *pack.spec();
    assert_eq!(pack.w_avg().len(), spec.w_dim);
    if bytes.len() > MAX_FORWARD_BYTES || spec.scratch_len() > 1 << 16 {
        return;
    }
    let z: Vec<f32> = (0..2 * spec.z_dim).map(|i| (i % 7) as f32 - 3.0).collect();
    let c: Vec<f32> = (0..2 * spec.c_dim).map(|i| (i % 2) as f32).collect();
    for &k in Kernel::ALL.iter().filter(|k| k.is_available()) {
        let mut w = vec![0.0f32; 2 * spec.w_dim];
        let mut scratch = vec![0.0f32; pack.batch_scratch_len(2)];
        match pack.forward_batch(k, &z, &c, 2, &mut scratch, &mut w) {
            Ok(()) => {
                assert!(w.iter().all(|v| v.is_finite()), "{k:?}");
                let mut one = vec![0.0f32; spec.w_dim];
                let mut s1 = vec![0.0f32; pack.scratch_len()];
                pack.forward(k, &z[spec.z_dim..], &c[spec.c_dim..], &mut s1, &mut one)
                    .expect("the batch ran");
                assert_eq!(one, w[spec.w_dim..], "{k:?}: batch changed a sample");
            }
            Err(Error::Overflow { .. }) => {}
            Err(e) => panic!("{k:?}: {e}"),
        }
    }
});
