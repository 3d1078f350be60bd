//! Cortex-M4F (thumbv7em-none-eabihf, single-precision FPU) firmware for
//! QEMU's `-machine mps2-an386` (4 MiB code SSRAM, 4 MiB data SSRAM).
//!
//! Embeds an int8 pack of the 8 x 512 StyleGAN2 mapping network with
//! `include_bytes!` (which pack: `build.rs`), maps [`common::M4F_SEEDS`],
//! truncates with psi 0.7, prints the checksums and the peak stack over
//! semihosting, and exits QEMU with status 0, or 1 on any error.
//! `host-check m4f PACK` prints the same lines.
#![no_std]
#![no_main]

use core::cell::RefCell;

use cortex_m::interrupt::{self, Mutex};
use cortex_m_rt::entry;
use stylemap_core::pack::Pack;
use stylemap_embedded_common::{self as common, Buffers, fw, synth::Aligned};

/// The sizes of the embedded pack, read from its header by build.rs:
/// `Z_DIM`, `SCRATCH_LEN`, `W_DIM`, `WS_LEN`.
mod dims {
    include!(concat!(env!("OUT_DIR"), "/pack_dims.rs"));
}

/// The pack, in flash, on a 64-byte boundary (`include_bytes!` alone
/// guarantees 1; the pack's f32 sections need 4, SIMD loads like 64).
static PACK: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("STYLEMAP_FW_PACK_FILE")));

/// Every buffer the computation needs, sized for the pack, in `.bss`.
struct Bufs {
    z: [f32; dims::Z_DIM],
    scratch: [f32; dims::SCRATCH_LEN],
    w: [f32; dims::W_DIM],
    ws: [f32; dims::WS_LEN],
}

static BUFS: Mutex<RefCell<Bufs>> = Mutex::new(RefCell::new(Bufs {
    z: [0.0; dims::Z_DIM],
    scratch: [0.0; dims::SCRATCH_LEN],
    w: [0.0; dims::W_DIM],
    ws: [0.0; dims::WS_LEN],
}));

#[entry]
fn main() -> ! {
    let mut out = fw::Console::stdout();
    // One critical section around the whole run: the only way to borrow the
    // static buffers without `unsafe`, and nothing else runs anyway.
    let result = interrupt::free(|cs| {
        let mut bufs = BUFS.borrow(cs).borrow_mut();
        let b = &mut *bufs;
        // Validates everything once: header, sizes, CRC-32, every value.
        let pack = Pack::parse(&PACK.0)?;
        let bufs = Buffers {
            z: &mut b.z,
            scratch: &mut b.scratch,
            w: &mut b.w,
            ws: &mut b.ws,
        };
        common::run("m4f", &pack, common::M4F_SEEDS, bufs, &mut out)
    });
    fw::finish(&mut out, result)
}
