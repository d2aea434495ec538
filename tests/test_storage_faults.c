/* Storage that fails or stalls, through the I/O seam (fp_hooks.read): a
 * read that never returns, bursts of errors, short reads, huge pages that
 * cannot be had, mlock refused, and the budget cut to the minimum while
 * every thread faults.  Each case ends in the file's bytes or in SIGBUS
 * with the reason, never in a hang (every test has a timeout). */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <flexpage/flexpage_experimental.h>

#include "region_util.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- what the hook does ------------------------------------------- */

enum mode {
	STALL_GATE,      /* chunk `chunk`'s first read blocks until the gate opens */
	STALL_FOREVER,   /* every read of chunk `chunk` blocks for good */
	STALL_SOME,      /* one read in `every` sleeps sleep_ms, then returns */
	EIO_BURST,       /* reads [from, from + n) of all fail with EIO */
	SHORT_SOME,      /* one read in `every` comes back short */
};

struct plan {
	enum mode mode;
	uint32_t chunk;
	int every, sleep_ms;
	long from, n;
	atomic_long calls;
	atomic_int stalled, returned;       /* reads that stalled; of them, returned */
	pthread_t first_reader, later_reader; /* of `chunk`: its first read's thread, a later one's */
	atomic_int gate;                    /* STALL_GATE: 1 lets the stalled read return */
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static void hook(void *ctx, uint32_t chunk, void *buf, size_t len, long *result)
{
	struct plan *p = ctx;
	long k = atomic_fetch_add(&p->calls, 1);
	(void)buf, (void)len;
	switch (p->mode) {
	case STALL_GATE:
		if (chunk != p->chunk)
			return;
		if (atomic_fetch_add(&p->stalled, 1) == 0) {
			p->first_reader = pthread_self();
			while (!atomic_load(&p->gate))
				usleep(1000);
			atomic_fetch_add(&p->returned, 1);
		} else {
			p->later_reader = pthread_self();
		}
		return;
	case STALL_FOREVER:
		if (chunk != p->chunk)
			return;
		atomic_fetch_add(&p->stalled, 1);
		for (;;)
			pause();
	case STALL_SOME:
		if (mix((uint64_t)k) % (uint64_t)p->every == 0) {
			atomic_fetch_add(&p->stalled, 1);
			usleep((useconds_t)p->sleep_ms * 1000);
			atomic_fetch_add(&p->returned, 1);
		}
		return;
	case EIO_BURST:
		if (k >= p->from && k < p->from + p->n)
			*result = -EIO;
		return;
	case SHORT_SOME:
		if (mix((uint64_t)k) % (uint64_t)p->every == 0 && *result > 0)
			*result = (long)(mix((uint64_t)k + 1) % (uint64_t)*result);
		return;
	}
}

/* ---- helpers ---------------------------------------------------------- */

static char *image(const char *name, const uint8_t *data, size_t len, uint32_t chunk,
                   uint32_t codec)
{
	static char path[512];
	snprintf(path, sizeof path, "%s/%s", ru_tmpdir(), name);
	ru_write_image(path, data, len, chunk, codec);
	return path;
}

/* The settled residency: mapped tensor pages (mincore) within what is
 * counted, and that within the budget plus one chunk per loader. */
static void expect_settled(fp_region *r, size_t len, uint32_t chunk, int loaders)
{
	fp_quiesce(r);
	struct fp_stats s;
	fp_get_stats(r, &s);
	uint64_t mapped = ru_resident_pages(fp_region_base(r), len) * 4096;
	cr_expect_leq(mapped, s.resident_bytes, "%llu bytes mapped but %llu counted resident",
	              (unsigned long long)mapped, (unsigned long long)s.resident_bytes);
	cr_expect_leq(s.resident_bytes, s.budget + (uint64_t)loaders * chunk,
	              "resident %llu over budget %llu + %d chunks", (unsigned long long)s.resident_bytes,
	              (unsigned long long)s.budget, loaders);
}

/* Open path with the hook following plan, read it with `threads` threads
 * at once (one scan, the others `reads` random pages each), and expect the
 * file's bytes, nothing poisoned and, once every stalled read returned,
 * the settled residency.  Returns the region's counters. */
static struct fp_stats read_through(const char *path, struct plan *p, struct fp_options o,
                                    const uint8_t *ref, size_t len, uint32_t chunk, int threads,
                                    const char *what)
{
	struct fp_hooks hooks = {.read = hook, .read_ctx = p};
	o.hooks = &hooks;
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s: %s", what, fp_last_error());
	int bad = ru_read_concurrently(r, ref, len, threads, 300);
	cr_expect_eq(bad, 0, "%s: %d reads differ", what, bad);
	struct fp_stats s;
	fp_get_stats(r, &s);
	cr_expect_eq(s.poisoned, 0, "%s: %llu poisoned", what, (unsigned long long)s.poisoned);
	while (atomic_load(&p->returned) < atomic_load(&p->stalled))
		usleep(10000);
	expect_settled(r, len, chunk, o.loaders ? o.loaders : 4);
	cr_expect_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0, "%s: bytes differ", what);
	fp_close(r);
	return s;
}

static void expect_sigbus(int status, const char *err, const char *chunk, const char *reason)
{
	cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
	          "expected death by SIGBUS, got status 0x%x; stderr: %s", status, err);
	cr_expect(strstr(err, "access to poisoned data") != NULL, "no reporter message: %s", err);
	cr_expect(strstr(err, chunk) != NULL, "'%s' not named: %s", chunk, err);
	cr_expect(strstr(err, reason) != NULL, "reason '%s' missing: %s", reason, err);
}

/* An image of n_chunks chunks read whole in a child with the hook
 * following plan: the child must die of SIGBUS naming chunk and reason,
 * within limit_s. */
static void expect_sigbus_reading(const char *name, uint32_t chunk, uint32_t codec, uint64_t seed,
                                  struct plan *p, struct fp_options o, const char *which,
                                  const char *reason, double limit_s)
{
	const size_t len = 8 * (size_t)chunk;
	uint8_t *ref = ru_data(len, seed);
	char *path = image(name, ref, len, chunk, codec);
	struct fp_hooks hooks = {.read = hook, .read_ctx = p};
	o.hooks = &hooks;
	char err[4096];
	double t0 = now_s();
	int status = ru_read_in_child(path, &o, ref, len, NULL, err, sizeof err);
	double took = now_s() - t0;
	expect_sigbus(status, err, which, reason);
	cr_expect_lt(took, limit_s, "SIGBUS took %.1f s", took);
	unlink(path);
	free(ref);
}

/* ---- a read that does not return ---------------------------------- */

/* The stalled read is given up after the timeout and the load done again
 * by another loader; when the stalled read returns at last, what it read
 * is dropped: nothing is installed twice, nothing is counted twice. */
Test(storage, a_stalled_read_is_retried_on_another_loader, .timeout = 120)
{
	const uint32_t chunk = 256u << 10;
	const size_t len = 16 * chunk;
	uint8_t *ref = ru_data(len, 21);
	char *path = image("stall.img", ref, len, chunk, FP_CODEC_RAW);
	struct plan *p = calloc(1, sizeof *p);
	p->mode = STALL_GATE;
	p->chunk = 3;
	struct fp_hooks hooks = {.read = hook, .read_ctx = p};
	struct fp_options o = ru_options(0);
	o.loaders = 2;
	o.load_timeout_ms = 200;
	o.hooks = &hooks;
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	double t0 = now_s();
	const uint8_t *base = fp_tensor(r, "data", NULL);
	cr_expect_eq(memcmp(base, ref, len), 0, "bytes differ after a stalled read");
	double took = now_s() - t0;
	cr_expect_geq(took, 0.2, "the read was not held up by the stall (%.3f s)", took);
	cr_expect_lt(took, 10.0, "the stall took %.1f s to give up", took);
	fp_quiesce(r);
	struct fp_stats before, after;
	fp_get_stats(r, &before);
	cr_expect_eq(before.stalls, 1, "%llu stalls", (unsigned long long)before.stalls);
	cr_expect_eq(before.poisoned, 0);
	cr_expect_eq(atomic_load(&p->stalled), 2, "chunk 3 read %d times", atomic_load(&p->stalled));
	cr_expect(!pthread_equal(p->first_reader, p->later_reader),
	          "the retry ran on the stalled loader");
	/* Let the stalled read return: its bytes must go nowhere. */
	atomic_store(&p->gate, 1);
	while (!atomic_load(&p->returned))
		usleep(1000);
	usleep(100000);
	fp_quiesce(r);
	fp_get_stats(r, &after);
	cr_expect_eq(after.demand_loads + after.prefetch_loads,
	             before.demand_loads + before.prefetch_loads,
	             "the late read installed its chunk (%llu loads, then %llu)",
	             (unsigned long long)(before.demand_loads + before.prefetch_loads),
	             (unsigned long long)(after.demand_loads + after.prefetch_loads));
	cr_expect_eq(after.bytes_installed, before.bytes_installed);
	cr_expect_eq(after.resident_bytes, before.resident_bytes);
	cr_expect_eq(memcmp(base, ref, len), 0, "bytes differ after the late read");
	expect_settled(r, len, chunk, 2);
	fp_close(r);
	unlink(path);
	free(p);
	free(ref);
}

/* A read that never returns, tried again and never returning again: the
 * chunk is poisoned and the reader gets SIGBUS naming the stall. */
Test(storage, a_read_that_never_returns_ends_in_sigbus_with_the_reason, .timeout = 60)
{
	struct plan *p = calloc(1, sizeof *p);
	p->mode = STALL_FOREVER;
	p->chunk = 3;
	struct fp_options o = ru_options(0);
	o.load_timeout_ms = 150;
	o.retries = 1;
	expect_sigbus_reading("forever.img", 256u << 10, FP_CODEC_ZSTD, 22, p, o, "chunk 3",
	                      "did not return within 150 ms (2 times)", 20);
	free(p);
}

/* Many threads, a small budget, read-ahead and staging, and one read in
 * 40 that sleeps past the timeout: every byte right, the budget held, and
 * the late reads (which all return) dropped. */
Test(storage, stalls_among_many_threads_keep_bytes_and_budget, .timeout = 300)
{
	const uint32_t chunk = 128u << 10;
	const size_t len = 48 * chunk;
	uint8_t *ref = ru_data(len, 23);
	for (int codec = 0; codec < 2; codec++) {
		char *path = image("stall-some.img", ref, len, chunk, codec ? FP_CODEC_ZSTD : FP_CODEC_RAW);
		struct plan *p = calloc(1, sizeof *p);
		p->mode = STALL_SOME;
		p->every = 40;
		p->sleep_ms = 250;
		struct fp_options o = ru_options(12 * chunk);
		o.loaders = 3;
		o.retries = 10;
		o.load_timeout_ms = 60;
		struct fp_stats s = read_through(path, p, o, ref, len, chunk, 6, codec ? "zstd" : "raw");
		cr_expect_gt(s.stalls, 0, "codec %d: no read stalled", codec);
		unlink(path);
		free(p);
	}
	free(ref);
}

/* ---- errors and short reads --------------------------------------- */

/* Fifty reads in a row fail, whatever chunk they are of: with enough
 * retries every chunk is read in the end. */
Test(storage, a_burst_of_eio_is_retried_through, .timeout = 120)
{
	const uint32_t chunk = 64u << 10;
	const size_t len = 64 * chunk;
	uint8_t *ref = ru_data(len, 24);
	char *path = image("burst.img", ref, len, chunk, FP_CODEC_ZSTD);
	struct plan *p = calloc(1, sizeof *p);
	p->mode = EIO_BURST;
	p->from = 10;
	p->n = 50;
	struct fp_options o = ru_options(16 * chunk);
	o.retries = 60;
	struct fp_stats s = read_through(path, p, o, ref, len, chunk, 4, "a burst");
	cr_expect_geq(s.retries, 50, "%llu retries", (unsigned long long)s.retries);
	unlink(path);
	free(p);
	free(ref);
}

/* A burst longer than a chunk's attempts: the chunk it catches is
 * poisoned, and its reader gets SIGBUS with the I/O error. */
Test(storage, a_burst_longer_than_the_retries_ends_in_sigbus, .timeout = 60)
{
	struct plan *p = calloc(1, sizeof *p);
	p->mode = EIO_BURST;
	p->from = 0;
	p->n = 1000000;
	struct fp_options o = ru_options(0);
	o.retries = 3;
	o.readahead = 0;
	expect_sigbus_reading("burst-long.img", 64u << 10, FP_CODEC_RAW, 25, p, o, "chunk 0",
	                      "Input/output error", 20);
	free(p);
}

/* One read in five comes back short (of a raw payload, or of a zstd
 * frame): each is retried, and every byte served is right. */
Test(storage, short_reads_are_retried, .timeout = 120)
{
	const uint32_t chunk = 64u << 10;
	const size_t len = 64 * chunk;
	uint8_t *ref = ru_data(len, 26);
	for (int codec = 0; codec < 2; codec++) {
		char *path = image("short.img", ref, len, chunk, codec ? FP_CODEC_ZSTD : FP_CODEC_RAW);
		struct plan *p = calloc(1, sizeof *p);
		p->mode = SHORT_SOME;
		p->every = 5;
		struct fp_options o = ru_options(8 * chunk);
		o.retries = 30;
		struct fp_stats s = read_through(path, p, o, ref, len, chunk, 4, codec ? "zstd" : "raw");
		cr_expect_gt(s.retries, 0, "codec %d: no short read retried", codec);
		unlink(path);
		free(p);
	}
	free(ref);
}

/* ---- memory the kernel will not give -------------------------------- */

/* AnonHugePages of the mappings inside [a, a + len), from smaps. */
static uint64_t huge_bytes(const void *a, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return UINT64_MAX;
	char line[512];
	uint64_t total = 0;
	int inside = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		unsigned long long kb;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			inside = lo >= (uintptr_t)a && hi <= (uintptr_t)a + len;
		else if (inside && sscanf(line, "AnonHugePages: %llu kB", &kb) == 1)
			total += kb * 1024;
	}
	fclose(f);
	return total;
}

/* With transparent huge pages refused to the process (PR_SET_THP_DISABLE),
 * the 2 MiB chunks still install (as small pages) and read right. */
Test(storage, no_huge_pages_to_be_had_small_pages_take_over, .timeout = 120)
{
	const uint32_t chunk = 2u << 20;
	const size_t len = 8 * (size_t)chunk;
	uint8_t *ref = ru_data(len, 27);
	char *path = image("nohuge.img", ref, len, chunk, FP_CODEC_RAW);
	pid_t pid = fork();
	if (pid == 0) {
		if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
			_exit(30);
		struct fp_options o = ru_options(4 * (uint64_t)chunk);
		fp_region *r = fp_open(path, &o);
		if (!r)
			_exit(31);
		const uint8_t *base = fp_tensor(r, "data", NULL);
		for (int pass = 0; pass < 2; pass++)
			if (memcmp(base, ref, len))
				_exit(32);
		struct fp_stats s;
		fp_get_stats(r, &s);
		if (s.huge_installs + s.small_installs < 8)
			_exit(33);
		if (huge_bytes(fp_region_base(r), fp_region_size(r)) != 0)
			_exit(34); /* a huge page was had after all: the case is not tested */
		fp_close(r);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "child status 0x%x (30 prctl, 31 open, 32 bytes, 33 installs, 34 huge pages)", status);
	unlink(path);
	free(ref);
}

/* mlock refused (no CAP_IPC_LOCK, RLIMIT_MEMLOCK 0): the preserved chunks
 * stay resident unlocked, the region says so, and every byte reads right. */
Test(storage, mlock_refused_leaves_preserved_chunks_unlocked, .timeout = 120)
{
	const uint32_t chunk = 256u << 10;
	const size_t len = 16 * chunk;
	uint8_t *ref = ru_data(len, 28);
	char *path = image("nolock.img", ref, len, chunk, FP_CODEC_RAW);
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 2);
		close(pfd[0]);
		struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
		struct __user_cap_data_struct d[2];
		if (syscall(SYS_capget, &h, d))
			_exit(40);
		d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
		d[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
		struct rlimit rl = {0, 0};
		if (syscall(SYS_capset, &h, d) || setrlimit(RLIMIT_MEMLOCK, &rl))
			_exit(41);
		uint8_t keep[16] = {1, 1, 1, 1};
		struct fp_options o = ru_options(8 * chunk);
		o.preserve = keep;
		o.lock_quota = UINT64_MAX; /* try them all: the kernel refuses */
		fp_region *r = fp_open(path, &o);
		if (!r)
			_exit(42);
		fp_quiesce(r);
		struct fp_stats s;
		fp_get_stats(r, &s);
		if (s.locked_bytes != 0 || s.preserved_bytes != 4 * chunk)
			_exit(43);
		if (memcmp(fp_tensor(r, "data", NULL), ref, len))
			_exit(44);
		fp_close(r);
		_exit(0);
	}
	close(pfd[1]);
	char err[4096];
	size_t got = 0;
	ssize_t n;
	while (got + 1 < sizeof err && (n = read(pfd[0], err + got, sizeof err - 1 - got)) > 0)
		got += (size_t)n;
	err[got] = 0;
	close(pfd[0]);
	int status;
	waitpid(pid, &status, 0);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "child status 0x%x (4x: 0 capget, 1 capset, 2 open, 3 locked, 4 bytes); %s", status,
	          err);
	cr_expect(strstr(err, "mlock of preserved chunks failed") != NULL,
	          "the refusal was not reported: %s", err);
	unlink(path);
	free(ref);
}

/* ---- the budget cut while every thread faults --------------------- */

struct cutter {
	fp_region *r;
	atomic_int stop;
	int cuts, over, errors;
	uint32_t chunk;
	int loaders;
};

static void *cut_budget(void *arg)
{
	struct cutter *c = arg;
	uint64_t min = fp_min_budget(c->r), size = fp_region_size(c->r);
	while (!atomic_load(&c->stop)) {
		c->errors += fp_set_budget(c->r, min) != 0;
		struct fp_stats s;
		fp_get_stats(c->r, &s);
		c->over += s.resident_bytes > min + (uint64_t)c->loaders * c->chunk;
		c->cuts++;
		usleep(2000);
		c->errors += fp_set_budget(c->r, size / 2) != 0;
		usleep(2000);
	}
	return NULL;
}

Test(storage, the_budget_cut_to_the_minimum_while_every_thread_faults, .timeout = 300)
{
	const uint32_t chunk = 64u << 10;
	const size_t len = 96 * chunk;
	uint8_t *ref = ru_data(len, 29);
	char *path = image("cut.img", ref, len, chunk, FP_CODEC_ZSTD);
	struct fp_options o = ru_options(len / 2);
	o.loaders = 4;
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	struct cutter c = {.r = r, .chunk = chunk, .loaders = 4};
	pthread_t t;
	pthread_create(&t, NULL, cut_budget, &c);
	int bad = ru_read_concurrently(r, ref, len, 8, 2000);
	atomic_store(&c.stop, 1);
	pthread_join(t, NULL);
	cr_expect_eq(bad, 0, "%d reads differ", bad);
	cr_expect_eq(c.errors, 0, "%d budget changes refused", c.errors);
	cr_expect_gt(c.cuts, 10, "only %d cuts", c.cuts);
	cr_expect_eq(c.over, 0, "resident over the minimum budget + one chunk per loader after %d of "
	             "%d cuts", c.over, c.cuts);
	cr_assert_eq(fp_set_budget(r, fp_min_budget(r)), 0);
	expect_settled(r, len, chunk, 4);
	fp_close(r);
	unlink(path);
	free(ref);
}
