#!/usr/bin/env bash
# Fuzzes every parser that faces a client or the origin (cargo-fuzz, nightly), one target
# at a time, and says per target how many inputs ran and whether anything was found.
#
#   scripts/fuzz.sh [SECONDS]      each target for SECONDS of fuzzing (default 60)
#   scripts/fuzz.sh --smoke        each target: every seed and regression input, then a
#                                  fixed, seeded run of FUZZ_SMOKE_RUNS inputs (default
#                                  20000); cheap and deterministic, for `make test`
#   FUZZ_TARGETS="config logout_next" scripts/fuzz.sh 30   only these targets
#
# Inputs found by a full run are kept in fuzz/corpus/<target>/ (git-ignored); crashes go
# to fuzz/artifacts/<target>/ and the logs to fuzz/artifacts/logs/. Exits non-zero if any
# target crashed. Needs `scripts/setup.sh fuzz` (nightly and cargo-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=time
seconds=60
case "${1:-}" in
  --smoke) mode=smoke ;;
  "") ;;
  *[!0-9]* | 0) echo "usage: scripts/fuzz.sh [SECONDS | --smoke]" >&2; exit 2 ;;
  *) seconds="$1" ;;
esac
smoke_runs="${FUZZ_SMOKE_RUNS:-20000}"
targets=(${FUZZ_TARGETS:-cookie_decode cookie_header control_headers config logout_next exchange path_guard sign_in})

# Longest input per target: past each parser's own limit, so the limits are exercised.
max_len() {
  case "$1" in
    cookie_decode) echo 5000 ;;      # codec::MAX_VALUE_LEN is 4096
    cookie_header) echo 20000 ;;     # 16 KB Cookie headers
    control_headers) echo 20000 ;;
    exchange) echo 20000 ;;
    sign_in) echo 8000 ;;            # an ID token and its answers
    *) echo 4096 ;;
  esac
}

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz on nightly is missing; run scripts/setup.sh fuzz (or make fuzz)" >&2
  exit 2
fi

logs=fuzz/artifacts/logs
mkdir -p "$logs"
start=$SECONDS
echo "fuzz: building ${#targets[@]} targets (nightly, address sanitizer, debug assertions)"
for t in "${targets[@]}"; do
  if ! cargo +nightly fuzz build "$t" >"$logs/build-$t.log" 2>&1; then
    cat "$logs/build-$t.log" >&2
    echo "fuzz: build of $t failed" >&2
    exit 1
  fi
done
echo "fuzz: built in $((SECONDS - start)) s"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failed=0
rows=()
for t in "${targets[@]}"; do
  log="$logs/$t.log"
  dirs=()
  if [ "$mode" = smoke ]; then
    # A scratch corpus of the committed inputs only, so the run is the same every time.
    mkdir -p "$tmp/$t"
    cp fuzz/corpus/"$t"/seed-* "$tmp/$t/" 2>/dev/null || true
    [ -d "fuzz/regressions/$t" ] && cp fuzz/regressions/"$t"/* "$tmp/$t/" 2>/dev/null || true
    dirs=("$tmp/$t")
    limit=(-runs="$smoke_runs" -seed=1)
  else
    mkdir -p "fuzz/corpus/$t"
    dirs=("fuzz/corpus/$t")
    [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
    limit=(-max_total_time="$seconds")
  fi
  t0=$SECONDS
  echo "fuzz: $t ($([ "$mode" = smoke ] && echo "smoke, $smoke_runs runs" || echo "$seconds s"))"
  set +e
  cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
    "${limit[@]}" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -print_pcs=0 >"$log" 2>&1
  rc=$?
  set -e
  took=$((SECONDS - t0))
  execs="$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)"
  rate="$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -1)"
  last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
  cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")"
  corp="$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")"
  if [ "$rc" -eq 0 ]; then
    result="nothing found"
  else
    failed=1
    artifact="$(sed -nE 's/.*Test unit written to (\S+).*/\1/p' "$log" | tail -1)"
    why="$(grep -m1 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" | sed -E 's/^\s+//' | cut -c1-120 || true)"
    result="FOUND: ${why:-exit $rc} -> ${artifact:-see $log}"
    echo "fuzz: $t failed; the log is $log" >&2
    grep -A12 -m1 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" >&2 || tail -20 "$log" >&2
  fi
  rows+=("$(printf '%-16s %6s %12s %9s %6s %6s  %s' "$t" "$took" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${corp:-?}" "$result")")
done

echo
printf '%-16s %6s %12s %9s %6s %6s  %s\n' target secs executions "exec/s" cov corpus result
for r in "${rows[@]}"; do echo "$r"; done
echo "fuzz: total $((SECONDS - start)) s"
if [ "$failed" -ne 0 ]; then
  echo "fuzz: a target crashed. Reproduce with: cargo +nightly fuzz run <target> <artifact>" >&2
  exit 1
fi
