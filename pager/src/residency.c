/* Residency: resident region bytes stay within the budget.  Every chunk
 * that is installed was first reserved here, and eviction (chosen by the
 * policy) makes the room.  The accounting happens under res_lock, which no
 * path that touches region memory ever holds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

/* Evictions are chosen under res_lock but their pages go after it is
 * released: an ioctl under the lock would hold up every fault the handler
 * serves meanwhile.  A chunk stays EVICTING until its pages are gone, so
 * nothing loads it twice, and a fault on it is queued again (finish). */
#define EVICT_BATCH 8

struct evictions {
	fp_region *r;
	uint32_t n, v[EVICT_BATCH];
};

/* Take chunk v's pages out of the region and end its EVICTING state. */
static void finish(fp_region *r, uint32_t v)
{
	uint8_t *p = r->base + (uint64_t)v * r->chunk_size;
	uint8_t *slot = r->res_len[v] == r->chunk_size ? pg_pool_take_empty(&r->pool) : NULL;
	if (slot) {
		/* Keep the page for the next load rather than free it. */
		size_t moved;
		int rc = pg_uffd_move(r->uffd, slot, p, r->chunk_size, &moved);
		pg_pool_put(&r->pool, slot, moved > 0);
		if (rc)
			madvise(p, r->chunk_size, MADV_DONTNEED);
	} else {
		/* The whole slot: also drops zero pages installed in its padding. */
		madvise(p, r->chunk_size, MADV_DONTNEED);
	}
	r->res_len[v] = r->page_len[v];
	if (pg_chunk_end_eviction(&r->state[v]) == 1) {
		/* A thread faulted while the pages went: load it again. */
		atomic_store(&r->queued_ns[v], pg_now_ns());
		pg_queue_push(&r->queue, v, 1);
	}
}

/* Evict chunk v, which the policy offered (so it is RESIDENT): its bytes
 * leave the budget now, its pages in finish_all. */
static void evict_one(void *ctx, uint32_t v)
{
	struct evictions *e = ctx;
	fp_region *r = e->r;
	struct pg_settings *s = r->settings;
	s->policy_ops->evicted(s->policy, v);
	if (!pg_chunk_evict(&r->state[v]))
		return; /* offered by a policy that is wrong about it: forgotten, not evicted */
	r->resident -= r->res_len[v];
	atomic_fetch_add_explicit(&r->stats.evictions, 1, memory_order_relaxed);
	fp_trace_event(r, 0, FP_EV_EVICT, 0, v, 0, 0);
	if (e->n < EVICT_BATCH)
		e->v[e->n++] = v;
	else
		finish(r, v); /* a large budget cut: the rest go under the lock */
}

/* After res_lock is released. */
static void finish_all(struct evictions *e)
{
	for (uint32_t i = 0; i < e->n; i++)
		finish(e->r, e->v[i]);
}

/* Count bytes more as resident (under res_lock). */
static void add_resident(fp_region *r, uint64_t bytes)
{
	r->resident += bytes;
	if (r->resident > atomic_load(&r->stats.peak_resident))
		atomic_store(&r->stats.peak_resident, r->resident);
}

void pg_reserve(fp_region *r, uint64_t bytes)
{
	struct evictions e = {.r = r};
	pthread_mutex_lock(&r->res_lock);
	struct pg_settings *s = r->settings;
	/* With everything else in flight a load goes over by its one chunk:
	 * the documented bound. */
	pg_make_room(s->policy_ops, s->policy, s->budget, &r->resident, bytes, evict_one, &e);
	add_resident(r, bytes);
	pthread_mutex_unlock(&r->res_lock);
	finish_all(&e);
}

/* A preserved chunk is locked so that neither reclaim nor swap (zram) can
 * take it, within the quota; past the quota, or where mlock is refused, it
 * stays resident all the same, and the region says so once. */
static void lock_preserved(fp_region *r, uint32_t c)
{
	uint64_t len = r->page_len[c];
	if ((r->opt.flags & FP_OPEN_NO_LOCK) || r->locked_bytes + len > r->lock_quota)
		return;
	if (!mlock2(r->base + (uint64_t)c * r->chunk_size, len, MLOCK_ONFAULT)) {
		r->locked_bytes += len;
	} else if (!r->lock_warned) {
		r->lock_warned = 1;
		fprintf(stderr, "flexpage: %s: mlock of preserved chunks failed (%s) after %llu bytes: "
		        "they stay resident but unlocked (raise RLIMIT_MEMLOCK, ulimit -l)\n",
		        r->img->path, strerror(errno), (unsigned long long)r->locked_bytes);
	}
}

uint64_t pg_ahead_room(const fp_region *r, uint64_t budget)
{
	uint64_t room = budget > r->preserved_bytes ? budget - r->preserved_bytes : 0;
	uint64_t in_use = (uint64_t)PG_IN_USE_CHUNKS * r->chunk_size;
	return room > in_use ? room - in_use : 0;
}

int pg_reserve_ahead(fp_region *r, uint32_t c)
{
	uint64_t chunk = r->chunk_size;
	/* A staged tensor tail is installed as the whole huge page, its
	 * padding zeros, and holds all of it: one move instead of a copy into
	 * small pages, each of which costs the loop a slow first touch. */
	uint64_t bytes = r->page_len[c] < chunk && atomic_load(&r->stage_ahead) &&
	                 atomic_load(&r->huge_ok) && r->pool.base ? chunk : r->page_len[c];
	struct evictions e = {.r = r};
	pthread_mutex_lock(&r->res_lock);
	struct pg_settings *s = r->settings;
	/* Evicting what the loop is using would make it fault again. */
	uint64_t cap = pg_ahead_room(r, s->budget);
	if (cap > (uint64_t)r->opt.readahead * chunk)
		cap = (uint64_t)r->opt.readahead * chunk; /* what the pool has slots for */
	int full = r->ahead_bytes + bytes > cap ||
	           pg_make_room(s->policy_ops, s->policy, s->budget, &r->resident, bytes, evict_one, &e);
	if (!full) {
		r->res_len[c] = (uint32_t)bytes;
		add_resident(r, bytes);
		r->ahead_bytes += bytes;
		r->ahead_reserved[c] = 1;
	}
	pthread_mutex_unlock(&r->res_lock);
	finish_all(&e);
	return full;
}

void pg_release_ahead(fp_region *r, uint32_t c)
{
	if (r->ahead_reserved[c]) {
		r->ahead_reserved[c] = 0;
		r->ahead_bytes -= r->res_len[c];
	}
}

void pg_unreserve_ahead_locked(fp_region *r, uint32_t c)
{
	if (r->ahead_reserved[c])
		r->resident -= r->res_len[c];
	pg_release_ahead(r, c);
	r->res_len[c] = r->page_len[c];
}

void pg_unreserve_ahead(fp_region *r, uint32_t c)
{
	pthread_mutex_lock(&r->res_lock);
	pg_unreserve_ahead_locked(r, c);
	pthread_mutex_unlock(&r->res_lock);
}

void pg_mark_resident(fp_region *r, uint32_t c, int demand)
{
	pthread_mutex_lock(&r->res_lock);
	pg_release_ahead(r, c);
	if (!pg_chunk_install(&r->state[c]))
		abort(); /* only the claimant installs: the protocol is broken */
	if (r->preserve && r->preserve[c]) {
		/* Never shown to the policy: it can never be a victim. */
		r->preserved_bytes += r->page_len[c];
		lock_preserved(r, c);
	} else {
		r->settings->policy_ops->loaded(r->settings->policy, c, demand);
	}
	pthread_mutex_unlock(&r->res_lock);
}

int pg_evict_to(fp_region *r, uint64_t target)
{
	struct evictions e = {.r = r};
	pthread_mutex_lock(&r->res_lock);
	struct pg_settings *s = r->settings;
	pg_make_room(s->policy_ops, s->policy, target, &r->resident, 0, evict_one, &e);
	pthread_mutex_unlock(&r->res_lock);
	finish_all(&e);
	return 0;
}

void pg_touch(fp_region *r, uint32_t c)
{
	pthread_mutex_lock(&r->res_lock);
	if (chunk_state(r, c) == CHUNK_RESIDENT)
		r->settings->policy_ops->touched(r->settings->policy, c);
	pthread_mutex_unlock(&r->res_lock);
}
