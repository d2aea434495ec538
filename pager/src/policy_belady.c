/* Belady's optimal (MIN): evict the resident chunk whose next use is the
 * farthest in the future.  It needs the whole access stream in advance, so
 * it runs in the simulator only, as the yardstick for the others.
 *
 * Every access is one loaded() (a miss) or one touched() (a hit) call, in
 * stream order, so a cursor follows the stream.  A max-heap holds
 * (next use, chunk) for resident chunks; entries made stale by a later
 * access or an eviction are dropped when they reach the top. */
#include <stdlib.h>

#include "policy.h"

struct entry {
	uint64_t next;           /* index of the next access; UINT64_MAX never */
	uint32_t chunk;
};

struct belady {
	uint64_t *next_use;      /* per access: index of the same chunk's next access */
	uint64_t n, cursor;
	uint64_t *key;           /* per chunk: its current next use */
	uint8_t *resident;
	struct entry *heap;
	uint64_t heap_n, heap_cap;
	uint32_t n_chunks;
};

static void *belady_create(const struct fp_policy_env *env)
{
	struct belady *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->n_chunks = env->n_chunks;
	b->key = calloc(env->n_chunks, sizeof *b->key);
	b->resident = calloc(env->n_chunks, 1);
	if (!b->key || !b->resident) {
		free(b->key);
		free(b->resident);
		free(b);
		return NULL;
	}
	return b;
}

static void belady_destroy(void *p)
{
	struct belady *b = p;
	free(b->next_use);
	free(b->key);
	free(b->resident);
	free(b->heap);
	free(b);
}

static void belady_future(void *p, const uint32_t *access, uint64_t n)
{
	struct belady *b = p;
	uint64_t *last = malloc(sizeof *last * b->n_chunks);
	b->next_use = malloc(sizeof *b->next_use * (n ? n : 1));
	b->heap = malloc(sizeof *b->heap * (n + 1));
	b->heap_cap = n + 1;
	b->n = n;
	if (!last || !b->next_use || !b->heap)
		abort(); /* the simulator sized these; out of memory here is fatal */
	for (uint32_t c = 0; c < b->n_chunks; c++)
		last[c] = UINT64_MAX;
	for (uint64_t i = n; i-- > 0;) {
		b->next_use[i] = last[access[i]];
		last[access[i]] = i;
	}
	free(last);
}

static void heap_push(struct belady *b, uint64_t next, uint32_t chunk)
{
	uint64_t i = b->heap_n++;
	while (i > 0) {
		uint64_t parent = (i - 1) / 2;
		if (b->heap[parent].next >= next)
			break;
		b->heap[i] = b->heap[parent];
		i = parent;
	}
	b->heap[i] = (struct entry){next, chunk};
}

static void heap_pop(struct belady *b)
{
	struct entry last = b->heap[--b->heap_n];
	uint64_t i = 0;
	for (;;) {
		uint64_t child = 2 * i + 1;
		if (child >= b->heap_n)
			break;
		if (child + 1 < b->heap_n && b->heap[child + 1].next > b->heap[child].next)
			child++;
		if (b->heap[child].next <= last.next)
			break;
		b->heap[i] = b->heap[child];
		i = child;
	}
	if (b->heap_n)
		b->heap[i] = last;
}

static void access_chunk(struct belady *b, uint32_t c)
{
	uint64_t next = b->cursor < b->n ? b->next_use[b->cursor] : UINT64_MAX;
	b->cursor++;
	b->key[c] = next;
	if (b->heap_n == b->heap_cap) /* more calls than the stream had */
		return;
	heap_push(b, next, c);
}

static void belady_loaded(void *p, uint32_t c, int demand)
{
	struct belady *b = p;
	b->resident[c] = 1;
	access_chunk(b, c);
}

static void belady_touched(void *p, uint32_t c)
{
	access_chunk(p, c);
}

static void belady_evicted(void *p, uint32_t c)
{
	((struct belady *)p)->resident[c] = 0;
}

static int64_t belady_victim(void *p)
{
	struct belady *b = p;
	while (b->heap_n) {
		struct entry top = b->heap[0];
		if (b->resident[top.chunk] && b->key[top.chunk] == top.next)
			return top.chunk;
		heap_pop(b);
	}
	return -1;
}

const struct fp_policy_ops pg_policy_belady = {
	.name = "belady",
	.summary = "optimal offline (simulator only): evict the chunk used farthest in the future",
	.create = belady_create,
	.destroy = belady_destroy,
	.loaded = belady_loaded,
	.touched = belady_touched,
	.evicted = belady_evicted,
	.victim = belady_victim,
	.future = belady_future,
};
