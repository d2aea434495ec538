/* Read-ahead: every fault queues loads for the chunks the loop will want
 * next, so that several reads are in flight while the loop works.
 *
 * The depth follows the measured rates.  A chunk's load must start a load's
 * time before the loop reaches it, and the loop covers load time / (its
 * time per chunk) chunks meanwhile; one more per loader keeps every loader
 * busy.  The load time is the loaders' mean plus four mean deviations, as
 * TCP sizes its retransmit timer, so that a slow read now and then is
 * still covered.  The depth never exceeds the read-ahead setting (the
 * most), nor, when staging, the budget's room beside the chunks in use.
 *
 * The window: once a first cycle is learned (readahead_order.c), the
 * chunks around the frontier the loop will want, nearest first; before
 * that, or with FP_OPEN_NO_PREDICT, the file's order from the fault.
 *
 * The room: read-ahead reserves its chunk's bytes in the budget before it
 * reads, so a load that would not fit costs no I/O and its chunk is left
 * for a later fault's window.  It may use what preservation leaves less
 * PG_IN_USE_CHUNKS chunks, and no more than the read-ahead setting. */
#include <stdlib.h>

#include "internal.h"

int pg_ra_init(fp_region *r)
{
	struct pg_readahead *ra = &r->ahead;
	ra->window_mark = calloc(r->n_chunks, sizeof *ra->window_mark);
	ra->reserved = calloc(r->n_chunks, 1);
	return ra->window_mark && ra->reserved ? 0 : -1;
}

void pg_ra_free(fp_region *r)
{
	free(r->ahead.window_mark);
	free(r->ahead.reserved);
}

/* The loop moved `ahead` chunks on since the last move: its time per
 * chunk, a running mean.  Only a move from a fault that did not wait for a
 * read counts: the pace wanted is the loop's own, which read-ahead must
 * outrun, not the storage's, which holds the loop back when read-ahead is
 * short (and would keep it short).  A pause (the application between
 * tokens) counts for at most four times the mean. */
static void advanced(struct pg_readahead *ra, uint32_t ahead, uint64_t now, int waits)
{
	if (ra->advanced_ns && now > ra->advanced_ns && !ra->advanced_waits) {
		uint64_t per = (now - ra->advanced_ns) / ahead;
		if (ra->gap_ns && per > 4 * ra->gap_ns)
			per = 4 * ra->gap_ns;
		ra->gap_ns = ra->gap_ns ? ra->gap_ns - ra->gap_ns / 8 + per / 8 : per;
	}
	ra->advanced_ns = now;
	ra->advanced_waits = waits;
}

void pg_ra_load_time(fp_region *r, uint64_t ns)
{
	struct pg_readahead *ra = &r->ahead;
	/* Loaders race here; a lost update of a running mean costs nothing. */
	uint64_t mean = atomic_load_explicit(&ra->load_ns, memory_order_relaxed);
	uint64_t dev = atomic_load_explicit(&ra->load_dev_ns, memory_order_relaxed);
	if (!mean) {
		mean = ns;
		dev = ns / 2;
	} else {
		uint64_t diff = ns > mean ? ns - mean : mean - ns;
		dev = dev - dev / 4 + diff / 4;
		mean = mean - mean / 8 + ns / 8;
	}
	atomic_store_explicit(&ra->load_ns, mean, memory_order_relaxed);
	atomic_store_explicit(&ra->load_dev_ns, dev, memory_order_relaxed);
}

/* Chunks of read-ahead that cover a load at the loop's pace; max before
 * anything is measured. */
static uint32_t rate_depth(const fp_region *r, uint32_t max)
{
	const struct pg_readahead *ra = &r->ahead;
	uint64_t load = atomic_load_explicit(&ra->load_ns, memory_order_relaxed);
	if (!load || !ra->gap_ns)
		return max;
	load += 4 * atomic_load_explicit(&ra->load_dev_ns, memory_order_relaxed);
	uint64_t need = (load + ra->gap_ns - 1) / ra->gap_ns + (uint64_t)r->opt.loaders;
	return need < max ? (uint32_t)need : max;
}

/* Keep chunk d in the window; load it if it is not (now: the fault's time). */
static void want(fp_region *r, uint32_t d, uint64_t now)
{
	r->ahead.window_mark[d] = r->ahead.fault_seq;
	if (pg_chunk_load_ahead(&r->state[d]))
		pg_load_queue(r, d, 0, now);
}

/* A chunk of the learned window: wanted unless it needs no load. */
static int want_in_order(fp_region *r, uint32_t d, void *now)
{
	if (pg_preserved(r, d) || chunk_state(r, d) == CHUNK_RESIDENT)
		return 0;
	want(r, d, *(uint64_t *)now);
	return 1;
}

/* Read-ahead in file order from c. */
static void walk_file(fp_region *r, uint32_t c, uint32_t depth, uint64_t now)
{
	uint32_t d = c;
	for (uint32_t k = 0, steps = 0; k < depth && steps < r->n_chunks; steps++) {
		d = d + 1 < r->n_chunks ? d + 1 : 0;
		if (d == c)
			break;
		if (!r->page_len[d] || pg_preserved(r, d))
			continue;
		k++;
		want(r, d, now);
	}
}

void pg_ra_after_fault(fp_region *r, uint32_t c, uint64_t now, int waits)
{
	struct pg_readahead *ra = &r->ahead;
	if (++ra->fault_seq == 0)
		ra->fault_seq = 1;
	ra->window_mark[c] = ra->fault_seq;
	uint32_t moved = pg_order_learn(r, c);
	if (moved)
		advanced(ra, moved, now, waits);

	/* Depth: what covers a load at the loop's pace, at most the read-ahead
	 * setting, and never more than the budget left after preservation can
	 * hold beside the chunks in use. */
	uint64_t fit = pg_ra_room(r, pg_res_budget(r)) / r->chunk_size;
	uint32_t depth = rate_depth(r, (uint32_t)r->opt.readahead);
	if (pg_staging(r) && depth > fit)
		depth = (uint32_t)fit;
	atomic_store_explicit(&ra->depth, depth, memory_order_relaxed);
	if (!depth)
		return;
	if (pg_order_known(r) && !(r->opt.flags & FP_OPEN_NO_PREDICT))
		pg_order_window(r, depth, want_in_order, &now);
	else
		walk_file(r, c, depth, now);
	if (pg_staging(r))
		pg_stage_drop_stale(r);
}

uint32_t pg_ra_depth(const fp_region *r)
{
	return atomic_load_explicit(&((fp_region *)r)->ahead.depth, memory_order_relaxed);
}

uint32_t pg_ra_faults_since_wanted(const fp_region *r, uint32_t c)
{
	return r->ahead.fault_seq - r->ahead.window_mark[c];
}

uint64_t pg_ra_room(const fp_region *r, uint64_t budget)
{
	uint64_t kept = pg_preserved_bytes(r);
	uint64_t room = budget > kept ? budget - kept : 0;
	uint64_t in_use = (uint64_t)PG_IN_USE_CHUNKS * r->chunk_size;
	return room > in_use ? room - in_use : 0;
}

int pg_ra_reserve(fp_region *r, uint32_t c)
{
	struct pg_readahead *ra = &r->ahead;
	uint64_t chunk = r->chunk_size;
	/* A staged tensor tail is installed as the whole huge page, its
	 * padding zeros, and holds all of it: one move instead of a copy into
	 * small pages, each of which costs the loop a slow first touch. */
	uint64_t bytes = r->page_len[c] < chunk && pg_staging(r) && pg_install_huge(r) &&
	                 pg_pool_ready(&r->pool) ? chunk : r->page_len[c];
	struct pg_evictions e = {.r = r};
	pg_res_lock(r);
	uint64_t budget = pg_res_budget(r);
	/* Evicting what the loop is using would make it fault again. */
	uint64_t cap = pg_ra_room(r, budget);
	if (cap > (uint64_t)r->opt.readahead * chunk)
		cap = (uint64_t)r->opt.readahead * chunk; /* what the pool has slots for */
	int full = ra->reserved_bytes + bytes > cap ||
	           pg_res_make_room_locked(r, budget, bytes, &e);
	if (!full) {
		pg_res_hold_locked(r, c, bytes);
		ra->reserved_bytes += bytes;
		ra->reserved[c] = 1;
	}
	pg_res_unlock(r);
	pg_evict_finish(&e);
	return full;
}

void pg_ra_release_locked(fp_region *r, uint32_t c)
{
	struct pg_readahead *ra = &r->ahead;
	if (ra->reserved[c]) {
		ra->reserved[c] = 0;
		ra->reserved_bytes -= pg_res_len(r, c);
	}
}

void pg_ra_unreserve_locked(fp_region *r, uint32_t c)
{
	if (!r->ahead.reserved[c])
		return;
	pg_ra_release_locked(r, c);
	pg_res_unhold_locked(r, c);
}

/* The room goes before the move: once c is EMPTY a fault may load it at
 * once, and that loader reads res_len[c] without the lock (load.c), so the
 * ledger must be right before the move (a release) that lets it in. */
int pg_ra_give_back_locked(fp_region *r, uint32_t c)
{
	struct pg_readahead *ra = &r->ahead;
	uint32_t held = pg_res_len(r, c);
	pg_ra_unreserve_locked(r, c);
	if (pg_chunk_give_back(&r->state[c]))
		return 1;
	/* A fault demanded it meanwhile: the load stays, and its room. */
	pg_res_hold_locked(r, c, held);
	ra->reserved_bytes += held;
	ra->reserved[c] = 1;
	return 0;
}

void pg_ra_unreserve(fp_region *r, uint32_t c)
{
	pg_res_lock(r);
	pg_ra_unreserve_locked(r, c);
	pg_res_unlock(r);
}
