#!/usr/bin/env bash
# larson-short.sh - `make check` test: short Larson runs under LD_PRELOAD of
# the freshly built hakmem library, reported as TAP.
#
# Covers the four Larson stability cases from the project brief with the
# run length cut to one second, each repeated because races in cross-thread
# free and thread-exit handling show up only some of the time, plus one
# longer-rounds, larger-block case.  A run passes iff larson exits 0 and
# prints a Throughput line with a positive number.
#
# Runs from the build directory.  Overrides: LARSON (larson binary),
# HAKMEM_LIB (library to preload), LARSON_TIMEOUT (seconds per run).

set -u

larson=${LARSON:-./bench/larson}
library=${HAKMEM_LIB:-./.libs/libhakmem.so.0}
per_run_timeout=${LARSON_TIMEOUT:-60}

cases=(
    "1 1 128 1024 1 12345 1"
    "1 8 128 1024 1 12345 2"
    "1 8 128 256 1 12345 4"
    "1 8 128 1024 1 12345 4"
)
repeats=3
extra_case="1 8 1000 5000 100 4141 2"

echo "1..$((${#cases[@]} * repeats + 1))"

# A missing library must fail loudly: skipping would let a broken build
# pass `make check`.
if [ ! -f "$library" ]; then
    echo "Bail out! library not found: $library"
    exit 1
fi
if [ ! -x "$larson" ]; then
    echo "Bail out! larson binary not found: $larson"
    exit 1
fi
# LD_PRELOAD takes a relative path relative to the process's working
# directory; absolute is robust against harness changes.
library=$(cd "$(dirname "$library")" && pwd)/$(basename "$library")

timeout_cmd=()
if command -v timeout >/dev/null 2>&1; then
    timeout_cmd=(timeout -k 10 "$per_run_timeout")
else
    echo "# 'timeout' not available: a hung run will hang this test"
fi

out=$(mktemp "${TMPDIR:-/tmp}/larson-short.XXXXXX")
trap 'rm -f "$out"' EXIT

n=0
failed=0

run_case() {
    local args=$1 label=$2 status tput
    n=$((n + 1))
    # shellcheck disable=SC2086 # args is a list of words on purpose
    "${timeout_cmd[@]}" env LD_PRELOAD="$library" "$larson" $args >"$out" 2>&1
    status=$?
    tput=$(sed -n 's/^Throughput = \([0-9][0-9]*\) operations per second$/\1/p' "$out" | tail -n 1)
    if [ "$status" -eq 0 ] && [ -n "$tput" ] && [ "$tput" -gt 0 ]; then
        echo "ok $n - larson $args ($label): $tput ops/s"
        return
    fi
    failed=$((failed + 1))
    echo "not ok $n - larson $args ($label)"
    if [ "$status" -eq 124 ] && [ ${#timeout_cmd[@]} -gt 0 ]; then
        echo "# hung: killed after ${per_run_timeout}s"
    elif [ "$status" -gt 128 ]; then
        echo "# killed by SIG$(kill -l $((status - 128)) 2>/dev/null || echo $((status - 128)))"
    elif [ "$status" -ne 0 ]; then
        echo "# exit status $status"
    else
        echo "# no positive Throughput line"
    fi
    sed 's/^/#   /' "$out" | tail -n 20
}

for c in "${cases[@]}"; do
    for ((r = 1; r <= repeats; r++)); do
        run_case "$c" "run $r/$repeats"
    done
done
run_case "$extra_case" "100 rounds"

[ "$failed" -eq 0 ]
