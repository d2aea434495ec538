/* Streaming: staging and the position signal.
 *
 * A prefetcher that works blinds itself: once chunks are installed before
 * the loop reaches them, no fault says where the loop is.  So when the
 * budget cannot hold the whole image, read-ahead stops one step short: a
 * chunk is read, checked and decoded into a buffer (a pooled huge page)
 * and left STAGED.  The loop's first touch faults, and the handler installs
 * the staged chunk at once (one UFFDIO_MOVE, no I/O): that fault is the
 * position signal, at the cost of one fault round trip per streamed chunk.
 * Preserved chunks never fault; when the budget holds everything, nothing
 * is staged and the steady state takes no faults at all.
 *
 * The predictor (predict.c) learns the order of those faults and says
 * which chunks to load ahead.  A staged chunk that no fault's window has
 * wanted for a while was mispredicted: it is dropped, so it cannot hold
 * the budget. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

/* Faults after which a staged chunk no window wants is dropped: several
 * threads fault in turn, and each one's window covers its own next chunks. */
#define STALE_FAULTS 8

int pg_stage_init(fp_region *r)
{
	size_t n = r->n_chunks;
	r->staged_buf = calloc(n, sizeof *r->staged_buf);
	r->staged_in_pool = calloc(n, 1);
	r->staged_list = malloc(sizeof *r->staged_list * n);
	r->ahead_reserved = calloc(n, 1);
	if (!r->staged_buf || !r->staged_in_pool || !r->staged_list || !r->ahead_reserved)
		return -1;
	for (uint32_t c = 0; c < n; c++)
		r->data_bytes += r->page_len[c];
	return 0;
}

/* Release what a staged chunk holds: its buffer, and its bytes. */
static void release(fp_region *r, uint32_t c, int moved)
{
	uint8_t *buf = r->staged_buf[c];
	r->staged_buf[c] = NULL;
	if (r->staged_in_pool[c])
		pg_pool_put(&r->pool, buf, !moved);
	else
		free(buf);
}

void pg_stage_free(fp_region *r)
{
	if (r->staged_buf)
		for (uint32_t c = 0; c < r->n_chunks; c++)
			if (r->staged_buf[c])
				release(r, c, 0);
	free(r->staged_buf);
	free(r->staged_in_pool);
	free(r->staged_list);
	free(r->ahead_reserved);
}

void pg_stage_update(fp_region *r, uint64_t budget)
{
	atomic_store(&r->stage_ahead,
	             !(r->opt.flags & FP_OPEN_NO_STAGE) && budget < r->data_bytes);
}

int pg_stage_put(fp_region *r, uint32_t c, uint8_t *buf, int in_pool)
{
	pthread_mutex_lock(&r->res_lock);
	int ok = pg_chunk_stage(&r->state[c]);
	if (ok) {
		r->staged_buf[c] = buf;
		r->staged_in_pool[c] = (uint8_t)in_pool;
		r->staged_list[r->n_staged++] = c;
	}
	pthread_mutex_unlock(&r->res_lock);
	return ok;
}

static void unlist(fp_region *r, uint32_t c)
{
	for (uint32_t i = 0; i < r->n_staged; i++)
		if (r->staged_list[i] == c) {
			r->staged_list[i] = r->staged_list[--r->n_staged];
			return;
		}
}

void pg_stage_fault(fp_region *r, uint32_t c)
{
	pthread_mutex_lock(&r->res_lock);
	if (!pg_chunk_unstage(&r->state[c])) {
		pthread_mutex_unlock(&r->res_lock);
		return;
	}
	unlist(r, c);
	pthread_mutex_unlock(&r->res_lock);
	uint64_t t0 = pg_now_ns();
	/* Counted as the read-ahead load it was: the I/O happened ahead. */
	int moved = pg_install(r, c, 0, r->staged_buf[c]);
	uint64_t t1 = pg_now_ns();
	release(r, c, moved);
	pg_mark_resident(r, c, 1);
	atomic_fetch_add_explicit(&r->stats.staged_installs, 1, memory_order_relaxed);
	pg_stat_latency(r, FP_STAGE_INSTALL, t1 - t0);
	pg_stat_latency(r, FP_STAGE_FAULT, t1 - t0);
	pg_stat_latency(r, FP_STAGE_OVERHEAD, t1 - t0);
	fp_trace_event(r, t1, FP_EV_LOAD, FP_LOAD_FROM_STAGE, c, 0, t1 - t0);
}

/* Drop staged chunks no window has wanted for STALE_FAULTS faults. */
void pg_stage_drop_stale(fp_region *r)
{
	pthread_mutex_lock(&r->res_lock);
	for (uint32_t i = 0; i < r->n_staged;) {
		uint32_t c = r->staged_list[i];
		if (r->fault_seq - r->window_mark[c] <= STALE_FAULTS) {
			i++;
			continue;
		}
		if (pg_chunk_drop(&r->state[c])) {
			release(r, c, 0);
			pg_unreserve_ahead_locked(r, c); /* staged chunks are reserved read-ahead */
			atomic_fetch_add_explicit(&r->stats.staged_dropped, 1, memory_order_relaxed);
			fp_trace_event(r, 0, FP_EV_DROP, 0, c, 0, 0);
		}
		r->staged_list[i] = r->staged_list[--r->n_staged];
	}
	pthread_mutex_unlock(&r->res_lock);
}
