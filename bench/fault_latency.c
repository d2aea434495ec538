/* bench/fault_latency: cold fault service latency and throughput of a
 * flexpage region by chunk size, codec and install path, next to the bounds
 * of the same machine measured in the same run (O_DIRECT bandwidth, zstd
 * decode rate, plain mmap, a fully resident scan).  It prints and saves
 * numbers; it asserts nothing.  See bench/README.md. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <flexpage/flexpage_experimental.h>

#include "fl_base.h"
#include "fl_util.h"

#ifndef FL_DEFAULT_OUT
#define FL_DEFAULT_OUT "bench/results"
#endif

#define MAX_LIST 16
#define GOAL_SEQ_RATIO 0.90
#define GOAL_OVERHEAD_US 60.0

/* ---- options -------------------------------------------------------- */

static struct {
	uint64_t size;
	const char *dir, *out;
	int keep;
	uint64_t chunks[MAX_LIST];
	int n_chunks;
	int raw, zstd;
	int zstd_level;
	uint64_t random_touches;
	enum fl_touch touch;
	uint64_t sweep_loaders[MAX_LIST], sweep_ra[MAX_LIST];
	int n_sweep_loaders, n_sweep_ra;
	uint64_t seed;
	int host_cold;
	int whatif;
	int sweep_ra_given;
} O = {
	.size = 1ull << 30,
	.dir = "/var/tmp/flexpage-bench",
	.out = FL_DEFAULT_OUT,
	.chunks = {64u << 10, 256u << 10, 1u << 20, 2u << 20, 4u << 20},
	.n_chunks = 5,
	.raw = 1,
	.zstd = 1,
	.zstd_level = 3,
	.random_touches = 256,
	.touch = FL_TOUCH_ALL,
	.sweep_loaders = {1, 2, 4},
	.n_sweep_loaders = 3,
	.sweep_ra = {0, 2, 4, 8, 16},
	.n_sweep_ra = 5,
	.seed = 1,
	.host_cold = 1,
	.whatif = 1,
};

static void usage(FILE *f)
{
	fprintf(f,
	    "usage: fault_latency [options]\n"
	    "\n"
	    "Cold fault service latency and throughput of a flexpage region by chunk size,\n"
	    "codec (raw, zstd) and install path (huge-page UFFDIO_MOVE, the default for full\n"
	    "2M/4M chunks, vs 4 KiB UFFDIO_COPY forced with FP_OPEN_NO_HUGE), next to the\n"
	    "bounds of this machine measured in the same run: best O_DIRECT read bandwidth\n"
	    "(1/2/4/8 threads, 2 MiB and 4 MiB reads), single-thread zstd decode rate, a plain\n"
	    "mmap of the raw image (default advice and MADV_SEQUENTIAL) and a fully resident\n"
	    "scan.  The page cache is dropped before every cold measurement (needs root).\n"
	    "Prints a Markdown report on stdout and saves it with a CSV; asserts nothing.\n"
	    "\n"
	    "options (sizes take K, M, G suffixes: 600M, 1G):\n"
	    "  --size SIZE         test data, Q8_0-like weights (default 1G; rounded to\n"
	    "                      whole 68 MiB tensors plus one smaller tensor)\n"
	    "  --dir DIR           where the images are written, on a real disk\n"
	    "                      (default /var/tmp/flexpage-bench)\n"
	    "  --out DIR           results: DIR/fault_latency.csv and .md\n"
	    "                      (default %s)\n"
	    "  --keep              keep the images (default: delete them at the end)\n"
	    "  --chunks LIST       chunk sizes (default 64K,256K,1M,2M,4M)\n"
	    "  --codecs LIST       raw, zstd or raw,zstd (default raw,zstd)\n"
	    "  --zstd-level N      zstd level of the zstd images (default 3)\n"
	    "  --random N          random-access touches per configuration (default 256;\n"
	    "                      0 skips the random-access runs)\n"
	    "  --touch all|page    the sequential scan reads every byte like a decode\n"
	    "                      (default) or one word per 4 KiB page\n"
	    "  --sweep-loaders L   loader counts of the raw 2 MiB sweep (default 1,2,4)\n"
	    "  --sweep-readahead L read-ahead depths, chunks (default 0,2,4,8,16)\n"
	    "  --no-sweep          skip the loaders x read-ahead sweep\n"
	    "  --no-drop           do not drop the page cache (results are then warm)\n"
	    "  --no-host-cold      skip the host-cold repeats (each waits %d s until the VM\n"
	    "                      gave the free memory back to the host)\n"
	    "  --no-what-if        skip the what-if runs (the region made THP-eligible by\n"
	    "                      the benchmark, so that UFFDIO_MOVE installs whole huge\n"
	    "                      pages; see README)\n"
	    "  --seed N            data seed (default 1)\n"
	    "  -h, --help          this text\n"
	    "\n"
	    "A 1 GiB run takes about 3-5 minutes and writes up to 2 GiB of images at a time.\n",
	    FL_DEFAULT_OUT, FL_REPORT_WAIT_S);
}

static void parse_args(int argc, char **argv)
{
	enum { OPT_SIZE = 256, OPT_DIR, OPT_OUT, OPT_KEEP, OPT_CHUNKS, OPT_CODECS, OPT_LEVEL,
	       OPT_RANDOM, OPT_TOUCH, OPT_SL, OPT_SR, OPT_NOSWEEP, OPT_NODROP, OPT_SEED,
	       OPT_NOHOSTCOLD, OPT_NOWHATIF };
	static const struct option lo[] = {
		{"size", required_argument, 0, OPT_SIZE},
		{"dir", required_argument, 0, OPT_DIR},
		{"out", required_argument, 0, OPT_OUT},
		{"keep", no_argument, 0, OPT_KEEP},
		{"chunks", required_argument, 0, OPT_CHUNKS},
		{"codecs", required_argument, 0, OPT_CODECS},
		{"zstd-level", required_argument, 0, OPT_LEVEL},
		{"random", required_argument, 0, OPT_RANDOM},
		{"touch", required_argument, 0, OPT_TOUCH},
		{"sweep-loaders", required_argument, 0, OPT_SL},
		{"sweep-readahead", required_argument, 0, OPT_SR},
		{"no-sweep", no_argument, 0, OPT_NOSWEEP},
		{"no-drop", no_argument, 0, OPT_NODROP},
		{"seed", required_argument, 0, OPT_SEED},
		{"no-host-cold", no_argument, 0, OPT_NOHOSTCOLD},
		{"no-what-if", no_argument, 0, OPT_NOWHATIF},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	int c;
	uint64_t v;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case OPT_SIZE:
			if (fl_parse_size(optarg, &O.size) || !O.size)
				fl_die("--size: '%s' is not a size (like 600M or 1G)", optarg);
			break;
		case OPT_DIR: O.dir = optarg; break;
		case OPT_OUT: O.out = optarg; break;
		case OPT_KEEP: O.keep = 1; break;
		case OPT_CHUNKS:
			O.n_chunks = fl_parse_list(optarg, O.chunks, MAX_LIST, 1);
			if (O.n_chunks < 0)
				fl_die("--chunks: '%s' is not a list of sizes (like 64K,2M)", optarg);
			for (int i = 0; i < O.n_chunks; i++)
				if (O.chunks[i] < FP_CHUNK_MIN || O.chunks[i] > FP_CHUNK_MAX ||
				    (O.chunks[i] & (O.chunks[i] - 1)))
					fl_die("--chunks: %llu is not a power of two from 64K to 4M",
					       (unsigned long long)O.chunks[i]);
			break;
		case OPT_CODECS:
			O.raw = strstr(optarg, "raw") != NULL;
			O.zstd = strstr(optarg, "zstd") != NULL;
			if (!O.raw && !O.zstd)
				fl_die("--codecs: '%s' names neither raw nor zstd", optarg);
			break;
		case OPT_LEVEL:
			if (fl_parse_list(optarg, &v, 1, 0) != 1 || v < 1 || v > 22)
				fl_die("--zstd-level: '%s' is not a level from 1 to 22", optarg);
			O.zstd_level = (int)v;
			break;
		case OPT_RANDOM:
			if (fl_parse_list(optarg, &O.random_touches, 1, 0) != 1)
				fl_die("--random: '%s' is not a count", optarg);
			break;
		case OPT_TOUCH:
			if (!strcmp(optarg, "all"))
				O.touch = FL_TOUCH_ALL;
			else if (!strcmp(optarg, "page"))
				O.touch = FL_TOUCH_PAGE;
			else
				fl_die("--touch: '%s' is neither all nor page", optarg);
			break;
		case OPT_SL:
			O.n_sweep_loaders = fl_parse_list(optarg, O.sweep_loaders, MAX_LIST, 0);
			if (O.n_sweep_loaders < 0)
				fl_die("--sweep-loaders: '%s' is not a list of counts", optarg);
			for (int i = 0; i < O.n_sweep_loaders; i++)
				if (O.sweep_loaders[i] < 1 || O.sweep_loaders[i] > 64)
					fl_die("--sweep-loaders: %llu is out of range [1, 64]",
					       (unsigned long long)O.sweep_loaders[i]);
			break;
		case OPT_SR:
			O.sweep_ra_given = 1;
			O.n_sweep_ra = fl_parse_list(optarg, O.sweep_ra, MAX_LIST, 0);
			if (O.n_sweep_ra < 0)
				fl_die("--sweep-readahead: '%s' is not a list of depths", optarg);
			for (int i = 0; i < O.n_sweep_ra; i++)
				if (O.sweep_ra[i] > 4096)
					fl_die("--sweep-readahead: %llu is out of range [0, 4096]",
					       (unsigned long long)O.sweep_ra[i]);
			break;
		case OPT_NOSWEEP: O.n_sweep_loaders = O.n_sweep_ra = 0; break;
		case OPT_NODROP: fl_no_drop = 1; break;
		case OPT_SEED:
			if (fl_parse_list(optarg, &O.seed, 1, 0) != 1)
				fl_die("--seed: '%s' is not a number", optarg);
			break;
		case OPT_NOHOSTCOLD: O.host_cold = 0; break;
		case OPT_NOWHATIF: O.whatif = 0; break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc)
		fl_die("unexpected argument '%s' (see --help)", argv[optind]);
}

/* ---- results --------------------------------------------------------- */

enum section { SEC_BOUND, SEC_SEQ, SEC_RANDOM, SEC_SWEEP, SEC_HOST };
static const char *const section_name[] = {"bound", "sequential", "random", "sweep",
                                           "host-cold"};

struct row {
	enum section sec;
	char what[64];           /* bounds: the measurement; pager rows: "flexpage" */
	char config[160];        /* bounds: the configuration */
	uint32_t chunk;          /* 0: n/a */
	int codec;               /* -1: n/a */
	char install[32];        /* "move", "copy", "move, THP region", "" */
	int no_huge;             /* opened with FP_OPEN_NO_HUGE */
	int thp_region;          /* what-if: the bench made the region THP-eligible */
	double thp_frac;         /* of the region's resident bytes, mapped huge */
	int loaders, readahead;  /* -1: n/a */
	uint64_t bytes;
	double seconds, gbps, ratio, bound_ratio;
	double fault_p50, fault_p90, fault_p99;  /* µs */
	double wait_p50, read_p50, dec_p50, inst_p50;
	double over_p50, over_p50_2m, over_mean, over_mean_2m;
	double touch_p50, touch_p99;             /* app-observed, random access */
	double tover_p50, tover_mean;            /* touch less its chunk's read + decode */
	double tk_p50[5];                        /* its parts (TK_*), p50 each */
	double psi_cpu;                          /* /proc/pressure/cpu some, share of time */
	double paired;           /* O_DIRECT time for the same payload / this scan's time */
	uint64_t faults, demand, ahead, huge, small;
	int host_cold;           /* measured after the host took the free memory back */
	int twin;                /* SEC_HOST: the host-warm row of the same thing, or -1 */
	char note[160];
};

static struct row *rows;
static int n_rows, cap_rows;

static struct row *new_row(enum section sec)
{
	if (n_rows == cap_rows) {
		cap_rows = cap_rows ? 2 * cap_rows : 64;
		rows = realloc(rows, sizeof *rows * (size_t)cap_rows);
		if (!rows)
			fl_die("out of memory");
	}
	struct row *r = &rows[n_rows++];
	memset(r, 0, sizeof *r);
	r->sec = sec;
	r->codec = -1;
	r->loaders = r->readahead = -1;
	r->twin = -1;
	r->thp_frac = NAN;
	r->psi_cpu = NAN;
	r->paired = NAN;
	double *nan_fields[] = {&r->seconds, &r->gbps, &r->ratio, &r->bound_ratio, &r->fault_p50,
	                        &r->fault_p90, &r->fault_p99, &r->wait_p50, &r->read_p50,
	                        &r->dec_p50, &r->inst_p50, &r->over_p50, &r->over_p50_2m,
	                        &r->over_mean, &r->over_mean_2m, &r->touch_p50, &r->touch_p99,
	                        &r->tover_p50, &r->tover_mean};
	for (size_t i = 0; i < sizeof nan_fields / sizeof nan_fields[0]; i++)
		*nan_fields[i] = NAN;
	for (int k = 0; k < 5; k++)
		r->tk_p50[k] = NAN;
	return r;
}

/* ---- run state ----------------------------------------------------- */

static struct fl_data D;
static uint64_t expect_sum;          /* fl_scan over the data, O.touch */
static double best_odirect = NAN;    /* GB/s */
static char best_odirect_cfg[128];
static int best_threads = 4, best_huge = 1;
static size_t best_req = 4u << 20;
static double zstd_rate[MAX_LIST];   /* GB/s per O.chunks[i] */
static double zstd_ratio[MAX_LIST];
static double zstd_psi[MAX_LIST];
static long ncpu;
static int whatif_moot;      /* the library already does what the what-if does */
static int drops_failed;

static void drop(void)
{
	if (fl_drop_caches())
		drops_failed = 1;
}

/* Before a cold measurement: drop the page cache and hand the warm reserve
 * back to the guest (host-warm), or also wait until the host took the free
 * memory back (host-cold, what a model load on an idle VM meets). */
static uint64_t reserve_bytes;

static uint64_t psi_at_start;
static double t_at_start;

static void prepare(int host_cold)
{
	drop();
	/* Host-cold keeps the reserve, so the measurement gets memory that
	 * has been free for long (reported to the host), and waits until what
	 * the cache drop freed has been reported too. */
	if (host_cold)
		sleep(FL_REPORT_WAIT_S);
	else
		fl_reserve_release();
	psi_at_start = fl_cpu_pressure_us();
	t_at_start = fl_now();
}

/* Share of the measurement's wall time during which some runnable task
 * waited for a CPU (/proc/pressure/cpu): the noise from other users. */
static double cpu_pressure(void)
{
	uint64_t p = fl_cpu_pressure_us();
	double t = fl_now() - t_at_start;
	if (!p || !psi_at_start || t <= 0)
		return NAN;
	return (double)(p - psi_at_start) / 1e6 / t;
}

static void finish(void)
{
	fl_reserve_hold(reserve_bytes);
}

static void image_path(char *buf, size_t n, uint32_t chunk, int codec)
{
	snprintf(buf, n, "%s/q8-%uk-%s.fpimg", O.dir, chunk >> 10, codec ? "zstd" : "raw");
}

/* Tensor ranges of an image in its logical layout. */
struct ranges {
	uint64_t *off, *len;
	int n;
};

static void ranges_of(const fp_image *img, struct ranges *g)
{
	const struct fp_image_info *info = fp_image_info(img);
	g->n = (int)info->n_tensors;
	g->off = calloc((size_t)g->n, sizeof *g->off);
	g->len = calloc((size_t)g->n, sizeof *g->len);
	if (!g->off || !g->len)
		fl_die("out of memory");
	for (uint32_t i = 0; i < info->n_tensors; i++) {
		const struct fp_tensor_desc *t = fp_image_tensor(img, i);
		g->off[i] = t->offset;
		g->len[i] = t->size;
	}
}

static void ranges_free(struct ranges *g)
{
	free(g->off);
	free(g->len);
}

static double us(uint64_t ns)
{
	return (double)ns / 1e3;
}

static void fill_stats(struct row *r, const struct fp_stats *s, uint32_t chunk)
{
	const struct fp_hist *h = s->lat;
	r->fault_p50 = us(fp_hist_quantile(&h[FP_STAGE_FAULT], 0.5));
	r->fault_p90 = us(fp_hist_quantile(&h[FP_STAGE_FAULT], 0.9));
	r->fault_p99 = us(fp_hist_quantile(&h[FP_STAGE_FAULT], 0.99));
	r->wait_p50 = us(fp_hist_quantile(&h[FP_STAGE_WAIT], 0.5));
	r->read_p50 = us(fp_hist_quantile(&h[FP_STAGE_READ], 0.5));
	r->dec_p50 = us(fp_hist_quantile(&h[FP_STAGE_DECOMPRESS], 0.5));
	r->inst_p50 = us(fp_hist_quantile(&h[FP_STAGE_INSTALL], 0.5));
	double scale = (double)(2u << 20) / (double)chunk;
	/* The overhead is the pager's own per-fault figure: each demand
	 * fault's service time less the read and decode of its own chunk
	 * (FP_STAGE_OVERHEAD), so its p50 is a p50 of per-fault differences,
	 * not a difference of p50s of different loads. */
	const struct fp_hist *o = &h[FP_STAGE_OVERHEAD];
	if (o->count) {
		r->over_p50 = us(fp_hist_quantile(o, 0.5));
		r->over_p50_2m = r->over_p50 * scale;
		r->over_mean = (double)o->sum_ns / (double)o->count / 1e3;
		r->over_mean_2m = r->over_mean * scale;
	}
	r->faults = s->faults;
	r->demand = s->demand_loads;
	r->ahead = s->prefetch_loads;
	r->huge = s->huge_installs;
	r->small = s->small_installs;
	snprintf(r->install, sizeof r->install, "%s",
	         s->huge_installs && s->small_installs > s->huge_installs ? "copy+move"
	         : s->huge_installs ? "move" : "copy");
	if (s->poisoned)
		snprintf(r->note + strlen(r->note), sizeof r->note - strlen(r->note),
		         "%s%llu chunks POISONED", r->note[0] ? "; " : "",
		         (unsigned long long)s->poisoned);
}

static void set_bound_ratio(struct row *r)
{
	int chunk_idx = -1;
	for (int i = 0; i < O.n_chunks; i++)
		if (O.chunks[i] == r->chunk)
			chunk_idx = i;
	r->ratio = r->gbps / best_odirect;
	double bound = best_odirect;
	if (r->codec == FP_CODEC_ZSTD && chunk_idx >= 0 && zstd_rate[chunk_idx] > 0) {
		/* Compressed: the disk delivers ratio x more logical bytes, and
		 * decoding runs on at most every core. */
		double io = best_odirect * zstd_ratio[chunk_idx];
		double cpu = zstd_rate[chunk_idx] * (double)ncpu;
		bound = io < cpu ? io : cpu;
	}
	r->bound_ratio = r->gbps / bound;
}

/* The exact overhead the application sees: each touch's wait less the
 * read and decode of the chunk it waited for, from that load's trace
 * record (the histograms are too coarse to subtract), and its parts:
 * waiting for a loader, the install (UFFDIO_MOVE or COPY, which wakes
 * the thread), the rest of the loader's path (claim, pool, reserve, the
 * ledger), and the kernel's (the touch's time outside fault → install:
 * delivering the fault to the handler, the thread's wake-up). */
enum { TK_ALL, TK_WAIT, TK_INSTALL, TK_OTHER, TK_KERNEL, TK_N };

static void touch_overhead(struct row *r, const char *trace_path, const uint32_t *chunk,
                           const double *lat, uint32_t n)
{
	fp_trace *t = fp_trace_open(trace_path);
	if (!t) {
		snprintf(r->note + strlen(r->note), sizeof r->note - strlen(r->note),
		         "; trace unreadable: %s", strerror(errno));
		return;
	}
	const struct fp_trace_header *th = fp_trace_header(t);
	struct { double fault, load, work, wait, install; } *ck = calloc(th->n_chunks, sizeof *ck);
	double *part[TK_N];
	for (int k = 0; k < TK_N; k++)
		if (!(part[k] = malloc(sizeof *part[k] * (n + 1))))
			fl_die("out of memory");
	if (!ck)
		fl_die("out of memory");
	const struct fp_trace_event *ev = fp_trace_events(t);
	for (uint64_t i = 0; i < fp_trace_count(t); i++) {
		const struct fp_trace_event *e = &ev[i];
		if (e->chunk >= th->n_chunks)
			continue;
		if (e->type == FP_EV_FAULT && e->flags == FP_FAULT_EMPTY && !ck[e->chunk].fault)
			ck[e->chunk].fault = (double)e->t_ns / 1e3;
		if (e->type == FP_EV_LOAD) {
			ck[e->chunk].load = (double)e->t_ns / 1e3;
			ck[e->chunk].work = (double)((e->a & 0xffffffffu) + (e->a >> 32)) / 1e3;
			ck[e->chunk].install = (double)(e->b & 0xffffffffu) / 1e3;
			ck[e->chunk].wait = (double)(e->b >> 32) / 1e3;
		}
	}
	uint32_t m = 0;
	double sum = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (chunk[i] >= th->n_chunks || !ck[chunk[i]].load || !ck[chunk[i]].fault)
			continue; /* no record (dropped from a full ring) */
		const typeof(*ck) *k = &ck[chunk[i]];
		double served = k->load - k->fault;
		part[TK_ALL][m] = lat[i] - k->work;
		part[TK_WAIT][m] = k->wait;
		part[TK_INSTALL][m] = k->install;
		part[TK_OTHER][m] = served - k->work - k->wait - k->install;
		part[TK_KERNEL][m] = lat[i] - served;
		sum += part[TK_ALL][m++];
	}
	if (m) {
		for (int k = 0; k < TK_N; k++) {
			fl_sort(part[k], m);
			r->tk_p50[k] = fl_quantile(part[k], m, 0.5);
		}
		r->tover_p50 = r->tk_p50[TK_ALL];
		r->tover_mean = sum / m;
	}
	if (m < n)
		snprintf(r->note + strlen(r->note), sizeof r->note - strlen(r->note),
		         "; %u touches without their records", n - m);
	free(ck);
	for (int k = 0; k < TK_N; k++)
		free(part[k]);
	fp_trace_close(t);
}

/* One pager configuration, cold: a sequential scan (random = 0) or random
 * single touches of distinct chunks without read-ahead. */
static void run_pager(enum section sec, const char *path, uint32_t chunk,
                      int codec, int no_huge, int loaders, int readahead, int random,
                      int host_cold, int thp_region)
{
	struct fp_options opt = {
		.budget = 0,
		.loaders = loaders,
		.flags = no_huge ? FP_OPEN_NO_HUGE : 0u,
		.retries = -1,
		.readahead = random ? 0 : readahead,
	};
	/* Random access is traced: each load's record gives the read and
	 * decode of the very chunk a touch waited for. */
	char trace_path[4096];
	snprintf(trace_path, sizeof trace_path, "%s/fault_latency-%d.trace", O.dir, (int)getpid());
	if (random)
		opt.trace_path = trace_path;
	prepare(host_cold);
	fp_region *reg = fp_open(path, &opt);
	if (!reg)
		fl_die("%s", fp_last_error());
	const fp_image *img = fp_region_image(reg);
	const struct fp_image_info *info = fp_image_info(img);
	const uint8_t *base = fp_region_base(reg);
	/* What-if: libflexpage marks the region MADV_NOHUGEPAGE, so a missing
	 * fault allocates a page table under the faulting address and
	 * UFFDIO_MOVE must split the staged huge page into 4 KiB pages (and
	 * the stage then refills with 4 KiB pages for good).  A THP-eligible
	 * region lets the fault reach the handler at the PMD level and the
	 * move hand over the whole huge page. */
	if (thp_region && madvise((void *)(uintptr_t)base, fp_region_size(reg), MADV_HUGEPAGE))
		fl_die("%s: madvise(MADV_HUGEPAGE) on the region failed: %s", path, strerror(errno));
	struct row *r = new_row(sec);
	r->thp_region = thp_region;
	r->no_huge = no_huge;
	snprintf(r->what, sizeof r->what, "flexpage");
	r->chunk = chunk;
	r->codec = codec;
	r->loaders = loaders ? loaders : 4;
	r->readahead = random ? 0 : (readahead < 0 ? 4 : readahead);
	r->bytes = info->data_bytes;
	r->host_cold = host_cold;
	uint32_t *touched = NULL, n_touched = 0;
	double *touched_lat = NULL;
	uint64_t pay_lo = UINT64_MAX, pay_hi = 0;
	for (uint32_t c = 0; c < info->n_chunks; c++) {
		const struct fp_chunk_desc *d = fp_image_chunk(img, c);
		if (!d->stored_len)
			continue;
		if (d->file_offset < pay_lo)
			pay_lo = d->file_offset;
		if (d->file_offset + d->stored_len > pay_hi)
			pay_hi = d->file_offset + d->stored_len;
	}
	if (!random) {
		struct ranges g;
		ranges_of(img, &g);
		double t0 = fl_now();
		uint64_t sum = fl_scan(base, g.off, g.len, g.n, O.touch);
		r->seconds = fl_now() - t0;
		ranges_free(&g);
		r->gbps = (double)r->bytes / r->seconds / FL_GB;
		set_bound_ratio(r);
		if (sum != expect_sum)
			snprintf(r->note, sizeof r->note, "DATA MISMATCH: the scan read other bytes");
	} else {
		/* Distinct chunks in random order, a random page in each. */
		uint32_t n = info->n_chunks;
		uint32_t *perm = malloc(sizeof *perm * n);
		double *lat = malloc(sizeof *lat * n);
		if (!perm || !lat)
			fl_die("out of memory");
		uint32_t m = 0;
		for (uint32_t c = 0; c < n; c++)
			if (fp_image_chunk(img, c)->logical_len)
				perm[m++] = c;
		uint64_t s = O.seed * 0x9E3779B97F4A7C15ull + chunk;
		uint32_t touches = O.random_touches < m ? (uint32_t)O.random_touches : m;
		uint64_t sink = 0;
		double t0 = fl_now();
		for (uint32_t i = 0; i < touches; i++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			uint32_t j = i + (uint32_t)((s >> 33) % (m - i));
			uint32_t c = perm[j];
			perm[j] = perm[i];
			perm[i] = c;
			const struct fp_chunk_desc *d = fp_image_chunk(img, c);
			uint32_t pages = (d->logical_len + 4095) / 4096;
			uint64_t off = d->logical_offset + (uint64_t)((s >> 17) % pages) * 4096;
			double a = fl_now();
			sink += *(const volatile uint8_t *)(base + off);
			lat[i] = (fl_now() - a) * 1e6;
		}
		r->seconds = fl_now() - t0;
		r->bytes = (uint64_t)touches * chunk;
		touched = perm;
		touched_lat = malloc(sizeof *touched_lat * touches);
		if (!touched_lat)
			fl_die("out of memory");
		memcpy(touched_lat, lat, sizeof *lat * touches);
		n_touched = touches;
		fl_sort(lat, touches);
		r->touch_p50 = fl_quantile(lat, touches, 0.5);
		r->touch_p99 = fl_quantile(lat, touches, 0.99);
		snprintf(r->note, sizeof r->note, "%u touches", touches);
		if (sink == 0xdeadbeef)
			r->note[0] = ' ';
		free(lat);
	}
	r->psi_cpu = cpu_pressure();
	struct fp_stats st;
	fp_get_stats(reg, &st);
	uint64_t thp, rss;
	if (!fl_thp_bytes(base, fp_region_size(reg), &thp, &rss) && rss)
		r->thp_frac = (double)thp / (double)rss;
	fp_close(reg);
	if (random) {
		touch_overhead(r, trace_path, touched, touched_lat, n_touched);
		unlink(trace_path);
		free(touched);
		free(touched_lat);
	}
	if (!random && pay_hi > pay_lo) {
		/* The paired bound: the same payload bytes read right now with the
		 * best plain O_DIRECT configuration (the disk behind this VM is
		 * cached by the host, so its speed drifts during a run). */
		uint64_t len = (pay_hi - pay_lo + 4095) & ~4095ull;
		double t = fl_odirect_read(path, pay_lo, len, best_req, best_threads, NULL, best_huge);
		if (t > 0)
			r->paired = t / r->seconds;
	}
	finish();
	fill_stats(r, &st, chunk);
	if (thp_region)
		snprintf(r->install + strlen(r->install), sizeof r->install - strlen(r->install),
		         ", THP region*");
	char b[32];
	const char *hs = host_cold ? " host-cold" : "";
	if (random)
		fl_note("  random%s %s %s %s: touch p50 %.0f us, fault p50 %.0f us, overhead p50 %.0f us "
		        "(mean %.0f us); touch overhead p50 %.0f us (wait %.0f, install %.0f, other "
		        "%.0f, kernel %.0f)", hs, fl_size_str(chunk, b, sizeof b),
		        codec ? "zstd" : "raw", r->install, r->touch_p50, r->fault_p50, r->over_p50,
		        r->over_mean, r->tover_p50, r->tk_p50[1], r->tk_p50[2], r->tk_p50[3],
		        r->tk_p50[4]);
	else
		fl_note("  seq%s %s %s %s L%d RA%d: %.2f GB/s (%.0f%% of best O_DIRECT, %.0f%% of "
		        "paired), fault p50 %.0f us%s%s",
		        hs, fl_size_str(chunk, b, sizeof b), codec ? "zstd" : "raw", r->install,
		        r->loaders, r->readahead, r->gbps, 100 * r->ratio, 100 * r->paired, r->fault_p50,
		        r->note[0] ? "; " : "", r->note);
}

/* ---- the bounds ------------------------------------------------------ */

static struct row *bound_row(const char *what, const char *config, double seconds,
                             uint64_t bytes, const char *note)
{
	struct row *r = new_row(SEC_BOUND);
	snprintf(r->what, sizeof r->what, "%s", what);
	snprintf(r->config, sizeof r->config, "%s", config);
	r->bytes = bytes;
	r->seconds = seconds;
	r->gbps = seconds > 0 ? (double)bytes / seconds / FL_GB : NAN;
	if (!isnan(best_odirect))
		r->ratio = r->gbps / best_odirect;
	snprintf(r->note, sizeof r->note, "%s", note ? note : "");
	return r;
}

static struct ranges bound_ranges;
static uint64_t bound_raw_base, bound_len;

static const char *const advice_name[] = {"default advice", "MADV_SEQUENTIAL"};

/* Plain mmap of the raw bytes, scanned cold. */
static void measure_mmap(const char *raw_path, int seq_advice, int host_cold)
{
	const struct ranges *g = &bound_ranges;
	prepare(host_cold);
	uint64_t sum;
	double t = fl_mmap_scan(raw_path, bound_raw_base, bound_len,
	                        seq_advice ? MADV_SEQUENTIAL : MADV_NORMAL, g->off, g->len, g->n,
	                        O.touch, &sum);
	double psi = cpu_pressure();
	finish();
	if (t < 0)
		fl_die("%s: the mmap baseline failed", raw_path);
	struct row *r = bound_row("plain mmap, cold scan", advice_name[seq_advice], t, D.size,
	                          sum != expect_sum ? "DATA MISMATCH" : NULL);
	r->host_cold = host_cold;
	r->psi_cpu = psi;
	fl_note("  mmap %s%s: %.2f GB/s", advice_name[seq_advice], host_cold ? " host-cold" : "",
	        r->gbps);
}

/* Fully resident: read it all into fresh memory, then scan it warm. */
static void measure_resident(const char *raw_path, int host_cold)
{
	const struct ranges *g = &bound_ranges;
	uint64_t len = bound_len;
	prepare(host_cold);
	size_t maplen = (size_t)len + (2u << 20);
	uint8_t *m = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		fl_die("cannot map %llu bytes for the resident copy: %s", (unsigned long long)len,
		       strerror(errno));
	uint8_t *p = (uint8_t *)(((uintptr_t)m + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
	madvise(p, len, MADV_HUGEPAGE);
	double t = fl_odirect_read(raw_path, bound_raw_base, len, best_req, best_threads, p, 1);
	double psi = cpu_pressure();
	if (t < 0)
		fl_die("%s: the resident read failed", raw_path);
	char cfg[160];
	snprintf(cfg, sizeof cfg, "O_DIRECT into fresh THP memory, %zu MiB reads, QD %d",
	         best_req >> 20, best_threads);
	struct row *r = bound_row("resident: read into RAM", cfg, t, len,
	                          "the bound of anything that keeps what it reads");
	r->host_cold = host_cold;
	r->psi_cpu = psi;
	fl_note("  read into fresh memory%s: %.2f GB/s", host_cold ? " host-cold" : "", r->gbps);
	if (!host_cold) {
		double t0 = fl_now();
		uint64_t sum = fl_scan(p, g->off, g->len, g->n, O.touch);
		t = fl_now() - t0;
		struct row *c = bound_row("resident scan (ceiling)",
		                          O.touch == FL_TOUCH_ALL ? "every byte, one thread"
		                                                  : "one word per page, one thread",
		                          t, D.size,
		                          sum != expect_sum ? "DATA MISMATCH" : "memory speed: the ceiling");
		fl_note("  resident scan: %.2f GB/s", c->gbps);
	}
	munmap(m, maplen);
	finish();
}

static void fresh_row(const char *config, const struct fl_fresh *fr, const char *state)
{
	struct row *r = new_row(SEC_BOUND);
	snprintf(r->what, sizeof r->what, "first touch of fresh memory");
	snprintf(r->config, sizeof r->config, "%s", config);
	snprintf(r->note, sizeof r->note, "%s: p50 %.0f µs, p90 %.0f µs per 2 MiB", state,
	         fr->p50_us, fr->p90_us);
	r->gbps = (double)(2u << 20) / (fr->p50_us * 1e-6) / FL_GB;
	r->ratio = r->gbps / best_odirect;
	fl_note("  fresh memory, %s, %s: %.0f us per 2 MiB", config, state, fr->p50_us);
}

/* O_DIRECT into reused huge-page buffers (as the pager stages): the
 * device's bound, 2 and 4 MiB reads at queue depth 1-8.  Two rows with
 * 4 KiB-page buffers show what the buffer's backing costs on virtio-blk.
 * Measured at the start and again at the end of the run; the best of all
 * is the bound. */
static void measure_odirect(const char *raw_path, const char *when)
{
	fl_note("O_DIRECT read bandwidth of %s, %s", raw_path, when);
	static const struct { size_t req; int threads, huge; } cfgs[] = {
		{2u << 20, 1, 1}, {2u << 20, 2, 1}, {2u << 20, 4, 1}, {2u << 20, 8, 1},
		{4u << 20, 1, 1}, {4u << 20, 2, 1}, {4u << 20, 4, 1}, {4u << 20, 8, 1},
		{2u << 20, 1, 0}, {2u << 20, 4, 0},
	};
	char what[64];
	if (isnan(best_odirect))
		best_odirect = 0;
	for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
		drop();
		uint64_t p0 = fl_cpu_pressure_us();
		double t = fl_odirect_read(raw_path, bound_raw_base, bound_len, cfgs[i].req,
		                           cfgs[i].threads, NULL, cfgs[i].huge);
		uint64_t p1 = fl_cpu_pressure_us();
		if (t < 0)
			fl_die("%s: the O_DIRECT baseline failed", raw_path);
		snprintf(what, sizeof what, "O_DIRECT read, %s, %s",
		         cfgs[i].huge ? "huge-page buffer" : "4 KiB-page buffer", when);
		char cfg[64];
		snprintf(cfg, sizeof cfg, "%zu MiB reads, %d thread%s (QD %d)", cfgs[i].req >> 20,
		         cfgs[i].threads, cfgs[i].threads > 1 ? "s" : "", cfgs[i].threads);
		struct row *r = bound_row(what, cfg, t, bound_len, NULL);
		if (p0 && t > 0)
			r->psi_cpu = (double)(p1 - p0) / 1e6 / t;
		fl_note("  %s, %s: %.2f GB/s", cfg, cfgs[i].huge ? "huge-page buffer" : "4 KiB pages",
		        r->gbps);
		if (r->gbps > best_odirect) {
			best_odirect = r->gbps;
			best_threads = cfgs[i].threads;
			best_req = cfgs[i].req;
			best_huge = cfgs[i].huge;
			snprintf(best_odirect_cfg, sizeof best_odirect_cfg, "%s, %s buffer, %s", cfg,
			         cfgs[i].huge ? "huge-page" : "4 KiB-page", when);
		}
	}
}

/* Ratios against the final bound (the best of both O_DIRECT passes). */
static void finalize_ratios(void)
{
	for (int i = 0; i < n_rows; i++) {
		struct row *r = &rows[i];
		r->ratio = r->gbps / best_odirect;
		if (r->chunk && !isnan(r->gbps))
			set_bound_ratio(r);
		if (r->sec == SEC_BOUND && !strncmp(r->what, "O_DIRECT", 8) && r->gbps == best_odirect)
			snprintf(r->note, sizeof r->note, "**best: the bound**");
	}
}

static void measure_bounds(const char *raw_path)
{
	fp_image *img = fp_image_open(raw_path);
	if (!img)
		fl_die("%s", fp_last_error());
	const struct fp_image_info *info = fp_image_info(img);
	bound_raw_base = info->raw_base;
	bound_len = info->logical_size;
	if (!bound_raw_base)
		fl_die("%s: raw image without the raw layout (raw_base 0)", raw_path);
	ranges_of(img, &bound_ranges);
	fp_image_close(img);

	measure_odirect(raw_path, "at the start");

	/* Fresh memory: what the VM charges for pages nobody touched lately. */
	struct fl_fresh fr;
	size_t probe = reserve_bytes / 2 < (256u << 20) ? (size_t)reserve_bytes / 2 : 256u << 20;
	prepare(0);
	fl_fresh_touch(probe, 1, &fr);
	finish();
	fresh_row("2 MiB transparent huge page", &fr, "host-warm (just freed)");
	prepare(1);
	fl_fresh_touch(probe, 1, &fr);
	finish();
	fresh_row("2 MiB transparent huge page", &fr, "host-cold (freed 5 s ago)");
	prepare(0);
	fl_fresh_touch(probe / 4, 0, &fr);
	finish();
	fresh_row("512 × 4 KiB pages", &fr, "host-warm (just freed)");

	measure_mmap(raw_path, 0, 0);
	measure_mmap(raw_path, 1, 0);
	measure_resident(raw_path, 0);
}

/* The row just measured host-cold: pair it with its host-warm twin. */
static void host_cold_row(void)
{
	struct row *c = &rows[n_rows - 1];
	for (int i = 0; i < n_rows - 1; i++) {
		struct row *w = &rows[i];
		if (w->sec == c->sec && !w->host_cold && !strcmp(w->what, c->what) &&
		    !strcmp(w->config, c->config) && w->chunk == c->chunk && w->codec == c->codec &&
		    w->no_huge == c->no_huge && w->loaders == c->loaders &&
		    w->readahead == c->readahead && w->thp_region == c->thp_region) {
			c->twin = i;
			break;
		}
	}
	if (c->sec == SEC_RANDOM)
		snprintf(c->what, sizeof c->what, "flexpage random access");
	else if (c->sec == SEC_SEQ)
		snprintf(c->what, sizeof c->what, "flexpage sequential scan");
	c->sec = SEC_HOST;
}

/* ---- the report ------------------------------------------------------ */

/* The overhead goal at p50; the p50 comes from a histogram (8 buckets an
 * octave), so say so when the exact mean disagrees. */
static const char *overhead_verdict(const struct row *r)
{
	if (isnan(r->over_p50_2m))
		return "–";
	int p50 = r->over_p50_2m < GOAL_OVERHEAD_US, mean = r->over_mean_2m < GOAL_OVERHEAD_US;
	if (isnan(r->over_mean_2m) || p50 == mean)
		return p50 ? "PASS" : "MISS";
	return p50 ? "PASS (mean: MISS)" : "MISS (mean: PASS)";
}

/* Markdown cells: "| value " each; end_row closes the line. */
static void c_s(FILE *f, const char *v)
{
	fprintf(f, "| %s ", v);
}

static void c_f(FILE *f, double v, int prec)
{
	if (isnan(v))
		fputs("| – ", f);
	else
		fprintf(f, "| %.*f ", prec, v);
}

static void c_p(FILE *f, double v)
{
	if (isnan(v))
		fputs("| – ", f);
	else
		fprintf(f, "| %.0f%% ", 100 * v);
}

static void c_size(FILE *f, uint64_t v)
{
	char b[32];
	c_s(f, fl_size_str(v, b, sizeof b));
}

static void c_loads(FILE *f, const struct row *r)
{
	fprintf(f, "| %llu | %llu + %llu ", (unsigned long long)r->faults,
	        (unsigned long long)r->demand, (unsigned long long)r->ahead);
}

static void end_row(FILE *f)
{
	fputs("|\n", f);
}

static const char *codec_str(int c)
{
	return c < 0 ? "" : c == FP_CODEC_ZSTD ? "zstd" : "raw";
}

static uint64_t run_psi0;
static double run_load0;

static void write_markdown(FILE *f, const char *machine, const char *started, double elapsed)
{
	char sz[32];
	fprintf(f, "# flexpage fault latency (bench/fault_latency)\n\n");
	fprintf(f, "Machine: %s.  \n", machine);
	fprintf(f, "Run: %s, %.0f s.  Data: %s of Q8_0-like weights (%d q8_0 tensors, zstd level %d); "
	           "budget = whole image; %s; %s; host-warm memory unless marked (see the last "
	           "table).\n\n",
	        started, elapsed, fl_size_str(D.size, sz, sizeof sz), D.n, O.zstd_level,
	        O.touch == FL_TOUCH_ALL ? "the scan reads every byte, one thread, tensor by tensor"
	                                : "the scan reads one word per 4 KiB page, one thread",
	        drops_failed || fl_no_drop ? "**page cache NOT dropped: warm numbers**"
	                                   : "page cache dropped before every measurement (cold)");
	uint64_t psi = fl_cpu_pressure_us();
	if (psi && run_psi0)
		fprintf(f, "Other load: 1-min load average %.1f at the start, %.1f at the end; some task "
		           "waited for a CPU %.0f%% of the run (/proc/pressure/cpu; per measurement in "
		           "the CPU wait columns).  The machine is shared: compare ratios within this "
		           "run, and distrust rows with a high CPU wait.\n\n",
		        run_load0, fl_loadavg(), 100.0 * (double)(psi - run_psi0) / 1e6 / elapsed);

	fprintf(f, "## Bounds, same run\n\n");
	fprintf(f, "| measurement | configuration | GB/s | × best O_DIRECT | CPU wait | note |\n");
	fprintf(f, "| --- | --- | ---: | ---: | ---: | --- |\n");
	for (int k = 0; k < 2 * n_rows; k++) {
		/* O_DIRECT rows first, then the rest. */
		struct row *r = &rows[k % n_rows];
		if (r->sec != SEC_BOUND || (k < n_rows) != !strncmp(r->what, "O_DIRECT", 8))
			continue;
		c_s(f, r->what);
		c_s(f, r->config);
		c_f(f, r->gbps, 2);
		c_p(f, r->ratio);
		c_p(f, r->psi_cpu);
		c_s(f, r->note);
		end_row(f);
	}
	for (int i = 0; i < O.n_chunks; i++) {
		if (!O.zstd || !(zstd_rate[i] > 0))
			continue;
		fprintf(f, "| zstd decode, 1 thread, from memory | %s chunks ",
		        fl_size_str(O.chunks[i], sz, sizeof sz));
		c_f(f, zstd_rate[i], 2);
		c_p(f, zstd_rate[i] / best_odirect);
		c_p(f, zstd_psi[i]);
		fprintf(f, "| ratio %.3f (logical / stored) |\n", zstd_ratio[i]);
	}
	fprintf(f, "\nBest O_DIRECT bandwidth (the bound): **%.2f GB/s** (%s).\n\n", best_odirect,
	        best_odirect_cfg);

	fprintf(f, "## Sequential cold scan through the region\n\n");
	fprintf(f, "Library defaults: 4 loaders, read-ahead 4 chunks.  Latencies in µs, from "
	           "fp_get_stats (log-linear histograms, 8 buckets an octave: a p50 is the top of its "
	           "bucket, up to 12.5%% high).  Overhead: per demand fault, its service time less "
	           "the read and decode of its own chunk, at p50; in a sequential scan most faults "
	           "land on chunks already in flight, so read the random-access table for the clean "
	           "per-fault numbers.  "
	           "× O_DIRECT: against the best O_DIRECT bandwidth of the run.  × paired: the time "
	           "the best plain O_DIRECT configuration took to read the same payload bytes right "
	           "after the scan, over the scan's time (the host caches this VM's disk, so its "
	           "speed drifts).  × bound: zstd against min(O_DIRECT × ratio, %ld cores × decode "
	           "rate).\n\n", ncpu);
	fprintf(f, "| chunk | codec | install | GB/s | × O_DIRECT | × paired | × bound | fault p50 "
	           "| p90 | p99 "
	           "| wait p50 | read p50 | decomp p50 | install p50 | overhead/chunk | per 2 MiB "
	           "| faults | loads demand + ahead | huge-mapped | CPU wait | note |\n");
	fprintf(f, "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
	           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
	for (int i = 0; i < n_rows; i++) {
		struct row *r = &rows[i];
		if (r->sec != SEC_SEQ)
			continue;
		c_size(f, r->chunk);
		c_s(f, codec_str(r->codec));
		c_s(f, r->install);
		c_f(f, r->gbps, 2);
		c_p(f, r->ratio);
		c_p(f, r->paired);
		c_p(f, r->bound_ratio);
		c_f(f, r->fault_p50, 0);
		c_f(f, r->fault_p90, 0);
		c_f(f, r->fault_p99, 0);
		c_f(f, r->wait_p50, 0);
		c_f(f, r->read_p50, 0);
		c_f(f, r->dec_p50, 0);
		c_f(f, r->inst_p50, 0);
		c_f(f, r->over_p50, 0);
		c_f(f, r->over_p50_2m, 0);
		c_loads(f, r);
		c_p(f, r->thp_frac);
		c_p(f, r->psi_cpu);
		c_s(f, r->note);
		end_row(f);
	}

	int any_random = 0;
	for (int i = 0; i < n_rows; i++)
		any_random |= rows[i].sec == SEC_RANDOM;
	if (any_random) {
		fprintf(f, "\n## Random access, cold, no read-ahead\n\n");
		fprintf(f, "One thread touches one random page of distinct random chunks; every touch "
		           "is a demand load of a whole chunk.  touch = what the thread waited "
		           "(clock around the access); fault = fp_get_stats (handler read the fault → "
		           "chunk installed).  Overhead: per demand fault, its service time less the read "
		           "and decode of its own chunk (fp_stats lat[FP_STAGE_OVERHEAD]: waiting for a "
		           "loader, claiming, reserving, installing), at p50 and its exact mean.  "
		           "Touch overhead: per touch, exactly, what the thread waited less the read and "
		           "decode of the chunk it waited for (from that load's trace record): the above "
		           "plus the kernel's part, the fault's delivery to the handler and the thread's "
		           "wake-up.  Goal: < %.0f µs per 2 MiB at p50.\n\n", GOAL_OVERHEAD_US);
		fprintf(f, "| chunk | codec | install | touch p50 | touch p99 | fault p50 | p90 | p99 "
		           "| wait p50 | read p50 | decomp p50 | install p50 | overhead p50 | per 2 MiB "
		           "| overhead mean | per 2 MiB | touch overhead p50 | mean | goal | huge-mapped "
		           "| CPU wait | note |\n");
		fprintf(f, "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
		           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |\n");
		for (int i = 0; i < n_rows; i++) {
			struct row *r = &rows[i];
			if (r->sec != SEC_RANDOM)
				continue;
			c_size(f, r->chunk);
			c_s(f, codec_str(r->codec));
			c_s(f, r->install);
			c_f(f, r->touch_p50, 0);
			c_f(f, r->touch_p99, 0);
			c_f(f, r->fault_p50, 0);
			c_f(f, r->fault_p90, 0);
			c_f(f, r->fault_p99, 0);
			c_f(f, r->wait_p50, 0);
			c_f(f, r->read_p50, 0);
			c_f(f, r->dec_p50, 0);
			c_f(f, r->inst_p50, 0);
			c_f(f, r->over_p50, 0);
			c_f(f, r->over_p50_2m, 0);
			c_f(f, r->over_mean, 0);
			c_f(f, r->over_mean_2m, 0);
			c_f(f, r->tover_p50, 0);
			c_f(f, r->tover_mean, 0);
			c_s(f, overhead_verdict(r));
			c_p(f, r->thp_frac);
			c_p(f, r->psi_cpu);
			c_s(f, r->note);
			end_row(f);
		}
	}

	if (any_random) {
		fprintf(f, "\nWhere a touch's overhead goes, p50 of each part in µs (from the trace, "
		           "per touch): waiting for a loader; the install ioctl, which wakes the "
		           "thread; the rest of the loader's path (claim, pool, reserve, ledger); "
		           "the kernel's (the touch's time outside the handler's fault → install: the "
		           "fault's delivery, the thread's wake-up and return).  The p50s of the parts "
		           "need not add up to the p50 of the whole.\n\n");
		fprintf(f, "| chunk | codec | install | touch overhead p50 | wait | install ioctl "
		           "| loader, other | kernel |\n| ---: | --- | --- | ---: | ---: | ---: | ---: "
		           "| ---: |\n");
		for (int i = 0; i < n_rows; i++) {
			struct row *r = &rows[i];
			if (r->sec != SEC_RANDOM)
				continue;
			c_size(f, r->chunk);
			c_s(f, codec_str(r->codec));
			c_s(f, r->install);
			for (int k = 0; k < 5; k++)
				c_f(f, r->tk_p50[k], 0);
			end_row(f);
		}
	}

	int any_sweep = 0;
	for (int i = 0; i < n_rows; i++)
		any_sweep |= rows[i].sec == SEC_SWEEP;
	if (any_sweep) {
		fprintf(f, "\n## Loaders × read-ahead, raw 2 MiB chunks, default install\n\n");
		fprintf(f, "Cold sequential scan.  Latencies in µs.%s\n\n",
		        O.whatif && !O.sweep_ra_given
		            ? "  As is only read-ahead 0, 4 and 16, next to the what-if rows." : "");
		fprintf(f, "| install | loaders | read-ahead | GB/s | × O_DIRECT | × paired | fault p50 "
		           "| fault p99 "
		           "| read p50 | install p50 | faults | loads demand + ahead | huge-mapped "
		           "| CPU wait |\n");
		fprintf(f, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
		           "| ---: | ---: | ---: |\n");
		for (int i = 0; i < n_rows; i++) {
			struct row *r = &rows[i];
			if (r->sec != SEC_SWEEP)
				continue;
			fprintf(f, "| %s | %d | %d ", r->install, r->loaders, r->readahead);
			c_f(f, r->gbps, 2);
			c_p(f, r->ratio);
			c_p(f, r->paired);
			c_f(f, r->fault_p50, 0);
			c_f(f, r->fault_p99, 0);
			c_f(f, r->read_p50, 0);
			c_f(f, r->inst_p50, 0);
			c_loads(f, r);
			c_p(f, r->thp_frac);
			c_p(f, r->psi_cpu);
			end_row(f);
		}
	}

	int any_host = 0;
	for (int i = 0; i < n_rows; i++)
		any_host |= rows[i].sec == SEC_HOST;
	if (any_host) {
		fprintf(f, "\n## Host memory: warm vs cold\n\n");
		fprintf(f, "Every table above is host-warm: a reserve of touched memory is freed just "
		           "before each measurement, so fresh pages come from memory the host still "
		           "backs.  Host-cold repeats keep the reserve and wait %d s, so they get memory "
		           "that has been free for long and that the VM has reported to the host "
		           "(virtio free page reporting), as on an idle VM loading a model.  GB/s for "
		           "scans; µs per touch for random access.\n\n",
		        FL_REPORT_WAIT_S);
		fprintf(f, "| measurement | configuration | warm GB/s | cold GB/s | cold / warm "
		           "| warm touch p50 | cold touch p50 | warm read p50 | cold read p50 "
		           "| warm fault p50 | cold fault p50 |\n");
		fprintf(f, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
		for (int i = 0; i < n_rows; i++) {
			struct row *c = &rows[i];
			if (c->sec != SEC_HOST)
				continue;
			struct row none, *w = c->twin >= 0 ? &rows[c->twin] : NULL;
			if (!w) {
				none = *c;
				none.gbps = none.touch_p50 = none.read_p50 = none.fault_p50 = NAN;
				w = &none;
			}
			c_s(f, c->what);
			if (c->chunk) {
				char cfg[64];
				snprintf(cfg, sizeof cfg, "%s %s, %s", fl_size_str(c->chunk, sz, sizeof sz),
				         codec_str(c->codec), c->install);
				c_s(f, cfg);
			} else {
				c_s(f, c->config);
			}
			c_f(f, w->gbps, 2);
			c_f(f, c->gbps, 2);
			c_p(f, c->touch_p50 > 0 ? w->touch_p50 / c->touch_p50 : c->gbps / w->gbps);
			c_f(f, w->touch_p50, 0);
			c_f(f, c->touch_p50, 0);
			c_f(f, w->read_p50, 0);
			c_f(f, c->read_p50, 0);
			c_f(f, w->fault_p50, 0);
			c_f(f, c->fault_p50, 0);
			end_row(f);
		}
		fprintf(f, "\ncold / warm: throughput ratio, or for random access the ratio of touch "
		           "latencies (warm / cold).\n");
	}

	/* Goals: for the library as it is, and for the what-if. */
	fprintf(f, "\n## Goals\n\n| goal | configuration | measured | result |\n"
	           "| --- | --- | ---: | --- |\n");
	int any_goal = 0;
	for (int w = 0; w < 2; w++) {
		const char *who = w ? "what-if: THP-eligible region*" : "libflexpage as is";
		struct row *seq2 = NULL, *rnd2 = NULL, *best = NULL;
		for (int i = 0; i < n_rows; i++) {
			struct row *r = &rows[i];
			if (r->chunk != (2u << 20) || r->codec != FP_CODEC_RAW || r->no_huge ||
			    r->thp_region != w || r->host_cold)
				continue;
			if (r->sec == SEC_SEQ && !seq2)
				seq2 = r;
			if (r->sec == SEC_RANDOM && !rnd2)
				rnd2 = r;
			if ((r->sec == SEC_SWEEP || r->sec == SEC_SEQ) && (!best || r->gbps > best->gbps))
				best = r;
		}
		if (seq2)
			fprintf(f, "| cold sequential scan ≥ %.0f%% of best O_DIRECT, raw 2 MiB chunks "
			           "| %s, defaults (%d loaders, read-ahead %d) | %.0f%% (%.2f GB/s) "
			           "| %s |\n",
			        100 * GOAL_SEQ_RATIO, who, seq2->loaders, seq2->readahead,
			        100 * seq2->ratio, seq2->gbps,
			        seq2->ratio >= GOAL_SEQ_RATIO ? "PASS" : "MISS");
		if (best && best != seq2)
			fprintf(f, "| same | %s, best of the sweep (%d loaders, read-ahead %d) "
			           "| %.0f%% (%.2f GB/s) | %s |\n",
			        who, best->loaders, best->readahead, 100 * best->ratio, best->gbps,
			        best->ratio >= GOAL_SEQ_RATIO ? "PASS" : "MISS");
		if (rnd2)
			fprintf(f, "| fault overhead beyond read and decompression < %.0f µs per 2 MiB "
			           "at p50, raw 2 MiB chunks, random access | %s | %.0f µs (from means: "
			           "%.0f µs) | %s |\n",
			        GOAL_OVERHEAD_US, who, rnd2->over_p50_2m, rnd2->over_mean_2m,
			        overhead_verdict(rnd2));
		if (rnd2 && !isnan(rnd2->tover_p50)) {
			double sc = (double)(2u << 20) / (double)rnd2->chunk;
			fprintf(f, "| same, as the touching thread sees it (touch less read and decode) "
			           "| %s | %.0f µs (mean %.0f µs) | %s |\n",
			        who, rnd2->tover_p50 * sc, rnd2->tover_mean * sc,
			        rnd2->tover_p50 * sc < GOAL_OVERHEAD_US ? "PASS" : "MISS");
		}
		any_goal |= seq2 || rnd2;
	}
	if (!any_goal)
		fprintf(f, "| (raw 2 MiB chunks were not measured) | – | – | – |\n");
	if (whatif_moot)
		fprintf(f, "\nlibflexpage already marks a region that takes huge pages "
		           "MADV_HUGEPAGE, so this run has no what-if rows.\n");
	else
		fprintf(f, "\n\\* what-if: the benchmark calls madvise(MADV_HUGEPAGE) on the region after "
	           "fp_open, replacing libflexpage's MADV_NOHUGEPAGE, so that UFFDIO_MOVE can hand "
	           "over whole 2 MiB pages.  Not what libflexpage does today; it shows what the fix "
	           "would give.  huge-mapped: share of the region's resident bytes mapped as huge "
	           "pages (/proc/self/smaps AnonHugePages).\n");
	fprintf(f, "\nPASS/MISS are reported, never enforced: a benchmark asserts nothing.\n");
}

static void write_csv(FILE *f)
{
	fprintf(f, "section,what,config,chunk_bytes,codec,install,loaders,readahead,bytes,seconds,"
	           "gbps,ratio_best_odirect,ratio_bound,fault_p50_us,fault_p90_us,fault_p99_us,"
	           "wait_p50_us,read_p50_us,decompress_p50_us,install_p50_us,overhead_p50_us,"
	           "overhead_p50_per_2m_us,overhead_mean_us,overhead_mean_per_2m_us,touch_p50_us,"
	           "touch_p99_us,touch_overhead_p50_us,touch_overhead_mean_us,huge_mapped_share,"
	           "cpu_wait_share,ratio_paired_odirect,faults,demand_loads,prefetch_loads,"
	           "huge_installs,small_installs,host_memory,note\n");
	for (int i = 0; i < n_rows; i++) {
		struct row *r = &rows[i];
		double v[] = {r->seconds, r->gbps, r->ratio, r->bound_ratio, r->fault_p50,
		              r->fault_p90, r->fault_p99, r->wait_p50, r->read_p50, r->dec_p50,
		              r->inst_p50, r->over_p50, r->over_p50_2m, r->over_mean, r->over_mean_2m,
		              r->touch_p50, r->touch_p99, r->tover_p50, r->tover_mean, r->thp_frac,
		              r->psi_cpu, r->paired};
		fprintf(f, "%s,\"%s\",\"%s\",", section_name[r->sec], r->what, r->config);
		if (r->chunk)
			fprintf(f, "%u", r->chunk);
		fprintf(f, ",%s,%s,", codec_str(r->codec), r->install);
		if (r->loaders >= 0)
			fprintf(f, "%d", r->loaders);
		fputc(',', f);
		if (r->readahead >= 0)
			fprintf(f, "%d", r->readahead);
		fprintf(f, ",%llu", (unsigned long long)r->bytes);
		for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
			if (isnan(v[k]))
				fputc(',', f);
			else
				fprintf(f, ",%.6g", v[k]);
		}
		if (!r->chunk)
			fprintf(f, ",,,,,,");
		else
			fprintf(f, ",%llu,%llu,%llu,%llu,%llu,", (unsigned long long)r->faults,
			        (unsigned long long)r->demand, (unsigned long long)r->ahead,
			        (unsigned long long)r->huge, (unsigned long long)r->small);
		fprintf(f, "%s,", r->host_cold ? "cold" : "warm");
		/* The note, with quotes doubled. */
		fputc('"', f);
		for (const char *p = r->note; *p; p++) {
			if (*p == '"')
				fputc('"', f);
			fputc(*p, f);
		}
		fputs("\"\n", f);
	}
}

static void save(const char *name, const char *text)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", O.out, name);
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) == EOF || fclose(f)) {
		fl_note("%s: cannot write: %s", path, strerror(errno));
		exit(1);
	}
	fl_note("wrote %s", path);
}

/* ---- main ------------------------------------------------------------- */

static void write_image(const char *path, uint32_t chunk, int codec)
{
	char b[32];
	double t0 = fl_now();
	if (fl_write_image(&D, path, chunk, (uint32_t)codec, O.zstd_level))
		fl_die("%s: cannot write the image", path);
	fl_note("wrote %s (%s chunks, %s) in %.1f s", path, fl_size_str(chunk, b, sizeof b),
	        codec ? "zstd" : "raw", fl_now() - t0);
}

static void remove_image(const char *path)
{
	if (!O.keep && unlink(path) && errno != ENOENT)
		fl_note("%s: cannot remove: %s", path, strerror(errno));
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	double t_start = fl_now();
	run_psi0 = fl_cpu_pressure_us();
	run_load0 = fl_loadavg();
	char started[64];
	time_t now = time(NULL);
	strftime(started, sizeof started, "%Y-%m-%d %H:%M UTC", gmtime(&now));

	if (fl_mkdirs(O.dir))
		fl_die("%s: cannot create the image directory: %s", O.dir, strerror(errno));
	if (fl_mkdirs(O.out))
		fl_die("%s: cannot create the results directory: %s", O.out, strerror(errno));
	if (!fl_no_drop && access("/proc/sys/vm/drop_caches", W_OK))
		fl_die("/proc/sys/vm/drop_caches: %s: cold runs need root (or pass --no-drop for "
		       "warm numbers)", strerror(errno));
	char machine[1024];
	fl_machine_info(O.dir, machine, sizeof machine);
	fl_note("%s", machine);

	char b[32];
	double t0 = fl_now();
	fl_data_make(&D, O.size, O.seed);
	{
		uint64_t *off = malloc(sizeof *off * (size_t)D.n), *len = malloc(sizeof *len * (size_t)D.n);
		if (!off || !len)
			fl_die("out of memory");
		for (int i = 0; i < D.n; i++) {
			off[i] = D.t[i].off;
			len[i] = D.t[i].size;
		}
		expect_sum = fl_scan(D.buf, off, len, D.n, O.touch);
		free(off);
		free(len);
	}
	fl_note("made %s of Q8_0-like data (%d tensors) in %.1f s", fl_size_str(D.size, b, sizeof b),
	        D.n, fl_now() - t0);
	/* The warm reserve: as much as the largest measurement keeps. */
	reserve_bytes = D.size + (D.size >> 3) + (64u << 20);
	fl_reserve_hold(reserve_bytes);

	/* The bounds, on the raw 2 MiB image (its raw bytes are the same for
	 * every chunk size). */
	char bound_path[4096];
	image_path(bound_path, sizeof bound_path, 2u << 20, FP_CODEC_RAW);
	write_image(bound_path, 2u << 20, FP_CODEC_RAW);
	if (O.whatif) {
		/* The what-if is moot once libflexpage makes the region
		 * THP-eligible itself. */
		fp_region *reg = fp_open(bound_path, NULL);
		if (!reg)
			fl_die("%s", fp_last_error());
		if (fl_vma_hugepage(fp_region_base(reg)) == 1) {
			O.whatif = 0;
			whatif_moot = 1;
			fl_note("libflexpage already marks the region MADV_HUGEPAGE: no what-if runs");
		}
		fp_close(reg);
	}
	measure_bounds(bound_path);

	/* Every chunk size and codec: sequential, then random access. */
	for (int ci = 0; ci < O.n_chunks; ci++) {
		uint32_t chunk = (uint32_t)O.chunks[ci];
		for (int codec = 0; codec < 2; codec++) {
			if ((codec == 0 && !O.raw) || (codec == 1 && !O.zstd))
				continue;
			char path[4096];
			image_path(path, sizeof path, chunk, codec);
			if (strcmp(path, bound_path))
				write_image(path, chunk, codec);
			if (codec == FP_CODEC_ZSTD) {
				struct fl_zstd_rate zr;
				uint64_t p0 = fl_cpu_pressure_us();
				double z0 = fl_now();
				int zrc = fl_zstd_rate(path, &zr);
				zstd_psi[ci] = p0 ? (double)(fl_cpu_pressure_us() - p0) / 1e6 / (fl_now() - z0)
				                  : NAN;
				if (zrc)
					fl_die("%s: the zstd decode measurement failed", path);
				zstd_rate[ci] = zr.gbps;
				zstd_ratio[ci] = zr.ratio;
				fl_note("  zstd decode %s chunks: %.2f GB/s (one thread), ratio %.3f, "
				        "%.0f us per chunk, %u zstd + %u raw chunks",
				        fl_size_str(chunk, b, sizeof b), zr.gbps, zr.ratio, zr.chunk_us_p50,
				        zr.zstd_chunks, zr.raw_chunks);
			}
			/* UFFDIO_MOVE needs whole 2 MiB pages: below 2 MiB the
			 * default already copies. */
			int variants = chunk % (2u << 20) == 0 ? (O.whatif ? 3 : 2) : 1;
			for (int v = 0; v < variants; v++)
				run_pager(SEC_SEQ, path, chunk, codec, v == 1, 0, -1, 0, 0, v == 2);
			if (O.random_touches)
				for (int v = 0; v < variants; v++)
					run_pager(SEC_RANDOM, path, chunk, codec, v == 1, 0, -1, 1, 0, v == 2);
			if (strcmp(path, bound_path))
				remove_image(path);
		}
	}

	/* What the raw 2 MiB case needs to reach the disk's bandwidth. */
	if (O.n_sweep_loaders && O.n_sweep_ra) {
		fl_note("loaders x read-ahead sweep on %s", bound_path);
		for (int w = 0; w < (O.whatif ? 2 : 1); w++)
			for (int li = 0; li < O.n_sweep_loaders; li++)
				for (int ri = 0; ri < O.n_sweep_ra; ri++)
				{
					/* As is (huge pages split), only read-ahead 0, 4 and 16
					 * unless asked: these runs are slow, and the what-if
					 * rows show the shape. */
					uint64_t ra = O.sweep_ra[ri];
					if (!w && O.whatif && !O.sweep_ra_given && ra != 0 && ra != 4 && ra != 16)
						continue;
					run_pager(SEC_SWEEP, bound_path, 2u << 20, FP_CODEC_RAW, 0,
					          (int)O.sweep_loaders[li], (int)ra, 0, 0, w);
				}
	}

	/* The same on a host that took the free memory back: what loading a
	 * model on an idle VM meets. */
	if (O.host_cold) {
		int ci2 = -1;
		for (int i = 0; i < O.n_chunks; i++)
			if (O.chunks[i] == (2u << 20))
				ci2 = i;
		fl_note("host-cold: every measurement first waits %d s for the host to take the "
		        "free memory back", FL_REPORT_WAIT_S);
		measure_resident(bound_path, 1);
		host_cold_row();
		measure_mmap(bound_path, 0, 1);
		host_cold_row();
		if (ci2 >= 0 && O.raw) {
			for (int v = 0; v < (O.whatif ? 3 : 2); v++) {
				run_pager(SEC_SEQ, bound_path, 2u << 20, FP_CODEC_RAW, v == 1, 0, -1, 0, 1,
				          v == 2);
				host_cold_row();
			}
			if (O.random_touches) {
				for (int v = 0; v < (O.whatif ? 3 : 1); v += 2) {
					run_pager(SEC_RANDOM, bound_path, 2u << 20, FP_CODEC_RAW, v == 1, 0, -1,
					          1, 1, v == 2);
					host_cold_row();
				}
			}
		}
	}
	measure_odirect(bound_path, "at the end");
	fl_reserve_release();
	remove_image(bound_path);
	finalize_ratios();

	/* The report. */
	char *md = NULL, *csv = NULL;
	size_t mdn = 0, csvn = 0;
	FILE *f = open_memstream(&md, &mdn);
	FILE *g = open_memstream(&csv, &csvn);
	if (!f || !g)
		fl_die("out of memory");
	write_markdown(f, machine, started, fl_now() - t_start);
	write_csv(g);
	fclose(f);
	fclose(g);
	fputs(md, stdout);
	fflush(stdout);
	save("fault_latency.md", md);
	save("fault_latency.csv", csv);
	free(md);
	free(csv);
	free(rows);
	fl_data_free(&D);
	return 0;
}
