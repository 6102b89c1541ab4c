#!/bin/bash
# run-fuzz.sh: the run of `make fuzz` and its summary.
#
#   run-fuzz.sh FUZZER SEED_CORPUS DIR SECONDS [libFuzzer options...]
#
# Runs FUZZER (tests/tools/fuzz_alloc) for SECONDS on a working corpus in
# DIR/fuzz-corpus, which starts from the checked-in SEED_CORPUS and keeps
# what the fuzzer learns across runs in the same build tree (the source
# tree is never written to). A crash, leak, sanitizer report or model
# mismatch is saved in DIR/fuzz-artifacts/ and fails the run; the report
# and the command that replays it are printed.
set -u

fuzzer=$1 seeds=$2 dir=$3 seconds=$4
shift 4

work=$dir/fuzz-corpus
artifacts=$dir/fuzz-artifacts/
log=$dir/fuzz.log
mkdir -p "$work" "$artifacts"

echo "fuzz: $fuzzer for ${seconds}s, seeds from $seeds, corpus in $work"
# -max_len: inputs are programs of calls; 4 KiB is some hundreds of calls.
# -timeout/-rss_limit_mb: a hang or runaway memory use in the allocator is
# a finding too. The first corpus directory is where new inputs go.
"$fuzzer" -max_total_time="$seconds" -max_len=4096 -timeout=30 \
  -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$artifacts" \
  "$@" "$work" "$seeds" >"$log" 2>&1
status=$?

stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
done_line=$(grep -a -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)

if [ "$status" -eq 0 ] && [ -z "$artifact" ]; then
  echo "fuzz: PASS: $(stat number_of_executed_units) inputs run in ${seconds}s" \
    "($(stat average_exec_per_sec)/s), $(stat new_units_added) new in the" \
    "corpus, peak RSS $(stat peak_rss_mb) MB"
  [ -n "$done_line" ] && echo "fuzz: ${done_line}"
  exit 0
fi

echo "fuzz: FAIL (exit $status); the report:"
echo "----"
# From the first line of the report (hakmem's own line, the model's FAIL
# line or the sanitizer's) to the end.
awk '/^fuzz_alloc: FAIL|^hakmem: |==[0-9]+==|^SUMMARY|runtime error:/ { found = 1 }
     found { print }' "$log" | head -n 120
echo "----"
if [ -n "$artifact" ]; then
  echo "fuzz: input saved as $artifact; replay with: $fuzzer $artifact"
fi
echo "fuzz: full log in $log"
exit 1
