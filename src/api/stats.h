/* stats.h: the reports of the counters (counters.h) and of the heaps:
 * mallinfo/mallinfo2, malloc_stats, hakmem.h's extras and the HAKMEM_STATS
 * exit report. Above every tier: it reads them, none calls it. */
#ifndef HK_STATS_H
#define HK_STATS_H

/* With HAKMEM_STATS, at start-up (from hk_init): keeps a duplicate
 * of the descriptor the exit report goes to, so that it arrives even if the
 * program closes its standard error first. Allocates nothing. */
void hk_stats_start(void);

#endif
