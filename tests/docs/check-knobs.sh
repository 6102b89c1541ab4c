#!/bin/bash
# Knob agreement test (automake TAP test).
#
# src/knobs.def is the one list of knobs. This test checks that everything
# else that lists them says the same, knob by knob:
#   - `hakmem-run --help`: the option (or -e NAME), the variable and the
#     value it sets, a value placeholder that fits the type, the default,
#     and the documentation word for word;
#   - man/hakmem.7, ENVIRONMENT: "HAKMEM_<id> (<type>, default <default>)"
#     followed by the documentation word for word;
#   - man/hakmem-run.1, OPTIONS: an entry for the option that names the
#     variable and the default, and the -e entry naming every knob that has
#     no option;
#   - the library's own parser: with HAKMEM_VERBOSE=1 its start-up line
#     names every knob with its default;
#   - the columns the compiler reads (src/base/options.c checks the rest): an
#     ENUM's words are those its documentation lists in braces and its
#     default is one of them, a BOOL's default is 0 or 1, the field is the
#     member of struct hk_options whose comment names the knob, the diet's
#     values are the knob's, and a knob the diet changes says so.
# And that none of them lists a knob, or hakmem-run an option, that
# knobs.def does not have. An empty default is written "unset".
#
# Environment (set by `make check`):
#   HAKMEM_RUN       the built wrapper
#   HAKMEM_LIB       the built library, for the start-up line
#   PRINT_ENV        tests/wrapper/print-env, the program run under it
#   PACKAGE_VERSION  the version the man pages and the library must carry

# The loops below read words (names) from grep -o, which never hold spaces.
# shellcheck disable=SC2013

set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
knobs_def=$top/src/knobs.def
header=$top/include/hakmem.h
options_h=$top/src/base/options.h
page1=$top/man/hakmem-run.1
page7=$top/man/hakmem.7

bail() {
    echo "Bail out! $*"
    exit 1
}

[ -n "${HAKMEM_RUN:-}" ] || bail "HAKMEM_RUN is not set (run through make check)"
[ -n "${HAKMEM_LIB:-}" ] || bail "HAKMEM_LIB is not set (run through make check)"
[ -n "${PRINT_ENV:-}" ] || bail "PRINT_ENV is not set (run through make check)"
[ -n "${PACKAGE_VERSION:-}" ] || bail "PACKAGE_VERSION is not set (run through make check)"
[ -x "$HAKMEM_RUN" ] || bail "wrapper $HAKMEM_RUN not built"
[ -f "$HAKMEM_LIB" ] || bail "library $HAKMEM_LIB not built"
[ -x "$PRINT_ENV" ] || bail "$PRINT_ENV not built"
for f in "$knobs_def" "$header" "$options_h" "$page1" "$page7"; do
    [ -r "$f" ] || bail "cannot read $f"
done
command -v mandoc >/dev/null 2>&1 || bail "mandoc not found (Debian: apt-get install mandoc)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-check-knobs.XXXXXX") || bail "mktemp failed"
trap 'rm -rf "$tmp"' EXIT

# --- knobs.def ---------------------------------------------------------------
# shellcheck source=tests/docs/knobs-def.sh
. "$here/knobs-def.sh"
knobs_read "$knobs_def"

is_knob() {
    local id
    for id in "${ids[@]}"; do
        [ "$id" = "$1" ] && return 0
    done
    return 1
}

shown_default() {
    printf '%s' "${1:-unset}"
}

# Regular expression metacharacters in a literal.
quote_re() {
    # shellcheck disable=SC2016 # a literal $
    printf '%s' "$1" | sed 's/[][\.|$(){}?+*^]/\\&/g'
}

squeeze() {
    tr -s ' \n' '  ' | sed 's/^ //; s/ $//'
}

# A man page as text: one line per paragraph, no overstrike.
render() {
    mandoc -Tascii -Owidth=1000 "$1" | sed $'s/.\b//g'
}

# The lines of one section of rendered text (headings start in column 0).
section() {
    awk -v sec="$1" '/^[^ ]/ { on = ($0 == sec); next } on'
}

# Rendered entries, one per line as "TAG<tab>BODY": a tag is a line
# indented by 7, the body the more indented lines after it.
entries() {
    awk '
        function flush() { if (tag != "") print tag "\t" body; tag = ""; body = "" }
        /^       [^ ]/ { flush(); tag = substr($0, 8); next }
        /^        +[^ ]/ { if (tag != "") { sub(/^ +/, ""); body = body (body == "" ? "" : " ") $0 }; next }
        /^$/ { next }
        { flush() }
        END { flush() }'
}

n=0
failed=0
ok() {
    n=$((n + 1))
    echo "ok $n - $*"
}
not_ok() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $*"
}
note() {
    sed 's/^/# /'
}

echo "1..$((5 * ${#ids[@]} + 6))"
echo "# ${#ids[@]} knobs in src/knobs.def: ${ids[*]}"

# --- hakmem-run --help -------------------------------------------------------
rc=0
"$HAKMEM_RUN" --help >"$tmp/help" 2>"$tmp/help.err" || rc=$?
if [ "$rc" -ne 0 ] || [ -s "$tmp/help.err" ]; then
    bail "hakmem-run --help failed (status $rc): $(head -n 3 "$tmp/help.err")"
fi

for i in "${!ids[@]}"; do
    id=${ids[$i]} type=${types[$i]} def=${defs[$i]} opt=${opts[$i]} doc=${docs[$i]}
    case $type in
        SIZE) hint=SIZE ;;
        COUNT) hint=N ;;
        MSEC) hint=MS ;;
        PATH) hint=FILE ;;
        ENUM) hint=${words[$i]// /|} ;;
        BOOL) hint='0|1' ;;
    esac
    if [ -z "$opt" ]; then
        left="-e $id=$hint" value=$hint
    elif [ "$type" = BOOL ]; then
        case $opt in --no-*) value=0 ;; *) value=1 ;; esac
        left=$opt
    else
        left="$opt=$hint" value=$hint
    fi
    pattern="^  $(quote_re "$left") +$(quote_re "HAKMEM_$id=$value") +default $(quote_re "$(shown_default "$def")")\$"
    # The entry's line, then its documentation: the lines indented by 6
    # that follow it.
    lineno=$(grep -nE -- "$pattern" "$tmp/help" | cut -d: -f1)
    problems=()
    if [ -z "$lineno" ]; then
        problems+=("no line matching: $pattern")
    elif [ "$(printf '%s\n' "$lineno" | wc -l)" -ne 1 ]; then
        problems+=("more than one line matching: $pattern")
    else
        text=$(tail -n +"$((lineno + 1))" "$tmp/help" | awk '/^      [^ ]/ { print; next } { exit }' | squeeze)
        [ "$text" = "$doc" ] || problems+=("documentation differs: '$text', knobs.def says '$doc'")
    fi
    if [ ${#problems[@]} -eq 0 ]; then
        ok "--help: HAKMEM_$id ($left, default $(shown_default "$def"))"
    else
        not_ok "--help: HAKMEM_$id ($left, default $(shown_default "$def"))"
        printf '%s\n' "${problems[@]}" | note
    fi
done

# Nothing beyond knobs.def: every variable the help names is a knob (or the
# wrapper's own, or the -e placeholder), every option a known one.
problems=()
for v in $(grep -oE 'HAKMEM_[A-Z][A-Z0-9_]*' "$tmp/help" | sort -u); do
    case $v in HAKMEM_RUN_LIBRARY | HAKMEM_RUN_TIME | HAKMEM_NAME) continue ;; esac
    is_knob "${v#HAKMEM_}" || problems+=("names $v, which is not in knobs.def")
done
wrapper_opts=(--help --version --env --compare --compare-show-output --pymalloc)
for o in $(grep -oE -- '--[a-z][a-z-]*' "$tmp/help" | sort -u); do
    known=no
    for k in "${wrapper_opts[@]}" "${opts[@]}"; do
        [ "$k" = "$o" ] && known=yes
    done
    [ $known = yes ] || problems+=("lists option $o, which is neither the wrapper's nor in knobs.def")
done
knob_lines=$(grep -cE '^  (--[a-z-]+|-e [A-Z_]+=)[^ ]* +HAKMEM_' "$tmp/help")
[ "$knob_lines" -eq ${#ids[@]} ] || problems+=("$knob_lines knob lines, knobs.def has ${#ids[@]}")
if [ ${#problems[@]} -eq 0 ]; then
    ok "--help lists nothing beyond knobs.def"
else
    not_ok "--help lists nothing beyond knobs.def"
    printf '%s\n' "${problems[@]}" | note
fi

# --- man/hakmem.7 --------------------------------------------------------------
render "$page7" >"$tmp/page7" || bail "mandoc cannot render $page7"
section ENVIRONMENT <"$tmp/page7" | entries >"$tmp/env7"
[ -s "$tmp/env7" ] || bail "man/hakmem.7 has no ENVIRONMENT section"

for i in "${!ids[@]}"; do
    id=${ids[$i]} type=${types[$i]} def=${defs[$i]} doc=${docs[$i]}
    case $type in
        BOOL) word=boolean ;;
        SIZE) word=size ;;
        COUNT) word=count ;;
        MSEC) word=milliseconds ;;
        ENUM) word=keyword ;;
        PATH) word=path ;;
    esac
    want="HAKMEM_$id ($word, default $(shown_default "$def"))"
    body=$(awk -F'\t' -v t="$want" '$1 == t { print $2 }' "$tmp/env7")
    count=$(awk -F'\t' -v t="$want" '$1 == t' "$tmp/env7" | wc -l)
    body=$(printf '%s' "$body" | squeeze)
    if [ "$count" -ne 1 ]; then
        not_ok "hakmem.7: $want"
        echo "# ENVIRONMENT has $count entries tagged '$want'"
        cut -f1 "$tmp/env7" | grep -F "HAKMEM_$id " | note
    elif [ "${body#"$doc"}" = "$body" ]; then
        not_ok "hakmem.7: $want"
        echo "# the entry does not begin with the documentation of knobs.def"
        echo "#   page:      ${body:0:200}"
        echo "#   knobs.def: $doc"
    else
        ok "hakmem.7: $want"
    fi
done

problems=()
tagged=$(cut -f1 "$tmp/env7" | grep -c '^HAKMEM_')
[ "$tagged" -eq ${#ids[@]} ] || problems+=("ENVIRONMENT has $tagged HAKMEM_ entries, knobs.def has ${#ids[@]} knobs")
# Names the page may use besides the knobs: the macros of hakmem.h.
macros=$(grep -oE '^#define HAKMEM_[A-Z0-9_]+' "$header" | cut -d' ' -f2)
for v in $(grep -oE 'HAKMEM_[A-Z][A-Z0-9_]*' "$tmp/page7" | sort -u); do
    is_knob "${v#HAKMEM_}" && continue
    grep -qx -- "$v" <<<"$macros" && continue
    problems+=("names $v, which is neither in knobs.def nor a macro of hakmem.h")
done
if [ ${#problems[@]} -eq 0 ]; then
    ok "hakmem.7 lists nothing beyond knobs.def"
else
    not_ok "hakmem.7 lists nothing beyond knobs.def"
    printf '%s\n' "${problems[@]}" | note
fi

# --- the columns for the compiler -----------------------------------------------
# valid TYPE VALUE: VALUE is one the parser takes for TYPE (src/base/options.c),
# for the diet column's values; WORDS is an ENUM's.
valid() {
    case $1 in
        BOOL) [[ ${2,,} =~ ^(1|true|yes|on|0|false|no|off)$ ]] ;;
        SIZE) [[ $2 =~ ^[0-9]+([KkMmGg]i?)?[Bb]?$ ]] ;;
        COUNT) [[ $2 =~ ^[0-9]+$ ]] ;;
        MSEC) [[ $2 =~ ^(-1|[0-9]+)$ ]] ;;
        ENUM) [[ " $3 " == *" $2 "* ]] ;;
        *) return 1 ;;
    esac
}

struct_members=$(sed -n '/^struct hk_options {/,/^};/p' "$options_h")
[ -n "$struct_members" ] || bail "no struct hk_options in $options_h"
diet_entry=$(awk -F'\t' '$1 ~ /^HAKMEM_TINY_MEM_DIET / { print $2 }' "$tmp/env7")
[ -n "$diet_entry" ] || bail "hakmem.7 has no HAKMEM_TINY_MEM_DIET entry"
for i in "${!ids[@]}"; do
    id=${ids[$i]} type=${types[$i]} def=${defs[$i]} doc=${docs[$i]}
    field=${fields[$i]} w=${words[$i]} diet=${diets[$i]}
    problems=()
    braces=$(grep -oE '[{][^}]*[}]' <<<"$doc")
    if [ "$type" = ENUM ]; then
        [ "$braces" = "{${w// /, }}" ] ||
            problems+=("the documentation lists '$braces', the words column ($w)")
        valid ENUM "$def" "$w" || problems+=("the default $def is not one of its words")
    else
        [ -z "$w" ] || problems+=("words ($w), but it is no ENUM")
        [ -z "$braces" ] || problems+=("the documentation lists words, '$braces', but it is no ENUM")
    fi
    [ "$type" != BOOL ] || [ "$def" = 0 ] || [ "$def" = 1 ] ||
        problems+=("a BOOL's default is written 0 or 1, not $def")
    member=$(grep -E "[ *]$field;" <<<"$struct_members")
    if [ "$(grep -c '' <<<"$member")" -ne 1 ] || [ -z "$member" ]; then
        problems+=("struct hk_options has no one member $field")
    elif ! grep -qE "/\*.*HAKMEM_$id([^A-Z0-9_]|\$)" <<<"$member"; then
        problems+=("the comment of member $field does not name HAKMEM_$id: $member")
    fi
    if [ "$diet" != KEEP ]; then
        for v in ${diet_froms[$i]} ${diet_tos[$i]}; do
            valid "$type" "$v" "$w" || problems+=("$diet: $v is not a value of the knob")
        done
        if [[ $doc != *HAKMEM_TINY_MEM_DIET* ]] && ! grep -qE "HAKMEM_$id([^A-Z0-9_]|\$)" <<<"$diet_entry"; then
            problems+=("the diet changes it ($diet), but neither its documentation nor hakmem.7's HAKMEM_TINY_MEM_DIET entry says so")
        fi
    fi
    if [ ${#problems[@]} -eq 0 ]; then
        ok "columns: HAKMEM_$id sets $field, words ($w), diet $diet"
    else
        not_ok "columns: HAKMEM_$id sets $field, words ($w), diet $diet"
        printf '%s\n' "${problems[@]}" | note
    fi
done

# A member whose comment names a knob is that knob's field.
problems=()
while IFS= read -r member; do
    [[ $member =~ [\ \*]([a-z_][a-z0-9_]*)\;.*/\*.*HAKMEM_([A-Z][A-Z0-9_]*) ]] || continue
    m=${BASH_REMATCH[1]} v=${BASH_REMATCH[2]} known=no
    for i in "${!ids[@]}"; do
        [ "${ids[$i]}" = "$v" ] && [ "${fields[$i]}" = "$m" ] && known=yes
    done
    [ $known = yes ] || problems+=("member $m names HAKMEM_$v, whose field knobs.def does not say is $m")
done <<<"$struct_members"
if [ ${#problems[@]} -eq 0 ]; then
    ok "options.h names no knob for a member that is not its field"
else
    not_ok "options.h names no knob for a member that is not its field"
    printf '%s\n' "${problems[@]}" | note
fi

# --- man/hakmem-run.1 -----------------------------------------------------------
render "$page1" >"$tmp/page1" || bail "mandoc cannot render $page1"
section OPTIONS <"$tmp/page1" | entries >"$tmp/opts1"
[ -s "$tmp/opts1" ] || bail "man/hakmem-run.1 has no OPTIONS section"
env_entry=$(grep -E '^-e, --env ' "$tmp/opts1" | cut -f2)

for i in "${!ids[@]}"; do
    id=${ids[$i]} def=${defs[$i]} opt=${opts[$i]}
    shown=$(shown_default "$def")
    if [ -z "$opt" ]; then
        # No option: the -e entry must name it.
        if grep -qw -- "$id" <<<"$env_entry"; then
            ok "hakmem-run.1: $id through -e"
        else
            not_ok "hakmem-run.1: $id through -e"
            echo "# the -e entry of OPTIONS does not name $id, which has no option"
        fi
        continue
    fi
    entry=$(grep -E "^$(quote_re "$opt")([= ]|	|\$)" "$tmp/opts1")
    count=$(printf '%s' "$entry" | grep -c '^' || true)
    if [ "$count" -ne 1 ]; then
        not_ok "hakmem-run.1: $opt"
        echo "# OPTIONS has $count entries for $opt"
    elif ! grep -qE "HAKMEM_$id([^A-Z0-9_]|\$)" <<<"$entry"; then
        not_ok "hakmem-run.1: $opt"
        echo "# the entry does not name HAKMEM_$id: $entry"
    elif ! grep -qF "(default $shown" <<<"$entry"; then
        not_ok "hakmem-run.1: $opt"
        echo "# the entry does not give the default as '(default $shown': $entry"
    else
        ok "hakmem-run.1: $opt sets HAKMEM_$id, default $shown"
    fi
done

# Every option of the wrapper has an entry, and every entry is an option of
# the wrapper or of knobs.def.
problems=()
for o in -h --help -V --version -e --env --compare --compare-show-output --pymalloc --; do
    cut -f1 "$tmp/opts1" | grep -qE -- "(^|[ ,])$(quote_re "$o")([ ,=[]|\$)" ||
        problems+=("no entry for $o")
done
while IFS= read -r tag; do
    case $tag in -*) ;; *) continue ;; esac
    for o in $(printf '%s\n' "${tag%%  *}" | grep -oE -- '--?[a-zA-Z][a-zA-Z-]*'); do
        known=no
        for k in -h -V -e "${wrapper_opts[@]}" "${opts[@]}"; do
            [ "$k" = "$o" ] && known=yes
        done
        [ $known = yes ] || problems+=("entry for $o, which is neither the wrapper's nor in knobs.def")
    done
done < <(cut -f1 "$tmp/opts1")
for v in $(grep -oE 'HAKMEM_[A-Z][A-Z0-9_]*' "$tmp/page1" | sort -u); do
    case $v in HAKMEM_RUN_LIBRARY | HAKMEM_RUN_TIME) continue ;; esac
    is_knob "${v#HAKMEM_}" || problems+=("names $v, which is not in knobs.def")
done
if [ ${#problems[@]} -eq 0 ]; then
    ok "hakmem-run.1 documents every wrapper option and nothing beyond knobs.def"
else
    not_ok "hakmem-run.1 documents every wrapper option and nothing beyond knobs.def"
    printf '%s\n' "${problems[@]}" | note
fi

# Both pages say which release they describe.
problems=()
for page in "$page1" "$page7"; do
    th=$(grep -m1 '^\.TH ' "$page")
    case $th in
        *"\"hakmem $PACKAGE_VERSION\""*) ;;
        *) problems+=("$(basename "$page"): '$th' does not name \"hakmem $PACKAGE_VERSION\"") ;;
    esac
done
if [ ${#problems[@]} -eq 0 ]; then
    ok "the man pages name hakmem $PACKAGE_VERSION"
else
    not_ok "the man pages name hakmem $PACKAGE_VERSION"
    printf '%s\n' "${problems[@]}" | note
fi

# --- the library's parser ---------------------------------------------------------
# A clean environment, so that every knob shows its default.
rc=0
env -i PATH="$PATH" HAKMEM_VERBOSE=1 LD_PRELOAD="$HAKMEM_LIB" "$PRINT_ENV" \
    >"$tmp/verbose.out" 2>"$tmp/verbose.err" || rc=$?
grep -E "^hakmem $(quote_re "$PACKAGE_VERSION"): " "$tmp/verbose.err" >"$tmp/verbose.line"
lines=$(grep -c '' "$tmp/verbose.line")
for i in "${!ids[@]}"; do
    id=${ids[$i]} def=${defs[$i]}
    [ "$id" = VERBOSE ] && def=1
    if [ "$lines" -eq 1 ] && tr ' ' '\n' <"$tmp/verbose.line" | grep -qxF -- "HAKMEM_$id=$def"; then
        ok "start-up line: HAKMEM_$id=$def"
    else
        not_ok "start-up line: HAKMEM_$id=$def"
        echo "# the HAKMEM_VERBOSE=1 line does not show HAKMEM_$id=$def"
    fi
done
problems=()
[ "$rc" -eq 0 ] || problems+=("the program exited with status $rc")
[ "$lines" -eq 1 ] || problems+=("$lines lines start with 'hakmem $PACKAGE_VERSION: ', not 1")
extra=$(grep -vcE "^hakmem $(quote_re "$PACKAGE_VERSION"): " "$tmp/verbose.err" || true)
[ "$extra" -eq 0 ] || problems+=("$extra other line(s) on stderr")
for v in $(grep -oE 'HAKMEM_[A-Z][A-Z0-9_]*=' "$tmp/verbose.line" | sort -u); do
    v=${v%=}
    is_knob "${v#HAKMEM_}" || problems+=("names $v, which is not in knobs.def")
done
shown=$(grep -oE 'HAKMEM_[A-Z][A-Z0-9_]*=' "$tmp/verbose.line" | wc -l)
[ "$shown" -eq ${#ids[@]} ] || problems+=("shows $shown knobs, knobs.def has ${#ids[@]}")
if [ ${#problems[@]} -eq 0 ]; then
    ok "start-up line: one line, every knob once, nothing else"
else
    not_ok "start-up line: one line, every knob once, nothing else"
    printf '%s\n' "${problems[@]}" | note
    note <"$tmp/verbose.err"
fi

[ "$failed" -eq 0 ]
