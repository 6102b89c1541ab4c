# knob-lines.awk: the knob lines of hakmem-run and of its bash completion,
# from src/knobs.def, one per knob:
#   id|type|default|option|words|documentation
# the default as the user writes it (128M, not (128, M)), the words of an
# ENUM separated by spaces. A line it cannot read stops the build.

# take(RE, LAST): the next column of the entry, which must match RE and be
# followed by ", " (or, for the last, by the closing parenthesis).
function take(re, last, what,    v) {
    if (!match(rest, "^(" re ")" (last ? "\\)$" : ", "))) {
        printf "%s:%d: the %s column is not one knob-lines.awk reads\n",
            FILENAME, FNR, what > "/dev/stderr"
        failed = 1
        exit 1
    }
    v = substr(rest, 1, RLENGTH - (last ? 1 : 2))
    rest = substr(rest, RLENGTH + 1)
    return v
}

/^HK_KNOB\(/ {
    rest = substr($0, length("HK_KNOB(") + 1)
    id = take("[A-Z][A-Z0-9_]*", 0, "id")
    type = take("BOOL|SIZE|COUNT|MSEC|ENUM|PATH", 0, "type")
    def = take("(\\([0-9]+, [KMG]?\\)|-?[0-9]+|[a-z][a-z0-9_]*)?", 0, "default")
    opt = take("\"[^\"]*\"", 0, "option")
    take("[a-z_][a-z0-9_]*", 0, "field")
    words = take("\\([a-z0-9_, ]*\\)", 0, "words")
    take("KEEP|SET\\([^(), ]+\\)|MAP\\([^(), ]+, [^(), ]+\\)", 0, "diet")
    doc = take("\".*\"", 1, "documentation")
    gsub(/[(), ]/, "", def)
    gsub(/^[(]|[)]$/, "", words)
    gsub(/, /, " ", words)
    print id "|" type "|" def "|" substr(opt, 2, length(opt) - 2) "|" words "|" substr(doc, 2, length(doc) - 2)
}

END {
    if (failed)
        exit 1
}
