/* Grouped-query attention over the KV cache.  Heads are independent, so
 * they are split over the pool's threads when there is enough work to pay
 * for the wake-up; a head's arithmetic is the same on any thread. */
#include "internal.h"

#include <math.h>
#include <string.h>

struct att_job {
	frt_model *m;
	int l, pos;
};

static void heads(void *ctx, int ith, int nth)
{
	const struct att_job *j = ctx;
	frt_model *m = j->m;
	const int hs = m->head_size, n_heads = m->cfg.n_heads;
	const int group = n_heads / m->cfg.n_kv_heads;
	const float scale = 1.0f / sqrtf((float)hs);
	const size_t layer = (size_t)j->l * m->max_seq * m->kv_dim;

	for (int h = n_heads * ith / nth; h < n_heads * (ith + 1) / nth; h++) {
		const float *q = m->q + h * hs;
		float *att = m->att + (size_t)h * m->max_seq;
		const size_t off = layer + (size_t)(h / group) * hs;
		for (int t = 0; t <= j->pos; t++)
			att[t] = fk_dot_f32(q, m->key_cache + off + (size_t)t * m->kv_dim, hs) * scale;
		fk_softmax(att, j->pos + 1);
		float *out = m->xb + h * hs;
		memset(out, 0, (size_t)hs * sizeof *out);
		for (int t = 0; t <= j->pos; t++)
			fk_axpy(out, att[t], m->value_cache + off + (size_t)t * m->kv_dim, hs);
	}
}

void frt_attention(frt_model *m, int l, int pos)
{
	struct att_job j = { m, l, pos };
	/* below ~64K multiply-adds a wake-up costs more than it saves */
	if ((long)(pos + 1) * m->cfg.dim < 32768)
		heads(&j, 0, 1);
	else
		fk_pool_run(m->pool, heads, &j);
}
