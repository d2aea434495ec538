/* The forward pass of one token, llama2.c's transformer:
 *
 *   x = embed(token)
 *   per layer: x += wo · attention(rope(wq·n(x)), rope(wk·n(x)), wv·n(x))
 *              x += w2 · (silu(w1·n(x)) * w3·n(x))
 *   logits = output · n(x)
 *
 * with n() the layer's RMSNorm.  Products that read the same input run
 * as one batch, so the pool wakes once for q, k and v and once for the
 * gate and up projections.
 *
 * A layer mask (frt_model_skip_layers, frt_model_skip_parts) leaves
 * layers, or a layer's attention or FFN alone, out: the residual stream
 * passes a skipped part unchanged, which is what a model without that
 * part computes.  frt_forward_from starts the pass at a layer from
 * a residual stream recorded earlier (frt_model_record_states), so a
 * search over masks reruns only the layers after the first one it
 * changes. */
#include "internal.h"

#include <errno.h>
#include <string.h>

static void add(float *x, const float *y, int n)
{
	for (int i = 0; i < n; i++)
		x[i] += y[i];
}

static void record(frt_model *m, int l)
{
	if (m->states)
		memcpy(m->states + (size_t)l * m->cfg.dim, m->x, (size_t)m->cfg.dim * sizeof *m->x);
}

/* Layers first..n_layers-1 over m->x at pos, then the classifier. */
static float *layers_from(frt_model *m, int first, int pos)
{
	const struct frt_config *c = &m->cfg;
	const int dim = c->dim, hidden = c->hidden_dim, kv_dim = m->kv_dim;

	for (int l = first; l < c->n_layers; l++) {
		record(m, l);
		const struct frt_layer *L = &m->layers[l];
		if (m->skip[l] & FRT_SKIP_ATTN)
			goto ffn;
		const size_t at = ((size_t)l * m->max_seq + pos) * kv_dim;
		float *k = m->key_cache + at, *v = m->value_cache + at;

		fk_rmsnorm(m->xb, m->x, L->attn_norm, dim, c->norm_eps);
		const struct fk_matvec qkv[3] = {
			{ L->wq.type, L->wq.data, m->xb, m->q, dim, dim },
			{ L->wk.type, L->wk.data, m->xb, k, dim, kv_dim },
			{ L->wv.type, L->wv.data, m->xb, v, dim, kv_dim },
		};
		fk_matvec_batch(m->pool, qkv, 3);
		fk_rope(m->q, c->n_heads, m->head_size, pos, c->rope_theta);
		fk_rope(k, c->n_kv_heads, m->head_size, pos, c->rope_theta);

		frt_attention(m, l, pos);
		fk_matvec(m->pool, m->xb2, L->wo.data, L->wo.type, m->xb, dim, dim);
		add(m->x, m->xb2, dim);
	ffn:
		if (m->skip[l] & FRT_SKIP_FFN)
			continue;
		fk_rmsnorm(m->xb, m->x, L->ffn_norm, dim, c->norm_eps);
		const struct fk_matvec ffn[2] = {
			{ L->w1.type, L->w1.data, m->xb, m->hb, dim, hidden },
			{ L->w3.type, L->w3.data, m->xb, m->hb2, dim, hidden },
		};
		fk_matvec_batch(m->pool, ffn, 2);
		fk_swiglu(m->hb, m->hb2, hidden);
		fk_matvec(m->pool, m->xb, L->w2.data, L->w2.type, m->hb, hidden, dim);
		add(m->x, m->xb, dim);
	}
	record(m, c->n_layers);

	fk_rmsnorm(m->x, m->x, m->w.output_norm, dim, c->norm_eps);
	fk_matvec(m->pool, m->logits, m->w.output.data, m->w.output.type, m->x, dim, c->vocab_size);
	return m->logits;
}

float *frt_forward(frt_model *m, int token, int pos)
{
	const struct frt_config *c = &m->cfg;
	if (token < 0 || token >= c->vocab_size || pos < 0 || pos >= m->max_seq) {
		frt_fail(EINVAL, "token %d (vocabulary 0..%d) or position %d (0..%d) is out of range",
		         token, c->vocab_size - 1, pos, m->max_seq - 1);
		return NULL;
	}
	fk_dequantize_row(m->w.token_embd.type,
	                  (const char *)m->w.token_embd.data + (size_t)token * m->embd_row_bytes,
	                  m->x, (size_t)c->dim);
	return layers_from(m, 0, pos);
}

float *frt_forward_from(frt_model *m, const float *x, int layer, int pos)
{
	const struct frt_config *c = &m->cfg;
	if (layer < 0 || layer > c->n_layers || pos < 0 || pos >= m->max_seq || !x) {
		frt_fail(EINVAL, "forward from layer %d (0..%d) at position %d (0..%d)%s", layer,
		         c->n_layers, pos, m->max_seq - 1, x ? "" : ": no residual stream");
		return NULL;
	}
	memcpy(m->x, x, (size_t)c->dim * sizeof *m->x);
	return layers_from(m, layer, pos);
}
