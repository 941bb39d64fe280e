#!/usr/bin/env bash
# wasm-opt as keycard's builds run it: scripts/wasm-opt.sh <in.wasm> <out.wasm> [flags]
# (scripts/build.sh, and scripts/build-size-floor.sh so that the floor is optimised
# exactly as keycard is). The same explicit feature set worker-build would give
# wasm-opt (workerd supports it); the level is WASM_OPT_LEVEL (default -O3); extra flags
# such as --strip-debug follow.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
in="${1:?usage: scripts/wasm-opt.sh <in.wasm> <out.wasm> [flags]}" out="${2:?}"
shift 2
"$root/node_modules/.bin/wasm-opt" "$in" "${WASM_OPT_LEVEL:--O3}" "$@" --strip-producers \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling \
  -o "$out"
