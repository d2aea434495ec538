/* An example eviction policy: evict a resident chunk chosen at random.
 * One file, registered by name with fp_policy_register(&random_policy);
 * then fp_open(.policy = "random"), fp_set_policy(r, "random") and
 * fp_simulate() all run it. */
#include <stdlib.h>

#include <flexpage/flexpage.h>

struct random_policy {
	uint32_t *resident;      /* the resident chunks, unordered */
	uint32_t *where;         /* chunk -> index in resident, or UINT32_MAX */
	uint32_t n;
	uint64_t seed;
};

static void *random_create(const struct fp_policy_env *env)
{
	struct random_policy *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->resident = malloc(sizeof *p->resident * env->n_chunks);
	p->where = malloc(sizeof *p->where * env->n_chunks);
	if (!p->resident || !p->where) {
		free(p->resident);
		free(p->where);
		free(p);
		return NULL;
	}
	for (uint32_t c = 0; c < env->n_chunks; c++)
		p->where[c] = UINT32_MAX;
	p->seed = 0x9E3779B97F4A7C15ull;
	return p;
}

static void random_destroy(void *pp)
{
	struct random_policy *p = pp;
	free(p->resident);
	free(p->where);
	free(p);
}

static void random_loaded(void *pp, uint32_t c, int demand)
{
	struct random_policy *p = pp;
	if (p->where[c] != UINT32_MAX)
		return;
	p->where[c] = p->n;
	p->resident[p->n++] = c;
}

static void random_touched(void *pp, uint32_t c)
{
}

static void random_evicted(void *pp, uint32_t c)
{
	struct random_policy *p = pp;
	uint32_t i = p->where[c];
	if (i == UINT32_MAX)
		return;
	uint32_t last = p->resident[--p->n];
	p->resident[i] = last;
	p->where[last] = i;
	p->where[c] = UINT32_MAX;
}

static int64_t random_victim(void *pp)
{
	struct random_policy *p = pp;
	if (!p->n)
		return -1;
	p->seed ^= p->seed << 13, p->seed ^= p->seed >> 7, p->seed ^= p->seed << 17;
	return p->resident[p->seed % p->n];
}

const struct fp_policy_ops random_policy = {
	.name = "random",
	.summary = "evict a resident chunk chosen at random",
	.create = random_create,
	.destroy = random_destroy,
	.loaded = random_loaded,
	.touched = random_touched,
	.evicted = random_evicted,
	.victim = random_victim,
};
