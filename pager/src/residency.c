/* Residency: resident region bytes stay within the budget.  Every chunk
 * that is installed was first reserved here, and eviction (chosen by the
 * policy, evict.c) makes the room.  The ledger is under the residency
 * lock, which no path that touches region memory ever holds.  The budget
 * and the policy are published with RCU, so the handler reads them
 * without the lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "internal.h"
#include "tsan.h"

const struct fp_policy_ops *pg_res_find_policy(const char *name)
{
	const struct fp_policy_ops *ops = fp_policy_find(name);
	if (!ops) {
		const char *names[32];
		size_t n = fp_policy_names(names, 32);
		char list[256] = "";
		for (size_t i = 0; i < n && i < 32; i++)
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
			         list[0] ? ", " : "", names[i]);
		return pg_err_null(ENOENT, "unknown policy '%s' (known: %s)", name, list);
	}
	if (ops->future)
		return pg_err_null(EINVAL, "policy '%s' needs the future accesses: it runs in the "
		                   "simulator only", name);
	return ops;
}

static struct pg_settings *settings_new(fp_region *r, uint64_t budget,
                                        const struct fp_policy_ops *ops)
{
	struct pg_settings *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->budget = budget;
	s->policy_ops = ops;
	struct fp_policy_env env = {
		.n_chunks = r->n_chunks,
		.chunk_size = r->chunk_size,
		.chunks = r->img->chunks,
		.budget = budget,
	};
	s->policy = ops->create(&env);
	if (!s->policy) {
		free(s);
		return NULL;
	}
	return s;
}

int pg_res_init(fp_region *r, uint64_t budget, const struct fp_policy_ops *ops)
{
	struct pg_residency *res = &r->res;
	pthread_mutex_init(&res->lock, NULL);
	res->ready = 1;
	res->res_len = malloc(r->n_chunks * sizeof *res->res_len);
	res->settings = settings_new(r, budget, ops);
	if (!res->res_len || !res->settings)
		return -1;
	memcpy(res->res_len, r->page_len, r->n_chunks * sizeof *res->res_len);
	return 0;
}

void pg_res_free(fp_region *r)
{
	struct pg_residency *res = &r->res;
	if (res->ready)
		pthread_mutex_destroy(&res->lock);
	if (res->settings) {
		if (res->settings->policy)
			res->settings->policy_ops->destroy(res->settings->policy);
		free(res->settings);
	}
	free(res->res_len);
}

void pg_res_lock(fp_region *r)
{
	pthread_mutex_lock(&r->res.lock);
}

void pg_res_unlock(fp_region *r)
{
	pthread_mutex_unlock(&r->res.lock);
}

static const struct pg_settings *settings(fp_region *r)
{
	const struct pg_settings *s = rcu_dereference(r->res.settings);
	pg_tsan_acquire(s);
	return s;
}

uint64_t pg_res_budget(fp_region *r)
{
	return settings(r)->budget;
}

const char *pg_res_policy_name(fp_region *r)
{
	return settings(r)->policy_ops->name;
}

/* Publish new settings (the lock held, and released here); the old ones
 * are freed after a grace period, since the handler reads them under RCU
 * without the lock. */
static void publish(fp_region *r, struct pg_settings *s)
{
	struct pg_settings *old = r->res.settings;
	pg_tsan_release(s);
	rcu_assign_pointer(r->res.settings, s);
	pthread_mutex_unlock(&r->res.lock);
	synchronize_rcu();
	pg_tsan_acquire(&pg_tsan_grace);
	if (old->policy != s->policy)
		old->policy_ops->destroy(old->policy);
	free(old);
}

int pg_res_set_budget(fp_region *r, uint64_t budget)
{
	struct pg_settings *s = malloc(sizeof *s);
	if (!s)
		return pg_err(ENOMEM, "out of memory");
	pthread_mutex_lock(&r->res.lock);
	*s = *r->res.settings;
	s->budget = budget;
	publish(r, s);
	return 0;
}

int pg_res_set_policy(fp_region *r, const struct fp_policy_ops *ops)
{
	pthread_mutex_lock(&r->res.lock);
	struct pg_settings *s = settings_new(r, r->res.settings->budget, ops);
	if (!s) {
		pthread_mutex_unlock(&r->res.lock);
		return pg_err(ENOMEM, "out of memory");
	}
	/* The new policy starts from what is resident now, preserved chunks
	 * aside: shown to no policy, they are never a victim (and, locked,
	 * their pages would not leave). */
	for (uint32_t c = 0; c < r->n_chunks; c++)
		if (chunk_state(r, c) == CHUNK_RESIDENT && !pg_preserved(r, c))
			ops->loaded(s->policy, c, 0);
	publish(r, s);
	return 0;
}

/* Count bytes more as resident (under the lock). */
static void add_resident(fp_region *r, uint64_t bytes)
{
	r->res.resident += bytes;
	pg_stat_resident(r, r->res.resident);
}

int pg_res_make_room_locked(fp_region *r, uint64_t target, uint64_t bytes,
                            struct pg_evictions *e)
{
	struct pg_settings *s = r->res.settings;
	return pg_make_room(s->policy_ops, s->policy, target, &r->res.resident, bytes,
	                    pg_evict_chosen, e);
}

void pg_reserve(fp_region *r, uint64_t bytes)
{
	struct pg_evictions e = {.r = r};
	pthread_mutex_lock(&r->res.lock);
	/* With everything else in flight a load goes over by its one chunk:
	 * the documented bound. */
	pg_res_make_room_locked(r, r->res.settings->budget, bytes, &e);
	add_resident(r, bytes);
	pthread_mutex_unlock(&r->res.lock);
	pg_evict_finish(&e);
}

void pg_res_hold_locked(fp_region *r, uint32_t c, uint64_t bytes)
{
	r->res.res_len[c] = (uint32_t)bytes;
	add_resident(r, bytes);
}

void pg_res_unhold_locked(fp_region *r, uint32_t c)
{
	r->res.resident -= r->res.res_len[c];
	r->res.res_len[c] = r->page_len[c];
}

void pg_res_loaded_locked(fp_region *r, uint32_t c, int demand)
{
	struct pg_settings *s = r->res.settings;
	s->policy_ops->loaded(s->policy, c, demand);
}

void pg_res_forget_locked(fp_region *r, uint32_t v)
{
	struct pg_settings *s = r->res.settings;
	s->policy_ops->evicted(s->policy, v);
}

void pg_res_drop_locked(fp_region *r, uint32_t v)
{
	pg_res_forget_locked(r, v);
	r->res.resident -= r->res.res_len[v];
}

void pg_res_evicted(fp_region *r, uint32_t v)
{
	r->res.res_len[v] = r->page_len[v];
}

void pg_touch(fp_region *r, uint32_t c)
{
	pthread_mutex_lock(&r->res.lock);
	if (chunk_state(r, c) == CHUNK_RESIDENT)
		r->res.settings->policy_ops->touched(r->res.settings->policy, c);
	pthread_mutex_unlock(&r->res.lock);
}

void pg_res_stats(fp_region *r, struct fp_stats *o)
{
	pthread_mutex_lock(&r->res.lock);
	o->resident_bytes = r->res.resident;
	o->budget = r->res.settings->budget;
	pg_preserve_stats_locked(r, o);
	pthread_mutex_unlock(&r->res.lock);
}
