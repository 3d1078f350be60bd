//! Cortex-M0 (thumbv6m-none-eabi, no FPU: f32 and f64 in soft-float)
//! firmware for QEMU's `-machine microbit` (256 KiB flash, 16 KiB RAM).
//!
//! Maps [`common::M0_SEEDS`] through a small synthetic f32 network
//! ([`synth::M0_SPEC`], weights in flash), truncates with psi 0.7, prints
//! the checksums and the peak stack over semihosting, and exits QEMU with
//! status 0, or 1 on any error. `host-check m0` prints the same lines.
#![no_std]
#![no_main]

use core::cell::RefCell;

use cortex_m::interrupt::{self, Mutex};
use cortex_m_rt::entry;
use stylemap_embedded_common::{self as common, Buffers, Dims, fw, synth};

/// The folded weights and w_avg, little-endian f32, 64-byte aligned in flash.
static NET: &synth::Aligned<[u8]> =
    &synth::Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/net-m0.bin")));

const DIMS: Dims = Dims::of_spec(&synth::M0_SPEC);

/// Every buffer the computation needs, sized at compile time, in `.bss`.
struct Bufs {
    z: [f32; DIMS.z_dim],
    scratch: [f32; DIMS.scratch_len],
    w: [f32; DIMS.w_dim],
    ws: [f32; DIMS.ws_len()],
}

static BUFS: Mutex<RefCell<Bufs>> = Mutex::new(RefCell::new(Bufs {
    z: [0.0; DIMS.z_dim],
    scratch: [0.0; DIMS.scratch_len],
    w: [0.0; DIMS.w_dim],
    ws: [0.0; DIMS.ws_len()],
}));

#[entry]
fn main() -> ! {
    let mut out = fw::Console::stdout();
    // One critical section around the whole run: the only way to borrow the
    // static buffers without `unsafe`, and nothing else runs anyway.
    let result = interrupt::free(|cs| {
        let mut bufs = BUFS.borrow(cs).borrow_mut();
        let b = &mut *bufs;
        let net = synth::network_from_blob(synth::M0_SPEC, &NET.0)?;
        let bufs = Buffers {
            z: &mut b.z,
            scratch: &mut b.scratch,
            w: &mut b.w,
            ws: &mut b.ws,
        };
        common::run("m0", &net, common::M0_SEEDS, bufs, &mut out)
    });
    fw::finish(&mut out, result)
}
