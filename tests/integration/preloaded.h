/*
 * Shared by the integration tests: a check that hakmem, not glibc, is the
 * allocator behind malloc(), so a broken LD_PRELOAD cannot let glibc pass
 * the tests in hakmem's place.
 */
#ifndef HAKMEM_TESTS_INTEGRATION_PRELOADED_H
#define HAKMEM_TESTS_INTEGRATION_PRELOADED_H

#include <check.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#ifndef RTLD_DEFAULT
#error "define _GNU_SOURCE before any #include so <dlfcn.h> provides RTLD_DEFAULT"
#endif

/*
 * HAKMEM_TEST_ALLOW_GLIBC=1 lets the suites be developed and sanity-checked
 * against glibc; it waives only this check, never a behavioural one.
 */
static inline void assert_hakmem_preloaded(void)
{
    const char *allow = getenv("HAKMEM_TEST_ALLOW_GLIBC");

    if (allow != NULL && strcmp(allow, "1") == 0)
        return;
    ck_assert_msg(dlsym(RTLD_DEFAULT, "hakmem_version") != NULL,
                  "hakmem is not interposed: hakmem_version not found "
                  "(is LD_PRELOAD set to libhakmem.so.0?)");
}

#endif
