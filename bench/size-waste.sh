#!/bin/bash
# size-waste.sh: which request sizes real programs ask malloc for most, and
# how much of each block the size classes waste.
#
# Runs generated workloads of sqlite3, python3, git, gcc/g++ and node (each
# one skipped, and said so, when the program is missing) under
# bench/size-hist.c, an LD_PRELOAD shim that counts the exact size of
# every request and passes it on to the library below it. Then asks each
# library given (by default this build's) for the block size it serves
# each request size with (malloc_usable_size, which hakmem answers with
# the class size), and prints per program its most used request sizes with
# their count, class and waste = (class - request) / class, and the
# bytes-weighted waste of those top sizes: sum(count * (class - request)) /
# sum(count * class).
#
# Usage: bench/size-waste.sh [-t TOP] [-o DIR] [LIB...]
#   LIB         a hakmem build directory or library (default: the build
#               directory this is run from); with several, each gets its
#               columns (to compare class tables), the first one is the
#               library the workloads run on
#   -t TOP      sizes per program: the TOP most frequent and the TOP with
#               most bytes (default 12)
#   -o DIR      keep the histograms there (default: a temporary directory)
# Sizes up to 256 KiB are served by the size classes; bigger ones go to the
# large tier (page runs) and are listed with class "large".
set -euo pipefail

top=12
out=
while getopts t:o: opt; do
  case $opt in
  t) top=$OPTARG ;;
  o) out=$OPTARG ;;
  *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
builds=("$@")
[ ${#builds[@]} -gt 0 ] || builds=(.)
here=$(cd "$(dirname "$0")" && pwd)
libs=()
for b in "${builds[@]}"; do
  [ -d "$b" ] && b=$b/.libs/libhakmem.so.0
  [ -e "$b" ] || { echo "no $b" >&2; exit 2; }
  libs+=("$(cd "$(dirname "$b")" && pwd)/$(basename "$b")")
done
lib=${libs[0]}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/size-waste.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
[ -n "$out" ] || out=$tmp/hist
mkdir -p "$out"
cc=${CC:-cc}
$cc -O2 -shared -fPIC -o "$tmp/size-hist.so" "$here/size-hist.c" -ldl -lpthread
cat >"$tmp/usable.c" <<'C'
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  for (size_t s = 1; s <= 256 * 1024; s++) {
    void *p = malloc(s);
    printf("%zu %zu\n", s, malloc_usable_size(p));
    free(p);
  }
  return 0;
}
C
$cc -O2 -o "$tmp/usable" "$tmp/usable.c"

# Runs "$@" with the shim in front of hakmem; histograms go to $out/$name.
measure() {
  local name=$1
  shift
  mkdir -p "$out/$name"
  rm -f "$out/$name"/hist.*
  SIZE_HIST_DIR=$out/$name LD_PRELOAD="$tmp/size-hist.so $lib" "$@"
}

work=$tmp/work
mkdir -p "$work"

# sqlite3: a table of 200,000 rows inserted one statement each in one
# transaction, an index, queries; a file database, so that the page cache
# (1 page + its header per block) is what sqlite keeps in malloc.
if command -v sqlite3 >/dev/null; then
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
  } >"$work/load.sql"
  rm -f "$work/db.sqlite"
  measure sqlite sqlite3 "$work/db.sqlite" <"$work/load.sql" >/dev/null
else
  echo "# sqlite3 not installed: skipped"
fi

# python3: many small objects built, dumped and parsed with json.
if command -v python3 >/dev/null; then
  cat >"$work/load.py" <<'PY'
import json
rows = [{"id": i, "name": "user%d" % i, "tags": ["t%d" % (i % 7), "x"],
         "score": i * 0.5, "nested": {"a": i, "b": [i, i + 1]}}
        for i in range(200000)]
text = json.dumps(rows)
back = json.loads(text)
chunks = [json.dumps(r, sort_keys=True) for r in back[:50000]]
print(len(text), len(back), sum(len(c) for c in chunks))
PY
  measure python python3 "$work/load.py" >/dev/null
else
  echo "# python3 not installed: skipped"
fi

# git: a generated repository of 400 files over 20 commits, log, gc.
if command -v git >/dev/null; then
  repo=$work/repo
  rm -rf "$repo"
  mkdir -p "$repo"
  (
    cd "$repo"
    export GIT_CONFIG_NOSYSTEM=1 HOME=$work GIT_AUTHOR_NAME=b \
      GIT_AUTHOR_EMAIL=b@example.org GIT_COMMITTER_NAME=b \
      GIT_COMMITTER_EMAIL=b@example.org
    measure git git init -q .
    for c in $(seq 1 20); do
      for f in $(seq 1 400); do
        [ $(((f + c) % 5)) -eq 0 ] || [ "$c" -eq 1 ] || continue
        awk -v f="$f" -v c="$c" 'BEGIN { for (i = 0; i < 60; i++)
          printf "file %d line %d commit %d %s\n", f, i, c, (i * f) % 1000 }' \
          >"$repo/f$f.txt"
      done
      SIZE_HIST_DIR=$out/git LD_PRELOAD="$tmp/size-hist.so $lib" git add -A
      SIZE_HIST_DIR=$out/git LD_PRELOAD="$tmp/size-hist.so $lib" \
        git commit -q -m "commit $c"
    done
    SIZE_HIST_DIR=$out/git LD_PRELOAD="$tmp/size-hist.so $lib" git log --stat >/dev/null
    SIZE_HIST_DIR=$out/git LD_PRELOAD="$tmp/size-hist.so $lib" git gc -q
  )
else
  echo "# git not installed: skipped"
fi

# gcc/g++: a 12-file C program and a C++ file using the standard containers.
if command -v gcc >/dev/null && command -v g++ >/dev/null; then
  src=$work/src
  mkdir -p "$src"
  for u in $(seq 1 12); do
    cat >"$src/u$u.c" <<C
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node$u { struct node$u *next; int v; char name[24]; };
static struct node$u *push$u(struct node$u *h, int v) {
  struct node$u *n = malloc(sizeof *n);
  n->next = h; n->v = v; snprintf(n->name, sizeof n->name, "n%d", v);
  return n;
}
long unit$u(int k) {
  struct node$u *h = NULL; long s = 0;
  for (int i = 0; i < k; i++) h = push$u(h, i * $u);
  while (h) { struct node$u *n = h->next; s += h->v + (long)strlen(h->name); free(h); h = n; }
  return s;
}
C
  done
  {
    for u in $(seq 1 12); do echo "long unit$u(int);"; done
    echo '#include <stdio.h>'
    echo 'int main(void) { long s = 0;'
    for u in $(seq 1 12); do echo "  s += unit$u(1000);"; done
    # shellcheck disable=SC2028 # the \n is C's, for the program
    echo '  printf("%ld\n", s); return 0; }'
  } >"$src/main.c"
  cat >"$src/cxx.cc" <<'CXX'
#include <iostream>
#include <map>
#include <string>
#include <vector>
#include <unordered_map>
#include <algorithm>
int main() {
  std::map<std::string, std::vector<int>> m;
  std::unordered_map<int, std::string> u;
  for (int i = 0; i < 1000; i++) { m["k" + std::to_string(i % 50)].push_back(i); u[i] = std::to_string(i); }
  std::vector<std::string> keys;
  for (auto &kv : m) keys.push_back(kv.first);
  std::sort(keys.begin(), keys.end());
  std::cout << keys.size() << " " << u.size() << std::endl;
}
CXX
  measure gcc gcc -O2 -o "$work/prog" "$src"/u*.c "$src/main.c"
  measure gcc g++ -O2 -o "$work/cxx" "$src/cxx.cc"
else
  echo "# gcc/g++ not installed: skipped"
fi

# node: objects built and serialised with JSON (V8 keeps its objects in its
# own heap; what reaches malloc is the runtime's and the parser's).
if command -v node >/dev/null; then
  cat >"$work/load.js" <<'JS'
const rows = [];
for (let i = 0; i < 200000; i++)
  rows.push({ id: i, name: "user" + i, tags: ["t" + (i % 7), "x"], nested: { a: i } });
const text = JSON.stringify(rows);
const back = JSON.parse(text);
console.log(text.length, back.length);
JS
  measure node node "$work/load.js" >/dev/null
else
  echo "# node not installed: skipped"
fi

# ---------------------------------------------------------------------------
# The tables.
n=0
for b in "${libs[@]}"; do
  LD_PRELOAD=$b "$tmp/usable" >"$tmp/usable.$n"
  n=$((n + 1))
done
for prog in sqlite python git gcc node; do
  ls "$out/$prog"/hist.* >/dev/null 2>&1 || continue
  cat "$out/$prog"/hist.* >"$tmp/all.$prog"
  python3 - "$prog" "$top" "$tmp/all.$prog" "${builds[@]}" <<'PY' || exit 1
import os, sys
prog, top, hist, builds = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
tmp = os.path.dirname(hist)
counts = {}
for line in open(hist):
    s, c = map(int, line.split())
    counts[s] = counts.get(s, 0) + c
tables = []
for i in range(len(builds)):
    t = {}
    for line in open(os.path.join(tmp, "usable.%d" % i)):
        s, u = map(int, line.split())
        t[s] = u
    tables.append(t)
total = sum(counts.values())
small = {s: c for s, c in counts.items() if 0 < s <= 256 * 1024}
by_count = sorted(small.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
by_bytes = sorted(small.items(), key=lambda kv: (-kv[0] * kv[1], kv[0]))[:top]
ranked = sorted(set(by_count) | set(by_bytes), key=lambda kv: (-kv[1], kv[0]))
allbytes = sum(s * c for s, c in counts.items())
print("## %s: %d requests, %d distinct sizes; these %d sizes (top %d by count"
      " and by bytes) = %.1f%% of requests, %.1f%% of bytes"
      % (prog, total, len(counts), len(ranked), top,
         100.0 * sum(c for _, c in ranked) / max(total, 1),
         100.0 * sum(s * c for s, c in ranked) / max(allbytes, 1)))
hdr = "%8s %10s" % ("request", "count")
for b in builds:
    hdr += " | %7s %6s" % ("class", "waste")
print(hdr + "   (columns per build: " + ", ".join(builds) + ")")
for s, c in ranked:
    row = "%8d %10d" % (s, c)
    for t in tables:
        k = t[s]
        row += " | %7d %5.1f%%" % (k, 100.0 * (k - s) / k)
    print(row)
for b, t in zip(builds, tables):
    b = os.path.basename(b)
    use = sum(c * t[s] for s, c in ranked)
    waste = sum(c * (t[s] - s) for s, c in ranked)
    # Below 128 bytes the 16-byte step (alignment) decides the block, not
    # the class table: those sizes are left out of "worst".
    free_sizes = [s for s, _ in ranked if t[s] != max(16, (s + 15) // 16 * 16)]
    worst = max([((t[s] - s) / t[s], s) for s in free_sizes] or [(0.0, 0)])
    allw = sum(c * (t[s] - s) for s, c in small.items())
    allu = sum(c * t[s] for s, c in small.items())
    print("  %s: top-%d bytes-weighted waste %.1f%%, worst %.1f%% (size %d); "
          "all sizes <= 256K: %.1f%%" % (b, len(ranked), 100.0 * waste / use,
          100.0 * worst[0], worst[1], 100.0 * allw / allu))
print()
PY
done
