/* Read-ahead: after each fault, the chunks the loop wants next are loaded
 * ahead of it, within the room the budget leaves.  Three files:
 *   readahead.c        the step: depth from the measured rates, the window,
 *                      and the reservation of room before a read
 *   readahead_order.c  the learned order of the streamed chunks (the predictor)
 *   readahead_stage.c  staging, when streaming: loaded but not installed, so
 *                      that the loop's fault says where it is */
#ifndef FLEXPAGE_READAHEAD_H
#define FLEXPAGE_READAHEAD_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct fp_region fp_region;

/* readahead.c.  The handler's alone, but for the load time (the loaders
 * measure it) and the reservations (under the residency lock). */
struct pg_readahead {
	/* A load's time (read + decode), a mean and a mean deviation, as
	 * TCP keeps for its round trips. */
	_Atomic uint64_t load_ns, load_dev_ns;
	_Atomic uint32_t depth;      /* the depth of the latest fault's window */
	uint64_t gap_ns;             /* the loop's time per chunk, unblocked (mean) */
	uint64_t advanced_ns;        /* when the frontier last moved on */
	int advanced_waits;          /* and that fault waited for a read */
	uint32_t fault_seq;          /* faults seen */
	uint32_t *window_mark;       /* per chunk: the last fault whose window wanted it */
	uint8_t *reserved;           /* per chunk: holds a read-ahead reservation (res lock) */
	uint64_t reserved_bytes;     /* reserved and not installed (res lock) */
};

/* readahead_order.c: the handler's alone. */
struct pg_order {
	uint32_t *seq, seq_len;      /* the learned cycle of streamed chunks */
	uint32_t *pos_of;            /* per chunk: its place in seq, or UINT32_MAX */
	uint32_t *used_cycle;        /* per chunk: the last cycle that faulted it */
	uint32_t frontier;           /* the chunk furthest along this cycle */
	uint32_t cycle, slack;
};

/* readahead_stage.c.  The list is under the residency lock. */
struct pg_staging {
	_Atomic int on;              /* streaming: read-ahead stages */
	uint8_t **buf;               /* per chunk: the buffer a STAGED chunk is in */
	uint8_t *in_pool;            /* per chunk: that buffer is a pool slot */
	uint32_t *list, n;           /* the STAGED chunks */
};

/* Chunks of the budget kept free of read-ahead for the loop's own use:
 * those its threads are on, and one just installed.  A budget with no more
 * room than this after preservation gets no read-ahead at all. */
#define PG_IN_USE_CHUNKS 4

/* readahead.c */
int pg_ra_init(fp_region *r);
void pg_ra_free(fp_region *r);
/* The handler, after a fault on c at now (waits: the access waits for a
 * read): learn, and queue the window's loads. */
void pg_ra_after_fault(fp_region *r, uint32_t c, uint64_t now, int waits);
/* A loader's measured load time (read + decode), for the depth. */
void pg_ra_load_time(fp_region *r, uint64_t ns);
/* What read-ahead may hold of a budget: what preservation leaves, less
 * PG_IN_USE_CHUNKS chunks. */
uint64_t pg_ra_room(const fp_region *r, uint64_t budget);
/* Reserve chunk c's room before its read: 1 if there is none. */
int pg_ra_reserve(fp_region *r, uint32_t c);
/* Chunk c's reservation ends: installed (release), or its bytes leave the
 * budget too (unreserve: a failed load, a dropped staged chunk). */
void pg_ra_release_locked(fp_region *r, uint32_t c);
void pg_ra_unreserve(fp_region *r, uint32_t c);
void pg_ra_unreserve_locked(fp_region *r, uint32_t c);
/* Under the residency lock: reserved read-ahead load c, claimed by the
 * caller, goes back (GIVE_BACK) with its room; 0 if a fault wants it. */
int pg_ra_give_back_locked(fp_region *r, uint32_t c);
/* The depth of the latest fault's window, in chunks. */
uint32_t pg_ra_depth(const fp_region *r);
/* Faults since a window last wanted chunk c. */
uint32_t pg_ra_faults_since_wanted(const fp_region *r, uint32_t c);

/* readahead_order.c */
int pg_order_init(fp_region *r);
void pg_order_free(fp_region *r);
/* Learn from a fault on c; returns how many chunks the frontier moved on. */
uint32_t pg_order_learn(fp_region *r, uint32_t c);
/* A first cycle is complete: the order can be followed. */
int pg_order_known(const fp_region *r);
/* Offer want() the chunks around the frontier the loop will want, nearest
 * first, until it has taken depth of them (want returns 1 for taken). */
void pg_order_window(fp_region *r, uint32_t depth,
                     int (*want)(fp_region *r, uint32_t c, void *ctx), void *ctx);

/* readahead_stage.c */
int pg_stage_init(fp_region *r);
void pg_stage_free(fp_region *r);
/* Streaming is on when the budget holds less than the whole image. */
void pg_stage_update(fp_region *r, uint64_t budget);
/* A loader staged chunk c in buf: 1; 0 if a fault got there first (then
 * the caller installs it as a demand load); -1 if the budget was cut below
 * what is resident while it was read, and the chunk was given back
 * instead (its room released; the caller frees buf). */
int pg_stage_put(fp_region *r, uint32_t c, uint8_t *buf, int in_pool);
/* The handler: a fault on STAGED chunk c installs it at once. */
/* 0 if it was no longer STAGED (a budget cut dropped it): decide again. */
int pg_stage_fault(fp_region *r, uint32_t c);
/* The handler: drop staged chunks no recent fault's window wanted. */
void pg_stage_drop_stale(fp_region *r);
/* Under the residency lock: drop staged chunks until resident bytes fit
 * in target (a budget cut, which eviction alone cannot meet while staged
 * chunks hold room the policy does not know of). */
void pg_stage_shed_locked(fp_region *r, uint64_t target);

#endif
