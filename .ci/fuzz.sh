#!/usr/bin/env bash
# Bounded fuzzing of every cargo-fuzz target under fuzz/ (see fuzz/README.md).
#
#   bash .ci/fuzz.sh                      # 30 s per target, all targets
#   FUZZ_SECONDS=600 FUZZ_TARGETS=forward FUZZ_WORK_DIR=/tmp/fz bash .ci/fuzz.sh
#
# Installs the nightly toolchain and cargo-fuzz if missing, builds all targets
# once, then runs each for FUZZ_SECONDS on a scratch copy of its seed corpus
# (fuzz/corpus/<target>, which stays small and unchanged). A crash, a panic,
# a timeout (an input taking over 10 s: a hang), an allocation over 256 MB or
# RSS over 2 GB fails the script; the reproducer is left in
# fuzz/artifacts/<target>/ (replay: cargo +nightly fuzz run <target> <file>).
# Wall time on the 2-core machine, measured: 5 min 11 s from a cold fuzz/target
# (build 133 s, then 5 x 31 s; a sixth target, pack, adds ~31 s); add ~70 s where cargo-fuzz must be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
start=$SECONDS
seconds=${FUZZ_SECONDS:-30}
targets=${FUZZ_TARGETS:-"forward sampler safetensors npy broadcast pack"}
work=${FUZZ_WORK_DIR:-$(mktemp -d)}

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd fuzz
echo "=== cargo fuzz build (t+$((SECONDS - start))s)"
cargo +nightly fuzz build

for t in $targets; do
    mkdir -p "$work/corpus/$t" "$work/logs"
    cp -n corpus/"$t"/* "$work/corpus/$t/" 2>/dev/null || true
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256
          -print_final_stats=1)
    [ -f "dict/$t.dict" ] && args+=(-dict="dict/$t.dict")
    [ "$t" = safetensors ] && args+=(-max_len=16384)
    log="$work/logs/$t-$(date +%s).log"
    echo "=== fuzz $t for ${seconds}s (t+$((SECONDS - start))s, log $log)"
    if ! cargo +nightly fuzz run "$t" "$work/corpus/$t" -- "${args[@]}" >"$log" 2>&1; then
        tail -n 60 "$log"
        # CI may show only the end of its output: repeat the cause and the
        # reproducer there (base64, when small enough to paste back).
        echo "--- cause:"
        grep -m 3 -A 2 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" || true
        for a in artifacts/"$t"/*; do
            [ -f "$a" ] || continue
            echo "--- $a ($(stat -c %s "$a") bytes)"
            [ "$(stat -c %s "$a")" -le 4096 ] && base64 -w 0 "$a" && echo
        done
        echo "FAILED: fuzz target $t found a crash (artifact in fuzz/artifacts/$t/)"
        exit 1
    fi
    grep -E '^Done [0-9]+ runs' "$log" || true
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$log" || true
done
echo "=== all fuzz targets clean in $((SECONDS - start))s"
