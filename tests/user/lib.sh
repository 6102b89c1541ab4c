# shellcheck shell=bash
# lib.sh: what the tests of tests/user share, sourced by each: TAP lines,
# bailing out, the built programs (from make check's environment) and a
# scratch directory removed at exit.

set -uo pipefail

n=0
failed=0
problems=()

bail() {
    echo "Bail out! $*"
    exit 1
}

problem() {
    problems+=("$*")
}

# verdict NAME: one TAP line from the problems gathered since the last one.
verdict() {
    n=$((n + 1))
    if [ ${#problems[@]} -eq 0 ]; then
        echo "ok $n - $*"
    else
        failed=$((failed + 1))
        echo "not ok $n - $*"
        printf '%s\n' "${problems[@]}" | sed 's/^/# /'
    fi
    problems=()
}

skip() {
    n=$((n + 1))
    echo "ok $n - $1 # SKIP $2"
    problems=()
}

# show FILE...: the first lines of each file, as problems.
show() {
    local f line
    for f in "$@"; do
        [ -s "$f" ] || continue
        problem "$(basename "$f"):"
        while IFS= read -r line; do problem "  $line"; done < <(head -n 12 "$f")
    done
}

finish() {
    echo "1..$n"
    [ "$failed" -eq 0 ]
}

for v in HAKMEM_LIB HAKMEM_RUN USER_PROBE PACKAGE_VERSION; do
    [ -n "${!v:-}" ] || bail "$v is not set (run through make check)"
done
[ -f "$HAKMEM_LIB" ] || bail "library $HAKMEM_LIB not built"
[ -x "$USER_PROBE" ] || bail "$USER_PROBE not built"
lib=$(cd "$(dirname "$HAKMEM_LIB")" && pwd)/$(basename "$HAKMEM_LIB")
# shellcheck disable=SC2034 # for the scripts that source this
run=$HAKMEM_RUN
# shellcheck disable=SC2034
probe=$USER_PROBE
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2034
top=$(cd "$here/../.." && pwd)

# Nothing inherited that would change what hakmem does or says.
unset LD_PRELOAD PYTHONMALLOC
for v in $(compgen -e | grep '^HAKMEM_' | grep -vx -e HAKMEM_LIB -e HAKMEM_RUN -e HAKMEM_BUILDDIR || true); do
    unset "$v"
done
export HAKMEM_RUN_LIBRARY=$lib

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-user.XXXXXX") || bail "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
ulimit -c 0 2>/dev/null || true
