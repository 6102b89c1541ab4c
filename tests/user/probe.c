/* probe.c: the programs a user runs in the first hour, in miniature, for
 * the tests of tests/user (issue 12). Each mode does one thing that a real
 * program does and that hakmem once got wrong; the scripts run it with the
 * library preloaded and look at what comes out.
 *
 *   probe close-stderr        allocates, then closes stderr at exit, as
 *                             ls, cat and sort do (coreutils' close_stdout)
 *   probe close-all FILE      closes stderr and every descriptor above it,
 *                             then opens FILE (close-on-exec) under each
 *                             number from 3 to 199 but leaves 2 closed
 *   probe retitle             rewrites its environment strings in place, as
 *                             nginx and postgres do to set a process title:
 *                             the first character of HAKMEM_STATS_FILE's
 *                             last path component becomes 'X'
 *   probe fork-closed         forks; the child closes its standard streams,
 *                             as a daemon does, and prints (to a duplicate
 *                             of stdout made before the fork) the
 *                             descriptors it still has open
 *   probe cancel              a thread with a cancellation pending calls
 *                             malloc_stats(), then reaches a cancellation
 *                             point; prints "cancelled" if it was cancelled
 *   probe dlopen LIB          dlopen()s LIB, allocates with its malloc in a
 *                             thread, dlclose()s it, then lets the thread
 *                             exit; prints "survived"
 *   probe store ADDRESS       posix_memalign() with ADDRESS as the place for
 *                             the result: hakmem's own code then stores to
 *                             ADDRESS, the way it follows a corrupted
 *                             pointer
 *
 * Exit status 0 unless a step failed (then 1, with a line on stdout).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void *volatile sink;

static int fail(const char *what) {
  printf("probe: %s failed\n", what);
  return 1;
}

static void allocate(void) {
  for (int i = 0; i < 100; i++) {
    sink = malloc((size_t)(16 + i * 8));
    free(sink);
  }
  sink = malloc(64); /* one left live */
}

static int close_stderr(void) {
  allocate();
  /* What close_stdout does at exit: the stream goes, and fd 2 with it. */
  if (fclose(stderr) != 0)
    return fail("fclose(stderr)");
  return 0;
}

static int close_all(const char *file) {
  allocate();
  int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return fail("open");
  close(2);
  for (int n = 3; n < 1024; n++)
    if (n != fd)
      close(n);
  for (int n = 3; n < 200; n++) {
    if (n == fd)
      continue;
    if (dup3(fd, n, O_CLOEXEC) != n)
      return fail("dup3");
  }
  return 0;
}

static int retitle(void) {
  static const char name[] = "HAKMEM_STATS_FILE=";
  allocate();
  for (char **e = environ; *e; e++) {
    if (strncmp(*e, name, sizeof name - 1) != 0)
      continue;
    char *slash = strrchr(*e, '/');
    char *first = slash ? slash + 1 : *e + sizeof name - 1;
    if (*first == '\0')
      return fail("finding the file name");
    *first = 'X';
    return 0;
  }
  return fail("finding HAKMEM_STATS_FILE");
}

static int fork_closed(void) {
  allocate();
  int out = dup(1);
  if (out < 0)
    return fail("dup");
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0)
    return fail("fork");
  if (pid == 0) {
    close(0);
    close(1);
    close(2);
    char line[4096] = "open:";
    size_t at = strlen(line);
    for (int fd = 0; fd < 1024; fd++) {
      if (fd == out || fcntl(fd, F_GETFD) < 0)
        continue;
      at += (size_t)snprintf(line + at, sizeof line - at, " %d", fd);
      if (at >= sizeof line - 16)
        break;
    }
    line[at++] = '\n';
    if (write(out, line, at) != (ssize_t)at)
      _exit(1);
    _exit(0);
  }
  int status;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0)
    return fail("the child");
  return 0;
}

static void *cancelled_thread(void *arg) {
  (void)arg;
  pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
  pthread_cancel(pthread_self());
  malloc_stats(); /* must write everything, cancellation or not */
  pthread_testcancel();
  return NULL;
}

static int cancel(void) {
  allocate();
  pthread_t t;
  void *result;
  if (pthread_create(&t, NULL, cancelled_thread, NULL) != 0)
    return fail("pthread_create");
  if (pthread_join(t, &result) != 0)
    return fail("pthread_join");
  puts(result == PTHREAD_CANCELED ? "cancelled" : "not cancelled");
  return 0;
}

struct loaded {
  void *(*malloc)(size_t);
  void (*free)(void *);
  pthread_barrier_t allocated, closed;
};

static void *loaded_thread(void *arg) {
  struct loaded *l = arg;
  /* The thread gets a heap of the loaded library's, and with it a
   * thread-exit destructor in that library. */
  void *p = l->malloc(100);
  l->free(p);
  sink = l->malloc(40);
  pthread_barrier_wait(&l->allocated);
  pthread_barrier_wait(&l->closed);
  return NULL; /* the destructors run now, after dlclose */
}

static int load_and_unload(const char *lib) {
  struct loaded l;
  void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    printf("probe: dlopen: %s\n", dlerror());
    return 1;
  }
  l.malloc = (void *(*)(size_t))dlsym(h, "malloc");
  l.free = (void (*)(void *))dlsym(h, "free");
  if (!l.malloc || !l.free)
    return fail("dlsym");
  pthread_barrier_init(&l.allocated, NULL, 2);
  pthread_barrier_init(&l.closed, NULL, 2);
  pthread_t t;
  if (pthread_create(&t, NULL, loaded_thread, &l) != 0)
    return fail("pthread_create");
  pthread_barrier_wait(&l.allocated);
  if (dlclose(h) != 0)
    return fail("dlclose");
  pthread_barrier_wait(&l.closed);
  if (pthread_join(t, NULL) != 0)
    return fail("pthread_join");
  puts("survived");
  return 0;
}

static int store(const char *address) {
  uintptr_t a = (uintptr_t)strtoull(address, NULL, 0);
  void **where;
  memcpy(&where, &a, sizeof where);
  return posix_memalign(where, 16, 32) == 0 ? fail("the fault") : 1;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "close-stderr") == 0)
    return close_stderr();
  if (argc == 3 && strcmp(argv[1], "close-all") == 0)
    return close_all(argv[2]);
  if (argc == 2 && strcmp(argv[1], "retitle") == 0)
    return retitle();
  if (argc == 2 && strcmp(argv[1], "fork-closed") == 0)
    return fork_closed();
  if (argc == 2 && strcmp(argv[1], "cancel") == 0)
    return cancel();
  if (argc == 3 && strcmp(argv[1], "dlopen") == 0)
    return load_and_unload(argv[2]);
  if (argc == 3 && strcmp(argv[1], "store") == 0)
    return store(argv[2]);
  fprintf(stderr, "usage: probe MODE [ARGUMENT] (see probe.c)\n");
  return 2;
}
