//! `stylemap z`: latents for seeds, [N, z_dim].

use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use stylemap::core::sampler;

use crate::cli::{Sampler, ZArgs, ZDtype};
use crate::error::Result;
use crate::interrupt;
use crate::npyio::{Dtype, OutputFile};

/// Rows written between two Ctrl-C checks / progress updates.
const CHUNK: u64 = 256;

pub fn run(args: &ZArgs, quiet: bool) -> Result<()> {
    let n = args.seeds.len();
    let z_dim = args.z_dim;
    let mut row64 = super::buffer::<f64>(1, z_dim, "--z-dim")?;
    let mut row32 = super::buffer::<f32>(1, z_dim, "--z-dim")?;

    let mut out = OutputFile::create(&args.out)?;
    let dtype = match args.dtype {
        ZDtype::F32 => Dtype::F32,
        ZDtype::F64 => Dtype::F64,
    };
    let shape = [n, z_dim as u64];
    let bar = super::progress(n, quiet, "z");
    let _polling = interrupt::Polling::start();
    match dtype {
        Dtype::F32 => {
            let mut npy = out.npy::<f32>(dtype, &shape)?;
            for (i, seed) in args.seeds.iter().enumerate() {
                if (i as u64).is_multiple_of(CHUNK) {
                    interrupt::check()?;
                    bar.set_position(i as u64);
                }
                match args.sampler {
                    Sampler::Numpy => stylemap::seeds::z_from_seed_numpy(seed, &mut row32),
                    Sampler::Xoshiro => sampler::z_from_seed_xoshiro(u64::from(seed), &mut row32),
                }
                npy.write(&row32)?;
            }
            npy.finish()?;
        }
        Dtype::F64 => {
            let mut npy = out.npy::<f64>(dtype, &shape)?;
            for (i, seed) in args.seeds.iter().enumerate() {
                if (i as u64).is_multiple_of(CHUNK) {
                    interrupt::check()?;
                    bar.set_position(i as u64);
                }
                match args.sampler {
                    Sampler::Numpy => {
                        stylemap::seeds::z_from_seed_numpy_f64(seed, &mut row64);
                    }
                    Sampler::Xoshiro => {
                        // The same stream z_from_seed_xoshiro rounds to f32.
                        let mut rng = Xoshiro256PlusPlus::seed_from_u64(u64::from(seed));
                        sampler::fill_box_muller_f64(&mut rng, &mut row64);
                    }
                }
                npy.write(&row64)?;
            }
            npy.finish()?;
        }
    }
    interrupt::check()?;
    bar.finish_and_clear();
    out.commit()
}
