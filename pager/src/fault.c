/* One fault, as the handler serves it: start or promote the chunk's load,
 * install a staged chunk, answer faults that need no load, and keep
 * read-ahead going. */
#include "internal.h"

/* What a fault record says it found: the trace's values, not the chunk
 * protocol's (which may change without changing the file format). */
static const uint8_t seen[CHUNK_NSTATES] = {
	[CHUNK_EMPTY] = FP_FAULT_EMPTY,
	[CHUNK_LOADING] = FP_FAULT_LOADING,
	[CHUNK_RESIDENT] = FP_FAULT_RESIDENT,
	[CHUNK_EVICTING] = FP_FAULT_EVICTING,
	[CHUNK_POISONED] = FP_FAULT_POISONED,
	[CHUNK_STAGED] = FP_FAULT_STAGED,
};

static int zero_run(fp_region *r, uint8_t *p, size_t len, void *ctx)
{
	pg_uffd_zeropage(r->uffd, p, len);
	return 0;
}

void pg_fault(fp_region *r, uint64_t addr, uint32_t tid)
{
	if (pg_pool_contains(&r->pool, addr)) {
		/* Never meant to happen (empty pool slots are not touched); a
		 * zero page keeps the toucher from waiting forever. */
		pg_uffd_zeropage(r->uffd, (void *)(uintptr_t)addr, 4096);
		return;
	}
	uint64_t now = pg_now_ns();
	pg_count(r, PG_FAULTS, 1);
	uint64_t off = addr - (uintptr_t)r->base;
	uint32_t c = (uint32_t)(off / r->chunk_size);
	uint32_t s = pg_chunk_word_of(&r->state[c]);
	if (off % r->chunk_size >= r->page_len[c]) {
		/* Padding after a tensor's last byte reads as zeros: map zero
		 * pages over all of it at once. */
		pg_trace_event(r, now, FP_EV_FAULT, FP_FAULT_PADDING, c, tid, off);
		pg_map_hold(r);
		pg_map_each_live(r, (uint64_t)c * r->chunk_size + r->page_len[c],
		                 r->chunk_size - r->page_len[c], zero_run, NULL);
		pg_map_unhold(r);
		return;
	}
	/* Whether this access waits for a read (for the loop's pace). */
	uint32_t found = s & CHUNK_STATE_MASK;
	pg_trace_event(r, now, FP_EV_FAULT, seen[found], c, tid, off);
	int waits = found == CHUNK_EMPTY || found == CHUNK_LOADING || found == CHUNK_EVICTING;
	for (;;) {
		switch (s & CHUNK_STATE_MASK) {
		case CHUNK_EMPTY:
			if (!pg_load_on_fault(r, c, &s, now))
				continue;
			break;
		case CHUNK_LOADING:
		case CHUNK_EVICTING:
			if (s & CHUNK_DEMANDED)
				break;
			/* Read-ahead was already on it (make it a demand load), or
			 * its pages are going (the evictor queues it again). */
			if (!pg_load_promote(r, c, &s, now))
				continue;
			break;
		case CHUNK_STAGED:
			/* Read-ahead had it ready: install it now.  This fault is
			 * the loop telling where it is.  A budget cut may have
			 * dropped it meanwhile: then it is loaded as any other. */
			if (!pg_stage_fault(r, c)) {
				s = pg_chunk_word_of(&r->state[c]);
				continue;
			}
			break;
		case CHUNK_RESIDENT:
			/* The install raced this message; it is still an access,
			 * which the policy hears of as the simulator's hits. */
			pg_touch(r, c);
			pg_uffd_wake(r->uffd, (void *)(uintptr_t)addr, 4096);
			break;
		default:
			/* POISONED: waking lets the access raise SIGBUS. */
			pg_uffd_wake(r->uffd, (void *)(uintptr_t)addr, 4096);
			break;
		}
		break;
	}
	pg_ra_after_fault(r, c, now, waits);
}
