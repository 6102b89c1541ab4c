/* crash.h: the report hakmem prints when the process faults in its code.
 *
 * A SIGSEGV or SIGBUS whose faulting instruction lies in hakmem's own text
 * almost always means the program wrote over heap metadata (a use after
 * free, an overflow) and the allocator followed a corrupted pointer. The
 * handler says so on one line of stderr, naming the address, hakmem's
 * version and the instruction, then lets the signal kill the process as it
 * would have without hakmem. A fault anywhere else is left alone.
 */
#ifndef HK_CRASH_H
#define HK_CRASH_H

/* Installs the handler for SIGSEGV and SIGBUS, each only if the signal's
 * disposition is still SIG_DFL (a program's handler or SIG_IGN is kept,
 * and a handler the program installs later replaces ours). Does nothing
 * where hakmem's code cannot be told apart from the program's: when it is
 * linked into the executable itself (the unit tests' internal build) or
 * on an architecture whose signal context we do not read. Allocates
 * nothing; called once, from hk_init_slow. */
void hk_crash_handler_install(void);

#endif
