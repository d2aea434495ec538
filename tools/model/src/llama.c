/* The Llama architecture as files see it: the checks every configuration
 * passes, the image meta text, and the tensor list in decode order under
 * GGUF's names, which the import, the loaders and the generator walk. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <flexkern/kernels.h>

#include "internal.h"

int model_check_config_named(const struct frt_config *c, const char *path, const char *prefix,
                             const char *const names[7])
{
	const struct {
		int v, max;
	} f[] = {
		{c->dim, FRT_MAX_DIM},        {c->hidden_dim, FRT_MAX_HIDDEN}, {c->n_layers, FRT_MAX_LAYERS},
		{c->n_heads, FRT_MAX_DIM},    {c->n_kv_heads, FRT_MAX_DIM},   {c->vocab_size, FRT_MAX_VOCAB},
		{c->seq_len, FRT_MAX_SEQ},
	};
	const char *pre = prefix, *sp = *prefix ? " " : "";
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		if (f[i].v <= 0)
			return model_fail(EINVAL, "%s: %s%s%s = %d must be positive", path, pre, sp,
			                  names[i], f[i].v);
		if (f[i].v > f[i].max)
			return model_fail(EINVAL, "%s: %s%s%s = %d is implausibly large (limit %d)", path,
			                  pre, sp, names[i], f[i].v, f[i].max);
	}
	if (c->dim % c->n_heads)
		return model_fail(EINVAL, "%s: %s%s%s = %d is not a multiple of %s = %d", path, pre, sp,
		                  names[0], c->dim, names[3], c->n_heads);
	if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
		return model_fail(EINVAL, "%s: %s%s%s = %d is not a multiple of %s = %d", path, pre, sp,
		                  names[3], c->n_heads, names[4], c->n_kv_heads);
	if ((c->dim / c->n_heads) % 2)
		return model_fail(EINVAL, "%s: %s%s%s / %s = %d is odd (RoPE rotates pairs)", path, pre,
		                  sp, names[0], names[3], c->dim / c->n_heads);
	return 0;
}

int model_check_config(const struct frt_config *c, const char *path, const char *field_prefix)
{
	static const char *const fields[7] = {"dim", "hidden_dim", "n_layers", "n_heads",
	                                      "n_kv_heads", "vocab_size", "seq_len"};
	return model_check_config_named(c, path, field_prefix, fields);
}

int model_format_meta(const struct frt_config *c, int shared, int type, char *buf, size_t len)
{
	int n = snprintf(buf, len,
	                 "arch=llama\ndim=%d\nhidden_dim=%d\nn_layers=%d\nn_heads=%d\n"
	                 "n_kv_heads=%d\nvocab_size=%d\nseq_len=%d\nshared_classifier=%d\n"
	                 "rope_theta=10000\nnorm_eps=1e-5\ntype=%s\n",
	                 c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
	                 c->vocab_size, c->seq_len, shared ? 1 : 0, fk_type_name(type));
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

/* A layer's tensors in decode order. */
static const struct {
	const char *suffix;
	int role;
} per_layer[] = {
	{"attn_norm", ROLE_ATTN_NORM}, {"attn_q", ROLE_WQ},      {"attn_k", ROLE_WK},
	{"attn_v", ROLE_WV},           {"attn_output", ROLE_WO}, {"ffn_norm", ROLE_FFN_NORM},
	{"ffn_gate", ROLE_W1},         {"ffn_up", ROLE_W3},      {"ffn_down", ROLE_W2},
};
#define PER_LAYER ((int)(sizeof per_layer / sizeof per_layer[0]))

int llama_tensor_at(const struct frt_config *c, int shared, int i, struct llama_tensor *t)
{
	const uint64_t d = (uint64_t)c->dim, hd = (uint64_t)c->hidden_dim, V = (uint64_t)c->vocab_size;
	const uint64_t kv = d * (uint64_t)c->n_kv_heads / (uint64_t)c->n_heads;
	memset(t, 0, sizeof *t);
	t->layer = -1;
	if (i == 0) {
		snprintf(t->name, sizeof t->name, "token_embd.weight");
		t->role = ROLE_TOKEN_EMBD;
	} else if (i - 1 < c->n_layers * PER_LAYER) {
		t->layer = (i - 1) / PER_LAYER;
		const int k = (i - 1) % PER_LAYER;
		snprintf(t->name, sizeof t->name, "blk.%d.%s.weight", t->layer, per_layer[k].suffix);
		t->role = per_layer[k].role;
	} else if (i - 1 == c->n_layers * PER_LAYER) {
		snprintf(t->name, sizeof t->name, "output_norm.weight");
		t->role = ROLE_OUTPUT_NORM;
	} else if (i - 2 == c->n_layers * PER_LAYER && !shared) {
		snprintf(t->name, sizeof t->name, "output.weight");
		t->role = ROLE_OUTPUT;
	} else {
		return 0;
	}
	switch (t->role) {
	case ROLE_TOKEN_EMBD: case ROLE_OUTPUT: t->rows = V; t->cols = d; break;
	case ROLE_WQ: case ROLE_WO: t->rows = d; t->cols = d; break;
	case ROLE_WK: case ROLE_WV: t->rows = kv; t->cols = d; break;
	case ROLE_W1: case ROLE_W3: t->rows = hd; t->cols = d; break;
	case ROLE_W2: t->rows = d; t->cols = hd; break;
	default: t->rows = 1; t->cols = d; break; /* norms */
	}
	return 1;
}

/* The matrix slot of t (not a norm). */
static struct frt_tensor *matrix_of(struct frt_weights *w, struct frt_layer *layers,
                                    const struct llama_tensor *t)
{
	struct frt_layer *L = t->layer >= 0 ? &layers[t->layer] : NULL;
	switch (t->role) {
	case ROLE_TOKEN_EMBD: return &w->token_embd;
	case ROLE_WQ: return &L->wq;
	case ROLE_WK: return &L->wk;
	case ROLE_WV: return &L->wv;
	case ROLE_WO: return &L->wo;
	case ROLE_W1: return &L->w1;
	case ROLE_W3: return &L->w3;
	case ROLE_W2: return &L->w2;
	default: return &w->output;
	}
}

void llama_set(struct frt_weights *w, struct frt_layer *layers, const struct llama_tensor *t,
               const void *data, int type)
{
	if (t->role == ROLE_ATTN_NORM)
		layers[t->layer].attn_norm = data;
	else if (t->role == ROLE_FFN_NORM)
		layers[t->layer].ffn_norm = data;
	else if (t->role == ROLE_OUTPUT_NORM)
		w->output_norm = data;
	else
		*matrix_of(w, layers, t) = (struct frt_tensor){data, type};
}

const struct frt_tensor *llama_get(const struct frt_weights *w, const struct frt_layer *layers,
                                   const struct llama_tensor *t)
{
	/* only read through: the casts lend matrix_of() the pointers */
	return matrix_of((struct frt_weights *)w, (struct frt_layer *)layers, t);
}

int llama_check_shape(const char *path, const struct llama_tensor *t, int type, uint32_t ndim,
                      const uint64_t *shape, uint64_t size)
{
	const uint64_t rows = t->rows, cols = t->cols;
	int ok = ndim >= 1 && shape[0] == cols;
	/* a norm is a vector; dimensions past the expected ones may be 1 */
	for (uint32_t k = 1; ok && k < ndim; k++)
		ok = shape[k] == (k == 1 ? rows : 1);
	if (ok && !llama_is_norm(t->role))
		ok = ndim >= 2;
	if (!ok)
		return model_fail(EINVAL, "%s: tensor %s has shape [%llu, %llu], expected [%llu, %llu]",
		                  path, t->name, (unsigned long long)(ndim ? shape[0] : 0),
		                  (unsigned long long)(ndim > 1 ? shape[1] : 1), (unsigned long long)cols,
		                  (unsigned long long)rows);
	const uint64_t need = fk_row_bytes(type, (size_t)cols) * rows;
	if (!need)
		return model_fail(EINVAL, "%s: tensor %s is %s with rows of %llu values, not whole "
		                  "blocks of %d", path, t->name, fk_type_name(type),
		                  (unsigned long long)cols, FK_QK);
	if (size != need)
		return model_fail(EINVAL, "%s: tensor %s is %llu bytes, its shape needs %llu", path,
		                  t->name, (unsigned long long)size, (unsigned long long)need);
	return 0;
}
