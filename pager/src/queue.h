/* The loaders' work queue: two rings of chunk indices, demand loads served
 * before read-ahead.  A chunk may sit in both (read-ahead first, then a
 * fault promoted it); the loader that claims it first loads it. */
#ifndef FLEXPAGE_QUEUE_H
#define FLEXPAGE_QUEUE_H

#include <pthread.h>
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
};

int pg_queue_init(struct pg_queue *q, uint32_t n_chunks);
void pg_queue_destroy(struct pg_queue *q);
void pg_queue_push(struct pg_queue *q, uint32_t c, int demand);
/* Blocks for work; returns 0 with *c and *demand, or -1 once stopped. */
int pg_queue_pop(struct pg_queue *q, uint32_t *c, int *demand);
void pg_queue_stop(struct pg_queue *q);

#endif
