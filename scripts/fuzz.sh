#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets/, bodies in crates/core/src/fuzzing.rs) under libFuzzer
# for SECONDS each (default 60), on the nightly toolchain with cargo-fuzz
# (`rustup toolchain install nightly`, `cargo install cargo-fuzz`), and prints a table: target,
# seconds, executions, new inputs, crashes. A crash's input is copied to fuzz/regressions/<target>/,
# where `cargo test` (crates/core/tests/fuzz_regressions.rs) replays it until it is fixed.
# With --keep, the new inputs are merged (minimized) into fuzz/corpus/<target>/.
#
#   bash scripts/fuzz.sh [SECONDS] [--keep] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=60
keep=0
targets=()
for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;;
    [0-9]*) seconds=$a ;;
    *) targets+=("$a") ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)

cargo +nightly fuzz build -s none >/dev/null 2>&1 || { echo "cargo +nightly fuzz build failed (is cargo-fuzz installed?)" >&2; exit 2; }

printf '| %-16s | %7s | %12s | %10s | %7s |\n' target seconds executions "new inputs" crashes
printf '|%s|%s|%s|%s|%s|\n' ------------------ --------- -------------- ------------ ---------
found=0
for t in "${targets[@]}"; do
  scratch=$(mktemp -d)
  log=$(mktemp)
  mkdir -p "artifacts/$t" "regressions/$t"
  before=$(ls "artifacts/$t" | wc -l)
  # New inputs go to the scratch folder (the first); the committed corpus is read only.
  cargo +nightly fuzz run -s none "$t" "$scratch" "corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 -max_len=8192 -timeout=10 >"$log" 2>&1
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
  new=$(ls "$scratch" | wc -l)
  for f in "artifacts/$t"/*; do
    [ -e "$f" ] && cp -n "$f" "regressions/$t/"
  done
  crashes=$(( $(ls "artifacts/$t" | wc -l) - before ))
  if [ "$crashes" -gt 0 ]; then
    found=1
    grep -m3 -E 'panicked|ERROR' "$log" >&2
  fi
  if [ "$keep" = 1 ] && [ "$new" -gt 0 ]; then
    cargo +nightly fuzz cmin -s none "$t" "corpus/$t" >/dev/null 2>&1 || true
    cargo +nightly fuzz run -s none "$t" "corpus/$t" "$scratch" -- -merge=1 >/dev/null 2>&1 || true
  fi
  printf '| %-16s | %7s | %12s | %10s | %7s |\n' "$t" "$seconds" "${execs:-?}" "$new" "$crashes"
  rm -rf "$scratch" "$log"
done
exit $found
