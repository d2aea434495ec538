/* FIFO: evict the chunk that was loaded longest ago. */
#include <stdlib.h>

#include "policy.h"

static void *fifo_create(uint32_t n)
{
	struct fp_chunk_list *l = malloc(sizeof *l);
	if (l && fp_chunk_list_init(l, n)) {
		free(l);
		return NULL;
	}
	return l;
}

static void fifo_destroy(void *p)
{
	fp_chunk_list_free(p);
	free(p);
}

static void fifo_loaded(void *p, uint32_t c, int demand)
{
	fp_chunk_list_remove(p, c);
	fp_chunk_list_push(p, c);
}

static void fifo_touched(void *p, uint32_t c)
{
}

static void fifo_evicted(void *p, uint32_t c)
{
	fp_chunk_list_remove(p, c);
}

static int64_t fifo_victim(void *p)
{
	struct fp_chunk_list *l = p;
	return l->n ? (int64_t)l->head : -1;
}

const struct fp_policy_ops fp_policy_fifo = {
	.name = "fifo",
	.summary = "evict the chunk loaded longest ago",
	.create = fifo_create,
	.destroy = fifo_destroy,
	.loaded = fifo_loaded,
	.touched = fifo_touched,
	.evicted = fifo_evicted,
	.victim = fifo_victim,
};
