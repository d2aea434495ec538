/* flexpage perplexity: how well a model predicts a text, the standard
 * measure of what compression or pruning cost.
 *
 * The text is cut at blank lines into paragraphs; each paragraph is
 * encoded on its own (with the dummy-prefix space, no BOS), and its tokens
 * are scored in windows of at most ctx positions, each window BOS followed
 * by up to ctx - 1 of the paragraph's tokens, every one of which is scored
 * given BOS and the tokens before it in its window.  So every token of
 * the text is scored exactly once and BOS never is.  Perplexity is exp of
 * the mean negative log-likelihood; its standard error comes from the
 * NLLs' sample standard deviation (the error of the mean, times the
 * perplexity: the first-order propagation through exp). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flexrt/runtime.h>

#include "cmds.h"
#include <flexmodel/model.h>
#include "run_options.h"
#include "text_input.h"
#include "util.h"

static void perplexity_usage(FILE *f)
{
	fprintf(f,
	        "usage: flexpage perplexity MODEL --text FILE [options]\n"
	        "  The perplexity of MODEL (an image or a llama2.c checkpoint) over the text\n"
	        "  in FILE, with its standard error, on stdout; the speed and what the load\n"
	        "  cost on stderr.  The text is cut at blank lines into paragraphs; each is\n"
	        "  encoded on its own and scored in windows of BOS and up to ctx - 1 of its\n"
	        "  tokens, every token after BOS scored once (docs/runtime.md).  The\n"
	        "  tokenizer is found as flexpage run finds it.\n\n"
	        "  --text FILE         the text (UTF-8)\n"
	        "  --bytes N           only the first N bytes of FILE (default: all; K, M are 1024s)\n"
	        "  --ctx N             positions in a window, BOS included (default: the\n"
	        "                      model's seq_len; at least 2)\n"
	        "  --tokenizer FILE    a llama2.c tokenizer file for the model's vocabulary\n"
	        "  -q, --quiet         print the result line only\n");
	run_options_usage(f);
}

struct tally {
	struct nll_tally nll;
	struct progress bar;
	struct run_paging *paging;
};

static int on_position(void *ctx, int pos, int token)
{
	(void)token;
	struct tally *t = ctx;
	run_paging_token(t->paging, pos);
	return 0;
}

static void on_window(void *ctx, const struct nll_tally *nll)
{
	struct tally *t = ctx;
	progress_update(&t->bar, nll->n);
}

int cmd_perplexity(int argc, char **argv)
{
	static const struct option opts[] = {
		{"text", required_argument, 0, 'x'},      {"bytes", required_argument, 0, 'c'},
		{"ctx", required_argument, 0, 'C'},       {"tokenizer", required_argument, 0, 'k'},
		{"quiet", no_argument, 0, 'q'},           RUN_OPTIONS_LONGOPTS,
		{"help", no_argument, 0, 'h'},            {0, 0, 0, 0},
	};
	const char *text_path = NULL, *tokenizer_path = NULL, *bytes_arg = NULL;
	int ctx = 0, quiet = 0, o, r, rc = 1;
	uint64_t limit = 0;
	struct run_options ro;
	run_options_init(&ro);
	char err[1024] = "", note[2048] = "";

	optind = 1;
	while ((o = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (o) {
		case 'x': text_path = optarg; break;
		case 'c': bytes_arg = optarg; break;
		case 'C':
			if (parse_int(optarg, 2, 1 << 20, &ctx)) {
				snprintf(err, sizeof err, "--ctx: '%s' is not a count of at least 2", optarg);
				goto usage_err;
			}
			break;
		case 'k': tokenizer_path = optarg; break;
		case 'q': quiet = 1; break;
		case 'h':
			perplexity_usage(stdout);
			run_options_free(&ro);
			return 0;
		default:
			r = run_options_parse(&ro, o, optarg, err, sizeof err);
			if (r == -2)
				goto usage_err;
			if (r == -1) {
				fprintf(stderr, "flexpage perplexity: %s\n", err);
				goto out;
			}
			if (r == 0) {
				perplexity_usage(stderr);
				run_options_free(&ro);
				return 2;
			}
		}
	}
	if (argc - optind != 1) {
		snprintf(err, sizeof err, argc - optind ? "expected one MODEL, got %d arguments"
		                                        : "expected a MODEL", argc - optind);
		goto usage_err;
	}
	if (!text_path) {
		snprintf(err, sizeof err, "--text FILE is required");
		goto usage_err;
	}
	if (bytes_arg) {
		if (parse_size(bytes_arg, 0, &limit, "--bytes", err, sizeof err))
			goto usage_err;
		if (!limit) {
			snprintf(err, sizeof err, "--bytes: %s is no text at all", bytes_arg);
			goto usage_err;
		}
	}
	const char *path = argv[optind];

	size_t text_len = 0;
	char *text = read_text("--text", text_path, limit, &text_len, err, sizeof err);
	if (!text) {
		fprintf(stderr, "flexpage perplexity: %s\n", err);
		goto out;
	}
	struct model m;
	r = run_options_open(&ro, path, &m, err, sizeof err);
	if (r) {
		free(text);
		if (r == -2)
			goto usage_err;
		fprintf(stderr, "flexpage perplexity: %s\n", err);
		goto out;
	}
	frt_tokenizer *tok = NULL;
	frt_model *rt = NULL;
	struct encoded e = {0};
	if (tokenizer_find(path, tokenizer_path, m.cfg.vocab_size, &tok, note, sizeof note, err,
	                   sizeof err)) {
		fprintf(stderr, "flexpage perplexity: %s\n", err);
		goto close;
	}
	if (!tok) {
		fprintf(stderr, "flexpage perplexity: %s; give --tokenizer FILE\n", note);
		goto close;
	}
	if (frt_tokenizer_bos(tok) < 0) {
		fprintf(stderr, "flexpage perplexity: the tokenizer has no BOS token\n");
		goto close;
	}
	if (!ctx)
		ctx = m.cfg.seq_len;
	if (ctx > m.cfg.seq_len) {
		fprintf(stderr, "flexpage perplexity: --ctx %d is above the model's seq_len %d\n", ctx,
		        m.cfg.seq_len);
		rc = 2;
		goto close;
	}
	if (encode_text(tok, text, text_len, &e, err, sizeof err)) {
		fprintf(stderr, "flexpage perplexity: %s: %s\n", text_path, err);
		goto close;
	}
	if (!e.n_ids) {
		fprintf(stderr, "flexpage perplexity: %s: no text to score (%zu bytes, all blank)\n",
		        text_path, text_len);
		goto close;
	}
	const struct frt_options opt = {ro.threads, ctx};
	rt = frt_model_create(&m.cfg, &m.weights, &opt);
	if (!rt) {
		fprintf(stderr, "flexpage perplexity: %s: %s\n", path, frt_last_error());
		goto close;
	}
	if (run_options_prepare(&ro, &m, rt, err, sizeof err)) {
		fprintf(stderr, "flexpage perplexity: %s\n", err);
		goto close;
	}

	struct tally t = {.paging = &ro.paging};
	progress_start(&t.bar, "perplexity", "tokens", e.n_ids, !quiet);
	if (m.region)
		run_paging_start(&ro.paging, m.region);
	const uint64_t t0 = now_ns();
	const int failed = score_windows(rt, &e, frt_tokenizer_bos(tok), ctx, on_position, on_window,
	                                 &t, &t.nll, err, sizeof err);
	const double secs = (double)(now_ns() - t0) / 1e9;
	run_paging_stop(&ro.paging);
	progress_end(&t.bar, t.nll.n);
	if (failed) {
		fprintf(stderr, "flexpage perplexity: %s\n", err);
		goto close;
	}
	double ppl_se;
	const double ppl = tally_perplexity(&t.nll, &ppl_se);
	const double n = (double)t.nll.n, mean = t.nll.sum / n, se = ppl_se / ppl;
	printf("perplexity: %.4f +/- %.4f over %llu scored tokens (%llu windows)\n", ppl, ppl_se,
	       (unsigned long long)t.nll.n, (unsigned long long)t.nll.windows);
	fflush(stdout);
	if (!quiet) {
		run_options_describe(&ro, &m, stderr);
		fprintf(stderr, "text: %s, %zu bytes, %zu paragraphs, %llu tokens in %llu windows of at "
		        "most %d positions (BOS + %d)\n", text_path, text_len, e.n_para,
		        (unsigned long long)t.nll.n, (unsigned long long)t.nll.windows, ctx, ctx - 1);
		fprintf(stderr, "mean NLL: %.5f +/- %.5f nats per token (%.4f bits)\n", mean, se,
		        mean / log(2.0));
		fprintf(stderr, "time: %.3f s, %.0f tokens/s\n", secs, secs > 0 ? n / secs : 0.0);
		run_options_report(&m, stderr);
	}
	rc = 0;
close:
	/* the compute threads read the region: they end before it closes */
	frt_model_destroy(rt);
	frt_tokenizer_destroy(tok);
	free(e.ids);
	free(e.para);
	free(text);
	model_close(&m);
out:
	run_options_free(&ro);
	return rc;
usage_err:
	fprintf(stderr, "flexpage perplexity: %s\n", err);
	perplexity_usage(stderr);
	run_options_free(&ro);
	return 2;
}
