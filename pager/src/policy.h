/* Built-in eviction policies and what they share.  The interface itself
 * (struct fp_policy_ops) is public: see <flexpage/flexpage.h>. */
#ifndef FLEXPAGE_POLICY_H
#define FLEXPAGE_POLICY_H

#include <stdint.h>

#include <flexpage/flexpage_experimental.h>

extern const struct fp_policy_ops pg_policy_fifo;
extern const struct fp_policy_ops pg_policy_lru;
extern const struct fp_policy_ops pg_policy_clock;
extern const struct fp_policy_ops pg_policy_stream;
extern const struct fp_policy_ops pg_policy_belady;

/* The accounting both the live pager and the simulator run: evict the
 * policy's victims until bytes more fit in the budget.  evict() must drop
 * the chunk, call ops->evicted and lower *resident.  Returns 1 if the
 * policy had nothing left to evict and the bytes still do not fit. */
int pg_make_room(const struct fp_policy_ops *ops, void *policy, uint64_t budget,
                 const uint64_t *resident, uint64_t bytes,
                 void (*evict)(void *ctx, uint32_t c), void *ctx);

/* An intrusive doubly linked list over chunk indices, oldest at the head.
 * fifo, lru and stream are this list with different update rules. */
struct pg_chunk_list {
	uint32_t *prev, *next;   /* UINT32_MAX: not on the list */
	uint32_t head, tail;
	uint32_t n;
};
void *pg_chunk_list_create(const struct fp_policy_env *env);
void pg_chunk_list_destroy(void *l);
void pg_chunk_list_push(struct pg_chunk_list *l, uint32_t c);   /* at the tail */
void pg_chunk_list_remove(struct pg_chunk_list *l, uint32_t c);
int pg_chunk_list_contains(const struct pg_chunk_list *l, uint32_t c);
/* Policy hooks that fit any list policy. */
void pg_chunk_list_requeue(void *l, uint32_t c, int demand); /* remove, push at tail */
void pg_chunk_list_evicted(void *l, uint32_t c);
int64_t pg_chunk_list_oldest(void *l);

#endif
