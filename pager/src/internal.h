/* libflexpage internals: the region, its chunk states and its threads. */
#ifndef FLEXPAGE_INTERNAL_H
#define FLEXPAGE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <urcu.h>
#include <urcu/rculist.h>

#include "chunk.h"
#include "image.h"
#include "policy.h"
#include "pool.h"
#include "queue.h"
#include "trace.h"
#include "uffd.h"
#include <flexpage/flexpage.h>

#define HUGE_2M (2u << 20)

/* Settings that change while the loop runs, published with RCU. */
struct pg_settings {
	uint64_t budget;
	const struct fp_policy_ops *policy_ops;
	void *policy;            /* guarded by the residency lock */
	struct rcu_head rcu;
};

struct pg_counters {
	atomic_uint_fast64_t faults, demand_loads, prefetch_loads, evictions, retries,
	    poisoned, huge_installs, small_installs, staged_installs, staged_dropped,
	    bytes_read, bytes_decompressed,
	    bytes_installed;
	atomic_uint_fast64_t peak_resident;
	atomic_uint_fast64_t hist[FP_NSTAGES][FP_HIST_BUCKETS];
	atomic_uint_fast64_t hist_count[FP_NSTAGES], hist_sum[FP_NSTAGES], hist_max[FP_NSTAGES];
};

struct fp_region {
	struct cds_list_head node;   /* in the handler's region list (RCU) */
	fp_image *img;
	uint8_t *base;
	uint64_t size;
	uint32_t chunk_size, n_chunks;
	struct fp_options opt;
	int fd;                      /* payload reads (O_DIRECT unless buffered) */
	int uffd;
	_Atomic int huge_ok;         /* UFFDIO_MOVE of 2 MiB pages works here */
	int can_poison;              /* UFFDIO_POISON available */
	int direct;                  /* reads bypass the page cache */

	pg_chunk_word *state;        /* per chunk (chunk.h) */
	atomic_uint_fast64_t *fault_ns;  /* per chunk: first waiting fault, 0 none */
	atomic_uint_fast64_t *queued_ns; /* per chunk: when its load was queued */
	char *_Atomic *poison_reason;/* per chunk, set once */
	uint32_t *page_len;          /* per chunk: logical_len rounded to pages */
	uint32_t *res_len;           /* per chunk: the bytes it holds while resident, page_len
	                              * or, for a streamed tail installed whole, chunk_size */

	struct pg_queue queue;       /* demand first, then read-ahead */
	int queue_ready;             /* queue initialised: region_free destroys it */
	struct pg_pool pool;         /* recycled huge pages (huge installs only) */
	void *loaders;               /* struct loader[n_loaders] (loader.c) */
	int n_loaders;

	/* Residency: resident bytes and the policy, under res_lock. */
	pthread_mutex_t res_lock;
	uint64_t resident;           /* installed + reserved region bytes */
	struct pg_settings *settings; /* RCU-published; writers hold res_lock */

	struct pg_counters stats;
	struct pg_tracer *tracer;    /* NULL: no trace */

	/* Streaming: read-ahead stages chunks; the loop's faults install them,
	 * which tells the pager where the loop is (stage.c). */
	_Atomic int stage_ahead;
	uint8_t **staged_buf;        /* per chunk: the buffer a STAGED chunk is in */
	uint8_t *staged_in_pool;     /* per chunk: that buffer is a pool slot */
	uint32_t *staged_list, n_staged; /* under res_lock */
	uint8_t *ahead_reserved;     /* per chunk: read-ahead holds its reservation (res_lock) */
	uint64_t ahead_bytes;        /* reserved by read-ahead not yet installed (res_lock) */
	uint64_t data_bytes;         /* sum of page_len: more budget than this streams nothing */

	/* The predictor (predict.c); the handler thread's alone. */
	uint32_t *seq, seq_len;      /* the learned cycle of streamed chunks */
	uint32_t *pos_of;            /* per chunk: its place in seq, or UINT32_MAX */
	uint32_t *used_cycle;        /* per chunk: the last cycle that faulted it */
	uint32_t *window_mark;       /* per chunk: the last fault whose window wanted it */
	uint32_t frontier;           /* the chunk furthest along this cycle */
	uint32_t cycle, slack, fault_seq;
	uint64_t gap_ns;             /* the loop's time per chunk, unblocked (mean) */
	uint64_t advanced_ns;        /* when the frontier last moved on */
	int advanced_waits;          /* and that fault waited for a read */

	/* A load's time, as the loaders measure it (read + decode): a mean and
	 * a mean deviation, as TCP keeps for its round trips (predict.c). */
	_Atomic uint64_t load_ns, load_dev_ns;
	_Atomic uint32_t depth;      /* the read-ahead depth of the latest fault */

	uint8_t *preserve;           /* per chunk, or NULL */
	uint64_t lock_quota;
	uint64_t preserved_bytes, locked_bytes; /* under res_lock */
	int lock_warned;
};

/* Which flexpage thread this is, for the trace: 0 the handler, 1.. the
 * loaders, PG_TRACE_OTHER_THREAD for the application's threads. */
extern _Thread_local uint16_t pg_thread_id;

/* t_ns: when it happened (CLOCK_MONOTONIC), 0 for now. */
static inline void fp_trace_event(fp_region *r, uint64_t t_ns, uint32_t type, uint32_t flags,
                                  uint32_t chunk, uint64_t a, uint64_t b)
{
	if (r->tracer)
		pg_tracer_emit(r->tracer, t_ns, type, flags, pg_thread_id, chunk, a, b);
}

/* handler.c: the process-wide fault handler and its region list. */
/* Take (start) or drop (stop on the last) the process-wide handler. */
int pg_handler_get(struct pg_uffd *out);
void pg_handler_put(void);
/* Route r's faults to it; unpublish returns once the handler cannot see r. */
void pg_handler_publish(fp_region *r);
void pg_handler_unpublish(fp_region *r);
void pg_region_fault(fp_region *r, uint64_t addr, uint32_t tid);

/* loader.c */
int pg_loaders_start(fp_region *r);
void pg_loaders_stop(fp_region *r);

/* loader.c: install chunk c from buf; 1 if pages were moved out of buf. */
int pg_install(fp_region *r, uint32_t c, int demand, uint8_t *buf);

/* stage.c: staging, the position signal and the predictor. */
int pg_stage_init(fp_region *r);
void pg_stage_free(fp_region *r);
/* A loader staged chunk c in buf; 0 if a fault got there first (then the
 * caller installs it as a demand load). */
int pg_stage_put(fp_region *r, uint32_t c, uint8_t *buf, int in_pool);
/* The handler: a fault on STAGED chunk c installs it at once. */
void pg_stage_fault(fp_region *r, uint32_t c);
/* The handler: drop staged chunks no recent fault's window wanted. */
void pg_stage_drop_stale(fp_region *r);
/* Streaming is on when the budget holds less than the whole image. */
void pg_stage_update(fp_region *r, uint64_t budget);

/* predict.c: after a fault on c, learn the order and load ahead. */
int pg_predict_init(fp_region *r);
void pg_predict_free(fp_region *r);
/* A fault on chunk c at now; `waits`: the access waits for a read. */
void pg_predict(fp_region *r, uint32_t c, uint64_t now, int waits);
/* A loader's measured load time (read + decode), for the read-ahead depth. */
void pg_predict_load_time(fp_region *r, uint64_t ns);

/* residency.c */
/* Make room for bytes more, evicting per the policy, and count them. */
void pg_reserve(fp_region *r, uint64_t bytes);
void pg_mark_resident(fp_region *r, uint32_t c, int demand);
/* Tell the policy of an access to resident chunk c. */
void pg_touch(fp_region *r, uint32_t c);
/* Chunks of the budget kept free of read-ahead for the loop's own use:
 * those its threads are on, and one just installed.  A budget with no more
 * room than this after preservation gets no read-ahead at all. */
#define PG_IN_USE_CHUNKS 4

/* What read-ahead may hold of a budget: what preservation leaves, less
 * PG_IN_USE_CHUNKS chunks. */
uint64_t pg_ahead_room(const fp_region *r, uint64_t budget);
/* Read-ahead reserves before it reads, and only within the budget left
 * after preservation and the loop's chunks in use: 1 if there is no room. */
int pg_reserve_ahead(fp_region *r, uint32_t c);
/* Chunk c's read-ahead reservation ends: it is installed (release, under
 * res_lock), or its bytes leave the budget too (unreserve: a failed load,
 * or a dropped staged chunk under res_lock). */
void pg_release_ahead(fp_region *r, uint32_t c);
void pg_unreserve_ahead(fp_region *r, uint32_t c);
void pg_unreserve_ahead_locked(fp_region *r, uint32_t c);
int pg_evict_to(fp_region *r, uint64_t target);

/* stats.c */
void pg_stat_latency(fp_region *r, int stage, uint64_t ns);
uint64_t pg_now_ns(void);

/* reporter.c */
void pg_reporter_add(fp_region *r);
void pg_reporter_remove(fp_region *r);
void pg_poison_chunk(fp_region *r, uint32_t c, const char *reason);

static inline uint32_t chunk_state(fp_region *r, uint32_t c)
{
	return pg_chunk_state(&r->state[c]);
}

#endif
