#!/bin/bash
# Misuse test driver (automake TAP test), also run by tests/integrity.
#
# usage: run.sh [CASES_DIR]   (default: the directory of this script)
#
# Runs every program listed in CASES_DIR/cases.txt as its own process with
# hakmem preloaded and checks how it ended: killed by the expected signal,
# with exactly one line on stderr matching the expected pattern; or, where
# the signal column says EXIT0, exited with status 0 and silent (an attack
# the allocator makes harmless).  A program that ends any other way has
# shown that a misuse went undetected or was reported badly.
#
# Environment:
#   MISUSE_BINDIR   directory of the built programs (default: CASES_DIR
#                   relative to the current directory, e.g. ./tests/misuse)
#   HAKMEM_LIB      library to preload (default ./.libs/libhakmem.so.0);
#                   "none" runs without preloading, for working on the
#                   driver itself against glibc (every case then fails)
#   MISUSE_TIMEOUT  seconds one program may run (default 30)
#   HK_TEST_EXEC    command that runs a program built for another
#                   architecture (.ci/cross: qemu-user), empty natively
#   HK_SKIP_CASES   names of cases that cannot run there, reported as SKIP
#                   (.ci/cross prints why); empty natively

set -euo pipefail

here=$(cd "${1:-$(dirname "$0")}" && pwd)
bindir=${MISUSE_BINDIR:-./tests/$(basename "$here")}
lib=${HAKMEM_LIB:-./.libs/libhakmem.so.0}
limit=${MISUSE_TIMEOUT:-30}
read -r -a target_exec <<<"${HK_TEST_EXEC:-}"
read -r -a skip_cases <<<"${HK_SKIP_CASES:-}"
cases_file=$here/cases.txt

bail() {
    echo "Bail out! $*"
    exit 1
}

preload=()
if [ "$lib" != none ]; then
    [ -f "$lib" ] || bail "hakmem library $lib not found (set HAKMEM_LIB)"
    # The children may run from elsewhere than our cwd, and ld.so splits
    # LD_PRELOAD at spaces and colons, so pass one clean absolute path.
    lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")
    case $lib in
        *[[:space:]:]*) bail "library path '$lib' contains a space or colon, which LD_PRELOAD cannot carry" ;;
    esac
    preload=("LD_PRELOAD=$lib")
fi

[ -r "$cases_file" ] || bail "cannot read $cases_file"
[ -d "$bindir" ] || bail "MISUSE_BINDIR $bindir is not a directory"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-misuse.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# A library that ld.so refuses would make every case fail with a confusing
# extra stderr line; one clear bail-out is more useful.
# Under an emulator the host's `true` cannot load the target's library;
# there a bad library shows in every case's stderr instead.
if [ ${#target_exec[@]} -gt 0 ]; then
    echo "# no preload preflight: programs run through ${target_exec[*]}"
elif [ ${#preload[@]} -gt 0 ]; then
    if ! env "${preload[@]}" true 2>"$tmp/preflight" || [ -s "$tmp/preflight" ]; then
        awk '{ print "# " $0 }' "$tmp/preflight"
        bail "$lib cannot be preloaded into a trivial program"
    fi
fi

# The programs abort on purpose; core files would only litter the tree.
ulimit -c 0 2>/dev/null || true

names=() signals=() patterns=()
while read -r name sig pattern; do
    case $name in '' | '#'*) continue ;; esac
    [ -n "$pattern" ] || bail "cases.txt: no pattern for $name"
    names+=("$name")
    signals+=("$sig")
    patterns+=("$pattern")
done <"$cases_file"
[ ${#names[@]} -gt 0 ] || bail "cases.txt lists no cases"

echo "1..$((${#names[@]} + 1))"
n=0
failed=0

# A program added without a row in cases.txt would otherwise never run.
n=$((n + 1))
shopt -s nullglob
sources=("$here"/*.c)
shopt -u nullglob
if [ ${#sources[@]} -eq 0 ]; then
    echo "ok $n - every program has a case # SKIP no sources next to $0"
else
    missing=()
    for src in "${sources[@]}"; do
        base=$(basename "$src" .c)
        found=no
        for name in "${names[@]}"; do
            [ "$name" = "$base" ] && found=yes && break
        done
        [ $found = yes ] || missing+=("$base")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "ok $n - every program has a case"
    else
        echo "not ok $n - every program has a case"
        failed=$((failed + 1))
        echo "# no row in cases.txt for: ${missing[*]}"
    fi
fi

# Describes how a process ended, from the status bash reports for it.
describe_status() {
    local rc=$1
    if [ "$rc" -eq 124 ]; then
        echo "timed out after ${limit}s"
    elif [ "$rc" -gt 128 ]; then
        echo "was killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo "?$((rc - 128))")"
    else
        echo "exited with status $rc"
    fi
}

for i in "${!names[@]}"; do
    n=$((n + 1))
    name=${names[$i]}
    want_sig=${signals[$i]}
    pattern=${patterns[$i]}
    bin=$bindir/$name
    err=$tmp/$name.stderr

    for skip in "${skip_cases[@]}"; do
        if [ "$skip" = "$name" ]; then
            echo "ok $n - $name # SKIP listed in HK_SKIP_CASES"
            continue 2
        fi
    done

    if [ ! -x "$bin" ]; then
        echo "not ok $n - $name"
        echo "# $bin is missing or not executable"
        failed=$((failed + 1))
        continue
    fi

    # An inherited LD_PRELOAD (another allocator, a sanitizer) and a
    # HAKMEM_INVALID_FREE that relaxes the abort would both change the
    # outcome under test, so the child gets neither.
    # The braces' own stderr goes to /dev/null to keep bash's "Aborted"
    # job notice out of the log; the program's stderr is in $err.
    # timeout re-raises the child's signal, so $? still tells how it died.
    # ($? cannot tell a SIGABRT death from exit(134); nothing in hakmem or
    # in these programs exits with 134, so that ambiguity is accepted.)
    rc=0
    { timeout "$limit" env -u HAKMEM_INVALID_FREE -u LD_PRELOAD "${preload[@]}" "${target_exec[@]}" "$bin" \
        </dev/null >"$tmp/$name.stdout" 2>"$err"; } 2>/dev/null || rc=$?
    # qemu-user adds its own line when the program dies of a signal; it
    # is the emulator's, not the program's, so it is not counted.
    if [ ${#target_exec[@]} -gt 0 ]; then
        sed -i '/^qemu: uncaught target signal [0-9]* (.*) - core dumped$/d' "$err"
    fi

    problems=()
    got_sig=
    if [ "$rc" -gt 128 ] && [ "$rc" -ne 124 ]; then
        got_sig=$(kill -l $((rc - 128)) 2>/dev/null || true)
    fi
    lines=$(grep -c '' "$err" || true)
    matches=$(grep -Ec -- "$pattern" "$err" || true)
    if [ "$want_sig" = EXIT0 ]; then
        if [ "$rc" -ne 0 ]; then
            problems+=("expected exit status 0, but it $(describe_status "$rc")")
        fi
        if [ "$lines" -ne 0 ]; then
            problems+=("expected no output on stderr")
        fi
    elif [ "$got_sig" != "$want_sig" ]; then
        problems+=("expected death by SIG$want_sig, but it $(describe_status "$rc")")
    fi

    if [ "$want_sig" = EXIT0 ]; then
        :
    elif [ "$matches" -ne 1 ] || [ "$lines" -ne 1 ]; then
        problems+=("expected exactly one stderr line matching: $pattern; got $lines line(s), $matches matching")
    elif [ "$(tail -c 1 "$err" | od -An -tx1 | tr -d ' ')" != 0a ]; then
        problems+=("the stderr line does not end in a newline")
    fi
    if [ -s "$tmp/$name.stdout" ]; then
        problems+=("unexpected output on stdout")
    fi

    if [ ${#problems[@]} -eq 0 ]; then
        echo "ok $n - $name"
    else
        echo "not ok $n - $name"
        failed=$((failed + 1))
        for p in "${problems[@]}"; do
            echo "# $p"
        done
        if [ -s "$err" ]; then
            echo "# stderr was:"
            # awk ends every line, so a message without its newline
            # cannot swallow the next TAP line.
            head -n 20 "$err" | awk '{ print "#   " $0 }'
        fi
    fi
done

# TAP already says what failed; the status is for callers that run this
# script directly rather than through automake's TAP driver.
[ "$failed" -eq 0 ]
