/* Token sampling as llama2.c does it: greedy, or temperature-scaled
 * softmax with optional top-p, from a seeded xorshift64* stream.  Sorting
 * breaks ties by id so that the same seed gives the same tokens on any C
 * library. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

struct prob_index {
	float prob;
	int index;
};

struct frt_sampler {
	int vocab_size;
	float temperature, topp;
	uint64_t state;
	struct prob_index *buf;
};

static uint32_t random_u32(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return (uint32_t)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}

static float random_f32(uint64_t *state)
{
	return (float)(random_u32(state) >> 8) / 16777216.0f;
}

frt_sampler *frt_sampler_create(int vocab_size, float temperature, float topp, uint64_t seed)
{
	if (vocab_size <= 0) {
		frt_fail(EINVAL, "sampler: vocab_size = %d must be positive", vocab_size);
		return NULL;
	}
	frt_sampler *s = calloc(1, sizeof *s);
	if (s)
		s->buf = calloc((size_t)vocab_size, sizeof *s->buf);
	if (!s || !s->buf) {
		free(s);
		frt_fail(ENOMEM, "sampler: out of memory for %d probabilities", vocab_size);
		return NULL;
	}
	s->vocab_size = vocab_size;
	s->temperature = temperature;
	s->topp = topp;
	/* xorshift never leaves 0: seed 0 means a fixed non-zero state */
	s->state = seed ? seed : 0x9E3779B97F4A7C15ull;
	return s;
}

void frt_sampler_destroy(frt_sampler *s)
{
	if (!s)
		return;
	free(s->buf);
	free(s);
}

int frt_argmax(const float *v, int n)
{
	int best = 0;
	for (int i = 1; i < n; i++)
		if (v[i] > v[best])
			best = i;
	return best;
}

static int sample_mult(const float *p, int n, float coin)
{
	float cdf = 0.0f;
	for (int i = 0; i < n; i++) {
		cdf += p[i];
		if (coin < cdf)
			return i;
	}
	return n - 1; /* rounding */
}

static int by_prob_desc(const void *a, const void *b)
{
	const struct prob_index *x = a, *y = b;
	if (x->prob != y->prob)
		return x->prob > y->prob ? -1 : 1;
	return x->index - y->index;
}

/* Sample among the smallest set of most likely tokens whose probabilities
 * exceed topp.  Tokens below (1 - topp) / (n - 1) cannot be in that set,
 * so they are dropped before the sort. */
static int sample_topp(frt_sampler *s, const float *p, float coin)
{
	const int n = s->vocab_size;
	const float cutoff = (1.0f - s->topp) / (float)(n > 1 ? n - 1 : 1);
	int m = 0;
	for (int i = 0; i < n; i++)
		if (p[i] >= cutoff)
			s->buf[m++] = (struct prob_index){ p[i], i };
	if (m == 0)
		return frt_argmax(p, n);
	qsort(s->buf, (size_t)m, sizeof *s->buf, by_prob_desc);
	float cum = 0.0f;
	int last = m - 1;
	for (int i = 0; i < m; i++) {
		cum += s->buf[i].prob;
		if (cum > s->topp) {
			last = i;
			break;
		}
	}
	const float r = coin * cum;
	float cdf = 0.0f;
	for (int i = 0; i <= last; i++) {
		cdf += s->buf[i].prob;
		if (r < cdf)
			return s->buf[i].index;
	}
	return s->buf[last].index;
}

int frt_sample(frt_sampler *s, float *logits)
{
	if (s->temperature == 0.0f)
		return frt_argmax(logits, s->vocab_size);
	for (int i = 0; i < s->vocab_size; i++)
		logits[i] /= s->temperature;
	fk_softmax(logits, s->vocab_size);
	const float coin = random_f32(&s->state);
	if (s->topp <= 0.0f || s->topp >= 1.0f)
		return sample_mult(logits, s->vocab_size, coin);
	return sample_topp(s, logits, coin);
}
