/* Scoring a window of tokens: the negative log-likelihood of each token
 * given the ones before it, the quantity perplexity averages. */
#include "internal.h"

#include <errno.h>
#include <math.h>

/* -ln softmax(logits)[target], in double: log-sum-exp around the largest
 * logit. */
static double nll_of(const float *logits, int n, int target)
{
	float mx = logits[0];
	for (int i = 1; i < n; i++)
		if (logits[i] > mx)
			mx = logits[i];
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += exp((double)logits[i] - mx);
	return log(sum) + mx - (double)logits[target];
}

int frt_score(frt_model *m, const int *ids, int n, double *nll, frt_token_fn fn, void *ctx)
{
	const int vocab = m->cfg.vocab_size;
	if (n < 1 || n > m->max_seq)
		return frt_fail(EINVAL, "score: a window of %d tokens (the model holds 1..%d)", n,
		                m->max_seq);
	for (int i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= vocab)
			return frt_fail(EINVAL, "score: token %d (at %d) is not in the vocabulary (0..%d)",
			                ids[i], i, vocab - 1);
	/* the last token is only scored: no pass runs it */
	for (int pos = 0; pos + 1 < n; pos++) {
		const float *logits = frt_forward(m, ids[pos], pos);
		nll[pos] = nll_of(logits, vocab, ids[pos + 1]);
		if (fn && fn(ctx, pos, ids[pos]))
			return frt_fail(ECANCELED, "score: stopped at position %d", pos);
	}
	return n - 1;
}
