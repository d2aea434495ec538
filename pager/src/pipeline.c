/* The pipeline cost model of a token's streaming (pipeline.h). */
#include "pipeline.h"

#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

double pg_pipe_cpus(int decoders)
{
	cpu_set_t set;
	long n = sched_getaffinity(0, sizeof set, &set) ? sysconf(_SC_NPROCESSORS_ONLN)
	                                                 : CPU_COUNT(&set);
	double c = n > 1 ? (double)(n - 1) : 1.0;
	return decoders > 0 && decoders < c ? (double)decoders : c;
}

static double max2(double a, double b)
{
	return a > b ? a : b;
}

double pg_pipe_bound(const struct pg_pipe_item *it, uint32_t n, double cpus,
                     const uint8_t *pick)
{
	double a = 0, b = 0;
	for (uint32_t i = 0; i < n; i++) {
		int f = pick && it[i].forms > 1 ? pick[i] : 0;
		a += it[i].read[f];
		b += it[i].decode[f];
	}
	return max2(a, b / cpus);
}

/* A move from an item's decode-cheaper form to its read-cheaper one. */
struct move {
	uint32_t item;
	double dr, dd;           /* read time saved, decode time (over the cores) added */
};

static int by_ratio(const void *x, const void *y)
{
	const struct move *p = x, *q = y;
	double a = p->dr * q->dd, b = q->dr * p->dd; /* p->dr/p->dd vs q->dr/q->dd */
	return a > b ? -1 : a < b;
}

double pg_pipe_choose(const struct pg_pipe_item *it, uint32_t n, double cpus, uint8_t *pick)
{
	struct move *mv = malloc(sizeof *mv * (n ? n : 1));
	uint32_t m = 0;
	double a = 0, b = 0; /* read seconds, decode seconds over the cores */
	for (uint32_t i = 0; i < n; i++) {
		const struct pg_pipe_item *x = &it[i];
		if (x->forms < 2) {
			pick[i] = 0;
			a += x->read[0];
			b += x->decode[0] / cpus;
			continue;
		}
		/* start at the form that decodes faster (ties: reads faster) */
		int lo = x->decode[0] < x->decode[1] ||
		         (x->decode[0] == x->decode[1] && x->read[0] <= x->read[1]) ? 0 : 1;
		int hi = !lo;
		pick[i] = (uint8_t)lo;
		a += x->read[lo];
		b += x->decode[lo] / cpus;
		if (!(x->read[hi] < x->read[lo]))
			continue; /* slower to read and to decode: never the one */
		struct move v = {i, x->read[lo] - x->read[hi], (x->decode[hi] - x->decode[lo]) / cpus};
		if (v.dd <= 0) { /* reads faster and decodes as fast */
			pick[i] = (uint8_t)hi;
			a -= v.dr;
			continue;
		}
		if (mv)
			mv[m++] = v; /* out of memory: the decode-cheaper forms */
	}
	if (mv && m <= PG_PIPE_EXACT) {
		/* every subset of the moves, in Gray-code order (one move
		 * toggled a step) */
		double best = max2(a, b), ca = a, cb = b;
		uint32_t best_set = 0;
		for (uint32_t k = 1; k < (1u << m); k++) {
			uint32_t bit = (uint32_t)__builtin_ctz(k), set = k ^ (k >> 1);
			double s = set >> bit & 1 ? 1 : -1;
			ca -= s * mv[bit].dr;
			cb += s * mv[bit].dd;
			if (max2(ca, cb) < best) {
				best = max2(ca, cb);
				best_set = set;
			}
		}
		for (uint32_t j = 0; j < m; j++)
			if (best_set >> j & 1)
				pick[mv[j].item] = (uint8_t)!pick[mv[j].item];
	} else if (mv) {
		/* the fractional optimum takes the moves by read time saved
		 * per decode time added until the two sums meet; each move is
		 * taken only where it lowers the larger sum */
		qsort(mv, m, sizeof *mv, by_ratio);
		for (uint32_t j = 0; j < m; j++)
			if (max2(a - mv[j].dr, b + mv[j].dd) < max2(a, b)) {
				a -= mv[j].dr;
				b += mv[j].dd;
				pick[mv[j].item] = (uint8_t)!pick[mv[j].item];
			}
	}
	free(mv);
	return pg_pipe_bound(it, n, cpus, pick);
}
