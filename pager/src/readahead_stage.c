/* Staging: the position signal, read-ahead's last step when streaming.
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
 * A staged chunk that no fault's window has wanted for a while was
 * mispredicted: it is dropped, so it cannot hold the budget.  The list of
 * staged chunks is under the residency lock. */
#include <stdlib.h>

#include "internal.h"

/* Faults after which a staged chunk no window wants is dropped: several
 * threads fault in turn, and each one's window covers its own next chunks. */
#define STALE_FAULTS 8

int pg_stage_init(fp_region *r)
{
	struct pg_staging *st = &r->stage;
	size_t n = r->n_chunks;
	st->buf = calloc(n, sizeof *st->buf);
	st->in_pool = calloc(n, 1);
	st->list = malloc(sizeof *st->list * n);
	return st->buf && st->in_pool && st->list ? 0 : -1;
}

/* Release what a staged chunk holds: its buffer. */
static void release(fp_region *r, uint32_t c, int moved)
{
	struct pg_staging *st = &r->stage;
	uint8_t *buf = st->buf[c];
	st->buf[c] = NULL;
	if (st->in_pool[c])
		pg_pool_put(&r->pool, buf, !moved);
	else
		free(buf);
}

void pg_stage_free(fp_region *r)
{
	struct pg_staging *st = &r->stage;
	if (st->buf)
		for (uint32_t c = 0; c < r->n_chunks; c++)
			if (st->buf[c])
				release(r, c, 0);
	free(st->buf);
	free(st->in_pool);
	free(st->list);
}

void pg_stage_update(fp_region *r, uint64_t budget)
{
	atomic_store(&r->stage.on, !(r->opt.flags & FP_OPEN_NO_STAGE) && budget < r->data_bytes);
}

int pg_stage_put(fp_region *r, uint32_t c, uint8_t *buf, int in_pool)
{
	struct pg_staging *st = &r->stage;
	pg_res_lock(r);
	/* The room this load reserved was counted under the budget before a
	 * cut (fp_set_budget drops what is staged, not what is being read):
	 * staging it now would hold the region over the new budget. */
	if (r->res.resident > r->res.settings->budget && pg_ra_give_back_locked(r, c)) {
		pg_res_unlock(r);
		return -1;
	}
	int ok = pg_chunk_stage(&r->state[c]);
	if (ok) {
		st->buf[c] = buf;
		st->in_pool[c] = (uint8_t)in_pool;
		st->list[st->n++] = c;
	}
	pg_res_unlock(r);
	return ok;
}

static void unlist(struct pg_staging *st, uint32_t c)
{
	for (uint32_t i = 0; i < st->n; i++)
		if (st->list[i] == c) {
			st->list[i] = st->list[--st->n];
			return;
		}
}

int pg_stage_fault(fp_region *r, uint32_t c)
{
	pg_res_lock(r);
	if (!pg_chunk_unstage(&r->state[c])) {
		pg_res_unlock(r);
		return 0; /* dropped meanwhile (a budget cut): the fault decides again */
	}
	unlist(&r->stage, c);
	pg_res_unlock(r);
	uint64_t t0 = pg_now_ns();
	/* Counted as the read-ahead load it was: the I/O happened ahead. */
	int moved = pg_install(r, c, 0, r->stage.buf[c]);
	uint64_t t1 = pg_now_ns();
	release(r, c, moved);
	pg_installed(r, c, 1);
	pg_count(r, PG_STAGED_INSTALLS, 1);
	pg_stat_latency(r, FP_STAGE_INSTALL, t1 - t0);
	pg_stat_latency(r, FP_STAGE_FAULT, t1 - t0);
	pg_stat_latency(r, FP_STAGE_OVERHEAD, t1 - t0);
	pg_trace_event(r, t1, FP_EV_LOAD, FP_LOAD_FROM_STAGE, c, 0, t1 - t0);
	return 1;
}

/* Under the residency lock: staged chunk c leaves (DROP), its room freed.
 * The room goes before the move: once c is EMPTY a fault may load it at
 * once, and that loader reads res_len[c] without the lock (load.c), so the
 * ledger must be right before the move (a release) that lets it in.  Only
 * UNSTAGE and DROP leave STAGED, both under this lock, and a staged word
 * has no flags to refuse: staged here, the DROP cannot fail. */
static int drop_locked(fp_region *r, uint32_t c)
{
	if (pg_chunk_state(&r->state[c]) != CHUNK_STAGED)
		return 0; /* a fault is installing it */
	release(r, c, 0);
	pg_ra_unreserve_locked(r, c); /* staged chunks are reserved read-ahead */
	if (!pg_chunk_drop(&r->state[c]))
		abort();
	pg_count(r, PG_STAGED_DROPPED, 1);
	pg_trace_event(r, 0, FP_EV_DROP, 0, c, 0, 0);
	return 1;
}

void pg_stage_shed_locked(fp_region *r, uint64_t target)
{
	struct pg_staging *st = &r->stage;
	for (uint32_t i = 0; i < st->n && r->res.resident > target;) {
		if (drop_locked(r, st->list[i]))
			st->list[i] = st->list[--st->n];
		else
			i++; /* a fault is installing it */
	}
}

void pg_stage_drop_stale(fp_region *r)
{
	struct pg_staging *st = &r->stage;
	pg_res_lock(r);
	for (uint32_t i = 0; i < st->n;) {
		uint32_t c = st->list[i];
		if (pg_ra_faults_since_wanted(r, c) <= STALE_FAULTS) {
			i++;
			continue;
		}
		drop_locked(r, c);
		st->list[i] = st->list[--st->n];
	}
	pg_res_unlock(r);
}
