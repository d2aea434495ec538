/* The pager against the plain bytes it serves: every read through a region
 * equals the data written, whatever the codec, chunk size, budget, policy or
 * thread count, under stress, and resident bytes stay within the budget,
 * by the pager's count, by mincore(2) and under a real memory cgroup. */
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
					int bad = ru_read_concurrently(r, ref, len, threads[ti], 300);
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
		bad += ru_read_concurrently(r, ref, len, 8, 2000);
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

#define CG_LEN (192u << 20)
#define CG_CHUNK (2u << 20)
#define CG_BUDGET (24u << 20)

/* ThreadSanitizer keeps shadow memory for every byte a thread reads, and
 * never frees it while the mapping lives: the child's reads of the whole
 * region would charge about twice its size to the cgroup, which is the
 * sanitizer's cost, not the pager's.  They are not the code under check
 * (the pager's threads are), so under TSan the child's own reads are not
 * recorded. */
#ifdef __SANITIZE_THREAD__
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define CHILD_READS_BEGIN() __tsan_ignore_thread_begin()
#define CHILD_READS_END() __tsan_ignore_thread_end()
#else
#define CHILD_READS_BEGIN() ((void)0)
#define CHILD_READS_END() ((void)0)
#endif

/* In the cgroup (argv: cgroup, image): every byte read through the region
 * equals the file's, and mincore stays within the budget.  It holds no
 * copy of the data: it compares with the file. */
RU_CHILD(cgroup_child)
{
	if (argc != 2 || ru_cgroup_join(argv[0]))
		return 10;
	const char *path = argv[1];
	/* Preserved chunks and staged read-ahead count in the budget too. */
	uint8_t preserve[96] = {0};
	for (int c = 0; c < 96; c += 16)
		preserve[c] = 1;
	struct fp_options o = ru_options(CG_BUDGET);
	o.preserve = preserve;
	fp_region *r = fp_open(path, &o);
	if (!r)
		return 11;
	int fd = open(path, O_RDONLY);
	uint8_t *buf = malloc(1 << 20);
	const uint8_t *base = fp_region_base(r);
	uint64_t peak = 0;
	CHILD_READS_BEGIN();
	for (int pass = 0; pass < 3; pass++) {
		for (size_t off = 0; off < CG_LEN; off += 1 << 20) {
			size_t n = CG_LEN - off < (1u << 20) ? CG_LEN - off : 1u << 20;
			if (pread(fd, buf, n, 4096 + (off_t)off) != (ssize_t)n)
				return 12;
			if (memcmp(base + off, buf, n))
				return 13;
			uint64_t rc = ru_resident_pages(base, fp_region_size(r)) * 4096;
			if (rc > peak)
				peak = rc;
		}
	}
	CHILD_READS_END();
	if (peak > CG_BUDGET + 4ull * CG_CHUNK)
		return 14;
	fp_close(r);
	free(buf);
	close(fd);
	return 0;
}

Test(region, resident_bytes_hold_under_a_cgroup_limit, .timeout = 300)
{
	char why[256];
	if (!ru_cgroup_available(why, sizeof why))
		cr_skip_test("%s", why);
	const size_t len = CG_LEN;
	const uint64_t budget = CG_BUDGET, margin = 96u << 20;
	uint8_t *ref = ru_data(len, 3);
	char path[512];
	snprintf(path, sizeof path, "%s/cgroup.img", ru_tmpdir());
	ru_write_image(path, ref, len, CG_CHUNK, FP_CODEC_RAW);
	free(ref);
	ru_drop_caches();
	char cg[512];
	cr_assert_eq(ru_cgroup_create(cg, sizeof cg, budget + margin), 0, "cannot create a cgroup");
	int status = ru_run_child("cgroup_child", (const char *const[]){cg, path, NULL});
	cr_assert_neq(status, -1, "cannot start the child: %s", strerror(errno));
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
