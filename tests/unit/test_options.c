/* test_options.c: unit tests of the knob parser (src/base/options.c) against
 * the columns of src/knobs.def.
 *
 * The static hk_options, which the allocator uses until hk_options_init
 * runs, is compiled from the defaults' column; the parser reads the same
 * defaults as text. Both must give the same settings, the diet column must
 * do what it says, and every word of an ENUM must parse to its index.
 * Each test is a process of its own and starts from an environment
 * without knobs (make check runs the suite with
 * HAKMEM_TINY_USE_SUPERSLAB=0 too).
 */
#define _GNU_SOURCE
#include <check.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/init.h"
#include "base/options.h"

/* hk_options as compiled, taken before the library's constructor reads
 * the environment into it (a constructor with a priority runs before
 * those without one). */
static struct hk_options compiled;
static int compiled_before_init;

__attribute__((constructor(101))) static void take_compiled(void) {
  compiled = hk_options;
  compiled_before_init =
      atomic_load_explicit(&hk_init_state, memory_order_relaxed) == 0;
}

/* Each knob's field, as a number to compare. */
#define HK_KNOB(id, type, def, opt, field, words, diet, doc)                   \
  static uintmax_t get_##id(const struct hk_options *o) {                      \
    return (uintmax_t)(uintptr_t)o->field;                                     \
  }
#include "knobs.def"
#undef HK_KNOB

/* knobs.def, as this test reads it. */
struct knob_case {
  const char *name;
  uintmax_t (*get)(const struct hk_options *);
  const char *const *words; /* an ENUM's, NULL-terminated */
  int keep;                 /* diet KEEP */
  const char *from, *to;    /* diet MAP(from, to), SET(to) */
};

#define WORD_TEXT(k, w) #w,
#define WORDS_BOOL(words) NULL
#define WORDS_SIZE(words) NULL
#define WORDS_COUNT(words) NULL
#define WORDS_MSEC(words) NULL
#define WORDS_PATH(words) NULL
#define WORDS_ENUM(words)                                                      \
  (const char *const[]) { HK_EACH(WORD_TEXT, , HK_UNPAREN words) NULL }
#define CASE_KEEP .keep = 1
#define CASE_SET(v) .to = #v
#define CASE_MAP(a, b) .from = #a, .to = #b

static const struct knob_case knobs[] = {
#define HK_KNOB(id, type, def, opt, field, w, diet, doc)                       \
  {.name = "HAKMEM_" #id, .get = get_##id, .words = WORDS_##type(w),          \
   CASE_##diet},
#include "knobs.def"
#undef HK_KNOB
};
#define N_KNOBS (sizeof knobs / sizeof knobs[0])

static void clear_knobs(void) {
  for (size_t i = 0; i < N_KNOBS; i++)
    ck_assert_int_eq(unsetenv(knobs[i].name), 0);
}

/* hk_options after reading an environment with these knobs only:
 * name, value, name, value, ..., NULL. */
static struct hk_options parsed(const char *name, ...) {
  va_list ap;
  clear_knobs();
  va_start(ap, name);
  for (const char *n = name; n; n = va_arg(ap, const char *))
    ck_assert_int_eq(setenv(n, va_arg(ap, const char *), 1), 0);
  va_end(ap);
  hk_options_init();
  return hk_options;
}

static const char *const diet_on = "HAKMEM_TINY_MEM_DIET";

START_TEST(test_compiled_defaults_are_the_parsed_defaults) {
  ck_assert_msg(compiled_before_init,
                "hk_options was read from the environment before the test "
                "could take it as compiled");
  struct hk_options o = parsed(NULL);
  for (size_t i = 0; i < N_KNOBS; i++)
    ck_assert_msg(knobs[i].get(&compiled) == knobs[i].get(&o),
                  "%s: compiled default %ju, parsed default %ju",
                  knobs[i].name, knobs[i].get(&compiled), knobs[i].get(&o));
  /* The settings derived from the knobs. */
  ck_assert_uint_eq(compiled.tiny_limit, o.tiny_limit);
  ck_assert_uint_eq(compiled.empty_superslabs, o.empty_superslabs);
  ck_assert_int_eq(compiled.purge_slab_pages, o.purge_slab_pages);
}
END_TEST

/* Under the diet, with the knob set to `value` (NULL: unset), compared
 * with the knob set to `like` without it. */
static void expect_diet(const struct knob_case *k, const char *value,
                        const char *like) {
  struct hk_options dieted =
      value ? parsed(diet_on, "1", k->name, value, NULL)
            : parsed(diet_on, "1", NULL);
  struct hk_options alone =
      like ? parsed(k->name, like, NULL) : parsed(NULL);
  ck_assert_msg(k->get(&dieted) == k->get(&alone),
                "%s=%s under the diet gives %ju, and %s=%s without it %ju",
                k->name, value ? value : "(unset)", k->get(&dieted), k->name,
                like ? like : "(unset)", k->get(&alone));
}

/* KEEP: the diet leaves the knob alone; SET(v): under the diet the knob
 * has the settings it has when set to v, whatever it is set to; MAP(a,
 * b): under the diet a has the settings of b, any other value its own. */
START_TEST(test_diet_column) {
  unsigned set = 0, mapped = 0;
  for (size_t i = 0; i < N_KNOBS; i++) {
    const struct knob_case *k = &knobs[i];
    if (k->keep) {
      /* The diet knob's own field is the diet. */
      if (strcmp(k->name, diet_on) != 0)
        expect_diet(k, NULL, NULL);
    } else if (!k->from) {
      expect_diet(k, NULL, k->to);
      expect_diet(k, k->to, k->to);
      set++;
    } else {
      ck_assert_ptr_nonnull(k->words);
      expect_diet(k, NULL, k->to);
      expect_diet(k, k->from, k->to);
      for (size_t w = 0; k->words[w]; w++)
        if (strcmp(k->words[w], k->from) != 0)
          expect_diet(k, k->words[w], k->words[w]);
      mapped++;
    }
  }
  /* knobs.def has both kinds; if it stops having one, this test no longer
   * covers it. */
  ck_assert_uint_gt(set, 0);
  ck_assert_uint_gt(mapped, 0);
}
END_TEST

/* The pool's kept SuperSlabs are no knob, but the diet keeps none. */
START_TEST(test_diet_keeps_no_empty_superslab) {
  ck_assert_uint_eq(parsed(NULL).empty_superslabs, HK_POOL_EMPTY_SUPERSLABS);
  ck_assert_uint_eq(parsed(diet_on, "1", NULL).empty_superslabs, 0);
}
END_TEST

/* Hardened mode's freed blocks keep their fill, so their pages stay. */
START_TEST(test_hardened_keeps_free_pages) {
  ck_assert_int_eq(parsed(NULL).purge_slab_pages, 1);
  ck_assert_int_eq(parsed("HAKMEM_HARDENED", "1", NULL).purge_slab_pages, 0);
}
END_TEST

/* Every word of an ENUM, in any case, sets its field to the word's index;
 * anything else leaves the default. */
static void expect_words(const struct knob_case *k) {
  uintmax_t def = k->get(&compiled);
  size_t n = 0;
  for (; k->words[n]; n++) {
    char upper[64];
    size_t len = strlen(k->words[n]);
    ck_assert_uint_lt(len, sizeof upper);
    for (size_t c = 0; c <= len; c++)
      upper[c] = (char)toupper((unsigned char)k->words[n][c]);
    struct hk_options o = parsed(k->name, k->words[n], NULL);
    ck_assert_msg(k->get(&o) == n, "%s=%s gives %ju, not %zu", k->name,
                  k->words[n], k->get(&o), n);
    o = parsed(k->name, upper, NULL);
    ck_assert_msg(k->get(&o) == n, "%s=%s gives %ju, not %zu", k->name, upper,
                  k->get(&o), n);
  }
  ck_assert_uint_ge(n, 2);
  struct hk_options o = parsed(k->name, "none-of-its-words", NULL);
  ck_assert_uint_eq(k->get(&o), def);
}

START_TEST(test_enum_words) {
  unsigned enums = 0;
  for (size_t i = 0; i < N_KNOBS; i++) {
    if (knobs[i].words) {
      expect_words(&knobs[i]);
      enums++;
    }
  }
  ck_assert_uint_gt(enums, 0);
}
END_TEST

/* The constants the code names the words by are their indexes. */
START_TEST(test_word_constants) {
  ck_assert_uint_eq(parsed("HAKMEM_HUGE_PAGES", "always", NULL).huge_pages,
                    HK_HUGE_PAGES_always);
  ck_assert_uint_eq(parsed("HAKMEM_HUGE_PAGES", "never", NULL).huge_pages,
                    HK_HUGE_PAGES_never);
  ck_assert_uint_eq(parsed(NULL).huge_pages, HK_HUGE_PAGES_auto);
  ck_assert_int_eq(
      parsed("HAKMEM_INVALID_FREE", "warn", NULL).invalid_free_warn, 1);
  ck_assert_int_eq(parsed(NULL).invalid_free_warn, 0);
}
END_TEST

static Suite *options_suite(void) {
  Suite *s = suite_create("options");
  TCase *tc = tcase_create("knobs.def");
  tcase_add_test(tc, test_compiled_defaults_are_the_parsed_defaults);
  tcase_add_test(tc, test_diet_column);
  tcase_add_test(tc, test_diet_keeps_no_empty_superslab);
  tcase_add_test(tc, test_hardened_keeps_free_pages);
  tcase_add_test(tc, test_enum_words);
  tcase_add_test(tc, test_word_constants);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(options_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
