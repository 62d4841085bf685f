#!/usr/bin/env bash
# Time-boxed coverage-guided fuzzing for CI (about 2 minutes): each reader target
# for FUZZ_SECONDS (default 20) under atheris, bounds-checked compiled code, 1 GiB RSS.
# Problems of a class in tests/fuzz_corpus/known_failures.toml are tolerated (and
# counted); anything else fails the run and leaves crash-* inputs in $FUZZ_OUT.
#   scripts/fuzz/ci.sh            # from the repository root, after the venv exists
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PY:-.venv/bin/python}
case $PY in /*) ;; *) PY="$(pwd)/$PY" ;; esac
SECONDS_EACH=${FUZZ_SECONDS:-20}
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
for target in trace-dat perf-data perfetto ftrace-text sniff; do
  mkdir -p "$OUT/$target/corpus"
  echo "fuzz: $target for ${SECONDS_EACH}s" >&2
  # -seed fixed: a CI failure reproduces; the corpus directory keeps what it learned
  if ! (cd "$OUT/$target" && "$PY" "$REPO/scripts/fuzz/fuzz_readers.py" "$target" \
        -seed=1 -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=1024 \
        -print_final_stats=1 corpus >log 2>&1); then
    status=1
    echo "fuzz: $target: CRASH (new problem); input and log in $OUT/$target:" >&2
    grep -E "Uncaught|Error|crash-|leak|rss" "$OUT/$target/log" | head -20 >&2
  fi
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|known problems|cov:.*DONE" \
    "$OUT/$target/log" | sed "s/^/fuzz: $target: /" >&2 || true
done
exit $status
