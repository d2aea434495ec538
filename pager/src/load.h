/* Loading and installing: the loader threads, their queue, and the install
 * that hands a loaded chunk to the region. */
#ifndef FLEXPAGE_LOAD_H
#define FLEXPAGE_LOAD_H

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
	struct loader *loaders;      /* [n_loaders] */
	int n_loaders;
	atomic_uint_fast64_t *fault_ns;  /* per chunk: first waiting fault, 0 none */
	atomic_uint_fast64_t *queued_ns; /* per chunk: when its load was queued */
};

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
