/* stream, FlexInfer's preserve-and-stream: a decode reads the weights as a
 * cycle longer than the budget, and for a cycle the chunk to drop is the
 * one the loop has just finished with (it is needed again only after all
 * the others).  The very newest chunks are not finished: the loop's threads
 * are on them (each on its own), so the victim is the newest chunk behind
 * those (in a small budget, behind at most half of the rest).  Which chunks
 * are preserved (and locked) is the planner's choice; this policy decides
 * among the streamed ones. */
#include "policy.h"

/* The newest chunks taken to be in use: one per compute thread, and one
 * just installed for each. */
#define IN_USE 4

static void stream_touched(void *p, uint32_t c)
{
	if (pg_chunk_list_contains(p, c))
		pg_chunk_list_requeue(p, c, 0);
}

static int64_t stream_victim(void *p)
{
	struct pg_chunk_list *l = p;
	if (!l->n)
		return -1;
	/* In a small budget, fewer: at most half of the others. */
	uint32_t skip = (l->n - 1) / 2 < IN_USE ? (l->n - 1) / 2 : IN_USE;
	uint32_t c = l->tail;
	for (uint32_t k = 0; k < skip; k++)
		c = l->prev[c];
	return c;
}

const struct fp_policy_ops pg_policy_stream = {
	.name = "stream",
	.summary = "FlexInfer preserve-and-stream: evict the chunk the loop has just finished with",
	.create = pg_chunk_list_create,
	.destroy = pg_chunk_list_destroy,
	.loaded = pg_chunk_list_requeue,
	.touched = stream_touched,
	.evicted = pg_chunk_list_evicted,
	.victim = stream_victim,
};
