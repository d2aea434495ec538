/* llama2.c's own run.c (../shared/peers/llama2.c, unmodified) under
 * libflexpage-preload.so: its checkpoint stories260K.bin served from a
 * verbatim image (FLEXPAGE_IMAGE) at half its size, in a memory cgroup of
 * that budget plus what the program needs; its output must be byte for
 * byte the output without the library, and the library's summary must
 * show faults served within the budget. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "preload_util.h"

static void run_c(const char *const *env, int preload, int cgroup, uint64_t limit,
                  struct pu_result *r)
{
	const char *argv[] = {pu_peer("RUN_C"), pu_peer("STORIES_BIN"), "-z", pu_peer("TOK512"), "-t", "0",
	                      "-n", "200", "-i", "Once upon a time", NULL};
	struct pu_opts o = {.env = env, .preload = preload, .cgroup = cgroup, .limit = limit,
	                    .timeout_s = 300};
	pu_run(argv, &o, r);
	cr_assert(!r->timed_out, "run.c hung: %s", r->err);
	cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
	          "run.c failed (status 0x%x; killed by 9: over its cgroup's limit of %llu)\n%s", r->status,
	          (unsigned long long)limit, r->err);
}

Test(llama2c, run_c_output_is_identical_at_half_budget_in_a_cgroup, .timeout = 600)
{
	char image[1200];
	snprintf(image, sizeof image, "FLEXPAGE_IMAGE=%s", pu_peer("STORIES_IMG"));
	struct pu_result ref, full, half;
	run_c(NULL, 0, 0, 0, &ref);
	cr_assert(strstr(ref.out, "Once upon a time, there was a little girl named Lily"), "%s", ref.out);
	/* What run.c and the library need beside the model's resident bytes:
	 * measured with all of it resident, in a cgroup without a limit. */
	const char *env_full[] = {image, "FLEXPAGE_BUDGET=100%", "FLEXPAGE_STATS=exit", NULL};
	run_c(env_full, 1, 1, PU_NO_LIMIT, &full);
	cr_expect_str_eq(full.out, ref.out);
	long long full_peak = pu_summary(full.err, "stories260K.bin", "peak resident");
	cr_assert_gt(full_peak, 0, "no summary: %s", full.err);
	uint64_t needs = full.cgroup_peak - (uint64_t)full_peak;
	const char *env_half[] = {image, "FLEXPAGE_BUDGET=50%", "FLEXPAGE_STATS=exit", NULL};
	long long budget = (1056540 + 4095) / 4096 * 4096 / 2;
	uint64_t limit = (uint64_t)budget + needs + (1u << 20);
#ifdef __SANITIZE_THREAD__
	/* ThreadSanitizer's own memory (shadow, traces) in the program grows
	 * with the loads a smaller budget makes, so what the full run needed
	 * bounds nothing: under TSan the cgroup has no limit, and the budget
	 * is checked by the library's own count below. */
	limit = PU_NO_LIMIT;
#endif
	run_c(env_half, 1, 1, limit, &half);
	cr_expect_str_eq(half.out, ref.out, "the output differs at a 50%% budget");
	long long faults = pu_summary(half.err, "stories260K.bin", "faults");
	long long demand = pu_summary(half.err, "stories260K.bin", "loads");
	long long peak = pu_summary(half.err, "stories260K.bin", "peak resident");
	long long got_budget = pu_summary(half.err, "stories260K.bin", "of budget");
	cr_expect_eq(got_budget, budget, "%s", half.err);
	cr_expect_gt(faults, 100, "faults served: %lld\n%s", faults, half.err);
	cr_expect_gt(demand, 100, "demand loads: %lld", demand);
	cr_expect_leq(peak, budget + 4 * 65536, "peak resident %lld over the budget %lld", peak, budget);
	if (limit != PU_NO_LIMIT)
		cr_expect_leq(half.cgroup_peak, limit);
	cr_log_info("run.c at 50%%: %lld faults, peak resident %lld of %lld; cgroup peak %llu of limit "
	            "%llu (needs %llu); %.2f s (alone %.2f s)",
	            faults, peak, budget, (unsigned long long)half.cgroup_peak, (unsigned long long)limit,
	            (unsigned long long)needs, half.seconds, ref.seconds);
	pu_result_free(&ref);
	pu_result_free(&full);
	pu_result_free(&half);
}
