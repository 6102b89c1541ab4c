/*
 * footprint.c - memory footprint after fragmentation, written from scratch
 * for hakmem.
 *
 *   footprint [megabytes [seed]]
 *             defaults: 200 1
 *
 * Three phases:
 *   1. build: allocate `megabytes` MiB of blocks of log-uniform sizes in
 *      16..2048 bytes (the small and low medium classes), tagging each;
 *   2. scatter: free every block but one in ten, so ~90% of the volume is
 *      freed but almost every page still holds a live block;
 *   3. reuse: allocate blocks of 2560..4096 bytes -- a size class none of
 *      the phase-1 blocks had -- until 30% of the freed volume is live
 *      again.
 * then reads VmHWM (peak RSS) and VmRSS (RSS now) from /proc/self/status.
 *
 * The ideal final RSS is about 10% + 30% of the phase-1 volume plus
 * overhead; the worst is phase 1 + phase 3 (nothing freed is reused, and
 * nothing is returned).  An allocator that segregates sizes can reuse the
 * freed holes for the new class only if it gives back or re-purposes whole
 * pages; one that coalesces (glibc) can carve the new blocks out of the
 * holes.  That is the trade this benchmark shows.
 *
 * The result line carries peak_kb (VmHWM after phase 3), final_kb (VmRSS
 * after phase 3), scattered_kb (VmRSS after phase 2) and live_kb (bytes
 * requested and still live at the end).  time_s covers all phases and the
 * final clean-up; ops = blocks allocated.  Exit 3 on corruption.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <sys/mman.h>

int main(int argc, char **argv)
{
    bench_name = "footprint";
    if (argc > 3)
        bench_die(BENCH_EXIT_USAGE, "usage: footprint [megabytes [seed]]");
    uint64_t mib = bench_arg(argc, argv, 1, "megabytes", 200, 1, 1 << 20);
    uint64_t rng = bench_rng_seed(bench_arg(argc, argv, 2, "seed", 1, 0, UINT64_MAX));
    size_t target = (size_t)mib << 20;

    /* The block table comes straight from mmap, not malloc, so it is the
     * same for every allocator: only the touched part is resident.  Phase 1
     * blocks are >= 16 bytes and phase 3 adds at most 30% more in >= 2560
     * byte blocks, so target/16 + target/2560 + 2 entries always suffice. */
    size_t cap = target / 16 + target / 2560 + 2;
    void **blk = mmap(NULL, cap * sizeof(void *), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (blk == MAP_FAILED)
        bench_die(1, "mmap of the block table failed: %s", strerror(errno));

    double t0 = bench_now();

    /* 1. build */
    size_t nblk = 0, built = 0;
    while (built < target) {
        size_t n = bench_logsize(&rng, 16, 2048);
        blk[nblk] = bench_malloc(n);
        bench_tag(blk[nblk], n);
        nblk++;
        built += n;
    }
    size_t phase1_blocks = nblk;

    /* 2. scatter: keep blocks 0, 10, 20, ... */
    size_t freed = 0, kept = 0;
    for (size_t i = 0; i < phase1_blocks; i++) {
        if (i % 10 == 0) {
            blk[kept++] = blk[i];
            continue;
        }
        freed += bench_tag_check(blk[i], "scatter");
        free(blk[i]);
    }
    nblk = kept;
    uint64_t scattered_kb = bench_status_kb("VmRSS");

    /* 3. reuse, in another size class */
    size_t want = freed / 10 * 3, again = 0;
    uint64_t allocs = phase1_blocks;
    while (again < want) {
        size_t n = bench_range(&rng, 2560, 4096);
        blk[nblk] = bench_malloc(n);
        bench_tag(blk[nblk], n);
        nblk++;
        again += n;
        allocs++;
    }

    uint64_t peak_kb = bench_status_kb("VmHWM");
    uint64_t final_kb = bench_status_kb("VmRSS");
    size_t live = built - freed + again;

    for (size_t i = 0; i < nblk; i++) {
        bench_tag_check(blk[i], "final");
        free(blk[i]);
    }
    double t1 = bench_now();
    munmap(blk, cap * sizeof(void *));

    bench_result(t1 - t0, allocs,
                 "peak_kb=%" PRIu64 " final_kb=%" PRIu64 " scattered_kb=%" PRIu64 " live_kb=%zu",
                 peak_kb, final_kb, scattered_kb, live >> 10);
    return 0;
}
