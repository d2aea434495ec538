/* Perplexity: frt_score's negative log-likelihoods against the float64
 * reference forward pass (tests/ref_forward.c), `flexpage perplexity`
 * against a computation of the test's own (its paragraph split, windows
 * and llama2.c's encoding written out again, the float64 pass), the
 * reference figure over tinystories_val.txt, and every load mode giving
 * the same result. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <flexpage/flexpage.h>
#include <flexrt/runtime.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <flexmodel/model.h>
#include "ref_forward.h"
#include "ref_tokenizer.h"
#include "rt_util.h"

#define MODELS FLEXPAGE_SHARED_MODELS
#define STORIES MODELS "/stories260K.bin"
#define STORIES_SIZE 1056540
#define TOK512 MODELS "/tok512.bin"
#define TEXT MODELS "/../data/tinystories_val.txt"

static char *dir;

static void setup(void)
{
	dir = rt_tmpdir();
	cr_assert(dir, "no temporary directory on a disk file system");
	const char *need[] = {STORIES, TOK512, TEXT};
	for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
		if (access(need[i], R_OK))
			cr_skip_test("%s is missing: these tests need the shared model and text", need[i]);
}

static void teardown(void)
{
	if (dir)
		rt_rmtree(dir);
	free(dir);
	dir = NULL;
}

/* -ln softmax(logits)[target] in double. */
static double ref_nll(const double *logits, int n, int target)
{
	double mx = logits[0], sum = 0;
	for (int i = 1; i < n; i++)
		mx = logits[i] > mx ? logits[i] : mx;
	for (int i = 0; i < n; i++)
		sum += exp(logits[i] - mx);
	return log(sum) + mx - logits[target];
}

/* ------------------------------------------------------------------ */
/* frt_score against float64                                            */

static int stop_at_3(void *ctx, int pos, int token)
{
	(void)ctx;
	(void)token;
	return pos == 3;
}

Test(score, window_nll_equals_float64, .init = setup, .fini = teardown)
{
	struct ref_model rm;
	float *buf;
	cr_assert_eq(ref_load_llama2c(STORIES, &rm, &buf), 0);
	struct model m;
	cr_assert_eq(model_open(&m, STORIES, NULL), 0, "%s", model_last_error());
	const struct frt_options o = {1, 256};
	frt_model *rt = frt_model_create(&m.cfg, &m.weights, &o);
	cr_assert(rt, "%s", frt_last_error());
	frt_tokenizer *tok = frt_tokenizer_load(TOK512, 512);
	cr_assert(tok, "%s", frt_last_error());

	const char *texts[] = {
		"Once upon a time, there was a little girl named Lily. She loved to play outside.",
		"Tom had a big red ball. He threw it high in the sky, and his dog ran after it. "
		"\"Good dog!\" said Tom. They played all day until the sun went down.",
		"x",
	};
	double sum = 0, ref_sum = 0;
	int n_all = 0;
	for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
		int ids[256];
		const int n = frt_tokenizer_encode(tok, texts[t], strlen(texts[t]), 1, 0, ids, 256);
		cr_assert_gt(n, 1);
		double nll[256];
		cr_assert_eq(frt_score(rt, ids, n, nll, NULL, NULL), n - 1, "%s", frt_last_error());
		struct ref_state *rs = ref_create(&rm);
		for (int pos = 0; pos + 1 < n; pos++) {
			const double *lg = ref_forward(rs, ids[pos], pos);
			double mx = fabs(lg[0]);
			for (int i = 1; i < 512; i++)
				mx = fabs(lg[i]) > mx ? fabs(lg[i]) : mx;
			const double want = ref_nll(lg, 512, ids[pos + 1]);
			cr_assert(fabs(nll[pos] - want) <= 2e-4 * (mx > 1 ? mx : 1),
			          "text %zu position %d: NLL %.9f, float64 %.9f", t, pos, nll[pos], want);
			sum += nll[pos];
			ref_sum += want;
		}
		n_all += n - 1;
		ref_destroy(rs);
	}
	const double ppl = exp(sum / n_all), ref_ppl = exp(ref_sum / n_all);
	cr_assert(fabs(ppl - ref_ppl) <= 1e-5 * ref_ppl, "perplexity %.8f, float64 %.8f", ppl, ref_ppl);
	cr_log_info("perplexity over %d tokens: %.6f (float64 %.6f)", n_all, ppl, ref_ppl);

	/* the window's edges */
	int ids[300] = {1, 403, 407};
	double nll[300];
	cr_assert_eq(frt_score(rt, ids, 1, nll, NULL, NULL), 0, "BOS alone scores nothing");
	errno = 0;
	cr_assert_eq(frt_score(rt, ids, 0, nll, NULL, NULL), -EINVAL);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(frt_score(rt, ids, 257, nll, NULL, NULL), -EINVAL, "longer than max_seq");
	ids[1] = 512;
	cr_assert_eq(frt_score(rt, ids, 3, nll, NULL, NULL), -EINVAL, "an id outside the vocabulary");
	for (int i = 0; i < 10; i++)
		ids[i] = 300 + i;
	cr_assert_eq(frt_score(rt, ids, 10, nll, stop_at_3, NULL), -ECANCELED);

	frt_tokenizer_destroy(tok);
	frt_model_destroy(rt);
	model_close(&m);
	free(buf);
}

/* ------------------------------------------------------------------ */
/* flexpage perplexity                                                  */


struct result {
	double ppl, se;
	long tokens, windows;
};

static struct result parse_result(void)
{
	struct result r;
	cr_assert_eq(sscanf(rt_out, "perplexity: %lf +/- %lf over %ld scored tokens (%ld windows)",
	                    &r.ppl, &r.se, &r.tokens, &r.windows), 4, "stdout: %s\nstderr: %s", rt_out,
	             rt_err);
	return r;
}

/* The convention docs/runtime.md states, computed here in float64: each
 * blank-line-separated paragraph encoded alone, windows of BOS + up to
 * ctx - 1 tokens, every token after BOS scored. */
static struct result ref_perplexity(const char *text, int ctx)
{
	struct ref_model rm;
	float *buf;
	cr_assert_eq(ref_load_llama2c(STORIES, &rm, &buf), 0);
	struct ref_tok tok;
	cr_assert_eq(ref_tok_load(&tok, TOK512, 512), 0);
	double sum = 0, sum_sq = 0;
	long n = 0, windows = 0;
	char *copy = strdup(text), *para = malloc(strlen(text) + 1);
	int *ids = malloc((strlen(text) + 2) * sizeof *ids);
	para[0] = '\0';
	/* lines; a blank one (spaces, tabs, CRs) ends a paragraph */
	char *line = copy;
	for (int last = 0; !last;) {
		char *nl = strchr(line, '\n');
		last = !nl;
		if (nl)
			*nl = '\0';
		const int is_blank = strspn(line, " \t\r") == strlen(line);
		if (!is_blank) {
			if (para[0])
				strcat(para, "\n");
			strcat(para, line);
		}
		if ((is_blank || last) && para[0]) {
			const int k = ref_tok_encode(&tok, para, 0, 0, ids);
			for (int i = 0; i < k; i += ctx - 1) {
				struct ref_state *rs = ref_create(&rm);
				int tokw = 1; /* BOS */
				for (int j = 0; j < ctx - 1 && i + j < k; j++) {
					const double *lg = ref_forward(rs, tokw, j);
					const double v = ref_nll(lg, 512, ids[i + j]);
					sum += v;
					sum_sq += v * v;
					n++;
					tokw = ids[i + j];
				}
				windows++;
				ref_destroy(rs);
			}
			para[0] = '\0';
		}
		line = nl ? nl + 1 : line;
	}
	const double mean = sum / (double)n;
	const double var = (sum_sq - (double)n * mean * mean) / (double)(n - 1);
	struct result r = {exp(mean), exp(mean) * sqrt(var / (double)n), n, windows};
	ref_tok_free(&tok);
	free(copy);
	free(para);
	free(ids);
	free(buf);
	return r;
}

/* The first n bytes of the shared text. */
static char *text_prefix(size_t n)
{
	size_t len;
	char *all = rt_read_file(TEXT, &len);
	cr_assert(all && len >= n);
	all[n] = '\0';
	return all;
}

Test(cli, matches_float64_windows_and_paragraphs, .init = setup, .fini = teardown, .timeout = 300)
{
	/* paragraphs of the real text, a separator of spaces and CRs, a
	 * paragraph of two lines, and paragraphs longer than the window */
	char *story = text_prefix(1400);
	char *text = malloc(4096);
	snprintf(text, 4096, "\n\n%s\n  \t\r\n\nThe cat sat.\nThe dog ran.\n\n\n%s", story,
	         "Lily and Ben went to the park. They saw a big tree and a small pond.");
	free(story);
	const char *path = rt_path(dir, "text.txt");
	cr_assert_eq(rt_write_file(path, text, strlen(text)), 0);
	for (int ctx = 24; ctx <= 512; ctx += 512 - 24) {
		char c[16];
		snprintf(c, sizeof c, "%d", ctx);
		const int rc = rt_tool("perplexity", STORIES, "--text", path, "--ctx", c, NULL);
		cr_assert_eq(rc, 0, "exit %d: %s", rc, rt_err);
		const struct result got = parse_result(), want = ref_perplexity(text, ctx);
		cr_log_info("ctx %d: %.4f +/- %.4f over %ld tokens in %ld windows (float64 %.6f)", ctx,
		            got.ppl, got.se, got.tokens, got.windows, want.ppl);
		cr_assert_eq(got.tokens, want.tokens, "ctx %d: scored tokens", ctx);
		cr_assert_eq(got.windows, want.windows, "ctx %d: windows", ctx);
		cr_assert(fabs(got.ppl - want.ppl) <= 1e-4 + 1e-5 * want.ppl,
		          "ctx %d: perplexity %.4f, float64 %.6f", ctx, got.ppl, want.ppl);
		cr_assert(fabs(got.se - want.se) <= 1e-4 + 1e-4 * want.se,
		          "ctx %d: standard error %.4f, float64 %.6f", ctx, got.se, want.se);
		cr_assert(strstr(rt_err, "tokens/s") && strstr(rt_err, "mean NLL"), "%s", rt_err);
	}
	free(text);
}

/* The figure ../shared/data/README.md gives for llama2.c's forward pass. */
Test(cli, reference_over_tinystories, .init = setup, .fini = teardown, .timeout = 600)
{
	const int rc = rt_tool("perplexity", STORIES, "--text", TEXT, "--bytes", "200000", NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, rt_err);
	const struct result r = parse_result();
	cr_assert_eq(r.tokens, 94781);
	cr_assert(fabs(r.ppl - 4.654) <= 0.0005, "perplexity %.4f, the reference is 4.654", r.ppl);
	cr_assert(r.se > 0.001 && r.se < 0.1, "standard error %.4f", r.se);
	cr_log_info("%s%s", rt_out, rt_err);
}

Test(cli, every_load_mode_gives_the_same, .init = setup, .fini = teardown, .timeout = 600)
{
	char *text = text_prefix(1200);
	const char *path = rt_path(dir, "text.txt");
	cr_assert_eq(rt_write_file(path, text, strlen(text)), 0);
	free(text);
	const char *img = rt_path(dir, "s.img");
	char err[512];
	cr_assert_eq(rt_pack_llama2c(STORIES, img, NULL, 64u << 10, FP_CODEC_RAW, err, sizeof err), 0,
	             "%s", err);
	cr_assert_eq(rt_tool("perplexity", STORIES, "--text", path, "--load", "resident", "-q", NULL), 0,
	             "%s", rt_err);
	static char want[sizeof rt_out];
	memcpy(want, rt_out, sizeof rt_out);
	parse_result();
	const char *const modes[][6] = {
		{STORIES, "--load", "mmap", NULL},
		{img, "--load", "resident", NULL},
		{img, "--load", "mmap", NULL},
		{img, "--load", "flexpage", NULL},
		{img, "--budget", "50%", NULL},
		{img, "--budget", "50%", "--preserve", "balanced", NULL},
	};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		const int rc = rt_tool("perplexity", modes[i][0], "--text", path, "--tokenizer", TOK512,
		                    modes[i][1], modes[i][2], modes[i][3] ? modes[i][3] : "-q",
		                    modes[i][3] ? modes[i][4] : NULL, NULL);
		cr_assert_eq(rc, 0, "%s %s %s: exit %d: %s", modes[i][0], modes[i][1], modes[i][2], rc,
		             rt_err);
		cr_assert_str_eq(rt_out, want, "%s %s %s %s", modes[i][0], modes[i][1], modes[i][2],
		                 modes[i][3] ? modes[i][3] : "");
	}
	/* paged: the pager's statistics are in the summary */
	cr_assert_eq(rt_tool("perplexity", img, "--text", path, "--tokenizer", TOK512, "--budget", "50%",
	                  NULL), 0, "%s", rt_err);
	cr_assert(strstr(rt_err, "faults") && strstr(rt_err, "load flexpage"), "%s", rt_err);
}

Test(cli, bad_input_fails_cleanly, .init = setup, .fini = teardown)
{
	const char *path = rt_path(dir, "text.txt");
	cr_assert_eq(rt_write_file(path, "Once upon a time.\n", 18), 0);
	const char *blank = rt_path(dir, "blank.txt");
	cr_assert_eq(rt_write_file(blank, "\n \n\t\n", 5), 0);
	const char *alone = rt_path(dir, "m.bin");
	cr_assert_eq(rt_copy_resized(STORIES, alone, STORIES_SIZE), 0);
	const struct {
		int code;
		const char *needle;
		const char *argv[8];
	} cases[] = {
		{2, "--text", {STORIES, NULL}},
		{2, "--ctx", {STORIES, "--text", path, "--ctx", "1", NULL}},
		{2, "seq_len", {STORIES, "--text", path, "--ctx", "513", NULL}},
		{2, "--bytes", {STORIES, "--text", path, "--bytes", "0", NULL}},
		{2, "--budget applies", {STORIES, "--text", path, "--budget", "50%", NULL}},
		{2, "MODEL", {"--text", path, NULL}},
		{1, "nothing.txt", {STORIES, "--text", rt_path(dir, "nothing.txt"), NULL}},
		{1, "no text", {STORIES, "--text", blank, NULL}},
		{1, "--tokenizer", {alone, "--text", path, NULL}},
		{2, "--threads", {alone, "--text", path, "--threads", "x", NULL}},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *const *a = cases[i].argv;
		const int rc = rt_tool("perplexity", a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
		cr_assert_eq(rc, cases[i].code, "case %zu (%s): exit %d: %s", i, cases[i].needle, rc,
		             rt_err);
		cr_assert(strstr(rt_err, cases[i].needle), "case %zu: '%s' missing from: %s", i,
		          cases[i].needle, rt_err);
		cr_assert_str_eq(rt_out, "", "case %zu", i);
	}
	cr_assert_eq(rt_tool("perplexity", "--help", NULL), 0);
	cr_assert(strstr(rt_out, "--ctx") && strstr(rt_out, "--budget") && strstr(rt_out, "BOS"), "%s",
	          rt_out);
	cr_assert_eq(rt_tool("perplexity", alone, "--text", path, "--tokenizer", TOK512, NULL), 0, "%s",
	             rt_err);
	parse_result();
}
