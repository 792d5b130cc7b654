#!/usr/bin/env bash
# Run orpflow's tests on a sanitizer build and fail on any report.
#
#   tools/sanitize.sh thread  [pytest args]   ThreadSanitizer: rings, snapshot, threaded engine
#                                             (persistence thread, metrics server, CLI children)
#   tools/sanitize.sh address [pytest args]   AddressSanitizer + UBSan: the compiled core's tests
#
# Builds the package with ORPFLOW_SANITIZE=<kind> into .venv-<kind> (reused when it exists;
# REBUILD=1 forces a new one), preloads gcc's sanitizer runtime into the (uninstrumented)
# CPython, writes every report to a log file, prints them, and exits 1 if there is any report
# or any test fails. No suppressions: orpflow's code is instrumented and must report nothing.
set -euo pipefail
kind=${1:?usage: tools/sanitize.sh thread|address [pytest args]}
shift
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CC=${CC:-gcc}
venv=".venv-$kind"
logs="$PWD/build/sanitize-$kind"

case "$kind" in
  thread)
    runtime=$("$CC" -print-file-name=libtsan.so)
    tests=(tests/test_ring.py tests/test_snapshot.py tests/test_book_threads.py
           tests/test_engine.py tests/test_engine_control.py tests/test_engine_persistence.py
           "tests/test_live.py::test_live_sample_session_equals_its_recording_backtested"
           "tests/test_live.py::test_back_pressure_counted_nothing_lost")
    export TSAN_OPTIONS="halt_on_error=0 log_path=$logs/report second_deadlock_stack=1"
    ;;
  address)
    runtime=$("$CC" -print-file-name=libasan.so)
    tests=(tests/test_events.py tests/test_book.py tests/test_book_deep.py tests/test_book_differential.py
           tests/test_ring.py tests/test_snapshot.py tests/test_convert_fuzz.py tests/test_features.py
           tests/test_features_differential.py tests/test_signals.py tests/test_signals_differential.py
           tests/test_broker.py tests/test_broker_differential.py tests/test_risk.py tests/test_engine.py
           tests/test_binance_json.py tests/test_convert_stream.py)
    # CPython frees little at exit, so leak reports would all be its own: leaks in orpflow's C
    # are counted by the debug build's allocation balance instead. PYTHONMALLOC=malloc puts
    # Python objects under ASan's checks too.
    export ASAN_OPTIONS="detect_leaks=0 halt_on_error=1 log_path=$logs/report"
    export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1 log_path=$logs/report"
    export PYTHONMALLOC=malloc
    ;;
  *) echo "tools/sanitize.sh: kind must be thread or address, not '$kind'" >&2; exit 2 ;;
esac
[[ -f "$runtime" ]] || { echo "tools/sanitize.sh: $CC has no $kind sanitizer runtime ($runtime)" >&2; exit 2; }

if [[ ! -x "$venv/bin/pytest" || "${REBUILD:-0}" == 1 ]]; then
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  ORPFLOW_SANITIZE=$kind "$venv/bin/pip" install --quiet ".[test]"
fi

rm -rf "$logs"
mkdir -p "$logs"
# sanitizer builds run 10-50x slower: stress tests make fewer iterations, same checks
export ORPFLOW_STRESS_SCALE=${ORPFLOW_STRESS_SCALE:-0.1}
if (( $# )); then tests=("$@"); fi
status=0
LD_PRELOAD="$runtime" "$venv/bin/pytest" -q -p no:cacheprovider "${tests[@]}" || status=$?

reports=$(find "$logs" -type f | wc -l)
if (( reports > 0 )); then
  cat "$logs"/*
  echo "tools/sanitize.sh: $kind sanitizer: $reports report file(s) in $logs"
  exit 1
fi
echo "tools/sanitize.sh: $kind sanitizer: 0 reports"
exit "$status"
