#!/usr/bin/env bash
# Builds the size floor (bench/size-floor: the libraries keycard links, and none of its
# own code) into bench/size-floor/build/index_bg.wasm the way scripts/build.sh builds
# keycard: the workspace's release profile, wasm-bindgen, then scripts/wasm-opt.sh.
# `make bench` runs it and reports the size beside keycard's.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$(pwd)/target}"
stage="$target_dir/size-floor-js"
cargo build --release --target wasm32-unknown-unknown -p keycard-bench-size-floor
rm -rf "$stage"
wasm-bindgen --target module --out-dir "$stage" --out-name index --no-typescript \
  "$target_dir/wasm32-unknown-unknown/release/keycard_bench_size_floor.wasm"
mkdir -p bench/size-floor/build
scripts/wasm-opt.sh "$stage/index_bg.wasm" bench/size-floor/build/index_bg.wasm --strip-debug
raw=$(wc -c < bench/size-floor/build/index_bg.wasm)
gz=$(gzip -9c bench/size-floor/build/index_bg.wasm | wc -c)
echo "build-size-floor: bench/size-floor/build/index_bg.wasm is $raw bytes, $gz gzipped"
