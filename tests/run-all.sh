#!/bin/bash
# run-all.sh: the whole test suite from a fresh checkout -- build with
# warnings as errors, run `make check` with each tiny backend (SuperSlabs,
# then HAKMEM_TINY_USE_SUPERSLAB=0), then `make distcheck` (which builds
# from the release tarball and runs the suite again out of tree).
# Prints the automake summaries and a final "N passed, N failed" line.
set -u
cd "$(dirname "$0")/.." || exit 1
jobs=$(nproc 2>/dev/null || echo 2)

autoreconf -fi >/dev/null || exit 1
./configure --enable-werror -q || exit 1
make -j"$jobs" >/dev/null || exit 1

pass=0
fail=0
skip=0
# One `make check`; adds its TAP results (one :test-result: line per test
# point in the .trs files) to the counts.
run_check() {
  local label=$1 rc trs
  shift
  echo "=== make check ($label)"
  env "$@" make -j"$jobs" check
  rc=$?
  trs=$(find tests -name '*.trs' -exec cat {} +)
  pass=$((pass + $(grep -c '^:test-result: \(PASS\|XFAIL\)' <<<"$trs")))
  fail=$((fail + $(grep -c '^:test-result: \(FAIL\|XPASS\|ERROR\)' <<<"$trs")))
  skip=$((skip + $(grep -c '^:test-result: SKIP' <<<"$trs")))
  if [ "$rc" -ne 0 ]; then
    find tests -name '*.log' -exec grep -l '^\(not ok\|Bail out\)' {} + 2>/dev/null |
      while read -r f; do echo "=== $f ($label)"; tail -40 "$f"; done
    [ "$fail" -gt 0 ] || fail=1
  fi
}

run_check "SuperSlabs" HAKMEM_TINY_USE_SUPERSLAB=1
run_check "HAKMEM_TINY_USE_SUPERSLAB=0" HAKMEM_TINY_USE_SUPERSLAB=0
if [ "$fail" -ne 0 ]; then
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
