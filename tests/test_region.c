/* The pager against the plain bytes it serves: every read through a region
 * equals the data written, whatever the codec, chunk size, budget, policy or
 * thread count; residency stays within the budget; failures poison. */
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

/* ---- the byte matrix ---- */

struct scan_args {
	const uint8_t *base, *ref;
	size_t len;
	uint64_t seed;
	int random, reads;
	atomic_int *bad;
};

static void *scan(void *arg)
{
	struct scan_args *a = arg;
	uint64_t x = a->seed | 1;
	if (!a->random) {
		if (memcmp(a->base, a->ref, a->len))
			atomic_fetch_add(a->bad, 1);
		return NULL;
	}
	for (int i = 0; i < a->reads; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t off = x % a->len, n = 4096;
		if (off + n > a->len)
			n = a->len - off;
		if (memcmp(a->base + off, a->ref + off, n))
			atomic_fetch_add(a->bad, 1);
	}
	return NULL;
}

/* Read region r with `threads` threads at once (thread 0 scans in order,
 * the others at random) and return how many reads differed from ref. */
static int read_concurrently(fp_region *r, const uint8_t *ref, size_t len, int threads, int reads)
{
	pthread_t t[16];
	struct scan_args a[16];
	atomic_int bad = 0;
	const uint8_t *base = fp_tensor(r, "data", NULL);
	for (int i = 0; i < threads; i++) {
		a[i] = (struct scan_args){base, ref, len, 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1),
		                          i > 0, reads, &bad};
		pthread_create(&t[i], NULL, scan, &a[i]);
	}
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	return bad;
}

Test(region, bytes_match_every_codec_chunk_budget_and_thread_count, .timeout = 600)
{
	const size_t len = (16u << 20) + 777;
	uint8_t *ref = ru_data(len, 1);
	const uint32_t chunks[] = {64u << 10, 256u << 10, 1u << 20, 4u << 20};
	const char *dir = ru_tmpdir();
	for (int codec = 0; codec < 2; codec++) {
		for (size_t ci = 0; ci < 4; ci++) {
			char path[512];
			snprintf(path, sizeof path, "%s/m_%d_%zu.img", dir, codec, ci);
			ru_write_image(path, ref, len, chunks[ci], (uint32_t)codec);
			uint64_t logical = ((len + chunks[ci] - 1) / chunks[ci]) * chunks[ci];
			const uint64_t budgets[] = {0, logical / 2, 3ull * chunks[ci]};
			for (int bi = 0; bi < 3; bi++) {
				const int threads[] = {1, 2, 8};
				for (int ti = 0; ti < 3; ti++) {
					struct fp_options o = ru_options(budgets[bi]);
					fp_region *r = fp_open(path, &o);
					cr_assert_not_null(r, "fp_open: %s", fp_last_error());
					int bad = read_concurrently(r, ref, len, threads[ti], 300);
					struct fp_stats s;
					fp_get_stats(r, &s);
					uint64_t budget = budgets[bi] ? budgets[bi] : logical;
					cr_expect_eq(bad, 0, "codec %d chunk %u budget %llu threads %d: %d reads differ",
					             codec, chunks[ci], (unsigned long long)budget, threads[ti], bad);
					cr_expect_leq(s.peak_resident_bytes, budget + 4ull * chunks[ci],
					              "peak resident %llu over budget %llu",
					              (unsigned long long)s.peak_resident_bytes,
					              (unsigned long long)budget);
					cr_expect_eq(s.poisoned, 0);
					fp_close(r);
				}
			}
			unlink(path);
		}
	}
	free(ref);
}

/* ---- stress: 100k faults under a tiny budget, checked by mincore ---- */

struct monitor {
	fp_region *r;
	uint64_t limit;
	atomic_int stop;
	uint64_t worst_mincore, worst_counter;
};

static void *watch(void *arg)
{
	struct monitor *m = arg;
	while (!atomic_load(&m->stop)) {
		uint64_t rc = ru_resident_pages(fp_region_base(m->r), fp_region_size(m->r)) * 4096;
		struct fp_stats s;
		fp_get_stats(m->r, &s);
		if (rc > m->worst_mincore)
			m->worst_mincore = rc;
		if (s.resident_bytes > m->worst_counter)
			m->worst_counter = s.resident_bytes;
		usleep(200);
	}
	return NULL;
}

Test(region, stress_100k_faults_within_budget, .timeout = 600)
{
	const size_t len = 8u << 20;
	const uint32_t chunk = 64u << 10;
	uint8_t *ref = ru_data(len, 2);
	char path[512];
	snprintf(path, sizeof path, "%s/stress.img", ru_tmpdir());
	ru_write_image(path, ref, len, chunk, FP_CODEC_RAW);
	/* Buffered reads: the page cache serves the loads quickly, so that
	 * the protocol (not the disk) is what gets stressed. */
	struct fp_options o = ru_options(6ull * chunk);
	o.flags = FP_OPEN_BUFFERED;
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "fp_open: %s", fp_last_error());
	struct monitor m = {.r = r};
	pthread_t mt;
	pthread_create(&mt, NULL, watch, &m);
	int bad = 0, rounds = 0;
	struct fp_stats s;
	do {
		bad += read_concurrently(r, ref, len, 8, 2000);
		fp_get_stats(r, &s);
	} while (s.faults < 100000 && ++rounds < 200);
	atomic_store(&m.stop, 1);
	pthread_join(mt, NULL);
	cr_expect_eq(bad, 0, "%d reads differ", bad);
	cr_expect_geq(s.faults, 100000, "only %llu faults", (unsigned long long)s.faults);
	uint64_t bound = o.budget + (uint64_t)4 * chunk; /* 4 loaders */
	cr_expect_leq(m.worst_counter, bound, "counter saw %llu resident, bound %llu",
	              (unsigned long long)m.worst_counter, (unsigned long long)bound);
	/* mincore walks the region while chunks come and go, so one walk can
	 * see an evicted chunk and its replacement: allow that one chunk. */
	cr_expect_leq(m.worst_mincore, bound + chunk, "mincore saw %llu resident, bound %llu",
	              (unsigned long long)m.worst_mincore, (unsigned long long)bound);
	cr_expect_leq(s.peak_resident_bytes, bound);
	fp_close(r);
	unlink(path);
	free(ref);
}

/* ---- budget under a real memory cgroup ---- */

Test(region, resident_bytes_hold_under_a_cgroup_limit, .timeout = 300)
{
	char why[256];
	if (!ru_cgroup_available(why, sizeof why))
		cr_skip_test("%s", why);
	const size_t len = 192u << 20;
	const uint32_t chunk = 2u << 20;
	const uint64_t budget = 24u << 20, margin = 96u << 20;
	uint8_t *ref = ru_data(len, 3);
	char path[512];
	snprintf(path, sizeof path, "%s/cgroup.img", ru_tmpdir());
	ru_write_image(path, ref, len, chunk, FP_CODEC_RAW);
	free(ref);
	ru_drop_caches();
	char cg[512];
	cr_assert_eq(ru_cgroup_create(cg, sizeof cg, budget + margin), 0, "cannot create a cgroup");
	pid_t pid = fork();
	if (pid == 0) {
		/* The child holds no copy of the data: it compares with the file. */
		if (ru_cgroup_join(cg))
			_exit(10);
		/* Preserved chunks and staged read-ahead count in the budget too. */
		uint8_t preserve[96] = {0};
		for (int c = 0; c < 96; c += 16)
			preserve[c] = 1;
		struct fp_options o = ru_options(budget);
		o.preserve = preserve;
		fp_region *r = fp_open(path, &o);
		if (!r)
			_exit(11);
		int fd = open(path, O_RDONLY);
		uint8_t *buf = malloc(1 << 20);
		const uint8_t *base = fp_region_base(r);
		uint64_t peak = 0;
		for (int pass = 0; pass < 3; pass++) {
			for (size_t off = 0; off < len; off += 1 << 20) {
				size_t n = len - off < (1u << 20) ? len - off : 1u << 20;
				if (pread(fd, buf, n, 4096 + (off_t)off) != (ssize_t)n)
					_exit(12);
				if (memcmp(base + off, buf, n))
					_exit(13);
				uint64_t rc = ru_resident_pages(base, fp_region_size(r)) * 4096;
				if (rc > peak)
					peak = rc;
			}
		}
		if (peak > budget + 4ull * chunk)
			_exit(14);
		fp_close(r);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	uint64_t max_usage = ru_cgroup_max_usage(cg);
	ru_cgroup_remove(cg);
	unlink(path);
	cr_assert(WIFEXITED(status), "child killed by signal %d (OOM under a %llu MiB limit?)",
	          WIFSIGNALED(status) ? WTERMSIG(status) : 0,
	          (unsigned long long)((budget + margin) >> 20));
	cr_assert_eq(WEXITSTATUS(status), 0, "child failed with code %d (13: wrong bytes, "
	             "14: mincore over budget)", WEXITSTATUS(status));
	cr_expect_leq(max_usage, budget + margin);
}

/* ---- failures: retries, poison and the reporter ---- */

struct hook_plan {
	int fail_chunk;          /* -1: every chunk */
	int mode;                /* 0 EIO, 1 short, 2 flip a byte, 3 sleep */
	int times;               /* failures per chunk before success; 1000: always */
	atomic_int count[4096];
};

static void hook(void *ctx, uint32_t chunk, void *buf, size_t len, long *result)
{
	struct hook_plan *p = ctx;
	if (p->fail_chunk >= 0 && (uint32_t)p->fail_chunk != chunk)
		return;
	if (atomic_fetch_add(&p->count[chunk % 4096], 1) >= p->times)
		return;
	switch (p->mode) {
	case 0: *result = -EIO; break;
	case 1: *result = *result / 2; break;
	case 2: ((uint8_t *)buf)[len / 2] ^= 0x40; break;
	case 3: usleep(20000); break;
	}
}

/* Read the whole region in a child; return its wait status and stderr. */
static int read_in_child(const char *path, struct fp_options *o, const uint8_t *ref, size_t len,
                         char *err, size_t errlen)
{
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 2);
		close(pfd[0]);
		fp_install_fault_reporter();
		fp_region *r = fp_open(path, o);
		if (!r) {
			fprintf(stderr, "open: %s\n", fp_last_error());
			_exit(20);
		}
		const uint8_t *base = fp_tensor(r, "data", NULL);
		_exit(memcmp(base, ref, len) ? 21 : 0);
	}
	close(pfd[1]);
	size_t got = 0;
	ssize_t n;
	while (got + 1 < errlen && (n = read(pfd[0], err + got, errlen - 1 - got)) > 0)
		got += (size_t)n;
	err[got] = 0;
	close(pfd[0]);
	int status;
	waitpid(pid, &status, 0);
	return status;
}

static void expect_sigbus(int status, const char *err, const char *reason)
{
	cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
	          "expected death by SIGBUS, got status 0x%x; stderr: %s", status, err);
	cr_expect(strstr(err, "poisoned data") != NULL, "no reporter message: %s", err);
	cr_expect(strstr(err, "tensor 'data'") != NULL, "tensor not named: %s", err);
	cr_expect(strstr(err, "chunk 3") != NULL, "chunk not named: %s", err);
	cr_expect(strstr(err, reason) != NULL, "reason '%s' missing: %s", reason, err);
}

Test(failure, corrupt_chunk_on_disk_ends_with_sigbus_and_report, .timeout = 120)
{
	const size_t len = 4u << 20;
	uint8_t *ref = ru_data(len, 4);
	char path[512], err[4096];
	snprintf(path, sizeof path, "%s/corrupt.img", ru_tmpdir());
	ru_write_image(path, ref, len, 256u << 10, FP_CODEC_RAW);
	ru_flip_byte(path, 4096 + 3 * (256u << 10) + 1000); /* chunk 3's payload */
	struct fp_options o = ru_options(0);
	int status = read_in_child(path, &o, ref, len, err, sizeof err);
	expect_sigbus(status, err, "checksum mismatch");
	unlink(path);
	free(ref);
}

Test(failure, io_errors_short_reads_and_bad_frames_poison_after_retries, .timeout = 120)
{
	const size_t len = 4u << 20;
	uint8_t *ref = ru_data(len, 5);
	char path[512], err[4096];
	snprintf(path, sizeof path, "%s/fail.img", ru_tmpdir());
	ru_write_image(path, ref, len, 256u << 10, FP_CODEC_ZSTD);
	/* A flipped byte fails the frame or, in a chunk stored raw, the checksum. */
	const char *reasons[] = {"Input/output error", "short read", "chunk 3: "};
	for (int mode = 0; mode < 3; mode++) {
		struct hook_plan *plan = calloc(1, sizeof *plan);
		plan->fail_chunk = 3;
		plan->mode = mode;
		plan->times = 1000;
		struct fp_options o = ru_options(0);
		o.read_hook = hook;
		o.read_hook_ctx = plan;
		int status = read_in_child(path, &o, ref, len, err, sizeof err);
		expect_sigbus(status, err, reasons[mode]);
		free(plan);
	}
	unlink(path);
	free(ref);
}

Test(failure, transient_errors_are_retried_and_slow_reads_complete, .timeout = 120)
{
	const size_t len = 4u << 20;
	uint8_t *ref = ru_data(len, 6);
	char path[512];
	snprintf(path, sizeof path, "%s/retry.img", ru_tmpdir());
	ru_write_image(path, ref, len, 256u << 10, FP_CODEC_RAW);
	for (int mode = 0; mode < 4; mode++) {
		struct hook_plan *plan = calloc(1, sizeof *plan);
		plan->fail_chunk = -1;
		plan->mode = mode;
		plan->times = mode == 3 ? 1 : 2; /* two failures, then the last retry works */
		struct fp_options o = ru_options(1u << 20);
		o.read_hook = hook;
		o.read_hook_ctx = plan;
		fp_region *r = fp_open(path, &o);
		cr_assert_not_null(r, "fp_open: %s", fp_last_error());
		cr_expect_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0, "mode %d: bytes differ", mode);
		struct fp_stats s;
		fp_get_stats(r, &s);
		cr_expect_eq(s.poisoned, 0, "mode %d poisoned %llu", mode, (unsigned long long)s.poisoned);
		if (mode < 3)
			cr_expect_geq(s.retries, 2 * 16, "mode %d: %llu retries", mode,
			              (unsigned long long)s.retries);
		fp_close(r);
		free(plan);
	}
	unlink(path);
	free(ref);
}

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
	const char *const *names = fp_policy_names();
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
		bad += read_concurrently(r, ref, len, 4, 3000);
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
	cr_expect_neq(fp_set_budget(r, 4096), 0, "a budget below two chunks must be refused");
	cr_expect(strstr(fp_last_error(), "minimum working set") != NULL, "%s", fp_last_error());
	cr_expect_neq(fp_set_policy(r, "nonesuch"), 0);
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
	cr_expect(strstr(fp_last_error(), "minimum working set") != NULL, "%s", fp_last_error());
	o = ru_options(0);
	o.policy = "belady-live";
	cr_expect_null(fp_open(path, &o));
	cr_expect(strstr(fp_last_error(), "unknown policy") != NULL, "%s", fp_last_error());
	o = ru_options(0);
	o.loaders = 1000;
	cr_expect_null(fp_open(path, &o));
	cr_expect(strstr(fp_last_error(), "loaders") != NULL, "%s", fp_last_error());
	cr_expect_null(fp_open("/nonexistent/x.img", NULL));
	cr_expect(strstr(fp_last_error(), "/nonexistent/x.img") != NULL, "%s", fp_last_error());
	unlink(path);
	free(ref);
}

/* ---- install paths and layout ---- */

Test(install, full_2m_chunks_move_huge_pages_and_copy_when_asked, .timeout = 120)
{
	const size_t len = 16u << 20;
	uint8_t *ref = ru_data(len, 11);
	char path[512];
	snprintf(path, sizeof path, "%s/huge.img", ru_tmpdir());
	ru_write_image(path, ref, len, 2u << 20, FP_CODEC_RAW);
	for (int nohuge = 0; nohuge < 2; nohuge++) {
		struct fp_options o = ru_options(0);
		o.flags = nohuge ? FP_OPEN_NO_HUGE : 0;
		fp_region *r = fp_open(path, &o);
		cr_assert_not_null(r, "%s", fp_last_error());
		cr_expect_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0);
		struct fp_stats s;
		fp_get_stats(r, &s);
		if (nohuge) {
			cr_expect_eq(s.huge_installs, 0);
			cr_expect_eq(s.small_installs, 8);
		} else if (!ru_kernel_has_move()) {
			fp_close(r);
			cr_skip_test("this kernel has no UFFDIO_MOVE (Linux 6.8+)");
		} else {
			cr_expect_eq(s.huge_installs, 8, "huge installs %llu, copies %llu",
			             (unsigned long long)s.huge_installs,
			             (unsigned long long)s.small_installs);
		}
		fp_close(r);
	}
	unlink(path);
	free(ref);
}

Test(install, tensors_are_packed_on_pages_and_padding_reads_zero, .timeout = 60)
{
	const uint32_t chunk = 64u << 10;
	const size_t sizes[] = {1000, chunk, 3 * chunk + 5, 12345};
	char path[512];
	snprintf(path, sizeof path, "%s/layout.img", ru_tmpdir());
	struct fp_writer_options wo = {.chunk_size = chunk, .codec = FP_CODEC_ZSTD};
	fp_writer *w = fp_writer_create(path, &wo);
	cr_assert_not_null(w, "%s", fp_last_error());
	uint8_t *ref[4];
	for (int i = 0; i < 4; i++) {
		char name[16];
		snprintf(name, sizeof name, "t%d", i);
		ref[i] = ru_data(sizes[i], 20 + (uint64_t)i);
		uint64_t shape[1] = {sizes[i]};
		cr_assert_eq(fp_writer_begin_tensor(w, name, FP_TYPE_U8, 1, shape), 0);
		cr_assert_eq(fp_writer_write(w, ref[i], sizes[i]), 0);
		cr_assert_eq(fp_writer_end_tensor(w), 0);
	}
	cr_assert_eq(fp_writer_finish(w), 0, "%s", fp_last_error());
	struct fp_options o = ru_options(0);
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	const uint8_t *base = fp_region_base(r);
	uint64_t expect_off = 0;
	for (int i = 0; i < 4; i++) {
		char name[16];
		snprintf(name, sizeof name, "t%d", i);
		const struct fp_tensor_desc *d;
		const uint8_t *p = fp_tensor(r, name, &d);
		cr_assert_not_null(p);
		cr_expect_eq(d->offset, expect_off, "%s at %llu", name, (unsigned long long)d->offset);
		cr_expect_eq(p, base + expect_off);
		cr_expect_eq(memcmp(p, ref[i], sizes[i]), 0, "%s bytes differ", name);
		/* Packed: the next tensor starts on the next page; the bytes
		 * between read as zeros. */
		uint64_t end = (expect_off + sizes[i] + 4095) / 4096 * 4096;
		for (uint64_t q = expect_off + sizes[i]; q < end; q += 97)
			cr_expect_eq(base[q], 0, "padding byte at %llu", (unsigned long long)q);
		expect_off = end;
		free(ref[i]);
	}
	cr_expect_eq(fp_region_size(r), (expect_off + chunk - 1) / chunk * chunk);
	for (uint64_t q = expect_off; q < fp_region_size(r); q += 997)
		cr_expect_eq(base[q], 0, "byte %llu after the last tensor", (unsigned long long)q);
	fp_close(r);
	unlink(path);
}

/* ---- unprivileged: UFFD_USER_MODE_ONLY ---- */

Test(privilege, unprivileged_process_pages_with_user_mode_only, .timeout = 60)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to drop to an unprivileged user");
	const size_t len = 2u << 20;
	uint8_t *ref = ru_data(len, 12);
	char path[512];
	snprintf(path, sizeof path, "%s/user.img", ru_tmpdir());
	ru_write_image(path, ref, len, 256u << 10, FP_CODEC_ZSTD);
	pid_t pid = fork();
	if (pid == 0) {
		if (setgid(65534) || setuid(65534))
			_exit(30);
		struct fp_options o = ru_options(0);
		fp_region *r = fp_open(path, &o);
		if (!r) {
			fprintf(stderr, "unprivileged open: %s\n", fp_last_error());
			_exit(31);
		}
		int rc = memcmp(fp_tensor(r, "data", NULL), ref, len) ? 32 : 0;
		fp_close(r);
		_exit(rc);
	}
	int status;
	waitpid(pid, &status, 0);
	unlink(path);
	free(ref);
	cr_assert(WIFEXITED(status), "killed by signal %d", WTERMSIG(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "exit %d (31: open failed, 32: wrong bytes)",
	             WEXITSTATUS(status));
}

/* ---- the event trace ---- */

Test(trace, records_every_fault_load_and_eviction_and_survives_a_round_trip, .timeout = 120)
{
	const size_t len = 4u << 20;
	const uint32_t chunk = 256u << 10;
	uint8_t *ref = ru_data(len, 13);
	char path[512], tpath[512];
	snprintf(path, sizeof path, "%s/traced.img", ru_tmpdir());
	snprintf(tpath, sizeof tpath, "%s/traced.trace", ru_tmpdir());
	ru_write_image(path, ref, len, chunk, FP_CODEC_ZSTD);
	struct fp_options o = ru_options(4ull * chunk);
	o.trace_path = tpath;
	o.readahead = 0;
	o.loaders = 1;
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	for (int pass = 0; pass < 2; pass++) {
		fp_trace_mark(r, FP_MARK_TOKEN, (uint64_t)pass);
		cr_assert_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0);
	}
	struct fp_stats s;
	fp_get_stats(r, &s);
	fp_close(r);

	fp_trace *t = fp_trace_open(tpath);
	cr_assert_not_null(t, "%s", fp_last_error());
	const struct fp_trace_header *h = fp_trace_header(t);
	cr_expect_eq(h->chunk_size, chunk);
	cr_expect_eq(h->n_chunks, len / chunk);
	cr_expect_eq(h->budget, 4ull * chunk);
	cr_expect_str_eq(h->policy, "fifo");
	uint64_t count[FP_EV_TYPES] = {0}, prev = 0;
	int sorted = 1;
	for (uint64_t i = 0; i < fp_trace_count(t); i++) {
		const struct fp_trace_event *e = &fp_trace_events(t)[i];
		count[e->type]++;
		sorted &= e->t_ns >= prev;
		prev = e->t_ns;
		if (e->type == FP_EV_FAULT)
			cr_expect_eq(e->b / chunk, e->chunk);
	}
	cr_expect(sorted);
	cr_expect_eq(count[FP_EV_FAULT], s.faults);
	cr_expect_eq(count[FP_EV_LOAD], s.demand_loads + s.prefetch_loads);
	cr_expect_eq(count[FP_EV_EVICT], s.evictions);
	cr_expect_eq(count[FP_EV_MARK], 2);
	cr_expect_eq(count[FP_EV_LOAD], 2 * len / chunk, "two passes over 16 chunks in a 4-chunk budget");
	fp_trace_close(t);

	/* Truncated and corrupt traces are refused with a clear error. */
	struct stat st;
	cr_assert_eq(stat(tpath, &st), 0);
	cr_assert_eq(truncate(tpath, st.st_size - 5), 0);
	cr_expect_null(fp_trace_open(tpath));
	cr_expect(strstr(fp_last_error(), "truncated") != NULL, "%s", fp_last_error());
	cr_assert_eq(truncate(tpath, st.st_size - 32), 0);
	cr_assert_not_null((t = fp_trace_open(tpath)), "%s", fp_last_error());
	fp_trace_close(t);
	ru_flip_byte(tpath, sizeof(struct fp_trace_header) + 8); /* first record's type */
	cr_expect_null(fp_trace_open(tpath));
	cr_expect(strstr(fp_last_error(), "corrupt trace") != NULL, "%s", fp_last_error());
	ru_flip_byte(tpath, 0);
	cr_expect_null(fp_trace_open(tpath));
	cr_expect(strstr(fp_last_error(), "bad magic") != NULL, "%s", fp_last_error());
	cr_assert_eq(truncate(tpath, 100), 0);
	cr_expect_null(fp_trace_open(tpath));
	cr_expect(strstr(fp_last_error(), "too short") != NULL, "%s", fp_last_error());
	unlink(tpath);
	unlink(path);
	free(ref);
}
