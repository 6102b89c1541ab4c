/* Hardened guard pages and the kernel's mapping limit. Each guard page
 * splits the chunk's mapping, and a process may have vm.max_map_count
 * mappings (65530 by default) for everything: with tens of thousands of
 * guarded blocks live, an allocator that guards every one runs into the
 * limit, its mprotect calls fail (silently, if unchecked: blocks without
 * guards that claim to have them), and the program's own mmap and
 * pthread_create fail from then on.
 *
 * The program, with HAKMEM_HARDENED=1, keeps 40,000 blocks of 260 KiB
 * live, then checks that
 *   - it can still make 4,000 mappings of its own and start a thread;
 *   - every block that lacks a guard page on either side (read from
 *     /proc/self/maps) is counted in the statistics report's
 *     "N unguarded". */
#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>

#include "large_attack.h"

#define BLOCKS 40000
#define SIZE (260 * KiB)
#define OWN_MAPS 4000

static char *blocks[BLOCKS];
static void *own[OWN_MAPS];

struct range {
  uintptr_t lo, hi;
};

/* Big buffers come from mmap: the program's own allocations stay out of
 * the picture. */
static void *scratch(size_t n) {
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED)
    attack_worked("mmap of %zu bytes failed: %s", n, strerror(errno));
  return p;
}

static size_t read_file(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    setup_failed("open %s: %s", path, strerror(errno));
  size_t at = 0;
  for (;;) {
    ssize_t n = read(fd, buf + at, cap - 1 - at);
    if (n < 0)
      setup_failed("read %s: %s", path, strerror(errno));
    if (n == 0)
      break;
    at += (size_t)n;
    if (at >= cap - 1)
      setup_failed("%s is larger than %zu bytes", path, cap);
  }
  close(fd);
  buf[at] = 0;
  return at;
}

/* The inaccessible ranges of the address space, in address order. */
static struct range *none_ranges(size_t *count, size_t *mappings) {
  size_t cap = 64 * MiB;
  char *maps = scratch(cap);
  read_file("/proc/self/maps", maps, cap);
  struct range *r = scratch(sizeof *r * 200000);
  size_t n = 0, lines = 0;
  for (char *line = maps; *line;) {
    char *end = strchr(line, '\n');
    if (!end)
      break;
    unsigned long lo, hi;
    char perms[8];
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) {
      lines++;
      if (strncmp(perms, "---", 3) == 0 && n < 200000)
        r[n++] = (struct range){lo, hi};
    }
    line = end + 1;
  }
  munmap(maps, cap);
  *count = n;
  *mappings = lines;
  return r;
}

static int inaccessible(const struct range *r, size_t n, uintptr_t a) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (r[mid].hi <= a)
      lo = mid + 1;
    else if (r[mid].lo > a)
      hi = mid;
    else
      return 1;
  }
  return 0;
}

/* "N unguarded" from the statistics report. */
static long unguarded_in_stats(void) {
  void (*print)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "hakmem_stats_print");
  if (!print)
    setup_failed("hakmem_stats_print not found: not running under hakmem");
  int fds[2];
  if (pipe(fds) != 0)
    setup_failed("pipe");
  print(fds[1]);
  close(fds[1]);
  char buf[8192];
  size_t n = 0;
  ssize_t got;
  while (n < sizeof buf - 1 &&
         (got = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)got;
  close(fds[0]);
  buf[n] = 0;
  char *at = strstr(buf, " unguarded");
  if (!at)
    attack_worked("the statistics do not say how many blocks are unguarded");
  while (at > buf && at[-1] >= '0' && at[-1] <= '9')
    at--;
  return strtol(at, NULL, 10);
}

static void *thread_main(void *arg) { return arg; }

int main(int argc, char **argv) {
  (void)argc;
  reexec_with(argv, "HAKMEM_HARDENED", "1");
  for (int i = 0; i < BLOCKS; i++) {
    blocks[i] = malloc(SIZE);
    if (!blocks[i])
      attack_worked("malloc %d of %d failed", i, BLOCKS);
  }
  /* The blocks are usable end to end (a sample: touching all would cost
   * 10 GiB). */
  for (int i = 0; i < BLOCKS; i += 997) {
    blocks[i][0] = 1;
    blocks[i][SIZE - 1] = 1;
  }
  /* The program's own mappings: alternating protections, so that the
   * kernel cannot merge them. */
  for (int i = 0; i < OWN_MAPS; i++) {
    own[i] = mmap(NULL, PAGE, i % 2 ? PROT_READ : PROT_NONE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (own[i] == MAP_FAILED)
      attack_worked("the program's own mmap %d of %d failed: %s", i, OWN_MAPS,
                    strerror(errno));
  }
  pthread_t t;
  int rc = pthread_create(&t, NULL, thread_main, NULL);
  if (rc != 0)
    attack_worked("pthread_create failed: %s", strerror(rc));
  pthread_join(t, NULL);

  size_t nr, mappings;
  struct range *r = none_ranges(&nr, &mappings);
  long missing = 0;
  for (int i = 0; i < BLOCKS; i++) {
    uintptr_t b = (uintptr_t)blocks[i];
    if (!inaccessible(r, nr, b - PAGE) ||
        !inaccessible(r, nr, b + malloc_usable_size(blocks[i])))
      missing++;
  }
  /* A block without guards of its own between two guarded ones looks
   * guarded from here (its neighbours' guard pages touch it); a few such
   * are allowed for, an uncounted block is not. */
  long counted = unguarded_in_stats();
  if (counted < missing || counted > missing + 16)
    attack_worked("%ld of %d blocks lack a guard page, the statistics say %ld "
                  "(%zu mappings)",
                  missing, BLOCKS, counted, mappings);
  for (int i = 0; i < OWN_MAPS; i++)
    munmap(own[i], PAGE);
  for (int i = 0; i < BLOCKS; i++)
    free(blocks[i]);
  return 0;
}
