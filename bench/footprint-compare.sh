#!/usr/bin/env bash
# footprint-compare.sh - the footprint figures of every allocator in one
# run: what the footprint issue's targets are stated in.
#
# usage: footprint-compare.sh [-B BUILDDIR] [-n RUNS] [NAME=PATH.so ...]
#   -B BUILDDIR  build tree with bench/footprint and bench/idle-threads and
#                .libs/libhakmem.so.0 (default: the current directory)
#   -n RUNS      runs per allocator and case, round-robin (default 5)
#   NAME=PATH.so one more allocator; without any, the columns are glibc,
#                hakmem, hakmem+diet (HAKMEM_TINY_MEM_DIET=1), Debian's
#                mimalloc, jemalloc and tcmalloc when installed, and every
#                *.so of the peers directory (HAKMEM_PEERS_DIR, default
#                ../shared/peers beside the source tree) when it exists.
#
# Cases, each figure the median over the runs:
#   fragmentation  bench/footprint 200 1: final RSS (final_kb), and its
#                  ratio to glibc's;
#   idle-4, idle-16  bench/idle-threads T 60 200 300 (T threads allocate
#                  and free 60 blocks of 200 KiB each, then stay alive and
#                  idle past the purge delay): idle_kb - base_kb, what the
#                  idle threads pin; and trim_kb - base_kb after
#                  malloc_trim(0).
# Prints a Markdown table. RSS, not time, so a noisy machine does not
# change the figures much; runs still alternate allocators.
set -u
script_dir=$(cd "$(dirname "$0")" && pwd)
builddir=.
runs=5
while getopts ':B:n:' opt; do
    case $opt in
        B) builddir=$OPTARG ;;
        n) runs=$OPTARG ;;
        *) sed -n '/^# usage:/,/^#                ..\/shared/p' "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
hakmem=$builddir/.libs/libhakmem.so.0
for prog in footprint idle-threads; do
    [ -x "$builddir/bench/$prog" ] || { echo "footprint-compare: no $builddir/bench/$prog" >&2; exit 2; }
done
[ -e "$hakmem" ] || { echo "footprint-compare: no $hakmem" >&2; exit 2; }

names=() libs=() envs=()
add() { names+=("$1"); libs+=("$2"); envs+=("$3"); }
if [ $# -eq 0 ]; then
    add glibc "" ""
    add hakmem "$hakmem" ""
    add hakmem+diet "$hakmem" "HAKMEM_TINY_MEM_DIET=1"
    deb=/usr/lib/x86_64-linux-gnu
    for p in mimalloc:libmimalloc.so.2 jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4; do
        [ -e "$deb/${p#*:}" ] && add "${p%%:*}" "$deb/${p#*:}" ""
    done
    peers=${HAKMEM_PEERS_DIR:-$script_dir/../../shared/peers}
    if [ -d "$peers" ]; then
        for so in "$peers"/*.so; do
            [ -e "$so" ] && add "$(basename "$so" .so)" "$so" ""
        done
    fi
else
    for spec in "$@"; do add "${spec%%=*}" "${spec#*=}" ""; done
fi

# field NAME LINE: the value of NAME=... in a result line
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$2"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=${#names[@]}
for ((r = 0; r < runs; r++)); do
    for ((k = 0; k < n; k++)); do
        i=$(((k + r) % n))
        pre=${libs[$i]:+LD_PRELOAD=${libs[$i]}}
        line=$(env $pre ${envs[$i]} "$builddir/bench/footprint" 200 1 | grep '^result:')
        field final_kb "$line" >>"$tmp/frag.$i"
        for t in 4 16; do
            line=$(env $pre ${envs[$i]} "$builddir/bench/idle-threads" "$t" 60 200 300 | grep '^result:')
            base=$(field base_kb "$line")
            echo $(($(field idle_kb "$line") - base)) >>"$tmp/idle$t.$i"
            echo $(($(field trim_kb "$line") - base)) >>"$tmp/trim$t.$i"
        done
    done
done

glibc_frag=
echo "| allocator | fragmentation final RSS (KiB) | ratio to glibc | idle-4 pinned (KiB) | after trim | idle-16 pinned (KiB) | after trim |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for ((i = 0; i < n; i++)); do
    frag=$(median <"$tmp/frag.$i")
    [ "${names[$i]}" = glibc ] && glibc_frag=$frag
    ratio=n/a
    [ -n "$glibc_frag" ] && ratio=$(awk -v a="$frag" -v b="$glibc_frag" 'BEGIN { printf "%.3f", a / b }')
    echo "| ${names[$i]} | $frag | $ratio | $(median <"$tmp/idle4.$i") | $(median <"$tmp/trim4.$i") | $(median <"$tmp/idle16.$i") | $(median <"$tmp/trim16.$i") |"
done
echo
echo "$runs runs each, round-robin; revision $(git -C "$script_dir" rev-parse --short HEAD 2>/dev/null || echo unknown)"
