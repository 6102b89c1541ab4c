#!/bin/bash
# run-sanitizers.sh: the runs of `make check-sanitizers` and their summary.
#
#   run-sanitizers.sh DIR [stress driver options...]
#
# DIR holds sanitize_stress-tsan and sanitize_stress-asan (built by
# tests/tools/local.am); logs are written there as check-sanitizers-*.log.
# Each binary runs with the default knobs and with knobs that take the other
# code paths (the solo-slab backend, diet mode's immediate purging,
# HAKMEM_STATS's counted frees, a lower large threshold, HAKMEM_HARDENED's
# checked paths); one more TSan run has threads ask for statistics while
# others allocate (driver option -S), kept apart so that its reports do not
# hide the other runs'. The sanitizer options come from the environment
# (the make target sets TSAN_OPTIONS, ASAN_OPTIONS and UBSAN_OPTIONS to stop
# at the first report with exit status 66).
#
# A run fails on a non-zero exit status, and also on any sanitizer report or
# hakmem misuse line in its log even if the status was 0, so that no report
# can pass unnoticed. Without -s in the options, one seed is chosen for all
# runs and printed, so a failure can be rerun with the same seed.
set -u

dir=$1
shift
args=("$@")
case " ${args[*]-} " in
  *" -s "*) seed_note="" ;;
  *)
    seed=$(( $(date +%s) % 1000000 ))
    args+=(-s "$seed")
    seed_note=" (seed $seed; rerun with SANITIZE_STRESS_ARGS='${args[*]}')"
    ;;
esac

# Runs with the default knobs must not inherit any from the caller.
for v in $(env | sed -n 's/^\(HAKMEM_[A-Z_]*\)=.*/\1/p'); do
  unset "$v"
done

# name|binary|knobs|extra driver options|what the run is for
runs=(
  "tsan-default|sanitize_stress-tsan|||ThreadSanitizer, default knobs"
  "tsan-solo-diet-stats|sanitize_stress-tsan|HAKMEM_TINY_USE_SUPERSLAB=0 HAKMEM_TINY_MEM_DIET=1 HAKMEM_STATS=1 HAKMEM_STATS_FILE=/dev/null||ThreadSanitizer, solo slabs + diet + counted frees"
  "tsan-stats-calls|sanitize_stress-tsan||-S 500|ThreadSanitizer, statistics calls while threads run"
  "tsan-hardened|sanitize_stress-tsan|HAKMEM_HARDENED=1||ThreadSanitizer, hardened mode (bitmaps, encoded remote lists)"
  "asan-default|sanitize_stress-asan|||ASan+UBSan, default knobs"
  "asan-hardened|sanitize_stress-asan|HAKMEM_HARDENED=1||ASan+UBSan, hardened mode"
  "asan-purge-threshold|sanitize_stress-asan|HAKMEM_PURGE_DELAY=0 HAKMEM_LARGE_THRESHOLD=64K HAKMEM_THREAD_CACHE_SLABS=0 HAKMEM_LARGE_CACHE=8M||ASan+UBSan, immediate purge + 64K large threshold + no thread cache"
)

# What marks a report in a log; the first matching line is the summary.
report_re='(WARNING|ERROR|FATAL): [A-Za-z]*Sanitizer|Sanitizer:DEADLYSIGNAL|runtime error:|SUMMARY: [A-Za-z]*Sanitizer|sanitize_stress: FAIL|^hakmem: '

summary=()
failed=0
for run in "${runs[@]}"; do
  IFS='|' read -r name bin knobs extra what <<<"$run"
  # shellcheck disable=SC2206 # extra is a list of option words
  run_args=("${args[@]}" $extra)
  log=$dir/check-sanitizers-$name.log
  echo "check-sanitizers: $name: $what"
  start=$(date +%s.%N)
  # shellcheck disable=SC2086 # knobs is a list of VAR=value words
  env $knobs "$dir/$bin" "${run_args[@]}" >"$log" 2>&1
  status=$?
  # clang 14's TSan cannot cope with some kernels' mmap layout (high ASLR
  # entropy); without randomisation it can, and the test is the same.
  if [ "$status" -ne 0 ] && grep -q 'unexpected memory mapping' "$log" &&
     setarch "$(uname -m)" -R true 2>/dev/null; then
    echo "check-sanitizers: $name: rerun without ASLR (TSan memory layout)"
    # shellcheck disable=SC2086
    env $knobs setarch "$(uname -m)" -R "$dir/$bin" "${run_args[@]}" \
      >"$log" 2>&1
    status=$?
  fi
  secs=$(echo "$start $(date +%s.%N)" | awk '{printf "%.1f", $2 - $1}')
  first=$(grep -E -m1 "$report_re" "$log")
  # The sanitizers' SUMMARY line names the place; prefer it for the table.
  what_line=$(grep -E -m1 '^SUMMARY: |sanitize_stress: FAIL|^hakmem: ' "$log")
  [ -n "$what_line" ] || what_line=$first
  if [ "$status" -eq 0 ] && [ -z "$first" ]; then
    result="PASS"
    grep -E '^sanitize_stress: [0-9]' "$log" | sed 's/^/  /'
  else
    failed=$((failed + 1))
    result="FAIL (exit $status)"
    # The report itself, so that CI logs show it without the artefacts.
    echo "---- $log (first 80 lines of the report) ----"
    grep -n -E -m1 "$report_re" "$log" >/dev/null &&
      awk -v re="$report_re" 'found || $0 ~ re { found = 1; print }' "$log" |
      head -n 80
    [ -z "$first" ] && tail -n 40 "$log"
    echo "----"
  fi
  summary+=("$(printf '  %-22s %-20s %6ss  %s' "$name" "$result" "$secs" \
    "${what_line:0:110}")")
done

echo
echo "check-sanitizers summary$seed_note:"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  echo "check-sanitizers: FAILED: $failed of ${#runs[@]} runs; logs in $dir/check-sanitizers-*.log"
  exit 1
fi
echo "check-sanitizers: all ${#runs[@]} runs passed, no sanitizer reports"
