#!/bin/bash
# Real-program test (automake TAP test): GCC and G++ under hakmem.
#
# Generates a multi-file C program and a C++ program that leans on
# libstdc++ containers, builds each twice, once plainly and once with
# hakmem preloaded into the whole toolchain (driver, cc1, cc1plus, as,
# collect2, ld), and requires that both builds succeed, produce identical
# object files and programs whose output is identical.  The programs are
# then also run with hakmem preloaded.  The compilers are a demanding
# malloc user: large, long-lived graphs of small nodes, obstacks and
# hash tables, and many processes that each start cold.
#
# Environment:
#   HAKMEM_LIB    library to preload (default ./.libs/libhakmem.so.0)
#   CC, CXX       compilers (default gcc, g++)
#   REAL_TIMEOUT  seconds one compiler or program run may take (default 300)

set -euo pipefail

lib=${HAKMEM_LIB:-./.libs/libhakmem.so.0}
cc=${CC:-gcc}
cxx=${CXX:-g++}
limit=${REAL_TIMEOUT:-300}
units=30

# shellcheck source=tests/real/lib.sh
. "$(dirname "$0")/lib.sh"
hk_real_library
command -v "$cc" >/dev/null 2>&1 || bail "$cc not found"
command -v "$cxx" >/dev/null 2>&1 || bail "$cxx not found"

# The reference runs must really be on glibc, even when this script itself
# was started under a preloaded allocator.
unset LD_PRELOAD

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-gcc.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ulimit -c 0 2>/dev/null || true
src=$tmp/src
mkdir "$src" "$tmp/glibc" "$tmp/hakmem"

# ---------------------------------------------------------------------------
# The generated C program: a shared header, a small growable array module,
# one file per unit and a main that prints every unit's checksum.  Units
# come in three flavours so that the program (and the compiler working on
# it) exercises arrays grown by realloc, linked lists of separate blocks and
# strings built piece by piece.  In the templates @N@ is the unit's
# two-digit name and @I@ its number (08 would be a bad octal constant).

cat >"$src/common.h" <<'EOF'
#ifndef GEN_COMMON_H
#define GEN_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define ROTL32(x, r) (((x) << (r)) | ((x) >> (32 - (r))))
#define MIX(h, v) ((h) = ROTL32((h) ^ (uint32_t)(v), 13) * 0x9e3779b1u + 0x7f4a7c15u)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LCG_NEXT(s) ((s) = (s) * 1664525u + 1013904223u)

struct item {
    uint32_t key;
    uint32_t weight;
    char label[24];
};

struct bag {
    struct item *items;
    size_t len;
    size_t cap;
};

void bag_init(struct bag *b);
int bag_push(struct bag *b, const struct item *it);
void bag_sort(struct bag *b);
uint32_t bag_hash(const struct bag *b);
void bag_free(struct bag *b);

typedef uint32_t (*unit_fn)(uint32_t seed);

#endif
EOF

cat >"$src/bag.c" <<'EOF'
#include <stdlib.h>
#include <string.h>

#include "common.h"

void bag_init(struct bag *b)
{
    b->items = NULL;
    b->len = 0;
    b->cap = 0;
}

int bag_push(struct bag *b, const struct item *it)
{
    if (b->len == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        struct item *p = realloc(b->items, cap * sizeof *p);
        if (p == NULL)
            return -1;
        b->items = p;
        b->cap = cap;
    }
    b->items[b->len++] = *it;
    return 0;
}

static int item_cmp(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return strcmp(x->label, y->label);
}

void bag_sort(struct bag *b)
{
    if (b->len > 1)
        qsort(b->items, b->len, sizeof *b->items, item_cmp);
}

uint32_t bag_hash(const struct bag *b)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < b->len; i++) {
        MIX(h, b->items[i].key);
        MIX(h, b->items[i].weight);
        for (const char *c = b->items[i].label; *c; c++)
            MIX(h, *c);
    }
    return h;
}

void bag_free(struct bag *b)
{
    free(b->items);
    bag_init(b);
}
EOF

# Flavour 0: a bag of labelled items, sorted and hashed.
cat >"$src/flavour0.in" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define COUNT_@N@ (200 + @I@ * 37)

struct stats_@N@ {
    uint32_t min, max;
    uint64_t sum;
};

uint32_t unit_@N@(uint32_t seed)
{
    struct bag b;
    struct stats_@N@ st = { UINT32_MAX, 0, 0 };
    bag_init(&b);
    for (int i = 0; i < COUNT_@N@; i++) {
        struct item it;
        LCG_NEXT(seed);
        it.key = seed % 1000u;
        it.weight = (seed >> 10) % 97u;
        snprintf(it.label, sizeof it.label, "u@N@-%d-%u", i, it.weight);
        if (bag_push(&b, &it) != 0)
            abort();
        if (it.key < st.min) st.min = it.key;
        if (it.key > st.max) st.max = it.key;
        st.sum += it.key;
    }
    bag_sort(&b);
    uint32_t h = bag_hash(&b);
    MIX(h, st.min);
    MIX(h, st.max);
    MIX(h, (uint32_t)st.sum);
    bag_free(&b);
    return h;
}
EOF

# Flavour 1: a linked list of individually allocated nodes, reversed.
cat >"$src/flavour1.in" <<'EOF'
#include <stdlib.h>

#include "common.h"

#define NODES_@N@ (300 + @I@ * 11)
#define PAYLOAD_@N@ (1 + @I@ % 9)

struct node_@N@ {
    struct node_@N@ *next;
    uint32_t value;
    uint32_t payload[PAYLOAD_@N@];
};

static struct node_@N@ *reverse_@N@(struct node_@N@ *head)
{
    struct node_@N@ *prev = NULL;
    while (head) {
        struct node_@N@ *next = head->next;
        head->next = prev;
        prev = head;
        head = next;
    }
    return prev;
}

uint32_t unit_@N@(uint32_t seed)
{
    struct node_@N@ *head = NULL;
    for (int i = 0; i < NODES_@N@; i++) {
        struct node_@N@ *nd = malloc(sizeof *nd);
        if (nd == NULL)
            abort();
        nd->value = LCG_NEXT(seed);
        for (size_t k = 0; k < ARRAY_LEN(nd->payload); k++)
            nd->payload[k] = nd->value ^ (uint32_t)k;
        nd->next = head;
        head = nd;
    }
    head = reverse_@N@(head);
    uint32_t h = 0x811c9dc5u;
    while (head) {
        struct node_@N@ *next = head->next;
        MIX(h, head->value);
        MIX(h, head->payload[ARRAY_LEN(head->payload) - 1]);
        free(head);
        head = next;
    }
    return h;
}
EOF

# Flavour 2: a string grown by realloc, then split into words.
cat >"$src/flavour2.in" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define WORDS_@N@ (150 + @I@ * 23)

struct text_@N@ {
    char *buf;
    size_t len, cap;
};

static void append_@N@(struct text_@N@ *t, const char *s)
{
    size_t n = strlen(s);
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 16;
        while (cap < t->len + n + 1)
            cap = cap * 3 / 2 + 1;
        char *p = realloc(t->buf, cap);
        if (p == NULL)
            abort();
        t->buf = p;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n + 1);
    t->len += n;
}

uint32_t unit_@N@(uint32_t seed)
{
    struct text_@N@ t = { NULL, 0, 0 };
    char word[32];
    for (int i = 0; i < WORDS_@N@; i++) {
        LCG_NEXT(seed);
        snprintf(word, sizeof word, "%x%c", seed % 4099u, i % 5 ? ' ' : ',');
        append_@N@(&t, word);
    }
    uint32_t h = (uint32_t)t.len;
    size_t words = 0;
    for (char *w = strtok(t.buf, " ,"); w; w = strtok(NULL, " ,")) {
        words++;
        MIX(h, strtoul(w, NULL, 16));
    }
    MIX(h, words);
    free(t.buf);
    return h;
}
EOF

c_sources=(bag.c)
{
    echo '/* Generated by gcc.sh: the table of units. */'
    echo '#include "common.h"'
    for ((i = 0; i < units; i++)); do
        printf 'uint32_t unit_%02d(uint32_t seed);\n' "$i"
    done
    echo 'const unit_fn unit_table[] = {'
    for ((i = 0; i < units; i++)); do
        printf '    unit_%02d,\n' "$i"
    done
    echo '};'
    echo 'const size_t unit_count = ARRAY_LEN(unit_table);'
} >"$src/table.c"
c_sources+=(table.c)
for ((i = 0; i < units; i++)); do
    id=$(printf '%02d' "$i")
    sed -e "s/@N@/$id/g" -e "s/@I@/$i/g" "$src/flavour$((i % 3)).in" >"$src/unit_$id.c"
    c_sources+=("unit_$id.c")
done

cat >"$src/main.c" <<'EOF'
#include <inttypes.h>
#include <stdio.h>

#include "common.h"

extern const unit_fn unit_table[];
extern const size_t unit_count;

int main(void)
{
    uint32_t total = 0;
    for (size_t i = 0; i < unit_count; i++) {
        uint32_t h = unit_table[i]((uint32_t)i * 2654435761u + 1u);
        printf("unit %02zu %08" PRIx32 "\n", i, h);
        MIX(total, h);
    }
    printf("total %08" PRIx32 " over %zu units\n", total, unit_count);
    return 0;
}
EOF
c_sources+=(main.c)

# ---------------------------------------------------------------------------
# The generated C++ program: containers whose nodes and buffers all come
# from operator new, which libstdc++ implements with malloc.

cat >"$src/containers.cc" <<'EOF'
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

struct Record {
    std::string name;
    std::vector<int> values;
    std::map<std::string, int> attrs;
};

std::uint32_t next(std::uint32_t &s) { return s = s * 1664525u + 1013904223u; }

std::uint64_t fnv(const std::string &s, std::uint64_t h = 1469598103934665603ull)
{
    for (unsigned char c : s)
        h = (h ^ c) * 1099511628211ull;
    return h;
}

} // namespace

int main()
{
    std::uint32_t seed = 12345;
    std::vector<Record> records;
    for (int i = 0; i < 20000; i++) {
        Record r;
        r.name = "record-" + std::to_string(next(seed) % 100000) + "-" + std::to_string(i);
        for (std::uint32_t k = 0, n = next(seed) % 16; k < n; k++)
            r.values.push_back(static_cast<int>(next(seed) % 1000));
        for (std::uint32_t k = 0, n = next(seed) % 6; k < n; k++)
            r.attrs["attr" + std::to_string(next(seed) % 20)] = static_cast<int>(k);
        records.push_back(std::move(r));
    }
    std::sort(records.begin(), records.end(),
              [](const Record &a, const Record &b) { return a.name < b.name; });

    std::map<std::string, std::vector<std::size_t>> index;
    std::unordered_map<int, int> histogram;
    std::uint64_t h = 0;
    for (std::size_t i = 0; i < records.size(); i++) {
        const Record &r = records[i];
        index[r.name.substr(0, 9)].push_back(i);
        for (int v : r.values)
            histogram[v]++;
        for (const auto &kv : r.attrs)
            h = fnv(kv.first, h) + static_cast<std::uint64_t>(kv.second);
        h = fnv(r.name, h);
    }

    std::vector<std::unique_ptr<std::string>> owned;
    std::ostringstream text;
    for (const auto &kv : index) {
        owned.push_back(std::make_unique<std::string>(kv.first));
        text << kv.first << ':' << kv.second.size() << ';';
    }
    std::vector<std::pair<int, int>> hist(histogram.begin(), histogram.end());
    std::sort(hist.begin(), hist.end());
    std::uint64_t hh = 0;
    for (const auto &p : hist)
        hh = hh * 31 + static_cast<std::uint64_t>(p.first) * 7 + static_cast<std::uint64_t>(p.second);

    std::cout << "records " << records.size() << '\n'
              << "first " << records.front().name << '\n'
              << "last " << records.back().name << '\n'
              << "buckets " << index.size() << " owned " << owned.size() << '\n'
              << "histogram " << hist.size() << ' ' << hh << '\n'
              << "text " << text.str().size() << ' ' << fnv(text.str()) << '\n'
              << "hash " << h << '\n';
    return 0;
}
EOF

lines=$(cat "$src"/*.c "$src"/*.h "$src"/*.cc | wc -l)

# ---------------------------------------------------------------------------
# Building and running.

# tool OUT_PREFIX [VAR=VALUE...] -- COMMAND...: runs one command in $src,
# stderr appended to OUT_PREFIX.err; returns its status.
tool() {
    local log=$1
    shift
    local envs=()
    while [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    shift
    (cd "$src" && timeout "$limit" env "${envs[@]}" "$@") </dev/null 2>>"$log.err"
}

# build_c DIR [VAR=VALUE...]: compiles every C file separately (no make,
# so nothing runs in parallel) and links DIR/prog.
build_c() {
    local dir=$1
    shift
    local f objs=()
    : >"$dir/c.err"
    for f in "${c_sources[@]}"; do
        tool "$dir/c" "$@" -- "$cc" -std=c11 -O2 -Wall -Wextra -c "$f" -o "$dir/${f%.c}.o" || return
        objs+=("$dir/${f%.c}.o")
    done
    tool "$dir/c" "$@" -- "$cc" -O2 -o "$dir/prog" "${objs[@]}" || return
}

# build_cxx DIR [VAR=VALUE...]: compiles and links DIR/cxxprog.
build_cxx() {
    local dir=$1
    shift
    : >"$dir/cxx.err"
    tool "$dir/cxx" "$@" -- "$cxx" -std=c++17 -O2 -Wall -Wextra -c containers.cc -o "$dir/containers.o" || return
    tool "$dir/cxx" "$@" -- "$cxx" -O2 -o "$dir/cxxprog" "$dir/containers.o" || return
}

# check_build WHAT DIR LABEL [VAR=VALUE...]: runs build_WHAT and emits one
# TAP line; a build passes only if it succeeds without a word on stderr.
# Returns the build's own status, so that the outputs of a build that
# merely complained can still be compared.
check_build() {
    local what=$1 dir=$2 label=$3
    shift 3
    local rc=0
    { "build_$what" "$dir" "$@"; } 2>/dev/null || rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$dir/$what.err" ]; then
        ok "$label"
        return 0
    fi
    not_ok "$label"
    if [ "$rc" -eq 0 ]; then
        echo "# the build succeeded but wrote to stderr:"
    else
        echo "# the build failed: $(describe "$rc")"
    fi
    tail -n 20 "$dir/$what.err" | note
    return "$rc"
}

# same_objects LABEL OBJ...: compares the named objects of both builds.
same_objects() {
    local label=$1 f differ=()
    shift
    for f in "$@"; do
        cmp -s "$tmp/glibc/$f" "$tmp/hakmem/$f" || differ+=("$f")
    done
    if [ ${#differ[@]} -eq 0 ]; then
        ok "$label"
    else
        not_ok "$label"
        echo "# differing: ${differ[*]}"
    fi
}

# same_output LABEL REFERENCE [VAR=VALUE...] -- PROGRAM: runs PROGRAM and
# compares its output with the file REFERENCE.
same_output() {
    local label=$1 ref=$2
    shift 2
    local envs=()
    while [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    shift
    local out=$tmp/run.out err=$tmp/run.err rc=0
    # The braces keep bash's own notice of a crash out of the log.
    { timeout "$limit" env "${envs[@]}" "$1" </dev/null >"$out" 2>"$err"; } 2>/dev/null || rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$err" ] && cmp -s "$ref" "$out"; then
        ok "$label"
    else
        not_ok "$label"
        echo "# $(describe "$rc")"
        tail -n 10 "$err" | note
        diff -u "$ref" "$out" | head -n 20 | note || true
    fi
}

echo "1..10"
echo "# ${#c_sources[@]} C files and one C++ file, $lines lines; library: $lib"

c_glibc=yes c_hakmem=yes
check_build c "$tmp/glibc" "$cc builds the C program" || c_glibc=no
check_build c "$tmp/hakmem" "$cc builds the C program under hakmem" "LD_PRELOAD=$lib" || c_hakmem=no

if [ $c_glibc = yes ] && [ $c_hakmem = yes ]; then
    objs=()
    for f in "${c_sources[@]}"; do
        objs+=("${f%.c}.o")
    done
    same_objects "C object files identical under hakmem" "${objs[@]}" prog
else
    not_ok "C object files identical under hakmem (a build failed)"
fi

if [ $c_glibc = yes ] && timeout "$limit" "$tmp/glibc/prog" >"$tmp/c.ref" 2>"$tmp/c.referr" &&
    [ ! -s "$tmp/c.referr" ]; then
    if [ $c_hakmem = yes ]; then
        same_output "C program built under hakmem gives the same output" "$tmp/c.ref" -- "$tmp/hakmem/prog"
    else
        not_ok "C program built under hakmem gives the same output (its build failed)"
    fi
    same_output "C program runs under hakmem" "$tmp/c.ref" "LD_PRELOAD=$lib" -- "$tmp/glibc/prog"
else
    not_ok "C program built under hakmem gives the same output (the reference build does not run)"
    not_ok "C program runs under hakmem (the reference build does not run)"
fi

cxx_glibc=yes cxx_hakmem=yes
check_build cxx "$tmp/glibc" "$cxx builds the C++ program" || cxx_glibc=no
check_build cxx "$tmp/hakmem" "$cxx builds the C++ program under hakmem" "LD_PRELOAD=$lib" || cxx_hakmem=no

if [ $cxx_glibc = yes ] && [ $cxx_hakmem = yes ]; then
    same_objects "C++ object file identical under hakmem" containers.o cxxprog
else
    not_ok "C++ object file identical under hakmem (a build failed)"
fi

if [ $cxx_glibc = yes ] && timeout "$limit" "$tmp/glibc/cxxprog" >"$tmp/cxx.ref" 2>"$tmp/cxx.referr" &&
    [ ! -s "$tmp/cxx.referr" ]; then
    if [ $cxx_hakmem = yes ]; then
        same_output "C++ program built under hakmem gives the same output" "$tmp/cxx.ref" -- "$tmp/hakmem/cxxprog"
    else
        not_ok "C++ program built under hakmem gives the same output (its build failed)"
    fi
    same_output "C++ program runs under hakmem" "$tmp/cxx.ref" "LD_PRELOAD=$lib" -- "$tmp/glibc/cxxprog"
else
    not_ok "C++ program built under hakmem gives the same output (the reference build does not run)"
    not_ok "C++ program runs under hakmem (the reference build does not run)"
fi

# TAP already says what failed; the status is for callers that run this
# script directly rather than through automake's TAP driver.
[ "$failed" -eq 0 ]
