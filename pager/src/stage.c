/* Streaming: staging, the position signal and the predictor.
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
 * The predictor learns the order of those faults (which chunk follows
 * which: a decode repeats it every token, not always in file order) and
 * keeps the next chunks of that order loaded ahead, as deep as the budget
 * and the measured load time call for: with loads taking L and the loop
 * faulting every G, about L / G loads must be in flight (Little's law),
 * and two more absorb the jitter.  Staged chunks that fall out of
 * the predicted window are dropped, so a misprediction cannot hold the
 * budget. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define NONE UINT32_MAX

int fp_stage_init(fp_region *r)
{
	size_t n = r->n_chunks;
	r->staged_buf = calloc(n, sizeof *r->staged_buf);
	r->staged_in_pool = calloc(n, 1);
	r->staged_list = malloc(sizeof *r->staged_list * n);
	r->next_of = malloc(sizeof *r->next_of * n);
	r->window_mark = calloc(n, sizeof *r->window_mark);
	if (!r->staged_buf || !r->staged_in_pool || !r->staged_list || !r->next_of || !r->window_mark)
		return -1;
	memset(r->next_of, 0xff, sizeof *r->next_of * n);
	r->last_fault = NONE;
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
		fp_pool_put(&r->pool, buf, !moved);
	else
		free(buf);
}

void fp_stage_free(fp_region *r)
{
	if (r->staged_buf)
		for (uint32_t c = 0; c < r->n_chunks; c++)
			if (r->staged_buf[c])
				release(r, c, 0);
	free(r->staged_buf);
	free(r->staged_in_pool);
	free(r->staged_list);
	free(r->next_of);
	free(r->window_mark);
}

void fp_stage_update(fp_region *r, uint64_t budget)
{
	atomic_store(&r->stage_ahead,
	             !(r->opt.flags & FP_OPEN_NO_STAGE) && budget < r->data_bytes);
}

int fp_stage_put(fp_region *r, uint32_t c, uint8_t *buf, int in_pool)
{
	pthread_mutex_lock(&r->res_lock);
	uint32_t expect = CHUNK_LOADING | CHUNK_CLAIMED;
	int ok = atomic_compare_exchange_strong(&r->state[c], &expect, CHUNK_STAGED);
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

void fp_stage_fault(fp_region *r, uint32_t c)
{
	pthread_mutex_lock(&r->res_lock);
	uint32_t expect = CHUNK_STAGED;
	if (!atomic_compare_exchange_strong(&r->state[c], &expect,
	                                    CHUNK_LOADING | CHUNK_CLAIMED | CHUNK_DEMANDED)) {
		pthread_mutex_unlock(&r->res_lock);
		return;
	}
	unlist(r, c);
	pthread_mutex_unlock(&r->res_lock);
	uint64_t t0 = fp_now_ns();
	/* Counted as the read-ahead load it was: the I/O happened ahead. */
	int moved = fp_install(r, c, 0, r->staged_buf[c]);
	uint64_t t1 = fp_now_ns();
	release(r, c, moved);
	fp_mark_resident(r, c, 1);
	atomic_fetch_add_explicit(&r->stats.staged_installs, 1, memory_order_relaxed);
	fp_stat_latency(r, FP_STAGE_INSTALL, t1 - t0);
	fp_stat_latency(r, FP_STAGE_FAULT, t1 - t0);
	fp_stat_latency(r, FP_STAGE_OVERHEAD, t1 - t0);
	fp_trace_event(r, t1, FP_EV_LOAD, FP_LOAD_FROM_STAGE, c, 0, t1 - t0);
}

/* Drop staged chunks the window no longer predicts (under res_lock). */
static void drop_stale(fp_region *r)
{
	for (uint32_t i = 0; i < r->n_staged;) {
		uint32_t c = r->staged_list[i];
		if (r->window_mark[c] == r->fault_seq) {
			i++;
			continue;
		}
		uint32_t expect = CHUNK_STAGED;
		if (atomic_compare_exchange_strong(&r->state[c], &expect, CHUNK_EMPTY)) {
			release(r, c, 0);
			r->resident -= r->page_len[c];
			atomic_fetch_add_explicit(&r->stats.staged_dropped, 1, memory_order_relaxed);
			fp_trace_event(r, 0, FP_EV_DROP, 0, c, 0, 0);
		}
		r->staged_list[i] = r->staged_list[--r->n_staged];
	}
}

static uint32_t successor(fp_region *r, uint32_t c)
{
	uint32_t n = (r->opt.flags & FP_OPEN_NO_PREDICT) ? NONE : r->next_of[c];
	return n != NONE ? n : c + 1 < r->n_chunks ? c + 1 : 0;
}

void fp_predict(fp_region *r, uint32_t c, uint64_t now)
{
	/* Learn: c came after the last fault. */
	if (r->last_fault != NONE && r->last_fault != c)
		r->next_of[r->last_fault] = c;
	r->last_fault = c;
	if (++r->fault_seq == 0)
		r->fault_seq = 1;

	/* Depth: enough loads in flight to cover a load's time at the pace the
	 * loop faults (measured), within the read-ahead limit and half of the
	 * budget left after preservation. */
	if (r->last_fault_ns) {
		uint64_t gap = now - r->last_fault_ns;
		r->fault_gap_ns = r->fault_gap_ns ? (7 * r->fault_gap_ns + gap) / 8 : gap;
	}
	r->last_fault_ns = now;
	struct fp_settings *s = rcu_dereference(r->settings);
	uint64_t room = s->budget > r->preserved_bytes ? s->budget - r->preserved_bytes : 0;
	int64_t depth = r->opt.readahead;
	uint64_t load = atomic_load(&r->load_ns);
	if (load && r->fault_gap_ns) {
		int64_t needed = (int64_t)(load / r->fault_gap_ns) + 2;
		if (needed < depth)
			depth = needed;
	}
	if (depth > (int64_t)(room / r->chunk_size) / 2 - 1)
		depth = (int64_t)(room / r->chunk_size) / 2 - 1;
	uint32_t d = c;
	for (int64_t k = 0, steps = 0; k < depth && steps < 4 * depth + 8; steps++) {
		d = successor(r, d);
		if (d == c)
			break;
		if (!r->page_len[d] || (r->preserve && r->preserve[d]))
			continue;
		k++;
		r->window_mark[d] = r->fault_seq;
		uint32_t expect = CHUNK_EMPTY;
		if (atomic_compare_exchange_strong(&r->state[d], &expect, CHUNK_LOADING)) {
			atomic_store(&r->queued_ns[d], now);
			fp_queue_push(&r->queue, d, 0);
		}
	}
	if (atomic_load(&r->stage_ahead)) {
		pthread_mutex_lock(&r->res_lock);
		drop_stale(r);
		pthread_mutex_unlock(&r->res_lock);
	}
}
