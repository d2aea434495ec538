/* FIFO: evict the chunk that was loaded longest ago. */
#include "policy.h"

static void fifo_touched(void *p, uint32_t c)
{
}

const struct fp_policy_ops pg_policy_fifo = {
	.name = "fifo",
	.summary = "evict the chunk loaded longest ago",
	.create = pg_chunk_list_create,
	.destroy = pg_chunk_list_destroy,
	.loaded = pg_chunk_list_requeue,
	.touched = fifo_touched,
	.evicted = pg_chunk_list_evicted,
	.victim = pg_chunk_list_oldest,
};
