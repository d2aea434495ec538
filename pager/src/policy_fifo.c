/* FIFO: evict the chunk that was loaded longest ago. */
#include "policy.h"

static void fifo_touched(void *p, uint32_t c)
{
}

const struct fp_policy_ops fp_policy_fifo = {
	.name = "fifo",
	.summary = "evict the chunk loaded longest ago",
	.create = fp_chunk_list_create,
	.destroy = fp_chunk_list_destroy,
	.loaded = fp_chunk_list_requeue,
	.touched = fifo_touched,
	.evicted = fp_chunk_list_evicted,
	.victim = fp_chunk_list_oldest,
};
