#!/bin/bash
# sqlite-rss.sh: peak RSS of a sqlite3 workload under each allocator.
#
# The workload is bench/size-waste.sh's: a file database, a 20 MB page
# cache, 200,000 rows inserted one statement each in one transaction, an
# index and three queries. Each allocator runs it ROUNDS times, the
# allocators alternating within a round so that a slow spell of a shared
# machine hits all of them; the figure is the median of the peak RSS
# (`/usr/bin/time -f %M`, KiB) and its ratio to glibc's.
#
# Usage: bench/sqlite-rss.sh [-r ROUNDS] [NAME=LIBRARY ...]
#   default allocators: glibc, hakmem (./.libs/libhakmem.so.0), the Debian
#   mimalloc, jemalloc and tcmalloc, and every /work/shared/peers/*.so
#   (HAKMEM_PEERS_DIR), each only if installed.
set -euo pipefail

rounds=5
while getopts r: opt; do
  case $opt in
  r) rounds=$OPTARG ;;
  *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
command -v sqlite3 >/dev/null || { echo "sqlite3 not installed" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not installed (package time)" >&2; exit 2; }

names=(glibc)
libs=("")
if [ $# -gt 0 ]; then
  for a in "$@"; do names+=("${a%%=*}"); libs+=("${a#*=}"); done
else
  [ -e .libs/libhakmem.so.0 ] && { names+=(hakmem); libs+=("$PWD/.libs/libhakmem.so.0"); }
  d=/usr/lib/x86_64-linux-gnu
  for p in mimalloc:libmimalloc.so.2 jemalloc:libjemalloc.so.2 \
    tcmalloc:libtcmalloc_minimal.so.4; do
    [ -e "$d/${p#*:}" ] && { names+=("${p%%:*}"); libs+=("$d/${p#*:}"); }
  done
  for f in "${HAKMEM_PEERS_DIR:-/work/shared/peers}"/*.so; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .so)
    names+=("$n"); libs+=("$f")
  done
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sqlite-rss.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
{
  echo "PRAGMA cache_size = -20000;"
  echo "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, city TEXT, score INTEGER);"
  echo "BEGIN;"
  awk 'BEGIN { for (i = 1; i <= 200000; i++)
    printf "INSERT INTO t VALUES (%d, '"'"'name%d'"'"', '"'"'city%d'"'"', %d);\n",
           i, i, i % 97, (i * 7919) % 100003 }'
  echo "COMMIT;"
  echo "CREATE INDEX t_city ON t (city, score);"
  echo "SELECT city, count(*), sum(score) FROM t GROUP BY city ORDER BY city LIMIT 3;"
  echo "SELECT count(*) FROM t WHERE name LIKE 'name1%';"
  echo "SELECT * FROM t WHERE city = 'city5' ORDER BY score DESC LIMIT 3;"
} >"$tmp/load.sql"

for _ in $(seq 1 "$rounds"); do
  for i in "${!names[@]}"; do
    rm -f "$tmp/db"
    if [ -n "${libs[$i]}" ]; then pre=${libs[$i]}; else pre=; fi
    env -u LD_PRELOAD ${pre:+LD_PRELOAD=$pre} /usr/bin/time -o "$tmp/t" -f %M \
      sqlite3 "$tmp/db" <"$tmp/load.sql" >"$tmp/out.$i"
    cat "$tmp/t" >>"$tmp/rss.$i"
  done
done
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
base=$(median "$tmp/rss.0")
printf '%-12s %10s %7s   %s\n' allocator "peak KiB" "/glibc" "all rounds"
for i in "${!names[@]}"; do
  m=$(median "$tmp/rss.$i")
  printf '%-12s %10d %7.3f   %s\n' "${names[$i]}" "$m" \
    "$(awk -v a="$m" -v b="$base" 'BEGIN { print a / b }')" \
    "$(tr '\n' ' ' <"$tmp/rss.$i")"
done
