/* The loaders' work queue: two rings of chunk indices, demand loads served
 * before read-ahead.  A chunk may sit in both (read-ahead first, then a
 * fault promoted it); the loader that claims it first loads it.  It also
 * knows when nothing is in flight: no entry queued, none being worked on
 * (popped, not done), and no work outside it that may queue more. */
#ifndef FLEXPAGE_QUEUE_H
#define FLEXPAGE_QUEUE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct pg_ring {
	uint32_t *slot;
	uint32_t cap, head, n;
};

struct pg_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pg_ring demand, ahead;
	int stop;
	uint32_t busy;           /* entries popped and not done */
	pthread_cond_t idle;     /* nothing queued, busy or outside */
	atomic_uint outside;     /* work outside the queue (the handler serving a fault) */
	atomic_uint waiters;     /* threads in pg_queue_wait_idle */
};

int pg_queue_init(struct pg_queue *q, uint32_t n_chunks);
void pg_queue_destroy(struct pg_queue *q);
void pg_queue_push(struct pg_queue *q, uint32_t c, int demand);
/* Blocks for work; returns 0 with *c and *demand, or -1 once stopped.
 * The entry is busy until pg_queue_done. */
int pg_queue_pop(struct pg_queue *q, uint32_t *c, int *demand);
void pg_queue_done(struct pg_queue *q);
/* Work outside the queue that may queue entries, which an idle wait
 * waits for too; lock-free unless a thread waits. */
void pg_queue_work_begin(struct pg_queue *q);
void pg_queue_work_end(struct pg_queue *q);
/* Wait for a moment when nothing is queued, busy or outside. */
void pg_queue_wait_idle(struct pg_queue *q);
void pg_queue_stop(struct pg_queue *q);

#endif
