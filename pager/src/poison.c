/* Poisoning: a chunk whose load failed for good (every retry) is poisoned
 * with UFFDIO_POISON, so that the threads waiting on it wake and their
 * access raises SIGBUS; wrong bytes are never installed.  The reason is
 * kept per chunk for the reporter (reporter.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

int pg_poison_init(fp_region *r, uint64_t features)
{
	r->poison.can = !!(features & UFFD_FEATURE_POISON);
	r->poison.reason = calloc(r->n_chunks, sizeof *r->poison.reason);
	return r->poison.reason ? 0 : -1;
}

void pg_poison_free(fp_region *r)
{
	if (!r->poison.reason)
		return;
	for (uint32_t c = 0; c < r->n_chunks; c++)
		free(r->poison.reason[c]);
	free(r->poison.reason);
}

static int poison_run(fp_region *r, uint8_t *p, size_t len, void *ctx)
{
	int rc = r->poison.can ? pg_uffd_poison(r->uffd, p, len) : -1;
	if (rc) {
		/* No UFFDIO_POISON: replace the range with an inaccessible
		 * mapping (SIGSEGV instead of SIGBUS) and wake the waiters. */
		mmap(p, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
		pg_uffd_wake(r->uffd, p, len);
	}
	return 0;
}

void pg_poison_chunk(fp_region *r, uint32_t c, const char *reason)
{
	char *copy = strdup(reason), *expect = NULL;
	if (!atomic_compare_exchange_strong(&r->poison.reason[c], &expect, copy))
		free(copy);
	pg_map_hold(r); /* pages given back are someone else's now */
	pg_map_each_live(r, (uint64_t)c * r->chunk_size, r->page_len[c], poison_run, NULL);
	pg_map_unhold(r);
	if (!pg_chunk_poison(&r->state[c]))
		abort(); /* only the claimant poisons: the protocol is broken */
	pg_trace_event(r, 0, FP_EV_POISON, 0, c, 0, 0);
	pg_count(r, PG_POISONED, 1);
	fprintf(stderr, "flexpage: poisoned %s\n", reason);
}

const char *pg_poison_reason(const fp_region *r, uint32_t c)
{
	return r->poison.reason ? atomic_load(&r->poison.reason[c]) : NULL;
}
