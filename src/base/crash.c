/* crash.c: the crash report (see base/crash.h).
 *
 * The handler runs in a process whose heap is probably corrupted, in the
 * middle of whatever the faulting thread was doing, so it only reads what
 * install() computed, builds its line by hand (no stdio, no malloc) and
 * writes it with write(2): everything it calls is async-signal-safe.
 */
#define _GNU_SOURCE
#include "base/crash.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>
#include <ucontext.h>

#include "base/format.h"
#include "platform/os.h"

/* The interrupted instruction, from the context the kernel saved: where
 * each architecture's glibc ucontext keeps it. */
#if defined(__x86_64__)
#define HK_CRASH_PC(uc) ((uintptr_t)(uc)->uc_mcontext.gregs[REG_RIP])
#elif defined(__aarch64__)
#define HK_CRASH_PC(uc) ((uintptr_t)(uc)->uc_mcontext.pc)
#elif defined(__powerpc64__)
#define HK_CRASH_PC(uc) ((uintptr_t)(uc)->uc_mcontext.gp_regs[32]) /* PT_NIP */
#elif defined(__s390x__)
#define HK_CRASH_PC(uc) ((uintptr_t)(uc)->uc_mcontext.psw.addr)
#elif defined(__riscv) && __riscv_xlen == 64
#define HK_CRASH_PC(uc) ((uintptr_t)(uc)->uc_mcontext.__gregs[REG_PC])
#elif defined(__loongarch64)
#define HK_CRASH_PC(uc) ((uintptr_t)(uc)->uc_mcontext.__pc)
#endif

#ifdef HK_CRASH_PC

/* Defined by the linker for the object hakmem is linked into: the first
 * byte of its ELF header (the start of its first mapped segment) and the
 * end of its code. Hidden, so that the shared library's references bind to
 * its own symbols, never to the main program's etext. */
extern const char __ehdr_start[] __attribute__((visibility("hidden")));
extern const char etext[] __attribute__((visibility("hidden")));

/* hakmem's code is [text_lo, text_hi); both are set before the handler is
 * installed and never change. */
static uintptr_t text_lo, text_hi;
static struct sigaction previous_segv, previous_bus;

static void report(int sig, const siginfo_t *si, uintptr_t pc) {
  char line[320];
  struct hk_fmt f = hk_fmt_over(line, sizeof line);
  hk_fmt_str(&f, sig == SIGSEGV ? "hakmem: SIGSEGV" : "hakmem: SIGBUS");
  /* On x86-64 an access through a non-canonical pointer (the bits above
   * the address width not all equal, as a corrupted link often is) is a
   * general protection or stack-segment fault: the kernel sends it as
   * SI_KERNEL, with no address, and a 0 there would be a lie. */
  if (si->si_code == SI_KERNEL) {
    hk_fmt_str(&f, " at a non-canonical address (a general protection fault:"
                   " the kernel gives no address)");
  } else {
    hk_fmt_str(&f, " at address ");
    hk_fmt_hex(&f, (uintptr_t)si->si_addr);
  }
  hk_fmt_str(&f, " in the allocator (hakmem " PACKAGE_VERSION ", pc ");
  hk_fmt_hex(&f, pc);
  hk_fmt_str(&f, "): heap metadata is probably corrupted by a use after free "
                 "or an overflow");
  hk_fmt_newline(&f);
  hk_os_write_stderr(line, f.len);
}

static void on_fault(int sig, siginfo_t *si, void *ctx) {
  int saved_errno = errno;
  uintptr_t pc = HK_CRASH_PC((const ucontext_t *)ctx);
  /* A positive si_code is the kernel's own report of a faulting access;
   * kill(), raise() and sigqueue() send zero or less, with no address. */
  if (si->si_code > 0 && pc - text_lo < text_hi - text_lo)
    report(sig, si, pc);
  /* Back to what the signal would have done without us (SIG_DFL: we only
   * install over that). SA_RESETHAND did this already when the kernel
   * delivered the signal; a program that installed its own handler later
   * and calls ours as the previous one gets the same. */
  sigaction(sig, sig == SIGSEGV ? &previous_segv : &previous_bus, NULL);
  /* Returning re-executes a faulting instruction, which faults again and
   * now kills the process with the original signal and address (and a
   * core dump that shows the fault itself). A sent signal does not come
   * back by itself: send it again; it stays blocked until we return. */
  if (si->si_code <= 0)
    (void)raise(sig); /* cannot fail: sig is valid and ours to send */
  errno = saved_errno;
}

static void install(int sig, struct sigaction *previous) {
  if (sigaction(sig, NULL, previous) != 0 ||
      (previous->sa_flags & SA_SIGINFO) || previous->sa_handler != SIG_DFL)
    return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  /* Nothing else runs on this thread while we report. */
  sigfillset(&sa.sa_mask);
  /* SA_ONSTACK: a thread that has an alternate signal stack (the program
   * set one up) reports even when its stack is exhausted. */
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
  sigaction(sig, &sa, NULL);
}

void hk_crash_handler_install(void) {
  text_lo = (uintptr_t)__ehdr_start;
  text_hi = (uintptr_t)etext;
  /* Linked into the executable (the unit tests' internal-names build, a
   * static link), these symbols span the whole program's code, and every
   * crash would be blamed on hakmem. The main program's program headers,
   * whose address the kernel passes in the auxiliary vector, lie inside the
   * range exactly then. */
  uintptr_t main_phdr = (uintptr_t)getauxval(AT_PHDR);
  if (main_phdr - text_lo < text_hi - text_lo)
    return;
  install(SIGSEGV, &previous_segv);
  install(SIGBUS, &previous_bus);
}

#else

/* Without the interrupted instruction, no fault can be told to be ours. */
void hk_crash_handler_install(void) {}

#endif
