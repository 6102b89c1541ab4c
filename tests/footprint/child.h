/*
 * Shared by the footprint tests: the process's address space, and a
 * child process run with some knobs set. The knobs are read once at
 * start-up, so a test that compares settings runs itself again for each.
 */
#ifndef HAKMEM_TESTS_FOOTPRINT_CHILD_H
#define HAKMEM_TESTS_FOOTPRINT_CHILD_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* VmSize of this process, in bytes. */
static inline size_t vm_size(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  size_t kib = 0;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmSize:", 7) == 0)
      kib = strtoull(line + 7, NULL, 10);
  if (f)
    fclose(f);
  return kib << 10;
}

/* Runs this program again with the "NAME=VALUE" strings of `env` (ended
 * by NULL) added to its environment and `arg` (or none) as its argument;
 * fails the test unless it exits 0. Returns what it printed, in buf. */
static inline const char *run_child(const char *const *env, const char *arg,
                                    char *buf, size_t len) {
  int fd[2];
  ck_assert_int_eq(pipe(fd), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    for (; *env; env++)
      putenv((char *)*env);
    execl("/proc/self/exe", "child", arg, (char *)NULL);
    _exit(127);
  }
  close(fd[1]);
  size_t got = 0;
  ssize_t n;
  while (got < len - 1 && (n = read(fd[0], buf + got, len - 1 - got)) > 0)
    got += (size_t)n;
  buf[got] = '\0';
  close(fd[0]);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "child (%s) failed: status %d, printed %s", env[0] ? env[0] : "",
                status, buf);
  return buf;
}

#endif
