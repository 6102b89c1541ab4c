#!/bin/bash
# run-all.sh: the whole test suite from a fresh checkout -- build with
# warnings as errors, run `make check`, then `make distcheck` (which builds
# from the release tarball and runs the suite again out of tree).
# Prints the automake summary and a final "N passed, N failed" line.
set -u
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

autoreconf -fi >/dev/null || exit 1
./configure --enable-werror -q || exit 1
make -j"$jobs" >/dev/null || exit 1

make -j"$jobs" check
check_rc=$?

# Count from the .trs files: one :test-result: line per TAP test point.
pass=$(grep -h '^:test-result: \(PASS\|XFAIL\)' $(find tests -name '*.trs') 2>/dev/null | wc -l)
fail=$(grep -h '^:test-result: \(FAIL\|XPASS\|ERROR\)' $(find tests -name '*.trs') 2>/dev/null | wc -l)
skip=$(grep -h '^:test-result: SKIP' $(find tests -name '*.trs') 2>/dev/null | wc -l)
if [ "$check_rc" -ne 0 ]; then
  find tests -name '*.log' -newer Makefile -exec grep -l '^\(not ok\|Bail out\)' {} + 2>/dev/null |
    while read -r f; do echo "=== $f"; tail -40 "$f"; done
  echo "$pass passed, $fail failed, $skip skipped"
  exit 1
fi

make -j"$jobs" distcheck >distcheck.log 2>&1
dist_rc=$?
tail -5 distcheck.log
if [ "$dist_rc" -ne 0 ]; then
  grep -B2 -A30 '^FAIL\|^ERROR\|Error [0-9]' distcheck.log | head -80
  echo "make distcheck failed"
  fail=$((fail + 1))
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
