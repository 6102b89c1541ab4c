#!/usr/bin/env bash
# larson-compare.sh - run the same Larson command under glibc, hakmem and the
# installed peer allocators, and print a Markdown table of the results.
#
# Runs alternate allocator by allocator (glibc, hakmem, mimalloc, jemalloc,
# tcmalloc, glibc, hakmem, ...) rather than doing all runs of one allocator
# in a block, so that drift on the machine (thermal throttling, a noisy
# neighbour, a background job) is spread over all allocators instead of
# landing on whichever happened to run at that moment.
#
# usage: larson-compare.sh [-n RUNS] [-l LIBRARY] [-t TIMEOUT] [-- larson args]
#   -n RUNS     runs per allocator (default 5)
#   -l LIBRARY  hakmem library (default <script dir>/../.libs/libhakmem.so.0)
#   -t TIMEOUT  seconds after which a run counts as hung (default: run length + 60)
#   larson args default to: 10 8 128 1024 1 12345 4
#   env LARSON  larson binary (default <script dir>/larson)
#
# Columns: median throughput over the successful runs; ratio to glibc; ratio
# to the best peer, where the peers are the third-party allocators
# (mimalloc, jemalloc, tcmalloc), not glibc; median peak RSS, when
# /usr/bin/time is installed.  Exits non-zero if any run failed.

set -u

script_dir=$(cd "$(dirname "$0")" && pwd)
runs=5
library="$script_dir/../.libs/libhakmem.so.0"
run_timeout=
larson=${LARSON:-$script_dir/larson}
peer_dir=/usr/lib/x86_64-linux-gnu

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
        :) echo "larson-compare: -$OPTARG needs an argument" >&2; usage ;;
        *) echo "larson-compare: unknown option -$OPTARG" >&2; usage ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -eq 0 ]; then
    set -- 10 8 128 1024 1 12345 4
fi

case $runs in
    '' | *[!0-9]* | 0) echo "larson-compare: -n wants a positive integer, got '$runs'" >&2; exit 2 ;;
esac

if [ ! -f "$library" ]; then
    echo "larson-compare: hakmem library not found: $library (build it or pass -l)" >&2
    exit 2
fi
# LD_PRELOAD resolves a relative path against the process's working
# directory, so make it absolute once.
library=$(cd "$(dirname "$library")" && pwd)/$(basename "$library")

if [ ! -x "$larson" ]; then
    echo "larson-compare: larson binary not found or not executable: $larson (set LARSON=...)" >&2
    exit 2
fi

# Parallel arrays: name and LD_PRELOAD value ("" = the system allocator).
names=(glibc hakmem)
preloads=("" "$library")
notes=()
for peer in mimalloc:libmimalloc.so.2 jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4; do
    name=${peer%%:*}
    lib=$peer_dir/${peer#*:}
    if [ -f "$lib" ]; then
        names+=("$name")
        preloads+=("$lib")
    else
        notes+=("$name skipped: $lib not installed")
    fi
done

if [ -z "$run_timeout" ]; then
    run_timeout=$(awk -v s="$1" 'BEGIN { if (s + 0 == s) print int(s * 2) + 60; else print 120 }')
fi
timeout_cmd=()
if command -v timeout >/dev/null 2>&1; then
    timeout_cmd=(timeout -k 10 "$run_timeout")
else
    notes+=("'timeout' not available: a hung run will hang this script")
fi

have_time=0
if [ -x /usr/bin/time ]; then
    have_time=1
else
    notes+=("peak RSS not measured: /usr/bin/time is not installed")
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/larson-compare.XXXXXX")
trap 'rm -rf "$workdir"' EXIT

for n in "${notes[@]}"; do
    echo "note: $n" >&2
done

failures=0
for ((r = 1; r <= runs; r++)); do
    for ((a = 0; a < ${#names[@]}; a++)); do
        name=${names[a]}
        out=$workdir/out
        rss_file=$workdir/rss
        rm -f "$rss_file"
        cmd=("${timeout_cmd[@]}")
        if [ "$have_time" -eq 1 ]; then
            # -o keeps time's report out of larson's output; time sits inside
            # timeout so a hung run is still killed.
            cmd+=(/usr/bin/time -f %M -o "$rss_file")
        fi
        if [ -n "${preloads[a]}" ]; then
            cmd+=(env LD_PRELOAD="${preloads[a]}")
        fi
        "${cmd[@]}" "$larson" "$@" >"$out" 2>&1
        status=$?
        tput=$(sed -n 's/^Throughput = \([0-9][0-9]*\) operations per second$/\1/p' "$out" | tail -n 1)
        rss=
        if [ "$have_time" -eq 1 ] && [ -f "$rss_file" ]; then
            # GNU time prefixes "Command exited with non-zero status" or
            # "Command terminated by signal" lines; the number is last.
            rss=$(tail -n 1 "$rss_file" | sed -n 's/^\([0-9][0-9]*\)$/\1/p')
        fi

        if [ "$status" -eq 0 ] && [ -n "$tput" ]; then
            echo "$tput" >>"$workdir/tput.$a"
            [ -n "$rss" ] && echo "$rss" >>"$workdir/rss.$a"
            printf 'run %d/%d %-9s %12s ops/s%s\n' "$r" "$runs" "$name" "$tput" \
                "${rss:+  peak RSS ${rss} KiB}" >&2
        else
            failures=$((failures + 1))
            echo "$r" >>"$workdir/fail.$a"
            if [ "$status" -eq 124 ] && [ ${#timeout_cmd[@]} -gt 0 ]; then
                why="hung, killed after ${run_timeout}s"
            elif [ "$status" -gt 128 ]; then
                why="killed by SIG$(kill -l $((status - 128)) 2>/dev/null || echo $((status - 128)))"
            elif [ "$status" -ne 0 ]; then
                why="exit status $status"
            else
                why="exit status 0 but no Throughput line"
            fi
            printf 'run %d/%d %-9s FAILED (%s)\n' "$r" "$runs" "$name" "$why" >&2
            sed 's/^/    | /' "$out" | tail -n 10 >&2
        fi
    done
done

median() {
    # Reads numbers on stdin; prints nothing when there are none.
    sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) exit
            if (NR % 2) print v[(NR + 1) / 2]
            else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

medians=()
rss_medians=()
for ((a = 0; a < ${#names[@]}; a++)); do
    medians[a]=$( [ -f "$workdir/tput.$a" ] && median <"$workdir/tput.$a")
    rss_medians[a]=$( [ -f "$workdir/rss.$a" ] && median <"$workdir/rss.$a")
done

glibc_median=${medians[0]}
best_peer=
best_peer_name=
for ((a = 2; a < ${#names[@]}; a++)); do
    m=${medians[a]}
    if [ -n "$m" ] && { [ -z "$best_peer" ] || [ "$m" -gt "$best_peer" ]; }; then
        best_peer=$m
        best_peer_name=${names[a]}
    fi
done

ratio() {
    if [ -n "$1" ] && [ -n "$2" ] && [ "$2" -gt 0 ]; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
    else
        printf 'n/a'
    fi
}

echo
echo "Larson: \`larson $*\`, $runs runs per allocator (round-robin), $(nproc 2>/dev/null || echo '?') CPUs"
echo
if [ "$have_time" -eq 1 ]; then
    echo "| allocator | median ops/s | vs glibc | vs best peer (${best_peer_name:-none}) | median peak RSS (MiB) | runs ok |"
    echo "|---|---:|---:|---:|---:|---:|"
else
    echo "| allocator | median ops/s | vs glibc | vs best peer (${best_peer_name:-none}) | runs ok |"
    echo "|---|---:|---:|---:|---:|"
fi
for ((a = 0; a < ${#names[@]}; a++)); do
    m=${medians[a]}
    nfail=0
    [ -f "$workdir/fail.$a" ] && nfail=$(wc -l <"$workdir/fail.$a")
    row="| ${names[a]} | ${m:-failed} | $(ratio "$m" "$glibc_median") | $(ratio "$m" "$best_peer")"
    if [ "$have_time" -eq 1 ]; then
        rss_mib=n/a
        if [ -n "${rss_medians[a]}" ]; then
            rss_mib=$(awk -v k="${rss_medians[a]}" 'BEGIN { printf "%.1f", k / 1024 }')
        fi
        row+=" | $rss_mib"
    fi
    row+=" | $((runs - nfail))/$runs |"
    echo "$row"
done
if [ ${#notes[@]} -gt 0 ]; then
    echo
    for n in "${notes[@]}"; do
        echo "- Note: $n"
    done
fi

[ "$failures" -eq 0 ]
