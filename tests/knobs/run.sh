#!/bin/bash
# run.sh: each HAKMEM_* knob changes what the library does (TAP).
# tests/knobs/knob_probe runs a scenario; this script runs it under
# different knob values and checks that the outcome changes as documented.
set -u
probe=${KNOB_PROBE:-./tests/knobs/knob_probe}
[ -x "$probe" ] || { echo "Bail out! $probe not built"; exit 1; }
n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); fail=1; echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
check() { # description, condition result (0/1), diagnostics...
  local d=$1 c=$2; shift 2
  if [ "$c" -eq 0 ]; then ok "$d"; else not_ok "$d" "$@"; fi
}
field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}'; }
run() { env "$@" 2>&1; }
# Each check starts from the defaults, whatever the caller exported (the
# suite also runs with HAKMEM_TINY_USE_SUPERSLAB=0).
for v in $(env | sed -n 's/^\(HAKMEM_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "1..16"

# HAKMEM_TINY_USE_SUPERSLAB
a=$(run HAKMEM_TINY_USE_SUPERSLAB=1 "$probe" regions | field same-region)
b=$(run HAKMEM_TINY_USE_SUPERSLAB=0 "$probe" regions | field same-region)
check "TINY_USE_SUPERSLAB=1 puts tiny classes in one SuperSlab" "$([ "$a" = 1 ]; echo $?)" "got '$a'"
check "TINY_USE_SUPERSLAB=0 maps each tiny slab alone" "$([ "$b" = 0 ]; echo $?)" "got '$b'"
out=$(run HAKMEM_TINY_USE_SUPERSLAB=0 "$probe" churn)
check "TINY_USE_SUPERSLAB=0 serves a churn workload" "$([ "$out" = done ]; echo $?)" "$out"

# HAKMEM_TINY_MEM_DIET: RSS after freeing all but 1/4999 of 256 MiB.
fat=$(run HAKMEM_TINY_MEM_DIET=0 "$probe" rss-after-free | field rss-kib)
thin=$(run HAKMEM_TINY_MEM_DIET=1 "$probe" rss-after-free | field rss-kib)
echo "# rss after free: diet off ${fat} KiB, diet on ${thin} KiB"
check "TINY_MEM_DIET=1 leaves a clearly smaller RSS after frees" \
  "$([ -n "$fat" ] && [ -n "$thin" ] && [ $((thin * 2)) -lt "$fat" ]; echo $?)" "off=$fat on=$thin"

# HAKMEM_PURGE_DELAY: 0 purges at once, -1 never.
now=$(run HAKMEM_PURGE_DELAY=0 "$probe" rss-after-free | field rss-kib)
never=$(run HAKMEM_PURGE_DELAY=-1 "$probe" rss-after-free | field rss-kib)
echo "# rss after free: purge at once ${now} KiB, never ${never} KiB"
check "PURGE_DELAY=0 returns freed slabs' pages, -1 keeps them" \
  "$([ -n "$now" ] && [ -n "$never" ] && [ $((now * 2)) -lt "$never" ]; echo $?)" "0=$now -1=$never"

# HAKMEM_THREAD_CACHE_SLABS: kept slabs stay resident even with purging,
# until the purge delay has passed for them too (checked on the next slow
# path of any thread, which the probe does not reach before it measures).
keep=$(run HAKMEM_PURGE_DELAY=0 HAKMEM_THREAD_CACHE_SLABS=8 "$probe" thread-cache | field rss-kib)
none=$(run HAKMEM_PURGE_DELAY=0 HAKMEM_THREAD_CACHE_SLABS=0 "$probe" thread-cache | field rss-kib)
echo "# rss after free: thread keeps 8 slabs ${keep} KiB, none ${none} KiB"
check "THREAD_CACHE_SLABS=0 gives every empty slab back" \
  "$([ -n "$keep" ] && [ -n "$none" ] && [ $((none + 1024)) -lt "$keep" ]; echo $?)" "8=$keep 0=$none"

# HAKMEM_LARGE_CACHE
c1=$(run "$probe" large-cache | field cached)
c0=$(run HAKMEM_LARGE_CACHE=0 "$probe" large-cache | field cached)
check "LARGE_CACHE default keeps a freed 8 MiB block" "$([ "${c1:-0}" -ge $((8 << 20)) ]; echo $?)" "cached=$c1"
check "LARGE_CACHE=0 keeps nothing" "$([ "$c0" = 0 ]; echo $?)" "cached=$c0"

# Freed large blocks keep their pages for the purge delay (so that a loop
# freeing and allocating big buffers does not fault them in each time);
# with a delay of 0 they keep none.
out=$(run "$probe" large-cache-rss)
dropped=$(field dropped-kib <<<"$out")
cached=$(field cached <<<"$out")
check "PURGE_DELAY default: freed large blocks keep their pages" \
  "$([ "${cached:-0}" -ge $((8 * 1536 * 1024)) ] && [ "${dropped:-99999}" -lt 4096 ]; echo $?)" "$out"
out=$(run HAKMEM_PURGE_DELAY=0 "$probe" large-cache-rss)
dropped=$(field dropped-kib <<<"$out")
cached=$(field cached <<<"$out")
check "PURGE_DELAY=0: freed large blocks keep no RSS" \
  "$([ "${cached:-1}" = 0 ] && [ "${dropped:-0}" -ge 10240 ]; echo $?)" "$out"

# HAKMEM_LARGE_THRESHOLD
l1=$(run "$probe" large-threshold | field large)
l0=$(run HAKMEM_LARGE_THRESHOLD=64K "$probe" large-threshold | field large)
check "LARGE_THRESHOLD=64K sends 100000 bytes to the large tier" "$([ "$l1" = 0 ] && [ "$l0" = 1 ]; echo $?)" "default=$l1 64K=$l0"

# HAKMEM_INVALID_FREE
out=$(run HAKMEM_INVALID_FREE=warn "$probe" double-free)
rc=$?
check "INVALID_FREE=warn reports a double free and goes on" \
  "$([ $rc -eq 0 ] && grep -q '^hakmem: free(): double free 0x[0-9a-f]*$' <<<"$out" && grep -q '^alive$' <<<"$out"; echo $?)" "rc=$rc" "$out"

# HAKMEM_STATS and HAKMEM_STATS_FILE
out=$(run HAKMEM_STATS=1 "$probe" churn)
check "STATS=1 prints per-class counts at exit" \
  "$(grep -q '^class 0 size 16: allocs 400 frees 400 remote-frees 0 live 0$' <<<"$out" && grep -q '^superslabs: ' <<<"$out"; echo $?)" "$out"
run HAKMEM_STATS=1 HAKMEM_STATS_FILE="$tmp/stats" "$probe" churn >"$tmp/out"
check "STATS_FILE receives the report instead of stderr" \
  "$(grep -q '^hakmem .* statistics, pid' "$tmp/stats" && ! grep -q statistics "$tmp/out"; echo $?)" "$(cat "$tmp/out")"

# HAKMEM_VERBOSE, and a malformed value
out=$(run HAKMEM_VERBOSE=1 "$probe" churn)
check "VERBOSE=1 prints the version and every knob" \
  "$(grep -q '^hakmem [0-9.]*: HAKMEM_TINY_USE_SUPERSLAB=1 .*HAKMEM_TINY_MEM_DIET=0' <<<"$out"; echo $?)" "$out"
out=$(run HAKMEM_TINY_MEM_DIET=maybe "$probe" churn)
check "a malformed value is named, with the default used" \
  "$(grep -qx 'hakmem: ignoring HAKMEM_TINY_MEM_DIET=maybe: not a valid value, using the default 0' <<<"$out" && grep -qx done <<<"$out"; echo $?)" "$out"
exit $fail
