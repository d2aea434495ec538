/* Real llama.cpp (the prebuilt libllama of @node-llama-cpp/linux-x64, run
 * by tests/preload/llama_driver.c) under libflexpage-preload.so: the greedy
 * token ids at budgets of 100, 50 and 25 % must equal the ids without the
 * library, each run in a memory cgroup of its budget plus what the engine
 * needs, on stories260K.gguf (64 KiB chunks, FLEXPAGE_CHUNK, so that its
 * 1.1 MB feel the budgets) and on a TinyLlama-layout q8_0 GGUF of 4 layers
 * (2 MiB chunks).  Two models in one process (a draft and a target) are
 * each served and give each one's ids.  A model file truncated while the
 * engine runs must end in SIGBUS with the reporter naming the tensor,
 * never a hang or wrong ids. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_util.h"
#include "region_util.h"

static void driver(const char *model, const char *n, const char *const *env, int preload,
                   int cgroup, uint64_t limit, struct pu_result *r)
{
	const char *argv[] = {pu_peer("LLAMA_DRIVER"), model, n, "--threads", "2",
	                      "--backends", pu_peer("LLAMA_BACKENDS"), NULL};
	struct pu_opts o = {.env = env, .preload = preload, .cgroup = cgroup, .limit = limit,
	                    .timeout_s = 600};
	pu_run(argv, &o, r);
	cr_assert(!r->timed_out, "the driver hung: %s", r->err);
	cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
	          "the driver failed (status 0x%x; killed by 9: over its cgroup's limit of %llu)\n%s",
	          r->status, (unsigned long long)limit, r->err);
}

static uint64_t pages_of(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	return ((uint64_t)st.st_size + 4095) / 4096 * 4096;
}

/* Ids without the library, then with it at 100 % in a cgroup without a
 * limit (what the engine needs beside the model: the cgroup's peak less
 * the model's resident bytes), then at each budget in a cgroup of that. */
static void ids_at_every_budget(const char *model, const char *name, const char *chunk_env,
                                uint64_t chunk, const char *n)
{
	struct pu_result ref, r;
	driver(model, n, NULL, 0, 0, 0, &ref);
	cr_assert_gt(strlen(ref.out), 10, "no ids: %s", ref.err);
	const char *full_env[] = {"FLEXPAGE_BUDGET=100%", "FLEXPAGE_STATS=exit", chunk_env, NULL};
	driver(model, n, full_env, 1, 1, PU_NO_LIMIT, &r);
	cr_expect_str_eq(r.out, ref.out, "ids at 100%%");
	long long full_peak = pu_summary(r.err, name, "peak resident");
	cr_assert_gt(full_peak, 0, "no summary: %s", r.err);
	uint64_t needs = r.cgroup_peak - (uint64_t)full_peak;
	cr_log_info("%s: the engine and the library need %.1f MiB beside the model (%.1f MiB)", name,
	            (double)needs / (1 << 20), (double)full_peak / (1 << 20));
	pu_result_free(&r);
	const int pct[] = {100, 50, 25};
	for (int i = 0; i < 3; i++) {
		char budget_env[64];
		snprintf(budget_env, sizeof budget_env, "FLEXPAGE_BUDGET=%d%%", pct[i]);
		const char *env[] = {budget_env, "FLEXPAGE_STATS=exit", chunk_env, NULL};
		uint64_t budget = pages_of(model) * (uint64_t)pct[i] / 100;
		/* Slack: a chunk per loader over the budget (the pager's bound) and
		 * a few MiB for what a run allocates differently. */
		uint64_t limit = budget + needs + 4 * chunk + (4u << 20);
		driver(model, n, env, 1, 1, limit, &r);
		cr_expect_str_eq(r.out, ref.out, "greedy ids differ at %d%%", pct[i]);
		long long faults = pu_summary(r.err, name, "faults");
		long long peak = pu_summary(r.err, name, "peak resident");
		long long got = pu_summary(r.err, name, "of budget");
		cr_expect_gt(got, 0, "no summary at %d%%: %s", pct[i], r.err);
		cr_expect_leq(peak, got + 4 * (long long)chunk, "%d%%: peak resident %lld over budget %lld",
		              pct[i], peak, got);
		if (pct[i] < 100)
			cr_expect_gt(faults, 0, "%d%%: no faults served", pct[i]);
		cr_log_info("%s at %d%%: %lld faults, peak resident %.1f of %.1f MiB, cgroup peak %.1f of "
		            "%.1f MiB, %.2f s (alone %.2f s)", name, pct[i], faults, (double)peak / (1 << 20),
		            (double)got / (1 << 20), (double)r.cgroup_peak / (1 << 20),
		            (double)limit / (1 << 20), r.seconds, ref.seconds);
		pu_result_free(&r);
	}
	pu_result_free(&ref);
}

Test(llama, greedy_ids_equal_at_every_budget_on_stories260K, .timeout = 900)
{
	ids_at_every_budget(pu_peer("STORIES_GGUF"), "stories260K.gguf", "FLEXPAGE_CHUNK=64K", 64 << 10,
	                    "32");
}

Test(llama, greedy_ids_equal_at_every_budget_on_a_tinyllama_layout_q8_0, .timeout = 900)
{
	ids_at_every_budget(pu_peer("TINYLLAMA_GGUF"), "tinyllama-layout-4l-q8_0-seed2.gguf", NULL, 2 << 20,
	                    "16");
}

Test(llama, two_models_in_one_process_give_each_ones_ids, .timeout = 900)
{
	/* Both loaded before either decodes, then a token of each in turn, as
	 * speculative decoding reads a draft and a target model: each has its
	 * region and budget, and each one's ids are its ids alone. */
	const char *tiny = pu_peer("TINYLLAMA_GGUF"), *stories = pu_peer("STORIES_GGUF");
	struct pu_result a, b, both;
	driver(tiny, "12", NULL, 0, 0, 0, &a);
	driver(stories, "12", NULL, 0, 0, 0, &b);
	cr_assert(strlen(a.out) > 10 && strlen(b.out) > 10, "no ids: %s%s", a.err, b.err);
	char want[16384];
	snprintf(want, sizeof want, "%s%s", a.out, b.out);
	const char *env[] = {"FLEXPAGE_BUDGET=50%", "FLEXPAGE_CHUNK=64K", "FLEXPAGE_STATS=exit", NULL};
	const char *argv[] = {pu_peer("LLAMA_DRIVER"), tiny, "12", "--threads", "2", "--backends",
	                      pu_peer("LLAMA_BACKENDS"), "--also", stories, NULL};
	struct pu_opts o = {.env = env, .preload = 1, .timeout_s = 600};
	pu_run(argv, &o, &both);
	cr_assert(!both.timed_out && WIFEXITED(both.status) && WEXITSTATUS(both.status) == 0,
	          "the driver failed (status 0x%x): %s", both.status, both.err);
	cr_expect_str_eq(both.out, want, "two models in one process give other ids");
	const char *names[] = {"tinyllama-layout-4l-q8_0-seed2.gguf", "stories260K.gguf"};
	for (int i = 0; i < 2; i++) {
		long long faults = pu_summary(both.err, names[i], "faults");
		long long peak = pu_summary(both.err, names[i], "peak resident");
		long long budget = pu_summary(both.err, names[i], "of budget");
		cr_expect_gt(faults, 0, "%s not served: %s", names[i], both.err);
		cr_expect_gt(budget, 0, "%s: no budget: %s", names[i], both.err);
		cr_expect_leq(peak, budget + 4 * 65536, "%s: peak resident %lld over budget %lld", names[i], peak,
		              budget);
	}
	cr_expect_eq(pu_count(both.err, ": unmapped: "), 2, "%s", both.err);
	pu_result_free(&a);
	pu_result_free(&b);
	pu_result_free(&both);
}

/* ---- a model truncated under the engine ---- */

struct cut {
	const char *path;
	off_t to;
	int done;
};

/* Once the engine has printed three ids, the file loses its second half. */
static void cut_after_three_ids(const char *out, size_t len, void *ctx)
{
	struct cut *c = ctx;
	int spaces = 0;
	for (size_t i = 0; i < len; i++)
		spaces += out[i] == ' ';
	if (!c->done && spaces >= 3) {
		c->done = 1;
		cr_assert_eq(truncate(c->path, c->to), 0);
	}
}

Test(llama, a_model_truncated_while_the_engine_runs_ends_in_sigbus_naming_the_tensor, .timeout = 300)
{
	const char *model = pu_peer("STORIES_GGUF");
	char copy[512];
	snprintf(copy, sizeof copy, "%s/truncated.gguf", ru_tmpdir());
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "cp %s %s", model, copy);
	cr_assert_eq(system(cmd), 0);
	struct pu_result ref, r;
	driver(copy, "200", NULL, 0, 0, 0, &ref);
	struct cut c = {.path = copy, .to = 600000};
	const char *env[] = {"FLEXPAGE_BUDGET=25%", "FLEXPAGE_CHUNK=64K", NULL};
	const char *argv[] = {pu_peer("LLAMA_DRIVER"), copy, "200", "--threads", "2",
	                      "--backends", pu_peer("LLAMA_BACKENDS"), NULL};
	struct pu_opts o = {.env = env, .preload = 1, .timeout_s = 120, .on_out = cut_after_three_ids,
	                    .ctx = &c};
	pu_run(argv, &o, &r);
	cr_expect(!r.timed_out, "the engine hung on the truncated file");
	cr_expect(c.done, "the engine printed fewer than three ids: %s", r.out);
	cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGBUS,
	          "expected death by SIGBUS, got status 0x%x\n%s", r.status, r.err);
	cr_expect(strstr(r.err, "access to poisoned data") && strstr(r.err, "truncated.gguf"),
	          "no reporter message: %s", r.err);
	const char *t = strstr(r.err, "tensor '");
	cr_expect(t && strncmp(t, "tensor '(padding)'", 18), "the tensor is not named: %s", r.err);
	cr_expect(strstr(r.err, "short read"), "the reason is not said: %s", r.err);
	/* What it printed before is what it prints on the whole file. */
	cr_expect(!strncmp(ref.out, r.out, strlen(r.out)), "wrong ids before the end:\n%s\nexpected a "
	          "prefix of\n%s", r.out, ref.out);
	pu_result_free(&ref);
	pu_result_free(&r);
	unlink(copy);
}
