#!/usr/bin/env bash
# Builds the Worker into build/ with worker-build, pointed at the locally installed
# wasm-bindgen, wasm-opt and esbuild (it would otherwise try to download them).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$root/node_modules/.bin/esbuild"
exec worker-build --release "$@"
