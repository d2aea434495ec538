/* The pipeline cost model's choice of forms (pager/src/pipeline.h), on
 * sets of chunks made up here: the choice streams a token as fast as the
 * best assignment an exhaustive search finds, by the test's own
 * evaluation of the token time, on small sets and on large ones of a few
 * kinds of chunk; and the cores decoding gets follow the decoder limit. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "pipeline.h"

/* The token time of one assignment, evaluated as the stream runs it:
 * each chunk is waited for until it is read (at the device's rate) and
 * decoded (on the cores decoding gets), whichever ends later. */
static double chunk_time(const struct pg_pipe_item *x, int f, double cpus)
{
	return fmax(x->read[f], x->decode[f] / cpus);
}

static double eval(const struct pg_pipe_item *it, uint32_t n, uint64_t mask, double cpus)
{
	double t = 0;
	for (uint32_t i = 0; i < n; i++)
		t += chunk_time(&it[i], it[i].forms > 1 && (mask >> i & 1), cpus);
	return t;
}

static double frand(unsigned *seed, double lo, double hi)
{
	return lo + (hi - lo) * (rand_r(seed) / (double)RAND_MAX);
}

/* A chunk of 2 MiB: raw (read only) or compressed at ratio 1.05-1.8
 * (read less, decode all of it); a few have one form only. */
static void make(struct pg_pipe_item *it, uint32_t n, unsigned *seed, double read, double decode)
{
	for (uint32_t i = 0; i < n; i++) {
		const double len = 2 << 20, ratio = frand(seed, 1.05, 1.8);
		const int swap = rand_r(seed) & 1; /* either form may be the table's entry */
		it[i] = (struct pg_pipe_item){.forms = rand_r(seed) % 8 ? 2 : 1};
		it[i].read[swap] = len / read;
		it[i].read[!swap] = len / ratio / read;
		it[i].decode[!swap] = len / decode * frand(seed, 0.8, 1.25);
	}
}

Test(adapt_pipe, small_sets_stream_as_fast_as_the_best_assignment)
{
	unsigned seed = 7;
	int mixed = 0;
	for (int k = 0; k < 300; k++) {
		const uint32_t n = 1 + (uint32_t)(rand_r(&seed) % 12);
		const double read = frand(&seed, 0.2e9, 4e9), decode = frand(&seed, 0.5e9, 2e9);
		const double cpus = 1 + rand_r(&seed) % 3;
		struct pg_pipe_item it[12];
		make(it, n, &seed, read, decode);
		double best = INFINITY;
		for (uint64_t m = 0; m < (1ull << n); m++)
			best = fmin(best, eval(it, n, m, cpus));
		uint8_t pick[12];
		const double t = pg_pipe_choose(it, n, cpus, pick);
		uint64_t mask = 0;
		for (uint32_t i = 0; i < n; i++) {
			cr_assert_leq(pick[i], it[i].forms - 1, "set %d: chunk %u: no form %u", k, i,
			              pick[i]);
			mask |= (uint64_t)pick[i] << i;
		}
		const double got = eval(it, n, mask, cpus);
		cr_assert_leq(got, best * (1 + 1e-9), "set %d (%u chunks, %.3g/%.3g B/s, %g cores): "
		              "the choice streams in %.6g s, the best assignment in %.6g s",
		              k, n, read, decode, cpus, got, best);
		cr_assert_float_eq(t, got, 1e-9 * got, "set %d: the bound returned is not the choice's", k);
		/* a choice that is neither all raw nor all compressed */
		int some_raw = 0, some_z = 0;
		for (uint32_t i = 0; i < n; i++)
			if (it[i].forms > 1) {
				some_z |= it[i].decode[pick[i]] > 0;
				some_raw |= it[i].decode[pick[i]] == 0;
			}
		mixed += some_raw && some_z;
	}
	cr_assert_gt(mixed, 10, "only %d sets mixed the forms: the sets test too little", mixed);
}

/* A large set: three kinds of chunk, many of each, so that the best
 * assignment is found by trying every count of each kind compressed
 * (chunks of a kind are alike: which ones does not matter). */
Test(adapt_pipe, large_sets_stream_as_fast_as_the_best_assignment)
{
	unsigned seed = 11;
	for (int k = 0; k < 20; k++) {
		enum { KINDS = 3, EACH = 60, N = KINDS * EACH };
		const double read = frand(&seed, 0.3e9, 3e9), decode = frand(&seed, 0.6e9, 1.6e9);
		const double cpus = 1 + rand_r(&seed) % 2;
		struct pg_pipe_item kind[KINDS], it[N];
		make(kind, KINDS, &seed, read, decode);
		for (int j = 0; j < KINDS; j++)
			kind[j].forms = 2;
		for (int i = 0; i < N; i++)
			it[i] = kind[i % KINDS];
		double best = INFINITY;
		for (int a = 0; a <= EACH; a++)
			for (int b = 0; b <= EACH; b++)
				for (int c = 0; c <= EACH; c++) {
					const int cnt[KINDS] = {a, b, c};
					double t = 0;
					for (int j = 0; j < KINDS; j++)
						t += cnt[j] * chunk_time(&kind[j], 1, cpus) +
						     (EACH - cnt[j]) * chunk_time(&kind[j], 0, cpus);
					best = fmin(best, t);
				}
		uint8_t pick[N];
		const double t = pg_pipe_choose(it, N, cpus, pick);
		double got = 0;
		for (int i = 0; i < N; i++)
			got += chunk_time(&it[i], pick[i], cpus);
		cr_assert_float_eq(t, got, 1e-9 * got, "set %d: the bound returned is not the choice's", k);
		cr_assert_leq(got, best * (1 + 1e-9), "set %d: the choice streams in %.6g s, the best in "
		              "%.6g s", k, got, best);
	}
}

Test(adapt_pipe, decoding_gets_the_cores_less_one_within_the_limit)
{
	const long n = sysconf(_SC_NPROCESSORS_ONLN);
	const double all = n > 1 ? (double)(n - 1) : 1;
	cr_assert_leq(pg_pipe_cpus(0), all);
	cr_assert_geq(pg_pipe_cpus(0), 1);
	cr_assert_eq(pg_pipe_cpus(1), 1);
	cr_assert_eq(pg_pipe_cpus(1000), pg_pipe_cpus(0));
}
