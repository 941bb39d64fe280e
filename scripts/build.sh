#!/usr/bin/env bash
# Builds the Worker into build/: index.js (src/driver/entry.js bundled with the wasm-bindgen
# glue) and index_bg.wasm. Three steps, all with local tools:
#   1. cargo builds the crate for wasm32-unknown-unknown (release profile);
#   2. wasm-bindgen (the CLI matching Cargo.lock, from scripts/setup.sh) writes the glue
#      as an ES module that instantiates the wasm itself, with a reset function that
#      src/driver/entry.js calls after a trap;
#   3. esbuild bundles src/driver/entry.js with that glue, and wasm-opt shrinks the module.
# worker-build's generated entry is not used: it wraps every request in a
# WorkerEntrypoint proxy and an async Rust `fetch`, which cost more CPU than keycard's
# own work (BENCHMARKS.md). The JS driver calls synchronous wasm exports instead.
#
# KEYCARD_BUILD_OUT=<dir> writes the Worker there instead of build/; with
# KEYCARD_BUILD_NAMES=1 it keeps the function names (the wasm's name section, the JS
# unminified), for a readable CPU profile (BENCH_PROFILE=1 in bench/run.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
out="${KEYCARD_BUILD_OUT:-build}"
names="${KEYCARD_BUILD_NAMES:-}"
minify=--minify strip=--strip-debug
if [ -n "$names" ]; then
  # Never into build/: `make dev` and `make bench` would take it for the real build.
  if [ "$out" = build ]; then echo "build: KEYCARD_BUILD_NAMES=1 needs KEYCARD_BUILD_OUT" >&2; exit 1; fi
  minify= strip=-g
fi

# `make dev` builds, then wrangler's [build] command asks again: skip when nothing that
# goes into the Worker changed since the last build.
if [ "$out" = build ] && [ -z "$names" ] && [ -f build/index_bg.wasm ] && [ -f build/index.js ] \
   && [ "${KEYCARD_FORCE_BUILD:-}" != 1 ] \
   && [ -z "$(find src Cargo.toml Cargo.lock .cargo rust-toolchain.toml scripts/build.sh scripts/wasm-opt.sh -newer build/index_bg.wasm -print -quit)" ]; then
  echo "build: up to date (build/index_bg.wasm)"
  exit 0
fi

target_dir="${CARGO_TARGET_DIR:-$root/target}"
stage="$target_dir/keycard-js"
cargo build --release --lib --target wasm32-unknown-unknown
rm -rf "$stage"
wasm-bindgen --target module --out-dir "$stage" --out-name index \
  --experimental-reset-state-function --no-typescript \
  "$target_dir/wasm32-unknown-unknown/release/keycard.wasm"
# The glue imports the module with `import source` (a source-phase import); Workers
# give a plain import of a .wasm file the same WebAssembly.Module.
sed -i 's/^import source /import /' "$stage/index.js"
cp src/driver/entry.js src/driver/wire.js "$stage/"

mkdir -p "$out"
tmp="$(mktemp -d "$out/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
"$root/node_modules/.bin/esbuild" "$stage/entry.js" --bundle --format=esm $minify \
  --external:./index_bg.wasm --external:cloudflare:* --log-level=warning --outfile="$tmp/index.js"
# Without the name section, which only serves stack traces.
scripts/wasm-opt.sh "$stage/index_bg.wasm" "$tmp/index_bg.wasm" $strip
# Swap both in together, the wasm last (it is what the up-to-date check looks at).
mv "$tmp/index.js" "$out/index.js"
mv "$tmp/index_bg.wasm" "$out/index_bg.wasm"
rm -rf "$out/worker" "$out/package.json"
raw=$(wc -c < "$out/index_bg.wasm")
gz=$(gzip -9c "$out/index_bg.wasm" | wc -c)
echo "build: $out/index_bg.wasm is $raw bytes, $gz gzipped (wasm-opt ${WASM_OPT_LEVEL:--O3})"
