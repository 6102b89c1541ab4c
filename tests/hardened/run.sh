#!/bin/bash
# run.sh: HAKMEM_HARDENED catches what it promises for small blocks (TAP).
#
# tests/hardened/hardened_probe commits one misuse per scenario; with the
# knob on, each must end in SIGABRT with exactly one report naming the
# block, where the default mode may notice nothing or crash later. Then
# workloads that must run clean with the knob on: freed memory reads as the
# fill, calloc still zeroes, threads freeing each other's blocks, the
# integration stress test, and the misuse cases of tests/misuse.
#
# Environment (set by make check; the script runs from the build tree):
#   HAKMEM_LIB     the built library, for the preloaded programs
#   MISUSE_BINDIR  the built misuse programs
set -u
probe=${HARDENED_PROBE:-./tests/hardened/hardened_probe}
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$probe" ] || { echo "Bail out! $probe not built"; exit 1; }
# Each case sets its own knobs, whatever the caller exported (the suite
# also runs with HAKMEM_TINY_USE_SUPERSLAB=0, and with HAKMEM_HARDENED=1).
for v in $(env | sed -n 's/^\(HAKMEM_[A-Z_]*\)=.*/\1/p'); do
    case $v in HAKMEM_LIB) ;; *) unset "$v" ;; esac
done
ulimit -c 0 2>/dev/null || true
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-hardened.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
    n=$((n + 1)); fail=1; echo "not ok $n - $1"; shift
    for l in "$@"; do printf '%s\n' "$l" | sed 's/^/# /'; done
}
echo "1..17"

# Runs the probe with HAKMEM_HARDENED=1 and any VAR=value given before the
# scenario; sets rc, out, err and block (the address the probe printed).
hrun() {
    local envs=(HAKMEM_HARDENED=1)
    while [[ $1 == *=* ]]; do envs+=("$1"); shift; done
    rc=0
    { timeout 300 env "${envs[@]}" "$probe" "$@" >"$tmp/out" 2>"$tmp/err"; } 2>/dev/null || rc=$?
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
    block=$(sed -n 's/^block //p' "$tmp/out")
}

ended() {
    if [ "$rc" -gt 128 ] && [ "$rc" -ne 124 ]; then
        echo "was killed by SIG$(kill -l $((rc - 128)) 2>/dev/null)"
    else
        echo "exited with status $rc"
    fi
}

# expect_abort DESCRIPTION FN WHAT: died of SIGABRT after exactly one line
# "hakmem: FN(): WHAT <the block>" (WHAT an extended regex).
expect_abort() {
    local d=$1 fn=$2 what=$3 problems=()
    [ "$rc" -eq 134 ] || problems+=("expected SIGABRT, but it $(ended)")
    [ -n "$block" ] || problems+=("the probe printed no block address")
    [ "$(grep -c '' "$tmp/err")" -eq 1 ] &&
        grep -Eqx "hakmem: $fn\(\): ($what) $block" "$tmp/err" ||
        problems+=("expected one stderr line: hakmem: $fn(): $what $block")
    if [ ${#problems[@]} -eq 0 ]; then ok "$d"; else not_ok "$d" "${problems[@]}" "stderr: $err" "stdout: $out"; fi
}

# expect_clean DESCRIPTION STDOUT-REGEX...: exit 0, nothing on stderr, and
# a stdout line matching each.
expect_clean() {
    local d=$1 want problems=()
    shift
    [ "$rc" -eq 0 ] || problems+=("expected exit 0, but it $(ended)")
    [ -z "$err" ] || problems+=("unexpected stderr")
    for want in "$@"; do
        grep -Eqx "$want" <<<"$out" || problems+=("no stdout line matching: $want")
    done
    if [ ${#problems[@]} -eq 0 ]; then ok "$d"; else not_ok "$d" "${problems[@]}" "stderr: $err" "stdout: $out"; fi
}

# --- double frees the default mode cannot see ---------------------------------
# The program overwrote the freed block's first 16 bytes (link and free
# tag) before the second free: only the slab's bitmap still knows.
for size in 32 5000 100000; do
    hrun double-free-overwritten "$size"
    expect_abort "double free of an overwritten $size-byte block is reported" free "double free"
done
hrun cross-thread-double-free 48
expect_abort "double free of an overwritten block after a remote free is reported" free "double free"

# --- writes after free ------------------------------------------------------------
# Where an in-band list would keep its link: the address of a live block
# (free-list poisoning), or zero (which a plain list would take for its
# end). Links are out of band, so these are writes into the fill.
hrun use-after-free 32 0 pointer
expect_abort "a live block's address written into a freed block is reported" malloc "write after free"
hrun use-after-free 16 0 0
expect_abort "zero written into a freed block's first word is reported" malloc "write after free"
hrun remote-list-poisoned 48
expect_abort "a write into a block on the remote list is reported when it is reused" malloc "write after free"
# The second word, and the fill of tiny and medium blocks.
hrun use-after-free 16 8 0x4141414141414141
expect_abort "a write over a freed 16-byte block's tag is reported" malloc "write after free"
hrun use-after-free 64 40 0x4141414141414141
expect_abort "a write into a freed 64-byte block is reported" malloc "write after free"
# The fill is checked in a block's first KiB (src/small/hardened.c).
hrun use-after-free 5000 1000 0
expect_abort "a write into a freed 5000-byte block's first KiB is reported" malloc "write after free"

# --- HAKMEM_INVALID_FREE=warn: reported, and the program goes on --------------
# The list is sound (its links are out of band): the block is reported
# and handed out again.
hrun HAKMEM_INVALID_FREE=warn use-after-free 32 0 pointer
if [ "$rc" -eq 0 ] && grep -qx 'alive (block handed out again)' <<<"$out" && [ "$(grep -c '' "$tmp/err")" -eq 1 ] &&
    grep -qx "hakmem: malloc(): write after free $block" "$tmp/err"; then
    ok "INVALID_FREE=warn: a write after free is reported and malloc goes on"
else
    not_ok "INVALID_FREE=warn: a write after free is reported and malloc goes on" "$(ended)" "stderr: $err" "stdout: $out"
fi
hrun HAKMEM_INVALID_FREE=warn double-free-overwritten 32
if [ "$rc" -eq 0 ] && grep -qx 'survived' <<<"$out" &&
    grep -qx "hakmem: free(): double free $block" "$tmp/err"; then
    ok "INVALID_FREE=warn: the double free is reported and dropped"
else
    not_ok "INVALID_FREE=warn: the double free is reported and dropped" "$(ended)" "stderr: $err" "stdout: $out"
fi

# --- what must still work ----------------------------------------------------------
for size in 64 5000; do
    hrun fill "$size"
    expect_clean "a freed $size-byte block reads as the fill, calloc zeroes it" \
        "fill-mismatch 0 of $((size - 16))" "calloc-nonzero 0 same-block [01]"
done
hrun stress 4 2000
expect_clean "4 threads freeing each other's blocks" "stress done, bad stamps 0"

lib=${HAKMEM_LIB:-./.libs/libhakmem.so.0}
stress_mt=./tests/integration/stress_mt
if [ -x "$stress_mt" ] && [ -f "$lib" ]; then
    rc=0
    timeout 600 env HAKMEM_HARDENED=1 CK_FORK=yes LD_PRELOAD="$lib" "$stress_mt" >"$tmp/out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then ok "tests/integration/stress_mt with HAKMEM_HARDENED=1"
    else not_ok "tests/integration/stress_mt with HAKMEM_HARDENED=1" "$(ended)" "$(tail -n 20 "$tmp/out")"; fi
else
    ok "tests/integration/stress_mt with HAKMEM_HARDENED=1 # SKIP not built"
fi

if [ -n "${MISUSE_BINDIR:-}" ] && [ -d "$MISUSE_BINDIR" ]; then
    rc=0
    HAKMEM_HARDENED=1 HAKMEM_LIB="$lib" bash "$here/../misuse/run.sh" >"$tmp/out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then ok "the misuse cases of tests/misuse give the same reports with HAKMEM_HARDENED=1"
    else not_ok "the misuse cases of tests/misuse give the same reports with HAKMEM_HARDENED=1" "$(grep -v '^ok' "$tmp/out")"; fi
else
    ok "the misuse cases with HAKMEM_HARDENED=1 # SKIP MISUSE_BINDIR not set"
fi
exit $fail
