//! The average latent `w_avg`: a streaming estimate from random z, and
//! NVlabs' training-time EMA update.

use stylemap_core::sampler;
use stylemap_core::truncation;

use crate::batch::Mapper;
use crate::error::{Error, check_finite};
use crate::network::Network;

/// Samples mapped per batch by [`estimate_w_avg`] (at or above the GEMM
/// crossover, so every full batch takes the sgemm path).
const ESTIMATE_BATCH: usize = 256;

/// A streaming mean of w rows: f64 sums with Neumaier compensation per
/// feature, so memory is `O(w_dim)` however many rows are pushed.
#[derive(Clone, Debug)]
pub struct WAvgEstimator {
    sum: Vec<f64>,
    comp: Vec<f64>,
    count: u64,
}

impl WAvgEstimator {
    /// An empty estimator for rows of `w_dim` features.
    pub fn new(w_dim: usize) -> Self {
        WAvgEstimator {
            sum: vec![0.0; w_dim],
            comp: vec![0.0; w_dim],
            count: 0,
        }
    }

    /// Row length.
    pub fn w_dim(&self) -> usize {
        self.sum.len()
    }

    /// Rows pushed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds the rows of `w` (`[k, w_dim]` row-major, `k >= 0`).
    /// Errors, adding nothing, if the length is not a multiple of `w_dim` or
    /// a value is not finite.
    pub fn push_batch(&mut self, w: &[f32]) -> Result<(), Error> {
        let w_dim = self.w_dim();
        if w_dim == 0 {
            return Err(Error::invalid("w_avg estimator has w_dim 0"));
        }
        if !w.len().is_multiple_of(w_dim) {
            return Err(Error::invalid(format!(
                "w has {} elements, not a multiple of w_dim {w_dim}",
                w.len()
            )));
        }
        check_finite("w", w, w_dim)?;
        for row in w.chunks_exact(w_dim) {
            for ((s, c), &v) in self.sum.iter_mut().zip(&mut self.comp).zip(row) {
                neumaier_add(s, c, f64::from(v));
            }
        }
        self.count += (w.len() / w_dim) as u64;
        Ok(())
    }

    /// Adds everything `other` has seen (for per-thread estimators).
    pub fn merge(&mut self, other: &WAvgEstimator) -> Result<(), Error> {
        if other.w_dim() != self.w_dim() {
            return Err(Error::invalid(format!(
                "cannot merge w_avg estimators of w_dim {} and {}",
                self.w_dim(),
                other.w_dim()
            )));
        }
        for i in 0..self.sum.len() {
            neumaier_add(&mut self.sum[i], &mut self.comp[i], other.sum[i]);
            neumaier_add(&mut self.sum[i], &mut self.comp[i], other.comp[i]);
        }
        self.count += other.count;
        Ok(())
    }

    /// The mean of all rows, rounded to f32. Errors if nothing was pushed.
    pub fn mean(&self) -> Result<Vec<f32>, Error> {
        if self.count == 0 {
            return Err(Error::invalid("w_avg estimate of zero samples"));
        }
        let n = self.count as f64;
        Ok(self
            .sum
            .iter()
            .zip(&self.comp)
            .map(|(&s, &c)| ((s + c) / n) as f32)
            .collect())
    }
}

/// `sum += v` with Neumaier's compensation term `comp`.
fn neumaier_add(sum: &mut f64, comp: &mut f64, v: f64) {
    let t = *sum + v;
    if sum.abs() >= v.abs() {
        *comp += (*sum - t) + v;
    } else {
        *comp += (v - t) + *sum;
    }
    *sum = t;
}

/// Estimates `w_avg` as the mean w of `samples` random latents.
///
/// Sample `j` (for `j in 0..samples`) is
/// `z_j = stylemap_core::sampler::z_from_seed_xoshiro(seed + j)` (wrapping
/// add), i.e. exactly the z that `--sampler xoshiro --seeds seed..` gives;
/// for a conditional network its label is one-hot at class `j % c_dim`
/// (balanced classes). The samples are split into `threads` contiguous
/// ranges (0 = all cores), each mapped in batches of 256 with a [`Mapper`]
/// and averaged with a [`WAvgEstimator`]; no buffer grows with `samples`.
///
/// The result depends on `threads` only through f32 rounding (about 1e-7).
/// Errors if `samples` is 0.
pub fn estimate_w_avg(
    net: &Network,
    samples: usize,
    seed: u64,
    threads: usize,
) -> Result<Vec<f32>, Error> {
    if samples == 0 {
        return Err(Error::invalid("w_avg estimation needs at least one sample"));
    }
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    } else {
        threads
    };
    // Keep full batches: at most one range per ESTIMATE_BATCH samples.
    let threads = threads.min(samples.div_ceil(ESTIMATE_BATCH)).max(1);
    let per = samples.div_ceil(threads);
    let ranges: Vec<(usize, usize)> = (0..threads)
        .map(|t| (t * per, samples.min((t + 1) * per)))
        .filter(|(a, b)| a < b)
        .collect();
    let mut total = WAvgEstimator::new(net.spec().w_dim);
    if ranges.len() == 1 {
        total.merge(&estimate_range(net, seed, ranges[0])?)?;
        return total.mean();
    }
    let parts = crate::batch::par_map(ranges, |r| estimate_range(net, seed, r));
    for part in parts {
        total.merge(&part?)?;
    }
    total.mean()
}

/// Maps samples `start..end` of [`estimate_w_avg`]'s stream on this thread.
fn estimate_range(
    net: &Network,
    seed: u64,
    (start, end): (usize, usize),
) -> Result<WAvgEstimator, Error> {
    let s = *net.spec();
    let batch = ESTIMATE_BATCH.min(end - start);
    let mut z = vec![0.0f32; batch * s.z_dim];
    let mut c = vec![0.0f32; batch * s.c_dim];
    let mut w = vec![0.0f32; batch * s.w_dim];
    let mut mapper = Mapper::new(net).with_threads(1);
    let mut est = WAvgEstimator::new(s.w_dim);
    let mut j = start;
    while j < end {
        let m = batch.min(end - j);
        for (r, row) in z.chunks_exact_mut(s.z_dim).take(m).enumerate() {
            sampler::z_from_seed_xoshiro(seed.wrapping_add((j + r) as u64), row);
        }
        if s.c_dim > 0 {
            c.fill(0.0);
            for (r, row) in c.chunks_exact_mut(s.c_dim).take(m).enumerate() {
                row[(j + r) % s.c_dim] = 1.0;
            }
        }
        let (zb, cb, wb) = (&z[..m * s.z_dim], &c[..m * s.c_dim], &mut w[..m * s.w_dim]);
        mapper.map(zb, cb, wb)?;
        est.push_batch(wb)?;
        j += m;
    }
    Ok(est)
}

/// NVlabs' training-time update `w_avg = mean(batch_w).lerp(w_avg, beta)`,
/// i.e. `w_avg <- mean + beta * (w_avg - mean)` with torch's CPU lerp
/// rounding ([`stylemap_core::truncation::lerp`]); beta is 0.995 in
/// StyleGAN2-ADA, 0.998 in StyleGAN3. The batch mean is taken in f64.
///
/// `batch_w` is `[k, w_dim]` with `k >= 1` and `w_dim = w_avg.len()`.
/// Errors, changing nothing, on a bad length or a non-finite value or beta.
pub fn ema_update(w_avg: &mut [f32], batch_w: &[f32], beta: f32) -> Result<(), Error> {
    if !beta.is_finite() {
        return Err(Error::invalid(format!("beta must be finite, got {beta}")));
    }
    if batch_w.is_empty() {
        return Err(Error::invalid("EMA update with an empty batch"));
    }
    check_finite("w_avg", w_avg, 0)?;
    let mut est = WAvgEstimator::new(w_avg.len());
    est.push_batch(batch_w)?;
    let mean = est.mean()?;
    for (avg, m) in w_avg.iter_mut().zip(mean) {
        *avg = truncation::lerp(m, *avg, beta);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_mean_matches_direct_mean_and_merges() {
        let rows: Vec<f32> = (0..300).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
        let mut a = WAvgEstimator::new(3);
        a.push_batch(&rows[..150]).unwrap();
        let mut b = WAvgEstimator::new(3);
        b.push_batch(&rows[150..]).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a.count(), 100);
        let mean = a.mean().unwrap();
        for (k, &m) in mean.iter().enumerate() {
            let direct: f64 = rows.iter().skip(k).step_by(3).map(|&v| f64::from(v)).sum();
            assert!((f64::from(m) - direct / 100.0).abs() < 1e-6);
        }
        assert!(WAvgEstimator::new(3).mean().is_err());
        assert!(a.push_batch(&[1.0, 2.0]).is_err());
        assert!(a.push_batch(&[1.0, f32::NAN, 2.0]).is_err());
        assert_eq!(a.count(), 100);
    }

    #[test]
    fn ema_update_is_the_nvlabs_lerp() {
        let mut avg = [1.0f32, -2.0];
        ema_update(&mut avg, &[3.0, 0.0, 5.0, 2.0], 0.5).unwrap();
        // mean = [4, 1]; lerp(mean, avg, 0.5) = [2.5, -0.5]
        assert_eq!(avg, [2.5, -0.5]);
        let mut avg = [1.0f32, -2.0];
        ema_update(&mut avg, &[3.0, 0.0], 1.0).unwrap();
        assert_eq!(avg, [1.0, -2.0]);
        ema_update(&mut avg, &[3.0, 0.0], 0.0).unwrap();
        assert_eq!(avg, [3.0, 0.0]);
        assert!(ema_update(&mut avg, &[3.0], 0.5).is_err());
        assert!(ema_update(&mut avg, &[], 0.5).is_err());
        assert!(ema_update(&mut avg, &[3.0, 0.0], f32::NAN).is_err());
    }
}
