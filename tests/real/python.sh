#!/bin/bash
# Real-program test (automake TAP test): CPython under hakmem.
#
# Runs workload.py once on glibc and then with hakmem preloaded, both with
# PYTHONMALLOC=malloc (every object goes through malloc) and with CPython's
# own small-object allocator (malloc sees only arenas and big buffers),
# and requires the same output byte for byte.  Finally checks that the
# preload really took effect, so a silently ignored LD_PRELOAD cannot
# pass for success.
#
# Environment:
#   HAKMEM_LIB       library to preload (default ./.libs/libhakmem.so.0)
#   PYTHON           interpreter (default python3)
#   REAL_TIMEOUT     seconds one run may take (default 300)
#   REAL_SKIP_PROBE  1 skips the hakmem_version probe; only for trying
#                    this script with another allocator in HAKMEM_LIB

set -euo pipefail

lib=${HAKMEM_LIB:-./.libs/libhakmem.so.0}
python=${PYTHON:-python3}
limit=${REAL_TIMEOUT:-300}
here=$(cd "$(dirname "$0")" && pwd)
workload=$here/workload.py

# The reference runs must really be on glibc, even when this script itself
# was started under a preloaded allocator.
# shellcheck source=tests/real/lib.sh
. "$(dirname "$0")/lib.sh"

unset LD_PRELOAD

hk_real_library
[ -r "$workload" ] || bail "cannot read $workload"
command -v "$python" >/dev/null 2>&1 || bail "$python not found; this test needs a Python 3 interpreter"

# Resolve the real interpreter once, without the preload: a launcher such
# as a pyenv shim would otherwise be what runs under hakmem, and both runs
# must use the very same binary.
python=$("$python" -c 'import sys; assert sys.version_info >= (3, 6); print(sys.executable)') ||
    bail "$python does not run or is older than Python 3.6"
[ -x "$python" ] || bail "cannot resolve the Python executable"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-python.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ulimit -c 0 2>/dev/null || true

# Same hash seed everywhere, so nothing the workload does can vary
# between runs for reasons that have nothing to do with the allocator.
export PYTHONHASHSEED=0
unset PYTHONMALLOC PYTHONMALLOCSTATS PYTHONDEVMODE

# run NAME [VAR=VALUE...]: runs the workload with the given environment,
# output in $tmp/NAME.out and $tmp/NAME.err; emits one TAP line.
run() {
    local name=$1
    shift
    local rc=0
    # The braces keep bash's own notice of a crash out of the log.
    { timeout "$limit" env "$@" "$python" "$workload" \
        </dev/null >"$tmp/$name.out" 2>"$tmp/$name.err"; } 2>/dev/null || rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$tmp/$name.err" ] && grep -q '^done: ok=True$' "$tmp/$name.out"; then
        ok "workload runs: $name"
    else
        not_ok "workload runs: $name"
        if [ "$rc" -eq 124 ]; then
            echo "# timed out after ${limit}s"
        elif [ "$rc" -gt 128 ]; then
            echo "# killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
        elif [ "$rc" -ne 0 ]; then
            echo "# exit status $rc"
        elif [ -s "$tmp/$name.err" ]; then
            echo "# exit status 0, but it wrote to stderr:"
        else
            echo "# exit status 0, but the output is incomplete"
        fi
        tail -n 20 "$tmp/$name.err" | note
    fi
}

# same NAME: compares NAME's output with the glibc run; emits one TAP line.
same() {
    if cmp -s "$tmp/glibc.out" "$tmp/$1.out"; then
        ok "output identical to glibc: $1"
    else
        not_ok "output identical to glibc: $1"
        diff -u "$tmp/glibc.out" "$tmp/$1.out" | head -n 40 | note || true
    fi
}

echo "1..7"
echo "# python: $python"
echo "# library: $lib"

run glibc
run hakmem-malloc-only "LD_PRELOAD=$lib" PYTHONMALLOC=malloc
same hakmem-malloc-only
run hakmem-with-pymalloc "LD_PRELOAD=$lib"
same hakmem-with-pymalloc

# Whatever the library is, it must be mapped into the interpreter before
# the interpreter loads anything itself; if ld.so ignored the preload it
# is not.  (Comparing malloc addresses would not do: in a non-PIE
# executable dlsym returns the executable's own PLT stub for malloc.)
probe_rc=0
LD_PRELOAD=$lib "$python" -c '
import os, sys
want = os.path.realpath(sys.argv[1])
with open("/proc/self/maps") as maps:
    mapped = {f[5].rstrip("\n") for f in (l.split(None, 5) for l in maps) if len(f) == 6}
sys.exit(0 if want in mapped else 3)
' "$lib" >"$tmp/probe.out" 2>&1 || probe_rc=$?
if [ "$probe_rc" -eq 0 ]; then
    ok "the library is loaded into the interpreter"
else
    not_ok "the library is loaded into the interpreter"
    echo "# probe exit status $probe_rc"
    note <"$tmp/probe.out"
fi

if [ "${REAL_SKIP_PROBE:-0}" = 1 ]; then
    ok "hakmem_version visible in the interpreter # SKIP REAL_SKIP_PROBE=1"
else
    probe_rc=0
    LD_PRELOAD=$lib "$python" -c 'import ctypes; ctypes.CDLL(None).hakmem_version' \
        >"$tmp/version.out" 2>&1 || probe_rc=$?
    if [ "$probe_rc" -eq 0 ]; then
        ok "hakmem_version visible in the interpreter"
    else
        not_ok "hakmem_version visible in the interpreter"
        tail -n 5 "$tmp/version.out" | note
    fi
fi

# TAP already says what failed; the status is for callers that run this
# script directly rather than through automake's TAP driver.
[ "$failed" -eq 0 ]
