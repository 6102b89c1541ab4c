#!/usr/bin/env bash
# bench-smoke.sh - `make check` test: every benchmark program of bench/ runs
# its quick case from bench/cases.txt (and bench/larson-cases.txt's) under
# the freshly built hakmem library,
# exits 0 and prints its result line; the fast-path probe modes work; and
# bench/compare runs end to end on the quick cases and writes its report.
# Reported as TAP.
#
# The benchmark figures themselves mean nothing here: the point is that the
# programs (which check every block they free) find no corruption, and that
# the runners still work, so `bench/compare` is not discovered broken on the
# day someone wants numbers.
#
# Runs from the build directory.  Overrides: HAKMEM_LIB (library to
# preload, exported by the test harness), BENCH_DIR (the built bench
# programs; default: beside $LARSON, else ./bench), BENCH_TIMEOUT (seconds
# per run).

set -u

srcdir=$(cd "$(dirname "$0")/.." && pwd)
cases_file=$srcdir/bench/cases.txt
larson_cases_file=$srcdir/bench/larson-cases.txt
library=${HAKMEM_LIB:-./.libs/libhakmem.so.0}
bench_dir=${BENCH_DIR:-$(dirname "${LARSON:-./bench/larson}")}
per_run_timeout=${BENCH_TIMEOUT:-60}

# Read the cases first so that the plan can be printed before anything runs.
names=()
progs=()
args=()
compare_cases=0
for f in "$cases_file" "$larson_cases_file"; do
    [ -f "$f" ] || continue
    while IFS= read -r line; do
        line=${line%%#*}
        [[ $line =~ [^[:space:]] ]] || continue
        IFS='|' read -r c_name c_prog _ c_quick <<<"$line"
        names+=("$(echo "$c_name" | xargs)")
        progs+=("$(echo "$c_prog" | xargs)")
        args+=("$(echo "$c_quick" | xargs)")
    done <"$f"
    # bench/compare (below) runs cases.txt's.
    [ "$f" = "$cases_file" ] && compare_cases=${#names[@]}
done
probes=("pair 64 1000" "batch 1024 1000" "none 16 1000")

echo "1..$((${#names[@]} + ${#probes[@]} + 1))"

# Anything missing must fail loudly: skipping would let a broken build, or a
# test that silently tests nothing, pass `make check`.
if [ ! -f "$library" ]; then
    echo "Bail out! library not found: $library"
    exit 1
fi
if [ ${#names[@]} -eq 0 ]; then
    echo "Bail out! no cases read from $cases_file"
    exit 1
fi
for p in "${progs[@]}" fastpath-loop; do
    if [ ! -x "$bench_dir/$p" ]; then
        echo "Bail out! benchmark program not built: $bench_dir/$p"
        exit 1
    fi
done
library=$(cd "$(dirname "$library")" && pwd)/$(basename "$library")
bench_dir=$(cd "$bench_dir" && pwd)

timeout_cmd=()
if command -v timeout >/dev/null 2>&1; then
    timeout_cmd=(timeout -k 5 "$per_run_timeout")
else
    echo "# 'timeout' not available: a hung run will hang this test"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT

n=0
failed=0

# check_run label status pattern: the run passed iff it exited 0 and its
# output has a line matching the extended regex.
check_run() {
    local label=$1 status=$2 pattern=$3 line
    n=$((n + 1))
    line=$(grep -E "$pattern" "$work/out" | tail -n 1)
    if [ "$status" -eq 0 ] && [ -n "$line" ]; then
        echo "ok $n - $label: $line"
        return
    fi
    failed=$((failed + 1))
    echo "not ok $n - $label"
    if [ "$status" -eq 124 ] && [ ${#timeout_cmd[@]} -gt 0 ]; then
        echo "# hung: killed after ${per_run_timeout}s"
    elif [ "$status" -gt 128 ]; then
        echo "# killed by SIG$(kill -l $((status - 128)) 2>/dev/null || echo $((status - 128)))"
    elif [ "$status" -eq 3 ]; then
        echo "# heap corruption detected"
    elif [ "$status" -ne 0 ]; then
        echo "# exit status $status"
    else
        echo "# no line matching: $pattern"
    fi
    sed 's/^/#   /' "$work/out" | tail -n 20
}

number='[0-9]+(\.[0-9]+)?'
for ((i = 0; i < ${#names[@]}; i++)); do
    # shellcheck disable=SC2086 # the case's arguments are words
    "${timeout_cmd[@]}" env LD_PRELOAD="$library" "$bench_dir/${progs[i]}" ${args[i]} \
        >"$work/out" 2>&1
    status=$?
    if [ "${progs[i]}" = larson ]; then
        pattern='^Throughput = [1-9][0-9]* operations per second$'
    else
        pattern="^result: [a-z0-9-]+ time_s=$number ops=[1-9][0-9]*( [a-z_]+=[^ ]+)*\$"
    fi
    check_run "${names[i]}: ${progs[i]} ${args[i]}" "$status" "$pattern"
done

for p in "${probes[@]}"; do
    # shellcheck disable=SC2086
    "${timeout_cmd[@]}" env LD_PRELOAD="$library" "$bench_dir/fastpath-loop" $p \
        >"$work/out" 2>&1
    check_run "fastpath-loop $p" $? "^result: fastpath-[a-z]+ time_s=$number ops=1000 size=[0-9]+\$"
done

# The runner, end to end: glibc and hakmem only, quick arguments, one run
# each, no chart; it must exit 0 and write a report whose tables have a row
# per case.
"${timeout_cmd[@]}" bash "$srcdir/bench/compare" -n 1 --quick --no-chart -a glibc,hakmem \
    -B "$(dirname "$bench_dir")" -l "$library" -o "$work/results" --name smoke \
    >"$work/out" 2>&1
status=$?
rows=0
[ -f "$work/results/smoke.md" ] &&
    rows=$(grep -c '^| [a-z0-9-]* (\(s\|ns/op\)) |' "$work/results/smoke.md")
if [ "$status" -eq 0 ] && [ "$rows" -ne "${compare_cases:-0}" ]; then
    echo "# report has $rows time rows, expected ${compare_cases:-0}" >>"$work/out"
    status=1
fi
check_run "bench/compare --quick -a glibc,hakmem" "$status" '^\| geometric mean of ratios \|'

[ "$failed" -eq 0 ]
