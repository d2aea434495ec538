/* Residency: the budget of resident bytes, the policy that chooses what
 * leaves, eviction, and the preserved chunks that never leave. */
#ifndef FLEXPAGE_RESIDENCY_H
#define FLEXPAGE_RESIDENCY_H

#include <pthread.h>
#include <stdint.h>
#include <urcu.h>

#include <flexpage/flexpage_experimental.h>

typedef struct fp_region fp_region;
struct fp_stats;

/* Settings that change while the loop runs, published with RCU. */
struct pg_settings {
	uint64_t budget;
	const struct fp_policy_ops *policy_ops;
	void *policy;                /* guarded by the residency lock */
	struct rcu_head rcu;
};

/* The ledger (residency.c).  Everything here is under lock, which no path
 * that touches region memory or issues an ioctl ever holds. */
struct pg_residency {
	pthread_mutex_t lock;
	int ready;                   /* lock initialised */
	uint64_t resident;           /* installed + reserved region bytes */
	struct pg_settings *settings; /* RCU-published; writers hold lock */
	uint32_t *res_len;           /* per chunk: the bytes it holds while resident, page_len
	                              * or, for a staged tail installed whole, chunk_size */
};

/* Preservation (preserve.c): chunks loaded at open, never evicted, locked
 * within a quota.  The byte counts are under the residency lock. */
struct pg_preservation {
	uint8_t *preserve;           /* per chunk, or NULL */
	uint64_t lock_quota;
	uint64_t kept_bytes;         /* the preserved chunks' page lengths: fixed at open */
	uint64_t preserved_bytes, locked_bytes;
	int lock_warned;
};

/* Victims chosen under the residency lock; their pages go after it. */
#define PG_EVICT_BATCH 8
struct pg_evictions {
	fp_region *r;
	uint32_t n, v[PG_EVICT_BATCH];
};

/* residency.c */
/* The policy named, or NULL with fp_last_error(). */
const struct fp_policy_ops *pg_res_find_policy(const char *name);
int pg_res_init(fp_region *r, uint64_t budget, const struct fp_policy_ops *ops);
void pg_res_free(fp_region *r);
void pg_res_lock(fp_region *r);
void pg_res_unlock(fp_region *r);
/* The budget now: under the lock, or on the handler (RCU). */
uint64_t pg_res_budget(fp_region *r);
const char *pg_res_policy_name(fp_region *r);
/* Publish a new budget or policy; waits for an RCU grace period. */
int pg_res_set_budget(fp_region *r, uint64_t budget);
int pg_res_set_policy(fp_region *r, const struct fp_policy_ops *ops);
/* Make room for bytes more, evicting per the policy, and count them.  A
 * demand load that finds nothing to evict goes over by its one chunk. */
void pg_reserve(fp_region *r, uint64_t bytes);
/* Under the lock: evict until bytes more fit in target; 1 if they cannot. */
int pg_res_make_room_locked(fp_region *r, uint64_t target, uint64_t bytes,
                            struct pg_evictions *e);
/* Under the lock: chunk c holds bytes from now on (a reservation), or
 * gives its bytes back (the reservation ends without an install). */
void pg_res_hold_locked(fp_region *r, uint32_t c, uint64_t bytes);
void pg_res_unhold_locked(fp_region *r, uint32_t c);
/* Under the lock: chunk c is resident; tell the policy. */
void pg_res_loaded_locked(fp_region *r, uint32_t c, int demand);
/* Under the lock: victim v leaves the policy (and, dropped, the budget). */
void pg_res_forget_locked(fp_region *r, uint32_t v);
void pg_res_drop_locked(fp_region *r, uint32_t v);
/* Victim v's pages are gone: it holds its data's pages again. */
void pg_res_evicted(fp_region *r, uint32_t v);
/* Tell the policy of an access to resident chunk c. */
void pg_touch(fp_region *r, uint32_t c);
/* Resident, budget and preserved bytes, for fp_get_stats. */
void pg_res_stats(fp_region *r, struct fp_stats *out);

/* evict.c */
/* The callback pg_make_room calls with each victim (ctx: pg_evictions). */
void pg_evict_chosen(void *ctx, uint32_t v);
/* After the lock is released: take the victims' pages out. */
void pg_evict_finish(struct pg_evictions *e);
/* Evict down to target now (a smaller budget). */
int pg_evict_to(fp_region *r, uint64_t target);

/* Two chunks (one for a one-chunk image): the least a budget must leave
 * for the chunks that are not preserved (region.c). */
uint64_t pg_min_working_set(const fp_region *r);

/* preserve.c */
/* Take the preserve mask of the options; fails if what it keeps leaves
 * less than the minimum working set of budget. */
int pg_preserve_init(fp_region *r, uint64_t budget);
void pg_preserve_free(fp_region *r);
/* Queue every preserved chunk's load (at open). */
void pg_preserve_load(fp_region *r);
/* Under the residency lock: preserved chunk c is in; lock it. */
void pg_preserve_installed_locked(fp_region *r, uint32_t c);
uint64_t pg_preserved_bytes(const fp_region *r);
void pg_preserve_stats_locked(const fp_region *r, struct fp_stats *out);

#endif
