/* stream, FlexInfer's preserve-and-stream: a decode reads the weights as a
 * cycle longer than the budget, and for a cycle the chunk to drop is the
 * one used most recently (it is needed again only after all the others).
 * Evicting the newest streamed chunk keeps the rest of the budget fixed:
 * those chunks stay preserved, every other chunk streams through one slot.
 * Which chunks are preserved (and locked) is the planner's choice; this
 * policy decides among the streamed ones. */
#include "policy.h"

static void stream_touched(void *p, uint32_t c)
{
	if (fp_chunk_list_contains(p, c))
		fp_chunk_list_requeue(p, c, 0);
}

static int64_t stream_victim(void *p)
{
	struct fp_chunk_list *l = p;
	return l->n ? (int64_t)l->tail : -1;
}

const struct fp_policy_ops fp_policy_stream = {
	.name = "stream",
	.summary = "FlexInfer preserve-and-stream: evict the most recently used chunk",
	.create = fp_chunk_list_create,
	.destroy = fp_chunk_list_destroy,
	.loaded = fp_chunk_list_requeue,
	.touched = stream_touched,
	.evicted = fp_chunk_list_evicted,
	.victim = stream_victim,
};
