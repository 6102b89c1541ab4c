/* stats.c: the reports of stats.h. */
#define _GNU_SOURCE
#include "api/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hakmem.h"
#include "api/api.h"
#include "base/counters.h"
#include "base/format.h"
#include "small/heap.h"
#include "small/heaps.h"
#include "base/options.h"
#include "platform/os.h"
#include "small/superslab.h"

static size_t load(_Atomic size_t *c) {
  return atomic_load_explicit(c, memory_order_relaxed);
}

HK_API_FN(int, hakmem_stats_get, (struct hakmem_stats *stats, size_t size)) {
  if (!stats)
    return -1;
  struct hakmem_stats s = {
      .mapped_bytes = load(&hk_counters.mapped),
      .peak_mapped_bytes = load(&hk_counters.peak_mapped),
      .slab_bytes = load(&hk_counters.slab_bytes),
      .large_bytes = load(&hk_counters.large_bytes),
      .large_count = load(&hk_counters.large_count),
      .large_cached_bytes = load(&hk_counters.large_cached_bytes),
      .superslabs = load(&hk_counters.superslabs),
      .peak_superslabs = load(&hk_counters.peak_superslabs),
  };
  memcpy(stats, &s, size < sizeof s ? size : sizeof s);
  return 0;
}

// ---------------------------------------------------------------------------
// The report: built in a stack buffer and written with write(2), since it
// runs at exit and from hakmem_stats_print without allocating. The buffer
// holds a whole report, so that it goes out in one write: reports that
// many processes append to one file do not interleave.

struct out {
  int fd;
  int error; /* errno of the first write that failed, 0 if none */
  struct hk_fmt f;
  char buf[8192];
};

static void out_open(struct out *o, int fd) {
  o->fd = fd;
  o->error = 0;
  o->f = hk_fmt_over(o->buf, sizeof o->buf);
}

/* Longer than any line of the report: end_line flushes before less than
 * this is left, so a line is never cut short. */
#define HK_LINE_MAX 512

static void flush(struct out *o) {
  const char *p = o->buf;
  size_t n = o->f.len;
  while (n > 0 && !o->error) {
    ssize_t w = write(o->fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      o->error = w < 0 ? errno : EIO;
      break;
    }
    p += w;
    n -= (size_t)w;
  }
  o->f.len = 0;
}

static void end_line(struct out *o) {
  hk_fmt_newline(&o->f);
  if (hk_fmt_room(&o->f) < HK_LINE_MAX)
    flush(o);
}

struct live_count {
  uint64_t live[HK_CLASS_COUNT];
};

/* Blocks out with the program, or freed by another thread and not yet
 * collected by the slab's owner: a slab's `used`. The owners run on while
 * this reads, so while other threads allocate the figure is approximate;
 * at exit it is exact. */
static void count_live(struct hk_slab *s, void *arg) {
  struct live_count *lc = arg;
  lc->live[hk_slab_class(s)] += hk_slab_used(s);
}

/* Writes the report to fd; returns 0, or the errno of the write that
 * failed. Not a cancellation point, as glibc's malloc_stats is not (BZ
 * #22830): a thread cancelled in the middle would lose the report. */
static int report(int fd) {
  int saved_errno = errno, cancel_state;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  struct out o;
  out_open(&o, fd);
  struct live_count lc;
  memset(&lc, 0, sizeof lc);
  hk_superslab_for_each_slab(count_live, &lc);
  uint64_t frees[HK_CLASS_COUNT], remote[HK_CLASS_COUNT];
  hk_heap_sum_frees(frees, remote);
  hk_fmt_str(&o.f, "hakmem " PACKAGE_VERSION " statistics, pid ");
  hk_fmt_dec(&o.f, (uint64_t)getpid());
  end_line(&o);
  for (unsigned c = 0; c < HK_CLASS_COUNT; c++) {
    if (lc.live[c] == 0 && frees[c] == 0)
      continue;
    hk_fmt_str(&o.f, "class ");
    hk_fmt_dec(&o.f, c);
    hk_fmt_str(&o.f, " size ");
    hk_fmt_dec(&o.f, hk_class_size[c]);
    hk_fmt_str(&o.f, ":");
    if (hk_options.stats) {
      /* Every malloc is back on its slab's list by now (freed), or still
       * counted in its slab's `used` (live). */
      hk_fmt_str(&o.f, " allocs ");
      hk_fmt_dec(&o.f, frees[c] + lc.live[c]);
      hk_fmt_str(&o.f, " frees ");
      hk_fmt_dec(&o.f, frees[c]);
      hk_fmt_str(&o.f, " remote-frees ");
      hk_fmt_dec(&o.f, remote[c]);
    }
    hk_fmt_str(&o.f, " live ");
    hk_fmt_dec(&o.f, lc.live[c]);
    end_line(&o);
  }
  if (!hk_options.stats) {
    hk_fmt_str(&o.f, "(allocs, frees and remote frees are counted with HAKMEM_STATS=1)");
    end_line(&o);
  }
  hk_fmt_str(&o.f, "superslabs: ");
  hk_fmt_dec(&o.f, load(&hk_counters.superslabs));
  hk_fmt_str(&o.f, " (peak ");
  hk_fmt_dec(&o.f, load(&hk_counters.peak_superslabs));
  hk_fmt_str(&o.f, ")");
  end_line(&o);
  hk_fmt_str(&o.f, "mapped: ");
  hk_fmt_dec(&o.f, load(&hk_counters.mapped));
  hk_fmt_str(&o.f, " (peak ");
  hk_fmt_dec(&o.f, load(&hk_counters.peak_mapped));
  hk_fmt_str(&o.f, ")");
  end_line(&o);
  hk_fmt_str(&o.f, "large blocks: ");
  hk_fmt_dec(&o.f, load(&hk_counters.large_count));
  hk_fmt_str(&o.f, " live, ");
  hk_fmt_dec(&o.f, load(&hk_counters.large_bytes));
  hk_fmt_str(&o.f, " bytes, ");
  hk_fmt_dec(&o.f, load(&hk_counters.large_cached_bytes));
  hk_fmt_str(&o.f, " cached, ");
  hk_fmt_dec(&o.f, load(&hk_counters.large_unguarded));
  hk_fmt_str(&o.f, " unguarded");
  end_line(&o);
  flush(&o);
  pthread_setcancelstate(cancel_state, NULL);
  errno = saved_errno;
  return o.error;
}

HK_API_FN(void, hakmem_stats_print, (int fd)) { (void)report(fd); }

// ---------------------------------------------------------------------------
// Where the exit report goes: standard error, or HAKMEM_STATS_FILE.
//
// Many programs close their standard streams on the way out (ls, cat and
// sort do, with coreutils' close_stdout), before this library's destructor
// runs. So hk_stats_start keeps a duplicate of the descriptor from
// start-up, and the report goes where standard error (or the descriptor
// HAKMEM_STATS_FILE names) was when the program started. The program may
// close the duplicate as well and open something else under its number:
// it is used only while it is still the same file (device and inode) and
// still close-on-exec (dup2 over it clears the flag); otherwise the
// program's own descriptor is, if it is open.

struct kept {
  int fd; /* -1 if none */
  dev_t dev;
  ino_t ino;
};

/* Above the descriptors that shells and programs pick by number for
 * redirections (0 to 9); a free one above it, or any free one. */
#define HK_KEPT_FD_MIN 100

static struct kept kept_err = {.fd = -1}, kept_out = {.fd = -1};
/* The descriptor the report goes to: 2, the one HAKMEM_STATS_FILE names,
 * or -1 for a file opened at exit. */
static int out_fd = 2;

static void keep(struct kept *k, int fd) {
  struct stat st;
  k->fd = -1;
  if (fstat(fd, &st) != 0)
    return;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, HK_KEPT_FD_MIN);
  if (copy < 0)
    copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0)
    return;
  k->fd = copy;
  k->dev = st.st_dev;
  k->ino = st.st_ino;
}

/* The descriptor to write fd's output to now, or -1 if there is none. */
static int kept_fd(const struct kept *k, int fd) {
  struct stat st;
  if (k->fd >= 0) {
    int flags = fcntl(k->fd, F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC) && fstat(k->fd, &st) == 0 &&
        st.st_dev == k->dev && st.st_ino == k->ino)
      return k->fd;
  }
  return fcntl(fd, F_GETFD) >= 0 ? fd : -1;
}

/* /dev/stdout, /dev/stderr and /dev/fd/N name a descriptor of the
 * program's own, as they do for gawk and bash: they are symbolic links
 * into /proc, which O_NOFOLLOW would refuse, and the descriptor may be
 * closed by exit time. Returns it, or -1 for any other name. */
static int named_descriptor(const char *path) {
  if (strcmp(path, "/dev/stdout") == 0)
    return 1;
  if (strcmp(path, "/dev/stderr") == 0)
    return 2;
  if (strncmp(path, "/dev/fd/", 8) != 0 || path[8] == '\0')
    return -1;
  long n = 0;
  for (const char *p = path + 8; *p; p++) {
    if (*p < '0' || *p > '9' || n > 1000000)
      return -1;
    n = n * 10 + (*p - '0');
  }
  return (int)n;
}

/* A child forked without exec reports through its own descriptors: the
 * duplicates would otherwise keep the parent's standard error open for as
 * long as the child runs, and a daemon that closes its standard streams
 * would hold a pipeline's pipe open forever (`hakmem-run --stats
 * daemon | tee log` would never end). A child that execs starts afresh. */
static void forget_kept(void) {
  if (kept_err.fd >= 0)
    close(kept_err.fd);
  if (kept_out.fd >= 0)
    close(kept_out.fd);
  kept_err.fd = kept_out.fd = -1;
}

void hk_stats_start(void) {
  keep(&kept_err, 2);
  out_fd = hk_options.stats_file ? named_descriptor(hk_options.stats_file) : 2;
  if (out_fd >= 0 && out_fd != 2)
    keep(&kept_out, out_fd);
  if (kept_err.fd >= 0 || kept_out.fd >= 0)
    (void)pthread_atfork(NULL, NULL, forget_kept);
}

/* HAKMEM_STATS_FILE with %p replaced by the process ID (as in the
 * kernel's core_pattern) and %% by %; any other % is kept. Expanded at
 * exit, so that a forked child names its own file. Returns 0, or -1 if
 * the name does not fit. */
static int expand(const char *pattern, char *path, size_t cap) {
  struct hk_fmt f = hk_fmt_over(path, cap);
  for (const char *p = pattern; *p; p++) {
    if (p[0] == '%' && p[1] == 'p') {
      hk_fmt_dec(&f, (uint64_t)getpid());
      p++;
    } else {
      hk_fmt_char(&f, *p);
      if (p[0] == '%' && p[1] == '%')
        p++;
    }
  }
  if (f.cut)
    return -1;
  path[f.len] = '\0';
  return 0;
}

/* One line on fd (standard error): "hakmem: WHAT NAME: REASON" and TAIL. */
static void tell(int fd, const char *what, const char *name, int err,
                 const char *tail) {
  if (fd < 0)
    return;
  struct out o;
  out_open(&o, fd);
  const char *reason = strerrordesc_np(err);
  hk_fmt_str(&o.f, "hakmem: ");
  hk_fmt_str(&o.f, what);
  hk_fmt_str(&o.f, " ");
  hk_fmt_str(&o.f, name);
  hk_fmt_str(&o.f, ": ");
  if (err == ENXIO)
    hk_fmt_str(&o.f, "a FIFO that no process reads");
  else if (reason)
    hk_fmt_str(&o.f, reason);
  else
    hk_fmt_dec(&o.f, (uint64_t)err);
  hk_fmt_str(&o.f, tail);
  end_line(&o);
  flush(&o);
}

/* HAKMEM_STATS: the report at exit. A preloaded library's destructor runs
 * after the program's own, so the report sees the program's last frees.
 * A file is opened without following a symbolic link and appended to (a
 * report appended is never one lost), without blocking on a FIFO that no
 * process reads; a report that cannot be written is said on stderr. */
__attribute__((destructor)) static void report_at_exit(void) {
  if (!hk_options.stats)
    return;
  int saved_errno = errno;
  static char path[PATH_MAX];
  int err_fd = kept_fd(&kept_err, 2), fd = -1, opened = 0;
  if (out_fd == 2) {
    fd = err_fd;
  } else if (out_fd >= 0) {
    fd = kept_fd(&kept_out, out_fd);
    if (fd < 0)
      tell(err_fd, "cannot write the statistics report to",
           hk_options.stats_file, EBADF, "");
  } else if (expand(hk_options.stats_file, path, sizeof path) != 0) {
    tell(err_fd, "cannot open HAKMEM_STATS_FILE", hk_options.stats_file,
         ENAMETOOLONG, "; writing the statistics to stderr");
    fd = err_fd;
  } else {
    fd = open(path,
              O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC |
                  O_NOCTTY | O_NONBLOCK,
              0644);
    if (fd < 0) {
      tell(err_fd, "cannot open HAKMEM_STATS_FILE", path, errno,
           "; writing the statistics to stderr");
      fd = err_fd;
    } else {
      opened = 1;
      /* Only the open was not to block: a reader that is slow to drain a
       * FIFO gets the whole report. */
      int flags = fcntl(fd, F_GETFL);
      if (flags >= 0)
        (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    }
  }
  if (fd >= 0) {
    int err = report(fd);
    if (opened && close(fd) != 0 && err == 0 && errno != EINTR)
      err = errno;
    if (err != 0 && fd != err_fd)
      tell(err_fd, "cannot write the statistics report to",
           opened ? path : hk_options.stats_file, err, "");
  }
  errno = saved_errno;
}

HK_API_FN(unsigned, hakmem_version, (void)) {
  return (HAKMEM_VERSION_MAJOR << 16) | (HAKMEM_VERSION_MINOR << 8) |
         HAKMEM_VERSION_PATCH;
}

HK_API_FN(const char *, hakmem_version_string, (void)) { return PACKAGE_VERSION; }

/* mallinfo's "in use" is slab-granular: counting every block would cost the
 * fast path a counter update, which release builds do not pay. */
HK_API_FN(struct mallinfo2, mallinfo2, (void)) {
  struct mallinfo2 mi;
  memset(&mi, 0, sizeof mi);
  size_t mapped = load(&hk_counters.mapped);
  size_t in_use = load(&hk_counters.slab_bytes) + load(&hk_counters.large_bytes);
  mi.arena = mapped;
  mi.hblks = load(&hk_counters.large_count);
  mi.hblkhd = load(&hk_counters.large_bytes);
  mi.uordblks = in_use;
  mi.fordblks = mapped > in_use ? mapped - in_use : 0;
  mi.keepcost = load(&hk_counters.large_cached_bytes);
  return mi;
}

static int clamp(size_t v) { return v > INT32_MAX ? INT32_MAX : (int)v; }

HK_API_FN(struct mallinfo, mallinfo, (void)) {
  struct mallinfo2 m2 = HK_API(mallinfo2)();
  struct mallinfo mi;
  memset(&mi, 0, sizeof mi);
  mi.arena = clamp(m2.arena);
  mi.hblks = clamp(m2.hblks);
  mi.hblkhd = clamp(m2.hblkhd);
  mi.uordblks = clamp(m2.uordblks);
  mi.fordblks = clamp(m2.fordblks);
  mi.keepcost = clamp(m2.keepcost);
  return mi;
}

/* To standard error, as glibc's; never a cancellation point (report). */
HK_API_FN(void, malloc_stats, (void)) { (void)report(2); }
