/* Pages given back with fp_region_unmap: the range is really unmapped (the
 * kernel places a new mapping there), the pager never touches it again
 * (what the program maps there keeps its bytes through loads, evictions,
 * locking, poisoning and close), and the rest of the region still reads
 * the image's bytes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <flexpage/flexpage_experimental.h>

#include "region_util.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* Map len bytes of anonymous memory exactly at p, filled with `fill`: only
 * possible if nothing is mapped there. */
static uint8_t *claim(void *p, size_t len, int fill)
{
	uint8_t *q = mmap(p, len, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (q == MAP_FAILED)
		return NULL;
	cr_assert_eq(q, p, "the kernel placed the mapping elsewhere");
	memset(q, fill, len);
	return q;
}

static int all_bytes(const uint8_t *p, size_t len, int v)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

/* Bytes of [lo, hi) of the region that differ from ref. */
static size_t differ(const uint8_t *base, const uint8_t *ref, size_t lo, size_t hi)
{
	size_t bad = 0;
	for (size_t i = lo; i < hi; i += 4096) {
		size_t n = hi - i < 4096 ? hi - i : 4096;
		bad += memcmp(base + i, ref + i, n) != 0;
	}
	return bad;
}

static fp_region *open_image(const char *name, size_t len, uint32_t chunk, uint64_t budget,
                             uint64_t seed, uint8_t **ref, char *path, size_t pathlen,
                             const uint8_t *preserve)
{
	*ref = ru_data(len, seed);
	snprintf(path, pathlen, "%s/%s", ru_tmpdir(), name);
	ru_write_image(path, *ref, len, chunk, FP_CODEC_RAW);
	struct fp_options o = ru_options(budget);
	o.preserve = preserve;
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "fp_open: %s", fp_last_error());
	cr_assert_eq(fp_tensor(r, "data", NULL), fp_region_base(r));
	return r;
}

Test(unmap, head_pages_go_and_the_rest_streams_under_a_budget, .timeout = 120)
{
	/* 2 MiB chunks: installed as huge pages, evicted by moves, until the
	 * head of chunk 0 goes. */
	const size_t len = 24u << 20, head = 12288;
	const uint32_t chunk = 2u << 20;
	uint8_t *ref;
	char path[512];
	fp_region *r = open_image("unmap_head.img", len, chunk, 3ull * chunk, 11, &ref, path,
	                          sizeof path, NULL);
	uint8_t *base = (uint8_t *)fp_region_base(r);
	cr_expect_eq(differ(base, ref, 0, len), 0, "first pass");
	cr_assert_eq(fp_region_unmap(r, 0, head), 0, "%s", fp_last_error());
	uint8_t *mine = claim(base, head, 0xab);
	cr_assert_not_null(mine, "the given-back pages are still mapped: %s", strerror(errno));
	for (int pass = 0; pass < 3; pass++)
		cr_expect_eq(differ(base, ref, head, len), 0, "pass %d after the head went", pass);
	cr_expect(all_bytes(mine, head, 0xab), "the pager touched memory mapped over its head");
	struct fp_stats s;
	fp_get_stats(r, &s);
	cr_expect_gt(s.evictions, 20, "the budget did not make it evict (%llu)",
	             (unsigned long long)s.evictions);
	fp_close(r);
	cr_expect(all_bytes(mine, head, 0xab), "fp_close unmapped memory that is not its own");
	munmap(mine, head);
	unlink(path);
	free(ref);
}

Test(unmap, holes_tail_and_preserved_chunks_in_small_chunks, .timeout = 120)
{
	const size_t len = 4u << 20;
	const uint32_t chunk = 64u << 10;
	uint8_t preserve[64] = {0};
	preserve[5] = preserve[6] = 1;
	uint8_t *ref;
	char path[512];
	fp_region *r = open_image("unmap_holes.img", len, chunk, 12ull * chunk, 12, &ref, path,
	                          sizeof path, preserve);
	uint8_t *base = (uint8_t *)fp_region_base(r);
	/* A hole inside a chunk not yet loaded, one across a chunk boundary
	 * (one of them preserved), and the tail. */
	const size_t hole1 = 2 * chunk + 8192, hole2 = 6 * chunk - 4096, tail = len - 3 * chunk;
	cr_assert_eq(fp_region_unmap(r, hole1, 4096), 0, "%s", fp_last_error());
	cr_assert_eq(fp_region_unmap(r, hole2, 3 * 4096), 0, "%s", fp_last_error());
	cr_assert_eq(fp_region_unmap(r, tail, 3 * chunk), 0, "%s", fp_last_error());
	uint8_t *m1 = claim(base + hole1, 4096, 1), *m2 = claim(base + hole2, 3 * 4096, 2),
	        *m3 = claim(base + tail, 3 * chunk, 3);
	cr_assert(m1 && m2 && m3, "a hole is still mapped");
	for (int pass = 0; pass < 3; pass++) {
		cr_expect_eq(differ(base, ref, 0, hole1), 0, "pass %d", pass);
		cr_expect_eq(differ(base, ref, hole1 + 4096, hole2), 0, "pass %d", pass);
		cr_expect_eq(differ(base, ref, hole2 + 3 * 4096, tail), 0, "pass %d", pass);
	}
	cr_expect(all_bytes(m1, 4096, 1) && all_bytes(m2, 3 * 4096, 2) && all_bytes(m3, 3 * chunk, 3),
	          "memory mapped over a hole changed");
	/* Giving back pages already gone unmaps nothing of what is there now. */
	cr_expect_eq(fp_region_unmap(r, tail, 3 * chunk), 0);
	cr_expect(all_bytes(m3, 3 * chunk, 3), "a second give-back unmapped someone else's pages");
	cr_expect_eq(fp_region_unmap(r, 100, 4096), -EINVAL);
	cr_expect_eq(errno, EINVAL);
	cr_expect_eq(fp_region_unmap(r, 0, fp_region_size(r) + 4096), -EINVAL);
	cr_expect_eq(fp_region_unmap(r, 0, 0), -EINVAL);
	fp_close(r);
	cr_expect(all_bytes(m1, 4096, 1) && all_bytes(m2, 3 * 4096, 2) && all_bytes(m3, 3 * chunk, 3),
	          "fp_close touched memory mapped over a hole");
	munmap(m1, 4096);
	munmap(m2, 3 * 4096);
	munmap(m3, 3 * chunk);
	unlink(path);
	free(ref);
}

struct reader {
	const uint8_t *base, *ref;
	size_t len;
	atomic_int stop, bad, passes;
};

static void *read_front(void *arg)
{
	struct reader *a = arg;
	while (!atomic_load(&a->stop)) {
		if (differ(a->base, a->ref, 0, a->len))
			atomic_fetch_add(&a->bad, 1);
		atomic_fetch_add(&a->passes, 1);
	}
	return NULL;
}

Test(unmap, the_back_goes_piece_by_piece_while_a_thread_reads_the_front, .timeout = 120)
{
	const size_t len = 16u << 20, front = 6u << 20;
	const uint32_t chunk = 256u << 10;
	uint8_t *ref;
	char path[512];
	fp_region *r = open_image("unmap_race.img", len, chunk, 8ull * chunk, 13, &ref, path,
	                          sizeof path, NULL);
	uint8_t *base = (uint8_t *)fp_region_base(r);
	struct reader a = {.base = base, .ref = ref, .len = front};
	pthread_t t;
	pthread_create(&t, NULL, read_front, &a);
	/* Each piece: read it (loads, evictions), give it back, and map
	 * memory of our own there at once. */
	int unclaimed = 0;
	for (size_t off = front; off < len; off += 20480) {
		size_t n = len - off < 20480 ? len - off : 20480;
		cr_expect_eq(memcmp(base + off, ref + off, n), 0, "at %zu before it went", off);
		cr_assert_eq(fp_region_unmap(r, off, n), 0, "%s", fp_last_error());
		unclaimed += !claim(base + off, n, (int)(off / 20480) & 0xff);
	}
	atomic_store(&a.stop, 1);
	pthread_join(t, NULL);
	cr_expect_eq(atomic_load(&a.bad), 0, "the front read wrong bytes");
	cr_expect_gt(atomic_load(&a.passes), 0);
	cr_expect_eq(unclaimed, 0, "%d pieces were still mapped after they went", unclaimed);
	fp_close(r);
	for (size_t off = front; off < len; off += 20480) {
		size_t n = len - off < 20480 ? len - off : 20480;
		cr_expect(all_bytes(base + off, n, (int)(off / 20480) & 0xff), "piece at %zu changed", off);
	}
	munmap(base + front, len - front);
	unlink(path);
	free(ref);
}

/* ---- a chunk that fails: only its live pages are poisoned ---- */

static void fail_chunk_1(void *ctx, uint32_t chunk, void *buf, size_t len, long *result)
{
	if (chunk == 1)
		*result = -EIO;
}

static uint8_t *volatile hole;

static void on_sigbus(int sig)
{
	/* The poisoned chunk raised it; the memory in its hole must still be
	 * readable and hold its bytes. */
	_exit(hole && all_bytes(hole, 8192, 5) ? 0 : 31);
}

Test(unmap, a_poisoned_chunk_spares_what_is_mapped_over_its_hole, .timeout = 60)
{
	const size_t len = 1u << 20;
	const uint32_t chunk = 64u << 10;
	uint8_t *ref = ru_data(len, 14);
	char path[512];
	snprintf(path, sizeof path, "%s/unmap_poison.img", ru_tmpdir());
	ru_write_image(path, ref, len, chunk, FP_CODEC_RAW);
	pid_t pid = fork();
	if (pid == 0) {
		struct fp_options o = ru_options(0);
		struct fp_hooks hooks = {.read = fail_chunk_1};
		o.hooks = &hooks;
		fp_region *r = fp_open(path, &o);
		if (!r)
			_exit(20);
		uint8_t *base = (uint8_t *)fp_region_base(r);
		if (fp_region_unmap(r, chunk, 8192))
			_exit(21);
		uint8_t *mine = mmap(base + chunk, 8192, PROT_READ | PROT_WRITE,
		                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (mine != base + chunk)
			_exit(22);
		memset(mine, 5, 8192);
		if (memcmp(base, ref, chunk))
			_exit(23);
		hole = mine;
		signal(SIGBUS, on_sigbus);
		volatile uint8_t b = base[chunk + 16384]; /* chunk 1 fails: SIGBUS */
		(void)b;
		_exit(25);
	}
	int status;
	waitpid(pid, &status, 0);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "status 0x%x (exit 31: the hole's memory changed; 25: no SIGBUS; killed by "
	          "SIGBUS: the hole was poisoned)", status);
	unlink(path);
	free(ref);
}

/* ---- a fault waiting on pages that go is woken, not left hanging ---- */

static void stall_chunk_0(void *ctx, uint32_t chunk, void *buf, size_t len, long *result)
{
	if (chunk == 0)
		usleep(300000);
}

static void *touch_page_0(void *arg)
{
	volatile const uint8_t *p = arg;
	(void)p[0];
	return NULL;
}

Test(unmap, a_thread_waiting_on_a_page_that_goes_gets_sigsegv, .timeout = 60)
{
	const size_t len = 1u << 20;
	uint8_t *ref = ru_data(len, 16);
	char path[512];
	snprintf(path, sizeof path, "%s/unmap_wait.img", ru_tmpdir());
	ru_write_image(path, ref, len, 64u << 10, FP_CODEC_RAW);
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL); /* not a sanitizer's report: the signal itself */
		alarm(20); /* a hang ends in SIGALRM, which the parent tells apart */
		struct fp_options o = ru_options(0);
		struct fp_hooks hooks = {.read = stall_chunk_0};
		o.hooks = &hooks;
		fp_region *r = fp_open(path, &o);
		if (!r)
			_exit(20);
		pthread_t t;
		pthread_create(&t, NULL, touch_page_0, (void *)fp_region_base(r));
		usleep(100000); /* the thread now waits for chunk 0 */
		if (fp_region_unmap(r, 0, 4096))
			_exit(21);
		pthread_join(t, NULL);
		_exit(22);
	}
	int status;
	waitpid(pid, &status, 0);
	cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
	          "expected SIGSEGV (the page is gone), got status 0x%x (SIGALRM: it hung)", status);
	unlink(path);
	free(ref);
}
