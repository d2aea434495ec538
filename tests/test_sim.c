/* The simulator: the same policy code as the live pager, checked against
 * the live pager on a recorded trace and against brute force. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <flexpage/flexpage_experimental.h>

#include "region_util.h"

/* The fewest loads any eviction choices can achieve: try every victim. */
static uint64_t brute_min_loads(const uint32_t *acc, int n, int i, uint32_t resident,
                                int slots)
{
	if (i == n)
		return 0;
	uint32_t bit = 1u << acc[i];
	if (resident & bit)
		return brute_min_loads(acc, n, i + 1, resident, slots);
	if (__builtin_popcount(resident) < slots)
		return 1 + brute_min_loads(acc, n, i + 1, resident | bit, slots);
	uint64_t best = UINT64_MAX;
	for (uint32_t v = resident; v; v &= v - 1) {
		uint32_t victim = v & -v;
		uint64_t loads = brute_min_loads(acc, n, i + 1, (resident & ~victim) | bit, slots);
		if (loads < best)
			best = loads;
	}
	return 1 + best;
}

Test(sim, belady_is_the_minimum_by_brute_force)
{
	const struct fp_policy_ops *belady = fp_policy_find("belady");
	cr_assert_not_null(belady);
	uint64_t x = 12345;
	for (int trial = 0; trial < 300; trial++) {
		int n = 6 + trial % 9, chunks = 3 + trial % 4, slots = 2 + trial % 2;
		uint32_t acc[16];
		for (int i = 0; i < n; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			acc[i] = (uint32_t)(x % (uint64_t)chunks);
		}
		struct fp_policy_env env = {.n_chunks = (uint32_t)chunks, .chunk_size = 65536,
		                            .budget = (uint64_t)slots * 65536};
		struct fp_sim_result res;
		cr_assert_eq(fp_simulate(&env, belady, acc, (uint64_t)n, &res), 0, "%s", fp_last_error());
		uint64_t best = brute_min_loads(acc, n, 0, 0, slots);
		cr_assert_eq(res.loads, best, "trial %d: belady %llu loads, minimum %llu", trial,
		             (unsigned long long)res.loads, (unsigned long long)best);
		cr_assert_eq(res.hits + res.loads, (uint64_t)n);
		/* And no other policy does better. */
		const char *names[32];
		size_t n_names = fp_policy_names(names, 32);
		cr_assert_geq(n_names, 5, "the five built-in policies");
		for (const char *const *p = names; p < names + n_names && p < names + 32; p++) {
			struct fp_sim_result other;
			cr_assert_eq(fp_simulate(&env, fp_policy_find(*p), acc, (uint64_t)n, &other), 0);
			cr_assert_geq(other.loads, best, "%s beat the optimum", *p);
		}
	}
}

Test(sim, known_streams_give_known_counts)
{
	/* A cyclic scan of 6 chunks with room for 4: FIFO and LRU miss every
	 * access; stream (MRU) keeps at least 3 resident and so misses at most
	 * 3 a cycle after the first. */
	uint32_t acc[60];
	for (int i = 0; i < 60; i++)
		acc[i] = (uint32_t)(i % 6);
	struct fp_policy_env env = {.n_chunks = 6, .chunk_size = 65536, .budget = 4 * 65536};
	struct fp_sim_result fifo, lru, stream, belady;
	cr_assert_eq(fp_simulate(&env, fp_policy_find("fifo"), acc, 60, &fifo), 0);
	cr_assert_eq(fp_simulate(&env, fp_policy_find("lru"), acc, 60, &lru), 0);
	cr_assert_eq(fp_simulate(&env, fp_policy_find("stream"), acc, 60, &stream), 0);
	cr_assert_eq(fp_simulate(&env, fp_policy_find("belady"), acc, 60, &belady), 0);
	cr_expect_eq(fifo.loads, 60);
	cr_expect_eq(lru.loads, 60);
	cr_expect_leq(stream.loads, 6 + 9 * 3, "stream loads %llu", (unsigned long long)stream.loads);
	cr_expect_leq(belady.loads, stream.loads);
	cr_expect_eq(fifo.evictions, 60 - 4);
	cr_expect_leq(fifo.peak_resident, env.budget);
}

/* Record a live run (one reader, one loader, no read-ahead: the order of
 * policy calls is then fixed) and replay its faults in the simulator. */
static void live_vs_sim(const char *policy)
{
	const uint32_t chunk = 64u << 10, n_chunks = 24;
	const size_t len = (size_t)n_chunks * chunk - 1000;
	uint8_t *ref = ru_data(len, 31);
	char path[512], tpath[512];
	snprintf(path, sizeof path, "%s/sim-%s.img", ru_tmpdir(), policy);
	snprintf(tpath, sizeof tpath, "%s/sim-%s.trace", ru_tmpdir(), policy);
	ru_write_image(path, ref, len, chunk, FP_CODEC_ZSTD);
	struct fp_options o = ru_options(7ull * chunk);
	o.policy = policy;
	o.loaders = 1;
	o.readahead = 0;
	o.trace_path = tpath;
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	const uint8_t *base = fp_tensor(r, "data", NULL);
	uint64_t x = 99;
	int bad = 0;
	for (int token = 0; token < 5; token++) {
		/* A decode-like pass: in order, with a few chunks revisited. */
		for (uint32_t c = 0; c < n_chunks; c++) {
			size_t off = (size_t)c * chunk + 17;
			bad += base[off] != ref[off];
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			size_t back = (size_t)(x % (c + 1)) * chunk + 99;
			if (back < len)
				bad += base[back] != ref[back];
		}
	}
	struct fp_stats live;
	fp_get_stats(r, &live);
	fp_close(r);
	cr_assert_eq(bad, 0);

	fp_trace *t = fp_trace_open(tpath);
	cr_assert_not_null(t, "%s", fp_last_error());
	fp_image *img = fp_image_open(path);
	cr_assert_not_null(img);
	uint32_t *acc;
	uint64_t n;
	cr_assert_eq(fp_trace_accesses(t, img, &acc, &n), 0, "%s", fp_last_error());
	struct fp_policy_env env = {
		.n_chunks = fp_image_info(img)->n_chunks,
		.chunk_size = chunk,
		.chunks = fp_image_chunk(img, 0),
		.budget = fp_trace_header(t)->budget,
	};
	struct fp_sim_result sim;
	cr_assert_eq(fp_simulate(&env, fp_policy_find(policy), acc, n, &sim), 0);
	cr_expect_eq(sim.loads, live.demand_loads + live.prefetch_loads,
	             "%s: simulated %llu loads, live %llu", policy, (unsigned long long)sim.loads,
	             (unsigned long long)(live.demand_loads + live.prefetch_loads));
	cr_expect_eq(sim.evictions, live.evictions, "%s: simulated %llu evictions, live %llu",
	             policy, (unsigned long long)sim.evictions, (unsigned long long)live.evictions);
	cr_expect_gt(live.evictions, 20, "the run must evict to be a test");
	free(acc);
	fp_image_close(img);
	fp_trace_close(t);
	unlink(tpath);
	unlink(path);
	free(ref);
}

Test(sim, agrees_with_the_live_pager_fifo, .timeout = 60) { live_vs_sim("fifo"); }
Test(sim, agrees_with_the_live_pager_lru, .timeout = 60) { live_vs_sim("lru"); }
Test(sim, agrees_with_the_live_pager_clock, .timeout = 60) { live_vs_sim("clock"); }
Test(sim, agrees_with_the_live_pager_stream, .timeout = 60) { live_vs_sim("stream"); }

/* The example policy of docs/policies.md, registered by a user. */
#include "../docs/examples/policy_random.c"

Test(sim, a_user_policy_runs_live_and_in_the_simulator, .timeout = 60)
{
	cr_assert_eq(fp_policy_register(&random_policy), 0, "%s", fp_last_error());
	cr_expect_neq(fp_policy_register(&random_policy), 0, "registered twice");
	uint32_t acc[200];
	for (int i = 0; i < 200; i++)
		acc[i] = (uint32_t)((i * 7) % 10);
	struct fp_policy_env env = {.n_chunks = 10, .chunk_size = 65536, .budget = 3 * 65536};
	struct fp_sim_result res;
	cr_assert_eq(fp_simulate(&env, fp_policy_find("random"), acc, 200, &res), 0);
	cr_expect_eq(res.hits + res.loads, 200);
	cr_expect_leq(res.peak_resident, env.budget);

	const size_t len = 2u << 20;
	uint8_t *ref = ru_data(len, 32);
	char path[512];
	snprintf(path, sizeof path, "%s/user-policy.img", ru_tmpdir());
	ru_write_image(path, ref, len, 64u << 10, FP_CODEC_RAW);
	struct fp_options o = ru_options(4u * (64u << 10));
	o.policy = "random";
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	cr_expect_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0);
	struct fp_stats s;
	fp_get_stats(r, &s);
	cr_expect_gt(s.evictions, 0);
	fp_close(r);
	o.policy = "belady";
	cr_expect_null(fp_open(path, &o));
	cr_expect_eq(errno, EINVAL);
	cr_expect(strstr(fp_last_error(), "simulator only") != NULL, "%s", fp_last_error());
	unlink(path);
	free(ref);
}
