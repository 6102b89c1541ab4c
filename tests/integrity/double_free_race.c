/* Attack: two threads free the same small block at the same instant, over
 * and over, with HAKMEM_INVALID_FREE=warn so that the process goes on
 * after each report. On the main of 2026-12-01 the block went onto the
 * remote list twice after about 200 races and the owner's next malloc
 * spun forever (the driver's timeout catches a hang). Here every race
 * must be reported or harmless: no hang, and malloc never hands out one
 * block twice. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "attack.h"

enum { RACES = 20000, SIZE = 64, LIVE = 64 };
static void *volatile victim;
static atomic_int go;
/* The owner (main) waits here, off the CPU, while the two racers spin
 * towards the same instant on the machine's two cores. They yield while
 * they wait for the next round: on a loaded machine (or one with fewer
 * cores than threads) two spinners would otherwise starve the owner's
 * turn between rounds, and the test would time out without anything
 * having gone wrong; both still leave the wait at once when `go` moves. */
static pthread_barrier_t freed;

static void *racer(void *arg) {
  (void)arg;
  for (int r = 1; r <= RACES; r++) {
    while (atomic_load_explicit(&go, memory_order_acquire) < r)
      sched_yield();
    free(victim);
    pthread_barrier_wait(&freed);
  }
  return NULL;
}

int main(int argc, char **argv) {
  (void)argc;
  if (!getenv("HAKMEM_INVALID_FREE")) {
    /* The knob is read at start-up: run again with it set. */
    setenv("HAKMEM_INVALID_FREE", "warn", 1);
    execv("/proc/self/exe", argv);
    attack_worked("cannot re-execute");
  }
  /* The reports are expected; only the outcome counts. */
  int null = open("/dev/null", O_WRONLY);
  int err = dup(2);
  if (null < 0 || err < 0 || dup2(null, 2) < 0)
    attack_worked("no /dev/null");
  pthread_barrier_init(&freed, NULL, 3);
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    if (pthread_create(&t[i], NULL, racer, NULL) != 0)
      attack_worked("no thread");
  static void *live[LIVE];
  for (int r = 1; r <= RACES; r++) {
    victim = malloc(SIZE);
    atomic_store_explicit(&go, r, memory_order_release);
    pthread_barrier_wait(&freed);
    /* Reuse the class: a block handed out twice shows as a duplicate. */
    for (int i = 0; i < LIVE; i++)
      live[i] = malloc(SIZE);
    for (int i = 0; i < LIVE; i++)
      for (int j = i + 1; j < LIVE; j++)
        if (live[i] == live[j]) {
          dup2(err, 2);
          attack_worked("block %p handed out twice after race %d", live[i], r);
        }
    for (int i = 0; i < LIVE; i++)
      free(live[i]);
  }
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  return 0;
}
