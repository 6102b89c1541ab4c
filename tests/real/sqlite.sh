#!/bin/bash
# Real-program test (automake TAP test): the sqlite3 shell under hakmem.
#
# Feeds the sqlite3 command-line shell a generated SQL workload, once on
# glibc and once with hakmem preloaded, each on a fresh database file, and
# requires the same output byte for byte: 100,000 rows inserted as
# separate INSERT statements (so the parser and the prepared-statement
# machinery allocate per statement) and 100,000 more by a recursive CTE,
# indexes, joins, GROUP BY, window functions, string building with
# group_concat and printf, JSON, updates, deletes, VACUUM, an integrity
# check and a full .dump.  Then the same workload runs in an in-memory
# database, where the page cache too lives in malloc'd memory.  Finally
# checks that the library really was mapped into sqlite3.
#
# Environment:
#   HAKMEM_LIB    library to preload (default ./.libs/libhakmem.so.0)
#   SQLITE3       the shell (default sqlite3)
#   REAL_TIMEOUT  seconds one run may take (default 300)

set -euo pipefail

lib=${HAKMEM_LIB:-./.libs/libhakmem.so.0}
sqlite=${SQLITE3:-sqlite3}
limit=${REAL_TIMEOUT:-300}
rows=100000

# shellcheck source=tests/real/lib.sh
. "$(dirname "$0")/lib.sh"

# The reference run must really be on glibc, even when this script itself
# was started under a preloaded allocator.
unset LD_PRELOAD

hk_real_library
command -v "$sqlite" >/dev/null 2>&1 || bail "$sqlite not installed (Debian package: sqlite3)"
sqlite=$(command -v "$sqlite")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-sqlite.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ulimit -c 0 2>/dev/null || true

# ---------------------------------------------------------------------------
# The workload.  Every query has an ORDER BY (or returns one row), so the
# output depends on the data alone.

{
    cat <<'EOF'
.bail on
.headers on
.mode list
PRAGMA journal_mode = MEMORY;
PRAGMA cache_size = -8000;
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT NOT NULL,
    score INTEGER NOT NULL,
    tags TEXT
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer INTEGER NOT NULL REFERENCES customers(id),
    amount INTEGER NOT NULL,
    day INTEGER NOT NULL,
    note TEXT
);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000)
INSERT INTO customers
SELECT x, 'customer-' || x, 'city-' || (x * 7919 % 97), (x * 104729) % 1000,
       printf('%s,%s', substr('abcdefghij', 1 + x % 10, 3), hex(x * x))
FROM c;
BEGIN;
EOF
    # Separate statements: the parser allocates for every one of them.
    awk -v rows="$rows" 'BEGIN {
        for (i = 1; i <= rows; i++) {
            c = 1 + (i * 2654435761) % 10000
            printf "INSERT INTO orders VALUES (%d, %d, %d, %d, '\''note %d %s'\'');\n",
                i, c, (i * 40503) % 10000, i % 365, i, substr("the quick brown fox jumps over the lazy dog", 1 + i % 30, 1 + i % 14)
        }
    }'
    cat <<EOF
COMMIT;
CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, payload TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $rows)
INSERT INTO events
SELECT x, CASE x % 4 WHEN 0 THEN 'click' WHEN 1 THEN 'view' WHEN 2 THEN 'buy' ELSE 'exit' END,
       json_object('n', x, 'sq', x * x % 100003, 'tag', 'e' || (x % 97), 'list', json_array(x % 3, x % 5, x % 7))
FROM c;
EOF
    cat <<'EOF'
CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_day_amount ON orders(day, amount);
CREATE INDEX customers_city ON customers(city, score);
CREATE INDEX events_kind ON events(kind, id);

SELECT count(*) AS customers, sum(score) AS score_sum FROM customers;
SELECT count(*) AS orders, sum(amount) AS amount_sum, min(day), max(day) FROM orders;
SELECT count(*) AS events, sum(json_extract(payload, '$.sq')) AS sq_sum FROM events;

SELECT c.city, count(*) AS n, sum(o.amount) AS total, round(avg(c.score), 3) AS avg_score
FROM orders o JOIN customers c ON c.id = o.customer
GROUP BY c.city ORDER BY total DESC, c.city LIMIT 15;

SELECT o.day, count(DISTINCT o.customer) AS buyers, max(o.amount) AS top
FROM orders o WHERE o.day BETWEEN 100 AND 130
GROUP BY o.day ORDER BY o.day;

SELECT name, total, rnk FROM (
    SELECT c.name, sum(o.amount) AS total,
           rank() OVER (ORDER BY sum(o.amount) DESC, c.name) AS rnk
    FROM customers c JOIN orders o ON o.customer = c.id
    GROUP BY c.id
) WHERE rnk <= 20 ORDER BY rnk;

SELECT city, length(group_concat(name, ';')) AS names_len,
       substr(group_concat(name, ';'), 1, 60) AS first_names
FROM (SELECT city, name FROM customers ORDER BY city, id)
GROUP BY city ORDER BY city LIMIT 10;

SELECT kind, count(*), sum(json_array_length(json_extract(payload, '$.list'))),
       max(json_extract(payload, '$.tag'))
FROM events GROUP BY kind ORDER BY kind;

SELECT customer, amount, day,
       sum(amount) OVER (PARTITION BY customer ORDER BY day, id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS running
FROM orders WHERE customer IN (17, 4242, 9999) ORDER BY customer, day, id;

SELECT upper(substr(note, 1, 12)) AS prefix, count(*)
FROM orders GROUP BY prefix ORDER BY count(*) DESC, prefix LIMIT 10;

UPDATE orders SET note = note || ' / ' || printf('%08x', amount * 2654435761 % 4294967296)
WHERE amount % 3 = 0;
DELETE FROM orders WHERE day % 7 = 3;
DELETE FROM events WHERE kind = 'exit';
UPDATE customers SET tags = tags || ',' || (SELECT count(*) FROM orders WHERE customer = customers.id)
WHERE id % 50 = 0;

SELECT count(*), sum(length(note)), total(amount) FROM orders;
SELECT id, tags FROM customers WHERE id % 50 = 0 ORDER BY id LIMIT 10;

SELECT c.city, count(o.id) AS orders_left
FROM customers c LEFT JOIN orders o ON o.customer = c.id
GROUP BY c.city HAVING orders_left > 0 ORDER BY orders_left DESC, c.city LIMIT 5;

CREATE TEMP TABLE snapshot AS
SELECT customer, group_concat(amount, ',') AS amounts
FROM (SELECT customer, amount FROM orders ORDER BY customer, id)
GROUP BY customer;
SELECT count(*), sum(length(amounts)), max(length(amounts)) FROM snapshot;

VACUUM;
PRAGMA integrity_check;
PRAGMA foreign_key_check;
EOF
} >"$tmp/workload.sql"

# The dump adds the whole database, in text, to the output.
printf '.headers off\n.mode list\n.dump\n' >"$tmp/dump.sql"

# run NAME DB [VAR=VALUE...]: runs the workload on DB and then dumps it;
# output in $tmp/NAME.out and $tmp/NAME.err; emits one TAP line.
run() {
    local name=$1 db=$2
    shift 2
    local rc=0
    # The braces keep bash's own notice of a crash out of the log.
    {
        timeout "$limit" env "$@" "$sqlite" -batch "$db" <"$tmp/workload.sql" >"$tmp/$name.out" 2>"$tmp/$name.err" &&
            if [ "$db" != :memory: ]; then
                timeout "$limit" env "$@" "$sqlite" -batch "$db" <"$tmp/dump.sql" >"$tmp/$name.dump" 2>>"$tmp/$name.err"
            fi
    } 2>/dev/null || rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$tmp/$name.err" ] && grep -qx ok "$tmp/$name.out"; then
        ok "workload runs: $name"
    else
        not_ok "workload runs: $name"
        echo "# $(describe "$rc")"
        tail -n 20 "$tmp/$name.err" | note
    fi
}

# same A B LABEL: compares two output files.
same() {
    if cmp -s "$tmp/$1" "$tmp/$2"; then
        ok "$3"
    else
        not_ok "$3"
        diff -u "$tmp/$1" "$tmp/$2" | head -n 30 | note || true
    fi
}

echo "1..7"
echo "# sqlite3 $("$sqlite" -version | cut -d' ' -f1); $(wc -l <"$tmp/workload.sql") lines of SQL; library: $lib"

run glibc "$tmp/glibc.db"
run hakmem "$tmp/hakmem.db" "LD_PRELOAD=$lib"
same glibc.out hakmem.out "query output identical to glibc"
same glibc.dump hakmem.dump ".dump of the database identical to glibc"
echo "# dump: $(wc -c <"$tmp/hakmem.dump" 2>/dev/null || echo 0) bytes"

run hakmem-memory :memory: "LD_PRELOAD=$lib"
same glibc.out hakmem-memory.out "in-memory database: query output identical to glibc"
head -n 12 "$tmp/hakmem.out" | note

# .system runs a shell whose parent is sqlite3: if ld.so ignored the
# preload, the library is not in sqlite3's maps.
probe_rc=0
{ printf '.system cat /proc/$PPID/maps\n' |
    LD_PRELOAD=$lib timeout "$limit" "$sqlite" -batch :memory: >"$tmp/probe.maps" 2>"$tmp/probe.err"; } 2>/dev/null || probe_rc=$?
if [ "$probe_rc" -eq 0 ] && awk -v want="$(readlink -f "$lib")" '$6 == want { found = 1 } END { exit !found }' "$tmp/probe.maps"; then
    ok "the library is loaded into sqlite3"
else
    not_ok "the library is loaded into sqlite3"
    echo "# probe $(describe "$probe_rc")"
    note <"$tmp/probe.err"
fi

# TAP already says what failed; the status is for callers that run this
# script directly rather than through automake's TAP driver.
[ "$failed" -eq 0 ]
