/* Eviction: the policy's victims leave the budget under the residency
 * lock, and their pages leave the region after it is released: an ioctl
 * under the lock would hold up every fault the handler serves meanwhile.
 * A chunk stays EVICTING until its pages are gone, so nothing loads it
 * twice, and a fault on it meanwhile is queued again (RELOAD). */
#include <sys/mman.h>

#include "internal.h"

static int drop_run(fp_region *r, uint8_t *p, size_t len, void *ctx)
{
	madvise(p, len, MADV_DONTNEED);
	return 0;
}

/* Take chunk v's pages out of the region and end its EVICTING state. */
static void drop_pages(fp_region *r, uint32_t v)
{
	uint64_t off = (uint64_t)v * r->chunk_size;
	uint8_t *p = r->base + off;
	pg_map_hold(r);
	int whole = pg_map_whole(r, off, r->chunk_size);
	uint8_t *slot = whole && pg_res_len(r, v) == r->chunk_size ? pg_pool_take_empty(&r->pool) : NULL;
	if (slot) {
		/* Keep the page for the next load rather than free it. */
		size_t moved;
		int rc = pg_uffd_move(r->uffd, slot, p, r->chunk_size, &moved);
		pg_pool_put(&r->pool, slot, moved > 0);
		if (rc)
			madvise(p, r->chunk_size, MADV_DONTNEED);
	} else {
		/* The whole slot: also drops zero pages installed in its padding;
		 * only its live pages if some were given back. */
		pg_map_each_live(r, off, r->chunk_size, drop_run, NULL);
	}
	pg_map_unhold(r);
	pg_res_evicted(r, v);
	if (pg_chunk_end_eviction(&r->state[v]) == 1) {
		/* A thread faulted while the pages went: load it again. */
		pg_load_queue(r, v, 1, pg_now_ns());
	}
}

/* Under the residency lock: victim v, which the policy offered (so it is
 * RESIDENT), leaves the budget now and its pages in pg_evict_finish. */
void pg_evict_chosen(void *ctx, uint32_t v)
{
	struct pg_evictions *e = ctx;
	fp_region *r = e->r;
	if (!pg_chunk_evict(&r->state[v])) {
		pg_res_forget_locked(r, v); /* a policy wrong about it: forgotten, not evicted */
		return;
	}
	pg_res_drop_locked(r, v);
	pg_count(r, PG_EVICTIONS, 1);
	pg_trace_event(r, 0, FP_EV_EVICT, 0, v, 0, 0);
	if (e->n < PG_EVICT_BATCH)
		e->v[e->n++] = v;
	else
		drop_pages(r, v); /* a large budget cut: the rest go under the lock */
}

void pg_evict_finish(struct pg_evictions *e)
{
	for (uint32_t i = 0; i < e->n; i++)
		drop_pages(e->r, e->v[i]);
}

int pg_evict_to(fp_region *r, uint64_t target)
{
	struct pg_evictions e = {.r = r};
	pg_res_lock(r);
	/* Staged read-ahead is dropped only when evicting what the policy
	 * knows of is not enough. */
	if (pg_res_make_room_locked(r, target, 0, &e))
		pg_stage_shed_locked(r, target);
	pg_res_unlock(r);
	pg_evict_finish(&e);
	return 0;
}
