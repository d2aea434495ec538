/* Reading and encoding a text to score (text_input.c). */
#ifndef FLEXPAGE_TOOL_TEXT_INPUT_H
#define FLEXPAGE_TOOL_TEXT_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include <flexrt/runtime.h>

/* The first limit bytes of path (limit 0: all), malloc'd, its length in
 * *n; or NULL with a message naming the option and the file in err. */
char *read_text(const char *option, const char *path, uint64_t limit, size_t *n, char *err,
                size_t errlen);

/* Every paragraph's tokens one after another (no BOS), and where each
 * paragraph starts in them (n_para + 1 offsets). */
struct encoded {
	int *ids;
	size_t n_ids;
	size_t *para;
	size_t n_para;
};

/* Encode the n bytes of text paragraph by paragraph (with the
 * dummy-prefix space, without BOS).  0, or -1 with a message; e's arrays
 * are the caller's to free either way. */
int encode_text(const frt_tokenizer *tok, const char *text, size_t n, struct encoded *e,
                char *err, size_t errlen);

/* What scoring a text adds up: its negative log-likelihoods. */
struct nll_tally {
	double sum, sum_sq;
	uint64_t n, windows;
};

/* Score every paragraph of e in windows of BOS + up to ctx - 1 tokens,
 * each token given BOS and the tokens before it in its window, adding the
 * NLLs into t; fn(fn_ctx, ...) is passed to frt_score for each position
 * and on_window(fn_ctx, t) called after each window (either may be NULL).
 * 0, or -1 with the runtime's message in err. */
int score_windows(frt_model *rt, const struct encoded *e, int bos, int ctx, frt_token_fn fn,
                  void (*on_window)(void *fn_ctx, const struct nll_tally *t), void *fn_ctx,
                  struct nll_tally *t, char *err, size_t errlen);

/* exp of the mean NLL, and its standard error (the error of the mean from
 * the NLLs' sample standard deviation, through exp to first order). */
double tally_perplexity(const struct nll_tally *t, double *se);

#endif
