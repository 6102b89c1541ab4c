#!/bin/bash
# no-leftovers.sh: run a command (the test suite, a package build) and fail
# if any process it started is still running when it has ended.
#
# usage: tests/tools/no-leftovers.sh COMMAND [ARGUMENT]...
#
# The command runs with HKTEST_LEFTOVER_MARK=<a value unique to this run>
# in its environment; every process it starts inherits the variable (a test
# that empties its environment, env -i, would escape: none does). When the
# command has ended, every process of this user whose environment holds
# that exact value (/proc/PID/environ) is a leftover: each is listed with
# its PID, parent, age and command line, then ended by its PID (TERM, then
# KILL), and the script exits 1. Otherwise it exits with the command's
# status. The name has no HAKMEM_ prefix: the library would take it for a
# misspelt knob.
#
# CI (.ci/run) runs tests/run-all.sh and packaging/build-packages.sh
# through it.

set -u

if [ $# -eq 0 ]; then
    echo "usage: no-leftovers.sh COMMAND [ARGUMENT]..." >&2
    exit 2
fi

mark="$$-$(date +%s%N)-${RANDOM}"

# leftovers: the PIDs of the processes whose environment has the mark.
leftovers() {
    local d pid
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        if [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ]; then continue; fi
        # A process that exits meanwhile, or is not ours, cannot be read.
        if { tr '\0' '\n' <"$d/environ"; } 2>/dev/null | grep -qxF "HKTEST_LEFTOVER_MARK=$mark"; then
            echo "$pid"
        fi
    done
}

describe() {
    local pid=$1 stat ppid cmd
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
    # The fields after the command name, which may hold spaces and parens.
    stat=${stat##*) }
    ppid=$(echo "$stat" | cut -d' ' -f2)
    cmd=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)
    echo "no-leftovers.sh: still running: pid $pid (parent $ppid, state $(echo "$stat" | cut -d' ' -f1)): ${cmd:-[$(cat "/proc/$pid/comm" 2>/dev/null)]}"
}

HKTEST_LEFTOVER_MARK=$mark "$@"
rc=$?

left=$(leftovers)
if [ -z "$left" ]; then
    echo "no-leftovers.sh: '$*' ended with status $rc and left no process running"
    exit "$rc"
fi
for pid in $left; do
    describe "$pid"
done
# Ended by their PIDs, so that CI does not hang on them.
for pid in $left; do
    kill -TERM "$pid" 2>/dev/null
done
for _ in 1 2 3 4 5 6 7 8 9 10; do
    still=
    for pid in $left; do
        kill -0 "$pid" 2>/dev/null && still="$still $pid"
    done
    [ -n "$still" ] || break
    sleep 0.5
done
for pid in ${still:-}; do
    kill -KILL "$pid" 2>/dev/null
done
echo "no-leftovers.sh: FAIL: '$*' (status $rc) left $(echo "$left" | wc -w) process(es) running; ended them"
exit 1
