/* test_format.c: unit tests of the bounded line builder (src/base/format.c,
 * src/base/format.h) that every message hakmem writes goes through.
 *
 * Numbers come out in full, text is cut at the buffer's end and says so,
 * the byte kept for the newline is always there for it, and nothing is
 * written past the buffer: the builder runs in signal handlers and on
 * corrupted heaps, where an overrun would be a second bug.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/format.h"

START_TEST(test_numbers) {
  char buf[128];
  struct hk_fmt f = hk_fmt_over(buf, sizeof buf);
  hk_fmt_dec(&f, 0);
  hk_fmt_char(&f, ' ');
  hk_fmt_dec(&f, UINT64_MAX);
  hk_fmt_char(&f, ' ');
  hk_fmt_hex(&f, 0);
  hk_fmt_char(&f, ' ');
  hk_fmt_hex(&f, (uintptr_t)0xdeadbeefcafe);
  hk_fmt_char(&f, ' ');
  hk_fmt_hex(&f, UINTPTR_MAX);
  hk_fmt_newline(&f);
  const char *want =
      "0 18446744073709551615 0x0 0xdeadbeefcafe 0xffffffffffffffff\n";
  ck_assert_uint_eq(f.len, strlen(want));
  ck_assert_int_eq(memcmp(buf, want, f.len), 0);
  ck_assert_int_eq(f.cut, 0);
}
END_TEST

START_TEST(test_cut_at_the_end_keeps_the_newline) {
  char buf[16 + 1 + 8];
  memset(buf, '#', sizeof buf);
  struct hk_fmt f = hk_fmt_over(buf, 17); /* 16 characters and the newline */
  hk_fmt_str(&f, "hakmem: ");
  ck_assert_uint_eq(hk_fmt_room(&f), 8);
  hk_fmt_str(&f, "a message that is too long");
  ck_assert_uint_eq(f.len, 16);
  ck_assert_uint_eq(hk_fmt_room(&f), 0);
  ck_assert_int_eq(f.cut, 1);
  hk_fmt_dec(&f, 12345); /* no room: dropped */
  hk_fmt_newline(&f);
  ck_assert_uint_eq(f.len, 17);
  ck_assert_int_eq(memcmp(buf, "hakmem: a messag\n", 17), 0);
  hk_fmt_newline(&f); /* a second one has no byte left */
  hk_fmt_str(&f, "x");
  ck_assert_uint_eq(f.len, 17);
  for (size_t i = 17; i < sizeof buf; i++)
    ck_assert_int_eq(buf[i], '#');
}
END_TEST

START_TEST(test_a_number_is_cut_from_its_tail) {
  char buf[6];
  struct hk_fmt f = hk_fmt_over(buf, sizeof buf);
  hk_fmt_hex(&f, 0xabcdef);
  ck_assert_uint_eq(f.len, 5);
  ck_assert_int_eq(memcmp(buf, "0xabc", 5), 0);
  ck_assert_int_eq(f.cut, 1);
}
END_TEST

START_TEST(test_one_byte_buffer_holds_only_the_newline) {
  char buf[1];
  struct hk_fmt f = hk_fmt_over(buf, sizeof buf);
  hk_fmt_str(&f, "text");
  ck_assert_uint_eq(f.len, 0);
  hk_fmt_newline(&f);
  ck_assert_uint_eq(f.len, 1);
  ck_assert_int_eq(buf[0], '\n');
}
END_TEST

int main(void) {
  Suite *s = suite_create("format");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_numbers);
  tcase_add_test(tc, test_cut_at_the_end_keeps_the_newline);
  tcase_add_test(tc, test_a_number_is_cut_from_its_tail);
  tcase_add_test(tc, test_one_byte_buffer_holds_only_the_newline);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
