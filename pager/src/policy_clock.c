/* CLOCK: second chance.  Resident chunks sit on a circle (in chunk order)
 * with a reference bit, set by an access; the hand clears set bits and
 * evicts the first resident chunk it finds clear. */
#include <stdlib.h>

#include "policy.h"

struct clock {
	uint8_t *state;          /* per chunk: bit 0 resident, bit 1 referenced */
	uint32_t n_chunks, hand, resident;
};

static void *clock_create(const struct fp_policy_env *env)
{
	struct clock *k = calloc(1, sizeof *k);
	if (k && !(k->state = calloc(env->n_chunks, 1))) {
		free(k);
		return NULL;
	}
	if (k)
		k->n_chunks = env->n_chunks;
	return k;
}

static void clock_destroy(void *p)
{
	struct clock *k = p;
	free(k->state);
	free(k);
}

static void clock_loaded(void *p, uint32_t c, int demand)
{
	struct clock *k = p;
	k->resident += !(k->state[c] & 1);
	k->state[c] = 1;
}

static void clock_touched(void *p, uint32_t c)
{
	struct clock *k = p;
	if (k->state[c] & 1)
		k->state[c] |= 2;
}

static void clock_evicted(void *p, uint32_t c)
{
	struct clock *k = p;
	k->resident -= k->state[c] & 1;
	k->state[c] = 0;
}

static int64_t clock_victim(void *p)
{
	struct clock *k = p;
	if (!k->resident)
		return -1;
	for (;;) {
		uint32_t c = k->hand;
		k->hand = (k->hand + 1) % k->n_chunks;
		if (k->state[c] == 1)
			return c;
		k->state[c] &= 1; /* second chance */
	}
}

const struct fp_policy_ops pg_policy_clock = {
	.name = "clock",
	.summary = "second chance: evict the next chunk not accessed since the hand passed",
	.create = clock_create,
	.destroy = clock_destroy,
	.loaded = clock_loaded,
	.touched = clock_touched,
	.evicted = clock_evicted,
	.victim = clock_victim,
};
