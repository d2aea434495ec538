/* bench/decode: decode speed of a fully resident model next to the
 * machine's memory read bandwidth, measured in the same run.
 *
 * A decode step reads every weight once, so its bound is
 * bytes_per_token / read_bandwidth; the ratio
 * bytes_per_token * tokens_per_s / bandwidth says how close the kernels
 * come to it.  The model is the tinyllama-1.1b shape in q8_0 (1.17 GB),
 * synthesized into the cache directory the first time.
 *
 * usage: decode [--model IMAGE] [--csv PATH] [--tokens N] [--shape NAME]
 *               [--quant TYPE]
 *   IMAGE defaults to $FLEXPAGE_CACHE (or ~/.cache/flexpage)/SHAPE-QUANT.img,
 *   PATH to bench/results/decode.csv.  Prints a Markdown table; asserts
 *   nothing. */
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

/* Medians over rounds; each round is a read pass by the same number of
 * threads, then a few tokens, so that the ratio compares the two under the
 * same conditions (this machine's bandwidth moves by 2x within seconds). */
struct decode_result {
	double tok_s, ms_token, bw, ratio;
};

static struct decode_result decode(const struct model *m, int threads, int rounds, int per_round,
                                   uint64_t bytes, const char *buf, size_t len)
{
	const int warm = 4;
	const struct frt_options o = {threads, warm + rounds * per_round};
	frt_model *rt = frt_model_create(&m->cfg, &m->weights, &o);
	struct decode_result r = {0, 0, 0, 0};
	if (!rt) {
		fprintf(stderr, "decode: %s\n", frt_last_error());
		return r;
	}
	double tok_s[64], bw[64], ratio[64];
	int token = FRT_BOS, pos = 0;
	for (; pos < warm; pos++)
		token = frt_argmax(frt_forward(rt, token, pos), m->cfg.vocab_size);
	read_pass(buf, len, threads);
	for (int k = 0; k < rounds; k++) {
		bw[k] = read_pass(buf, len, threads);
		const double t0 = now_s();
		for (int i = 0; i < per_round; i++, pos++)
			token = frt_argmax(frt_forward(rt, token, pos), m->cfg.vocab_size);
		tok_s[k] = per_round / (now_s() - t0);
		ratio[k] = (double)bytes * tok_s[k] / 1e9 / bw[k];
	}
	frt_model_destroy(rt);
	r.tok_s = median(tok_s, rounds);
	r.ms_token = 1e3 / r.tok_s;
	r.bw = median(bw, rounds);
	r.ratio = median(ratio, rounds);
	return r;
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"model", required_argument, 0, 'm'}, {"csv", required_argument, 0, 'c'},
		{"tokens", required_argument, 0, 'n'}, {"shape", required_argument, 0, 's'},
		{"quant", required_argument, 0, 'q'},
		{"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
	};
	const char *model_path = NULL, *csv = FLEXPAGE_BENCH_RESULTS "/decode.csv";
	const char *shape_name = "tinyllama-1.1b", *quant = "q8_0";
	int tokens = 64, o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'm': model_path = optarg; break;
		case 'c': csv = optarg; break;
		case 'n': tokens = atoi(optarg); break;
		case 's': shape_name = optarg; break;
		case 'q': quant = optarg; break;
		default:
			fprintf(o == 'h' ? stdout : stderr,
			        "usage: decode [--model IMAGE] [--csv PATH] [--tokens N] [--shape NAME] "
			        "[--quant TYPE]\n");
			return o == 'h' ? 0 : 2;
		}
	}
	if (tokens < 4 || tokens > 256)
		tokens = 64;
	struct model_shape shape;
	char path[4096];
	if (model_parse_shape(shape_name, &shape)) {
		fprintf(stderr, "decode: %s\n", model_last_error());
		return 2;
	}
	const int type = fk_type_parse(quant);
	if (type < 0) {
		fprintf(stderr, "decode: --quant: '%s' is not f32, q8_0 or q4_0\n", quant);
		return 2;
	}
	if (!model_path) {
		const char *cache = getenv("FLEXPAGE_CACHE"), *home = getenv("HOME");
		if (cache && *cache)
			snprintf(path, sizeof path, "%s/%s-%s.img", cache, shape_name, quant);
		else
			snprintf(path, sizeof path, "%s/.cache/flexpage/%s-%s.img", home ? home : "/tmp",
			         shape_name, quant);
		model_path = path;
	}
	if (access(model_path, R_OK)) {
		mkdirs(model_path);
		if (synthesize(model_path, &shape, type))
			return 1;
	}

	struct model m;
	struct model_options mo = {0};
	mo.load = MODEL_LOAD_RESIDENT;
	fprintf(stderr, "reading %s into memory...\n", model_path);
	if (model_open(&m, model_path, &mo)) {
		fprintf(stderr, "decode: %s\n", model_last_error());
		return 1;
	}
	char cpu[256];
	cpu_name(cpu, sizeof cpu);
	const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	const size_t bw_len = 1ull << 30;
	char *buf = bw_buffer(bw_len);
	const struct frt_options probe = {1, 1};
	frt_model *rt = frt_model_create(&m.cfg, &m.weights, &probe);
	if (!rt || !buf) {
		fprintf(stderr, "decode: %s\n", rt ? "out of memory" : frt_last_error());
		model_close(&m);
		return 1;
	}
	const uint64_t bytes = frt_model_bytes_per_token(rt);
	frt_model_destroy(rt);
	struct decode_result d[3];
	const int per_round = 4, rounds = (tokens + per_round - 1) / per_round;
	for (int t = 1; t <= 2; t++)
		d[t] = decode(&m, t, rounds, per_round, bytes, buf, bw_len);
	munmap(buf, bw_len);

	printf("\n### Decode, %s %s fully resident (%.2f GB of weights per token)\n\n", shape_name,
	       quant, (double)bytes / 1e9);
	printf("CPU: %s, %ld CPUs online, kernels %s; %d rounds of (a read pass over 1 GiB, then %d "
	       "tokens) after 4 tokens of warm-up; medians\n\n", cpu, ncpu, fk_isa_name(fk_get_isa()),
	       rounds, per_round);
	printf("| threads | tokens/s | ms/token | weights GB/s | read bandwidth GB/s | of bandwidth |\n");
	printf("| ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (int t = 1; t <= 2; t++)
		printf("| %d | %.2f | %.1f | %.1f | %.1f | %.0f%% |\n", t, d[t].tok_s, d[t].ms_token,
		       (double)bytes * d[t].tok_s / 1e9, d[t].bw, 100 * d[t].ratio);
	printf("\n(read bandwidth: the better of a plain and a prefetching streaming read by the same "
	       "number of threads; of bandwidth: weight bytes per token x tokens/s / read bandwidth, "
	       "per round)\n");

	mkdirs(csv);
	FILE *f = fopen(csv, "w");
	if (!f) {
		fprintf(stderr, "decode: %s: %s\n", csv, strerror(errno));
	} else {
		fprintf(f, "shape,quant,kernels,threads,tokens,bytes_per_token,tokens_per_s,ms_per_token,"
		           "weights_gb_s,bandwidth_gb_s,fraction_of_bandwidth,cpu\n");
		for (int t = 1; t <= 2; t++)
			fprintf(f, "%s,%s,%s,%d,%d,%llu,%.3f,%.3f,%.3f,%.3f,%.4f,\"%s\"\n", shape_name, quant,
			        fk_isa_name(fk_get_isa()), t, rounds * per_round, (unsigned long long)bytes,
			        d[t].tok_s, d[t].ms_token, (double)bytes * d[t].tok_s / 1e9, d[t].bw,
			        d[t].ratio, cpu);
		fclose(f);
		fprintf(stderr, "wrote %s\n", csv);
	}
	model_close(&m);
	return 0;
}
