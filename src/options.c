/* options.c: the environment parser for the knobs in knobs.def.
 *
 * It runs before the first allocation is served, so it reads `environ`
 * directly and never allocates; like secure_getenv it ignores the
 * environment of setuid/setgid programs. A malformed value is reported on
 * one line and the default is used.
 */
#define _GNU_SOURCE
#include "internal/options.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>

#include "hakmem.h"
#include "internal/os.h"
#include "internal/stats.h"
#include "internal/types.h"

extern char **environ;

enum knob_type { KNOB_BOOL, KNOB_SIZE, KNOB_COUNT, KNOB_MSEC, KNOB_ENUM, KNOB_PATH };

struct knob {
  const char *name;
  enum knob_type type;
  const char *def;
  const char *doc;
};

enum knob_id {
#define HK_KNOB(id, type, def, opt, doc) K_##id,
#include "knobs.def"
#undef HK_KNOB
  K_COUNT
};

static const struct knob knobs[K_COUNT] = {
#define HK_KNOB(id, type, def, opt, doc) {"HAKMEM_" #id, KNOB_##type, def, doc},
#include "knobs.def"
#undef HK_KNOB
};

struct hk_options hk_options = {
    .use_superslab = 1,
    .large_cache_bytes = 128u << 20,
    .large_threshold = HK_MEDIUM_MAX,
    .tiny_limit = HK_TINY_MAX,
    .purge_delay_ms = 100,
    .heap_empty_slabs = 4,
    .empty_superslabs = 2,
};

/* The text each knob took its value from, for the verbose line. */
static const char *knob_text[K_COUNT];

/* HAKMEM_STATS_FILE, copied: the environment's strings are the program's
 * to rewrite (nginx and postgres write their process title over them), and
 * the file is opened at exit. */
static char stats_file[PATH_MAX];

static void say(const char *s) { hk_os_write_stderr(s, strlen(s)); }

static void warn_bad(const struct knob *k, const char *value) {
  say("hakmem: ignoring ");
  say(k->name);
  say("=");
  hk_os_write_stderr(value, strnlen(value, 128));
  say(": not a valid value, using the default ");
  say(*k->def ? k->def : "(none)");
  say("\n");
}

static int parse_bool(const char *v, long *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  for (unsigned i = 0; i < 4; i++) {
    if (strcasecmp(v, yes[i]) == 0) {
      *out = 1;
      return 1;
    }
    if (strcasecmp(v, no[i]) == 0) {
      *out = 0;
      return 1;
    }
  }
  return 0;
}

/* Digits, then for sizes an optional K/M/G (KiB, MiB, GiB) and B. */
static int parse_number(const char *v, int suffixes, size_t *out) {
  size_t n = 0;
  const char *p = v;
  if (*p < '0' || *p > '9')
    return 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    size_t d = (size_t)(*p - '0');
    if (n > (SIZE_MAX - d) / 10)
      return 0;
    n = n * 10 + d;
  }
  unsigned shift = 0;
  if (suffixes) {
    switch (*p) {
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    default: break;
    }
    if (*p == 'i' && shift)
      p++;
    if (*p == 'b' || *p == 'B')
      p++;
  }
  if (*p != '\0' || (shift && n > (SIZE_MAX >> shift)))
    return 0;
  *out = n << shift;
  return 1;
}

/* ENUM knobs list their words in braces in their documentation. */
static int parse_enum(const char *doc, const char *v, long *out) {
  const char *p = strchr(doc, '{');
  size_t vlen = strlen(v);
  for (long i = 0; p && *p && *p != '}'; i++) {
    p++;
    while (*p == ' ')
      p++;
    size_t len = strcspn(p, ",}");
    if (len == vlen && strncasecmp(p, v, len) == 0) {
      *out = i;
      return 1;
    }
    p += len;
  }
  return 0;
}

static int parse(const struct knob *k, const char *v, long *num, size_t *size) {
  switch (k->type) {
  case KNOB_BOOL:
    return parse_bool(v, num);
  case KNOB_SIZE:
    return parse_number(v, 1, size);
  case KNOB_COUNT:
    return parse_number(v, 0, size) && *size <= 1u << 20;
  case KNOB_MSEC:
    if (strcmp(v, "-1") == 0) {
      *num = -1;
      return 1;
    }
    if (!parse_number(v, 0, size) || *size > (size_t)INT32_MAX)
      return 0;
    *num = (long)*size;
    return 1;
  case KNOB_ENUM:
    return parse_enum(k->doc, v, num);
  case KNOB_PATH:
    return *v != '\0' && strlen(v) < PATH_MAX;
  }
  return 0;
}

static const char *env_value(const char *name) {
  size_t len = strlen(name);
  for (char **e = environ; e && *e; e++)
    if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
      return *e + len + 1;
  return NULL;
}

void hk_options_init(void) {
  long num[K_COUNT];
  size_t size[K_COUNT];
  int secure = getauxval(AT_SECURE) != 0;
  for (unsigned i = 0; i < K_COUNT; i++) {
    const struct knob *k = &knobs[i];
    num[i] = 0;
    size[i] = 0;
    if (*k->def)
      parse(k, k->def, &num[i], &size[i]);
    knob_text[i] = k->def;
    const char *v = secure ? NULL : env_value(k->name);
    if (!v)
      continue;
    long n = 0;
    size_t s = 0;
    if (parse(k, v, &n, &s)) {
      num[i] = n;
      size[i] = s;
      knob_text[i] = v;
    } else {
      warn_bad(k, v);
    }
  }
  struct hk_options o;
  o.use_superslab = num[K_TINY_USE_SUPERSLAB] != 0;
  o.mem_diet = num[K_TINY_MEM_DIET] != 0;
  o.stats = num[K_STATS] != 0;
  o.stats_file = NULL;
  if (*knob_text[K_STATS_FILE]) {
    memcpy(stats_file, knob_text[K_STATS_FILE],
           strlen(knob_text[K_STATS_FILE]) + 1); /* parse() checked the length */
    o.stats_file = stats_file;
  }
  o.verbose = num[K_VERBOSE] != 0;
  o.hardened = num[K_HARDENED] != 0;
  o.invalid_free_warn = num[K_INVALID_FREE] == 1;
  o.purge_delay_ms = num[K_PURGE_DELAY];
  o.large_cache_bytes = size[K_LARGE_CACHE];
  o.large_threshold = size[K_LARGE_THRESHOLD] < HK_MEDIUM_MAX
                          ? size[K_LARGE_THRESHOLD]
                          : HK_MEDIUM_MAX;
  o.tiny_limit =
      o.large_threshold < HK_TINY_MAX ? o.large_threshold : HK_TINY_MAX;
  o.huge_pages = (int)num[K_HUGE_PAGES];
  o.heap_empty_slabs = (unsigned)size[K_THREAD_CACHE_SLABS];
  o.empty_superslabs = 2;
  /* Diet keeps no spare slabs or SuperSlabs and purges at once. A purge
   * delay of 0 also leaves the large cache nothing to keep (every freed
   * extent is purged as its free returns), so its size is left alone. */
  if (o.mem_diet) {
    o.heap_empty_slabs = 0;
    o.empty_superslabs = 0;
    o.purge_delay_ms = 0;
    if (o.huge_pages == HK_HUGE_AUTO)
      o.huge_pages = HK_HUGE_NEVER;
  }
  hk_options = o;
  if (o.stats)
    hk_stats_start();
}

void hk_options_print(void) {
  char line[2048];
  size_t at = 0;
#define PUT(s)                                                                 \
  do {                                                                         \
    size_t n_ = strnlen((s), 256);                                             \
    if (at + n_ < sizeof line - 2) {                                           \
      memcpy(line + at, (s), n_);                                              \
      at += n_;                                                                \
    }                                                                          \
  } while (0)
  PUT("hakmem ");
  PUT(PACKAGE_VERSION);
  PUT(":");
  for (unsigned i = 0; i < K_COUNT; i++) {
    PUT(" ");
    PUT(knobs[i].name);
    PUT("=");
    PUT(knob_text[i]);
  }
#undef PUT
  line[at++] = '\n';
  hk_os_write_stderr(line, at);
}
