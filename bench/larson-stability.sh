#!/usr/bin/env bash
# larson-stability.sh - run the Larson benchmark repeatedly under an
# LD_PRELOADed allocator and report how many runs survived.
#
# A single Larson run can pass by luck when an allocator has a race in its
# cross-thread free or thread-exit paths; only many runs in a row give
# confidence.  Throughput is reported too, but the exit status is what
# matters: it is non-zero if any run crashed, failed, hung or printed no
# Throughput line.
#
# usage: larson-stability.sh [-n RUNS] [-l LIBRARY] [-t TIMEOUT] [-- larson args]
#   -n RUNS     number of runs (default 20)
#   -l LIBRARY  allocator to preload (default <script dir>/../.libs/libhakmem.so.0)
#   -t TIMEOUT  seconds after which a run counts as hung (default: run length + 60)
#   larson args default to: 10 8 128 1024 1 12345 4
#   env LARSON  larson binary (default <script dir>/larson)

set -u

script_dir=$(cd "$(dirname "$0")" && pwd)
runs=20
library="$script_dir/../.libs/libhakmem.so.0"
run_timeout=
larson=${LARSON:-$script_dir/larson}

usage() {
    sed -n 's/^# \{0,1\}//; /^usage:/,/^  env LARSON/p' "$0" >&2
    exit 2
}

while getopts ':n:l:t:h' opt; do
    case $opt in
        n) runs=$OPTARG ;;
        l) library=$OPTARG ;;
        t) run_timeout=$OPTARG ;;
        h) usage ;;
        :) echo "larson-stability: -$OPTARG needs an argument" >&2; usage ;;
        *) echo "larson-stability: unknown option -$OPTARG" >&2; usage ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -eq 0 ]; then
    set -- 10 8 128 1024 1 12345 4
fi

case $runs in
    '' | *[!0-9]* | 0) echo "larson-stability: -n wants a positive integer, got '$runs'" >&2; exit 2 ;;
esac

# LD_PRELOAD resolves a relative path against whatever directory the
# process runs in, so pin it down once here.
if [ ! -f "$library" ]; then
    echo "larson-stability: library not found: $library" >&2
    exit 2
fi
library=$(cd "$(dirname "$library")" && pwd)/$(basename "$library")

if [ ! -x "$larson" ]; then
    echo "larson-stability: larson binary not found or not executable: $larson (set LARSON=...)" >&2
    exit 2
fi

# A deadlocked allocator would otherwise stall the script forever.
if [ -z "$run_timeout" ]; then
    run_timeout=$(awk -v s="$1" 'BEGIN { if (s + 0 == s) print int(s * 2) + 60; else print 120 }')
fi
timeout_cmd=()
if command -v timeout >/dev/null 2>&1; then
    timeout_cmd=(timeout -k 10 "$run_timeout")
else
    echo "larson-stability: note: 'timeout' not available, a hung run will hang this script" >&2
fi

out=$(mktemp "${TMPDIR:-/tmp}/larson-stability.XXXXXX")
trap 'rm -f "$out"' EXIT

echo "library: $library"
echo "command: $larson $*"
echo "runs:    $runs"

ok=0
throughputs=()
for ((i = 1; i <= runs; i++)); do
    "${timeout_cmd[@]}" env LD_PRELOAD="$library" "$larson" "$@" >"$out" 2>&1
    status=$?
    tput=$(sed -n 's/^Throughput = \([0-9][0-9]*\) operations per second$/\1/p' "$out" | tail -n 1)

    if [ "$status" -eq 0 ] && [ -n "$tput" ]; then
        ok=$((ok + 1))
        throughputs+=("$tput")
        printf 'run %d/%d: ok, %s ops/s\n' "$i" "$runs" "$tput"
        continue
    fi

    if [ "$status" -eq 124 ] && [ ${#timeout_cmd[@]} -gt 0 ]; then
        why="hung, killed after ${run_timeout}s"
    elif [ "$status" -gt 128 ]; then
        why="killed by SIG$(kill -l $((status - 128)) 2>/dev/null || echo $((status - 128)))"
    elif [ "$status" -ne 0 ]; then
        why="exit status $status"
    else
        why="exit status 0 but no Throughput line"
    fi
    printf 'run %d/%d: FAILED (%s)\n' "$i" "$runs" "$why"
    sed 's/^/    | /' "$out" | tail -n 20
done

echo "$ok/$runs runs completed"
if [ ${#throughputs[@]} -gt 0 ]; then
    median=$(printf '%s\n' "${throughputs[@]}" | sort -n | awk '
        { v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    echo "median throughput: $median ops/s (over $ok successful runs)"
else
    echo "median throughput: n/a (no successful run)"
fi

[ "$ok" -eq "$runs" ]
