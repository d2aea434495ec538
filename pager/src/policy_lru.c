/* LRU by fault: evict the chunk whose last load or fault is oldest.  The
 * pager cannot see reads of resident pages, so "use" means a fault. */
#include <stdlib.h>

#include "policy.h"

static void *lru_create(uint32_t n)
{
	struct fp_chunk_list *l = malloc(sizeof *l);
	if (l && fp_chunk_list_init(l, n)) {
		free(l);
		return NULL;
	}
	return l;
}

static void lru_destroy(void *p)
{
	fp_chunk_list_free(p);
	free(p);
}

static void lru_loaded(void *p, uint32_t c, int demand)
{
	fp_chunk_list_remove(p, c);
	fp_chunk_list_push(p, c);
}

static void lru_touched(void *p, uint32_t c)
{
	if (fp_chunk_list_contains(p, c)) {
		fp_chunk_list_remove(p, c);
		fp_chunk_list_push(p, c);
	}
}

static void lru_evicted(void *p, uint32_t c)
{
	fp_chunk_list_remove(p, c);
}

static int64_t lru_victim(void *p)
{
	struct fp_chunk_list *l = p;
	return l->n ? (int64_t)l->head : -1;
}

const struct fp_policy_ops fp_policy_lru = {
	.name = "lru",
	.summary = "evict the chunk least recently loaded or faulted on",
	.create = lru_create,
	.destroy = lru_destroy,
	.loaded = lru_loaded,
	.touched = lru_touched,
	.evicted = lru_evicted,
	.victim = lru_victim,
};
