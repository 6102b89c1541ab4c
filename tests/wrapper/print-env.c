/* print-env.c: what a program started by hakmem-run sees.
 *
 * usage: print-env [STATUS [SIGNAL [ARGUMENT...]]]
 *
 * Prints, one per line on stdout: its pid, its arguments (arg1=..., so that
 * a test can see which words reached the program), whether it runs in
 * secure-execution mode (AT_SECURE: setuid/setgid with new privileges),
 * LD_PRELOAD, every HAKMEM_* variable, and whether hakmem is loaded (the
 * library's hakmem_version symbol is visible) with its version string.
 * Then it raises SIGNAL if that is a positive number, and otherwise exits
 * with STATUS (0 if STATUS is not a number), so that tests can check that
 * hakmem-run passes exit statuses and deaths by signal through.
 *
 * It is not linked with hakmem: the library reaches it only by preloading.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

/* A whole decimal number in [0, max], or -1. */
static long number(const char *s, long max) {
  char *end;
  if (s == NULL || *s < '0' || *s > '9')
    return -1;
  long v = strtol(s, &end, 10);
  return *end == '\0' && v <= max ? v : -1;
}

int main(int argc, char **argv) {
  printf("pid=%ld\n", (long)getpid());
  for (int i = 1; i < argc; i++)
    printf("arg%d=%s\n", i, argv[i]);
  printf("secure=%lu\n", getauxval(AT_SECURE));

  const char *preload = getenv("LD_PRELOAD");
  if (preload != NULL)
    printf("LD_PRELOAD=%s\n", preload);
  for (char **e = environ; *e != NULL; e++)
    if (strncmp(*e, "HAKMEM_", 7) == 0)
      printf("%s\n", *e);

  /* The type of hakmem_version_string, looked up at run time because this
   * program must also run without the library. */
  const char *(*version)(void);
  void *sym = dlsym(RTLD_DEFAULT, "hakmem_version_string");
  memcpy(&version, &sym, sizeof version);
  if (dlsym(RTLD_DEFAULT, "hakmem_version") != NULL && version != NULL)
    printf("hakmem=loaded %s\n", version());
  else
    printf("hakmem=absent\n");
  if (fflush(stdout) != 0)
    return 120;

  long status = argc > 1 ? number(argv[1], 255) : 0;
  long sig = argc > 2 ? number(argv[2], 64) : 0;
  if (sig > 0) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, (int)sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    signal((int)sig, SIG_DFL);
    raise((int)sig);
    /* Still here: a signal whose default action is to be ignored. */
    return 121;
  }
  return status < 0 ? 0 : (int)status;
}
