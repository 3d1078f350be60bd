#!/usr/bin/env bash
# Builds the Cortex-M firmware in embedded/, runs it under QEMU and checks
# that it printed exactly what the host computes (embedded/README.md).
#
#   bash .ci/firmware.sh                    # run it
#   . .ci/firmware.sh; firmware_check       # or source it from .ci/run
#
# Installs what it needs if missing: qemu-system-arm (Debian; sudo only when
# not root), the two Rust targets and rustup's llvm-tools (for llvm-size).
# Then:
#   1. writes the int8 pack the Cortex-M4F firmware embeds with the CLI
#      (debug build, shared with `cargo test`), from the built-in 8x512
#      network, into embedded/target/pack/net-int8.smap (gitignored),
#   2. builds the host check and both firmwares (release, embedded/target),
#   3. runs each firmware under qemu-system-arm with a timeout; the firmware
#      exits QEMU through semihosting with status 0 (or 1 on any error),
#   4. compares the firmware's report lines with the host check's, byte for
#      byte (same code, same scalar kernel: no tolerance), and the M4F's ws
#      checksums with those of `stylemap map` (the std crate's path) on the
#      same pack and seeds,
#   5. prints text/data/bss (llvm-size), the painted peak stack and the QEMU
#      wall time of each firmware.
# FIRMWARE_QEMU_TIMEOUT (seconds, default 120) bounds each QEMU run.
# FIRMWARE_PACK_ARGS (default "--method round") are extra `stylemap pack`
# arguments: plain rounding takes 1 s in a debug build, GPTQ (the CLI's
# default, FIRMWARE_PACK_ARGS="") 3.4 min; the firmware runs the same int8
# kernel on either.
# Measured on the 2-core machine while shared (load 6-7): 2 min 15 s from an
# empty embedded/target (the CLI's debug build already there, as after
# `cargo test --workspace`), under 5 s with nothing to rebuild.
firmware_check() (
    set -euo pipefail
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    local root=$PWD
    local start=$SECONDS
    step() { printf -- '--- %s (t+%ss)\n' "$*" "$((SECONDS - start))"; }

    step "firmware: tools"
    if ! command -v qemu-system-arm >/dev/null; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq --no-install-recommends qemu-system-arm
    fi
    rustup target add thumbv7em-none-eabihf thumbv6m-none-eabi
    rustup component add llvm-tools
    local host size
    host=$(rustc -vV | sed -n 's/^host: //p')
    size="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-size"

    local out="$root/embedded/target/firmware-check" pack="$root/embedded/target/pack/net-int8.smap"
    mkdir -p "$out" "$(dirname "$pack")"
    step "firmware: int8 pack of the built-in network (stylemap pack)"
    cargo build -p stylemap-cli
    local cli="${CARGO_TARGET_DIR:-$root/target}/debug/stylemap"
    # shellcheck disable=SC2086
    "$cli" pack --precision int8 ${FIRMWARE_PACK_ARGS---method round} --out "$out/net-int8.smap"
    # Replace the embedded pack only if it changed, so the firmware is not rebuilt for nothing.
    cmp -s "$out/net-int8.smap" "$pack" || cp "$out/net-int8.smap" "$pack"
    export STYLEMAP_FW_PACK="$pack"

    cd "$root/embedded"
    # The paths below assume the embedded workspace's own target directory.
    export CARGO_TARGET_DIR="$root/embedded/target"
    step "firmware: build"
    cargo fmt --check -p stylemap-embedded-common -p stylemap-fw-m0 -p stylemap-fw-m4f -p stylemap-host-check
    cargo build --release -p stylemap-host-check
    cargo build --release -p stylemap-fw-m0 --target thumbv6m-none-eabi
    cargo build --release -p stylemap-fw-m4f --target thumbv7em-none-eabihf

    local fails=0 name target machine cpu elf t0 rc
    for name in m0 m4f; do
        case $name in
            m0) target=thumbv6m-none-eabi machine=microbit cpu=cortex-m0 ;;
            m4f) target=thumbv7em-none-eabihf machine=mps2-an386 cpu=cortex-m4 ;;
        esac
        elf="target/$target/release/stylemap-fw-$name"
        step "firmware: $name under qemu-system-arm -machine $machine"
        t0=$(date +%s%N)
        rc=0
        timeout "${FIRMWARE_QEMU_TIMEOUT:-120}" qemu-system-arm -machine "$machine" -cpu "$cpu" \
            -nographic -monitor none -serial none \
            -semihosting-config enable=on,target=native -kernel "$elf" \
            >"$out/$name.qemu.txt" || rc=$?
        local ms=$((($(date +%s%N) - t0) / 1000000))
        cat "$out/$name.qemu.txt"
        echo "qemu exit status $rc, wall time ${ms} ms (QEMU TCG on this host, not hardware time)"
        ./target/release/stylemap-host-check "$name" >"$out/$name.host.txt"
        # The report lines (header, one per seed, checksum) must be identical.
        if [ "$rc" -ne 0 ]; then
            echo "FAIL: $name firmware exited with status $rc"
            fails=$((fails + 1))
        elif ! diff -u <(grep -E '^(stylemap|seed|checksum) ' "$out/$name.host.txt") \
            <(grep -E '^(stylemap|seed|checksum) ' "$out/$name.qemu.txt"); then
            echo "FAIL: $name firmware and host check differ (diff above: - host, + firmware)"
            fails=$((fails + 1))
        elif ! grep -q '^checksum ' "$out/$name.qemu.txt"; then
            echo "FAIL: $name firmware printed no checksum"
            fails=$((fails + 1))
        else
            echo "ok: $name firmware checksum identical to the host's: $(grep '^checksum ' "$out/$name.qemu.txt")"
        fi
        "$size" "$elf"
    done

    step "firmware: m4f against the std crate (stylemap map, scalar kernel)"
    # The seeds the firmware mapped, from its header line ("... seeds 0..8").
    local seeds
    seeds=$(sed -n 's/^stylemap m4f: .* seeds 0\.\.\([0-9]*\)$/\1/p' "$out/m4f.host.txt")
    STYLEMAP_KERNEL=scalar "$cli" map -q --weights "$pack" --seeds "0-$((seeds - 1))" \
        --psi 0.7 --threads 1 --out "$out/m4f.cli-ws.npy"
    ./target/release/stylemap-host-check ws-npy "$out/m4f.cli-ws.npy" >"$out/m4f.cli.txt"
    # Compare "seed N HASH" and the total "checksum HASH" (labels differ).
    local hashes='/^(seed|checksum) / {print $1, ($1 == "seed" ? $2 : "all"), ($1 == "seed" ? $4 : $NF)}'
    if diff -u <(awk "$hashes" "$out/m4f.cli.txt") <(awk "$hashes" "$out/m4f.qemu.txt"); then
        echo "ok: m4f ws identical to stylemap map's on $seeds seeds"
    else
        echo "FAIL: m4f ws differ from stylemap map's (diff above: - CLI, + firmware)"
        fails=$((fails + 1))
    fi
    step "firmware: done"
    if [ "$fails" -ne 0 ]; then
        echo "$fails firmware check(s) failed"
        return 1
    fi
)

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    firmware_check
fi
