/* test_crash.c: unit test of the crash handler's installation
 * (src/base/crash.c), in the internal-names build.
 *
 * Linked into the executable, as here, hakmem's code is no range of its
 * own: the linker symbols crash.c bounds it with span the whole program,
 * so every crash of the program would be reported as hakmem's. The handler
 * must then stay out, and SIGSEGV and SIGBUS keep their default action.
 * (The report itself is tested with the shared library, in
 * tests/integration/crash_report.c.)
 */
#include <check.h>
#include <signal.h>
#include <stdlib.h>

#include "base/crash.h"
#include "api/init.h"

static int is_default(int sig) {
  struct sigaction sa;
  ck_assert_int_eq(sigaction(sig, NULL, &sa), 0);
  return !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL;
}

START_TEST(not_installed_in_the_executable) {
  hk_init();
  ck_assert_msg(is_default(SIGSEGV), "hakmem took over SIGSEGV");
  ck_assert_msg(is_default(SIGBUS), "hakmem took over SIGBUS");
  /* Nor when called directly: the refusal is crash.c's, not init's. */
  hk_crash_handler_install();
  ck_assert_msg(is_default(SIGSEGV), "hakmem took over SIGSEGV");
  ck_assert_msg(is_default(SIGBUS), "hakmem took over SIGBUS");
}
END_TEST

static Suite *crash_suite(void) {
  Suite *s = suite_create("crash");
  TCase *tc = tcase_create("install");
  tcase_add_test(tc, not_installed_in_the_executable);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(crash_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
