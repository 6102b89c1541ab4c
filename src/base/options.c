/* options.c: the environment parser for the knobs in knobs.def.
 *
 * It runs before the first allocation is served, so it reads `environ`
 * directly and never allocates; like secure_getenv it ignores the
 * environment of setuid/setgid programs. A malformed value is reported on
 * one line and the default is used.
 *
 * Everything this file knows of a knob comes from its line in knobs.def,
 * through the X-macros below: the table the parser walks, the defaults
 * hk_options starts with, the field a knob sets and what
 * HAKMEM_TINY_MEM_DIET does to it. The only settings written out by hand
 * are the derived ones at the end of hk_options_init, which no knob sets
 * by itself.
 */
#define _GNU_SOURCE
#include "base/options.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>

#include "hakmem.h"
#include "base/format.h"
#include "platform/os.h"
#include "base/types.h"

extern char **environ;

enum knob_type { KNOB_BOOL, KNOB_SIZE, KNOB_COUNT, KNOB_MSEC, KNOB_ENUM, KNOB_PATH };

/* The largest COUNT: more than any count of slabs is worth, small enough
 * for an unsigned field. */
#define KNOB_COUNT_MAX (1u << 20)

/* A parsed value: BOOL, MSEC and ENUM (the word's index) in num, SIZE and
 * COUNT in size; a PATH is its text. */
struct knob_value {
  long num;
  size_t size;
};

struct knob {
  const char *name;
  enum knob_type type;
  const char *def;          /* the default, as the user would write it */
  const char *const *words; /* an ENUM's words, NULL-terminated */
  const char *diet_from;    /* the value the diet replaces, NULL: any */
  const char *diet_to;      /* what replaces it, NULL: the diet keeps it */
};

/* --- The columns of knobs.def, per type ----------------------------------- */

/* The default's text. */
#define KNOB_TEXT_BOOL(def) #def
#define KNOB_TEXT_SIZE(def) KNOB_SIZE_TEXT def
#define KNOB_TEXT_COUNT(def) #def
#define KNOB_TEXT_MSEC(def) #def
#define KNOB_TEXT_ENUM(def) #def
#define KNOB_TEXT_PATH(def) #def
#define KNOB_SIZE_TEXT(n, unit) #n #unit

/* The default's value, a constant for the static hk_options. */
#define KNOB_VALUE_BOOL(id, def) (def)
#define KNOB_VALUE_SIZE(id, def) KNOB_SIZE_BYTES def
#define KNOB_VALUE_COUNT(id, def) (def)
#define KNOB_VALUE_MSEC(id, def) (def)
#define KNOB_VALUE_ENUM(id, def) HK_##id##_##def
#define KNOB_VALUE_PATH(id, def) NULL
#define KNOB_SIZE_BYTES(n, unit) ((size_t)(n) << KNOB_SHIFT_##unit)
#define KNOB_SHIFT_ 0
#define KNOB_SHIFT_K 10
#define KNOB_SHIFT_M 20
#define KNOB_SHIFT_G 30

/* The C type of the field a knob sets. */
#define KNOB_CTYPE_BOOL int
#define KNOB_CTYPE_SIZE size_t
#define KNOB_CTYPE_COUNT unsigned
#define KNOB_CTYPE_MSEC long
#define KNOB_CTYPE_ENUM int
#define KNOB_CTYPE_PATH const char *

/* The words, as strings for the parser. */
#define KNOB_WORD_TEXT(id, w) #w,
#define KNOB_WORDS_BOOL(words) NULL
#define KNOB_WORDS_SIZE(words) NULL
#define KNOB_WORDS_COUNT(words) NULL
#define KNOB_WORDS_MSEC(words) NULL
#define KNOB_WORDS_PATH(words) NULL
#define KNOB_WORDS_ENUM(words)                                                 \
  (const char *const[]) { HK_EACH(KNOB_WORD_TEXT, , HK_UNPAREN words) NULL }

/* The diet column; its values are parsed as the knob's would be. */
#define KNOB_DIET_KEEP
#define KNOB_DIET_SET(to) .diet_to = #to,
#define KNOB_DIET_MAP(from, to) .diet_from = #from, .diet_to = #to,

/* The parsed value into the field; a PATH goes through a copy of its own:
 * the environment's strings are the program's to rewrite (nginx and
 * postgres write their process title over them), and HAKMEM_STATS_FILE is
 * opened at exit. */
#define KNOB_SET_BOOL(field, id) field = val[K_##id].num != 0
#define KNOB_SET_SIZE(field, id) field = val[K_##id].size
#define KNOB_SET_COUNT(field, id) field = (unsigned)val[K_##id].size
#define KNOB_SET_MSEC(field, id) field = val[K_##id].num
#define KNOB_SET_ENUM(field, id) field = (int)val[K_##id].num
#define KNOB_SET_PATH(field, id)                                               \
  field = path_copy(path_##id, knob_text[K_##id])
#define KNOB_BUFFER_BOOL(id)
#define KNOB_BUFFER_SIZE(id)
#define KNOB_BUFFER_COUNT(id)
#define KNOB_BUFFER_MSEC(id)
#define KNOB_BUFFER_ENUM(id)
#define KNOB_BUFFER_PATH(id) static char path_##id[PATH_MAX];

/* What the compiler can check of each line of knobs.def. */
#define HK_KNOB(id, type, def, opt, field, words, diet, doc)                   \
  _Static_assert(_Generic(((struct hk_options *)0)->field,                     \
                          KNOB_CTYPE_##type: 1, default: 0),                   \
                 "HAKMEM_" #id ": its field's type is not a " #type "'s");     \
  _Static_assert((KNOB_##type == KNOB_ENUM) == (sizeof #words > sizeof "()"),  \
                 "HAKMEM_" #id ": an ENUM has words, no other type has");      \
  _Static_assert(KNOB_##type != KNOB_PATH || sizeof #def == 1,                 \
                 "HAKMEM_" #id ": a PATH's default is empty");
#include "knobs.def"
#undef HK_KNOB
/* report.c reads invalid_free_warn as "warn, not abort". */
_Static_assert(HK_INVALID_FREE_abort == 0 && HK_INVALID_FREE_warn == 1,
               "HAKMEM_INVALID_FREE's words are abort, then warn");

enum knob_id {
#define HK_KNOB(id, type, def, opt, field, words, diet, doc) K_##id,
#include "knobs.def"
#undef HK_KNOB
  K_COUNT
};

static const struct knob knobs[K_COUNT] = {
/* (The parameters are not named after the members they set.) */
#define HK_KNOB(id, t, d, opt, field, w, diet, doc)                            \
  {.name = "HAKMEM_" #id,                                                      \
   .type = KNOB_##t,                                                           \
   .def = KNOB_TEXT_##t(d),                                                    \
   .words = KNOB_WORDS_##t(w),                                                 \
   KNOB_DIET_##diet},
#include "knobs.def"
#undef HK_KNOB
};

struct hk_options hk_options = {
#define HK_KNOB(id, type, def, opt, field, words, diet, doc)                   \
  .field = KNOB_VALUE_##type(id, def),
#include "knobs.def"
#undef HK_KNOB
    /* What hk_options_init derives from the defaults. */
    .tiny_limit = HK_TINY_MAX,
    .empty_superslabs = HK_POOL_EMPTY_SUPERSLABS,
    .purge_slab_pages = 1,
};

/* The text each knob took its value from, for the verbose line. */
static const char *knob_text[K_COUNT];

#define HK_KNOB(id, type, def, opt, field, words, diet, doc)                   \
  KNOB_BUFFER_##type(id)
#include "knobs.def"
#undef HK_KNOB

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

static int parse_enum(const char *const *words, const char *v, long *out) {
  for (long i = 0; words[i]; i++) {
    if (strcasecmp(words[i], v) == 0) {
      *out = i;
      return 1;
    }
  }
  return 0;
}

static int parse(const struct knob *k, const char *v, struct knob_value *out) {
  switch (k->type) {
  case KNOB_BOOL:
    return parse_bool(v, &out->num);
  case KNOB_SIZE:
    return parse_number(v, 1, &out->size);
  case KNOB_COUNT:
    return parse_number(v, 0, &out->size) && out->size <= KNOB_COUNT_MAX;
  case KNOB_MSEC:
    if (strcmp(v, "-1") == 0) {
      out->num = -1;
      return 1;
    }
    /* Delays are compared on a 32-bit millisecond clock. */
    if (!parse_number(v, 0, &out->size) || out->size > (size_t)INT32_MAX)
      return 0;
    out->num = (long)out->size;
    return 1;
  case KNOB_ENUM:
    return parse_enum(k->words, v, &out->num);
  case KNOB_PATH:
    return *v != '\0' && strlen(v) < PATH_MAX;
  }
  return 0;
}

/* The knobs.def diet column, applied to a knob's parsed value. */
static void apply_diet(const struct knob *k, struct knob_value *v) {
  struct knob_value from = {0, 0}, to = {0, 0};
  if (!k->diet_to)
    return;
  if (k->diet_from && !(parse(k, k->diet_from, &from) &&
                        from.num == v->num && from.size == v->size))
    return;
  if (parse(k, k->diet_to, &to))
    *v = to;
}

/* A PATH knob's text into its buffer (parse() checked the length); NULL
 * for none. */
static const char *path_copy(char *buffer, const char *text) {
  if (!*text)
    return NULL;
  memcpy(buffer, text, strlen(text) + 1);
  return buffer;
}

static const char *env_value(const char *name) {
  size_t len = strlen(name);
  for (char **e = environ; e && *e; e++)
    if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
      return *e + len + 1;
  return NULL;
}

void hk_options_init(void) {
  struct knob_value val[K_COUNT];
  int secure = getauxval(AT_SECURE) != 0;
  for (unsigned i = 0; i < K_COUNT; i++) {
    const struct knob *k = &knobs[i];
    val[i] = (struct knob_value){0, 0};
    if (*k->def)
      parse(k, k->def, &val[i]);
    knob_text[i] = k->def;
    const char *v = secure ? NULL : env_value(k->name);
    if (!v)
      continue;
    struct knob_value got = {0, 0};
    if (parse(k, v, &got)) {
      val[i] = got;
      knob_text[i] = v;
    } else {
      warn_bad(k, v);
    }
  }
  if (val[K_TINY_MEM_DIET].num)
    for (unsigned i = 0; i < K_COUNT; i++)
      apply_diet(&knobs[i], &val[i]);
  struct hk_options o = {0};
#define HK_KNOB(id, type, def, opt, field, words, diet, doc)                   \
  KNOB_SET_##type(o.field, id);
#include "knobs.def"
#undef HK_KNOB
  /* Derived. The size classes end at HK_MEDIUM_MAX, so a larger threshold
   * means that one; malloc tests the tiny limit alone on its fast path.
   * The pool's kept SuperSlabs are not a knob (see options.h), but the
   * diet keeps none. */
  if (o.large_threshold > HK_MEDIUM_MAX)
    o.large_threshold = HK_MEDIUM_MAX;
  o.tiny_limit =
      o.large_threshold < HK_TINY_MAX ? o.large_threshold : HK_TINY_MAX;
  o.empty_superslabs = o.mem_diet ? 0 : HK_POOL_EMPTY_SUPERSLABS;
  o.purge_slab_pages = !o.hardened;
  hk_options = o;
}

void hk_options_print(void) {
  char line[2048];
  struct hk_fmt f = hk_fmt_over(line, sizeof line);
  hk_fmt_str(&f, "hakmem " PACKAGE_VERSION ":");
  for (unsigned i = 0; i < K_COUNT; i++) {
    hk_fmt_char(&f, ' ');
    hk_fmt_str(&f, knobs[i].name);
    hk_fmt_char(&f, '=');
    hk_fmt_str(&f, knob_text[i]);
  }
  hk_fmt_newline(&f);
  hk_os_write_stderr(line, f.len);
}
