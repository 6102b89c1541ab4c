/* knob_probe.c: small scenarios whose outcome a HAKMEM_* knob changes.
 * tests/knobs/run.sh runs each under different knob values and compares
 * what this prints; the program itself asserts nothing. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"

/* Without stdio: fopen would allocate, and an allocation may do the
 * purging that a figure read right after the frees must not include. */
static long rss_kib(void) {
  static char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return -1;
  buf[n] = 0;
  const char *at = strstr(buf, "\nVmRSS:");
  return at ? strtol(at + 7, NULL, 10) : -1;
}

static struct hakmem_stats stats(void) {
  struct hakmem_stats s;
  memset(&s, 0, sizeof s);
  hakmem_stats_get(&s, sizeof s);
  return s;
}

/* Launders a pointer so the compiler cannot see through a misuse. */
static void *volatile opaque;

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "";
  if (strcmp(what, "regions") == 0) {
    /* Tiny blocks of two classes: neighbours in one SuperSlab, or each in
     * its own mapping. */
    char *a = malloc(16), *b = malloc(1000);
    printf("same-region %d\n", ((uintptr_t)a >> 21) == ((uintptr_t)b >> 21));
    free(a);
    free(b);
    return 0;
  }
  if (strcmp(what, "rss-after-free") == 0) {
    /* 256 MiB of small and medium blocks, touched, then all but one block
     * in 4999 freed: most slabs empty out, but nearly every SuperSlab keeps
     * a block alive, so only returning slabs (not SuperSlabs) shrinks RSS. */
    size_t n = 256u << 20 >> 9, kept = 0;
    void **p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
      size_t size = (i % 4 == 0) ? 2000 : 200 + (i % 7) * 40;
      p[i] = malloc(size);
      memset(p[i], 1, size);
    }
    for (size_t i = 0; i < n; i++) {
      if (i % 4999 == 0) {
        kept++;
        continue;
      }
      free(p[i]);
    }
    printf("rss-kib %ld kept %zu\n", rss_kib(), kept);
    return 0;
  }
  if (strcmp(what, "large-cache") == 0) {
    opaque = malloc(8u << 20);
    free(opaque);
    printf("cached %zu\n", stats().large_cached_bytes);
    return 0;
  }
  if (strcmp(what, "large-cache-rss") == 0) {
    /* RSS given back by freeing 12 MiB of large blocks, and the bytes
     * whose pages were kept. */
    enum { N = 8 };
    static void *volatile big[N];
    for (int i = 0; i < N; i++) {
      big[i] = malloc(1536 * 1024);
      memset(big[i], 1, 1536 * 1024);
    }
    long before = rss_kib();
    for (int i = 0; i < N; i++)
      free(big[i]);
    printf("dropped-kib %ld cached %zu\n", before - rss_kib(),
           stats().large_cached_bytes);
    return 0;
  }
  if (strcmp(what, "large-threshold") == 0) {
    size_t before = stats().large_count;
    opaque = malloc(100000);
    printf("large %zu\n", stats().large_count - before);
    free(opaque);
    return 0;
  }
  if (strcmp(what, "double-free") == 0) {
    opaque = malloc(32);
    free(opaque);
    free(opaque);
    char *q = malloc(32);
    strcpy(q, "alive");
    printf("%s\n", q);
    free(q);
    return 0;
  }
  if (strcmp(what, "thread-cache") == 0) {
    /* Medium blocks filling several 512 KiB slabs, all freed: the slabs a
     * thread keeps stay in RSS, the ones it returns are purged. */
    enum { N = 64 };
    void *p[N];
    for (int i = 0; i < N; i++) {
      p[i] = malloc(60000);
      memset(p[i], 1, 60000);
    }
    for (int i = 0; i < N; i++)
      free(p[i]);
    printf("rss-kib %ld\n", rss_kib());
    return 0;
  }
  if (strcmp(what, "churn") == 0) {
    void *p[1000];
    for (int r = 0; r < 20; r++) {
      for (int i = 0; i < 1000; i++)
        p[i] = malloc((size_t)(i % 50) * 16 + 1);
      for (int i = 0; i < 1000; i++)
        free(p[i]);
    }
    printf("done\n");
    return 0;
  }
  fprintf(stderr, "usage: knob_probe regions|rss-after-free|large-cache|"
                  "large-threshold|double-free|thread-cache|churn\n");
  return 2;
}
