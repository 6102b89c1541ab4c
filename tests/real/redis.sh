#!/bin/bash
# Real-program test (automake TAP test): a Redis server under hakmem.
#
# Starts redis-server on a free loopback port with hakmem preloaded (no
# persistence, nothing written outside a temporary directory), drives it
# with redis-benchmark -- 50 concurrent connections of SET, GET, LPUSH,
# LPOP and INCR, then random keys with bigger values -- and checks the
# values the benchmark must have left.  Then it empties the database and
# replays a generated command script (strings grown by APPEND past the
# large-block threshold, lists, hashes, sets, sorted sets, a 1 MiB value)
# whose replies must be identical to those of a reference server run on
# glibc.  Finally INFO must still answer, and SHUTDOWN must end the server
# with status 0.  Only the server runs under hakmem; the clients run on
# glibc.  The server must have the library mapped, so a preload that
# ld.so ignored cannot pass.
#
# Debian's redis-server is linked with jemalloc, but calls the plain
# malloc/free/calloc/realloc/malloc_usable_size symbols, which the preload
# interposes; INFO still names jemalloc as the allocator it was built for.
#
# Environment:
#   HAKMEM_LIB    library to preload (default ./.libs/libhakmem.so.0)
#   REDIS_SERVER, REDIS_CLI, REDIS_BENCHMARK   the programs (default
#                 redis-server, redis-cli, redis-benchmark)
#   REAL_TIMEOUT  seconds any one step may take (default 300)

set -euo pipefail

lib=${HAKMEM_LIB:-./.libs/libhakmem.so.0}
server=${REDIS_SERVER:-redis-server}
cli=${REDIS_CLI:-redis-cli}
bench=${REDIS_BENCHMARK:-redis-benchmark}
limit=${REAL_TIMEOUT:-300}
host=127.0.0.1
requests=20000

# The reference server must really be on glibc, even when this script
# itself was started under a preloaded allocator.
# shellcheck source=tests/real/lib.sh
. "$(dirname "$0")/lib.sh"

unset LD_PRELOAD

hk_real_library
command -v "$server" >/dev/null 2>&1 || bail "$server not installed (Debian package: redis-server)"
command -v "$cli" >/dev/null 2>&1 || bail "$cli not installed (Debian package: redis-tools)"
command -v "$bench" >/dev/null 2>&1 || bail "$bench not installed (Debian package: redis-tools)"
server=$(command -v "$server")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-redis.XXXXXX")
pid=
timer=
cleanup() {
    # Only this shell: a child forked for a background command (the timer)
    # and killed before it has exec'd would run the trap too.
    [ "$BASHPID" = "$$" ] || return 0
    # Only the server and the timer this script started, by their PIDs.
    if [ -n "$pid" ]; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    if [ -n "$timer" ]; then
        kill "$timer" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
ulimit -c 0 2>/dev/null || true

check() {
    local label=$1
    shift
    if "$@"; then
        ok "$label"
    else
        not_ok "$label"
    fi
}

# rcli ARGS...: one redis-cli command against the current server.
rcli() {
    timeout "$limit" "$cli" -h "$host" -p "$port" "$@" </dev/null
}

# ---------------------------------------------------------------------------
# Starting and stopping a server.  Readiness and exit are read from the
# server's log, which it writes to a FIFO that this shell holds open on
# fd 3: a blocking read with a bound, no polling.

mkfifo "$tmp/log.fifo"

# start NAME [VAR=VALUE...]: starts a server with the given environment
# on the first free port from a pseudo-random start; sets pid and port.
# Returns non-zero if no server became ready; the log is in $tmp/NAME.log.
start() {
    local name=$1
    shift
    local try line
    port=$((20000 + ($$ * 7 + RANDOM) % 40000))
    for ((try = 0; try < 20; try++, port = 20000 + (port - 20000 + 7919) % 40000)); do
        : >"$tmp/$name.log"
        mkdir -p "$tmp/$name.dir"
        # env execs the server, so $! is the server's own pid.
        env "$@" "$server" --port "$port" --bind "$host" --protected-mode yes \
            --save '' --appendonly no --dir "$tmp/$name.dir" --logfile '' \
            --daemonize no --supervised no --loglevel notice \
            >"$tmp/log.fifo" 2>&1 </dev/null &
        pid=$!
        exec 3<"$tmp/log.fifo"
        while IFS= read -r -t "$limit" line <&3; do
            printf '%s\n' "$line" >>"$tmp/$name.log"
            case $line in
                *"Ready to accept connections"*) return 0 ;;
            esac
        done
        # The log ended (or stalled) before the server was ready.
        exec 3<&-
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=
        grep -q 'Address already in use' "$tmp/$name.log" || return 1
    done
    return 1
}

# stop NAME: SHUTDOWN NOSAVE, then reads the rest of the log until the
# server closes it.  Returns the server's exit status, 124 if it did not
# exit within the bound.
stop() {
    local name=$1 line rc=0
    rcli SHUTDOWN NOSAVE >>"$tmp/$name.shutdown" 2>&1 || true
    while IFS= read -r -t "$limit" line <&3; do
        printf '%s\n' "$line" >>"$tmp/$name.log"
    done || true
    # The log can end a moment before the server has finished exiting, so
    # wait for it, bounded by a timer started beside it: whichever of the
    # two ends first (bash's wait -n -p). A server that never exits is
    # killed and reported as 124, like timeout(1). Both are children of
    # this shell and are ended by their PIDs: no sleep is left behind,
    # whatever happens (cleanup ends the timer too).
    sleep "$limit" >/dev/null 2>&1 &
    timer=$!
    local first=
    wait -n -p first "$pid" "$timer" || rc=$?
    if [ "$first" = "$pid" ]; then
        kill "$timer" 2>/dev/null || true
        wait "$timer" 2>/dev/null || true
    else
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        rc=124
    fi
    timer=
    exec 3<&-
    pid=
    return "$rc"
}

# ---------------------------------------------------------------------------
# The command script replayed on both servers.  Keys are prefixed hk: so
# they cannot meet the benchmark's.

awk 'BEGIN {
    pad = "0123456789abcdefghijklmnopqrstuvwxyz"
    pad = pad "-" pad "-" pad "-" pad "-" pad "-" pad "-" pad "-" pad
    for (i = 1; i <= 3000; i++) {
        printf "SET hk:k:%d value-%d-%0" (1 + i % 200) "d\n", i, i, i
        printf "RPUSH hk:list:%d %d\n", i % 10, i
        printf "HSET hk:hash:%d field:%d %d\n", i % 20, i, i * i
        printf "SADD hk:set:%d member:%d\n", i % 7, i % 500
        printf "ZADD hk:zset %d member:%d\n", (i * 7919) % 10007, i
        printf "INCRBY hk:counter %d\n", i
        # About 300 KiB per string: realloc carries them into the large tier.
        printf "APPEND hk:str:%d chunk-%06d-%s\n", i % 3, i, pad
        if (i % 3 == 0) printf "DEL hk:k:%d\n", i - 1
    }
    printf "GET hk:k:1234\nGET hk:k:2999\nGET hk:k:2998\nGET hk:counter\n"
    for (i = 0; i < 10; i++) printf "LLEN hk:list:%d\nLRANGE hk:list:%d 0 4\nLPOP hk:list:%d 3\n", i, i, i
    for (i = 0; i < 20; i++) printf "HLEN hk:hash:%d\nHGET hk:hash:%d field:%d\n", i, i, i + 20
    for (i = 0; i < 7; i++) printf "SCARD hk:set:%d\nSISMEMBER hk:set:%d member:%d\n", i, i, i * 3
    printf "ZCARD hk:zset\nZRANGE hk:zset 0 9 WITHSCORES\nZRANGEBYSCORE hk:zset 5000 5100\n"
    for (i = 0; i < 3; i++) printf "STRLEN hk:str:%d\nGETRANGE hk:str:%d 280000 280100\n", i, i
    printf "SORT hk:list:3 LIMIT 0 10\nDBSIZE\n"
}' >"$tmp/commands.txt"

# A 1 MiB value, sent with -x and read back.
awk 'BEGIN { for (i = 0; i < 16384; i++) printf "%08d-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123\n", i }' >"$tmp/big.value"

# replay NAME: the command script, then the big value round trip; replies
# in $tmp/NAME.replies; returns non-zero if a client failed.
replay() {
    local name=$1
    timeout "$limit" "$cli" -h "$host" -p "$port" <"$tmp/commands.txt" >"$tmp/$name.replies" 2>&1 || return
    timeout "$limit" "$cli" -h "$host" -p "$port" -x SET hk:big <"$tmp/big.value" >>"$tmp/$name.replies" 2>&1 || return
    rcli --raw GET hk:big >"$tmp/$name.big" 2>&1 || return
    rcli STRLEN hk:big >>"$tmp/$name.replies" 2>&1 || return
    rcli DBSIZE >>"$tmp/$name.replies" 2>&1 || return
}

echo "1..12"
echo "# $("$server" --version | cut -d' ' -f1-3); library: $lib"

# ---------------------------------------------------------------------------
# The reference: the same script on glibc.

ref=yes
if start glibc; then
    ok "reference server starts on $host:$port"
    if replay glibc; then
        ok "command script runs on the reference server"
    else
        ref=no
        not_ok "command script runs on the reference server"
        tail -n 5 "$tmp/glibc.replies" | note
    fi
    stop glibc || true
else
    ref=no
    not_ok "reference server starts"
    not_ok "command script runs on the reference server (no server)"
    tail -n 10 "$tmp/glibc.log" | note
fi

# ---------------------------------------------------------------------------
# The server under hakmem.

if ! start hakmem "LD_PRELOAD=$lib"; then
    not_ok "server starts under hakmem"
    tail -n 20 "$tmp/hakmem.log" | note
    for what in "library mapped" "benchmark" "benchmark values" "random-key benchmark" \
        "script replies" "counter" "big value" "INFO memory" "shutdown"; do
        not_ok "$what (the server did not start)"
    done
    exit 1
fi
info_pid=$(rcli INFO server | tr -d '\r' | sed -n 's/^process_id://p')
if [ "$info_pid" = "$pid" ]; then
    ok "server starts under hakmem on $host:$port (pid $pid)"
else
    not_ok "server starts under hakmem on $host:$port"
    echo "# INFO says process_id '$info_pid', the started server is $pid"
fi

if awk -v want="$(readlink -f "$lib")" '$6 == want { found = 1 } END { exit !found }' "/proc/$pid/maps" 2>/dev/null; then
    ok "the server has the library mapped"
else
    not_ok "the server has the library mapped"
fi

# The brief's benchmark: fixed keys, so its leftovers are known exactly.
rc=0
timeout "$limit" "$bench" -h "$host" -p "$port" -n "$requests" -d 300 -q \
    -t set,get,lpush,lpop,incr </dev/null 2>&1 | tr '\r' '\n' >"$tmp/bench.out" || rc=$?
missing=
for t in SET GET LPUSH LPOP INCR; do
    grep -q "^$t: .* requests per second" "$tmp/bench.out" || missing="$missing $t"
done
if [ "$rc" -eq 0 ] && [ -z "$missing" ]; then
    ok "redis-benchmark -n $requests: set, get, lpush, lpop, incr"
    grep 'requests per second' "$tmp/bench.out" | note
else
    not_ok "redis-benchmark -n $requests: set, get, lpush, lpop, incr"
    echo "# status $rc; missing:${missing:- none}"
    tail -n 10 "$tmp/bench.out" | note
fi

# INCR ran $requests times on one key; LPOP took back every LPUSH; SET
# stored 300 bytes (random ones, so only the length is known).
counter=$(rcli GET 'counter:__rand_int__' 2>&1 || true)
llen=$(rcli LLEN mylist 2>&1 || true)
vlen=$(rcli STRLEN 'key:__rand_int__' 2>&1 || true)
if [ "$counter" = "$requests" ] && [ "$llen" = 0 ] && [ "$vlen" = 300 ]; then
    ok "the benchmark left the values it must have left"
else
    not_ok "the benchmark left the values it must have left"
    echo "# counter '$counter' (want $requests), mylist length '$llen' (want 0), value length '$vlen' (want 300)"
fi

# Random keys and bigger values: tens of thousands of live keys to free.
rc=0
timeout "$limit" "$bench" -h "$host" -p "$port" -n "$requests" -r 50000 -d 2000 -q \
    -t set,lpush,incr </dev/null 2>&1 | tr '\r' '\n' >"$tmp/bench2.out" || rc=$?
keys=$(rcli DBSIZE 2>&1 || true)
if [ "$rc" -eq 0 ] && [ "$(grep -c 'requests per second' "$tmp/bench2.out")" -eq 3 ] &&
    [ "${keys:-0}" -gt 10000 ] 2>/dev/null; then
    ok "redis-benchmark with random keys leaves $keys keys"
else
    not_ok "redis-benchmark with random keys"
    echo "# status $rc, DBSIZE '$keys'"
    tail -n 5 "$tmp/bench2.out" | note
fi

# Free everything, then the script: same replies as on glibc.
flush=$(rcli FLUSHALL 2>&1 || true)
rc=0
replay hakmem || rc=$?
if [ "$ref" = yes ] && [ "$flush" = OK ] && [ "$rc" -eq 0 ] &&
    cmp -s "$tmp/glibc.replies" "$tmp/hakmem.replies" && cmp -s "$tmp/glibc.big" "$tmp/hakmem.big"; then
    ok "after FLUSHALL, the command script's replies are identical to glibc's"
elif [ "$ref" != yes ]; then
    not_ok "after FLUSHALL, the command script's replies are identical to glibc's (no reference)"
else
    not_ok "after FLUSHALL, the command script's replies are identical to glibc's"
    echo "# FLUSHALL said '$flush'; replay status $rc"
    diff -u "$tmp/glibc.replies" "$tmp/hakmem.replies" | head -n 30 | note || true
fi

# Two values known without any reference.
got=$(rcli GET hk:counter 2>&1 || true)
check "hk:counter is the sum 1..3000 (got '$got')" [ "$got" = 4501500 ]
{ cat "$tmp/big.value"; echo; } >"$tmp/big.expected"
check "the 1 MiB value reads back unchanged" cmp -s "$tmp/big.expected" "$tmp/hakmem.big"

info=$(rcli INFO memory 2>&1 | tr -d '\r' || true)
used=$(printf '%s\n' "$info" | sed -n 's/^used_memory://p')
if [ -n "$used" ] && [ "$used" -gt 0 ] 2>/dev/null; then
    ok "INFO memory answers: used_memory $used"
    printf '%s\n' "$info" | grep -E '^(used_memory_human|used_memory_rss_human|mem_allocator):' | note
else
    not_ok "INFO memory answers"
    printf '%s\n' "$info" | head -n 5 | note
fi

rc=0
stop hakmem || rc=$?
if [ "$rc" -eq 0 ] && grep -q 'ready to exit, bye bye' "$tmp/hakmem.log"; then
    ok "SHUTDOWN ends the server with status 0"
else
    not_ok "SHUTDOWN ends the server with status 0"
    echo "# exit status $rc"
    tail -n 10 "$tmp/hakmem.log" | note
fi

# TAP already says what failed; the status is for callers that run this
# script directly rather than through automake's TAP driver.
[ "$failed" -eq 0 ]
