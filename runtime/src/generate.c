/* The generate loop: prompt, then sampled tokens, one forward pass per
 * position, timing the first pass apart (it includes every cold start:
 * first touches, page faults, thread wake-ups). */
#include "internal.h"

#include <errno.h>
#include <time.h>

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int frt_generate(frt_model *m, frt_sampler *s, const int *prompt, int n_prompt,
                 int steps, int stop_token, frt_token_fn fn, void *ctx,
                 struct frt_gen_stats *stats)
{
	static const int bos[1] = { FRT_BOS };
	struct frt_gen_stats st = {0};

	if (n_prompt <= 0) {
		prompt = bos;
		n_prompt = 1;
	}
	for (int i = 0; i < n_prompt; i++) {
		if (prompt[i] < 0 || prompt[i] >= m->cfg.vocab_size)
			return frt_fail(EINVAL, "prompt token %d (at %d) is not in the vocabulary (0..%d)",
			                prompt[i], i, m->cfg.vocab_size - 1);
	}
	if (steps <= 0 || steps > m->max_seq)
		steps = m->max_seq;
	if (n_prompt > steps)
		return frt_fail(EINVAL, "the prompt (%d tokens) is longer than the %d steps", n_prompt,
		                steps);

	int token = prompt[0];
	for (int pos = 0; pos < steps; pos++) {
		const uint64_t t0 = mono_ns();
		float *logits = frt_forward(m, token, pos);
		const uint64_t dt = mono_ns() - t0;
		if (pos == 0)
			st.first_ns = dt;
		else
			st.rest_ns += dt;
		st.tokens++;
		const int next = pos + 1 < n_prompt ? prompt[pos + 1] : frt_sample(s, logits);
		if (pos + 1 >= n_prompt && next == stop_token)
			break;
		if (fn && fn(ctx, pos + 1, next))
			break;
		token = next;
	}
	if (stats)
		*stats = st;
	return 0;
}
