#!/bin/bash
# The statistics report reaches the user (automake TAP test; issue 12,
# findings 3, 4 and 5).
#
#  - `hakmem-run --stats ls /` shows the report, though ls closes stderr at
#    exit, and so do cat and sort; a program that closes every descriptor
#    and opens a file under the number hakmem kept gets no report in that
#    file; and a forked child that closes its standard streams, as a
#    daemon does, keeps no duplicate of them (that would hold a pipeline's
#    pipe open).
#  - HAKMEM_STATS_FILE is read at start-up: a program that rewrites its
#    environment (a process title) still reports to the file it was given.
#  - The file is appended to, never truncated; a symbolic link is not
#    followed (the target is left alone, and stderr says why); %p is the
#    process ID; 20 processes sharing a file leave 20 whole reports; a FIFO
#    that no process reads does not block the exit; /dev/stdout appends to
#    what standard output is (`>> app.log`), even after the program closed
#    it; a report that cannot be written (/dev/full) is said on stderr.
#  - malloc_stats() in a thread with a cancellation pending writes the
#    whole report (glibc's is not a cancellation point either).

# shellcheck source=tests/user/lib.sh
. "$(dirname "$0")/lib.sh"

has_report() {
    grep -q "^hakmem $PACKAGE_VERSION statistics, pid [0-9]*\$" "$1" && grep -q '^large blocks: ' "$1"
}

reports() {
    grep -c "^hakmem $PACKAGE_VERSION statistics, pid " "$1" 2>/dev/null || true
}

# --- programs that close stderr -----------------------------------------
for cmd in "ls /" "cat /etc/hostname" "sort /etc/hostname"; do
    # shellcheck disable=SC2086 # the command's words
    command -v ${cmd%% *} >/dev/null 2>&1 || { problem "${cmd%% *} not installed"; continue; }
    rc=0
    # shellcheck disable=SC2086
    "$run" --stats $cmd >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
    [ "$rc" -eq 0 ] || problem "hakmem-run --stats $cmd: exit status $rc"
    has_report "$tmp/err" || { problem "hakmem-run --stats $cmd: no report on stderr"; show "$tmp/err"; }
    grep -q "^hakmem $PACKAGE_VERSION statistics" "$tmp/out" && problem "$cmd: the report went to stdout"
done
verdict "hakmem-run --stats ls / (and cat, sort, which close stderr at exit) shows the report"

rc=0
LD_PRELOAD=$lib HAKMEM_STATS=1 "$probe" close-stderr >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || problem "probe close-stderr: exit status $rc"
has_report "$tmp/err" || { problem "no report after fclose(stderr)"; show "$tmp/out" "$tmp/err"; }
[ "$(reports "$tmp/err")" -eq 1 ] || problem "$(reports "$tmp/err") reports, expected 1"
verdict "a program that closes stderr: the report goes where stderr was at start-up"

: >"$tmp/trap"
rc=0
LD_PRELOAD=$lib HAKMEM_STATS=1 "$probe" close-all "$tmp/trap" >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || { problem "probe close-all: exit status $rc"; show "$tmp/out"; }
[ ! -s "$tmp/trap" ] || { problem "the report went into a file the program opened"; show "$tmp/trap"; }
verdict "a program that closes every descriptor and reuses the numbers gets no report in its files"

# Against the same child without the report: what this test inherited
# stays open in both.
rc=0
LD_PRELOAD=$lib "$probe" fork-closed >"$tmp/base" 2>"$tmp/err" || rc=$?
LD_PRELOAD=$lib HAKMEM_STATS=1 "$probe" fork-closed >"$tmp/out" 2>>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || { problem "probe fork-closed: exit status $rc"; show "$tmp/out" "$tmp/err"; }
grep -q '^open:' "$tmp/base" || problem "probe fork-closed printed nothing"
cmp -s "$tmp/base" "$tmp/out" ||
    problem "a forked child that closed its standard streams has more open with HAKMEM_STATS=1: $(cat "$tmp/out"), without: $(cat "$tmp/base")"
verdict "a forked child that closes its standard streams (a daemon) holds no duplicate of them"

# --- HAKMEM_STATS_FILE ----------------------------------------------------
mkdir "$tmp/title"
rc=0
LD_PRELOAD=$lib HAKMEM_STATS=1 HAKMEM_STATS_FILE=$tmp/title/report.txt "$probe" retitle >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || { problem "probe retitle: exit status $rc"; show "$tmp/out"; }
has_report "$tmp/title/report.txt" 2>/dev/null || problem "no report in the file named at start-up"
[ ! -e "$tmp/title/Xeport.txt" ] || problem "the report went to the file named by the rewritten environment"
verdict "HAKMEM_STATS_FILE is read at start-up, not from the environment the program rewrote"

printf 'earlier line\n' >"$tmp/append.txt"
for _ in 1 2; do
    LD_PRELOAD=$lib HAKMEM_STATS=1 HAKMEM_STATS_FILE=$tmp/append.txt /bin/true
done
[ "$(head -n 1 "$tmp/append.txt")" = "earlier line" ] || problem "the file's earlier content is gone"
[ "$(reports "$tmp/append.txt")" -eq 2 ] || problem "$(reports "$tmp/append.txt") reports after two runs, expected 2"
verdict "the report is appended to the file"

printf 'precious\n' >"$tmp/target"
ln -s "$tmp/target" "$tmp/link"
rc=0
LD_PRELOAD=$lib HAKMEM_STATS=1 HAKMEM_STATS_FILE=$tmp/link /bin/true 2>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || problem "exit status $rc"
[ "$(cat "$tmp/target")" = precious ] || problem "the symbolic link's target was written: $(head -c 200 "$tmp/target")"
grep -q "^hakmem: cannot open HAKMEM_STATS_FILE $tmp/link: .*; writing the statistics to stderr\$" "$tmp/err" ||
    { problem "no message naming the link"; show "$tmp/err"; }
has_report "$tmp/err" || problem "the report is not on stderr instead"
verdict "a symbolic link is not followed: the target stays, the report goes to stderr with a message"

LD_PRELOAD=$lib HAKMEM_STATS=1 HAKMEM_STATS_FILE=$tmp/pid-%p.txt sh -c 'echo $$ >"$1"; exec /bin/true' sh "$tmp/pid" 2>"$tmp/err"
pid=$(cat "$tmp/pid")
has_report "$tmp/pid-$pid.txt" 2>/dev/null || { problem "no report in pid-$pid.txt"; problem "files: $(cd "$tmp" && echo pid-*)"; }
LD_PRELOAD=$lib HAKMEM_STATS=1 HAKMEM_STATS_FILE=$tmp/percent-%%p.txt /bin/true
has_report "$tmp/percent-%p.txt" 2>/dev/null || problem "%%p did not give a literal %p: $(cd "$tmp" && echo percent-*)"
verdict "%p in HAKMEM_STATS_FILE is the process ID, %% a percent sign"

pids=()
for _ in $(seq 20); do
    LD_PRELOAD=$lib HAKMEM_STATS=1 HAKMEM_STATS_FILE=$tmp/shared.txt "$probe" close-stderr &
    pids+=($!)
done
for p in "${pids[@]}"; do
    wait "$p" || problem "a process sharing the file failed"
done
[ "$(reports "$tmp/shared.txt")" -eq 20 ] || problem "$(reports "$tmp/shared.txt") reports from 20 processes"
[ "$(grep -c '^large blocks: ' "$tmp/shared.txt")" -eq 20 ] || problem "not every report is whole"
# Each report is one write: its lines stay together.
awk '/statistics, pid/ { if (open) bad = 1; open = 1 } /^large blocks: / { if (!open) bad = 1; open = 0 }
    END { exit bad || open }' "$tmp/shared.txt" || problem "the reports are interleaved"
verdict "20 processes appending to one file leave 20 whole reports"

mkfifo "$tmp/fifo"
rc=0
# Bounded, so that a regression fails instead of hanging the suite.
timeout 120 env LD_PRELOAD="$lib" HAKMEM_STATS=1 HAKMEM_STATS_FILE="$tmp/fifo" /bin/true 2>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || problem "exit status $rc (124: blocked on the FIFO)"
grep -q "^hakmem: cannot open HAKMEM_STATS_FILE $tmp/fifo: a FIFO that no process reads; writing the statistics to stderr\$" "$tmp/err" ||
    { problem "no message about the FIFO"; show "$tmp/err"; }
verdict "a FIFO that no process reads does not block the exit"

printf 'log line\n' >"$tmp/app.log"
rc=0
LD_PRELOAD=$lib HAKMEM_STATS=1 HAKMEM_STATS_FILE=/dev/stdout ls / >>"$tmp/app.log" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || problem "exit status $rc"
[ "$(head -n 1 "$tmp/app.log")" = "log line" ] || problem "the log was truncated"
grep -qx bin "$tmp/app.log" || grep -qx usr "$tmp/app.log" || problem "ls's output is not in the log"
has_report "$tmp/app.log" || { problem "no report in the log"; show "$tmp/err"; }
[ ! -s "$tmp/err" ] || { problem "stderr not empty"; show "$tmp/err"; }
verdict "/dev/stdout with >> app.log: the report is appended to the log, after ls closed stdout"

rc=0
LD_PRELOAD=$lib HAKMEM_STATS=1 HAKMEM_STATS_FILE=/dev/full /bin/true 2>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || problem "exit status $rc"
grep -q '^hakmem: cannot write the statistics report to /dev/full: ' "$tmp/err" ||
    { problem "no message about the failed write"; show "$tmp/err"; }
verdict "a report that cannot be written (/dev/full) is said on stderr"

# --- malloc_stats and cancellation ----------------------------------------
rc=0
LD_PRELOAD=$lib "$probe" cancel >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || problem "probe cancel: exit status $rc"
grep -qx cancelled "$tmp/out" || problem "the thread was not cancelled afterwards: $(cat "$tmp/out")"
has_report "$tmp/err" || { problem "malloc_stats() lost its output to the pending cancellation"; show "$tmp/err"; }
verdict "malloc_stats() is not a cancellation point: the whole report, then the cancellation"

finish
