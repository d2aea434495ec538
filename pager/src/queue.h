/* The loaders' work queue: two rings of chunk indices, demand loads served
 * before read-ahead.  A chunk may sit in both (read-ahead first, then a
 * fault promoted it); the loader that claims it first loads it. */
#ifndef FLEXPAGE_QUEUE_H
#define FLEXPAGE_QUEUE_H

#include <pthread.h>
#include <stdint.h>

struct fp_ring {
	uint32_t *slot;
	uint32_t cap, head, n;
};

struct fp_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct fp_ring demand, ahead;
	int stop;
};

int fp_queue_init(struct fp_queue *q, uint32_t n_chunks);
void fp_queue_destroy(struct fp_queue *q);
void fp_queue_push(struct fp_queue *q, uint32_t c, int demand);
/* Blocks for work; returns 0 with *c and *demand, or -1 once stopped. */
int fp_queue_pop(struct fp_queue *q, uint32_t *c, int *demand);
void fp_queue_stop(struct fp_queue *q);

#endif
