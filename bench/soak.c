/* bench/soak: many faults, every byte checked, the budget held.
 *
 * Images of every chunk size from 64K to 4M, raw and zstd, are written by
 * the project's writer from random but compressible data, which stays in
 * memory as the reference.  Rounds then open several of them at once, each
 * with its own loaders, budget, policy, install path and 1-8 reader
 * threads that read random or sequential ranges and compare every byte
 * with the reference.  A controller changes a region's budget or policy
 * every few milliseconds, and the residency is checked throughout against
 * the budget (the pager's counters) and, at the end of each round with the
 * loads settled, against the pages mincore(2) finds mapped.  Small budgets
 * keep chunks leaving and faulting back in.
 *
 * It prints and saves (CSV + Markdown) faults served, bytes checked, wrong
 * bytes, budget overruns, budget and policy changes, and fault latency.
 * It exits 1 if any byte was wrong or the budget overrun (or fewer faults
 * than --min-faults were served), 2 on a usage or set-up error.  See
 * bench/README.md. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <flexpage/flexpage_experimental.h>

#include "fl_util.h"

#ifndef FL_DEFAULT_OUT
#define FL_DEFAULT_OUT "bench/results"
#endif

#define MAX_REGIONS 4
#define MAX_READERS 8
#define N_IMAGES 10

static struct {
	double duration;
	uint64_t max_faults, min_faults;
	uint64_t seed;
	uint64_t size;
	const char *dir, *out;
	double round_s;
	int quiet;
} O = {
	.duration = 60,
	.seed = 1,
	.size = 24ull << 20,
	.dir = "/var/tmp/flexpage-soak",
	.out = FL_DEFAULT_OUT,
	.round_s = 3,
};

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* ---- images and their reference bytes ------------------------------- */

struct image {
	char path[512];
	uint32_t chunk, codec;
	uint8_t *logical;        /* the region's expected bytes: tensors, zeros between */
	uint64_t size;           /* logical size */
	uint8_t *data_page;      /* per 4 KiB page: 1 if it holds tensor bytes */
};

static struct image images[N_IMAGES];

/* Runs of random bytes, of short repeated patterns and of zeros: zstd
 * shrinks some chunks and leaves others stored raw. */
static void fill(uint8_t *p, size_t len, uint64_t *x)
{
	size_t i = 0;
	while (i < len) {
		size_t run = 1 + rnd(x) % 30000;
		int kind = (int)(rnd(x) % 3);
		uint64_t pat = rnd(x);
		for (size_t k = 0; k < run && i < len; k++, i++)
			p[i] = kind == 0 ? (uint8_t)rnd(x) : kind == 1 ? (uint8_t)(pat >> (8 * (k % 7))) : 0;
	}
}

static int write_image(struct image *im, uint64_t *x)
{
	struct fp_writer_options wo = {.chunk_size = im->chunk, .codec = im->codec};
	fp_writer *w = fp_writer_create(im->path, &wo);
	if (!w)
		return -1;
	/* Tensors of uneven sizes, so that chunks end short and padding
	 * follows them. */
	uint64_t left = O.size;
	char name[32];
	uint8_t *buf = malloc(left);
	for (int t = 0; left; t++) {
		uint64_t n = left < 4096 ? left : 4096 + rnd(x) % (left / 3 + 1);
		if (n > left)
			n = left;
		fill(buf, n, x);
		snprintf(name, sizeof name, "t%d", t);
		uint64_t shape[1] = {n};
		if (fp_writer_begin_tensor(w, name, FP_TYPE_U8, 1, shape) ||
		    fp_writer_write(w, buf, n) || fp_writer_end_tensor(w)) {
			fp_writer_abort(w);
			free(buf);
			return -1;
		}
		left -= n;
	}
	free(buf);
	return fp_writer_finish(w);
}

/* The reference: the image's tensors at their logical offsets, read back
 * from the bytes given to the writer (regenerated from the same seed). */
static int make_reference(struct image *im, uint64_t seed)
{
	fp_image *img = fp_image_open(im->path);
	if (!img)
		return -1;
	im->size = fp_image_info(img)->logical_size;
	im->logical = calloc(1, im->size);
	im->data_page = calloc(1, im->size / 4096 + 1);
	uint64_t x = seed, left = O.size;
	uint8_t *buf = malloc(left);
	for (uint32_t t = 0; left; t++) {
		uint64_t n = left < 4096 ? left : 4096 + rnd(&x) % (left / 3 + 1);
		if (n > left)
			n = left;
		fill(buf, n, &x);
		const struct fp_tensor_desc *d = fp_image_tensor(img, t);
		if (!d || d->size != n) {
			fprintf(stderr, "soak: %s: tensor %u is not what was written\n", im->path, t);
			exit(2);
		}
		memcpy(im->logical + d->offset, buf, n);
		for (uint64_t p = d->offset / 4096; p <= (d->offset + n - 1) / 4096; p++)
			im->data_page[p] = 1;
		left -= n;
	}
	free(buf);
	fp_image_close(img);
	return 0;
}

static void make_images(void)
{
	static const uint32_t chunks[] = {64u << 10, 256u << 10, 1u << 20, 2u << 20, 4u << 20};
	if (fl_mkdirs(O.dir)) {
		fprintf(stderr, "soak: %s: %s\n", O.dir, strerror(errno));
		exit(2);
	}
	for (int i = 0; i < N_IMAGES; i++) {
		struct image *im = &images[i];
		im->chunk = chunks[i / 2];
		im->codec = i % 2 ? FP_CODEC_ZSTD : FP_CODEC_RAW;
		snprintf(im->path, sizeof im->path, "%s/soak-%u-%s-%d.fpi", O.dir, im->chunk >> 10,
		         im->codec ? "zstd" : "raw", (int)getpid());
		uint64_t seed = O.seed * 1000003 + (uint64_t)i + 1, x = seed;
		if (write_image(im, &x) || make_reference(im, seed)) {
			fprintf(stderr, "soak: %s: %s\n", im->path, fp_last_error());
			exit(2);
		}
	}
}

static void remove_images(void)
{
	for (int i = 0; i < N_IMAGES; i++)
		if (images[i].path[0])
			unlink(images[i].path);
	rmdir(O.dir);
}

/* ---- the totals ------------------------------------------------------ */

static struct {
	atomic_uint_fast64_t bytes_checked, wrong_bytes, reads;
	atomic_uint_fast64_t overruns, budget_changes, policy_changes, checks;
	atomic_uint_fast64_t access_max_ns;
	uint64_t faults, regions, rounds, evictions, loads, stalls, retries;
	struct fp_hist fault;    /* the pager's fault stage, every region merged */
	uint64_t by_chunk[5], by_codec[2];
	uint64_t readers_max;
} T;

static void note_max(atomic_uint_fast64_t *m, uint64_t v)
{
	uint64_t old = atomic_load(m);
	while (v > old && !atomic_compare_exchange_weak(m, &old, v))
		;
}

/* ---- one region and its readers ------------------------------------ */

struct region {
	const struct image *im;
	fp_region *r;
	const uint8_t *base;
	int loaders, readers;
	uint64_t min_budget;
	uint64_t budget;         /* the last one set (the controller's) */
};

struct reader {
	struct region *g;
	uint64_t seed;
	int sequential;
	atomic_int *stop;
	pthread_t thread;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void wrong(const struct region *g, uint64_t off, const uint8_t *got, size_t n)
{
	const uint8_t *want = g->im->logical + off;
	uint64_t bad = 0;
	for (size_t i = 0; i < n; i++)
		bad += got[i] != want[i];
	if (atomic_fetch_add(&T.wrong_bytes, bad) < 64)
		fprintf(stderr, "soak: WRONG BYTES: %s at logical offset %llu: %llu of %zu bytes differ\n",
		        g->im->path, (unsigned long long)off, (unsigned long long)bad, n);
}

/* Read pages [off, off + len) one at a time, each timed and compared. */
static void check_range(struct region *g, uint64_t off, uint64_t len, uint64_t *max_ns)
{
	uint64_t end = off + len > g->im->size ? g->im->size : off + len;
	for (uint64_t p = off; p < end; p += 4096) {
		size_t n = end - p < 4096 ? (size_t)(end - p) : 4096;
		uint64_t t0 = now_ns();
		int diff = memcmp(g->base + p, g->im->logical + p, n);
		uint64_t dt = now_ns() - t0;
		if (dt > *max_ns)
			*max_ns = dt;
		if (diff)
			wrong(g, p, g->base + p, n);
		atomic_fetch_add_explicit(&T.bytes_checked, n, memory_order_relaxed);
	}
}

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	struct region *g = rd->g;
	uint64_t x = rd->seed | 1, pages = g->im->size / 4096, max_ns = 0;
	uint64_t at = (rnd(&x) % pages) * 4096;
	while (!atomic_load(rd->stop)) {
		/* Short reads: most of the time goes to faults, not to
		 * re-reading what is resident. */
		uint64_t len = 4096 * (1 + rnd(&x) % (rd->sequential ? 16 : 4));
		if (rd->sequential) {
			check_range(g, at, len, &max_ns);
			at = at + len >= g->im->size ? 0 : at + len;
		} else {
			check_range(g, (rnd(&x) % pages) * 4096, len, &max_ns);
		}
		atomic_fetch_add_explicit(&T.reads, 1, memory_order_relaxed);
	}
	note_max(&T.access_max_ns, max_ns);
	return NULL;
}

/* The budget held: the pager's counter against the budget set last plus
 * one chunk per loader, the documented bound (fp_set_budget evicts down to
 * a smaller budget before it returns). */
static void check_budget(struct region *g, const char *when)
{
	struct fp_stats s;
	fp_get_stats(g->r, &s);
	uint64_t b = g->budget;
	uint64_t bound = b + (uint64_t)g->loaders * g->im->chunk;
	atomic_fetch_add(&T.checks, 1);
	if (s.resident_bytes > bound) {
		atomic_fetch_add(&T.overruns, 1);
		fprintf(stderr, "soak: OVERRUN (%s): %s: resident %llu > budget %llu + %d loaders x %u\n",
		        when, g->im->path, (unsigned long long)s.resident_bytes, (unsigned long long)b,
		        g->loaders, g->im->chunk);
	}
}

/* With the loads settled: the tensor pages mapped in the region (mincore)
 * are within what the pager counts resident, which is within the budget. */
static void check_mapped(struct region *g)
{
	fp_quiesce(g->r);
	struct fp_stats s;
	fp_get_stats(g->r, &s);
	uint64_t pages = g->im->size / 4096, mapped = 0;
	unsigned char *vec = malloc(pages);
	if (!mincore((void *)g->base, g->im->size, vec))
		for (uint64_t p = 0; p < pages; p++)
			mapped += (vec[p] & 1) && g->im->data_page[p];
	free(vec);
	uint64_t bound = g->budget + (uint64_t)g->loaders * g->im->chunk;
	atomic_fetch_add(&T.checks, 1);
	if (mapped * 4096 > s.resident_bytes || s.resident_bytes > bound) {
		atomic_fetch_add(&T.overruns, 1);
		fprintf(stderr, "soak: OVERRUN (settled): %s: %llu bytes mapped, %llu counted resident, "
		        "budget %llu + %d loaders x %u\n", g->im->path,
		        (unsigned long long)(mapped * 4096), (unsigned long long)s.resident_bytes,
		        (unsigned long long)g->budget, g->loaders, g->im->chunk);
	}
}

static uint64_t random_budget(const struct region *g, uint64_t *x)
{
	/* Mostly small (eviction pressure), sometimes the whole image. */
	uint64_t span = g->im->size - g->min_budget;
	switch (rnd(x) % 8) {
	case 0: return g->min_budget;
	case 1: return g->im->size;
	case 2: return g->min_budget + rnd(x) % (span / 2 + 1);
	default: return g->min_budget + rnd(x) % (span / 16 + 1);
	}
}

static const char *policies[16];
static int n_policies;

static void change(struct region *g, uint64_t *x)
{
	if (rnd(x) % 5) {
		uint64_t b = random_budget(g, x);
		if (fp_set_budget(g->r, b)) {
			fprintf(stderr, "soak: fp_set_budget: %s\n", fp_last_error());
			exit(2);
		}
		g->budget = b;
		atomic_fetch_add(&T.budget_changes, 1);
	} else {
		const char *p = policies[rnd(x) % (uint64_t)n_policies];
		if (fp_set_policy(g->r, p)) {
			fprintf(stderr, "soak: fp_set_policy %s: %s\n", p, fp_last_error());
			exit(2);
		}
		atomic_fetch_add(&T.policy_changes, 1);
	}
	check_budget(g, "after a change");
}

static int open_region(struct region *g, const struct image *im, uint64_t *x)
{
	memset(g, 0, sizeof *g);
	g->im = im;
	g->loaders = 1 + (int)(rnd(x) % 4);
	struct fp_options o = {.retries = -1, .readahead = -1, .loaders = g->loaders};
	o.policy = policies[rnd(x) % (uint64_t)n_policies];
	/* Buffered reads (the page cache) most of the time, for the fault
	 * rate; O_DIRECT from the disk otherwise.  Copies instead of huge
	 * page moves now and then, and no staging or preservation sometimes. */
	unsigned f = rnd(x) % 4 ? FP_OPEN_BUFFERED : 0;
	f |= rnd(x) % 4 ? 0 : FP_OPEN_NO_HUGE;
	f |= rnd(x) % 4 ? 0 : FP_OPEN_NO_STAGE;
	f |= rnd(x) % 2 ? 0 : FP_OPEN_NO_PRESERVE;
	o.flags = f;
	o.budget = 2ull * im->chunk + rnd(x) % (im->size / 4);
	g->r = fp_open(im->path, &o);
	if (!g->r) {
		fprintf(stderr, "soak: fp_open %s: %s\n", im->path, fp_last_error());
		return -1;
	}
	g->min_budget = fp_min_budget(g->r);
	struct fp_stats s;
	fp_get_stats(g->r, &s);
	g->budget = s.budget;
	g->base = fp_region_base(g->r);
	return 0;
}

static void close_region(struct region *g)
{
	check_mapped(g);
	struct fp_stats s;
	fp_get_stats(g->r, &s);
	T.faults += s.faults;
	T.evictions += s.evictions;
	T.stalls += s.stalls;
	T.retries += s.retries;
	T.loads += s.demand_loads + s.prefetch_loads;
	const struct fp_hist *h = &s.lat[FP_STAGE_FAULT];
	T.fault.count += h->count;
	T.fault.sum_ns += h->sum_ns;
	if (h->max_ns > T.fault.max_ns)
		T.fault.max_ns = h->max_ns;
	for (int b = 0; b < FP_HIST_BUCKETS; b++)
		T.fault.bucket[b] += h->bucket[b];
	if (s.poisoned) {
		fprintf(stderr, "soak: %s: %llu chunks poisoned\n", g->im->path,
		        (unsigned long long)s.poisoned);
		atomic_fetch_add(&T.wrong_bytes, s.poisoned); /* no storage failures are injected */
	}
	fp_close(g->r);
}

/* ---- rounds ---------------------------------------------------------- */

static uint64_t faults_so_far(struct region *gs, int n)
{
	uint64_t f = T.faults;
	for (int i = 0; i < n; i++) {
		struct fp_stats s;
		fp_get_stats(gs[i].r, &s);
		f += s.faults;
	}
	return f;
}

static int pick_image(uint64_t *x)
{
	/* Small chunks more often: they make the faults. */
	static const int weight[5] = {35, 25, 20, 10, 10};
	int w = (int)(rnd(x) % 100), c = 0;
	while (w >= weight[c])
		w -= weight[c++];
	return 2 * c + (int)(rnd(x) % 2);
}

static void progress(double t0, uint64_t faults)
{
	if (O.quiet)
		return;
	fprintf(stderr, "\rsoak: %.0f s, %llu faults, %.1f GiB checked, %llu budget changes, "
	        "%llu wrong, %llu overruns   ", fl_now() - t0, (unsigned long long)faults,
	        (double)atomic_load(&T.bytes_checked) / (1 << 30),
	        (unsigned long long)atomic_load(&T.budget_changes),
	        (unsigned long long)atomic_load(&T.wrong_bytes),
	        (unsigned long long)atomic_load(&T.overruns));
}

static int done(double t0, uint64_t faults)
{
	if (O.max_faults)
		return faults >= O.max_faults || (O.duration > 0 && fl_now() - t0 >= O.duration);
	return fl_now() - t0 >= O.duration;
}

static void run(void)
{
	uint64_t x = O.seed * 0x9E3779B97F4A7C15ull | 1;
	double t0 = fl_now();
	uint64_t faults = 0;
	while (!done(t0, faults)) {
		/* 1-8 reader threads in all (more would only queue for the two
		 * cores of the machine it was written on), over 1-4 regions. */
		int total = 1 + (int)(rnd(&x) % MAX_READERS);
		int n = 1 + (int)(rnd(&x) % MAX_REGIONS);
		n = n > total ? total : n;
		struct region gs[MAX_REGIONS];
		struct reader rs[MAX_REGIONS][MAX_READERS];
		atomic_int stop = 0;
		int opened = 0, readers = 0;
		for (int i = 0; i < n; i++) {
			int k = pick_image(&x);
			if (open_region(&gs[opened], &images[k], &x))
				exit(2);
			T.by_chunk[k / 2]++;
			T.by_codec[k % 2]++;
			gs[opened].readers = 1;
			opened++;
		}
		for (int k = n; k < total; k++)
			gs[rnd(&x) % (uint64_t)n].readers++;
		for (int i = 0; i < opened; i++)
			for (int j = 0; j < gs[i].readers; j++) {
				rs[i][j] = (struct reader){.g = &gs[i], .seed = rnd(&x), .stop = &stop,
				                           .sequential = (int)(rnd(&x) % 2)};
				pthread_create(&rs[i][j].thread, NULL, reader_main, &rs[i][j]);
				readers++;
			}
		if ((uint64_t)readers > T.readers_max)
			T.readers_max = (uint64_t)readers;
		/* The controller: a change every 1-5 ms to one of the regions,
		 * and the budget checked in between. */
		double end = fl_now() + O.round_s;
		while (fl_now() < end && !done(t0, faults)) {
			struct region *g = &gs[rnd(&x) % (uint64_t)opened];
			change(g, &x);
			usleep((useconds_t)(1000 + rnd(&x) % 4000));
			check_budget(&gs[rnd(&x) % (uint64_t)opened], "while faulting");
			static double last;
			if (fl_now() - last > 1) {
				last = fl_now();
				faults = faults_so_far(gs, opened);
				progress(t0, faults);
			}
		}
		atomic_store(&stop, 1);
		for (int i = 0; i < opened; i++)
			for (int j = 0; j < gs[i].readers; j++)
				pthread_join(rs[i][j].thread, NULL);
		for (int i = 0; i < opened; i++)
			close_region(&gs[i]);
		T.regions += (uint64_t)opened;
		T.rounds++;
		faults = T.faults;
	}
	progress(t0, faults);
	if (!O.quiet)
		fputc('\n', stderr);
}

/* A thread that waits forever on a fault is the worst failure there is:
 * if no read completes and no setting changes for a minute, say so and
 * fail rather than hang. */
#define HANG_S 60

static void *hang_watch(void *arg)
{
	(void)arg;
	uint64_t last = 0;
	double since = fl_now();
	for (;;) {
		sleep(1);
		uint64_t now = atomic_load(&T.reads) + atomic_load(&T.budget_changes) +
		               atomic_load(&T.policy_changes) + T.rounds;
		if (now != last) {
			last = now;
			since = fl_now();
		} else if (fl_now() - since > HANG_S) {
			fprintf(stderr, "\nsoak: HANG: no read completed and no setting changed in %d s\n",
			        HANG_S);
			printf("result FAIL (hang)\n");
			fflush(stdout);
			_exit(1);
		}
	}
	return NULL;
}

/* ---- the report ------------------------------------------------------ */

static void report(double elapsed, const char *load_before, double load_after)
{
	char machine[512];
	fl_machine_info(O.dir, machine, sizeof machine);
	double p99 = (double)fp_hist_quantile(&T.fault, 0.99) / 1e3;
	double mean = T.fault.count ? (double)T.fault.sum_ns / (double)T.fault.count / 1e3 : 0;
	int pass = !atomic_load(&T.wrong_bytes) && !atomic_load(&T.overruns) &&
	           T.faults >= O.min_faults;
	/* key value lines: what test_soak reads */
	printf("faults %llu\n", (unsigned long long)T.faults);
	printf("bytes_checked %llu\n", (unsigned long long)atomic_load(&T.bytes_checked));
	printf("wrong_bytes %llu\n", (unsigned long long)atomic_load(&T.wrong_bytes));
	printf("overruns %llu\n", (unsigned long long)atomic_load(&T.overruns));
	printf("residency_checks %llu\n", (unsigned long long)atomic_load(&T.checks));
	printf("budget_changes %llu\n", (unsigned long long)atomic_load(&T.budget_changes));
	printf("policy_changes %llu\n", (unsigned long long)atomic_load(&T.policy_changes));
	printf("loads %llu\n", (unsigned long long)T.loads);
	printf("evictions %llu\n", (unsigned long long)T.evictions);
	/* No failure is injected: a stall is storage slower than the load
	 * timeout, a retry a failed read. */
	printf("stalls %llu\n", (unsigned long long)T.stalls);
	printf("retries %llu\n", (unsigned long long)T.retries);
	printf("regions %llu\n", (unsigned long long)T.regions);
	printf("rounds %llu\n", (unsigned long long)T.rounds);
	printf("readers_max %llu\n", (unsigned long long)T.readers_max);
	printf("fault_mean_us %.1f\n", mean);
	printf("fault_p99_us %.1f\n", p99);
	printf("fault_max_us %.1f\n", (double)T.fault.max_ns / 1e3);
	printf("access_max_us %.1f\n", (double)atomic_load(&T.access_max_ns) / 1e3);
	printf("elapsed_s %.1f\n", elapsed);
	printf("faults_per_s %.0f\n", (double)T.faults / elapsed);
	printf("result %s\n", pass ? "PASS" : "FAIL");
	fflush(stdout);

	if (fl_mkdirs(O.out))
		return;
	char path[1024];
	snprintf(path, sizeof path, "%s/soak.csv", O.out);
	FILE *f = fopen(path, "w");
	if (f) {
		fprintf(f, "seed,elapsed_s,faults,bytes_checked,wrong_bytes,overruns,residency_checks,"
		           "budget_changes,policy_changes,loads,evictions,regions,fault_mean_us,"
		           "fault_p99_us,fault_max_us,access_max_us,result\n");
		fprintf(f, "%llu,%.1f,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%.1f,%.1f,%.1f,"
		           "%.1f,%s\n", (unsigned long long)O.seed, elapsed,
		        (unsigned long long)T.faults, (unsigned long long)atomic_load(&T.bytes_checked),
		        (unsigned long long)atomic_load(&T.wrong_bytes),
		        (unsigned long long)atomic_load(&T.overruns),
		        (unsigned long long)atomic_load(&T.checks),
		        (unsigned long long)atomic_load(&T.budget_changes),
		        (unsigned long long)atomic_load(&T.policy_changes), (unsigned long long)T.loads,
		        (unsigned long long)T.evictions, (unsigned long long)T.regions, mean, p99,
		        (double)T.fault.max_ns / 1e3, (double)atomic_load(&T.access_max_ns) / 1e3,
		        pass ? "PASS" : "FAIL");
		fclose(f);
	}
	snprintf(path, sizeof path, "%s/soak.md", O.out);
	f = fopen(path, "w");
	if (!f)
		return;
	fprintf(f, "# bench/soak, seed %llu\n\n%s; load average %s before, %.2f after\n\n",
	        (unsigned long long)O.seed, machine, load_before, load_after);
	fprintf(f, "| measure | value |\n| --- | --- |\n");
	fprintf(f, "| time | %.1f s |\n", elapsed);
	fprintf(f, "| faults served | %llu (%.0f/s) |\n", (unsigned long long)T.faults,
	        (double)T.faults / elapsed);
	fprintf(f, "| bytes checked | %.2f GiB |\n",
	        (double)atomic_load(&T.bytes_checked) / (1 << 30));
	fprintf(f, "| wrong bytes | %llu |\n", (unsigned long long)atomic_load(&T.wrong_bytes));
	fprintf(f, "| budget overruns | %llu of %llu checks |\n",
	        (unsigned long long)atomic_load(&T.overruns), (unsigned long long)atomic_load(&T.checks));
	fprintf(f, "| budget changes | %llu |\n", (unsigned long long)atomic_load(&T.budget_changes));
	fprintf(f, "| policy changes | %llu |\n", (unsigned long long)atomic_load(&T.policy_changes));
	fprintf(f, "| loads / evictions | %llu / %llu |\n", (unsigned long long)T.loads,
	        (unsigned long long)T.evictions);
	fprintf(f, "| reads given up (stalls) / retries | %llu / %llu |\n",
	        (unsigned long long)T.stalls, (unsigned long long)T.retries);
	fprintf(f, "| regions opened (rounds) | %llu (%llu) |\n", (unsigned long long)T.regions,
	        (unsigned long long)T.rounds);
	fprintf(f, "| regions by chunk 64K/256K/1M/2M/4M | %llu/%llu/%llu/%llu/%llu |\n",
	        (unsigned long long)T.by_chunk[0], (unsigned long long)T.by_chunk[1],
	        (unsigned long long)T.by_chunk[2], (unsigned long long)T.by_chunk[3],
	        (unsigned long long)T.by_chunk[4]);
	fprintf(f, "| regions raw/zstd | %llu/%llu |\n", (unsigned long long)T.by_codec[0],
	        (unsigned long long)T.by_codec[1]);
	fprintf(f, "| fault latency mean / p99 / max (pager) | %.1f / %.1f / %.1f µs |\n", mean, p99,
	        (double)T.fault.max_ns / 1e3);
	fprintf(f, "| worst page access (reader) | %.1f µs |\n",
	        (double)atomic_load(&T.access_max_ns) / 1e3);
	fprintf(f, "| result | %s |\n", pass ? "PASS" : "FAIL");
	fclose(f);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: soak [options]\n"
	        "  --duration S     run this many seconds (default 60; with --faults, at most)\n"
	        "  --faults N       stop once N faults were served (10M, 1e7 or 10000000)\n"
	        "  --min-faults N   fail unless at least N faults were served\n"
	        "  --seed N         images, regions and reads follow it (default 1)\n"
	        "  --size SIZE      tensor bytes per image (default 24M; 10 images)\n"
	        "  --round S        seconds a set of regions stays open (default 3)\n"
	        "  --dir DIR        where the images go (default /var/tmp/flexpage-soak)\n"
	        "  --out DIR        soak.csv and soak.md (default bench/results)\n"
	        "  -q, --quiet      no progress line\n"
	        "Exit: 0 pass, 1 a wrong byte, a budget overrun or too few faults, 2 set-up.\n");
}

/* "10000000", "1e7" or "10M" (ten million: a count, not a size). */
static uint64_t count_arg(const char *s)
{
	char *end;
	double d = strtod(s, &end);
	double unit = *end == 'K' ? 1e3 : *end == 'M' ? 1e6 : *end == 'G' ? 1e9 : 1;
	if (end == s || d < 0 || (unit > 1 ? end[1] : *end)) {
		fprintf(stderr, "soak: not a count: %s\n", s);
		exit(2);
	}
	return (uint64_t)(d * unit);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"duration", 1, 0, 'd'}, {"faults", 1, 0, 'f'}, {"min-faults", 1, 0, 'm'},
		{"seed", 1, 0, 's'}, {"size", 1, 0, 'z'}, {"round", 1, 0, 'r'},
		{"dir", 1, 0, 'D'}, {"out", 1, 0, 'o'}, {"quiet", 0, 0, 'q'},
		{"help", 0, 0, 'h'}, {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case 'd': O.duration = atof(optarg); break;
		case 'f': O.max_faults = count_arg(optarg); break;
		case 'm': O.min_faults = count_arg(optarg); break;
		case 's': O.seed = strtoull(optarg, NULL, 0); break;
		case 'z':
			if (fl_parse_size(optarg, &O.size) || O.size < (8u << 20)) {
				fprintf(stderr, "soak: --size: at least 8M, got %s\n", optarg);
				return 2;
			}
			break;
		case 'r': O.round_s = atof(optarg); break;
		case 'D': O.dir = optarg; break;
		case 'o': O.out = optarg; break;
		case 'q': O.quiet = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || O.duration <= 0 || O.round_s <= 0) {
		usage(stderr);
		return 2;
	}
	if (O.max_faults && argc > 1) {
		/* --faults alone runs until they are served. */
		int dur_given = 0;
		for (int i = 1; i < argc; i++)
			dur_given |= !strncmp(argv[i], "--duration", 10);
		if (!dur_given)
			O.duration = 0;
	}
	fp_install_fault_reporter(); /* a poisoned chunk would name itself */
	const char *names[16];
	size_t n = fp_policy_names(names, 16);
	for (size_t i = 0; i < n && i < 16; i++) {
		const struct fp_policy_ops *ops = fp_policy_find(names[i]);
		if (ops && !ops->future)
			policies[n_policies++] = names[i];
	}
	char load_before[32];
	snprintf(load_before, sizeof load_before, "%.2f", fl_loadavg());
	make_images();
	pthread_t hw;
	pthread_create(&hw, NULL, hang_watch, NULL);
	pthread_detach(hw);
	double t0 = fl_now();
	run();
	double elapsed = fl_now() - t0;
	report(elapsed, load_before, fl_loadavg());
	remove_images();
	int pass = !atomic_load(&T.wrong_bytes) && !atomic_load(&T.overruns) &&
	           T.faults >= O.min_faults;
	return pass ? 0 : 1;
}
