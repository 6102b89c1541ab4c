/* thread.h: a thread's heap from its first allocation to its exit. */
#ifndef HK_THREAD_H
#define HK_THREAD_H

struct hk_heap;

/* At start-up (hk_init): the key whose destructor detaches a thread's
 * heap when the thread exits. */
void hk_thread_init(void);

/* Attaches a heap to the calling thread; NULL when out of memory. The
 * caller has run hk_init. */
struct hk_heap *hk_heap_attach(void);
/* The calling thread's heap for a free that would batch: attached now if
 * the thread has none, unless the thread has exited (a free made by a
 * later thread-exit destructor must not attach another heap, which no
 * destructor would be left to give back). NULL if none. */
struct hk_heap *hk_heap_for_free(void);
/* Gives back everything the heap owns; called at thread exit. */
void hk_heap_detach(struct hk_heap *h);

#endif
