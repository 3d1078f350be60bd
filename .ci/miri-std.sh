#!/usr/bin/env bash
# The std crate under Miri (scalar and portable paths, as for the core in
# .ci/run: no runtime-detected SIMD kernel runs under Miri).
#
# - its unit tests (broadcast, npy, wavg, ...), except pool::tests: the
#   thread pool's spin-wait tests take ~200 s under Miri (its spin loops are
#   interpreted). MIRI_POOL=1 runs them too (about 4.5 min in total);
# - the property tests of the numeric contract (tests/props.rs) with 3 cases
#   each (cfg!(miri) in the test), which drive the batched Mapper on both
#   paths (per-sample GEMV, matrixmultiply sgemm) over 1-3 scoped threads.
#
# Wall time on the 2-core machine, measured: 1 min 54 s (build ~1 min, unit
# tests 21 s, property tests ~1 min); MIRI_POOL=1 adds ~3.5 min.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
start=$SECONDS
rustup component add miri rust-src --toolchain nightly
cargo +nightly miri setup
if [ "${MIRI_POOL:-0}" = 1 ]; then
    cargo +nightly miri test -p stylemap --lib
else
    cargo +nightly miri test -p stylemap --lib -- --skip pool::tests
fi
cargo +nightly miri test -p stylemap --test props
echo "=== miri (std crate) passed in $((SECONDS - start))s"
