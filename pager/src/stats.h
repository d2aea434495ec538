/* Counters and latency histograms of a region (stats.c). */
#ifndef FLEXPAGE_STATS_H
#define FLEXPAGE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include <flexpage/flexpage_experimental.h>

typedef struct fp_region fp_region;

enum pg_counter {
	PG_FAULTS,
	PG_DEMAND_LOADS,
	PG_PREFETCH_LOADS,
	PG_EVICTIONS,
	PG_RETRIES,
	PG_POISONED,
	PG_STALLS,
	PG_HUGE_INSTALLS,
	PG_SMALL_INSTALLS,
	PG_STAGED_INSTALLS,
	PG_STAGED_DROPPED,
	PG_BYTES_READ,
	PG_BYTES_DECOMPRESSED,
	PG_BYTES_INSTALLED,
	PG_NCOUNTERS
};

struct pg_counters {
	atomic_uint_fast64_t n[PG_NCOUNTERS];
	atomic_uint_fast64_t peak_resident;
	atomic_uint_fast64_t hist[FP_NSTAGES][FP_HIST_BUCKETS];
	atomic_uint_fast64_t hist_count[FP_NSTAGES], hist_sum[FP_NSTAGES], hist_max[FP_NSTAGES];
};

uint64_t pg_now_ns(void);
void pg_stat_latency(fp_region *r, int stage, uint64_t ns);
/* Resident bytes reached this (the peak). */
void pg_stat_resident(fp_region *r, uint64_t resident);

#endif
