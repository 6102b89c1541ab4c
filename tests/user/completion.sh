#!/bin/bash
# The bash completion of hakmem-run (automake TAP test; issue 12, finding
# 7).
#
# The generated completion/hakmem-run, sourced into this bash, must offer
# every option of the wrapper and every knob option of src/knobs.def, the
# knob names after -e, the words of a keyword knob after its option, and
# nothing after the program's name that is hakmem-run's. `make install`
# puts it where bash-completion looks.

# shellcheck source=tests/user/lib.sh
. "$(dirname "$0")/lib.sh"

[ -n "${HAKMEM_BUILDDIR:-}" ] || bail "HAKMEM_BUILDDIR is not set (run through make check)"
completion=$HAKMEM_BUILDDIR/completion/hakmem-run
[ -r "$completion" ] || bail "$completion not built"

# shellcheck source=/dev/null
. "$completion" || bail "sourcing $completion failed"
complete -p hakmem-run >/dev/null 2>&1 || bail "no completion registered for hakmem-run"

# complete WORD...: the completions of the last word; one per line in
# $tmp/got. The words are split at '=' as bash splits them (with '=' in
# COMP_WORDBREAKS, its default): "a=b" is a, =, b; a last "a=" is a, =.
complete_words() {
    local w
    COMP_WORDS=(hakmem-run)
    for w in "$@"; do
        while [[ $w == *=* ]]; do
            [ -n "${w%%=*}" ] && COMP_WORDS+=("${w%%=*}")
            COMP_WORDS+=("=")
            w=${w#*=}
        done
        if [ -n "$w" ] || [ "${COMP_WORDS[${#COMP_WORDS[@]} - 1]}" != = ]; then
            COMP_WORDS+=("$w")
        fi
    done
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="${COMP_WORDS[*]}"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _hakmem_run 2>/dev/null
    printf '%s\n' "${COMPREPLY[@]}" >"$tmp/got"
}

has() {
    grep -qxF -- "$1" "$tmp/got"
}

# shellcheck source=tests/docs/knobs-def.sh
. "$top/tests/docs/knobs-def.sh"
knobs_read "$top/src/knobs.def"

complete_words -
for o in -h --help -V --version -e --env --compare --compare-show-output --pymalloc; do
    has "$o" || problem "'-' does not offer $o"
done
complete_words --
for i in "${!ids[@]}"; do
    [ -n "${opts[$i]}" ] || continue
    has "${opts[$i]}" || problem "'--' does not offer ${opts[$i]} (HAKMEM_${ids[$i]})"
done
# Every option offered is one of the wrapper's or of knobs.def.
while IFS= read -r o; do
    o=${o%=}
    case " -h --help -V --version -e --env --compare --compare-show-output --pymalloc -- ${opts[*]} " in
        *" $o "*) ;;
        *) problem "offers $o, which is neither the wrapper's nor in knobs.def" ;;
    esac
done <"$tmp/got"
verdict "every option of the wrapper and of knobs.def is offered, and nothing else"

complete_words -e ""
for id in "${ids[@]}"; do
    has "$id=" || problem "-e does not offer $id="
done
complete_words -e hard
has HARDENED= || problem "-e hard does not complete to HARDENED=: $(tr '\n' ' ' <"$tmp/got")"
verdict "-e offers every knob of knobs.def"

for i in "${!ids[@]}"; do
    if [ "${types[$i]}" != ENUM ] || [ -z "${opts[$i]}" ]; then
        continue
    fi
    for w in ${words[$i]}; do
        complete_words "${opts[$i]}=" 
        has "$w" || problem "${opts[$i]}= does not offer $w"
        complete_words "${opts[$i]}" ""
        has "$w" || problem "${opts[$i]} does not offer $w"
        complete_words -e "${ids[$i]}="
        has "$w" || problem "-e ${ids[$i]}= does not offer $w"
    done
done
verdict "a keyword knob's words are offered after its option and after -e"

complete_words --stats ls --
if grep -q -- '--stats\|--mem-diet' "$tmp/got"; then
    problem "after the program's name, hakmem-run's own options are offered"
fi
verdict "after the program's name, the words are the program's"

finish
