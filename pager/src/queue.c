#include <stdlib.h>

#include "queue.h"

static int ring_init(struct pg_ring *r, uint32_t cap)
{
	r->slot = malloc(sizeof *r->slot * cap);
	r->cap = cap;
	r->head = r->n = 0;
	return r->slot ? 0 : -1;
}

static void ring_push(struct pg_ring *r, uint32_t c)
{
	/* Entries are bounded by the chunk count (see the callers), but a
	 * full ring drops its oldest entry rather than overflow. */
	if (r->n == r->cap) {
		r->head = (r->head + 1) % r->cap;
		r->n--;
	}
	r->slot[(r->head + r->n) % r->cap] = c;
	r->n++;
}

static uint32_t ring_pop(struct pg_ring *r)
{
	uint32_t c = r->slot[r->head];
	r->head = (r->head + 1) % r->cap;
	r->n--;
	return c;
}

int pg_queue_init(struct pg_queue *q, uint32_t n_chunks)
{
	q->stop = 0;
	q->busy = 0;
	atomic_init(&q->outside, 0);
	atomic_init(&q->waiters, 0);
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	pthread_cond_init(&q->idle, NULL);
	/* Twice the chunks: a chunk can be queued again after a stale entry
	 * for it is still waiting. */
	if (ring_init(&q->demand, 2 * n_chunks + 1) || ring_init(&q->ahead, 2 * n_chunks + 1))
		return -1;
	return 0;
}

void pg_queue_destroy(struct pg_queue *q)
{
	free(q->demand.slot);
	free(q->ahead.slot);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	pthread_cond_destroy(&q->idle);
}

void pg_queue_push(struct pg_queue *q, uint32_t c, int demand)
{
	pthread_mutex_lock(&q->lock);
	ring_push(demand ? &q->demand : &q->ahead, c);
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

int pg_queue_pop(struct pg_queue *q, uint32_t *c, int *demand)
{
	pthread_mutex_lock(&q->lock);
	while (!q->stop && !q->demand.n && !q->ahead.n)
		pthread_cond_wait(&q->cond, &q->lock);
	int rc = -1;
	if (!q->stop) {
		*demand = q->demand.n > 0;
		*c = ring_pop(*demand ? &q->demand : &q->ahead);
		q->busy++;
		rc = 0;
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

void pg_queue_stop(struct pg_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->stop = 1;
	pthread_cond_broadcast(&q->cond);
	pthread_cond_broadcast(&q->idle);
	pthread_mutex_unlock(&q->lock);
}

static int idle(struct pg_queue *q)
{
	return !q->demand.n && !q->ahead.n && !q->busy && !atomic_load(&q->outside);
}

void pg_queue_done(struct pg_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->busy--;
	if (atomic_load(&q->waiters) && idle(q))
		pthread_cond_broadcast(&q->idle);
	pthread_mutex_unlock(&q->lock);
}

void pg_queue_work_begin(struct pg_queue *q)
{
	atomic_fetch_add(&q->outside, 1);
}

/* Either this thread sees the waiter's count or the waiter sees the
 * decrement (both sequentially consistent): no wakeup is lost. */
void pg_queue_work_end(struct pg_queue *q)
{
	if (atomic_fetch_sub(&q->outside, 1) == 1 && atomic_load(&q->waiters)) {
		pthread_mutex_lock(&q->lock);
		pthread_cond_broadcast(&q->idle);
		pthread_mutex_unlock(&q->lock);
	}
}

void pg_queue_wait_idle(struct pg_queue *q)
{
	pthread_mutex_lock(&q->lock);
	atomic_fetch_add(&q->waiters, 1);
	while (!q->stop && !idle(q))
		pthread_cond_wait(&q->idle, &q->lock);
	atomic_fetch_sub(&q->waiters, 1);
	pthread_mutex_unlock(&q->lock);
}
