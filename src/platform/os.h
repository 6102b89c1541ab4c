/* os.h: the contract between hakmem and the operating system.
 *
 * Every mmap/munmap/madvise goes through here, so the rest of the allocator
 * never sees a raw system call. Functions return NULL or an errno value;
 * none of them allocates or takes a lock.
 *
 * It also answers the two platform facts the layout depends on, so that no
 * other file assumes them: the page size and how many bits of address this
 * process's mappings can use. Both are read on first use (hk_init reads
 * them at start-up) without allocating, so they are there for the first
 * malloc under LD_PRELOAD, before any constructor has run.
 */
#ifndef HK_OS_H
#define HK_OS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

// ---------------------------------------------------------------------------
// Platform facts

/* The page sizes hakmem supports: every 64-bit Linux architecture's
 * (4 KiB; 16 KiB on some arm64 and loong64 kernels; 64 KiB on ppc64el and
 * some arm64 ones). The upper bound is the link format's: a tiny slab is
 * four pages (superslab.c), and 4 x 64 KiB of 16-byte blocks is the most
 * a 14-bit link index can number (types.h). */
#define HK_PAGE_SIZE_MIN ((size_t)4096)
#define HK_PAGE_SIZE_MAX ((size_t)65536)

/* The facts in one word, so that threads racing to read them first store
 * the same value and readers need no ordering: the page shift in bits 0-7,
 * the address bits in bits 8-15, 0 until read. */
extern _Atomic uint32_t hk_os_facts;

/* Reads the facts (getauxval) and returns the word; aborts with a message
 * when the page size is one hakmem cannot work with. */
uint32_t hk_os_facts_init(void);

static inline uint32_t hk_os_facts_word(void) {
  uint32_t w = atomic_load_explicit(&hk_os_facts, memory_order_relaxed);
  if (__builtin_expect(w == 0, 0))
    w = hk_os_facts_init();
  return w;
}

/* log2 of the page size, and the page size: the unit of every mapping,
 * decommit and protection below. */
static inline unsigned hk_page_shift(void) {
  return hk_os_facts_word() & 0xffu;
}
static inline size_t hk_page_size(void) { return (size_t)1 << hk_page_shift(); }

/* `bytes` rounded up to whole pages. */
static inline size_t hk_page_round(size_t bytes) {
  size_t mask = hk_page_size() - 1;
  return (bytes + mask) & ~mask;
}

/* How many low bits of an address a mapping of ours (mmap without a hint)
 * can use on this architecture and kernel: every address the kernel gives
 * us is below 2^hk_address_bits() (at most 64). */
static inline unsigned hk_address_bits(void) {
  return (hk_os_facts_word() >> 8) & 0xffu;
}

/* The calling thread's thread pointer, one instruction away: unique among
 * live threads, and aligned to 16 at least (the owner tokens in heap.h
 * tag its low bits). GCC 12 has no __builtin_thread_pointer for ppc64,
 * whose ABI keeps the pointer in r13. */
static inline uintptr_t hk_os_thread_pointer(void) {
#if defined(__powerpc64__)
  uintptr_t tp;
  __asm__("mr %0, 13" : "=r"(tp));
  return tp;
#else
  return (uintptr_t)__builtin_thread_pointer();
#endif
}

/* Tests only (hidden, not a knob): runs the allocator as if the kernel had
 * pages of `page_size` bytes and `address_bits`-bit addresses (0 keeps
 * the real value). The OS calls then insist on that page size's alignment
 * (hk_os_misaligned counts the calls refused for it), which this kernel,
 * its pages no bigger, accepts. Returns 0, or EINVAL for a page size or
 * bit count hakmem does not support, or EBUSY once anything was mapped:
 * memory laid out for one page size cannot be handled with another. */
int hk_os_inject(size_t page_size, unsigned address_bits);

/* OS calls refused because an address or a size was not page-aligned: a
 * bug of ours (the kernel would refuse them too, or round them). */
extern _Atomic unsigned long hk_os_misaligned;

// ---------------------------------------------------------------------------
// Calls. Every address and size they take is a multiple of hk_page_size():
// a call that breaks this is refused with EINVAL (and counted in
// hk_os_misaligned) rather than passed on, because the kernel would round a
// decommit's or a protection's length up to a whole page and so reach
// memory beyond the range the caller meant.

/* Maps `size` bytes of zeroed memory aligned to `align` (a power of two,
 * at least a page; size a multiple of a page). NULL with errno ENOMEM when
 * the OS refuses (or the size or alignment is not of whole pages). */
void *hk_os_map_aligned(size_t size, size_t align);

/* Moves the pages of [old, old+size) to [to, to+size), both mapped by us,
 * without copying them; the old range stays mapped and reads as zeroes.
 * Returns 0, or an errno value (EINVAL before Linux 5.7) and then nothing
 * moved. */
int hk_os_move(void *old, size_t size, void *to);

/* Unmaps what hk_os_map_aligned returned (or a page-aligned part of it).
 * Returns 0, or an errno value (ENOMEM: the unmap would split a mapping
 * and the process is at vm.max_map_count) and then it is still mapped. */
int hk_os_unmap(void *addr, size_t size);

/* Gives the pages back to the OS but keeps the range mapped; the next touch
 * reads zeroes. Returns 0 or an errno value (EINVAL for locked pages, under
 * mlock or mlockall), and then the range, or part of it, still holds its
 * data: only 0 makes it clean. */
int hk_os_decommit(void *addr, size_t size);

/* Makes the pages readable and writable (`writable`) or inaccessible.
 * Returns 0 or an errno value (ENOMEM: the change would split a mapping
 * past vm.max_map_count) and then nothing changed. */
int hk_os_protect(void *addr, size_t size, int writable);

/* Asks the kernel to back the range with transparent huge pages (`want`)
 * or never to. Advice only: a kernel without THP refuses, and nothing
 * depends on the answer. */
void hk_os_advise_huge(void *addr, size_t size, int want);

/* The process's address-space limit (RLIMIT_AS) in bytes; SIZE_MAX when
 * there is none. */
size_t hk_os_address_space_limit(void);

/* vm.max_map_count, read from /proc without allocating; 0 if unknown. */
long hk_os_max_map_count(void);

/* The size of a transparent huge page (a power of two), read once; 0 if
 * the kernel has none. */
size_t hk_os_huge_page_size(void);

/* A millisecond clock for purge delays; wraps every 49 days, so compare
 * differences, not values. */
uint32_t hk_os_now_ms(void);

/* Writes all of `len` bytes to fd 2 without allocating (async-signal-safe). */
void hk_os_write_stderr(const char *buf, size_t len);

#endif
