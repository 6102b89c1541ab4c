/* report.c: misuse reports (see base/report.h). */
#include "base/report.h"

#include <stdint.h>
#include <stdlib.h>

#include "base/format.h"
#include "base/options.h"
#include "platform/os.h"

void hk_report_misuse(const char *fn, const char *what, const void *ptr) {
  char line[256];
  struct hk_fmt f = hk_fmt_over(line, sizeof line);
  hk_fmt_str(&f, "hakmem: ");
  hk_fmt_str(&f, fn);
  hk_fmt_str(&f, "(): ");
  hk_fmt_str(&f, what);
  hk_fmt_str(&f, " ");
  hk_fmt_hex(&f, (uintptr_t)ptr);
  hk_fmt_newline(&f);
  hk_os_write_stderr(line, f.len);
  if (!hk_options.invalid_free_warn)
    abort();
}
