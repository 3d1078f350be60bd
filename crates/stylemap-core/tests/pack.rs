//! The pack format: write -> parse -> forward equals the quantized layers run
//! by hand through the scalar oracle; every malformed class is its own
//! error; random corruption is an error (or, with a recomputed checksum, a
//! pack that still runs), never a panic.

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use stylemap_core::kernels::quant::{self, QNR, QWeights, scalar};
use stylemap_core::network::normalize_2nd_moment;
use stylemap_core::pack::{
    self, CHECKSUM_OFFSET, HEADER_LEN, Pack, PackError, Precision, QLayer, Weights, crc32,
    pack_checksum,
};
use stylemap_core::{Activation, Error, Kernel, MappingNetwork, MappingSpec, Operand};

/// Owned quantized layer.
struct Layer {
    bits: Vec<u16>,
    q: Vec<i8>,
    scales: Vec<f32>,
    group: usize,
    bias: Vec<f32>,
    inp: usize,
    out: usize,
    activation: Activation,
}

impl Layer {
    fn weights(&self, p: Precision) -> QWeights<'_> {
        match p {
            Precision::F16 => QWeights::F16(&self.bits),
            Precision::Bf16 => QWeights::Bf16(&self.bits),
            _ => QWeights::Int8 {
                q: &self.q,
                scales: &self.scales,
                group: self.group,
            },
        }
    }
}

fn small(rng: &mut Xoshiro256PlusPlus) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
}

/// Random finite layers for `spec` (rows past `out` zero, as the format wants).
fn random_layers(spec: &MappingSpec, p: Precision, group: usize, seed: u64) -> Vec<Layer> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut shapes = Vec::new();
    if spec.c_dim > 0 {
        shapes.push((spec.c_dim, spec.embed_features, Activation::Linear));
    }
    for i in 0..spec.num_layers {
        let (inp, out) = spec.layer_shape(i);
        shapes.push((inp, out, spec.activation));
    }
    shapes
        .into_iter()
        .map(|(inp, out, activation)| {
            let panels = out.div_ceil(QNR);
            let n = panels * QNR * inp;
            let pad = |i: usize| (i / (inp * QNR)) * QNR + i % QNR >= out;
            let gain = 1.5 / (inp as f32).sqrt();
            let bits = (0..n)
                .map(|i| {
                    if pad(i) {
                        return 0;
                    }
                    let v = small(&mut rng) * gain;
                    match p {
                        // f32 -> bf16 by truncation is fine for test data.
                        Precision::Bf16 => (v.to_bits() >> 16) as u16,
                        _ => f32_to_f16_trunc(v),
                    }
                })
                .collect();
            let q = (0..n)
                .map(|i| {
                    if pad(i) {
                        0
                    } else {
                        ((rng.next_u32() % 255) as i32 - 127) as i8
                    }
                })
                .collect();
            let groups = quant::groups(inp, group);
            let scales = (0..panels * groups * QNR)
                .map(|i| {
                    if (i / (groups * QNR)) * QNR + i % QNR >= out {
                        0.0
                    } else {
                        gain / 127.0 * (1.0 + small(&mut rng).abs())
                    }
                })
                .collect();
            let bias = (0..out).map(|_| small(&mut rng) * 0.1).collect();
            Layer {
                bits,
                q,
                scales,
                group,
                bias,
                inp,
                out,
                activation,
            }
        })
        .collect()
}

/// f32 -> f16 bits by truncation (normal range only; test data is small).
fn f32_to_f16_trunc(v: f32) -> u16 {
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if exp <= 0 {
        return sign;
    }
    sign | ((exp as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}

/// A buffer 8-byte aligned holding `bytes` at `offset`.
struct Buf {
    words: Vec<u64>,
    offset: usize,
    len: usize,
}

impl Buf {
    fn new(bytes: &[u8], offset: usize) -> Buf {
        let mut words = vec![0u64; (bytes.len() + offset).div_ceil(8) + 1];
        let b: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        b[offset..offset + bytes.len()].copy_from_slice(bytes);
        Buf {
            words,
            offset,
            len: bytes.len(),
        }
    }
    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[self.offset..self.offset + self.len]
    }
}

fn write_pack(spec: &MappingSpec, w_avg: &[f32], layers: &[Layer], p: Precision) -> Vec<u8> {
    let ql: Vec<QLayer<'_>> = layers
        .iter()
        .map(|l| QLayer {
            weights: l.weights(p),
            bias: &l.bias,
        })
        .collect();
    let group = layers[0].group;
    let len = pack::pack_len(spec, p, group).unwrap();
    let mut out = vec![0xAAu8; len + 100];
    let n = pack::write(spec, w_avg, Weights::Quant(&ql), &mut out).unwrap();
    assert_eq!(n, len);
    assert!(
        out[n..].iter().all(|&b| b == 0xAA),
        "writes past its length"
    );
    out.truncate(n);
    out
}

/// The same network by hand: normalise, embed, every layer through the
/// scalar oracle.
fn by_hand(spec: &MappingSpec, layers: &[Layer], p: Precision, z: &[f32], c: &[f32]) -> Vec<f32> {
    let mut x = vec![0.0f32; spec.input_features()];
    normalize_2nd_moment(z, &mut x[..spec.z_dim]);
    let mut rest = layers;
    if spec.c_dim > 0 {
        let e = &layers[0];
        let mut y = vec![0.0f32; e.out];
        scalar::qgemm(e.weights(p), &e.bias, c, e.inp, e.activation, &mut y);
        normalize_2nd_moment(&y, &mut x[spec.z_dim..]);
        rest = &layers[1..];
    }
    for l in rest {
        let mut y = vec![0.0f32; l.out];
        scalar::qgemm(l.weights(p), &l.bias, &x, l.inp, l.activation, &mut y);
        x = y;
    }
    x
}

/// Under miri (interpreted, ~1000x slower) only the small conditional spec.
fn specs() -> Vec<MappingSpec> {
    let all = all_specs();
    if cfg!(miri) { vec![all[1]] } else { all }
}

fn all_specs() -> Vec<MappingSpec> {
    let mut a = MappingSpec::nvlabs(37, 0, 19, 3, 5);
    a.layer_features = 23;
    let mut b = MappingSpec::nvlabs(8, 5, 16, 2, 3);
    b.embed_features = 11;
    let mut c = MappingSpec::nvlabs(33, 0, 17, 1, 2);
    c.activation = Activation::Linear;
    let d = MappingSpec::nvlabs(64, 0, 64, 4, 7);
    vec![a, b, c, d]
}

fn kernels() -> Vec<Kernel> {
    Kernel::ALL
        .iter()
        .copied()
        .filter(|k| k.is_available())
        .collect()
}

#[test]
fn crc32_is_zlibs() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut c = pack::Crc32::new();
    c.update(&data[..333]);
    c.update(&data[333..]);
    assert_eq!(c.finish(), crc32(&data));
}

#[test]
fn round_trip_equals_the_scalar_oracle_by_hand() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    for (si, spec) in specs().into_iter().enumerate() {
        for p in [Precision::F16, Precision::Bf16, Precision::Int8] {
            let groups: &[usize] = if cfg!(miri) {
                &[1, 4]
            } else {
                &[1, 4, 16, 32, 1000]
            };
            for &group in groups {
                if p != Precision::Int8 && group != 1 {
                    continue;
                }
                let layers = random_layers(&spec, p, group, si as u64 * 100 + group as u64);
                let w_avg: Vec<f32> = (0..spec.w_dim).map(|_| small(&mut rng)).collect();
                let bytes = write_pack(&spec, &w_avg, &layers, p);
                let buf = Buf::new(&bytes, 0);
                let pack = Pack::parse(buf.bytes()).unwrap();
                assert_eq!(pack.spec(), &spec);
                assert_eq!(pack.precision(), p);
                assert_eq!(pack.int8_group(), (p == Precision::Int8).then_some(group));
                assert_eq!(pack.w_avg(), &w_avg[..]);
                assert_eq!(pack.len(), bytes.len());
                assert_eq!(pack.checksum(), pack_checksum(&bytes));
                assert_eq!(bytes.len() % 64, 0);
                for s in pack.sections() {
                    assert_eq!(s.offset % 64, 0, "{s:?}");
                    assert!(s.offset + s.len <= bytes.len());
                }
                assert_eq!(
                    pack.layers().count(),
                    spec.num_layers + usize::from(spec.c_dim > 0)
                );
                let batch = 3;
                let z: Vec<f32> = (0..batch * spec.z_dim)
                    .map(|_| small(&mut rng) * 2.0)
                    .collect();
                let c: Vec<f32> = (0..batch * spec.c_dim).map(|_| small(&mut rng)).collect();
                let want: Vec<f32> = (0..batch)
                    .flat_map(|s| {
                        by_hand(
                            &spec,
                            &layers,
                            p,
                            &z[s * spec.z_dim..(s + 1) * spec.z_dim],
                            &c[s * spec.c_dim..(s + 1) * spec.c_dim],
                        )
                    })
                    .collect();
                for k in kernels() {
                    let mut w = vec![f32::NAN; batch * spec.w_dim];
                    let mut scratch = vec![f32::NAN; pack.batch_scratch_len(batch)];
                    pack.forward_batch(k, &z, &c, batch, &mut scratch, &mut w)
                        .unwrap();
                    let mut one = vec![f32::NAN; spec.w_dim];
                    let mut s1 = vec![f32::NAN; pack.scratch_len()];
                    pack.forward(
                        k,
                        &z[spec.z_dim..2 * spec.z_dim],
                        &c[spec.c_dim..2 * spec.c_dim],
                        &mut s1,
                        &mut one,
                    )
                    .unwrap();
                    assert_eq!(
                        one,
                        w[spec.w_dim..2 * spec.w_dim],
                        "{k:?}: batch changed a sample"
                    );
                    if k == Kernel::Scalar {
                        assert_eq!(w, want, "spec {si} {p} group {group}");
                    } else {
                        // FMA kernels round once per step: close, not equal.
                        for (a, b) in w.iter().zip(&want) {
                            assert!(
                                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                                "{k:?} spec {si} {p}: {a} vs {b}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn f32_pack_runs_like_mapping_network() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    for spec in specs() {
        let params: Vec<f32> = (0..spec.param_len())
            .map(|_| small(&mut rng) * 0.3)
            .collect();
        let w_avg: Vec<f32> = (0..spec.w_dim).map(|_| small(&mut rng)).collect();
        let len = pack::pack_len(&spec, Precision::F32, 0).unwrap();
        let mut bytes = vec![0u8; len];
        pack::write(&spec, &w_avg, Weights::F32(&params), &mut bytes).unwrap();
        let buf = Buf::new(&bytes, 0);
        let pack = Pack::parse(buf.bytes()).unwrap();
        assert_eq!(pack.folded_params(), Some(&params[..]));
        assert_eq!(pack.int8_group(), None);
        assert_eq!(pack.layers().count(), 0);
        let net = MappingNetwork::new(spec, &params[..], &w_avg[..]).unwrap();
        let z: Vec<f32> = (0..spec.z_dim).map(|_| small(&mut rng)).collect();
        let c: Vec<f32> = (0..spec.c_dim).map(|_| small(&mut rng)).collect();
        for k in kernels() {
            let net = net.clone().with_kernel(k).unwrap();
            let mut s = vec![0.0; spec.scratch_len()];
            let (mut a, mut b) = (vec![0.0; spec.w_dim], vec![1.0; spec.w_dim]);
            net.forward(&z, &c, &mut s, &mut a).unwrap();
            pack.forward(k, &z, &c, &mut s, &mut b).unwrap();
            assert_eq!(a, b, "{k:?}");
            let mut ws = vec![0.0; spec.ws_len()];
            pack.broadcast_truncate(&b, 0.5, None, &mut ws).unwrap();
            let mut ws2 = vec![0.0; spec.ws_len()];
            net.broadcast_truncate(&a, 0.5, None, &mut ws2).unwrap();
            assert_eq!(ws, ws2);
        }
        assert!(pack.mapping_network().unwrap().is_ok());
    }
}

/// A valid int8 pack of a conditional network, the base of the hostile tests.
fn base_pack() -> (MappingSpec, Vec<u8>) {
    let spec = all_specs()[1];
    let layers = random_layers(&spec, Precision::Int8, 4, 3);
    let w_avg = vec![0.25f32; spec.w_dim];
    (spec, write_pack(&spec, &w_avg, &layers, Precision::Int8))
}

fn parse(bytes: &[u8]) -> Result<(), PackError> {
    Pack::parse(Buf::new(bytes, 0).bytes()).map(|_| ())
}

fn reseal(b: &mut [u8]) {
    let c = pack_checksum(b);
    b[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&c.to_le_bytes());
}

/// `bytes` with `f` applied and the checksum recomputed.
fn edited(bytes: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = bytes.to_vec();
    f(&mut b);
    reseal(&mut b);
    b
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn every_malformed_class_is_its_own_error() {
    let (_, good) = base_pack();
    parse(&good).unwrap();
    let n = good.len();
    let good_buf = Buf::new(&good, 0);
    let sections: Vec<pack::SectionInfo> =
        Pack::parse(good_buf.bytes()).unwrap().sections().collect();
    let at = |what: Operand| sections.iter().find(|s| s.what == what).unwrap().offset;

    assert_eq!(parse(&good[..100]), Err(PackError::TooShort { len: 100 }));
    assert_eq!(parse(&[]), Err(PackError::TooShort { len: 0 }));
    assert_eq!(
        parse(&edited(&good, |b| b[0] = b'X')),
        Err(PackError::BadMagic)
    );
    assert_eq!(
        parse(&edited(&good, |b| put_u32(b, 8, 2))),
        Err(PackError::UnsupportedVersion(2))
    );
    assert_eq!(
        parse(&good[..n - 64]),
        Err(PackError::LengthMismatch {
            header: n as u64,
            actual: n - 64
        })
    );
    let mut longer = good.clone();
    longer.extend([0u8; 64]);
    assert!(matches!(
        parse(&longer),
        Err(PackError::LengthMismatch { .. })
    ));
    // Flipped byte, stale checksum.
    let mut flipped = good.clone();
    flipped[n / 2] ^= 0x10;
    assert!(matches!(
        parse(&flipped),
        Err(PackError::BadChecksum { .. })
    ));
    // The checksum field itself.
    let mut bad_crc = good.clone();
    bad_crc[CHECKSUM_OFFSET] ^= 1;
    assert!(matches!(
        parse(&bad_crc),
        Err(PackError::BadChecksum { .. })
    ));
    // Misaligned base pointer: the same bytes one byte later.
    let buf = Buf::new(&good, 1);
    let e = Pack::parse(buf.bytes()).unwrap_err();
    assert!(matches!(e, PackError::Misaligned { .. }));
    assert!(e.to_string().contains("align(64)"), "{e}");
    assert!(Pack::parse(Buf::new(&good, 4).bytes()).is_ok());

    // Header fields (checksum recomputed, so the field is what fails).
    let header = |at: usize, v: u32| edited(&good, |b| put_u32(b, at, v));
    assert_eq!(parse(&header(24, 9)), Err(PackError::BadPrecision(9)));
    // int8 -> f16 flag: the group no longer fits.
    assert_eq!(parse(&header(24, 1)), Err(PackError::BadGroup(4)));
    assert_eq!(parse(&header(36, 0)), Err(PackError::BadGroup(0)));
    // int8 -> f16 with the group cleared: sizes no longer match.
    let f16_flag = edited(&good, |b| {
        put_u32(b, 24, 1);
        put_u32(b, 36, 0);
    });
    assert!(matches!(
        parse(&f16_flag),
        Err(PackError::SizeMismatch { .. })
    ));
    assert_eq!(
        parse(&header(28, 0)),
        Err(PackError::BadHeader {
            offset: 28,
            value: 0
        })
    );
    assert_eq!(
        parse(&header(32, 7)),
        Err(PackError::BadHeader {
            offset: 32,
            value: 7
        })
    );
    assert_eq!(
        parse(&header(68, 8)),
        Err(PackError::BadHeader {
            offset: 68,
            value: 8
        })
    );
    assert_eq!(
        parse(&header(12, 64)),
        Err(PackError::BadHeader {
            offset: 12,
            value: 64
        })
    );
    assert_eq!(
        parse(&edited(&good, |b| b[100] = 1)),
        Err(PackError::BadHeader {
            offset: 100,
            value: 1
        })
    );
    // Dims: zero, absurd, inconsistent.
    assert_eq!(
        parse(&header(52, 0)),
        Err(PackError::Spec(Error::BadDimension(Operand::NumLayers)))
    );
    assert!(matches!(
        parse(&header(40, u32::MAX)),
        Err(PackError::SizeMismatch { .. } | PackError::Spec(Error::TooLarge))
    ));
    assert!(matches!(
        parse(&header(52, u32::MAX)),
        Err(PackError::SizeMismatch { .. } | PackError::Spec(Error::TooLarge))
    ));
    assert!(matches!(
        parse(&header(48, 17)),
        Err(PackError::SizeMismatch { .. })
    ));
    assert_eq!(
        parse(&header(60, 0)),
        Err(PackError::Spec(Error::BadDimension(Operand::EmbedFeatures)))
    );
    assert_eq!(
        parse(&edited(&good, |b| b[72..80]
            .copy_from_slice(&f64::NAN.to_le_bytes()))),
        Err(PackError::Spec(Error::BadLrMultiplier))
    );
    // A total length that overflows usize on 32-bit and mismatches here.
    assert!(matches!(
        parse(&edited(&good, |b| b[16..24]
            .copy_from_slice(&u64::MAX.to_le_bytes()))),
        Err(PackError::LengthMismatch { .. })
    ));

    // Values.
    let w_avg = at(Operand::WAvg);
    assert_eq!(
        parse(&edited(&good, |b| b[w_avg + 8..w_avg + 12]
            .copy_from_slice(&f32::NAN.to_le_bytes()))),
        Err(PackError::NonFinite {
            what: Operand::WAvg,
            index: 2
        })
    );
    let q = at(Operand::FcWeight(1));
    assert_eq!(
        parse(&edited(&good, |b| b[q + 3] = 0x80)),
        Err(PackError::Int8OutOfRange {
            what: Operand::FcWeight(1),
            index: 3
        })
    );
    let s = at(Operand::FcScales(0));
    assert_eq!(
        parse(&edited(&good, |b| b[s..s + 4]
            .copy_from_slice(&f32::INFINITY.to_le_bytes()))),
        Err(PackError::NonFinite {
            what: Operand::FcScales(0),
            index: 0
        })
    );
    let bias = at(Operand::EmbedBias);
    assert_eq!(
        parse(&edited(&good, |b| b[bias + 4..bias + 8]
            .copy_from_slice(&f32::NAN.to_le_bytes()))),
        Err(PackError::NonFinite {
            what: Operand::EmbedBias,
            index: 1
        })
    );
    // Padding row 15 of panel 0 of embed.weight (embed has 11 rows).
    let e = at(Operand::EmbedWeight);
    assert_eq!(
        parse(&edited(&good, |b| b[e + 15] = 1)),
        Err(PackError::NonZeroPadding {
            what: Operand::EmbedWeight,
            index: 15
        })
    );
    // Scale of a padding row.
    let es = at(Operand::EmbedScales);
    assert!(matches!(
        parse(&edited(&good, |b| b[es + 4 * 15..es + 4 * 16]
            .copy_from_slice(&1.0f32.to_le_bytes()))),
        Err(PackError::NonZeroPadding {
            what: Operand::EmbedScales,
            index: 15
        })
    ));
    // Bytes between sections (embed.bias is 11 floats, padded to 64 bytes).
    assert_eq!(
        parse(&edited(&good, |b| b[bias + 44] = 1)),
        Err(PackError::NonZeroPadding {
            what: Operand::Pack,
            index: bias + 44
        })
    );
    // Every message is one line.
    for e in [
        PackError::BadMagic,
        PackError::BadChecksum {
            stored: 1,
            computed: 2,
        },
        PackError::Misaligned { offset: 1 },
    ] {
        assert!(!e.to_string().contains('\n'));
    }
}

#[test]
fn f16_and_bf16_infinities_are_refused() {
    for p in [Precision::F16, Precision::Bf16] {
        let spec = all_specs()[0];
        let layers = random_layers(&spec, p, 1, 5);
        let good = write_pack(&spec, &[0.0; 19], &layers, p);
        parse(&good).unwrap();
        let buf = Buf::new(&good, 0);
        let pk = Pack::parse(buf.bytes()).unwrap();
        let at = pk
            .sections()
            .find(|s| s.what == Operand::FcWeight(2))
            .unwrap()
            .offset;
        let inf: u16 = if p == Precision::F16 { 0x7c00 } else { 0x7f80 };
        assert_eq!(
            parse(&edited(&good, |b| b[at + 2..at + 4]
                .copy_from_slice(&inf.to_le_bytes()))),
            Err(PackError::NonFinite {
                what: Operand::FcWeight(2),
                index: 1
            }),
            "{p}"
        );
    }
}

#[test]
fn writer_refuses_what_the_parser_would() {
    let spec = all_specs()[0];
    let layers = random_layers(&spec, Precision::Int8, 8, 1);
    let ql: Vec<QLayer<'_>> = layers
        .iter()
        .map(|l| QLayer {
            weights: l.weights(Precision::Int8),
            bias: &l.bias,
        })
        .collect();
    let w_avg = vec![0.0; spec.w_dim];
    let len = pack::pack_len(&spec, Precision::Int8, 8).unwrap();
    let mut out = vec![7u8; len];
    assert_eq!(
        pack::write(&spec, &w_avg, Weights::Quant(&ql), &mut out[..len - 1]),
        Err(PackError::BufferTooSmall {
            need: len,
            actual: len - 1
        })
    );
    assert_eq!(
        pack::write(&spec, &w_avg, Weights::Quant(&ql[..2]), &mut out),
        Err(PackError::Spec(Error::Length {
            what: Operand::RawLayers,
            expected: 3,
            actual: 2
        }))
    );
    let f16 = vec![0u16; layers[1].q.len()];
    let mut mixed = ql.clone();
    mixed[1].weights = QWeights::F16(&f16);
    assert_eq!(
        pack::write(&spec, &w_avg, Weights::Quant(&mixed), &mut out),
        Err(PackError::MixedPrecision)
    );
    let mut bad_q = layers[0].q.clone();
    bad_q[0] = i8::MIN;
    let mut with_bad = ql.clone();
    with_bad[0].weights = QWeights::Int8 {
        q: &bad_q,
        scales: &layers[0].scales,
        group: 8,
    };
    assert_eq!(
        pack::write(&spec, &w_avg, Weights::Quant(&with_bad), &mut out),
        Err(PackError::Int8OutOfRange {
            what: Operand::FcWeight(0),
            index: 0
        })
    );
    let short_bias = [0.0f32; 3];
    let mut with_short = ql.clone();
    with_short[2].bias = &short_bias;
    assert!(matches!(
        pack::write(&spec, &w_avg, Weights::Quant(&with_short), &mut out),
        Err(PackError::Spec(Error::Length {
            what: Operand::FcBias(2),
            ..
        }))
    ));
    assert_eq!(
        pack::write(&spec, &[f32::NAN; 19], Weights::Quant(&ql), &mut out),
        Err(PackError::NonFinite {
            what: Operand::WAvg,
            index: 0
        })
    );
    assert!(out.iter().all(|&b| b == 7), "out touched on error");
    assert_eq!(
        pack::pack_len(&spec, Precision::Int8, 0),
        Err(PackError::BadGroup(0))
    );
}

#[test]
fn forward_checks_buffers_and_kernel() {
    let (spec, bytes) = base_pack();
    let buf = Buf::new(&bytes, 0);
    let pack = Pack::parse(buf.bytes()).unwrap();
    let z = vec![0.5f32; spec.z_dim];
    let c = vec![1.0f32; spec.c_dim];
    let mut w = vec![0.0f32; spec.w_dim];
    let mut s = vec![0.0f32; pack.scratch_len()];
    assert!(matches!(
        pack.forward(Kernel::Scalar, &z, &[], &mut s, &mut w),
        Err(Error::Conditioning { .. })
    ));
    assert!(matches!(
        pack.forward(Kernel::Scalar, &z, &c, &mut s[..3], &mut w),
        Err(Error::Length {
            what: Operand::Scratch,
            ..
        })
    ));
    let mut zn = z.clone();
    zn[2] = f32::NAN;
    assert_eq!(
        pack.forward(Kernel::Scalar, &zn, &c, &mut s, &mut w),
        Err(Error::NonFinite {
            what: Operand::Z,
            index: 2
        })
    );
    if let Some(k) = Kernel::ALL.iter().find(|k| !k.is_available()) {
        assert_eq!(
            pack.forward(*k, &z, &c, &mut s, &mut w),
            Err(Error::KernelUnavailable)
        );
    }
    let mut wb = vec![0.0f32; 0];
    pack.forward_batch(Kernel::Scalar, &[], &[], 0, &mut [], &mut wb)
        .unwrap();
    pack.forward(Kernel::Scalar, &z, &c, &mut s, &mut w)
        .unwrap();
    assert!(w.iter().all(|v| v.is_finite()));
}

/// Random corruption never panics: with the stale checksum it is always an
/// error; with a recomputed one, either an error or a pack whose forward
/// gives a finite w or an `Overflow` error.
#[test]
fn random_corruption_is_an_error_never_a_panic() {
    let (spec, good) = base_pack();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2024);
    let z = vec![0.3f32; spec.z_dim];
    let c = vec![1.0f32; spec.c_dim];
    let mut resealed_ok = 0;
    let iterations = if cfg!(miri) { 40 } else { 3000 };
    for i in 0..iterations {
        let mut b = good.clone();
        let flips = 1 + (rng.next_u32() % 4) as usize;
        // Half the time in the header, where the fields are.
        for _ in 0..flips {
            let at = if i % 2 == 0 {
                rng.next_u32() as usize % HEADER_LEN
            } else {
                rng.next_u32() as usize % b.len()
            };
            b[at] ^= 1 << (rng.next_u32() % 8);
        }
        if i % 7 == 0 {
            let cut = rng.next_u32() as usize % b.len();
            b.truncate(cut);
        }
        if b == good {
            continue;
        }
        assert!(parse(&b).is_err(), "iteration {i}: corruption accepted");
        if b.len() >= HEADER_LEN {
            reseal(&mut b);
        }
        let buf = Buf::new(&b, 0);
        if let Ok(p) = Pack::parse(buf.bytes()) {
            resealed_ok += 1;
            let s = *p.spec();
            if s.z_dim != z.len() || s.c_dim != c.len() {
                continue;
            }
            let mut w = vec![0.0; s.w_dim];
            let mut scratch = vec![0.0; p.scratch_len()];
            match p.forward(Kernel::Scalar, &z, &c, &mut scratch, &mut w) {
                Ok(()) => assert!(w.iter().all(|v| v.is_finite())),
                Err(Error::Overflow { .. }) => {}
                Err(e) => panic!("iteration {i}: {e}"),
            }
        }
    }
    // Value flips in the body mostly keep a resealed pack valid.
    assert!(
        resealed_ok > iterations / 30,
        "only {resealed_ok} resealed packs parsed"
    );
}

#[test]
fn panel_ranges_compute_their_rows() {
    let spec = all_specs()[3]; // 64 wide: 4 panels per layer
    for p in [Precision::F16, Precision::Int8] {
        let layers = random_layers(&spec, p, 16, 9);
        let bytes = write_pack(&spec, &[0.0; 64], &layers, p);
        let buf = Buf::new(&bytes, 0);
        let pack = Pack::parse(buf.bytes()).unwrap();
        let l = pack.layers().nth(1).unwrap();
        assert_eq!(l.panels(), 4);
        let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut whole = vec![0.0f32; 64];
        quant::qgemm_bias_act(
            Kernel::Scalar,
            l.weights,
            l.bias,
            &x,
            64,
            l.activation,
            &mut whole,
        )
        .unwrap();
        let mut parts = vec![0.0f32; 64];
        for (a, b) in [(0, 1), (1, 3), (3, 4)] {
            let sub = l.panel_range(a, b).unwrap();
            assert_eq!(sub.out_features, (b - a) * QNR);
            quant::qgemm_bias_act(
                Kernel::Scalar,
                sub.weights,
                sub.bias,
                &x,
                64,
                sub.activation,
                &mut parts[a * QNR..b * QNR],
            )
            .unwrap();
        }
        assert_eq!(whole, parts);
        assert!(l.panel_range(2, 2).is_none());
        assert!(l.panel_range(3, 5).is_none());
    }
}
