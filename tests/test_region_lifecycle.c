/* Regions opened and closed, many at once, and their settings changed
 * while threads read. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <flexpage/flexpage.h>

#include "region_util.h"

/* ---- lifecycle ---- */

Test(lifecycle, open_close_1000_times_leaves_no_thread_or_descriptor, .timeout = 300)
{
	const size_t len = 1u << 20;
	uint8_t *ref = ru_data(len, 7);
	char path[512];
	snprintf(path, sizeof path, "%s/cycle.img", ru_tmpdir());
	ru_write_image(path, ref, len, 64u << 10, FP_CODEC_ZSTD);
	int threads0 = ru_count_dir("/proc/self/task"), fds0 = ru_count_dir("/proc/self/fd");
	for (int i = 0; i < 1000; i++) {
		struct fp_options o = ru_options(0);
		o.loaders = 1 + i % 3;
		fp_region *r = fp_open(path, &o);
		cr_assert_not_null(r, "cycle %d: %s", i, fp_last_error());
		size_t off = (size_t)(i * 7919) % len;
		cr_assert_eq(((const uint8_t *)fp_tensor(r, "data", NULL))[off], ref[off], "cycle %d", i);
		fp_close(r);
	}
	cr_expect_eq(ru_count_dir("/proc/self/task"), threads0, "threads left behind");
	cr_expect_eq(ru_count_dir("/proc/self/fd"), fds0, "descriptors left behind");
	unlink(path);
	free(ref);
}

struct region_reader {
	fp_region *r;
	const uint8_t *ref;
	size_t len;
	int bad;
};

static void *read_region(void *arg)
{
	struct region_reader *a = arg;
	for (int pass = 0; pass < 3; pass++)
		a->bad += memcmp(fp_tensor(a->r, "data", NULL), a->ref, a->len) != 0;
	return NULL;
}

Test(lifecycle, several_regions_served_at_once, .timeout = 120)
{
	enum { N = 3 };
	const size_t len[N] = {3u << 20, (5u << 20) + 99, 7u << 20};
	uint8_t *ref[N];
	char path[N][512];
	fp_region *r[N];
	pthread_t t[N];
	struct region_reader a[N];
	for (int i = 0; i < N; i++) {
		ref[i] = ru_data(len[i], 10 + (uint64_t)i);
		snprintf(path[i], sizeof path[i], "%s/multi%d.img", ru_tmpdir(), i);
		ru_write_image(path[i], ref[i], len[i], (64u << 10) << (2 * i), (uint32_t)(i & 1));
		struct fp_options o = ru_options(len[i] / 3);
		r[i] = fp_open(path[i], &o);
		cr_assert_not_null(r[i], "%s", fp_last_error());
		a[i] = (struct region_reader){r[i], ref[i], len[i], 0};
		pthread_create(&t[i], NULL, read_region, &a[i]);
	}
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	fp_close(r[1]); /* close out of order: the others keep working */
	for (int i = 0; i < N; i += 2) {
		a[i].bad += memcmp(fp_tensor(r[i], "data", NULL), ref[i], len[i]) != 0;
		cr_expect_eq(a[i].bad, 0, "region %d read wrong bytes", i);
		fp_close(r[i]);
	}
	cr_expect_eq(a[1].bad, 0);
	for (int i = 0; i < N; i++) {
		unlink(path[i]);
		free(ref[i]);
	}
}

/* ---- settings while the loop runs ---- */

struct flipper {
	fp_region *r;
	atomic_int stop;
	int errors;
};

static void *flip_settings(void *arg)
{
	struct flipper *f = arg;
	const char *names[32];
	cr_assert_geq(fp_policy_names(names, 32), 2);
	uint64_t min = fp_min_budget(f->r);
	for (int i = 0; !atomic_load(&f->stop); i++) {
		if (fp_set_policy(f->r, names[i % 2]))
			f->errors++;
		if (fp_set_budget(f->r, min * (uint64_t)(1 + i % 5)))
			f->errors++;
		usleep(500);
	}
	return NULL;
}

Test(settings, budget_and_policy_change_while_threads_read, .timeout = 300)
{
	const size_t len = 6u << 20;
	uint8_t *ref = ru_data(len, 8);
	char path[512];
	snprintf(path, sizeof path, "%s/live.img", ru_tmpdir());
	ru_write_image(path, ref, len, 128u << 10, FP_CODEC_RAW);
	struct fp_options o = ru_options(0);
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	struct flipper f = {.r = r};
	pthread_t ft;
	pthread_create(&ft, NULL, flip_settings, &f);
	int bad = 0;
	for (int round = 0; round < 2; round++)
		bad += ru_read_concurrently(r, ref, len, 4, 3000);
	atomic_store(&f.stop, 1);
	pthread_join(ft, NULL);
	cr_expect_eq(bad, 0);
	cr_expect_eq(f.errors, 0);

	/* A smaller budget evicts down to it at once. */
	cr_assert_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0);
	cr_assert_eq(fp_set_budget(r, len), 0);
	cr_assert_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0);
	uint64_t small = 3 * (128u << 10);
	cr_assert_eq(fp_set_budget(r, small), 0);
	struct fp_stats s;
	fp_get_stats(r, &s);
	cr_expect_leq(s.resident_bytes, small);
	cr_expect_leq(ru_resident_pages(fp_region_base(r), fp_region_size(r)) * 4096, small);
	cr_expect_eq(s.budget, small);
	cr_expect_eq(fp_set_budget(r, 4096), -EINVAL, "a budget below two chunks must be refused");
	cr_expect(strstr(fp_last_error(), "minimum working set") != NULL, "%s", fp_last_error());
	cr_expect_eq(fp_set_policy(r, "nonesuch"), -ENOENT);
	cr_expect(strstr(fp_last_error(), "unknown policy 'nonesuch'") != NULL, "%s", fp_last_error());
	cr_assert_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0);
	fp_close(r);
	unlink(path);
	free(ref);
}

Test(settings, open_rejects_bad_options, .timeout = 60)
{
	const size_t len = 1u << 20;
	uint8_t *ref = ru_data(len, 9);
	char path[512];
	snprintf(path, sizeof path, "%s/opts.img", ru_tmpdir());
	ru_write_image(path, ref, len, 256u << 10, FP_CODEC_RAW);
	struct fp_options o = ru_options(256u << 10);
	cr_expect_null(fp_open(path, &o));
	cr_expect_eq(errno, EINVAL);
	cr_expect(strstr(fp_last_error(), "minimum working set") != NULL, "%s", fp_last_error());
	o = ru_options(0);
	o.policy = "belady-live";
	cr_expect_null(fp_open(path, &o));
	cr_expect_eq(errno, ENOENT);
	cr_expect(strstr(fp_last_error(), "unknown policy") != NULL, "%s", fp_last_error());
	o = ru_options(0);
	o.loaders = 1000;
	cr_expect_null(fp_open(path, &o));
	cr_expect_eq(errno, EINVAL);
	cr_expect(strstr(fp_last_error(), "loaders") != NULL, "%s", fp_last_error());
	o = ru_options(0);
	o.flags = 1u << 20;
	cr_expect_null(fp_open(path, &o));
	cr_expect_eq(errno, EINVAL);
	cr_expect(strstr(fp_last_error(), "flags") != NULL, "%s", fp_last_error());
	cr_expect_null(fp_open("/nonexistent/x.img", NULL));
	cr_expect_eq(errno, ENOENT);
	cr_expect(strstr(fp_last_error(), "/nonexistent/x.img") != NULL, "%s", fp_last_error());
	unlink(path);
	free(ref);
}

/* ---- fp_quiesce ---- */

static void slow_read(void *ctx, uint32_t chunk, void *buf, size_t len, long *result)
{
	(void)ctx, (void)chunk, (void)buf, (void)len, (void)result;
	usleep(20000);
}

/* After one fault, read-ahead has loads in flight (20 ms each, two
 * loaders); fp_quiesce returns once every one of them is installed and
 * counted, and nothing changes after it. */
Test(lifecycle, quiesce_waits_for_the_loads_in_flight, .timeout = 60)
{
	const uint32_t chunk = 64u << 10;
	const size_t len = 16u * chunk;
	uint8_t *ref = ru_data(len, 12);
	char path[512];
	snprintf(path, sizeof path, "%s/quiesce.img", ru_tmpdir());
	ru_write_image(path, ref, len, chunk, FP_CODEC_RAW);
	struct fp_options o = ru_options(0);
	o.loaders = 2;
	o.readahead = 8;
	struct fp_hooks hooks = {.read = slow_read};
	o.hooks = &hooks;
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	const uint8_t *base = fp_region_base(r);
	cr_assert_eq(memcmp(base, ref, 100), 0); /* one fault: chunk 0, and 8 read ahead */
	struct fp_stats before, s, later;
	fp_get_stats(r, &before);
	fp_quiesce(r);
	fp_get_stats(r, &s);
	cr_expect_lt(before.demand_loads + before.prefetch_loads, 9,
	             "the loads were still in flight before fp_quiesce (else this proves nothing)");
	cr_expect_eq(s.demand_loads + s.prefetch_loads, 9, "%llu + %llu loads after fp_quiesce",
	             (unsigned long long)s.demand_loads, (unsigned long long)s.prefetch_loads);
	cr_expect_eq(ru_resident_pages(base, len), 9ull * chunk / 4096, "resident pages by mincore");
	usleep(100000); /* not a poll: nothing may happen now */
	fp_get_stats(r, &later);
	cr_expect_eq(later.prefetch_loads, s.prefetch_loads);
	cr_expect_eq(later.faults, s.faults);
	fp_quiesce(r); /* an idle region: returns at once */
	fp_close(r);
	unlink(path);
	free(ref);
}
