#!/usr/bin/env bash
# Builds a Rust Worker of this workspace with worker-build into <crate>/build/
# (index.js, index_bg.wasm):
#   scripts/build-rs.sh examples/workers-rs
# worker-build would download wasm-bindgen, wasm-opt and esbuild; it is pointed at the
# local ones instead: the wasm-bindgen CLI that scripts/setup.sh matched to Cargo.lock,
# and npm's wasm-opt (binaryen) and esbuild.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
crate="${1:?usage: scripts/build-rs.sh <crate dir>}"

# worker-build writes index.js last: skip when nothing that goes into it changed since.
if [ -f "$crate/build/index_bg.wasm" ] && [ -f "$crate/build/index.js" ] && [ "${KEYCARD_FORCE_BUILD:-}" != 1 ] \
   && [ -z "$(find src Cargo.toml Cargo.lock rust-toolchain.toml "$crate/src" "$crate/Cargo.toml" scripts/build-rs.sh -newer "$crate/build/index.js" -print -quit)" ]; then
  echo "build-rs: up to date ($crate/build/index.js)"
  exit 0
fi

WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_BINDGEN_BIN
export WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt" ESBUILD_BIN="$root/node_modules/.bin/esbuild"
(cd "$crate" && worker-build --release)
raw=$(wc -c < "$crate/build/index_bg.wasm")
gz=$(gzip -9c "$crate/build/index_bg.wasm" | wc -c)
echo "build-rs: $crate/build/index_bg.wasm is $raw bytes, $gz gzipped"
