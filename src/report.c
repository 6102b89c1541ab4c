/* report.c: misuse reports (see internal/report.h). */
#include "internal/report.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal/options.h"
#include "internal/os.h"

static size_t append(char *buf, size_t at, size_t cap, const char *s) {
  size_t n = strlen(s);
  if (n > cap - at)
    n = cap - at;
  memcpy(buf + at, s, n);
  return at + n;
}

static size_t append_hex(char *buf, size_t at, size_t cap, uintptr_t v) {
  char digits[2 + 2 * sizeof v];
  size_t n = 0;
  do {
    digits[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  at = append(buf, at, cap, "0x");
  while (n > 0 && at < cap)
    buf[at++] = digits[--n];
  return at;
}

void hk_report_misuse(const char *fn, const char *what, const void *ptr) {
  char line[256];
  size_t at = 0;
  at = append(line, at, sizeof line - 1, "hakmem: ");
  at = append(line, at, sizeof line - 1, fn);
  at = append(line, at, sizeof line - 1, "(): ");
  at = append(line, at, sizeof line - 1, what);
  at = append(line, at, sizeof line - 1, " ");
  at = append_hex(line, at, sizeof line - 1, (uintptr_t)ptr);
  line[at++] = '\n';
  hk_os_write_stderr(line, at);
  if (!hk_options.invalid_free_warn)
    abort();
}
