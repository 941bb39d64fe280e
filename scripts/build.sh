#!/usr/bin/env bash
# Builds the Worker into build/ with worker-build, pointed at the locally installed
# wasm-bindgen, wasm-opt and esbuild (it would otherwise try to download them).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

# `make dev` builds, then wrangler's [build] command asks again: skip when nothing that
# goes into the Worker changed since the last build.
if [ -f build/index_bg.wasm ] && [ -f build/index.js ] && [ "${KEYCARD_FORCE_BUILD:-}" != 1 ] \
   && [ -z "$(find src Cargo.toml Cargo.lock .cargo rust-toolchain.toml scripts/build.sh -newer build/index_bg.wasm -print -quit)" ]; then
  echo "build: up to date (build/index_bg.wasm)"
  exit 0
fi
export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$root/node_modules/.bin/esbuild"
worker-build --release "$@"

# wasm-opt, as worker-build would run it (the same explicit feature set, which workerd
# supports) but without --debuginfo: the name section only serves stack traces.
WASM_OPT_LEVEL="${WASM_OPT_LEVEL:--O3}"
"$WASM_OPT_BIN" build/index_bg.wasm "$WASM_OPT_LEVEL" --strip-debug --strip-producers \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling \
  -o build/index_bg.wasm
raw=$(wc -c < build/index_bg.wasm)
gz=$(gzip -9c build/index_bg.wasm | wc -c)
echo "build: build/index_bg.wasm is $raw bytes, $gz gzipped (wasm-opt $WASM_OPT_LEVEL)"
