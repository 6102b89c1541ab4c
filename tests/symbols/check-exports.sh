#!/bin/bash
# Exported-symbol check (automake TAP test).
#
# Compares the dynamic symbols that the library defines with
# expected.txt beside this script.  A missing name breaks programs that
# preload or link the library; an extra one is an internal symbol leaking
# into the ABI, which programs could bind to and which would then have to
# be kept forever.  Changing the list is a deliberate act: edit
# expected.txt (and the Debian .symbols file) together with the API.
#
# Environment:
#   HAKMEM_LIB  library to inspect (default ./.libs/libhakmem.so.0)
#   NM          nm to use (default nm)

set -euo pipefail

lib=${HAKMEM_LIB:-./.libs/libhakmem.so.0}
nm=${NM:-nm}
here=$(cd "$(dirname "$0")" && pwd)
expected_file=$here/expected.txt

bail() {
    echo "Bail out! $*"
    exit 1
}

[ -f "$lib" ] || bail "hakmem library $lib not found (set HAKMEM_LIB)"
[ -r "$expected_file" ] || bail "cannot read $expected_file"
command -v "$nm" >/dev/null 2>&1 || bail "$nm not found"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-symbols.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

export LC_ALL=C

grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$expected_file" |
    sed 's/[[:space:]]*$//' | sort -u >"$tmp/expected"

# Code (T, W, i) and data (B, D, R, V) definitions count; version nodes
# (A) do not.  "name@@VERSION" and "name@VERSION" are the same name here.
# _init, _fini, _edata, _end and __bss_start are linker artefacts that
# older toolchains export from every library, never our API.
"$nm" -D --defined-only "$lib" >"$tmp/nm.out" 2>"$tmp/nm.err" ||
    {
        awk '{ print "# " $0 }' "$tmp/nm.err"
        bail "$nm -D failed on $lib"
    }
awk 'NF >= 3 && $(NF - 1) ~ /^[TWiBDRV]$/ { sub(/@.*/, "", $NF); print $NF }' "$tmp/nm.out" |
    grep -v -x -e _init -e _fini -e _edata -e _end -e __bss_start |
    sort -u >"$tmp/actual" || true

echo "1..2"
echo "# library: $lib"

failed=0

# Each failing test shows its half of the diff: "-" expected but absent,
# "+" present but not expected.
missing=$(comm -23 "$tmp/expected" "$tmp/actual")
if [ -z "$missing" ]; then
    echo "ok 1 - every expected symbol is exported"
else
    echo "not ok 1 - every expected symbol is exported"
    failed=1
    echo "$missing" | awk '{ print "#   -" $0 }'
fi

extra=$(comm -13 "$tmp/expected" "$tmp/actual")
if [ -z "$extra" ]; then
    echo "ok 2 - nothing else is exported"
else
    echo "not ok 2 - nothing else is exported"
    failed=1
    echo "$extra" | awk '{ print "#   +" $0 }'
fi

# TAP already says what failed; the status is for callers that run this
# script directly rather than through automake's TAP driver.
[ "$failed" -eq 0 ]
