/* report.h: what hakmem says when the program hands it a bad pointer. */
#ifndef HK_REPORT_H
#define HK_REPORT_H

/* Prints "hakmem: <fn>(): <what> 0x<ptr>" on stderr and aborts, or, with
 * HAKMEM_INVALID_FREE=warn, returns so that the caller can ignore the call.
 * Written without stdio or malloc so that it works inside a broken heap. */
__attribute__((cold, noinline)) void
hk_report_misuse(const char *fn, const char *what, const void *ptr);

#endif
