#!/usr/bin/env bash
# Time-boxed coverage-guided fuzzing for CI: the five reader targets under atheris share
# FUZZ_BUDGET seconds (default 150, compiling the bounds-checked decoders included; each
# target gets at least 5 s of fuzzing), bounds-checked compiled code, 1 GiB RSS.
# Problems of a class in tests/fuzz_corpus/known_failures.toml are tolerated (and
# counted); anything else fails the run and leaves crash-* inputs in $FUZZ_OUT.
#   scripts/fuzz/ci.sh            # from the repository root, after the venv exists
# Long local runs: a persistent FUZZ_OUT keeps each target's corpus between runs, e.g.
#   FUZZ_BUDGET=3600 FUZZ_SEED=0 FUZZ_OUT=$HOME/tracereplay-fuzz scripts/fuzz/ci.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PY:-.venv/bin/python}
case $PY in /*) ;; *) PY="$(pwd)/$PY" ;; esac
BUDGET=${FUZZ_BUDGET:-150}
SEED=${FUZZ_SEED:-1}  # fixed in CI so a failure reproduces; 0 = libFuzzer picks one
TARGETS=(trace-dat perf-data perfetto ftrace-text sniff)
REPO=$(pwd)
OUT=${FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/tracereplay-fuzz-ci.XXXXXX")}

if ! "$PY" -c "import atheris" 2>/dev/null; then
  if ! "$PY" -m pip install -q atheris >/dev/null 2>&1; then
    echo "fuzz: warning: atheris could not be installed; coverage-guided fuzzing skipped" >&2
    exit 0
  fi
fi

# bounds-checked numba code has its own cache (the cache does not key on the flag)
export NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR="$OUT/numba-cache"
status=0
start=$SECONDS
left=${#TARGETS[@]}
for target in "${TARGETS[@]}"; do
  # what is left of the budget, shared by the targets still to run
  SECONDS_EACH=$(( (BUDGET - (SECONDS - start)) / left ))
  (( SECONDS_EACH < 5 )) && SECONDS_EACH=5
  left=$((left - 1))
  mkdir -p "$OUT/$target/corpus"
  echo "fuzz: $target for ${SECONDS_EACH}s" >&2
  if ! (cd "$OUT/$target" && "$PY" "$REPO/scripts/fuzz/fuzz_readers.py" "$target" \
        -seed="$SEED" -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=1024 \
        -print_final_stats=1 corpus >log 2>&1); then
    status=1
    echo "fuzz: $target: CRASH (new problem); input and log in $OUT/$target:" >&2
    grep -A3 -E "Uncaught Python exception|ERROR: libFuzzer|Test unit written" "$OUT/$target/log" >&2 || true
  fi
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|cov:.*DONE" \
    "$OUT/$target/log" | sed "s/^/fuzz: $target: /" >&2 || true
  if [[ -s $OUT/$target/tolerated.json ]]; then
    echo "fuzz: $target: known problems tolerated: $(cat "$OUT/$target/tolerated.json")" >&2
    rm -f "$OUT/$target/tolerated.json"
  fi
done
echo "fuzz: $((SECONDS - start)) s" >&2
exit $status
