/* flexpage run: generate tokens with a model, its weights resident, mapped
 * or served by the pager, and say how fast. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <flexkern/kernels.h>
#include <flexrt/runtime.h>

#include <flexmodel/model.h>

#include "cmds.h"
#include "run_paging.h"
#include "util.h"

static void run_usage(FILE *f)
{
	fprintf(f,
	        "usage: flexpage run MODEL [options]\n"
	        "  Generates tokens with MODEL, a flexpage image, a llama GGUF or a llama2.c\n"
	        "  checkpoint, and prints their ids on one line (there is no tokenizer), then\n"
	        "  the speed and, for a paged load, the pager's statistics on stderr.\n\n"
	        "  --steps N           positions to run, prompt included (default 256; 0: seq_len)\n"
	        "  --prompt IDS        token ids to start from, e.g. 1,403,411 (default: BOS = 1)\n"
	        "  --temperature T     0 is greedy (default 1.0)\n"
	        "  --topp P            nucleus sampling threshold (default 0.9)\n"
	        "  --seed S            sampler seed (default 1)\n"
	        "  --no-stop           do not stop when BOS is sampled\n"
	        "  --threads N         compute threads (default: the CPUs online)\n"
	        "  --kernels ISA       force scalar, avx2 or avx512 kernels (default: best)\n"
	        "  --ids               print token ids (the default: no tokenizer)\n"
	        "  -q, --quiet         print the ids only\n\n"
	        "  --load MODE         resident, mmap or flexpage (default: flexpage for\n"
	        "                      images and GGUF files, resident for checkpoints)\n"
	        "  --madvise ADVICE    for mmap: normal, sequential or random (default normal)\n"
	        "  --budget B          for flexpage: resident bytes, e.g. 600M, 1.5G, or 40%%\n"
	        "                      of the model's bytes (default: the whole image)\n"
	        "  --loaders N         for flexpage: loader threads (default 4)\n"
	        "  --policy NAME       for flexpage: eviction policy (default fifo)\n"
	        "  --readahead N       for flexpage: the most read-ahead, in chunks (default\n"
	        "                      32 MiB worth; 0: none); the depth used follows the\n"
	        "                      measured load time and the loop's pace\n"
	        "  --buffered          for flexpage: read through the page cache\n"
	        "  --no-huge           for flexpage: install 4 KiB pages only\n"
	        "  --preserve PLAN     for flexpage: balanced, first or none (default none):\n"
	        "                      keep chunks resident as flexpage plan chooses them\n"
	        "  --attention-first   for --preserve: attention tensors first in a layer\n"
	        "  --stream SIZE       for --preserve: budget kept for streaming, e.g. 32M or\n"
	        "                      10%% (default 16 chunks; at least one; none when the\n"
	        "                      budget holds every chunk)\n"
	        "  --no-lock           for --preserve: do not mlock preserved chunks\n"
	        "  --no-stage          for flexpage: read-ahead installs at once (no position\n"
	        "                      signal from the loop's faults)\n"
	        "  --no-predict        for flexpage: read ahead in file order, not the learned one\n"
	        "  --trace FILE        for flexpage: record an event trace (flexpage trace, sim)\n"
	        "  --stats-interval T  for flexpage: a line of statistics every T (1s, 500ms)\n");
}

/* What this process read from storage and how often it waited on a page,
 * whatever the load: the same numbers for mmap, resident and flexpage. */
static void report_io(FILE *f)
{
	unsigned long long read_bytes = 0;
	char line[128];
	FILE *io = fopen("/proc/self/io", "r");
	while (io && fgets(line, sizeof line, io))
		if (sscanf(line, "read_bytes: %llu", &read_bytes) == 1)
			break;
	if (io)
		fclose(io);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	fprintf(f, "io: %.1f MiB read from storage, %ld major faults, peak RSS %.1f MiB\n",
	        (double)read_bytes / (1 << 20), ru.ru_majflt, (double)ru.ru_maxrss / 1024);
}

struct printer {
	int quiet;
	int first;
	struct run_paging *paging;
};

static int print_token(void *ctx, int pos, int token)
{
	struct printer *p = ctx;
	run_paging_token(p->paging, pos);
	printf(p->first ? "%d" : " %d", token);
	p->first = 0;
	fflush(stdout);
	return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (end == s || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int parse_float(const char *s, float lo, float hi, float *out)
{
	char *end;
	float v = strtof(s, &end);
	if (end == s || *end || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

static int parse_prompt(const char *s, int **ids, int *n)
{
	int cap = 16, k = 0;
	int *v = malloc((size_t)cap * sizeof *v);
	const char *p = s;
	while (v && *p) {
		char *end;
		long t = strtol(p, &end, 10);
		if (end == p || t < 0 || t > 0x7fffffff)
			break;
		if (k == cap) {
			int *nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
			if (!nv)
				break;
			v = nv;
		}
		v[k++] = (int)t;
		p = end;
		if (*p == ',' || *p == ' ')
			p++;
		else if (*p)
			break;
	}
	if (!v || *p || k == 0) {
		free(v);
		return -1;
	}
	*ids = v;
	*n = k;
	return 0;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"steps", required_argument, 0, 'n'},   {"prompt", required_argument, 0, 'P'},
		{"temperature", required_argument, 0, 'T'}, {"topp", required_argument, 0, 'p'},
		{"seed", required_argument, 0, 'S'},    {"no-stop", no_argument, 0, 'N'},
		{"threads", required_argument, 0, 't'}, {"kernels", required_argument, 0, 'K'},
		{"ids", no_argument, 0, 'I'},           {"quiet", no_argument, 0, 'q'},
		{"load", required_argument, 0, 'L'},    {"madvise", required_argument, 0, 'M'},
		{"budget", required_argument, 0, 'b'},  {"loaders", required_argument, 0, 'l'},
		{"policy", required_argument, 0, 'y'},  {"readahead", required_argument, 0, 'r'},
		{"buffered", no_argument, 0, 'B'},      {"no-huge", no_argument, 0, 'H'},
		{"preserve", required_argument, 0, 'R'}, {"attention-first", no_argument, 0, 'A'},
		{"stream", required_argument, 0, 'W'},  {"no-lock", no_argument, 0, 'U'},
		{"no-stage", no_argument, 0, 'G'},      {"no-predict", no_argument, 0, 'D'},
		{"trace", required_argument, 0, 'X'},   {"stats-interval", required_argument, 0, 'i'},
		{"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
	};
	int steps = 256, threads = (int)sysconf(_SC_NPROCESSORS_ONLN), stop = FRT_BOS, quiet = 0;
	float temperature = 1.0f, topp = 0.9f;
	unsigned long long seed = 1;
	const char *budget_arg = NULL;
	int *prompt = NULL, n_prompt = 0, o, rc = 1;
	struct model_options mo = {0};
	struct run_paging paging = {0};
	mo.fp.retries = -1;
	mo.fp.readahead = -1;
	char err[1024] = "", *end;
	if (threads < 1)
		threads = 1;

	optind = 1;
	while ((o = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (o) {
		case 'n':
			if (parse_int(optarg, 0, 1 << 20, &steps)) {
				snprintf(err, sizeof err, "--steps: '%s' is not a count", optarg);
				goto usage_err;
			}
			break;
		case 'P':
			free(prompt);
			prompt = NULL;
			if (parse_prompt(optarg, &prompt, &n_prompt)) {
				snprintf(err, sizeof err, "--prompt: '%s' is not a list of token ids like 1,403,411",
				         optarg);
				goto usage_err;
			}
			break;
		case 'T':
			if (parse_float(optarg, 0.0f, 100.0f, &temperature)) {
				snprintf(err, sizeof err, "--temperature: '%s' is not a number from 0 to 100", optarg);
				goto usage_err;
			}
			break;
		case 'p':
			if (parse_float(optarg, 0.0f, 1.0f, &topp)) {
				snprintf(err, sizeof err, "--topp: '%s' is not a number from 0 to 1", optarg);
				goto usage_err;
			}
			break;
		case 'S':
			seed = strtoull(optarg, &end, 0);
			if (end == optarg || *end) {
				snprintf(err, sizeof err, "--seed: '%s' is not a number", optarg);
				goto usage_err;
			}
			break;
		case 'N': stop = -1; break;
		case 't':
			if (parse_int(optarg, 1, 256, &threads)) {
				snprintf(err, sizeof err, "--threads: '%s' is not a count from 1 to 256", optarg);
				goto usage_err;
			}
			break;
		case 'K': {
			const int isa = fk_isa_parse(optarg);
			if (isa < 0) {
				snprintf(err, sizeof err, "--kernels: '%s' is not scalar, avx2 or avx512", optarg);
				goto usage_err;
			}
			if (fk_set_isa(isa)) {
				fprintf(stderr, "flexpage run: --kernels %s: this CPU does not have it\n", optarg);
				goto out;
			}
			break;
		}
		case 'I': break;
		case 'q': quiet = 1; break;
		case 'L':
			mo.load = model_load_parse(optarg);
			if (mo.load < 0) {
				snprintf(err, sizeof err, "--load: '%s' is not resident, mmap or flexpage", optarg);
				goto usage_err;
			}
			break;
		case 'M':
			if (!strcmp(optarg, "normal"))
				mo.advice = MADV_NORMAL;
			else if (!strcmp(optarg, "sequential"))
				mo.advice = MADV_SEQUENTIAL;
			else if (!strcmp(optarg, "random"))
				mo.advice = MADV_RANDOM;
			else {
				snprintf(err, sizeof err, "--madvise: '%s' is not normal, sequential or random", optarg);
				goto usage_err;
			}
			break;
		case 'b': budget_arg = optarg; break;
		case 'l':
			if (parse_int(optarg, 1, 64, &mo.fp.loaders)) {
				snprintf(err, sizeof err, "--loaders: '%s' is not a count from 1 to 64", optarg);
				goto usage_err;
			}
			break;
		case 'y': mo.fp.policy = optarg; break;
		case 'r':
			if (parse_int(optarg, 0, 1 << 16, &mo.fp.readahead)) {
				snprintf(err, sizeof err, "--readahead: '%s' is not a count of chunks", optarg);
				goto usage_err;
			}
			break;
		case 'B': mo.fp.flags |= FP_OPEN_BUFFERED; break;
		case 'H': mo.fp.flags |= FP_OPEN_NO_HUGE; break;
		case 'R': paging.preserve = optarg; break;
		case 'A': paging.attention_first = 1; break;
		case 'W': paging.stream = optarg; break;
		case 'U': mo.fp.flags |= FP_OPEN_NO_LOCK; break;
		case 'G': mo.fp.flags |= FP_OPEN_NO_STAGE; break;
		case 'D': mo.fp.flags |= FP_OPEN_NO_PREDICT; break;
		case 'X': mo.fp.trace_path = optarg; break;
		case 'i':
			if (parse_duration(optarg, &paging.stats_interval_ns) || !paging.stats_interval_ns) {
				snprintf(err, sizeof err, "--stats-interval: '%s' is not a duration like 1s or 500ms",
				         optarg);
				goto usage_err;
			}
			break;
		case 'h': run_usage(stdout); rc = 0; goto out;
		default: run_usage(stderr); rc = 2; goto out;
		}
	}
	if (argc - optind != 1) {
		snprintf(err, sizeof err, argc - optind ? "expected one MODEL, got %d arguments"
		                                        : "expected a MODEL", argc - optind);
		goto usage_err;
	}
	const char *path = argv[optind];

	/* what the file is decides the default load and what a budget means */
	const int format = model_detect(path);
	if (format < 0) {
		fprintf(stderr, "flexpage run: %s\n", model_last_error());
		goto out;
	}
	const int load = mo.load ? mo.load : model_default_load(format);
	if (budget_arg && load != MODEL_LOAD_FLEXPAGE) {
		snprintf(err, sizeof err, "--budget applies to --load flexpage, not %s", model_load_name(load));
		goto usage_err;
	}
	if (budget_arg) {
		fp_image *img = fp_image_open(path);
		if (!img) {
			fprintf(stderr, "flexpage run: %s\n", fp_last_error());
			goto out;
		}
		/* a per cent is of the model's bytes, what a full load makes
		 * resident, not of the padded logical layout */
		const uint64_t whole = fp_image_info(img)->data_bytes;
		fp_image_close(img);
		if (parse_size(budget_arg, whole, &mo.fp.budget, "--budget", err, sizeof err))
			goto usage_err;
		if (!mo.fp.budget) {
			snprintf(err, sizeof err, "--budget: %s is no memory at all", budget_arg);
			goto usage_err;
		}
	}
	if (load != MODEL_LOAD_FLEXPAGE && (paging.preserve || mo.fp.trace_path ||
	                                    paging.stats_interval_ns)) {
		snprintf(err, sizeof err, "--preserve, --trace and --stats-interval apply to --load flexpage");
		goto usage_err;
	}
	if (load == MODEL_LOAD_FLEXPAGE) {
		fp_install_fault_reporter();
		if (run_paging_plan(&paging, path, &mo.fp, err, sizeof err)) {
			fprintf(stderr, "flexpage run: %s\n", err);
			goto out;
		}
	}

	struct model m;
	if (model_open(&m, path, &mo)) {
		fprintf(stderr, "flexpage run: %s\n", model_last_error());
		goto out;
	}
	const int max_seq = steps && steps < m.cfg.seq_len ? steps : m.cfg.seq_len;
	const struct frt_options ro = {threads, max_seq};
	frt_model *rt = frt_model_create(&m.cfg, &m.weights, &ro, err, sizeof err);
	frt_sampler *smp = frt_sampler_create(m.cfg.vocab_size, temperature, topp, seed);
	if (!rt || !smp) {
		fprintf(stderr, "flexpage run: %s: %s\n", path, rt ? "out of memory" : err);
		frt_model_destroy(rt);
		frt_sampler_destroy(smp);
		model_close(&m);
		goto out;
	}

	struct printer pr = {quiet, 1, &paging};
	struct frt_gen_stats st;
	if (m.region)
		run_paging_start(&paging, m.region);
	const uint64_t t0 = now_ns();
	if (frt_generate(rt, smp, prompt, n_prompt, max_seq, stop, print_token, &pr, &st, err,
	                 sizeof err)) {
		fprintf(stderr, "flexpage run: %s\n", err);
	} else {
		printf("\n");
		fflush(stdout);
		rc = 0;
	}
	const double total = (double)(now_ns() - t0) / 1e9;
	run_paging_stop(&paging);
	if (!rc && !quiet) {
		char a[32], b[32], types[64];
		fprintf(stderr, "model: %s (%s, %s, %s), load %s, kernels %s, %d thread%s\n", path,
		        m.format == MODEL_FORMAT_IMAGE ? "image" : m.format == MODEL_FORMAT_GGUF ? "GGUF"
		                                                                    : "llama2.c",
		        model_types(&m, types, sizeof types), fmt_bytes(m.size, a, sizeof a),
		        model_load_name(m.load), fk_isa_name(fk_get_isa()), threads, threads > 1 ? "s" : "");
		fprintf(stderr, "first token: %.1f ms\n", (double)st.first_ns / 1e6);
		if (st.tokens > 1)
			fprintf(stderr, "%d tokens after it in %.3f s: %.2f tokens/s (%s of weights per token)\n",
			        st.tokens - 1, (double)st.rest_ns / 1e9,
			        (st.tokens - 1) / ((double)st.rest_ns / 1e9),
			        fmt_bytes(frt_model_bytes_per_token(rt), b, sizeof b));
		fprintf(stderr, "total: %d tokens in %.3f s\n", st.tokens, total);
		report_io(stderr);
		if (m.region) {
			struct fp_stats ps;
			fp_get_stats(m.region, &ps);
			fp_print_stats(stderr, &ps);
		}
	}
	/* the compute threads read the region: they end before it closes */
	frt_sampler_destroy(smp);
	frt_model_destroy(rt);
	model_close(&m);
out:
	fp_plan_free(&paging.plan);
	free(prompt);
	return rc;
usage_err:
	fprintf(stderr, "flexpage run: %s\n", err);
	run_usage(stderr);
	free(prompt);
	return 2;
}
