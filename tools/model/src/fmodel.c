/* A Llama model held whole in float: read through a resident load (which
 * checks every tensor against the configuration), each matrix converted
 * from its stored type.  Quantized matrices are refused: re-quantizing
 * them would stack a second rounding on the first. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <flexkern/kernels.h>

#include "fmodel.h"

static const float *norm_of(const struct model *m, const struct llama_tensor *t)
{
	switch (t->role) {
	case ROLE_ATTN_NORM: return m->layers[t->layer].attn_norm;
	case ROLE_FFN_NORM: return m->layers[t->layer].ffn_norm;
	default: return m->weights.output_norm;
	}
}

static int count_tensors(const struct frt_config *c, int shared)
{
	struct llama_tensor t;
	int n = 0;
	while (llama_tensor_at(c, shared, n, &t))
		n++;
	return n;
}

static int alloc_like(struct fmodel *fm, const struct frt_config *c, int shared)
{
	memset(fm, 0, sizeof *fm);
	fm->cfg = *c;
	fm->shared_classifier = shared;
	fm->n = count_tensors(c, shared);
	fm->t = calloc((size_t)fm->n, sizeof *fm->t);
	fm->w = calloc((size_t)fm->n, sizeof *fm->w);
	if (!fm->t || !fm->w)
		return -ENOMEM;
	for (int i = 0; i < fm->n; i++) {
		llama_tensor_at(c, shared, i, &fm->t[i]);
		fm->w[i] = malloc(fm->t[i].rows * fm->t[i].cols * sizeof(float));
		if (!fm->w[i])
			return -ENOMEM;
	}
	return 0;
}

int fmodel_load(struct fmodel *fm, const char *path)
{
	struct model m = {0};
	const struct model_options o = {.load = MODEL_LOAD_RESIDENT};
	int rc = model_open(&m, path, &o);
	if (rc) {
		memset(fm, 0, sizeof *fm);
		return rc;
	}
	if (alloc_like(fm, &m.cfg, m.shared_classifier)) {
		rc = model_fail(ENOMEM, "%s: out of memory for a float copy of the model", path);
		goto out;
	}
	for (int i = 0; i < fm->n; i++) {
		const struct llama_tensor *t = &fm->t[i];
		const size_t cols = (size_t)t->cols;
		if (llama_is_norm(t->role)) {
			memcpy(fm->w[i], norm_of(&m, t), cols * sizeof(float));
			continue;
		}
		const struct frt_tensor *x = llama_get(&m.weights, m.layers, t);
		if (x->type != FK_F32 && x->type != FK_F16) {
			rc = model_fail(EINVAL, "%s: tensor %s is %s: only f32 and f16 weights are "
			                "re-quantized (quantizing a quantized tensor again adds a "
			                "second rounding)", path, t->name, fk_type_name(x->type));
			goto out;
		}
		const size_t rb = fk_row_bytes(x->type, cols);
		for (uint64_t r = 0; r < t->rows; r++)
			fk_dequantize_row(x->type, (const char *)x->data + r * rb, fm->w[i] + r * cols, cols);
	}
out:
	model_close(&m);
	if (rc)
		fmodel_free(fm);
	return rc;
}

int fmodel_copy(struct fmodel *dst, const struct fmodel *src)
{
	if (alloc_like(dst, &src->cfg, src->shared_classifier)) {
		fmodel_free(dst);
		return model_fail(ENOMEM, "out of memory for a copy of the model");
	}
	for (int i = 0; i < src->n; i++)
		memcpy(dst->w[i], src->w[i], src->t[i].rows * src->t[i].cols * sizeof(float));
	return 0;
}

void fmodel_free(struct fmodel *fm)
{
	for (int i = 0; fm->w && i < fm->n; i++)
		free(fm->w[i]);
	free(fm->w);
	free(fm->t);
	memset(fm, 0, sizeof *fm);
}

int fmodel_find(const struct fmodel *fm, int role, int layer)
{
	for (int i = 0; i < fm->n; i++)
		if (fm->t[i].role == role && fm->t[i].layer == layer)
			return i;
	return -1;
}

void fmodel_weights(const struct fmodel *fm, struct frt_weights *w, struct frt_layer *layers)
{
	memset(w, 0, sizeof *w);
	for (int i = 0; i < fm->n; i++)
		llama_set(w, layers, &fm->t[i], fm->w[i], FK_F32);
	w->layers = layers;
	if (fm->shared_classifier)
		w->output = w->token_embd;
}
