/* The eviction policy interface.  The live pager and the simulator drive
 * the same policy code through these calls.  A policy sees only what the
 * pager sees: loads, faults and evictions of chunks, never reads of pages
 * that are already resident.  Calls are serialised by the caller. */
#ifndef FLEXPAGE_POLICY_H
#define FLEXPAGE_POLICY_H

#include <stdint.h>

struct fp_policy_ops {
	const char *name;
	const char *summary;
	void *(*create)(uint32_t n_chunks);
	void (*destroy)(void *p);
	/* Chunk c became resident (demand: a thread was waiting on it). */
	void (*loaded)(void *p, uint32_t c, int demand);
	/* A fault touched resident or loading chunk c. */
	void (*touched)(void *p, uint32_t c);
	/* Chunk c left memory (evicted by the pager, whatever chose it). */
	void (*evicted)(void *p, uint32_t c);
	/* Choose a resident chunk to evict; -1 if none. */
	int64_t (*victim)(void *p);
};

const struct fp_policy_ops *fp_policy_find(const char *name);

extern const struct fp_policy_ops fp_policy_fifo;
extern const struct fp_policy_ops fp_policy_lru;

/* An intrusive doubly linked list over chunk indices, shared by the
 * list-based policies. */
struct fp_chunk_list {
	uint32_t *prev, *next;   /* UINT32_MAX: not on the list */
	uint32_t head, tail;     /* head: oldest */
	uint32_t n;
};
int fp_chunk_list_init(struct fp_chunk_list *l, uint32_t n_chunks);
void fp_chunk_list_free(struct fp_chunk_list *l);
void fp_chunk_list_push(struct fp_chunk_list *l, uint32_t c);   /* at the tail */
void fp_chunk_list_remove(struct fp_chunk_list *l, uint32_t c);
int fp_chunk_list_contains(const struct fp_chunk_list *l, uint32_t c);

#endif
