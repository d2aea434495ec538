#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include <flexpage/flexpage.h>

static const struct fp_policy_ops *const policies[] = {
	&fp_policy_fifo,
	&fp_policy_lru,
};

const struct fp_policy_ops *fp_policy_find(const char *name)
{
	for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++)
		if (!strcmp(policies[i]->name, name))
			return policies[i];
	return NULL;
}

const char *const *fp_policy_names(void)
{
	static const char *names[sizeof policies / sizeof policies[0] + 1];
	for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++)
		names[i] = policies[i]->name;
	return names;
}

#define NIL UINT32_MAX

int fp_chunk_list_init(struct fp_chunk_list *l, uint32_t n_chunks)
{
	l->prev = malloc(sizeof *l->prev * n_chunks);
	l->next = malloc(sizeof *l->next * n_chunks);
	if (!l->prev || !l->next) {
		fp_chunk_list_free(l);
		return -1;
	}
	memset(l->prev, 0xff, sizeof *l->prev * n_chunks);
	memset(l->next, 0xff, sizeof *l->next * n_chunks);
	l->head = l->tail = NIL;
	l->n = 0;
	return 0;
}

void fp_chunk_list_free(struct fp_chunk_list *l)
{
	free(l->prev);
	free(l->next);
	l->prev = l->next = NULL;
}

int fp_chunk_list_contains(const struct fp_chunk_list *l, uint32_t c)
{
	return l->head == c || l->prev[c] != NIL;
}

void fp_chunk_list_push(struct fp_chunk_list *l, uint32_t c)
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

void fp_chunk_list_remove(struct fp_chunk_list *l, uint32_t c)
{
	if (!fp_chunk_list_contains(l, c))
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
