//! Timing shared by the probe examples.
use std::time::Instant;

/// The shortest of `reps` runs of `f`, in seconds: on a busy machine the
/// minimum of many short runs is a run nobody interrupted.
pub fn min_time(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}
