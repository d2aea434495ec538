/* The policy registry and the chunk list the list-based policies share. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "policy.h"

#define MAX_POLICIES 32

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const struct fp_policy_ops *policies[MAX_POLICIES] = {
	&pg_policy_fifo, &pg_policy_lru, &pg_policy_clock, &pg_policy_stream, &pg_policy_belady,
};

int fp_policy_register(const struct fp_policy_ops *ops)
{
	if (!ops || !ops->name || !ops->create || !ops->destroy || !ops->loaded || !ops->touched ||
	    !ops->evicted || !ops->victim)
		return pg_err(EINVAL, "policy: every hook but future is required");
	pthread_mutex_lock(&lock);
	int i;
	for (i = 0; i < MAX_POLICIES && policies[i]; i++)
		if (!strcmp(policies[i]->name, ops->name)) {
			pthread_mutex_unlock(&lock);
			return pg_err(EEXIST, "policy '%s' is already registered", ops->name);
		}
	if (i == MAX_POLICIES) {
		pthread_mutex_unlock(&lock);
		return pg_err(ENOSPC, "policy: no room for more than %d policies", MAX_POLICIES);
	}
	policies[i] = ops;
	pthread_mutex_unlock(&lock);
	return 0;
}

const struct fp_policy_ops *fp_policy_find(const char *name)
{
	const struct fp_policy_ops *found = NULL;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < MAX_POLICIES && policies[i]; i++)
		if (!strcmp(policies[i]->name, name))
			found = policies[i];
	pthread_mutex_unlock(&lock);
	return found;
}

size_t fp_policy_names(const char **names, size_t n)
{
	pthread_mutex_lock(&lock);
	size_t i;
	for (i = 0; i < MAX_POLICIES && policies[i]; i++)
		if (i < n)
			names[i] = policies[i]->name;
	pthread_mutex_unlock(&lock);
	return i;
}

int pg_make_room(const struct fp_policy_ops *ops, void *policy, uint64_t budget,
                 const uint64_t *resident, uint64_t bytes,
                 void (*evict)(void *ctx, uint32_t c), void *ctx)
{
	while (*resident + bytes > budget) {
		int64_t v = ops->victim(policy);
		if (v < 0)
			return 1;
		evict(ctx, (uint32_t)v);
	}
	return 0;
}

#define NIL UINT32_MAX

void *pg_chunk_list_create(const struct fp_policy_env *env)
{
	struct pg_chunk_list *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->prev = malloc(sizeof *l->prev * env->n_chunks);
	l->next = malloc(sizeof *l->next * env->n_chunks);
	if (!l->prev || !l->next) {
		pg_chunk_list_destroy(l);
		return NULL;
	}
	memset(l->prev, 0xff, sizeof *l->prev * env->n_chunks);
	memset(l->next, 0xff, sizeof *l->next * env->n_chunks);
	l->head = l->tail = NIL;
	return l;
}

void pg_chunk_list_destroy(void *p)
{
	struct pg_chunk_list *l = p;
	free(l->prev);
	free(l->next);
	free(l);
}

int pg_chunk_list_contains(const struct pg_chunk_list *l, uint32_t c)
{
	return l->head == c || l->prev[c] != NIL;
}

void pg_chunk_list_push(struct pg_chunk_list *l, uint32_t c)
{
	l->prev[c] = l->tail;
	l->next[c] = NIL;
	if (l->tail != NIL)
		l->next[l->tail] = c;
	else
		l->head = c;
	l->tail = c;
	l->n++;
}

void pg_chunk_list_remove(struct pg_chunk_list *l, uint32_t c)
{
	if (!pg_chunk_list_contains(l, c))
		return;
	uint32_t p = l->prev[c], n = l->next[c];
	if (p != NIL)
		l->next[p] = n;
	else
		l->head = n;
	if (n != NIL)
		l->prev[n] = p;
	else
		l->tail = p;
	l->prev[c] = l->next[c] = NIL;
	l->n--;
}

void pg_chunk_list_requeue(void *l, uint32_t c, int demand)
{
	pg_chunk_list_remove(l, c);
	pg_chunk_list_push(l, c);
}

void pg_chunk_list_evicted(void *l, uint32_t c)
{
	pg_chunk_list_remove(l, c);
}

int64_t pg_chunk_list_oldest(void *p)
{
	struct pg_chunk_list *l = p;
	return l->n ? (int64_t)l->head : -1;
}
