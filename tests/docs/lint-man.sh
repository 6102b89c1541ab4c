#!/bin/bash
# Man page lint (automake TAP test).
#
# Both pages must pass `mandoc -Tlint -Wwarning` and `groff -ww -z -man`
# without a word of output, and hold nothing but ASCII (a stray UTF-8
# character renders differently from terminal to terminal and is easy to
# paste in by accident). mandoc and groff are required: without them the
# test bails out rather than skipping, so that a CI machine missing them
# cannot pass unnoticed (Debian packages: mandoc, groff-base).

set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
pages=("$top/man/hakmem-run.1" "$top/man/hakmem.7")

bail() {
    echo "Bail out! $*"
    exit 1
}

command -v mandoc >/dev/null 2>&1 || bail "mandoc not found (Debian: apt-get install mandoc)"
command -v groff >/dev/null 2>&1 || bail "groff not found (Debian: apt-get install groff-base)"
for page in "${pages[@]}"; do
    [ -r "$page" ] || bail "cannot read $page"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-lint-man.XXXXXX") || bail "mktemp failed"
trap 'rm -rf "$tmp"' EXIT

n=0
failed=0

# check NAME COMMAND...: one TAP line; passes if COMMAND exits 0 and says
# nothing on stdout or stderr.
check() {
    local name=$1
    shift
    local rc=0
    "$@" >"$tmp/out" 2>&1 || rc=$?
    n=$((n + 1))
    if [ "$rc" -eq 0 ] && [ ! -s "$tmp/out" ]; then
        echo "ok $n - $name"
    else
        failed=$((failed + 1))
        echo "not ok $n - $name"
        echo "# exit status $rc; output:"
        head -n 30 "$tmp/out" | sed 's/^/#   /'
    fi
}

ascii_only() {
    # Report the lines with a byte outside printable ASCII and tab.
    LC_ALL=C grep -n '[^[:print:][:blank:]]' "$1"
}

not() {
    ! "$@"
}

echo "1..$((3 * ${#pages[@]}))"
for page in "${pages[@]}"; do
    name=man/$(basename "$page")
    check "mandoc -Tlint -Wwarning $name" mandoc -Tlint -Wwarning "$page"
    # groff reads the page as the man command would; -ww enables every
    # warning, -z discards the formatted output.
    check "groff -ww -z -man $name" groff -ww -z -man "$page"
    check "$name is plain ASCII" not ascii_only "$page"
done

[ "$failed" -eq 0 ]
