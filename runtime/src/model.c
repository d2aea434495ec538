/* Model state: configuration checks, KV cache and activation buffers. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_range(const char *name, int v, int max)
{
	if (v <= 0)
		return frt_fail(EINVAL, "%s = %d must be positive", name, v);
	if (v > max)
		return frt_fail(EINVAL, "%s = %d is implausibly large (limit %d)", name, v, max);
	return 0;
}

int frt_config_check(const struct frt_config *c)
{
	/* heads are bounded by FRT_MAX_DIM here and by dim through the
	 * divisibility checks below */
	if (check_range("dim", c->dim, FRT_MAX_DIM) ||
	    check_range("hidden_dim", c->hidden_dim, FRT_MAX_HIDDEN) ||
	    check_range("n_layers", c->n_layers, FRT_MAX_LAYERS) ||
	    check_range("n_heads", c->n_heads, FRT_MAX_DIM) ||
	    check_range("n_kv_heads", c->n_kv_heads, FRT_MAX_DIM) ||
	    check_range("vocab_size", c->vocab_size, FRT_MAX_VOCAB) ||
	    check_range("seq_len", c->seq_len, FRT_MAX_SEQ))
		return -EINVAL;
	if (c->dim % c->n_heads)
		return frt_fail(EINVAL, "dim = %d is not a multiple of n_heads = %d", c->dim, c->n_heads);
	if (c->n_heads % c->n_kv_heads)
		return frt_fail(EINVAL, "n_heads = %d is not a multiple of n_kv_heads = %d", c->n_heads,
		                c->n_kv_heads);
	if ((c->dim / c->n_heads) % 2)
		return frt_fail(EINVAL, "dim / n_heads = %d is odd (RoPE rotates pairs)",
		                c->dim / c->n_heads);
	if (!(c->rope_theta >= 0))
		return frt_fail(EINVAL, "rope_theta = %g must not be negative", (double)c->rope_theta);
	if (!(c->norm_eps >= 0))
		return frt_fail(EINVAL, "norm_eps = %g must not be negative", (double)c->norm_eps);
	return 0;
}

/* A matrix whose rows are n_in values: present, of a type the kernels
 * multiply, in whole blocks if quantized.  what names it ("layer 1 w2"). */
static int check_tensor(const struct frt_tensor *t, int n_in, const char *in_name,
                        const char *what)
{
	if (!t->data)
		return frt_fail(EINVAL, "weights: %s is missing", what);
	if (!fk_type_name(t->type))
		return frt_fail(EINVAL, "weights: %s has unknown type %d", what, t->type);
	if (!fk_row_bytes(t->type, (size_t)n_in))
		return frt_fail(EINVAL, "weights: %s is %s, which needs rows (%s = %d) to be multiples "
		                "of %d", what, fk_type_name(t->type), in_name, n_in, FK_QK);
	return 0;
}

static int check_weights(const struct frt_config *c, const struct frt_weights *w)
{
	if (check_tensor(&w->token_embd, c->dim, "dim", "token_embd") ||
	    check_tensor(&w->output, c->dim, "dim", "output"))
		return -EINVAL;
	if (!w->output_norm || !w->layers)
		return frt_fail(EINVAL, "weights: %s is missing", !w->output_norm ? "output_norm" : "layers");
	for (int l = 0; l < c->n_layers; l++) {
		const struct frt_layer *L = &w->layers[l];
		if (!L->attn_norm || !L->ffn_norm)
			return frt_fail(EINVAL, "weights: layer %d %s is missing", l,
			                !L->attn_norm ? "attn_norm" : "ffn_norm");
		const struct {
			const struct frt_tensor *t;
			const char *name;
		} mats[] = {
			{&L->wq, "wq"}, {&L->wk, "wk"}, {&L->wv, "wv"}, {&L->wo, "wo"},
			{&L->w1, "w1"}, {&L->w3, "w3"}, {&L->w2, "w2"},
		};
		for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
			char what[32];
			snprintf(what, sizeof what, "layer %d %s", l, mats[i].name);
			const int w2 = mats[i].t == &L->w2;
			if (check_tensor(mats[i].t, w2 ? c->hidden_dim : c->dim,
			                 w2 ? "hidden_dim" : "dim", what))
				return -EINVAL;
		}
	}
	return 0;
}

static float *falloc(size_t n)
{
	return calloc(n ? n : 1, sizeof(float));
}

frt_model *frt_model_create(const struct frt_config *cfg, const struct frt_weights *w,
                            const struct frt_options *opt)
{
	if (frt_config_check(cfg) || check_weights(cfg, w))
		return NULL;
	frt_model *m = calloc(1, sizeof *m);
	if (!m) {
		frt_fail(ENOMEM, "out of memory");
		return NULL;
	}
	m->cfg = *cfg;
	if (!m->cfg.rope_theta)
		m->cfg.rope_theta = 10000.0f;
	if (!m->cfg.norm_eps)
		m->cfg.norm_eps = 1e-5f;
	m->w = *w;
	m->max_seq = opt && opt->max_seq > 0 && opt->max_seq < cfg->seq_len ? opt->max_seq : cfg->seq_len;
	m->head_size = cfg->dim / cfg->n_heads;
	m->kv_dim = cfg->dim / cfg->n_heads * cfg->n_kv_heads;
	m->embd_row_bytes = fk_row_bytes(w->token_embd.type, (size_t)cfg->dim);

	m->skip = calloc((size_t)cfg->n_layers, 1);
	m->layers = malloc((size_t)cfg->n_layers * sizeof *m->layers);
	if (m->layers)
		memcpy(m->layers, w->layers, (size_t)cfg->n_layers * sizeof *m->layers);
	m->w.layers = m->layers;

	const size_t cache = (size_t)cfg->n_layers * (size_t)m->max_seq * (size_t)m->kv_dim;
	m->x = falloc((size_t)cfg->dim);
	m->xb = falloc((size_t)cfg->dim);
	m->xb2 = falloc((size_t)cfg->dim);
	m->hb = falloc((size_t)cfg->hidden_dim);
	m->hb2 = falloc((size_t)cfg->hidden_dim);
	m->q = falloc((size_t)cfg->dim);
	m->att = falloc((size_t)cfg->n_heads * (size_t)m->max_seq);
	m->logits = falloc((size_t)cfg->vocab_size);
	m->key_cache = falloc(cache);
	m->value_cache = falloc(cache);
	if (!m->skip || !m->layers || !m->x || !m->xb || !m->xb2 || !m->hb || !m->hb2 || !m->q ||
	    !m->att || !m->logits || !m->key_cache || !m->value_cache) {
		frt_fail(ENOMEM, "out of memory for the model state (KV cache %zu MiB)",
		         cache * 2 * sizeof(float) >> 20);
		frt_model_destroy(m);
		return NULL;
	}
	const int threads = opt && opt->n_threads > 0 ? opt->n_threads : 1;
	m->pool = fk_pool_create(threads);
	if (!m->pool) {
		frt_fail(errno, "cannot start %d compute threads: %s", threads, fk_last_error());
		frt_model_destroy(m);
		return NULL;
	}
	return m;
}

void frt_model_destroy(frt_model *m)
{
	if (!m)
		return;
	fk_pool_destroy(m->pool);
	frt_repack_free(m);
	free(m->skip);
	free(m->layers);
	free(m->x);
	free(m->xb);
	free(m->xb2);
	free(m->hb);
	free(m->hb2);
	free(m->q);
	free(m->att);
	free(m->logits);
	free(m->key_cache);
	free(m->value_cache);
	free(m);
}

const struct frt_config *frt_model_config(const frt_model *m)
{
	return &m->cfg;
}

int frt_model_max_seq(const frt_model *m)
{
	return m->max_seq;
}

int frt_model_skip_layers(frt_model *m, const unsigned char *skip)
{
	const int n = m->cfg.n_layers;
	int kept = n;
	for (int l = 0; skip && l < n; l++)
		kept -= skip[l] != 0;
	if (!kept)
		return frt_fail(EINVAL, "skip: all %d layers left out (at least one must run)", n);
	for (int l = 0; l < n; l++)
		m->skip[l] = skip && skip[l] ? FRT_SKIP_ATTN | FRT_SKIP_FFN : 0;
	return 0;
}

int frt_model_skip_parts(frt_model *m, const unsigned char *parts)
{
	const int n = m->cfg.n_layers, all = FRT_SKIP_ATTN | FRT_SKIP_FFN;
	int kept = 0;
	for (int l = 0; l < n; l++) {
		const int p = parts ? parts[l] : 0;
		if (p & ~all)
			return frt_fail(EINVAL, "skip: layer %d: %#x is not a set of FRT_SKIP_ATTN (1) and "
			                "FRT_SKIP_FFN (2)", l, (unsigned)p);
		kept += (p & all) != all;
	}
	if (!kept)
		return frt_fail(EINVAL, "skip: every part of all %d layers left out (at least one "
		                "must run)", n);
	for (int l = 0; l < n; l++)
		m->skip[l] = parts ? parts[l] : 0;
	return 0;
}

void frt_model_record_states(frt_model *m, float *states)
{
	m->states = states;
}

/* Bytes of n_out rows of n_in values of t's type (of the whole matrix
 * for a repacked one, padding included: the products read it). */
static uint64_t matrix_bytes(const struct frt_tensor *t, int n_in, int n_out)
{
	if (t->type == FK_Q4_0_X8)
		return fk_repack_bytes(FK_Q4_0, n_in, n_out);
	if (t->type == FK_Q8_0_X8)
		return fk_repack_bytes(FK_Q8_0, n_in, n_out);
	return fk_row_bytes(t->type, (size_t)n_in) * (uint64_t)n_out;
}

uint64_t frt_model_bytes_per_token(const frt_model *m)
{
	const struct frt_config *c = &m->cfg;
	const int d = c->dim, hd = c->hidden_dim, kv = m->kv_dim;
	const uint64_t norms = sizeof(float) * (uint64_t)d;
	uint64_t n = m->embd_row_bytes /* one embedding row */ + norms +
	             matrix_bytes(&m->w.output, d, c->vocab_size);
	for (int l = 0; l < c->n_layers; l++) {
		const struct frt_layer *L = &m->layers[l];
		if (!(m->skip[l] & FRT_SKIP_ATTN))
			n += matrix_bytes(&L->wq, d, d) + matrix_bytes(&L->wk, d, kv) +
			     matrix_bytes(&L->wv, d, kv) + matrix_bytes(&L->wo, d, d) + norms;
		if (!(m->skip[l] & FRT_SKIP_FFN))
			n += matrix_bytes(&L->w1, d, hd) + matrix_bytes(&L->w3, d, hd) +
			     matrix_bytes(&L->w2, hd, d) + norms;
	}
	return n;
}
