/* report.h: what hakmem says when the program hands it a bad pointer. */
#ifndef HK_REPORT_H
#define HK_REPORT_H

/* Prints "hakmem: <fn>(): <what> 0x<ptr>" on stderr and aborts. Written
 * without stdio or malloc so that it works from inside a broken heap. */
__attribute__((noreturn, cold, noinline)) void
hk_report_misuse(const char *fn, const char *what, const void *ptr);

#endif
