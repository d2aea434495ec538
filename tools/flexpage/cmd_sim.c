/* flexpage sim TRACE: replay a trace's chunk accesses through the same
 * policy code the live pager runs, under any budget, in seconds. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "util.h"

static void sim_usage(FILE *f)
{
	fprintf(f,
	        "usage: flexpage sim TRACE [options]\n"
	        "  Replays the chunk accesses recorded in TRACE (flexpage run --trace) through an\n"
	        "  eviction policy under a budget and prints hits, loads, bytes read and the\n"
	        "  token time estimated from the rates measured in the trace.\n\n"
	        "  --budget SIZE    bytes (600M) or per cent of the image (40%%); default: the trace's\n"
	        "  --policy NAME    fifo, lru, clock, stream, belady (default: the trace's)\n"
	        "  --sweep          every policy at 25, 35, 50, 75 and 100%% of the image\n"
	        "  --image PATH     the image (default: the path recorded in the trace)\n");
}

/* Rates measured in the trace, per load and per token. */
struct rates {
	double read_ns_per_byte, decode_ns_per_byte, install_ns_per_load;
	double compute_ns_per_token;
	uint64_t tokens;
	uint32_t loaders;
};

static void measure(const fp_trace *t, const fp_image *img, struct rates *m)
{
	const struct fp_trace_event *ev = fp_trace_events(t);
	uint64_t n = fp_trace_count(t), loads = 0, marks = 0;
	double read_ns = 0, decode_ns = 0, install_ns = 0, stored = 0, decoded = 0, stall = 0;
	uint64_t *fault_at = calloc(fp_trace_header(t)->n_chunks, sizeof *fault_at);
	uint64_t first_mark = 0, last = n ? ev[n - 1].t_ns : 0;
	for (uint64_t i = 0; i < n; i++) {
		const struct fp_trace_event *e = &ev[i];
		if (e->type == FP_EV_MARK && e->flags == FP_MARK_TOKEN) {
			if (!marks++)
				first_mark = e->t_ns;
		} else if (e->type == FP_EV_FAULT && e->flags != 2 && fault_at && !fault_at[e->chunk]) {
			fault_at[e->chunk] = e->t_ns + 1;
		} else if (e->type == FP_EV_LOAD) {
			const struct fp_chunk_desc *c = img ? fp_image_chunk(img, e->chunk) : NULL;
			loads++;
			read_ns += (double)(uint32_t)e->a;
			decode_ns += (double)(uint32_t)(e->a >> 32);
			install_ns += (double)(uint32_t)e->b;
			stored += c ? c->stored_len : fp_trace_header(t)->chunk_size;
			decoded += c ? c->logical_len : fp_trace_header(t)->chunk_size;
			if (fault_at && fault_at[e->chunk]) {
				stall += (double)(e->t_ns + 1 - fault_at[e->chunk]);
				fault_at[e->chunk] = 0;
			}
		}
	}
	free(fault_at);
	m->loaders = fp_trace_header(t)->loaders ? fp_trace_header(t)->loaders : 1;
	m->read_ns_per_byte = stored ? read_ns / stored : 0;
	m->decode_ns_per_byte = decoded ? decode_ns / decoded : 0;
	m->install_ns_per_load = loads ? install_ns / (double)loads : 0;
	m->tokens = marks ? marks : 1;
	double span = (double)(last - (marks ? first_mark : 0));
	double compute = span - stall;
	m->compute_ns_per_token = compute > 0 ? compute / (double)m->tokens : 0;
}

struct row {
	const char *policy;
	uint64_t budget;
	struct fp_sim_result res;
	double io_ns, token_ns_overlap, token_ns_serial;
};

static void estimate(const struct rates *m, struct row *w)
{
	double per_token = 1.0 / (double)m->tokens;
	w->io_ns = ((double)w->res.bytes_read * m->read_ns_per_byte +
	            (double)w->res.bytes_decoded * m->decode_ns_per_byte +
	            (double)w->res.loads * m->install_ns_per_load) * per_token;
	double io_parallel = w->io_ns / m->loaders;
	w->token_ns_overlap = io_parallel > m->compute_ns_per_token ? io_parallel : m->compute_ns_per_token;
	w->token_ns_serial = m->compute_ns_per_token + w->io_ns;
}

static void print_header(void)
{
	printf("%-8s %10s %10s %10s %10s %10s %12s %13s %13s\n", "policy", "budget MiB", "accesses",
	       "hits", "loads", "evictions", "read MiB/tok", "tok ms overlap", "tok ms serial");
}

static void print_row(const struct row *w, const struct rates *m)
{
	printf("%-8s %10.1f %10llu %10llu %10llu %10llu %12.1f %13.2f %13.2f\n", w->policy,
	       (double)w->budget / (1 << 20), (unsigned long long)w->res.accesses,
	       (unsigned long long)w->res.hits, (unsigned long long)w->res.loads,
	       (unsigned long long)w->res.evictions,
	       (double)w->res.bytes_read / (1 << 20) / (double)m->tokens, w->token_ns_overlap / 1e6,
	       w->token_ns_serial / 1e6);
}

int cmd_sim(int argc, char **argv)
{
	static const struct option opts[] = {
		{"budget", required_argument, 0, 'b'}, {"policy", required_argument, 0, 'p'},
		{"sweep", no_argument, 0, 's'}, {"image", required_argument, 0, 'i'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	const char *budget_s = NULL, *policy = NULL, *image = NULL;
	int sweep = 0, o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'b': budget_s = optarg; break;
		case 'p': policy = optarg; break;
		case 's': sweep = 1; break;
		case 'i': image = optarg; break;
		case 'h': sim_usage(stdout); return 0;
		default: sim_usage(stderr); return 2;
		}
	}
	if (argc - optind != 1) {
		sim_usage(stderr);
		return 2;
	}
	fp_trace *t = fp_trace_open(argv[optind]);
	if (!t) {
		fprintf(stderr, "flexpage sim: %s\n", fp_last_error());
		return 1;
	}
	const struct fp_trace_header *h = fp_trace_header(t);
	fp_image *img = fp_image_open(image ? image : h->image);
	if (!img && image) {
		fprintf(stderr, "flexpage sim: %s\n", fp_last_error());
		fp_trace_close(t);
		return 1;
	}
	if (!img)
		fprintf(stderr, "flexpage sim: note: image %s not readable (%s); assuming full chunks\n",
		        h->image, fp_last_error());
	int rc = 1;
	uint32_t *acc = NULL;
	uint64_t n = 0;
	struct fp_policy_env env = {
		.n_chunks = h->n_chunks,
		.chunk_size = h->chunk_size,
		.chunks = img ? fp_image_chunk(img, 0) : NULL,
		.budget = h->budget,
	};
	struct rates m;
	char err[256];
	if (fp_trace_accesses(t, img, &acc, &n)) {
		fprintf(stderr, "flexpage sim: %s\n", fp_last_error());
		goto out;
	}
	measure(t, img, &m);
	if (budget_s && parse_size(budget_s, h->logical_size, &env.budget, "--budget", err, sizeof err)) {
		fprintf(stderr, "flexpage sim: %s\n", err);
		rc = 2;
		goto out;
	}
	printf("trace %s: %llu events, %llu chunk accesses, %llu tokens; image %s (%u chunks of %u KiB)\n",
	       argv[optind], (unsigned long long)fp_trace_count(t), (unsigned long long)n,
	       (unsigned long long)m.tokens, h->image, h->n_chunks, h->chunk_size >> 10);
	printf("measured: read %.2f GB/s a loader, decode %.2f GB/s, install %.1f us a chunk, "
	       "compute %.2f ms a token, %u loaders\n\n",
	       m.read_ns_per_byte ? 1 / m.read_ns_per_byte : 0.0,
	       m.decode_ns_per_byte ? 1 / m.decode_ns_per_byte : 0.0, m.install_ns_per_load / 1e3,
	       m.compute_ns_per_token / 1e6, m.loaders);
	print_header();
	static const int pct[] = {25, 35, 50, 75, 100};
	const char *names[33] = {0}; /* NULL-terminated */
	fp_policy_names(names, 32);
	uint64_t events = 0, t0 = now_ns();
	for (int bi = 0; bi < (sweep ? 5 : 1); bi++) {
		if (sweep)
			env.budget = h->logical_size * (uint64_t)pct[bi] / 100;
		if (env.budget < 2ull * h->chunk_size)
			env.budget = 2ull * h->chunk_size;
		for (int pi = 0; sweep ? names[pi] != NULL : pi < 1; pi++) {
			struct row w = {.policy = sweep ? names[pi] : policy ? policy : h->policy,
			                .budget = env.budget};
			const struct fp_policy_ops *ops = fp_policy_find(w.policy);
			if (!ops) {
				fprintf(stderr, "flexpage sim: --policy: unknown policy '%s'\n", w.policy);
				rc = 2;
				goto out;
			}
			if (fp_simulate(&env, ops, acc, n, &w.res)) {
				fprintf(stderr, "flexpage sim: %s\n", fp_last_error());
				goto out;
			}
			events += n;
			estimate(&m, &w);
			print_row(&w, &m);
		}
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	printf("\nsimulated %llu accesses in %.3f s (%.1f million a second)\n",
	       (unsigned long long)events, secs, secs > 0 ? (double)events / secs / 1e6 : 0.0);
	rc = 0;
out:
	free(acc);
	fp_image_close(img);
	fp_trace_close(t);
	return rc;
}
