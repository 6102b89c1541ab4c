/* options.c: the knob table and the environment parser.
 *
 * Every knob is declared once, in `knobs` below, with its default and its
 * documentation. The parser runs before the first allocation is served, so
 * it reads `environ` directly and never allocates; like secure_getenv it
 * ignores the environment of setuid/setgid programs.
 */
#define _GNU_SOURCE
#include "internal/options.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>

#include "internal/os.h"

extern char **environ;

struct hk_options hk_options;

enum knob_type { KNOB_BOOL, KNOB_SIZE };

struct knob {
  const char *name;
  enum knob_type type;
  size_t def;
  const char *doc;
};

enum knob_id { K_MEM_DIET, K_LARGE_CACHE, K_COUNT };

static const struct knob knobs[K_COUNT] = {
    [K_MEM_DIET] = {"HAKMEM_TINY_MEM_DIET", KNOB_BOOL, 0,
                    "trade speed for footprint: small caches, empty slabs "
                    "returned to the OS at once"},
    [K_LARGE_CACHE] = {"HAKMEM_LARGE_CACHE", KNOB_SIZE, 64u << 20,
                       "bytes of freed large blocks kept mapped for reuse"},
};

static void warn_bad(const char *name, const char *value) {
  static const char a[] = "hakmem: ignoring ";
  hk_os_write_stderr(a, sizeof a - 1);
  hk_os_write_stderr(name, strlen(name));
  hk_os_write_stderr("=", 1);
  hk_os_write_stderr(value, strnlen(value, 64));
  static const char b[] = ": not a valid value, using the default\n";
  hk_os_write_stderr(b, sizeof b - 1);
}

static int parse_bool(const char *v, size_t *out) {
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

static int parse_size(const char *v, size_t *out) {
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
  switch (*p) {
  case 'k': case 'K': shift = 10; p++; break;
  case 'm': case 'M': shift = 20; p++; break;
  case 'g': case 'G': shift = 30; p++; break;
  default: break;
  }
  if (shift && (*p == 'b' || *p == 'B'))
    p++;
  if (*p != '\0' || (shift && n > (SIZE_MAX >> shift)))
    return 0;
  *out = n << shift;
  return 1;
}

static const char *env_value(const char *name) {
  size_t len = strlen(name);
  for (char **e = environ; e && *e; e++)
    if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
      return *e + len + 1;
  return NULL;
}

void hk_options_init(void) {
  size_t value[K_COUNT];
  int secure = getauxval(AT_SECURE) != 0;
  for (unsigned i = 0; i < K_COUNT; i++) {
    value[i] = knobs[i].def;
    const char *v = secure ? NULL : env_value(knobs[i].name);
    if (!v)
      continue;
    size_t parsed;
    int ok = knobs[i].type == KNOB_BOOL ? parse_bool(v, &parsed)
                                        : parse_size(v, &parsed);
    if (ok)
      value[i] = parsed;
    else
      warn_bad(knobs[i].name, v);
  }
  hk_options.mem_diet = value[K_MEM_DIET] != 0;
  hk_options.large_cache_bytes = value[K_LARGE_CACHE];
  /* Diet keeps no spare slabs or SuperSlabs and a quarter of the large
   * cache, so that freed memory leaves RSS as soon as it is freed. */
  hk_options.heap_empty_slabs = hk_options.mem_diet ? 0 : 4;
  hk_options.empty_superslabs = hk_options.mem_diet ? 0 : 2;
  if (hk_options.mem_diet)
    hk_options.large_cache_bytes /= 4;
}
