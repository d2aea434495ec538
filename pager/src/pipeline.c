/* The pipeline cost model of a token's streaming (pipeline.h). */
#include "pipeline.h"

#include <sched.h>
#include <unistd.h>

double pg_pipe_cpus(int decoders)
{
	cpu_set_t set;
	long n = sched_getaffinity(0, sizeof set, &set) ? sysconf(_SC_NPROCESSORS_ONLN)
	                                                 : CPU_COUNT(&set);
	double c = n > 1 ? (double)(n - 1) : 1.0;
	return decoders > 0 && decoders < c ? (double)decoders : c;
}

/* What form f of item x adds to a token's streaming. */
static double cost(const struct pg_pipe_item *x, int f, double cpus)
{
	const double d = x->decode[f] / cpus;
	return x->read[f] > d ? x->read[f] : d;
}

double pg_pipe_bound(const struct pg_pipe_item *it, uint32_t n, double cpus,
                     const uint8_t *pick)
{
	double t = 0;
	for (uint32_t i = 0; i < n; i++)
		t += cost(&it[i], pick && it[i].forms > 1 ? pick[i] : 0, cpus);
	return t;
}

double pg_pipe_choose(const struct pg_pipe_item *it, uint32_t n, double cpus, uint8_t *pick)
{
	for (uint32_t i = 0; i < n; i++) {
		const struct pg_pipe_item *x = &it[i];
		pick[i] = 0;
		if (x->forms < 2)
			continue;
		const double c0 = cost(x, 0, cpus), c1 = cost(x, 1, cpus);
		pick[i] = c1 < c0 || (c1 == c0 && (x->decode[1] < x->decode[0] ||
		                                   (x->decode[1] == x->decode[0] && x->read[1] < x->read[0])));
	}
	return pg_pipe_bound(it, n, cpus, pick);
}
