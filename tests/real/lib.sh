# lib.sh: what the real-program tests share: TAP output, bailing out, and
# finding the library to preload. Sourced by tests/real/*.sh, which set
# `lib` (the library) and `limit` (seconds a run may take) first.

n=0
failed=0

bail() {
    echo "Bail out! $*"
    exit 1
}

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
    awk '{ print "# " $0 }'
}

# describe STATUS: how a process ended, from the status bash reports.
describe() {
    if [ "$1" -eq 124 ]; then
        echo "timed out after ${limit}s"
    elif [ "$1" -gt 128 ]; then
        echo "killed by SIG$(kill -l $(($1 - 128)) 2>/dev/null || echo $(($1 - 128)))"
    else
        echo "exit status $1"
    fi
}

# Makes $lib an absolute path that LD_PRELOAD can carry, or bails out.
hk_real_library() {
    [ -f "$lib" ] || bail "hakmem library $lib not found (set HAKMEM_LIB)"
    lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")
    case $lib in
        *[[:space:]:]*) bail "library path '$lib' contains a space or colon, which LD_PRELOAD cannot carry" ;;
    esac
}
