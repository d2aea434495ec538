/* bench/paging_lab: what the paging lab's tools cost.
 *   - the event trace: nanoseconds a recorded event costs the thread that
 *     records it (fp_trace_mark on a traced region, a million times), next
 *     to the same calls on an untraced region;
 *   - the simulator: chunk accesses replayed a second, for every policy,
 *     on a decode-like access stream (a cycle over the chunks, a token at
 *     a time, with the within-layer reorderings of two threads).
 * Prints a Markdown table and writes it to bench/results/paging_lab.md
 * (or the directory given as the first argument).  Asserts nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <flexpage/flexpage_experimental.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_image(const char *path)
{
	struct fp_writer_options wo = {.chunk_size = 64u << 10};
	fp_writer *w = fp_writer_create(path, &wo);
	static uint8_t data[256u << 10];
	uint64_t shape[1] = {sizeof data};
	if (!w || fp_writer_begin_tensor(w, "data", FP_TYPE_U8, 1, shape) ||
	    fp_writer_write(w, data, sizeof data) || fp_writer_end_tensor(w) || fp_writer_finish(w)) {
		fprintf(stderr, "paging_lab: %s\n", fp_last_error());
		return -1;
	}
	return 0;
}

/* ns an event costs the recording thread, traced or not. */
static double mark_cost(const char *image, const char *trace, int n)
{
	struct fp_options o = {.retries = -1, .readahead = -1, .trace_path = trace};
	fp_region *r = fp_open(image, &o);
	if (!r) {
		fprintf(stderr, "paging_lab: %s\n", fp_last_error());
		exit(1);
	}
	double best = 1e9;
	for (int rep = 0; rep < 5; rep++) {
		double t0 = now_s();
		for (int i = 0; i < n; i++)
			fp_trace_mark(r, FP_MARK_TOKEN, (uint64_t)i);
		double ns = (now_s() - t0) / n * 1e9;
		if (ns < best)
			best = ns;
		usleep(20000); /* let the writer drain the ring */
	}
	struct fp_stats s;
	fp_get_stats(r, &s);
	fp_close(r);
	if (trace)
		fprintf(stderr, "  traced: %llu events written, %llu dropped\n",
		        (unsigned long long)s.trace_events, (unsigned long long)s.trace_dropped);
	return best;
}

int main(int argc, char **argv)
{
	const char *out = argc > 1 ? argv[1] : "bench/results";
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: paging_lab [OUT_DIR]   (default bench/results)\n");
		return 0;
	}
	char dir[] = "/var/tmp/flexpage-lab-XXXXXX", image[300], trace[300];
	if (!mkdtemp(dir)) {
		perror("paging_lab: mkdtemp");
		return 1;
	}
	snprintf(image, sizeof image, "%s/lab.img", dir);
	snprintf(trace, sizeof trace, "%s/lab.trace", dir);
	if (write_image(image))
		return 1;
	const int n = 20000; /* within one ring: nothing is dropped */
	double untraced = mark_cost(image, NULL, n), traced = mark_cost(image, trace, n);
	unlink(image);
	unlink(trace);
	rmdir(dir);

	/* A decode-like stream: 22 layers of 24 chunks, 64 tokens; two threads
	 * split each layer, so pairs of chunks swap now and then. */
	const uint32_t n_chunks = 22 * 24 + 40;
	const uint64_t n_acc = (uint64_t)n_chunks * 64;
	uint32_t *acc = malloc(sizeof *acc * n_acc);
	uint64_t x = 88172645463325252ull;
	for (uint64_t i = 0; i < n_acc; i++) {
		uint32_t c = (uint32_t)(i % n_chunks);
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (c + 1 < n_chunks && x % 4 == 0)
			c++;
		acc[i] = c;
	}
	char md[4096];
	int len = snprintf(md, sizeof md,
	                   "# paging lab costs (bench/paging_lab)\n\n"
	                   "| what | measured |\n| --- | ---: |\n"
	                   "| fp_trace_mark, untraced region | %.1f ns |\n"
	                   "| fp_trace_mark, traced region (one event recorded) | %.1f ns |\n"
	                   "| cost of one recorded event | %.1f ns |\n",
	                   untraced, traced, traced - untraced);
	printf("%s", md);
	const char *names[32];
	size_t n_names = fp_policy_names(names, 32);
	for (const char *const *p = names; p < names + n_names && p < names + 32; p++) {
		struct fp_policy_env env = {.n_chunks = n_chunks, .chunk_size = 2u << 20,
		                            .budget = (uint64_t)n_chunks * (2u << 20) / 2};
		struct fp_sim_result res;
		double t0 = now_s();
		int reps = 0;
		do {
			if (fp_simulate(&env, fp_policy_find(*p), acc, n_acc, &res)) {
				fprintf(stderr, "paging_lab: %s\n", fp_last_error());
				return 1;
			}
			reps++;
		} while (now_s() - t0 < 0.5);
		double rate = (double)n_acc * reps / (now_s() - t0);
		int k = snprintf(md + len, sizeof md - (size_t)len,
		                 "| simulator, %s, 50%% budget | %.1f million accesses/s |\n", *p, rate / 1e6);
		printf("%s", md + len);
		len += k;
	}
	free(acc);
	char path[600];
	snprintf(path, sizeof path, "%s/paging_lab.md", out);
	FILE *f = fopen(path, "w");
	if (!f || fputs(md, f) < 0 || fclose(f)) {
		fprintf(stderr, "paging_lab: cannot write %s\n", path);
		return 1;
	}
	printf("\nsaved %s\n", path);
	return 0;
}
