#!/usr/bin/env bash
# Runs every check Quadriga has: format, lints, all tests and doctests, the loom
# models, and the docs build. This is the README's test command and what CI runs.
# It installs what it needs on a fresh machine (rustfmt, clippy, redis-server, a
# Python virtualenv with maturin, pytest and cloudpickle) and finishes in
# well under 20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done

# The cluster tests start their own redis-server (Debian's package, which
# brings redis-cli for the Redis Cluster test) and make a throwaway TLS
# certificate with openssl; the dashboard's browser test drives Debian's chromium.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
redis-server --version

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings (all features, then the library without async)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
cargo clippy -p quadriga --all-targets --locked -- -D warnings

step "cargo test (unit, integration, examples, doctests; all features)"
cargo test --workspace --all-features --locked

step "Python package (makes target/python-venv, builds both wheels, runs pytest)"
bash scripts/test-python.sh

step "loom models (bounded preemptions)"
# Release build of the models: loom explores many interleavings.
RUSTFLAGS="--cfg quadriga_loom" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" \
    cargo test -p quadriga --lib --release --locked --target-dir target/loom -- loom_tests

step "fuzz targets build (run one with cargo +nightly fuzz run frame_decoder, shm_header or cluster_entry)"
cargo build --manifest-path crates/quadriga/fuzz/Cargo.toml --target-dir target/fuzz

step "docs build clean"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked

step "all checks passed"
