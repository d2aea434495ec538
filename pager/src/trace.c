/* Recording the event trace.  Each producing thread owns a ring of records
 * (single producer, single consumer: no lock, no shared cache line on the
 * fast path); a writer thread drains the rings to the file every few
 * milliseconds.  A full ring drops the event and counts it. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "trace.h"

#define RING_RECORDS (1u << 15) /* 1 MiB a thread */

struct ring {
	struct ring *next;          /* the tracer's list; pushed once, never removed */
	pthread_t owner;
	_Atomic uint64_t head;      /* written by the owner */
	_Atomic uint64_t tail;      /* written by the writer thread */
	struct fp_trace_event ev[RING_RECORDS];
};

struct pg_tracer {
	uint64_t id;                /* unique per process: thread caches key on it */
	FILE *f;
	char *path;
	uint64_t start_ns;
	struct ring *_Atomic rings;
	atomic_uint_fast64_t written, dropped;
	atomic_int stop, failed;
	pthread_t writer;
};

static _Thread_local struct {
	uint64_t id;
	struct ring *r;
} cache;
static atomic_uint_fast64_t next_id = 1;

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct ring *my_ring(struct pg_tracer *t)
{
	if (cache.id == t->id)
		return cache.r;
	pthread_t self = pthread_self();
	struct ring *r;
	for (r = atomic_load(&t->rings); r; r = r->next)
		if (pthread_equal(r->owner, self))
			break;
	if (!r) {
		r = calloc(1, sizeof *r);
		if (!r)
			return NULL;
		r->owner = self;
		r->next = atomic_load(&t->rings);
		while (!atomic_compare_exchange_weak(&t->rings, &r->next, r))
			;
	}
	cache.id = t->id;
	cache.r = r;
	return r;
}

void pg_tracer_emit(struct pg_tracer *t, uint64_t t_ns, uint32_t type, uint32_t flags,
                    uint32_t thread, uint32_t chunk, uint64_t a, uint64_t b)
{
	struct ring *r = my_ring(t);
	if (!r) {
		atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
		return;
	}
	uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	if (h - atomic_load_explicit(&r->tail, memory_order_acquire) >= RING_RECORDS) {
		atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
		return;
	}
	struct fp_trace_event *e = &r->ev[h % RING_RECORDS];
	e->t_ns = (t_ns ? t_ns : mono_ns()) - t->start_ns;
	e->type = (uint8_t)type;
	e->flags = (uint8_t)flags;
	e->thread = (uint16_t)thread;
	e->chunk = chunk;
	e->a = a;
	e->b = b;
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
}

static void drain(struct pg_tracer *t)
{
	for (struct ring *r = atomic_load(&t->rings); r; r = r->next) {
		uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
		uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
		while (tail < head) {
			uint64_t i = tail % RING_RECORDS, n = head - tail;
			if (n > RING_RECORDS - i)
				n = RING_RECORDS - i;
			if (fwrite(&r->ev[i], sizeof r->ev[0], n, t->f) != n)
				atomic_store(&t->failed, 1);
			tail += n;
			atomic_fetch_add_explicit(&t->written, n, memory_order_relaxed);
		}
		atomic_store_explicit(&r->tail, tail, memory_order_release);
	}
}

static void *writer_main(void *arg)
{
	struct pg_tracer *t = arg;
	while (!atomic_load(&t->stop)) {
		drain(t);
		usleep(2000);
	}
	drain(t);
	return NULL;
}

struct pg_tracer *pg_tracer_start(const char *path, const struct fp_trace_header *h)
{
	struct pg_tracer *t = calloc(1, sizeof *t);
	if (!t)
		return pg_err_null(ENOMEM, "out of memory");
	t->f = fopen(path, "wb");
	if (!t->f) {
		int e = pg_errno();
		free(t);
		return pg_err_null(e, "%s: cannot create the trace: %s", path, strerror(e));
	}
	t->id = atomic_fetch_add(&next_id, 1);
	t->path = strdup(path);
	t->start_ns = h->start_ns;
	int e = fwrite(h, sizeof *h, 1, t->f) != 1 ? pg_errno()
	        : pthread_create(&t->writer, NULL, writer_main, t);
	if (e) {
		fclose(t->f);
		free(t->path);
		free(t);
		return pg_err_null(e, "%s: cannot start the trace: %s", path, strerror(e));
	}
	return t;
}

int pg_tracer_stop(struct pg_tracer *t)
{
	if (!t)
		return 0;
	atomic_store(&t->stop, 1);
	pthread_join(t->writer, NULL);
	int rc = atomic_load(&t->failed) ? -1 : 0;
	if (fclose(t->f))
		rc = -1;
	if (rc)
		fprintf(stderr, "flexpage: %s: writing the trace failed\n", t->path);
	for (struct ring *r = atomic_load(&t->rings), *n; r; r = n) {
		n = r->next;
		free(r);
	}
	free(t->path);
	free(t);
	return rc;
}

uint64_t pg_tracer_dropped(const struct pg_tracer *t)
{
	return t ? atomic_load(&((struct pg_tracer *)t)->dropped) : 0;
}

uint64_t pg_tracer_written(const struct pg_tracer *t)
{
	return t ? atomic_load(&((struct pg_tracer *)t)->written) : 0;
}
