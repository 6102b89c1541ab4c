/* Large malloc and free from a signal handler that interrupts large
 * malloc and free. The large tier has one lock; a handler that waits for
 * it while the code it interrupted holds it waits forever. The main loop
 * allocates, stamps, checks and frees large blocks of varied sizes while
 * a timer keeps sending SIGALRM; the handler allocates (malloc, calloc,
 * realloc), frees what an earlier handler left, and hands some blocks to
 * the main loop to free. The timer is a one-shot, armed again by the main
 * loop once it has fired, at a delay that varies: the signals land all
 * over the loop, and the loop always runs between two of them (a period
 * shorter than the handler would starve the interrupted code, which is a
 * property of the test, not of the allocator). Bounded: a fixed number of
 * iterations, and enough signals to have landed inside the tier many
 * times; a hang is the failure (the driver's timeout). Every block
 * carries its own stamp, checked before it is freed, so that blocks
 * handed out twice show. */
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>

#include "large_attack.h"

#define ITERATIONS 20000
#define MIN_SIGNALS 2000
#define MAX_ITERATIONS 2000000

static volatile sig_atomic_t signals;
static char *handler_kept;
static _Atomic(char *) handed_over;

struct stamp {
  size_t size;
  uintptr_t self;
};

static void stamp(char *p, size_t size) {
  struct stamp s = {size, (uintptr_t)p};
  memcpy(p, &s, sizeof s);
  memcpy(p + size - sizeof s, &s, sizeof s);
}

static void die(const char *msg) {
  (void)!write(2, msg, strlen(msg));
  _exit(1);
}

static void check(const char *p) {
  struct stamp s, t;
  memcpy(&s, p, sizeof s);
  if (s.self != (uintptr_t)p)
    die("signal_large: a block's stamp was overwritten\n");
  memcpy(&t, p + s.size - sizeof t, sizeof t);
  if (t.size != s.size || t.self != s.self)
    die("signal_large: a block's tail stamp was overwritten\n");
}

static void on_alarm(int sig) {
  (void)sig;
  int saved = errno;
  unsigned n = (unsigned)signals;
  if (handler_kept) {
    check(handler_kept);
    free(handler_kept);
    handler_kept = NULL;
  }
  size_t size = 300 * KiB + (n % 7) * 97 * KiB;
  char *p = malloc(size);
  if (!p)
    die("signal_large: malloc in the handler failed\n");
  stamp(p, size);
  if (malloc_usable_size(p) < size)
    die("signal_large: usable size too small in the handler\n");
  unsigned char *z = calloc(1, 512 * KiB);
  if (!z)
    die("signal_large: calloc in the handler failed\n");
  for (size_t i = 0; i < 512 * KiB; i += 4096)
    if (z[i])
      die("signal_large: calloc in the handler returned dirty memory\n");
  char *q = realloc((char *)z, 900 * KiB);
  if (!q)
    die("signal_large: realloc in the handler failed\n");
  free(q);
  if (n % 3 == 0) {
    char *old = atomic_exchange(&handed_over, p);
    if (old) {
      check(old);
      free(old);
    }
  } else {
    handler_kept = p;
  }
  signals = (sig_atomic_t)(n + 1);
  errno = saved;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGALRM, &sa, NULL) != 0)
    setup_failed("sigaction");
  char *live[4] = {0};
  long i;
  sig_atomic_t armed_at = -1;
  for (i = 0; i < MAX_ITERATIONS && (i < ITERATIONS || signals < MIN_SIGNALS);
       i++) {
    if (signals != armed_at) { /* the last shot fired: the next one */
      armed_at = signals;
      struct itimerval shot = {{0, 0}, {0, 20 + (i * 7919) % 400}};
      if (setitimer(ITIMER_REAL, &shot, NULL) != 0)
        setup_failed("setitimer");
    }
    size_t size = 260 * KiB + (size_t)(i % 13) * 131 * KiB;
    char **slot = &live[i % 4];
    if (*slot) {
      check(*slot);
      free(*slot);
    }
    *slot = i % 5 == 0 ? calloc(1, size) : malloc(size);
    if (!*slot)
      attack_worked("malloc(%zu) failed at iteration %ld", size, i);
    stamp(*slot, size);
    char *mine = atomic_exchange(&handed_over, NULL);
    if (mine) {
      check(mine);
      free(mine);
    }
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  if (signals < MIN_SIGNALS)
    setup_failed("only %d signals in %ld iterations", (int)signals, i);
  for (int k = 0; k < 4; k++)
    if (live[k]) {
      check(live[k]);
      free(live[k]);
    }
  char *last = atomic_exchange(&handed_over, NULL);
  if (last) {
    check(last);
    free(last);
  }
  if (handler_kept) {
    check(handler_kept);
    free(handler_kept);
  }
  return 0;
}
