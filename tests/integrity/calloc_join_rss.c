/* calloc that joins a freed (dirty) block with the clean space after it
 * must zero the dirty part only: the clean part reads as zero already and
 * is not resident, and writing zeroes to it commits every page. The shape:
 * the first large block of a chunk, 1 MiB, freed; then a calloc too big
 * for the clean rest of the chunk alone but not for the two together,
 * about 62 MiB. glibc and jemalloc raise RSS by well under 1 MiB here;
 * a memset of the whole block raises it by the block's size. The program
 * checks the rise stays under 4 MiB, and that the block reads zero.
 *
 * The large tier's chunks are 64 MiB, 2 MiB-aligned, with the header at
 * the start; the purge delay is set to never, so that the freed block is
 * still dirty when the calloc comes. */
#include "large_attack.h"

#define CHUNK (64 * MiB)
#define REGION (2 * MiB)

int main(int argc, char **argv) {
  (void)argc;
  reexec_with(argv, "HAKMEM_PURGE_DELAY", "-1");
  char *a = malloc(1 * MiB);
  if (!a)
    setup_failed("malloc");
  fill(a, 1 * MiB, 0x5a);
  free(a);
  char *chunk_end = (char *)((uintptr_t)a & ~(uintptr_t)(REGION - 1)) + CHUNK;
  size_t size = (size_t)(chunk_end - a) - 2 * PAGE;
  size_t before = rss_bytes();
  unsigned char *z = calloc(1, size);
  size_t after = rss_bytes();
  if (!z)
    setup_failed("calloc(%zu)", size);
  if ((char *)z != a)
    setup_failed("calloc(%zu) = %p did not join the freed block %p", size,
                 (void *)z, (void *)a);
  if (after > before + 4 * MiB)
    attack_worked("calloc(%zu) over 1 MiB of dirty and %zu of clean space "
                  "raised RSS by %zu KiB",
                  size, size - 1 * MiB, (after - before) / KiB);
  for (size_t i = 0; i < size; i++)
    if (z[i] != 0)
      attack_worked("calloc(%zu): byte %zu is %#x, not 0", size, i, z[i]);
  free(z);
  return 0;
}
