#!/bin/bash
# Real-program test (automake TAP test): Git under hakmem.
#
# Builds the same repository twice, once with plain git and once with
# hakmem preloaded into every git process (and the helpers git starts:
# pack-objects, index-pack, repack, ...): a generated tree of many files
# across directories, dozens of commits that modify, add, rename and
# delete files, a side branch merged back, then `git log --stat`,
# `git log -p`, `git gc`, a full repack and `git fsck`.  Author, committer
# and dates are fixed, so both repositories must have the same commit ids,
# the same object set and the same history output; gc and fsck must
# succeed without a word on stderr.  Git is a malloc user of another kind
# than an interpreter: many short processes, large hash tables of object
# ids, zlib streams and the delta search's sliding windows.
#
# Environment:
#   HAKMEM_LIB    library to preload (default ./.libs/libhakmem.so.0)
#   GIT           git binary (default git)
#   REAL_TIMEOUT  seconds one git command may take (default 300)

set -euo pipefail

lib=${HAKMEM_LIB:-./.libs/libhakmem.so.0}
git=${GIT:-git}
limit=${REAL_TIMEOUT:-300}
files=400
commits=40

# shellcheck source=tests/real/lib.sh
. "$(dirname "$0")/lib.sh"

# The reference run must really be on glibc, even when this script itself
# was started under a preloaded allocator.
unset LD_PRELOAD

hk_real_library
command -v "$git" >/dev/null 2>&1 || bail "$git not installed (Debian package: git)"
git=$(command -v "$git")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-git.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ulimit -c 0 2>/dev/null || true

# Nothing from the user's or the system's configuration may differ between
# the runs or leak into them; identity and time are fixed.
export GIT_CONFIG_NOSYSTEM=1
export HOME=$tmp/home
export XDG_CONFIG_HOME=$tmp/home/.config
export GIT_AUTHOR_NAME='Hakmem Test' GIT_AUTHOR_EMAIL=test@hakmem.invalid
export GIT_COMMITTER_NAME='Hakmem Test' GIT_COMMITTER_EMAIL=test@hakmem.invalid
export TZ=UTC LC_ALL=C
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
mkdir -p "$HOME"

# gen_files DIR COMMIT: rewrites a deterministic share of the tree for
# commit number COMMIT (0: creates it), with awk so that only git runs
# under the library.  Files hold lines of pseudo-random words, so that
# successive versions delta well against each other but not perfectly.
gen_files() {
    local d
    for ((d = 0; d < 23; d++)); do
        mkdir -p "$1/d$(printf %02d "$d")"
    done
    awk -v dir="$1" -v c="$2" -v files="$files" '
    function rnd() { seed = (seed * 1103515245 + 12345) % 2147483648; return int(seed / 16) }
    function word(   len, w, i) {
        len = 2 + rnd() % 9; w = ""
        for (i = 0; i < len; i++) w = w sprintf("%c", 97 + rnd() % 26)
        return w
    }
    BEGIN {
        seed = 7 + c * 7919
        for (f = 0; f < files; f++) {
            if (c > 0 && (f * 31 + c * 17) % 11 != 0) continue
            path = sprintf("%s/d%02d/f%03d.txt", dir, f % 23, f)
            lines = 20 + (f * 13) % 180
            for (l = 0; l < lines; l++) {
                # Most lines stay as they were; some change each commit.
                if (c > 0 && (l + f + c) % 5 != 0) line = sprintf("line %d of file %d: stable %d", l, f, (l * f) % 1000)
                else { line = sprintf("line %d of file %d:", l, f); for (k = 0; k < 8; k++) line = line " " word() }
                print line > path
            }
            close(path)
        }
    }'
}

# g WORKDIR [VAR=VALUE...] -- GIT-ARGS...: runs git in WORKDIR, stdout to
# the caller, stderr appended to $err; returns git's status.
g() {
    local wd=$1
    shift
    local envs=()
    while [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    shift
    (cd "$wd" && timeout "$limit" env "${envs[@]}" "$git" "$@") </dev/null 2>>"$err"
}

# build NAME [VAR=VALUE...]: creates and exercises the repository
# $tmp/NAME; the outputs to compare go to $tmp/NAME.*.  Returns non-zero at
# the first failing git command, having said which one on stderr.
build() {
    local name=$1
    shift
    local repo=$tmp/$name c when
    err=$tmp/$name.err
    : >"$err"
    mkdir -p "$repo"
    g "$repo" "$@" -- init -q -b main . || { echo "git init failed" >>"$err"; return 1; }
    for ((c = 0; c < commits; c++)); do
        gen_files "$repo" "$c" 2>>"$err" || { echo "generating commit $c failed" >>"$err"; return 1; }
        # Renames and deletions, so that history has more than edits.
        if [ "$c" -gt 0 ] && [ $((c % 7)) -eq 0 ]; then
            g "$repo" "$@" -- mv "d$(printf %02d $((c % 23)))" "moved$c" || { echo "git mv failed at commit $c" >>"$err"; return 1; }
        fi
        if [ "$c" -gt 0 ] && [ $((c % 5)) -eq 0 ]; then
            g "$repo" "$@" -- rm -q -r --ignore-unmatch "d$(printf %02d $(((c + 3) % 23)))/f$(printf %03d $((c * 9 % files)))*.txt" >/dev/null ||
                { echo "git rm failed at commit $c" >>"$err"; return 1; }
        fi
        when="@$((1700000000 + c * 3600)) +0000"
        g "$repo" "$@" -- add -A >>"$err" || { echo "git add failed at commit $c" >>"$err"; return 1; }
        GIT_AUTHOR_DATE=$when GIT_COMMITTER_DATE=$when \
            g "$repo" "$@" -- commit -q -m "commit $c" -m "Generated for the hakmem git test." >>"$err" ||
            { echo "git commit failed at commit $c" >>"$err"; return 1; }
        # A side branch from commit 30, merged back at the end.
        if [ "$c" -eq 30 ]; then
            g "$repo" "$@" -- branch side || { echo "git branch failed" >>"$err"; return 1; }
        fi
    done
    g "$repo" "$@" -- checkout -q side || { echo "git checkout side failed" >>"$err"; return 1; }
    printf 'side branch file\n' >"$repo/side.txt"
    g "$repo" "$@" -- add side.txt || { echo "git add on side failed" >>"$err"; return 1; }
    when="@$((1700000000 + commits * 3600)) +0000"
    GIT_AUTHOR_DATE=$when GIT_COMMITTER_DATE=$when \
        g "$repo" "$@" -- commit -q -m "side commit" || { echo "git commit on side failed" >>"$err"; return 1; }
    g "$repo" "$@" -- checkout -q main || { echo "git checkout main failed" >>"$err"; return 1; }
    when="@$((1700000000 + (commits + 1) * 3600)) +0000"
    GIT_AUTHOR_DATE=$when GIT_COMMITTER_DATE=$when \
        g "$repo" "$@" -- merge -q --no-edit side || { echo "git merge failed" >>"$err"; return 1; }

    g "$repo" "$@" -- rev-parse HEAD >"$tmp/$name.head" || { echo "git rev-parse failed" >>"$err"; return 1; }
    g "$repo" "$@" -- log --stat --date=raw >"$tmp/$name.log" || { echo "git log --stat failed" >>"$err"; return 1; }
    g "$repo" "$@" -- log -p --all --date=raw >"$tmp/$name.patch" || { echo "git log -p failed" >>"$err"; return 1; }
    # One thread for the delta search, so both packs are built alike.
    g "$repo" "$@" -- -c pack.threads=1 gc -q || { echo "git gc failed" >>"$err"; return 1; }
    g "$repo" "$@" -- -c pack.threads=1 repack -q -a -d -f --window=50 --depth=50 ||
        { echo "git repack -adf failed" >>"$err"; return 1; }
    g "$repo" "$@" -- fsck --full --strict --no-dangling >"$tmp/$name.fsck" || { echo "git fsck failed" >>"$err"; return 1; }
    g "$repo" "$@" -- rev-list --objects --all >"$tmp/$name.objects.unsorted" || { echo "git rev-list failed" >>"$err"; return 1; }
    sort "$tmp/$name.objects.unsorted" >"$tmp/$name.objects"
    g "$repo" "$@" -- count-objects -v >"$tmp/$name.count" || { echo "git count-objects failed" >>"$err"; return 1; }
    # After the repack every object is read back out of the pack.
    g "$repo" "$@" -- log -p --all --date=raw >"$tmp/$name.patch2" || { echo "git log -p after gc failed" >>"$err"; return 1; }
}

# check_build NAME [VAR=VALUE...]: runs build and emits one TAP line; a
# build passes only if every command succeeded without a word on stderr.
check_build() {
    local name=$1
    shift
    local rc=0
    { build "$name" "$@"; } 2>/dev/null || rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$tmp/$name.err" ]; then
        ok "repository built, gc'd and fsck'd: $name"
        return 0
    fi
    not_ok "repository built, gc'd and fsck'd: $name"
    if [ "$rc" -eq 0 ]; then
        echo "# every command succeeded, but something wrote to stderr:"
    fi
    tail -n 20 "$tmp/$name.err" | note
    return 1
}

# same WHAT LABEL: compares $tmp/glibc.WHAT with $tmp/hakmem.WHAT.
same() {
    if [ "$both" = yes ] && cmp -s "$tmp/glibc.$1" "$tmp/hakmem.$1"; then
        ok "$2"
    elif [ "$both" != yes ]; then
        not_ok "$2 (a build failed)"
    else
        not_ok "$2"
        diff -u "$tmp/glibc.$1" "$tmp/hakmem.$1" | head -n 30 | note || true
    fi
}

echo "1..10"
echo "# $("$git" --version); $files files, $commits commits and a merge; library: $lib"

both=yes
check_build glibc || both=no
check_build hakmem "LD_PRELOAD=$lib" || both=no

same head "same commit id at HEAD"
same log "git log --stat identical"
same patch "git log -p identical"
same patch2 "git log -p identical after gc and repack"
same objects "same set of objects"
same count "same object count after gc and repack"
if [ "$both" = yes ] && [ ! -s "$tmp/hakmem.fsck" ]; then
    ok "git fsck finds nothing to say under hakmem"
else
    not_ok "git fsck finds nothing to say under hakmem"
    head -n 20 "$tmp/hakmem.fsck" 2>/dev/null | note || true
fi
[ "$both" = yes ] && echo "# $(wc -l <"$tmp/hakmem.objects") objects, $(wc -l <"$tmp/hakmem.log") lines of log --stat, HEAD $(cat "$tmp/hakmem.head")"

# The library must be mapped into git itself: a shell alias runs as git's
# child, so its $PPID is the git process.  If ld.so ignored the preload,
# the library is not there.
probe_rc=0
err=$tmp/probe.err
: >"$err"
g "$tmp/hakmem" "LD_PRELOAD=$lib" -- -c 'alias.maps=!cat /proc/$PPID/maps' maps >"$tmp/probe.maps" || probe_rc=$?
if [ "$probe_rc" -eq 0 ] && awk -v want="$(readlink -f "$lib")" '$6 == want { found = 1 } END { exit !found }' "$tmp/probe.maps"; then
    ok "the library is loaded into git"
else
    not_ok "the library is loaded into git"
    echo "# probe $(describe "$probe_rc")"
    note <"$err"
fi

# TAP already says what failed; the status is for callers that run this
# script directly rather than through automake's TAP driver.
[ "$failed" -eq 0 ]
