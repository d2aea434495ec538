/* bench/decode_contention: does decoding on several loaders starve the
 * compute threads?  T compute threads (a kernel pool running q8_0 matrix
 * products over a 2048 x 2048 matrix, as a decode step does) run for a
 * few seconds alone, then beside D threads that decode zstd payloads of
 * q8_0-like chunks (2 MiB, what the loaders decode), either flat out or
 * paced to a total decode rate split among them (the same work on 1 or
 * on 4 threads).  Prints and saves, per row, the compute throughput
 * (weight GB/s), its ratio to the compute alone measured in the same run,
 * the decode rate achieved, and the bound: compute alone x (1 - decode
 * CPU share / cores).
 *
 *   decode_contention [--threads T] [--seconds S] [--pace MB/s] [--out DIR]
 *
 * Results: DIR/decode_contention.{csv,md} (default bench/results/decode-contention). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include <flexkern/kernels.h>

#define N 2048
#define CHUNK (2u << 20)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* q8_0-like bytes: a scale, then 32 int8 of a narrow bell (zstd stores
 * them at about 7 of 8 bits, as it does plain q8_0 weights). */
static void fill_q8(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t b = 0; b + 34 <= n; b += 34) {
		uint16_t h = fk_fp32_to_fp16(0.01f + (float)(seed % 7) * 1e-3f);
		memcpy(p + b, &h, 2);
		for (int k = 0; k < 32; k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			double u = ((seed >> 11) & 0xffff) / 65536.0 + ((seed >> 27) & 0xffff) / 65536.0 +
			           ((seed >> 43) & 0xffff) / 65536.0 - 1.5;
			int v = (int)lround(u * 60);
			p[b + 2 + k] = (uint8_t)(int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
		}
	}
}

struct decoders {
	const void *frame;
	size_t frame_len;
	double pace;             /* total bytes/s over all; 0: flat out */
	int n;
	atomic_int stop;
	_Atomic uint64_t decoded;
	_Atomic uint64_t cpu_ns;
};

static void *decoder_main(void *arg)
{
	struct decoders *d = arg;
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	uint8_t *out = malloc(CHUNK);
	const double every = d->pace > 0 ? CHUNK / (d->pace / d->n) : 0; /* s a chunk, each */
	double next = now(), c0 = cpu_now();
	while (!atomic_load(&d->stop)) {
		size_t r = ZSTD_decompressDCtx(dctx, out, CHUNK, d->frame, d->frame_len);
		if (ZSTD_isError(r))
			abort();
		atomic_fetch_add(&d->decoded, r);
		if (every > 0) {
			next += every;
			double wait = next - now();
			if (wait > 0)
				usleep((useconds_t)(wait * 1e6));
		}
	}
	atomic_fetch_add(&d->cpu_ns, (uint64_t)((cpu_now() - c0) * 1e9));
	ZSTD_freeDCtx(dctx);
	free(out);
	return NULL;
}

/* Weight bytes/s of T threads' matrix products, for s seconds. */
static double compute(fk_pool *pool, const void *w, const float *x, float *y, double s)
{
	const size_t bytes = fk_row_bytes(FK_Q8_0, N) * N;
	double t0 = now(), t;
	uint64_t n = 0;
	do {
		fk_matvec(pool, y, w, FK_Q8_0, x, N, N);
		n++;
	} while ((t = now()) - t0 < s);
	return (double)n * bytes / (t - t0);
}

int main(int argc, char **argv)
{
	int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	double seconds = 2, pace = 300e6;
	const char *outdir = FLEXPAGE_BENCH_RESULTS "/decode-contention";
	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--threads") && a + 1 < argc)
			threads = atoi(argv[++a]);
		else if (!strcmp(argv[a], "--seconds") && a + 1 < argc)
			seconds = atof(argv[++a]);
		else if (!strcmp(argv[a], "--pace") && a + 1 < argc)
			pace = atof(argv[++a]) * 1e6;
		else if (!strcmp(argv[a], "--out") && a + 1 < argc)
			outdir = argv[++a];
		else {
			fprintf(stderr, "usage: decode_contention [--threads T] [--seconds S] "
			        "[--pace MB/s] [--out DIR]\n");
			return !!strcmp(argv[a], "--help") * 2;
		}
	}
	const long cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (threads < 1 || seconds <= 0 || pace <= 0) {
		fprintf(stderr, "decode_contention: --threads, --seconds and --pace must be positive\n");
		return 2;
	}
	/* the weights and a payload */
	const size_t wbytes = fk_row_bytes(FK_Q8_0, N) * N;
	float *wf = malloc(sizeof(float) * N), *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
	uint8_t *w = malloc(wbytes), *raw = malloc(CHUNK);
	for (int i = 0; i < N; i++)
		x[i] = (float)sin(i * 0.37);
	for (int r = 0; r < N; r++) {
		for (int i = 0; i < N; i++)
			wf[i] = (float)cos(r * 0.11 + i * 0.07);
		fk_quantize_row_q8_0(wf, (fk_block_q8_0 *)(w + (size_t)r * fk_row_bytes(FK_Q8_0, N)), N);
	}
	fill_q8(raw, CHUNK, 7);
	size_t cap = ZSTD_compressBound(CHUNK);
	void *frame = malloc(cap);
	size_t flen = ZSTD_compress(frame, cap, raw, CHUNK, 3);
	if (ZSTD_isError(flen))
		return 1;
	fk_pool *pool = fk_pool_create(threads);
	if (!pool) {
		fprintf(stderr, "decode_contention: %s\n", fk_last_error());
		return 1;
	}
	compute(pool, w, x, y, 0.3); /* warm */
	double load[3];
	getloadavg(load, 3);

	struct row {
		int decoders;
		double pace, compute, ratio, decode, cpu_share, bound;
	} rows[16];
	int n_rows = 0;
	const struct {
		int n;
		double pace;
	} cfg[] = {{0, 0}, {1, 0}, {2, 0}, {4, 0}, {1, 1}, {2, 1}, {4, 1}, {0, 0}};
	double alone[2] = {0, 0};
	for (size_t k = 0; k < sizeof cfg / sizeof *cfg; k++) {
		struct decoders d = {.frame = frame, .frame_len = flen, .n = cfg[k].n,
		                     .pace = cfg[k].pace ? pace : 0};
		pthread_t th[8];
		for (int i = 0; i < d.n; i++)
			pthread_create(&th[i], NULL, decoder_main, &d);
		double t0 = now();
		double c = compute(pool, w, x, y, seconds);
		double dt = now() - t0;
		atomic_store(&d.stop, 1);
		for (int i = 0; i < d.n; i++)
			pthread_join(th[i], NULL);
		if (!d.n) { /* compute alone, first and last: the baseline and its drift */
			alone[k ? 1 : 0] = c;
			continue;
		}
		struct row *r = &rows[n_rows++];
		r->decoders = d.n;
		r->pace = d.pace;
		r->compute = c;
		r->decode = (double)atomic_load(&d.decoded) / dt;
		r->cpu_share = (double)atomic_load(&d.cpu_ns) / 1e9 / dt; /* cores the decoders used */
	}
	const double base = (alone[0] + alone[1]) / 2;
	for (int i = 0; i < n_rows; i++) {
		rows[i].ratio = rows[i].compute / base;
		/* the compute can keep what decoding leaves of the cores it uses */
		double left = 1 - rows[i].cpu_share / (double)cores;
		rows[i].bound = base * (left > 0 ? left : 0);
	}
	mkdir(outdir, 0755);
	char path[1024];
	snprintf(path, sizeof path, "%s/decode_contention.csv", outdir);
	FILE *csv = fopen(path, "w");
	snprintf(path, sizeof path, "%s/decode_contention.md", outdir);
	FILE *md = fopen(path, "w");
	FILE *outs[] = {stdout, md};
	if (csv)
		fprintf(csv, "compute_threads,decoders,paced_mbps,compute_gbps,compute_ratio,decode_mbps,"
		             "decode_cores,bound_gbps\n");
	for (int o = 0; o < 2; o++) {
		FILE *f = outs[o];
		if (!f)
			continue;
		fprintf(f, "decode contention: %d compute threads on %ld cores, %zux%d q8_0 products; "
		        "zstd 2 MiB chunks at ratio %.2f; load average %.2f %.2f %.2f at the start\n\n",
		        threads, cores, (size_t)N, N, (double)CHUNK / flen, load[0], load[1], load[2]);
		fprintf(f, "compute alone: %.2f GB/s (first) and %.2f GB/s (last)\n\n",
		        alone[0] / 1e9, alone[1] / 1e9);
		fprintf(f, "| decoders | paced to | compute GB/s | vs alone | decode MB/s | cores "
		           "decoding | bound GB/s |\n| --- | --- | --- | --- | --- | --- | --- |\n");
		for (int i = 0; i < n_rows; i++) {
			char paced[32];
			snprintf(paced, sizeof paced, rows[i].pace ? "%.0f MB/s" : "flat out", rows[i].pace / 1e6);
			fprintf(f, "| %d | %s | %.2f | %.2f | %.0f | %.2f | %.2f |\n", rows[i].decoders, paced,
			        rows[i].compute / 1e9, rows[i].ratio, rows[i].decode / 1e6,
			        rows[i].cpu_share, rows[i].bound / 1e9);
		}
	}
	for (int i = 0; csv && i < n_rows; i++)
		fprintf(csv, "%d,%d,%.0f,%.3f,%.3f,%.0f,%.3f,%.3f\n", threads, rows[i].decoders,
		        rows[i].pace / 1e6, rows[i].compute / 1e9, rows[i].ratio, rows[i].decode / 1e6,
		        rows[i].cpu_share, rows[i].bound / 1e9);
	if (csv)
		fclose(csv);
	if (md)
		fclose(md);
	fprintf(stderr, "decode_contention: results in %s\n", outdir);
	fk_pool_destroy(pool);
	free(wf);
	free(x);
	free(y);
	free(w);
	free(raw);
	free(frame);
	return 0;
}
