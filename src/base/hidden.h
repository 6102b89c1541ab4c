/* hidden.h: HK_HIDDEN, for the extern declarations of the globals the fast
 * paths read.
 *
 * -fvisibility=hidden hides what a file defines, not what it declares: a
 * global defined in another file is reached through the GOT, which the
 * linker turns into an lea, one instruction more than a load straight off
 * the instruction pointer. Declared hidden, malloc compares with
 * hk_options.tiny_limit in place and free() loads the region map's bound
 * without first taking its address. */
#ifndef HK_HIDDEN_H
#define HK_HIDDEN_H

#define HK_HIDDEN __attribute__((visibility("hidden")))

#endif
