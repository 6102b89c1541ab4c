/* large_attack.h: what the large-tier attack programs share, on top of
 * attack.h: re-executing under a knob, overlap checks, the layout of the
 * free-extent record the old large tier kept in a freed block's first
 * bytes (the attacks write there), and a reading of RSS. */
#ifndef HK_LARGE_ATTACK_H
#define HK_LARGE_ATTACK_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attack.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define PAGE ((size_t)4096)

/* The record hakmem 0.1.0 kept at the start of a free extent:
 * struct { next, prev, lru_next, lru_prev, chunk; uint32_t pages, ... }.
 * A layout that keeps its records elsewhere must ignore writes here. */
#define OLD_NEXT 0
#define OLD_PREV 8
#define OLD_PAGES 40

/* A setup step did not go as the attack needs: not a verdict on the
 * allocator's safety, but the test cannot tell, so it fails too. */
__attribute__((noreturn, format(printf, 1, 2))) static inline void
setup_failed(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("setup failed: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* Knobs are read when the library starts: the program runs itself again
 * with `name`=`value` unless it already has it. */
static inline void reexec_with(char **argv, const char *name, const char *value) {
  const char *v = getenv(name);
  if (v && strcmp(v, value) == 0)
    return;
  if (setenv(name, value, 1) != 0)
    setup_failed("setenv %s", name);
  execv("/proc/self/exe", argv);
  setup_failed("cannot re-execute with %s=%s: %s", name, value,
               strerror(errno));
}

static inline int overlaps(const void *a, size_t na, const void *b, size_t nb) {
  return (uintptr_t)a < (uintptr_t)b + nb && (uintptr_t)b < (uintptr_t)a + na;
}

static inline void poke32(void *p, size_t offset, uint32_t v) {
  memcpy((char *)launder(p) + offset, &v, sizeof v);
}

/* Fills a block with a byte and checks it later: a block handed out over
 * a live one shows as a changed byte. Through launder: the build's CFLAGS
 * (-O2) come after the programs' -O0, and a memset just before free() is
 * a dead store the compiler would drop. */
static inline void fill(void *p, size_t n, int byte) {
  memset(launder(p), byte, n);
}
static inline void expect_filled(const void *p, size_t n, int byte, const char *what) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    if (c[i] != (unsigned char)byte)
      attack_worked("%s: byte %zu of %p is %#x, not %#x", what, i, p, c[i],
                    byte);
}

static inline void expect_target_intact(void) {
  for (size_t k = 0; k < sizeof target; k++)
    if (target[k] != 0)
      attack_worked("the allocator wrote to the target (byte %zu)", k);
}

/* Resident bytes of this process, from /proc/self/statm, read without
 * allocating. */
static inline size_t rss_bytes(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY);
  if (fd < 0)
    setup_failed("open /proc/self/statm: %s", strerror(errno));
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    setup_failed("read /proc/self/statm");
  buf[n] = 0;
  unsigned long size = 0, resident = 0;
  if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
    setup_failed("parse /proc/self/statm");
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

#endif
