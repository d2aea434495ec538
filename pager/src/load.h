/* Loading and installing: the loader threads, their queue, and the install
 * that hands a loaded chunk to the region. */
#ifndef FLEXPAGE_LOAD_H
#define FLEXPAGE_LOAD_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>

#include "queue.h"

typedef struct fp_region fp_region;

/* The loads (load.c). */
struct pg_loads {
	int fd;                      /* payload reads (O_DIRECT unless buffered) */
	int fd_open;
	int direct;                  /* reads bypass the page cache */
	struct pg_queue queue;       /* demand first, then read-ahead */
	int queue_ready;             /* queue initialised: pg_load_free destroys it */
	sem_t decoders;              /* fp_options.decoders: decodes at once */
	int decoders_limited;
	struct loader *loaders;      /* [max_loaders]: the first n_loaders started */
	_Atomic int n_loaders;
	int max_loaders;             /* opt.loaders and the replacements of stalled ones */
	atomic_uint_fast64_t *fault_ns;  /* per chunk: first waiting fault, 0 none */
	atomic_uint_fast64_t *queued_ns; /* per chunk: when its load was queued */
	/* The stall watchdog (stall.c). */
	uint32_t timeout_ms;         /* a read given up after this long; 0: never */
	atomic_uint *stalls;         /* per chunk: reads given up since its last install */
	int watchdog_on;
	pthread_t watchdog;
	pthread_mutex_t wd_lock;
	pthread_cond_t wd_cond;      /* CLOCK_MONOTONIC */
	int wd_stop;
};

/* Stalled loaders a region has replaced at once (each waits for its read
 * to return); past that a stalled read's chunk is poisoned at once. */
#define PG_MAX_REPLACED 32

/* The install (install.c). */
struct pg_install {
	_Atomic int huge_ok;         /* UFFDIO_MOVE of whole 2 MiB pages works here */
};

/* load.c */
int pg_load_init(fp_region *r);
void pg_load_free(fp_region *r);
/* Open the image's payloads for the loaders: O_DIRECT where it can. */
int pg_load_open(fp_region *r, const char *path);
int pg_loaders_start(fp_region *r);
void pg_loaders_stop(fp_region *r);
/* Queue chunk c's load (its state already says LOADING); now: when. */
void pg_load_queue(fp_region *r, uint32_t c, int demand, uint64_t now);
/* Around work that may queue loads (the handler serving a fault), which
 * fp_quiesce waits for too. */
void pg_load_work_begin(fp_region *r);
void pg_load_work_end(fp_region *r);
/* A fault on EMPTY chunk c (state *seen): start a demand load.  0 if the
 * word changed meanwhile (*seen is the new value). */
int pg_load_on_fault(fp_region *r, uint32_t c, uint32_t *seen, uint64_t now);
/* A fault on chunk c while read-ahead loads it or its pages go (state
 * *seen): a thread waits now.  0 if the word changed meanwhile. */
int pg_load_promote(fp_region *r, uint32_t c, uint32_t *seen, uint64_t now);

/* For the stall watchdog: how many loaders were started; whether loader i
 * has been reading one chunk for at least ms, in which case the load is
 * taken from it (1, with *chunk): one exchange on its read slot decides
 * between the watchdog and the loader, and the loser's read is dropped.
 * *replaced: a new loader was started in its place (the stalled one ends
 * once its read returns). */
int pg_loaders_count(fp_region *r);
int pg_loader_give_up(fp_region *r, int i, uint32_t ms, uint32_t *chunk, int *replaced);

/* stall.c: the watchdog of stalled reads. */
int pg_stall_start(fp_region *r);
void pg_stall_stop(fp_region *r);
/* Chunk c is in: its stalls are forgotten. */
void pg_stall_forget(fp_region *r, uint32_t c);

/* install.c */
/* Whether whole chunks can move in as huge pages (UFFDIO_MOVE). */
void pg_install_setup(fp_region *r, uint64_t features, uint64_t ioctls);
/* Install chunk c from buf, in one ioctl that wakes every thread waiting
 * on it; returns 1 if pages were moved out of buf. */
int pg_install(fp_region *r, uint32_t c, int demand, uint8_t *buf);
/* Chunk c is in: RESIDENT, counted, shown to the policy (or locked, if
 * preserved). */
void pg_installed(fp_region *r, uint32_t c, int demand);

#endif
