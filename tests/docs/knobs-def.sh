# shellcheck shell=bash
# knobs-def.sh: src/knobs.def read into arrays, for the tests that check
# what is made from it (sourced; the caller defines bail). Read here
# rather than through src/knob-lines.awk, so that a fault in what the
# build generates from knobs.def is not repeated in what it is checked
# against.
#
# knobs_read FILE sets, one element per knob in the order of the file:
#   ids types opts fields docs   the columns (docs unescaped)
#   defs                         the default as the user writes it: 128M
#   words                        an ENUM's words, separated by spaces
#   diets                        the diet column: KEEP, SET(v), MAP(a, b)
#   diet_froms diet_tos          a MAP's a and b, a SET's v in diet_tos
# shellcheck disable=SC2034 # the arrays are the callers'
knobs_read() {
    local line re
    re='^HK_KNOB\(([A-Z][A-Z0-9_]*), (BOOL|SIZE|COUNT|MSEC|ENUM|PATH), '
    re+='((\(([0-9]+), ([KMG]?)\))|-?[0-9]+|[a-z][a-z0-9_]*)?, '
    re+='"([^"]*)", ([a-z_][a-z0-9_]*), \(([a-z0-9_, ]*)\), '
    re+='(KEEP|SET\(([^(), ]+)\)|MAP\(([^(), ]+), ([^(), ]+)\)), "(.*)"\)$'
    ids=() types=() defs=() opts=() fields=() words=() diets=()
    diet_froms=() diet_tos=() docs=()
    while IFS= read -r line; do
        case $line in HK_KNOB*) ;; *) continue ;; esac
        [[ $line =~ $re ]] || bail "knobs.def: cannot parse: $line"
        ids+=("${BASH_REMATCH[1]}")
        types+=("${BASH_REMATCH[2]}")
        if [ -n "${BASH_REMATCH[4]}" ]; then
            defs+=("${BASH_REMATCH[5]}${BASH_REMATCH[6]}")
        else
            defs+=("${BASH_REMATCH[3]}")
        fi
        opts+=("${BASH_REMATCH[7]}")
        fields+=("${BASH_REMATCH[8]}")
        words+=("${BASH_REMATCH[9]//, / }")
        diets+=("${BASH_REMATCH[10]}")
        diet_froms+=("${BASH_REMATCH[12]}")
        diet_tos+=("${BASH_REMATCH[11]}${BASH_REMATCH[13]}")
        docs+=("${BASH_REMATCH[14]//\\\"/\"}")
    done <"$1"
    [ ${#ids[@]} -gt 0 ] || bail "knobs.def declares no knobs"
}
