/* LRU by fault: evict the chunk whose last load or access is oldest.  The
 * live pager sees no reads of resident pages, so there "access" means a
 * fault; in the simulator it is every access of the stream. */
#include "policy.h"

static void lru_touched(void *p, uint32_t c)
{
	if (pg_chunk_list_contains(p, c))
		pg_chunk_list_requeue(p, c, 0);
}

const struct fp_policy_ops pg_policy_lru = {
	.name = "lru",
	.summary = "evict the chunk least recently loaded or accessed",
	.create = pg_chunk_list_create,
	.destroy = pg_chunk_list_destroy,
	.loaded = pg_chunk_list_requeue,
	.touched = lru_touched,
	.evicted = pg_chunk_list_evicted,
	.victim = pg_chunk_list_oldest,
};
