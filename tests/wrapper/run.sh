#!/bin/bash
# hakmem-run test (automake TAP test).
#
# Runs the built wrapper on print-env (tests/wrapper/print-env.c), which
# prints the arguments, LD_PRELOAD and HAKMEM_* variables it gets and
# whether hakmem is loaded, then exits with the status it is given or
# raises the signal it is given. Checks --help and --version, every exit
# status of the wrapper's own, LD_PRELOAD handling, options against program
# arguments and --, every knob option and -e, that the values the wrapper
# accepts are those the library accepts, the warnings and the set-user-ID
# note, that the program keeps the PID, status and signal, --compare, and
# that the script behaves the same under every POSIX shell installed.
#
# Environment (set by `make check`):
#   HAKMEM_RUN       the built wrapper
#   HAKMEM_LIB       the built library (given to the wrapper as
#                    HAKMEM_RUN_LIBRARY)
#   HAKMEM_LIBDIR    the library directory substituted into the wrapper
#   PRINT_ENV        the built print-env
#   PACKAGE_VERSION  the version --version must print
#   PYTHON           interpreter for --compare and signal checks (python3)

set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
knobs_def=$top/src/knobs.def

bail() {
    echo "Bail out! $*"
    exit 1
}

for v in HAKMEM_RUN HAKMEM_LIB HAKMEM_LIBDIR PRINT_ENV PACKAGE_VERSION; do
    [ -n "${!v:-}" ] || bail "$v is not set (run through make check)"
done
[ -x "$HAKMEM_RUN" ] || bail "wrapper $HAKMEM_RUN not built"
[ -x "$PRINT_ENV" ] || bail "$PRINT_ENV not built"
[ -f "$HAKMEM_LIB" ] || bail "library $HAKMEM_LIB not built"
[ -r "$knobs_def" ] || bail "cannot read $knobs_def"
lib=$(cd "$(dirname "$HAKMEM_LIB")" && pwd)/$(basename "$HAKMEM_LIB")
run=$(cd "$(dirname "$HAKMEM_RUN")" && pwd)/$(basename "$HAKMEM_RUN")
penv=$(cd "$(dirname "$PRINT_ENV")" && pwd)/$(basename "$PRINT_ENV")

python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 || bail "$python not found; this test needs Python 3"
# The interpreter itself, not a launcher script (a pyenv shim) in front.
python=$("$python" -c 'import sys; print(sys.executable)') || bail "$python does not run"

libdir=$HAKMEM_LIBDIR

# A clean start: nothing preloaded, no HAKMEM_* variable inherited (our own
# settings included, which the program would otherwise see), and the
# wrapper pointed at the built library.
unset LD_PRELOAD
for v in $(compgen -e | grep '^HAKMEM_' || true); do
    unset "$v"
done
export HAKMEM_RUN_LIBRARY=$lib

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-run-test.XXXXXX") || bail "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
ulimit -c 0 2>/dev/null || true

# --- knobs.def ---------------------------------------------------------------
# shellcheck source=tests/docs/knobs-def.sh
. "$top/tests/docs/knobs-def.sh"
knobs_read "$knobs_def"

# A valid value other than the default, for each type (for an ENUM, the
# last of its words, given as the second argument).
sample_value() {
    case $1 in
        BOOL) echo 1 ;;
        SIZE) echo 3M ;;
        COUNT) echo 7 ;;
        MSEC) echo 250 ;;
        ENUM) echo "${2##* }" ;;
        PATH) echo "$tmp/sample-$3" ;;
    esac
}

# --- helpers -------------------------------------------------------------------
n=0
failed=0
problems=()

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

# wrap NAME ARG...: runs the wrapper; output in $tmp/NAME.out and .err,
# status in $rc. The braces keep bash's notice of a killed child out of
# the log.
wrap() {
    local name=$1
    shift
    rc=0
    { "$run" "$@" </dev/null >"$tmp/$name.out" 2>"$tmp/$name.err"; } 2>/dev/null || rc=$?
}

problem() {
    problems+=("$*")
}

show() {
    local f
    for f in "$@"; do
        [ -s "$f" ] || continue
        problem "$(basename "$f"):"
        while IFS= read -r line; do problem "  $line"; done < <(head -n 12 "$f")
    done
}

want_rc() {
    [ "$rc" -eq "$1" ] || { problem "$2: exit status $rc, expected $1"; show "$tmp/$3.out" "$tmp/$3.err"; }
}

# The value of VAR=... in a print-env output, or "<unset>".
seen() {
    local v
    v=$(grep -m1 "^$1=" "$2") || { echo "<unset>"; return; }
    printf '%s\n' "${v#*=}"
}

want_var() {
    local got
    got=$(seen "$1" "$tmp/$3.out")
    [ "$got" = "$2" ] || problem "$4: $1 is '$got', expected '$2'"
}

# Lines on stderr other than the ones expected (a warning or a note).
stderr_lines() {
    grep -c '' "$tmp/$1.err" || true
}

# --- --help and --version ------------------------------------------------------
for form in --help -h; do
    wrap help "$form"
    want_rc 0 "$form" help
    head -n 1 "$tmp/help.out" | grep -q '^Usage: hakmem-run \[OPTION\]\.\.\. \[--\] PROGRAM \[ARGUMENT\]\.\.\.$' ||
        problem "$form: the first line is not the usage line: $(head -n 1 "$tmp/help.out")"
    [ ! -s "$tmp/help.err" ] || problem "$form wrote to stderr"
    for i in "${!ids[@]}"; do
        grep -q "HAKMEM_${ids[$i]}=" "$tmp/help.out" || problem "$form does not name HAKMEM_${ids[$i]}"
    done
    verdict "$form prints the usage and every knob, status 0"
done

for form in --version -V; do
    wrap version "$form"
    want_rc 0 "$form" version
    [ "$(head -n 1 "$tmp/version.out")" = "hakmem-run (hakmem) $PACKAGE_VERSION" ] ||
        problem "$form: first line '$(head -n 1 "$tmp/version.out")', expected 'hakmem-run (hakmem) $PACKAGE_VERSION'"
    # The library's own version, asked of it, and the file the loader took.
    line=$(grep '^library: ' "$tmp/version.out")
    case $line in
        "library: $lib ("*"): hakmem $PACKAGE_VERSION") ;;
        *) problem "$form: '$line', expected 'library: $lib (FILE): hakmem $PACKAGE_VERSION'" ;;
    esac
    verdict "$form prints version $PACKAGE_VERSION and the library with the version it reports"
done

# Without HAKMEM_RUN_LIBRARY: the library directory make substituted.
rc=0
env -u HAKMEM_RUN_LIBRARY "$run" --version >"$tmp/libdir.out" 2>&1 || rc=$?
want_rc 0 "--version without HAKMEM_RUN_LIBRARY" libdir
# A libdir the loader searches by itself (a distribution's) gives the
# SONAME, any other (/usr/local/lib, the default) the path: Makefile.am.
case $libdir in
    /usr/lib/*/* | /lib/*/*) default=$libdir/libhakmem.so.0 ;;
    /lib | /lib64 | /lib32 | /libx32 | /usr/lib | /usr/lib64 | /usr/lib32 | /usr/libx32 | \
        /lib/*-linux-* | /usr/lib/*-linux-*) default=libhakmem.so.0 ;;
    *) default=$libdir/libhakmem.so.0 ;;
esac
grep -qxF "hkr_default_library='$default'" "$run" || problem "the default library is not '$default'"
line=$(grep '^library: ' "$tmp/libdir.out")
case $line in
    "library: $default: not found" | "library: $default ("*"): hakmem "*) ;;
    *) problem "expected 'library: $default...', got: '$line'" ;;
esac
if grep -nE '@[A-Za-z_]+@' "$run" >"$tmp/subst"; then
    problem "unsubstituted placeholders in $run:"
    show "$tmp/subst"
fi
verdict "the default library is the SONAME or the path in libdir as libdir calls for, nothing left unsubstituted"

# --- running a program -----------------------------------------------------------
wrap plain "$penv"
want_rc 0 "plain run" plain
want_var LD_PRELOAD "$lib" plain "plain run"
grep -qx "hakmem=loaded $PACKAGE_VERSION" "$tmp/plain.out" || problem "hakmem is not loaded in the program: $(grep '^hakmem=' "$tmp/plain.out")"
[ ! -s "$tmp/plain.err" ] || { problem "stderr not empty"; show "$tmp/plain.err"; }
if grep '^HAKMEM_' "$tmp/plain.out" | grep -qv '^HAKMEM_RUN_LIBRARY='; then
    problem "knobs set without options: $(grep '^HAKMEM_' "$tmp/plain.out" | tr '\n' ' ')"
fi
verdict "the program runs with hakmem loaded, LD_PRELOAD is the library, no knob set"

# The library goes first; what was there stays, in order, separators kept.
# libm and libdl are in every glibc system, and harmless to preload.
for existing in "libm.so.6" "libm.so.6:libdl.so.2" "libm.so.6 libdl.so.2"; do
    rc=0
    LD_PRELOAD=$existing "$run" "$penv" >"$tmp/prepend.out" 2>"$tmp/prepend.err" || rc=$?
    want_rc 0 "LD_PRELOAD='$existing'" prepend
    want_var LD_PRELOAD "$lib:$existing" prepend "LD_PRELOAD='$existing'"
    [ ! -s "$tmp/prepend.err" ] || { problem "LD_PRELOAD='$existing': stderr not empty"; show "$tmp/prepend.err"; }
done
rc=0
LD_PRELOAD='' "$run" "$penv" >"$tmp/prepend.out" 2>"$tmp/prepend.err" || rc=$?
want_var LD_PRELOAD "$lib" prepend "empty LD_PRELOAD"
verdict "the library is prepended to LD_PRELOAD, which is otherwise kept"

# A relative HAKMEM_RUN_LIBRARY becomes absolute: the program may chdir.
rc=0
(cd "$(dirname "$lib")" && HAKMEM_RUN_LIBRARY=$(basename "$lib") "$run" "$penv") >"$tmp/rel.out" 2>"$tmp/rel.err" || rc=$?
want_rc 0 "relative HAKMEM_RUN_LIBRARY" rel
want_var LD_PRELOAD "$lib" rel "relative HAKMEM_RUN_LIBRARY"
verdict "a relative HAKMEM_RUN_LIBRARY is made absolute"

# --- the program's status, signals and PID --------------------------------------
for status in 0 1 42 125 126 127 255; do
    wrap status "$penv" "$status"
    [ "$rc" -eq "$status" ] || problem "program exit $status came back as $rc"
done
verdict "the program's exit status passes through"

# Python tells a death by signal (negative returncode) from an exit status.
for sig in 15 6 9; do
    got=$("$python" -c '
import subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(p.returncode)' "$run" "$penv" 0 "$sig") || got="python failed"
    [ "$got" = "-$sig" ] || problem "program killed by signal $sig: returncode $got, expected -$sig"
done
verdict "a death by signal passes through as that signal"

"$run" "$penv" >"$tmp/pid.out" 2>"$tmp/pid.err" </dev/null &
pid=$!
wait "$pid"
[ "$(seen pid "$tmp/pid.out")" = "$pid" ] || problem "the wrapper's PID was $pid, the program's $(seen pid "$tmp/pid.out")"
verdict "the program keeps the wrapper's PID (exec)"

# --- options, arguments and -- --------------------------------------------------
wrap args "$penv" 0 0 --stats -e STATS=1 -- --verbose
want_rc 0 "options after the program" args
want_var arg3 --stats args "after the program"
want_var arg4 -e args "after the program"
want_var arg5 STATS=1 args "after the program"
want_var arg6 -- args "after the program"
want_var arg7 --verbose args "after the program"
want_var HAKMEM_STATS "<unset>" args "after the program"
want_var HAKMEM_VERBOSE "<unset>" args "after the program"
verdict "options after the program name are the program's"

mkdir -p "$tmp/bin"
cp "$penv" "$tmp/bin/--stats"
rc=0
PATH=$tmp/bin:$PATH "$run" --verbose -- --stats 0 0 --mem-diet >"$tmp/dd.out" 2>"$tmp/dd.err" </dev/null || rc=$?
want_rc 0 "a program named --stats after --" dd
want_var arg3 --mem-diet dd "after --"
want_var HAKMEM_VERBOSE 1 dd "--verbose before --"
want_var HAKMEM_STATS "<unset>" dd "a program named --stats after --"
want_var HAKMEM_TINY_MEM_DIET "<unset>" dd "--mem-diet after the program"
grep -qx "hakmem=loaded $PACKAGE_VERSION" "$tmp/dd.out" || problem "the program named --stats did not run under hakmem"
wrap dd2 -- "$penv" 0 0 -V
want_rc 0 "-- then the program" dd2
want_var arg3 -V dd2 "after -- and the program"
verdict "-- ends the options: a program named --stats runs, options before -- apply"

# --- every knob option -------------------------------------------------------------
# Each option alone must set its variable, and nothing else; valued options
# in both forms, --opt=VALUE and --opt VALUE.
for i in "${!ids[@]}"; do
    id=${ids[$i]} type=${types[$i]} opt=${opts[$i]}
    [ -n "$opt" ] || continue
    if [ "$type" = BOOL ]; then
        case $opt in --no-*) want=0 ;; *) want=1 ;; esac
        forms=("$opt")
        wanted=("$want")
    else
        v1=$(sample_value "$type" "${words[$i]}" a)
        v2=$(sample_value "$type" "${words[$i]}" b)
        forms=("$opt=$v1" "$opt $v2")
        wanted=("$v1" "$v2")
    fi
    for j in "${!forms[@]}"; do
        # shellcheck disable=SC2086 # "--opt VALUE" is meant to split
        wrap knob ${forms[$j]} "$penv"
        want_rc 0 "${forms[$j]}" knob
        want_var "HAKMEM_$id" "${wanted[$j]}" knob "${forms[$j]}"
        set_vars=$(grep -oE '^HAKMEM_[A-Z0-9_]+' "$tmp/knob.out" | grep -vx HAKMEM_RUN_LIBRARY | grep -vx "HAKMEM_$id" | tr '\n' ' ')
        # --stats-file also turns the report on.
        [ "$id" != STATS_FILE ] || set_vars=${set_vars/HAKMEM_STATS /}
        [ -z "$set_vars" ] || problem "${forms[$j]} also set: $set_vars"
    done
    verdict "$opt sets HAKMEM_$id"
done

wrap implied --stats-file="$tmp/implied.txt" "$penv"
want_var HAKMEM_STATS 1 implied "--stats-file alone"
[ -s "$tmp/implied.txt" ] || problem "--stats-file alone: no report in the file"
grep -q "^hakmem $PACKAGE_VERSION statistics" "$tmp/implied.txt" 2>/dev/null || problem "--stats-file: the file does not hold the report"
wrap implied -e STATS=0 --stats-file="$tmp/implied2.txt" "$penv"
want_var HAKMEM_STATS 0 implied "-e STATS=0 --stats-file"
wrap implied --stats-file "$tmp/implied3.txt" -e hakmem_stats=no "$penv"
want_var HAKMEM_STATS no implied "--stats-file -e hakmem_stats=no"
verdict "--stats-file writes the report there and turns it on, unless -e says otherwise"

wrap later --purge-delay=5 -e PURGE_DELAY=7 --large-cache 1M --large-cache=2M "$penv"
want_var HAKMEM_PURGE_DELAY 7 later "--purge-delay=5 -e PURGE_DELAY=7"
want_var HAKMEM_LARGE_CACHE 2M later "--large-cache 1M --large-cache=2M"
rc=0
HAKMEM_LARGE_CACHE=9M HAKMEM_PURGE_DELAY=3 "$run" --purge-delay=4 "$penv" >"$tmp/inherit.out" 2>"$tmp/inherit.err" || rc=$?
want_var HAKMEM_LARGE_CACHE 9M inherit "inherited HAKMEM_LARGE_CACHE"
want_var HAKMEM_PURGE_DELAY 4 inherit "inherited HAKMEM_PURGE_DELAY, then --purge-delay=4"
verdict "the last setting wins; inherited knobs pass unless an option sets them"

# --- -e -----------------------------------------------------------------------------
for i in "${!ids[@]}"; do
    id=${ids[$i]}
    v=$(sample_value "${types[$i]}" "${words[$i]}" e)
    lower=$(printf '%s' "$id" | tr '[:upper:]' '[:lower:]')
    for form in "-e $id=$v" "-e HAKMEM_$id=$v" "--env $lower=$v" "--env=hakmem_$lower=$v" "-e$id=$v"; do
        # shellcheck disable=SC2086 # "-e NAME=VALUE" is meant to split
        wrap env $form "$penv"
        want_rc 0 "$form" env
        want_var "HAKMEM_$id" "$v" env "$form"
    done
done
verdict "-e and --env set every knob, with or without HAKMEM_, in any case"

wrap unknown -e NO_SUCH_KNOB=1 "$penv"
want_rc 2 "-e NO_SUCH_KNOB=1" unknown
grep -q "^hakmem-run: unknown knob 'NO_SUCH_KNOB'" "$tmp/unknown.err" || { problem "no clear message for an unknown knob"; show "$tmp/unknown.err"; }
[ ! -s "$tmp/unknown.out" ] || problem "the program ran despite the unknown knob"
wrap unknown -e HAKMEM_RUN_LIBRARY=/x "$penv"
want_rc 2 "-e HAKMEM_RUN_LIBRARY=/x (not a knob)" unknown
verdict "-e rejects an unknown knob, status 2"

# --- usage errors ---------------------------------------------------------------------
usage_cases=(
    "no program|"
    "only options|--stats"
    "unknown option|--no-such-option $penv"
    "unknown short option|-x $penv"
    "switch with a value|--stats=1 $penv"
    "--help with a value|--help=1"
    "valued option without a value|--large-cache"
    "invalid size|--large-cache=12X $penv"
    "invalid milliseconds|--purge-delay=-2 $penv"
    "invalid keyword|--invalid-free=ignore $penv"
    "empty file name|--stats-file= $penv"
    "-e without =|-e STATS $penv"
    "-e without an argument|-e"
    "-e with an invalid switch value|-e STATS=maybe $penv"
    "--compare=0|--compare=0 $penv"
    "--compare=x|--compare=x $penv"
    "--compare-show-output alone|--compare-show-output $penv"
)
for c in "${usage_cases[@]}"; do
    what=${c%%|*}
    # shellcheck disable=SC2086 # the arguments are meant to split
    wrap usage ${c#*|}
    want_rc 2 "$what" usage
    [ ! -s "$tmp/usage.out" ] || problem "$what: something ran (stdout not empty)"
    grep -q '^hakmem-run: ' "$tmp/usage.err" || problem "$what: no 'hakmem-run: ' message"
    grep -qx "Try 'hakmem-run --help' for more information." "$tmp/usage.err" || problem "$what: no pointer to --help"
done
verdict "usage errors: status 2, a message and a pointer to --help, nothing run"

# --- program and library problems --------------------------------------------------------
wrap nf "$tmp/no/such/program"
want_rc 127 "a missing program path" nf
grep -q "^hakmem-run: program not found: $tmp/no/such/program" "$tmp/nf.err" || { problem "no clear message for a missing path"; show "$tmp/nf.err"; }
rc=0
PATH=$tmp/bin "$run" no-such-program-here >"$tmp/nf.out" 2>"$tmp/nf.err" </dev/null || rc=$?
want_rc 127 "a program missing from PATH" nf
grep -q "^hakmem-run: program not found: 'no-such-program-here' is not in PATH" "$tmp/nf.err" || { problem "no clear message for a name not in PATH"; show "$tmp/nf.err"; }
verdict "a missing program: status 127"

printf 'not a program\n' >"$tmp/bin/plain-file"
chmod 644 "$tmp/bin/plain-file"
wrap nx "$tmp/bin/plain-file"
want_rc 126 "a file without execute permission" nx
grep -q "^hakmem-run: cannot execute $tmp/bin/plain-file" "$tmp/nx.err" || { problem "no clear message for a non-executable file"; show "$tmp/nx.err"; }
wrap nx "$tmp/bin"
want_rc 126 "a directory" nx
rc=0
PATH=$tmp/bin "$run" plain-file >"$tmp/nx.out" 2>"$tmp/nx.err" </dev/null || rc=$?
want_rc 126 "a non-executable file found in PATH" nx
# An executable later in PATH wins over a non-executable one before it.
mkdir -p "$tmp/bin2"
cp "$penv" "$tmp/bin2/plain-file"
rc=0
PATH=$tmp/bin:$tmp/bin2 "$run" plain-file 3 >"$tmp/nx.out" 2>"$tmp/nx.err" </dev/null || rc=$?
want_rc 3 "an executable later in PATH" nx
verdict "a program that is not executable: status 126"

rc=0
HAKMEM_RUN_LIBRARY=/nonexistent/libhakmem.so.0 "$run" "$penv" >"$tmp/nolib.out" 2>"$tmp/nolib.err" </dev/null || rc=$?
want_rc 125 "HAKMEM_RUN_LIBRARY=/nonexistent" nolib
grep -q '^hakmem-run: hakmem library not found: /nonexistent/libhakmem.so.0' "$tmp/nolib.err" || { problem "no clear message for a missing library"; show "$tmp/nolib.err"; }
[ ! -s "$tmp/nolib.out" ] || problem "the program ran without the library"
mkdir -p "$tmp/odd:dir"
ln -s "$lib" "$tmp/odd:dir/libhakmem.so.0"
rc=0
HAKMEM_RUN_LIBRARY=$tmp/odd:dir/libhakmem.so.0 "$run" "$penv" >"$tmp/nolib.out" 2>"$tmp/nolib.err" </dev/null || rc=$?
want_rc 125 "a library path with a colon" nolib
verdict "a missing or unusable library: status 125"

# --- warnings and notes ----------------------------------------------------------------------
# The check is on the names in LD_PRELOAD; the files need not exist (ld.so
# then complains too, about the wrapper's shell and the program).
# (Only names that cannot exist: a real libasan would abort the shell.)
for other in /nonexistent/libjemalloc.so.2 /nonexistent/libtcmalloc_minimal.so.4 \
    /nonexistent/libmimalloc.so.2 /nonexistent/libasan.so.8 \
    /nonexistent/libclang_rt.asan-x86_64.so; do
    rc=0
    LD_PRELOAD="libm.so.6:$other" "$run" "$penv" 5 >"$tmp/warn.out" 2>"$tmp/warn.err" </dev/null || rc=$?
    want_rc 5 "LD_PRELOAD with $other" warn
    count=$(grep -c '^hakmem-run: warning: ' "$tmp/warn.err" || true)
    [ "$count" -eq 1 ] || problem "LD_PRELOAD with $other: $count warning lines, expected 1"
    grep '^hakmem-run: warning: ' "$tmp/warn.err" | grep -qF "$other" || problem "LD_PRELOAD with $other: the warning does not name it"
    grep '^hakmem-run: warning: ' "$tmp/warn.err" | grep -qF "libm.so.6" && problem "LD_PRELOAD with $other: the warning names libm.so.6"
    want_var LD_PRELOAD "$lib:libm.so.6:$other" warn "LD_PRELOAD with $other"
done
verdict "another allocator or a sanitizer in LD_PRELOAD: one warning line, the run goes on"

cp "$penv" "$tmp/suid-print-env"
chmod 4755 "$tmp/suid-print-env"
cp "$penv" "$tmp/sgid-print-env"
chmod 2755 "$tmp/sgid-print-env"
for prog in suid-print-env sgid-print-env; do
    wrap suid "$tmp/$prog" 4
    want_rc 4 "$prog" suid
    count=$(grep -c '^hakmem-run: note: .*set-user-ID or set-group-ID.*LD_PRELOAD' "$tmp/suid.err" || true)
    if [ "$count" -ne 1 ] || [ "$(stderr_lines suid)" -ne 1 ]; then
        problem "$prog: expected one note line"
        show "$tmp/suid.err"
    fi
done
verdict "a set-user-ID or set-group-ID program: a note, and it runs"

# The note is true: run by someone else, the set-user-ID copy does not get
# hakmem. Needs root to switch users, and the files readable by nobody.
if [ "$(id -u)" -ne 0 ]; then
    skip "a set-user-ID program run without its owner's privileges has no hakmem" "not root"
elif ! command -v setpriv >/dev/null 2>&1; then
    skip "a set-user-ID program run without its owner's privileges has no hakmem" "setpriv missing"
else
    chmod 755 "$tmp"
    as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    # shellcheck disable=SC2016 # expanded by that sh
    if ! "${as_nobody[@]}" sh -c 'test -r "$1" && test -x "$2" && test -x "$3"' sh "$lib" "$run" "$tmp/suid-print-env" 2>/dev/null; then
        skip "a set-user-ID program run without its owner's privileges has no hakmem" "the build tree is not readable by nobody"
    else
        rc=0
        "${as_nobody[@]}" "$run" "$tmp/suid-print-env" >"$tmp/nobody.out" 2>"$tmp/nobody.err" </dev/null || rc=$?
        want_rc 0 "set-user-ID program run as nobody" nobody
        want_var secure 1 nobody "set-user-ID program run as nobody"
        want_var hakmem absent nobody "set-user-ID program run as nobody"
        grep -q '^hakmem-run: note: ' "$tmp/nobody.err" || problem "no note"
        verdict "a set-user-ID program run without its owner's privileges has no hakmem"
    fi
fi

# --- the wrapper checks values as the library parses them -------------------------------------
# For each value: the wrapper must take it (status 0) exactly when the
# library takes it (no "hakmem: ignoring" line when set directly).
value_cases=(
    "STATS 1" "STATS TRUE" "STATS yes" "STATS On" "STATS 0" "STATS off" "STATS No"
    "STATS 2" "STATS maybe" "STATS -1"
    "LARGE_CACHE 64M" "LARGE_CACHE 64MiB" "LARGE_CACHE 64mb" "LARGE_CACHE 12k"
    "LARGE_CACHE 4096" "LARGE_CACHE 1G" "LARGE_CACHE 8B" "LARGE_CACHE 0"
    "LARGE_CACHE 12X" "LARGE_CACHE M" "LARGE_CACHE -1" "LARGE_CACHE 1.5M"
    "LARGE_CACHE 64iB" "LARGE_CACHE 64MI" "LARGE_CACHE 64M+"
    "THREAD_CACHE_SLABS 4" "THREAD_CACHE_SLABS 0" "THREAD_CACHE_SLABS 007"
    "THREAD_CACHE_SLABS 1048576" "THREAD_CACHE_SLABS 1048577" "THREAD_CACHE_SLABS -1"
    "THREAD_CACHE_SLABS 4K" "THREAD_CACHE_SLABS x"
    "PURGE_DELAY 1000" "PURGE_DELAY 0" "PURGE_DELAY -1" "PURGE_DELAY -2"
    "PURGE_DELAY 2147483647" "PURGE_DELAY 2147483648" "PURGE_DELAY 1s"
    "INVALID_FREE abort" "INVALID_FREE warn" "INVALID_FREE WARN" "INVALID_FREE Abort"
    "INVALID_FREE ignore" "INVALID_FREE abort,warn"
    "STATS_FILE $tmp/v.txt"
)
checked=0
for c in "${value_cases[@]}"; do
    id=${c%% *} v=${c#* }
    rc=0
    env "HAKMEM_$id=$v" LD_PRELOAD="$lib" "$penv" >/dev/null 2>"$tmp/lib.err" </dev/null || rc=$?
    if grep -q "^hakmem: ignoring HAKMEM_$id=" "$tmp/lib.err"; then lib_takes=no; else lib_takes=yes; fi
    wrap val -e "$id=$v" "$penv"
    case $rc in 0) wrap_takes=yes ;; 2) wrap_takes=no ;; *) wrap_takes="status $rc" ;; esac
    [ "$lib_takes" = "$wrap_takes" ] || problem "HAKMEM_$id='$v': the library takes it: $lib_takes; the wrapper: $wrap_takes"
    checked=$((checked + 1))
done
verdict "the wrapper takes the $checked values the library takes, and refuses the others"

# --- --compare ----------------------------------------------------------------------------------
# A program that allocates: about a million small objects.
work='x = [bytes(64) for _ in range(300000)]; print("output of the run")'
wrap cmp --compare=2 "$python" -c "$work"
want_rc 0 "--compare=2" cmp
out=$tmp/cmp.out
grep -qE '^hakmem-run --compare: .*, median of 2 runs each$' "$out" || problem "no title line"
grep -qE '^ +wall \(s\) +CPU \(s\) +peak RSS \(KiB\) +exit status$' "$out" || problem "no header line"
grep -qE '^glibc +[0-9]+\.[0-9]{2} +[0-9]+\.[0-9]{2} +[1-9][0-9]* +0$' "$out" || problem "no glibc row with three figures and status 0"
grep -qE '^hakmem +[0-9]+\.[0-9]{2} +[0-9]+\.[0-9]{2} +[1-9][0-9]* +0$' "$out" || problem "no hakmem row with three figures and status 0"
grep -qE '^hakmem/glibc +([0-9]+\.[0-9]{2}|-) +([0-9]+\.[0-9]{2}|-) +[0-9]+\.[0-9]{2}$' "$out" || problem "no ratio row"
grep -q 'output of the run' "$out" "$tmp/cmp.err" && problem "the runs' output was not discarded"
[ "$(grep -c '' "$out")" -eq 5 ] || problem "the table is not 5 lines"
if [ "$rc" -ne 0 ] || [ ${#problems[@]} -ne 0 ]; then
    show "$out" "$tmp/cmp.err"
fi
verdict "--compare=2 on Python: a table with glibc, hakmem and their ratios"

wrap cmp --compare=1 --compare-show-output "$python" -c "$work"
want_rc 0 "--compare-show-output" cmp
[ "$(grep -c 'output of the run' "$tmp/cmp.out")" -eq 2 ] || problem "--compare-show-output: the two runs' output is not there"
verdict "--compare-show-output keeps the runs' output"

# The hakmem runs have hakmem and the knobs, the glibc runs neither: this
# program says so in its exit status, so the runs end differently (1).
probe='import ctypes, os, sys; sys.exit(3 if hasattr(ctypes.CDLL(None), "hakmem_version") and os.environ.get("HAKMEM_STATS") == "1" else 0)'
wrap cmpdiff --compare=2 --stats-file="$tmp/cmp-stats.txt" "$python" -c "$probe"
want_rc 1 "runs that end differently" cmpdiff
grep -qE '^glibc .* 0$' "$tmp/cmpdiff.out" || problem "the glibc runs were not plain glibc runs"
grep -qE '^hakmem .* 3$' "$tmp/cmpdiff.out" || problem "the hakmem runs did not have hakmem and HAKMEM_STATS=1"
grep -q '^hakmem-run: the runs did not all end the same way: glibc 0,0, hakmem 3,3$' "$tmp/cmpdiff.err" || { problem "no message naming the statuses"; show "$tmp/cmpdiff.err"; }
grep -q "^hakmem $PACKAGE_VERSION statistics" "$tmp/cmp-stats.txt" 2>/dev/null || problem "the hakmem runs did not write the statistics file"
verdict "--compare: hakmem and the knobs in the hakmem runs only; different endings give status 1"

rc=0
HAKMEM_RUN_TIME=/nonexistent/time "$run" --compare true >"$tmp/notime.out" 2>"$tmp/notime.err" </dev/null || rc=$?
want_rc 3 "--compare without GNU time" notime
grep -q "^hakmem-run: --compare needs GNU time" "$tmp/notime.err" || { problem "no clear message"; show "$tmp/notime.err"; }
verdict "--compare without GNU time: status 3"

# --- every shell -------------------------------------------------------------------------------
# The script is POSIX sh: it must do the same under every sh installed.
shells=()
for sh in sh dash bash "busybox sh" mksh posh ksh yash; do
    command -v "${sh%% *}" >/dev/null 2>&1 && shells+=("$sh")
done
reference=
for sh in "${shells[@]}"; do
    rc=0
    {
        # shellcheck disable=SC2086,SC2016 # "busybox sh" splits; '$x' is literal
        $sh "$run" --stats-file="$tmp/shell-stats" -e thread_cache_slabs=5 --invalid-free warn \
            --no-superslab "$penv" 7 0 "a b" '$x' 2>&1 | grep -v '^pid=' | LC_ALL=C sort
        echo "status ${PIPESTATUS[0]}"
        $sh "$run" --help
        $sh "$run" -e nope=1 true 2>&1
        echo "status $?"
        LD_PRELOAD=/x/libjemalloc.so.2 $sh "$run" "$tmp/suid-print-env" 2>&1 | grep '^hakmem-run'
    } >"$tmp/shell.out" 2>&1 || rc=$?
    if [ -z "$reference" ]; then
        reference=$sh
        cp "$tmp/shell.out" "$tmp/shell.ref"
    elif ! cmp -s "$tmp/shell.ref" "$tmp/shell.out"; then
        problem "$sh differs from $reference:"
        while IFS= read -r line; do problem "  $line"; done < <(diff "$tmp/shell.ref" "$tmp/shell.out" | head -n 20)
    fi
done
grep -qx 'status 7' "$tmp/shell.ref" || problem "the reference run under $reference did not end with status 7"
verdict "the same behaviour under every shell installed (${shells[*]})"

if command -v shellcheck >/dev/null 2>&1; then
    shellcheck -s sh "$run" >"$tmp/shellcheck.out" 2>&1 || { problem "shellcheck:"; show "$tmp/shellcheck.out"; }
    verdict "shellcheck -s sh finds nothing in the wrapper"
else
    skip "shellcheck -s sh finds nothing in the wrapper" "shellcheck not installed"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
