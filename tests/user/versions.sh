#!/bin/bash
# The release version everywhere it is repeated (automake TAP test; issue
# 15).
#
# configure.ac's AC_INIT is the one source: PACKAGE_VERSION, and from it
# hakmem-run's version, hakmem.pc and the RPM spec's Version. What cannot
# be generated from it repeats it, and must agree: the HAKMEM_VERSION_*
# macros of include/hakmem.h (the header is installed as it is, and the
# library's hakmem_version() is built from them), the version the built
# library reports, the newest entries of debian/changelog (its upstream
# part: 0.2.0 of 0.2.0-1) and of the spec's %changelog (VERSION-RELEASE).
# The manual pages' .TH lines are checked by tests/docs/check-knobs.sh.

# shellcheck source=tests/user/lib.sh
. "$(dirname "$0")/lib.sh"

want=$PACKAGE_VERSION
header=$top/include/hakmem.h
[ -r "$header" ] || bail "cannot read $header"

# --- include/hakmem.h -----------------------------------------------------------
v=$(awk '$1 == "#define" && $2 ~ /^HAKMEM_VERSION_(MAJOR|MINOR|PATCH)$/ { n[$2] = $3 }
    END { print n["HAKMEM_VERSION_MAJOR"] "." n["HAKMEM_VERSION_MINOR"] "." n["HAKMEM_VERSION_PATCH"] }' "$header")
[ "$v" = "$want" ] || problem "include/hakmem.h: HAKMEM_VERSION_* give $v, configure.ac $want"
grep -qF "/* \"$want\" */" "$header" || problem "include/hakmem.h: the example of hakmem_version_string() is not \"$want\""
verdict "include/hakmem.h: HAKMEM_VERSION_* are $want"

# --- the built library ---------------------------------------------------------------
if [ -z "${PRINT_ENV:-}" ] || [ ! -x "$PRINT_ENV" ]; then
    problem "PRINT_ENV is not set or not built"
else
    got=$(LD_PRELOAD=$lib "$PRINT_ENV" | sed -n 's/^hakmem=loaded //p')
    [ "$got" = "$want" ] || problem "the library reports '$got', configure.ac $want"
fi
verdict "the built library reports $want (hakmem_version_string())"

# --- debian/changelog -------------------------------------------------------------------
if [ ! -d "$top/debian" ]; then
    skip "debian/changelog's newest entry is $want-REVISION" "no debian/ here (a make dist tree)"
else
    first=$(sed -n '1s/^hakmem (\([^)]*\)) .*/\1/p' "$top/debian/changelog")
    upstream=${first#*:}
    upstream=${upstream%-*}
    [ -n "$first" ] || problem "cannot read the first line of debian/changelog"
    [ "$upstream" = "$want" ] || problem "debian/changelog's newest entry is $first, whose upstream version is not $want"
    case $first in
        *-*) ;;
        *) problem "debian/changelog's newest entry $first has no Debian revision: source format 3.0 (quilt) needs one" ;;
    esac
    grep -qx '3.0 (quilt)' "$top/debian/source/format" || problem "debian/source/format is not 3.0 (quilt)"
    verdict "debian/changelog's newest entry is $want-REVISION ($first), source format 3.0 (quilt)"
fi

# --- the RPM spec ------------------------------------------------------------------------
spec=$top/rpm/hakmem.spec.in
[ -r "$spec" ] || bail "cannot read $spec"
grep -qx 'Version:        @PACKAGE_VERSION@' "$spec" || problem "the spec's Version is not configure.ac's (@PACKAGE_VERSION@)"
release=$(sed -n 's/^Release:[[:space:]]*\([0-9][0-9.]*\).*/\1/p' "$spec")
entry=$(awk '/^%changelog/ { on = 1; next } on && /^\* / { print $NF; exit }' "$spec")
[ "$entry" = "$want-$release" ] || problem "the spec's newest %changelog entry is '$entry', not $want-$release"
verdict "the spec's Version is configure.ac's, its newest %changelog entry $want-$release"

finish
