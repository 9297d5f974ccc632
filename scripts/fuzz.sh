#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ for a bounded time each.
#
#   scripts/fuzz.sh TARGET SECONDS   one target (see `scripts/fuzz.sh --list`)
#   scripts/fuzz.sh all SECONDS      every target, SECONDS each
#
# The toolchain is stable: libFuzzer's instrumentation needs nightly-only
# compiler flags, which RUSTC_BOOTSTRAP=1 allows on stable. cargo-fuzz is
# installed from crates.io if it is missing. The corpus in fuzz/corpus/TARGET
# seeds each run and is never written to: new inputs go to a scratch
# directory (kept when FUZZ_KEEP_CORPUS=DIR is set). A crash stops the run
# with exit status 1 and leaves the input in fuzz/artifacts/TARGET/; add it
# to fuzz/corpus/TARGET/ once fixed, so that the ordinary test suite
# (fuzz-entries/tests/corpus.rs) keeps checking it.
set -euo pipefail
cd "$(dirname "$0")/.."

targets() { sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^gatehouse'; }

if [ "${1:-}" = "--list" ]; then targets; exit 0; fi
if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$1" = -h ] || [ "$1" = --help ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
target="$1"
seconds="$2"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

if [ "$target" = all ]; then
  selected=$(targets)
else
  targets | grep -qx "$target" || { echo "fuzz: no target $target (have: $(targets | tr '\n' ' '))" >&2; exit 2; }
  selected="$target"
fi

export RUSTC_BOOTSTRAP=1
target_dir="${FUZZ_TARGET_DIR:-fuzz/target}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in $selected; do
  out="${FUZZ_KEEP_CORPUS:-$scratch}/$t"
  mkdir -p "$out"
  echo "fuzz: $t for ${seconds}s"
  started=$(date +%s)
  # --sanitizer none: the code under test has no unsafe; debug assertions
  # (and with them overflow checks) stay on to catch arithmetic bugs.
  log="$scratch/$t.log"
  if cargo fuzz run --fuzz-dir fuzz --target-dir "$target_dir" --sanitizer none --debug-assertions \
    "$t" "$out" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    status=0
    grep -E '^(#[0-9]+ +DONE|INFO: seed corpus|stat::number_of_executed_units|stat::new_units_added)' "$log" || true
  else
    status=$?
    tail -n 60 "$log"
  fi
  echo "fuzz: $t ran $(( $(date +%s) - started ))s, exit $status"
  [ "$status" -eq 0 ] || exit 1
done
