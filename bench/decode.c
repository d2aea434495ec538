/* bench/decode: decode speed of fully resident models next to the
 * machine's memory read bandwidth and, with --peer, next to llama.cpp's
 * llama-bench on the same GGUF files, measured in the same rounds.
 *
 * A decode step reads every weight once, so its bound is
 * bytes_per_token / read_bandwidth; the ratio
 * bytes_per_token * tokens_per_s / bandwidth says how close the kernels
 * come to it.  Without --model the model is the tinyllama-1.1b shape in
 * q8_0, synthesized into the cache directory the first time.
 *
 * A round is, for each model and thread count in turn: a read pass over
 * 1 GiB, N tokens of flexpage on the weights in the file's layout and N
 * on the kernels' repacked copy of them (frt_model_repack; the two take
 * turns at going first), then (with --peer) one llama-bench run of N
 * tokens at the same thread count.  Systems alternate inside a round, so
 * the machine's load (shared vCPUs, other work) hits both alike; the
 * tables give per-round ratios, their median and the load average seen.
 * llama-bench runs as users run it: its defaults, mmap, and for q4_0 its
 * CPU repacking of the weights.
 *
 * usage: decode [--model FILE]... [--peer DIR] [--rounds R] [--tokens N]
 *               [--threads LIST] [--out DIR] [--shape NAME] [--quant TYPE]
 *   FILE is an image or a GGUF (several: repeat --model); DIR for --peer
 *   is llama.cpp's bin directory (bench/peers/llama-cpp --print-dir);
 *   --out writes decode.csv and decode.md there (default bench/results/
 *   decode).  Prints the Markdown; asserts nothing. */
#include <errno.h>
#include <getopt.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <flexkern/kernels.h>
#include <flexpage/flexpage.h>
#include <flexmodel/model.h>
#include <flexrt/runtime.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ------------------------------------------------------------------ */
/* Read bandwidth: each thread streams its share of a resident buffer   */

struct reader {
	const char *p;
	size_t n;
	int prefetch;
	uint64_t sum;
};

/* Four independent sums of 32-byte loads; with prefetch, the kernels'
 * non-temporal prefetch 4 KiB ahead, which some machines stream faster. */
__attribute__((target("avx2"))) static uint64_t read_avx2(const char *p, size_t n, int prefetch)
{
	__m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
	for (size_t i = 0; i + 128 <= n; i += 128) {
		if (prefetch) {
			_mm_prefetch(p + i + 4096, _MM_HINT_NTA);
			_mm_prefetch(p + i + 4096 + 64, _MM_HINT_NTA);
		}
		a = _mm256_add_epi64(a, _mm256_load_si256((const __m256i *)(p + i)));
		b = _mm256_add_epi64(b, _mm256_load_si256((const __m256i *)(p + i + 32)));
		c = _mm256_add_epi64(c, _mm256_load_si256((const __m256i *)(p + i + 64)));
		d = _mm256_add_epi64(d, _mm256_load_si256((const __m256i *)(p + i + 96)));
	}
	a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
	uint64_t v[4];
	memcpy(v, &a, sizeof v);
	return v[0] + v[1] + v[2] + v[3];
}

static uint64_t read_plain(const char *p, size_t n)
{
	const uint64_t *q = (const uint64_t *)p;
	uint64_t a = 0, b = 0, c = 0, d = 0;
	for (size_t i = 0; i + 4 <= n / 8; i += 4) {
		a += q[i];
		b += q[i + 1];
		c += q[i + 2];
		d += q[i + 3];
	}
	return a + b + c + d;
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	r->sum = __builtin_cpu_supports("avx2") ? read_avx2(r->p, r->n, r->prefetch)
	                                        : read_plain(r->p, r->n);
	return NULL;
}

/* GB/s of one pass of nth threads over buf. */
static double read_once(const char *buf, size_t len, int nth, int prefetch)
{
	pthread_t t[8];
	struct reader r[8];
	const size_t share = len / (size_t)nth & ~(size_t)127;
	const double t0 = now_s();
	for (int i = 0; i < nth; i++) {
		r[i] = (struct reader){buf + (size_t)i * share, share, prefetch, 0};
		pthread_create(&t[i], NULL, reader_main, &r[i]);
	}
	for (int i = 0; i < nth; i++)
		pthread_join(t[i], NULL);
	return (double)share * nth / (now_s() - t0) / 1e9;
}

/* The read bandwidth: the better of a plain pass and a prefetching one. */
static double read_pass(const char *buf, size_t len, int nth)
{
	const double a = read_once(buf, len, nth, 0), b = read_once(buf, len, nth, 1);
	return a > b ? a : b;
}

/* A buffer far larger than the caches, for read passes. */
static char *bw_buffer(size_t len)
{
	char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return NULL;
	madvise(buf, len, MADV_HUGEPAGE);
	memset(buf, 1, len);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Decode                                                               */

#define MAX_MODELS 8
#define MAX_THREADS 4
#define MAX_ROUNDS 15

/* One flexpage runtime kept across rounds, so each round continues its
 * sequence (positions grow by N a round, as llama-bench's do within one
 * run). */
struct fp_sys {
	frt_model *rt;
	int token, pos;
};

/* flexpage's two layouts of resident weights: the file's, and the
 * kernels' 8-row interleaved copy (frt_model_repack). */
enum { FILE_LAYOUT, REPACKED, N_LAYOUTS };
static const char *const layout_name[N_LAYOUTS] = {"flexpage", "flexpage-repacked"};

static int fp_start(struct fp_sys *f, const struct model *m, int threads, int positions, int layout)
{
	const int warm = 4;
	const struct frt_options o = {threads, warm + positions};
	f->rt = frt_model_create(&m->cfg, &m->weights, &o);
	if (!f->rt || (layout == REPACKED && frt_model_repack(f->rt))) {
		fprintf(stderr, "decode: %s\n", frt_last_error());
		return -1;
	}
	f->token = FRT_BOS;
	for (f->pos = 0; f->pos < warm; f->pos++)
		f->token = frt_argmax(frt_forward(f->rt, f->token, f->pos), m->cfg.vocab_size);
	return 0;
}

static double fp_round(struct fp_sys *f, const struct model *m, int n)
{
	const double t0 = now_s();
	for (int i = 0; i < n; i++, f->pos++)
		f->token = frt_argmax(frt_forward(f->rt, f->token, f->pos), m->cfg.vocab_size);
	return n / (now_s() - t0);
}

/* One llama-bench run, tg of n tokens on threads threads, its defaults
 * otherwise; its avg_ts, or 0 (with the reason on stderr). */
static double peer_round(const char *dir, const char *gguf, int threads, int n)
{
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "'%s/llama-bench' -m '%s' -p 0 -n %d -r 1 -t %d -o csv 2>/dev/null",
	         dir, gguf, n, threads);
	FILE *p = popen(cmd, "r");
	if (!p) {
		fprintf(stderr, "decode: cannot run %s/llama-bench: %s\n", dir, strerror(errno));
		return 0;
	}
	char line[8192];
	int col = -1;
	double ts = 0;
	while (fgets(line, sizeof line, p)) {
		int c = 0;
		for (char *save = NULL, *f = strtok_r(line, ",\n", &save); f;
		     f = strtok_r(NULL, ",\n", &save), c++) {
			if (col < 0 && !strcmp(f, "avg_ts"))
				col = c;
			else if (col >= 0 && c == col)
				ts = strtod(f + (*f == '"'), NULL);
		}
	}
	const int st = pclose(p);
	if (st || ts <= 0)
		fprintf(stderr, "decode: llama-bench on %s failed (status %d): no avg_ts\n", gguf, st);
	return ts;
}

static double load_average(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static int synthesize(const char *path, const struct model_shape *s, int type)
{
	struct fp_writer_options wo = {
		.chunk_size = 2u << 20,
		.codec = FP_CODEC_RAW,
		.expected_bytes = model_synth_bytes(&s->cfg, s->shared_classifier, type),
		.progress = 1,
	};
	fprintf(stderr, "synthesizing %s (%s, %s)...\n", path, s->name, fk_type_name(type));
	fp_writer *w = fp_writer_create(path, &wo);
	if (!w) {
		fprintf(stderr, "decode: %s\n", fp_last_error());
		return -1;
	}
	if (model_synth_write(w, &s->cfg, s->shared_classifier, type, 1, 2)) {
		fp_writer_abort(w);
		fprintf(stderr, "decode: %s\n", model_last_error());
		return -1;
	}
	if (fp_writer_finish(w)) {
		fprintf(stderr, "decode: %s\n", fp_last_error());
		return -1;
	}
	return 0;
}

static void mkdirs(const char *path)
{
	char p[4096];
	snprintf(p, sizeof p, "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s == '/') {
			*s = 0;
			mkdir(p, 0755);
			*s = '/';
		}
	}
}

static void cpu_name(char *buf, size_t n)
{
	snprintf(buf, n, "unknown CPU");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, "model name", 10)) {
			char *c = strchr(line, ':');
			if (c) {
				snprintf(buf, n, "%s", c + 2);
				buf[strcspn(buf, "\n")] = 0;
			}
			break;
		}
	}
	fclose(f);
}

static int is_gguf(const char *path)
{
	const size_t n = strlen(path);
	return n > 5 && !strcmp(path + n - 5, ".gguf");
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* Per model and thread count: flexpage's and the peer's rate each round. */
struct cell {
	double fp[N_LAYOUTS][MAX_ROUNDS], peer[MAX_ROUNDS], bw[MAX_ROUNDS], load[MAX_ROUNDS];
};

static double med(const double *v, int n)
{
	double t[MAX_ROUNDS];
	memcpy(t, v, sizeof *v * (size_t)n);
	return median(t, n);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: decode [--model FILE]... [--peer DIR] [--rounds R] [--tokens N]\n"
	        "              [--threads LIST] [--out DIR] [--shape NAME] [--quant TYPE]\n"
	        "  --model FILE    an image or GGUF, read into memory (repeat for several);\n"
	        "                  default: the --shape/--quant image in the cache\n"
	        "  --peer DIR      also run DIR/llama-bench (bench/peers/llama-cpp\n"
	        "                  --print-dir) on each GGUF model, alternating with flexpage\n"
	        "  --rounds R      rounds, medians over them (default 5, at most %d)\n"
	        "  --tokens N      tokens per system per round (default 16)\n"
	        "  --threads LIST  thread counts, e.g. 1,2 (default 1,2)\n"
	        "  --out DIR       where decode.csv and decode.md go (default\n"
	        "                  bench/results/decode)\n",
	        MAX_ROUNDS);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"model", required_argument, 0, 'm'},   {"out", required_argument, 0, 'o'},
		{"tokens", required_argument, 0, 'n'},  {"shape", required_argument, 0, 's'},
		{"quant", required_argument, 0, 'q'},   {"peer", required_argument, 0, 'p'},
		{"rounds", required_argument, 0, 'r'},  {"threads", required_argument, 0, 't'},
		{"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
	};
	const char *models[MAX_MODELS], *out = FLEXPAGE_BENCH_RESULTS "/decode", *peer = NULL;
	const char *shape_name = "tinyllama-1.1b", *quant = "q8_0";
	int n_models = 0, tokens = 16, rounds = 5, threads[MAX_THREADS] = {1, 2}, n_threads = 2, o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'm':
			if (n_models == MAX_MODELS) {
				fprintf(stderr, "decode: at most %d --model\n", MAX_MODELS);
				return 2;
			}
			models[n_models++] = optarg;
			break;
		case 'o': out = optarg; break;
		case 'n': tokens = atoi(optarg); break;
		case 's': shape_name = optarg; break;
		case 'q': quant = optarg; break;
		case 'p': peer = optarg; break;
		case 'r': rounds = atoi(optarg); break;
		case 't': {
			n_threads = 0;
			for (char *save = NULL, *f = strtok_r(optarg, ",", &save); f;
			     f = strtok_r(NULL, ",", &save)) {
				const int t = atoi(f);
				if (t < 1 || t > 64 || n_threads == MAX_THREADS) {
					fprintf(stderr, "decode: --threads: '%s' is not a list of up to %d "
					                "counts 1..64\n", f, MAX_THREADS);
					return 2;
				}
				threads[n_threads++] = t;
			}
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (tokens < 4 || tokens > 256 || rounds < 1 || rounds > MAX_ROUNDS || !n_threads) {
		fprintf(stderr, "decode: --tokens must be 4..256, --rounds 1..%d\n", MAX_ROUNDS);
		return 2;
	}
	char path[4096];
	if (!n_models) {
		struct model_shape shape;
		if (model_parse_shape(shape_name, &shape)) {
			fprintf(stderr, "decode: %s\n", model_last_error());
			return 2;
		}
		const int type = fk_type_parse(quant);
		if (type < 0) {
			fprintf(stderr, "decode: --quant: '%s' is not f32, q8_0 or q4_0\n", quant);
			return 2;
		}
		const char *cache = getenv("FLEXPAGE_CACHE"), *home = getenv("HOME");
		if (cache && *cache)
			snprintf(path, sizeof path, "%s/%s-%s.img", cache, shape_name, quant);
		else
			snprintf(path, sizeof path, "%s/.cache/flexpage/%s-%s.img", home ? home : "/tmp",
			         shape_name, quant);
		if (access(path, R_OK)) {
			mkdirs(path);
			if (synthesize(path, &shape, type))
				return 1;
		}
		models[n_models++] = path;
	}

	static struct model m[MAX_MODELS];
	uint64_t bytes[MAX_MODELS], xbytes[MAX_MODELS];
	const char *mtype[MAX_MODELS];
	for (int i = 0; i < n_models; i++) {
		struct model_options mo = {0};
		mo.load = MODEL_LOAD_RESIDENT;
		fprintf(stderr, "reading %s into memory...\n", models[i]);
		if (model_open(&m[i], models[i], &mo)) {
			fprintf(stderr, "decode: %s\n", model_last_error());
			return 1;
		}
		const struct frt_options probe = {1, 1};
		frt_model *rt = frt_model_create(&m[i].cfg, &m[i].weights, &probe);
		if (!rt) {
			fprintf(stderr, "decode: %s: %s\n", models[i], frt_last_error());
			return 1;
		}
		bytes[i] = frt_model_bytes_per_token(rt);
		const double t0 = now_s();
		if (frt_model_repack(rt)) {
			fprintf(stderr, "decode: %s: %s\n", models[i], frt_last_error());
			return 1;
		}
		fprintf(stderr, "repacked %s on 1 thread in %.2f s\n", base_name(models[i]), now_s() - t0);
		xbytes[i] = frt_model_bytes_per_token(rt);
		frt_model_destroy(rt);
		mtype[i] = fk_type_name(m[i].weights.layers[0].w1.type);
	}
	char cpu[256];
	cpu_name(cpu, sizeof cpu);
	const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	const size_t bw_len = 1ull << 30;
	char *buf = bw_buffer(bw_len);
	if (!buf) {
		fprintf(stderr, "decode: out of memory\n");
		return 1;
	}

	static struct fp_sys sys[MAX_MODELS][MAX_THREADS][N_LAYOUTS];
	static struct cell cells[MAX_MODELS][MAX_THREADS];
	fprintf(stderr, "starting the runtimes (and repacking)...\n");
	for (int i = 0; i < n_models; i++)
		for (int t = 0; t < n_threads; t++)
			for (int l = 0; l < N_LAYOUTS; l++)
				if (fp_start(&sys[i][t][l], &m[i], threads[t], rounds * tokens, l))
					return 1;
	read_pass(buf, bw_len, threads[n_threads - 1]);
	for (int k = 0; k < rounds; k++) {
		for (int i = 0; i < n_models; i++) {
			for (int t = 0; t < n_threads; t++) {
				struct cell *c = &cells[i][t];
				c->load[k] = load_average();
				c->bw[k] = read_pass(buf, bw_len, threads[t]);
				/* the layouts take turns at going first */
				for (int j = 0; j < N_LAYOUTS; j++) {
					const int l = (j + k) % N_LAYOUTS;
					c->fp[l][k] = fp_round(&sys[i][t][l], &m[i], tokens);
				}
				c->peer[k] = peer && is_gguf(models[i])
				                     ? peer_round(peer, models[i], threads[t], tokens) : 0;
				fprintf(stderr, "round %d/%d %s, %d threads: flexpage %.2f tokens/s, "
				        "repacked %.2f, llama-bench %.2f, load %.2f\n", k + 1, rounds,
				        base_name(models[i]), threads[t], c->fp[FILE_LAYOUT][k],
				        c->fp[REPACKED][k], c->peer[k], c->load[k]);
			}
		}
	}
	for (int i = 0; i < n_models; i++)
		for (int t = 0; t < n_threads; t++)
			for (int l = 0; l < N_LAYOUTS; l++)
				frt_model_destroy(sys[i][t][l].rt);
	munmap(buf, bw_len);

	/* Markdown to stdout and to DIR/decode.md, CSV (one row per round and
	 * system) to DIR/decode.csv */
	char md_path[4096], csv_path[4096];
	snprintf(md_path, sizeof md_path, "%s/decode.md", out);
	snprintf(csv_path, sizeof csv_path, "%s/decode.csv", out);
	mkdirs(md_path);
	FILE *md = fopen(md_path, "w"), *csv = fopen(csv_path, "w");
	if (!md || !csv)
		fprintf(stderr, "decode: %s: %s\n", !md ? md_path : csv_path, strerror(errno));
	FILE *outs[2] = {stdout, md};
	for (int s = 0; s < 2; s++) {
		FILE *f = outs[s];
		if (!f)
			continue;
		fprintf(f, "### Decode, fully resident, %s\n\n", peer ? "flexpage and llama-bench" : "flexpage");
		fprintf(f, "CPU: %s, %ld CPUs online, flexpage kernels %s; %d rounds, each of: per "
		           "model and thread count, a read pass over 1 GiB, %d tokens of flexpage on the "
		           "file's layout and %d on the repacked one (taking turns at going first)%s; "
		           "medians over rounds\n\n", cpu, ncpu, fk_isa_name(fk_get_isa()), rounds, tokens,
		        tokens, peer ? ", then llama-bench -p 0 -n N -r 1 -t T (its defaults otherwise)" : "");
		fprintf(f, "| model | type | threads | flexpage tokens/s | repacked tokens/s | repacked / "
		           "file (per round) | read bandwidth GB/s | repacked of bandwidth |%s load avg |\n",
		        peer ? " llama-bench tokens/s | file / llama-bench (median) | repacked / "
		               "llama-bench (per round) | median |" : "");
		fprintf(f, "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |%s ---: |\n",
		        peer ? " ---: | ---: | --- | ---: |" : "");
		for (int i = 0; i < n_models; i++) {
			for (int t = 0; t < n_threads; t++) {
				const struct cell *c = &cells[i][t];
				double frac[MAX_ROUNDS], gain[MAX_ROUNDS], ratio[N_LAYOUTS][MAX_ROUNDS];
				int n_ratio = 0;
				for (int k = 0; k < rounds; k++) {
					frac[k] = (double)xbytes[i] * c->fp[REPACKED][k] / 1e9 / c->bw[k];
					gain[k] = c->fp[REPACKED][k] / c->fp[FILE_LAYOUT][k];
					if (c->peer[k] > 0) {
						for (int l = 0; l < N_LAYOUTS; l++)
							ratio[l][n_ratio] = c->fp[l][k] / c->peer[k];
						n_ratio++;
					}
				}
				fprintf(f, "| %s | %s | %d | %.2f | %.2f | ", base_name(models[i]), mtype[i],
				        threads[t], med(c->fp[FILE_LAYOUT], rounds), med(c->fp[REPACKED], rounds));
				for (int k = 0; k < rounds; k++)
					fprintf(f, "%s%.2f", k ? ", " : "", gain[k]);
				fprintf(f, " | %.1f | %.0f%% |", med(c->bw, rounds), 100 * med(frac, rounds));
				if (peer) {
					if (n_ratio) {
						fprintf(f, " %.2f | %.2f | ", med(c->peer, rounds),
						        med(ratio[FILE_LAYOUT], n_ratio));
						for (int k = 0; k < n_ratio; k++)
							fprintf(f, "%s%.2f", k ? ", " : "", ratio[REPACKED][k]);
						fprintf(f, " | %.2f |", med(ratio[REPACKED], n_ratio));
					} else {
						fprintf(f, " – | – | – | – |");
					}
				}
				fprintf(f, " %.2f–%.2f |\n", c->load[0], c->load[rounds - 1]);
			}
		}
		fprintf(f, "\n(flexpage: the weights in the file's layout; repacked: after "
		           "frt_model_repack, the kernels' 8-row interleaved copy, bit-identical logits; "
		           "read bandwidth: the better of a plain and a prefetching streaming read by the "
		           "same number of threads; of bandwidth: weight bytes per token x tokens/s / read "
		           "bandwidth, per round; load avg: /proc/loadavg's 1-minute figure at the first "
		           "and last round)\n");
	}
	if (md)
		fclose(md);
	if (csv) {
		fprintf(csv, "model,type,kernels,threads,round,system,tokens,bytes_per_token,tokens_per_s,"
		             "bandwidth_gb_s,load_avg,cpu\n");
		for (int i = 0; i < n_models; i++)
			for (int t = 0; t < n_threads; t++)
				for (int k = 0; k < rounds; k++) {
					const struct cell *c = &cells[i][t];
					for (int sy = 0; sy < N_LAYOUTS + (peer && is_gguf(models[i])); sy++)
						fprintf(csv, "%s,%s,%s,%d,%d,%s,%d,%llu,%.3f,%.3f,%.2f,\"%s\"\n",
						        base_name(models[i]), mtype[i], fk_isa_name(fk_get_isa()),
						        threads[t], k + 1, sy < N_LAYOUTS ? layout_name[sy] : "llama-bench",
						        tokens, (unsigned long long)(sy == REPACKED ? xbytes[i] : bytes[i]),
						        sy < N_LAYOUTS ? c->fp[sy][k] : c->peer[k], c->bw[k], c->load[k], cpu);
				}
		fclose(csv);
		fprintf(stderr, "wrote %s and %s\n", csv_path, md_path);
	}
	for (int i = 0; i < n_models; i++)
		model_close(&m[i]);
	return 0;
}
