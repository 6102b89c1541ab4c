#!/usr/bin/env python3
# gen-corpus.py: writes the seed corpus of tests/tools/fuzz_alloc.c into
# tests/fuzz/corpus/ (or the directory given as the only argument).
#
# Why seeds at all: libFuzzer starts from short inputs and grows them
# slowly, so without seeds a short run spends its time on programs of a few
# calls. Each seed here is a small program in the harness's encoding that
# reaches one area at once (threads, bursts that fill slabs, the large
# tier, failing calls), and the fuzzer mutates from there. The encoding is
# described in fuzz_alloc.c; keep the two in step. The files are checked
# in; rerun this after changing the encoding.
import os
import sys

KIB = 1024
MIB = KIB * KIB


def size(n):
    """The bytes take_size() decodes back to n."""
    if n < 256:
        return [0, n]
    if n <= KIB:
        return [128, n & 255, n >> 8]
    if n <= 256 * KIB:
        return [192, n & 255, (n >> 8) & 255, n >> 16]
    if n < MIB:
        m = n - 256 * KIB
        return [240, m & 255, (m >> 8) & 255, m >> 16]
    # MIB + take24 * 3 % (3 MIB): pick the 24-bit value whose triple lands
    # on n (n - MIB must be a multiple of 3 for an exact match).
    m = (n - MIB) // 3
    return [252, m & 255, (m >> 8) & 255, m >> 16]


def align(a):
    """The bytes take_align() decodes back to a (a power of two up to
    2 MiB), or an arbitrary 16-bit value."""
    if a & (a - 1) == 0 and a <= 2 * MIB:
        return [a.bit_length() - 1]
    return [0xe0, a & 255, a >> 8]


def malloc(slot, n):
    return [0, slot] + size(n)


def calloc(slot, n, parts=1):
    return [3, slot] + size(n) + [parts - 1]


def realloc(slot, n):
    return [4, slot] + size(n)


def reallocarray(slot, n, parts=1):
    return [5, slot] + size(n) + [parts - 1]


def posix_memalign(slot, a, n):
    return [6, slot] + align(a) + size(n)


def aligned_alloc(slot, a, n):
    return [7, slot] + align(a) + size(n)


def memalign(slot, a, n):
    return [8, slot] + align(a) + size(n)


def valloc(slot, n, pvalloc=False):
    return [9, slot, 1 if pvalloc else 0] + size(n)


def free(slot):
    return [10, slot]


def check(slot):
    return [13, slot]


def invalid(kind, slot=0, x=0):
    return [14, kind, slot, x & 255, x >> 8]


def burst(count, n, order=0, remote=False):
    return [2, count - 1, order | (4 if remote else 0)] + size(n)


TRIM = [15]
SWITCH_THREAD = [0xf8]
RETIRE_HELPER = [0xfc]


def program(*ops):
    out = []
    for op in ops:
        out += op
    return bytes(out)


SEEDS = {
    # Every tier, then grown and shrunk in place and across tiers.
    "tiers.bin": program(
        malloc(0, 1), malloc(1, 16), malloc(2, 100), malloc(3, 1024),
        malloc(4, 1025), malloc(5, 64 * KIB), malloc(6, 256 * KIB),
        malloc(7, 256 * KIB + 1), malloc(8, 2 * MIB - 64), malloc(9, 0),
        check(0), check(7), realloc(0, 200), realloc(3, 10),
        realloc(4, 300 * KIB), realloc(7, 100), realloc(8, 3 * MIB + 1),
        free(1), free(5), malloc(1, 48), calloc(5, 4096, 16), check(5)),
    # Alignments from 8 bytes to 2 MiB through all three calls, plus
    # alignments that are not powers of two.
    "aligned.bin": program(
        posix_memalign(0, 8, 24), posix_memalign(1, 64, 1000),
        posix_memalign(2, 4096, 4096), posix_memalign(3, 8192, 100),
        aligned_alloc(4, 16, 32), aligned_alloc(5, 1024, 5000),
        aligned_alloc(6, 65536, 70000), memalign(7, 512, 512),
        memalign(8, 1 << 20, 3000), memalign(9, 48, 48),
        posix_memalign(10, 12, 64), aligned_alloc(11, 3000, 64),
        valloc(12, 1), valloc(13, 5000, pvalloc=True),
        valloc(14, 0, pvalloc=True), realloc(2, 10000), check(6)),
    # Blocks of a helper thread freed by the main thread (remote frees),
    # then the helper exits with blocks live and the main thread frees them
    # into the abandoned slabs.
    "threads.bin": program(
        SWITCH_THREAD, *[malloc(i, 32 + 16 * i) for i in range(16)],
        malloc(16, 5000), malloc(17, 300 * KIB), SWITCH_THREAD,
        *[free(i) for i in range(0, 16, 2)], malloc(0, 40),
        RETIRE_HELPER, *[free(i) for i in range(1, 16, 2)], realloc(16, 9000),
        SWITCH_THREAD, malloc(1, 48), free(17), SWITCH_THREAD, TRIM),
    # Bursts that fill whole slabs of tiny and medium classes, freed
    # forwards, backwards and interleaved, locally and by the helper.
    "bursts.bin": program(
        burst(256, 1024, 0), burst(256, 1024, 1, remote=True),
        burst(200, 256, 2), burst(64, 16, 0, remote=True),
        burst(16, 65536, 1), burst(9, 60000, 2, remote=True),
        RETIRE_HELPER, burst(256, 512, 0), TRIM),
    # calloc into recycled (dirty) blocks and into recycled large mappings.
    "calloc.bin": program(
        *[malloc(i, 700) for i in range(8)], *[free(i) for i in range(8)],
        *[calloc(i, 700) for i in range(8)],
        malloc(8, 600 * KIB), free(8), calloc(8, 600 * KIB, 16),
        malloc(9, 3 * MIB + 1), free(9), calloc(9, 3 * MIB + 1),
        reallocarray(10, 4096, 16), reallocarray(10, 64, 4), check(10)),
    # Calls that must fail, each leaving the blocks alone.
    "invalid.bin": program(
        malloc(0, 100), malloc(1, 400 * KIB),
        *[invalid(k, k % 2, 1000 * k) for k in range(8)],
        invalid(6, 0, 0), invalid(7, 1, 65535), check(0), check(1)),
    # The large tier: growth by moving pages, the cache, trimming it.
    "large.bin": program(
        malloc(0, 300 * KIB), realloc(0, 900 * KIB), realloc(0, 3 * MIB + 1),
        realloc(0, 1 * MIB + 2), malloc(1, 700 * KIB), free(1),
        malloc(2, 650 * KIB), aligned_alloc(3, 1 << 21, 100), free(3),
        TRIM, malloc(3, 2 * MIB + 2), free(0), free(2), free(3)),
    # Regression: a zero-byte block with 2 MiB alignment (memalign(2M, 0))
    # used to be placed one byte past its own mapping.
    "regress-align-2m-size-0.bin": program(
        memalign(0, 2 * MIB, 0), check(0), free(0),
        posix_memalign(1, 2 * MIB, 0), aligned_alloc(2, 2 * MIB, 0)),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "fuzz", "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
