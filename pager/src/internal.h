/* libflexpage internals: a region, made of the parts each step of the data
 * path owns.  A file touches its own part and calls the others; the fixed
 * fields at the top are set by fp_open and only read after.
 *
 *   image.c          the image: header, tables, decoding a chunk
 *   region.c         fp_open / fp_close, as their steps
 *   handler.c        the process-wide fault handler thread
 *   fault.c          one fault
 *   load.c           the loader threads: read, verify, decode a chunk
 *   install.c        hand a loaded chunk to the region
 *   residency.c      the budget and the policy; evict.c: victims' pages out
 *   preserve.c       preserved chunks and the lock quota
 *   rates.c          read and decode rates; the form of each chunk read
 *   readahead*.c     read-ahead: depth, window, order, staging
 *   poison.c         failed chunks; reporter.c: the SIGBUS reporter
 *   stats.c          counters and histograms */
#ifndef FLEXPAGE_INTERNAL_H
#define FLEXPAGE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <urcu.h>

#include "chunk.h"
#include "image.h"
#include "load.h"
#include "policy.h"
#include "pool.h"
#include "readahead.h"
#include "residency.h"
#include "stats.h"
#include "trace.h"
#include "uffd.h"
#include <flexpage/flexpage_experimental.h>

#define HUGE_2M (2u << 20)

/* Every flag fp_open knows. */
#define PG_OPEN_FLAGS (FP_OPEN_BUFFERED | FP_OPEN_NO_HUGE | FP_OPEN_NO_LOCK | FP_OPEN_NO_STAGE | \
                       FP_OPEN_NO_PREDICT | FP_OPEN_NO_PRESERVE)

/* Pages given back by fp_region_unmap (unmap.c): a bit per page, NULL
 * until the first.  Whoever maps or drops region pages holds the lock for
 * reading; fp_region_unmap holds it for writing. */
struct pg_unmapped {
	pthread_rwlock_t lock;
	_Atomic uint64_t *_Atomic gone;
};

/* The rates forms were chosen and the plan made by (rates.c). */
struct pg_rates {
	double read, decode;         /* bytes/s */
	uint32_t measured;           /* FP_RATE_* bits */
	uint32_t compressed;         /* chunks read compressed */
	uint32_t alt_chosen;         /* chunks whose alternate form is read */
	uint64_t probe_ns;
};

/* Poisoned chunks (poison.c). */
struct pg_poison {
	int can;                     /* UFFDIO_POISON available */
	char *_Atomic *reason;       /* per chunk, set once */
};

struct fp_region {
	/* Fixed by fp_open (region.c), read by every step. */
	struct fp_region *_Atomic next_open; /* the handler's list of regions (handler.c) */
	fp_image *img;
	uint8_t *base;
	uint64_t size;
	uint32_t chunk_size, n_chunks;
	struct fp_options opt;
	uint32_t *page_len;          /* per chunk: logical_len rounded up to pages */
	uint64_t data_bytes;         /* sum of page_len: more budget than this streams nothing */
	int uffd;

	/* The parts, each its file's. */
	pg_chunk_word *state;        /* per chunk: the protocol (chunk.c) */
	struct pg_loads load;        /* load.c */
	struct pg_install install;   /* install.c */
	struct pg_pool pool;         /* pool.c: recycled huge pages */
	struct pg_residency res;     /* residency.c */
	struct pg_preservation keep; /* preserve.c */
	struct pg_rates rates;       /* rates.c */
	struct pg_readahead ahead;   /* readahead.c */
	struct pg_order order;       /* readahead_order.c */
	struct pg_staging stage;     /* readahead_stage.c */
	struct pg_poison poison;     /* poison.c */
	struct pg_unmapped unmapped; /* unmap.c */
	struct pg_counters stats;    /* stats.c */
	struct pg_tracer *tracer;    /* trace.c; NULL: no trace */
};

/* handler.c: the process-wide fault handler and its region list. */
/* Take (start) or drop (stop on the last) the process-wide handler. */
int pg_handler_get(struct pg_uffd *out);
void pg_handler_put(void);
/* Route r's faults to it; unpublish returns once the handler cannot see r. */
void pg_handler_publish(fp_region *r);
void pg_handler_unpublish(fp_region *r);

/* fault.c: the handler serves a fault at addr in r (tid: the thread's). */
void pg_fault(fp_region *r, uint64_t addr, uint32_t tid);

/* rates.c: the read and decode rates (given, or measured when something
 * depends on them), and each chunk's form chosen by them. */
int pg_rates_init(fp_region *r, uint64_t budget);
void pg_rates_stats(const fp_region *r, struct fp_stats *o);

/* poison.c */
int pg_poison_init(fp_region *r, uint64_t features);
void pg_poison_free(fp_region *r);
/* Chunk c failed for good: its waiters wake and their access raises SIGBUS. */
void pg_poison_chunk(fp_region *r, uint32_t c, const char *reason);
/* Why chunk c was poisoned, or NULL.  Async-signal-safe. */
const char *pg_poison_reason(const fp_region *r, uint32_t c);

/* unmap.c: pages given back.  Callers of the run functions hold the lock
 * (pg_map_hold) for as long as they act on the pages. */
void pg_map_init(fp_region *r);
void pg_map_free(fp_region *r);
void pg_map_hold(fp_region *r);
void pg_map_unhold(fp_region *r);
/* 1 if no page of [off, off+len) was given back. */
int pg_map_whole(const fp_region *r, uint64_t off, uint64_t len);
/* Call fn on each run of live pages of [off, off+len) (clipped to the
 * region); stops at and returns the first non-zero result. */
typedef int (*pg_live_fn)(fp_region *r, uint8_t *p, size_t len, void *ctx);
int pg_map_each_live(fp_region *r, uint64_t off, uint64_t len, pg_live_fn fn, void *ctx);
/* Whether the page at addr was given back; without the lock (the handler,
 * the SIGBUS reporter: async-signal-safe). */
int pg_map_gone_at(const fp_region *r, uint64_t addr);
/* fp_close: unregister and unmap the live pages. */
void pg_map_close(fp_region *r);

/* reporter.c */
/* The reporter can name r's poisoned chunks (-ENOMEM if not). */
int pg_reporter_add(fp_region *r);
void pg_reporter_remove(fp_region *r);

/* Which flexpage thread this is, for the trace: 0 the handler, 1.. the
 * loaders, FP_TRACE_OTHER_THREAD for the application's threads. */
extern _Thread_local uint16_t pg_thread_id;

/* t_ns: when it happened (CLOCK_MONOTONIC), 0 for now. */
static inline void pg_trace_event(fp_region *r, uint64_t t_ns, uint32_t type, uint32_t flags,
                                  uint32_t chunk, uint64_t a, uint64_t b)
{
	if (r->tracer)
		pg_tracer_emit(r->tracer, t_ns, type, flags, pg_thread_id, chunk, a, b);
}

static inline void pg_count(fp_region *r, enum pg_counter k, uint64_t n)
{
	atomic_fetch_add_explicit(&r->stats.n[k], n, memory_order_relaxed);
}

static inline void pg_uncount(fp_region *r, enum pg_counter k, uint64_t n)
{
	atomic_fetch_sub_explicit(&r->stats.n[k], n, memory_order_relaxed);
}

static inline uint32_t chunk_state(fp_region *r, uint32_t c)
{
	return pg_chunk_state(&r->state[c]);
}

static inline int pg_preserved(const fp_region *r, uint32_t c)
{
	return r->keep.preserve && r->keep.preserve[c];
}

static inline int pg_install_huge(fp_region *r)
{
	return atomic_load(&r->install.huge_ok);
}

static inline int pg_staging(fp_region *r)
{
	return atomic_load(&r->stage.on);
}

static inline uint32_t pg_res_len(const fp_region *r, uint32_t c)
{
	return r->res.res_len[c];
}

#endif
