#!/usr/bin/env bash
# Runs stylemap-core's tests for aarch64-unknown-linux-gnu under qemu-user, so
# the NEON kernel is exercised on an x86-64 CI machine.
#
#   bash .ci/aarch64.sh           # run it
#   . .ci/aarch64.sh; aarch64_tests   # or source it from .ci/run and call the function
#
# Installs what it needs non-interactively (needs root, as CI has): Debian's
# qemu-user and gcc-aarch64-linux-gnu (linker + libc for the target), and the
# Rust standard library for the target. Takes about a minute the first time.
aarch64_tests() (
    set -euo pipefail
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
    fi
    rustup target add aarch64-unknown-linux-gnu
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
    # Fail, rather than pass on the portable kernel, if NEON is not run.
    export STYLEMAP_REQUIRE_KERNELS=neon
    unset STYLEMAP_KERNEL
    cargo test -p stylemap-core --target aarch64-unknown-linux-gnu
)

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    aarch64_tests
fi
