/* flexpage run: generate text with a model, its weights resident, mapped
 * or served by the pager, and say how fast. */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flexkern/kernels.h>
#include <flexrt/runtime.h>

#include <flexmodel/model.h>

#include "cmds.h"
#include "run_options.h"
#include "util.h"

static void run_usage(FILE *f)
{
	fprintf(f,
	        "usage: flexpage run MODEL [options]\n"
	        "  Generates text with MODEL, a flexpage image, a llama GGUF or a llama2.c\n"
	        "  checkpoint, and prints it as it is made, then the speed and, for a paged\n"
	        "  load, the pager's statistics on stderr.  The tokenizer is --tokenizer FILE,\n"
	        "  or else tok<VOCAB>.bin (tok512.bin beside stories260K.bin) or tokenizer.bin\n"
	        "  in the model's directory; without one, run prints token ids.\n\n"
	        "  --prompt TEXT       text to start from, encoded after BOS (default: BOS alone)\n"
	        "  --prompt-ids IDS    token ids to start from instead, e.g. 1,403,411\n"
	        "  --tokenizer FILE    a llama2.c tokenizer file for the model's vocabulary\n"
	        "  --ids               print token ids instead of text\n"
	        "  --steps N           positions to run, prompt included (default 256; 0: seq_len)\n"
	        "  --temperature T     0 is greedy (default 1.0)\n"
	        "  --topp P            nucleus sampling threshold (default 0.9)\n"
	        "  --seed S            sampler seed (default 1)\n"
	        "  --no-stop           do not stop when BOS is sampled\n"
	        "  -q, --quiet         print the generated text (or ids) only\n");
	run_options_usage(f);
}

struct printer {
	const frt_tokenizer *tok;    /* NULL: print ids */
	int first, prev;
	struct run_paging *paging;
};

/* A piece as llama2.c prints it: a lone control byte (a byte fallback of
 * something unprintable) is left out; UTF-8 bytes are kept. */
static void print_piece(const char *p, size_t n)
{
	const unsigned char c = n == 1 ? (unsigned char)p[0] : 0;
	if (n == 1 && ((c < 0x20 && !isspace(c)) || c == 0x7f))
		return;
	fwrite(p, 1, n, stdout);
}

static int print_token(void *ctx, int pos, int token)
{
	struct printer *p = ctx;
	run_paging_token(p->paging, pos);
	if (p->tok) {
		size_t n;
		const char *piece = frt_tokenizer_decode(p->tok, p->prev, token, &n);
		if (piece)
			print_piece(piece, n);
	} else {
		printf(p->first ? "%d" : " %d", token);
	}
	p->first = 0;
	p->prev = token;
	fflush(stdout);
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

/* The ids to start from: --prompt-ids, or --prompt encoded after BOS, or
 * none (frt_generate starts from BOS).  0, or -1 with the message. */
static int prompt_ids(const frt_tokenizer *tok, const char *text, int **ids, int *n,
                      char *err, size_t errlen)
{
	const size_t len = strlen(text);
	*ids = malloc((len + 3) * sizeof **ids);
	if (!*ids) {
		snprintf(err, errlen, "--prompt: out of memory");
		return -1;
	}
	*n = frt_tokenizer_encode(tok, text, len, 1, 0, *ids, (int)len + 3);
	if (*n < 0) {
		snprintf(err, errlen, "--prompt: %s", frt_last_error());
		return -1;
	}
	return 0;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"steps", required_argument, 0, 'n'},   {"prompt", required_argument, 0, 'P'},
		{"prompt-ids", required_argument, 0, 'Z'}, {"tokenizer", required_argument, 0, 'k'},
		{"temperature", required_argument, 0, 'T'}, {"topp", required_argument, 0, 'p'},
		{"seed", required_argument, 0, 'S'},    {"no-stop", no_argument, 0, 'N'},
		{"ids", no_argument, 0, 'I'},           {"quiet", no_argument, 0, 'q'},
		RUN_OPTIONS_LONGOPTS,
		{"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
	};
	int steps = 256, stop = FRT_BOS, quiet = 0, print_ids = 0;
	float temperature = 1.0f, topp = 0.9f;
	unsigned long long seed = 1;
	const char *prompt_text = NULL, *tokenizer_path = NULL;
	int *prompt = NULL, n_prompt = 0, o, rc = 1, r;
	struct run_options ro;
	run_options_init(&ro);
	char err[1024] = "", note[2048] = "", *end;

	optind = 1;
	while ((o = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (o) {
		case 'n':
			if (parse_int(optarg, 0, 1 << 20, &steps)) {
				snprintf(err, sizeof err, "--steps: '%s' is not a count", optarg);
				goto usage_err;
			}
			break;
		case 'P': prompt_text = optarg; break;
		case 'Z':
			free(prompt);
			prompt = NULL;
			if (parse_prompt(optarg, &prompt, &n_prompt)) {
				snprintf(err, sizeof err,
				         "--prompt-ids: '%s' is not a list of token ids like 1,403,411", optarg);
				goto usage_err;
			}
			break;
		case 'k': tokenizer_path = optarg; break;
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
		case 'I': print_ids = 1; break;
		case 'q': quiet = 1; break;
		case 'h': run_usage(stdout); rc = 0; goto out;
		default:
			r = run_options_parse(&ro, o, optarg, err, sizeof err);
			if (r == -2)
				goto usage_err;
			if (r == -1) {
				fprintf(stderr, "flexpage run: %s\n", err);
				goto out;
			}
			if (r == 0) {
				run_usage(stderr);
				rc = 2;
				goto out;
			}
		}
	}
	if (argc - optind != 1) {
		snprintf(err, sizeof err, argc - optind ? "expected one MODEL, got %d arguments"
		                                        : "expected a MODEL", argc - optind);
		goto usage_err;
	}
	if (prompt_text && prompt) {
		snprintf(err, sizeof err, "--prompt and --prompt-ids: give one of them");
		goto usage_err;
	}
	const char *path = argv[optind];

	struct model m;
	r = run_options_open(&ro, path, &m, err, sizeof err);
	if (r == -2)
		goto usage_err;
	if (r) {
		fprintf(stderr, "flexpage run: %s\n", err);
		goto out;
	}

	/* text needs the tokenizer; ids alone do not look for one */
	frt_tokenizer *tok = NULL;
	if ((!print_ids || prompt_text || tokenizer_path) &&
	    tokenizer_find(path, tokenizer_path, m.cfg.vocab_size, &tok, note, sizeof note, err,
	                   sizeof err)) {
		fprintf(stderr, "flexpage run: %s\n", err);
		goto close_model;
	}
	if (prompt_text && !tok) {
		fprintf(stderr, "flexpage run: --prompt needs a tokenizer: %s; give --tokenizer FILE "
		        "or --prompt-ids\n", note);
		goto close_model;
	}
	if (prompt_text && prompt_ids(tok, prompt_text, &prompt, &n_prompt, err, sizeof err)) {
		fprintf(stderr, "flexpage run: %s\n", err);
		goto close_model;
	}
	if (!tok && !print_ids && !quiet)
		fprintf(stderr, "flexpage run: %s: printing token ids\n", note);

	const int max_seq = steps && steps < m.cfg.seq_len ? steps : m.cfg.seq_len;
	const struct frt_options opt = {ro.threads, max_seq};
	frt_model *rt = frt_model_create(&m.cfg, &m.weights, &opt);
	frt_sampler *smp = rt ? frt_sampler_create(m.cfg.vocab_size, temperature, topp, seed) : NULL;
	if (!rt || !smp) {
		fprintf(stderr, "flexpage run: %s: %s\n", path, frt_last_error());
		frt_model_destroy(rt);
		frt_sampler_destroy(smp);
		goto close_model;
	}
	if (run_options_prepare(&ro, &m, rt, err, sizeof err)) {
		fprintf(stderr, "flexpage run: %s\n", err);
		frt_model_destroy(rt);
		frt_sampler_destroy(smp);
		goto close_model;
	}

	struct printer pr = {print_ids ? NULL : tok, 1, n_prompt ? prompt[0] : FRT_BOS, &ro.paging};
	struct frt_gen_stats st;
	if (m.region)
		run_paging_start(&ro.paging, m.region);
	const uint64_t t0 = now_ns();
	if (frt_generate(rt, smp, prompt, n_prompt, max_seq, stop, print_token, &pr, &st)) {
		fprintf(stderr, "flexpage run: %s\n", frt_last_error());
	} else {
		printf("\n");
		fflush(stdout);
		rc = 0;
	}
	const double total = (double)(now_ns() - t0) / 1e9;
	run_paging_stop(&ro.paging);
	if (!rc && !quiet) {
		char b[32];
		run_options_describe(&ro, &m, stderr);
		fprintf(stderr, "first token: %.1f ms\n", (double)st.first_ns / 1e6);
		if (st.tokens > 1)
			fprintf(stderr, "%d tokens after it in %.3f s: %.2f tokens/s (%s of weights per token)\n",
			        st.tokens - 1, (double)st.rest_ns / 1e9,
			        (st.tokens - 1) / ((double)st.rest_ns / 1e9),
			        fmt_bytes(frt_model_bytes_per_token(rt), b, sizeof b));
		fprintf(stderr, "total: %d tokens in %.3f s\n", st.tokens, total);
		run_options_report(&m, stderr);
	}
	/* the compute threads read the region: they end before it closes */
	frt_sampler_destroy(smp);
	frt_model_destroy(rt);
close_model:
	frt_tokenizer_destroy(tok);
	model_close(&m);
out:
	run_options_free(&ro);
	free(prompt);
	return rc;
usage_err:
	fprintf(stderr, "flexpage run: %s\n", err);
	run_usage(stderr);
	run_options_free(&ro);
	free(prompt);
	return 2;
}
