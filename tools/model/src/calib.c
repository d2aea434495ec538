/* Calibration: the model run in float over calibration tokens, gathering
 * the mean square of every input channel of every matrix group, the
 * statistics that re-scaling (rescale.c) and the error estimates weigh
 * by.  The pass is llama2.c's (runtime/src/forward.c), written out here
 * because the runtime does not expose its intermediate vectors. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <flexkern/kernels.h>

#include "fmodel.h"

static void acc_sq(double *acc, const float *x, int n)
{
	for (int i = 0; i < n; i++)
		acc[i] += (double)x[i] * x[i];
}

struct pass {
	const struct fmodel *fm;
	fk_pool *pool;
	int ctx, kv_dim, hs;
	float *x, *xb, *xb2, *q, *hb, *hb2, *att, *logits, *kc, *vc;
	const float **mat;           /* [n]: each tensor's floats */
};

static const float *W(const struct pass *p, int role, int layer)
{
	return p->fm->w[fmodel_find(p->fm, role, layer)];
}

static void step(struct pass *p, struct calib_stats *s, int token, int pos)
{
	const struct frt_config *c = &p->fm->cfg;
	const int dim = c->dim, hid = c->hidden_dim, kv = p->kv_dim, hs = p->hs;
	const float eps = c->norm_eps ? c->norm_eps : 1e-5f;
	const float theta = c->rope_theta ? c->rope_theta : 10000.0f;
	memcpy(p->x, W(p, ROLE_TOKEN_EMBD, -1) + (size_t)token * dim, dim * sizeof(float));
	for (int l = 0; l < c->n_layers; l++) {
		float *k = p->kc + ((size_t)l * p->ctx + pos) * kv;
		float *v = p->vc + ((size_t)l * p->ctx + pos) * kv;
		fk_rmsnorm(p->xb, p->x, W(p, ROLE_ATTN_NORM, l), dim, eps);
		acc_sq(s->attn_in + (size_t)l * dim, p->xb, dim);
		fk_matvec(p->pool, p->q, W(p, ROLE_WQ, l), FK_F32, p->xb, dim, dim);
		fk_matvec(p->pool, k, W(p, ROLE_WK, l), FK_F32, p->xb, dim, kv);
		fk_matvec(p->pool, v, W(p, ROLE_WV, l), FK_F32, p->xb, dim, kv);
		fk_rope(p->q, c->n_heads, hs, pos, theta);
		fk_rope(k, c->n_kv_heads, hs, pos, theta);
		const int group = c->n_heads / c->n_kv_heads;
		for (int h = 0; h < c->n_heads; h++) {
			const float *qh = p->q + h * hs;
			const int off = (h / group) * hs;
			for (int t = 0; t <= pos; t++)
				p->att[t] = fk_dot_f32(qh, p->kc + ((size_t)l * p->ctx + t) * kv + off, hs) /
				            sqrtf((float)hs);
			fk_softmax(p->att, pos + 1);
			float *o = p->xb + h * hs;
			memset(o, 0, hs * sizeof(float));
			for (int t = 0; t <= pos; t++)
				fk_axpy(o, p->att[t], p->vc + ((size_t)l * p->ctx + t) * kv + off, hs);
		}
		acc_sq(s->wo_in + (size_t)l * dim, p->xb, dim);
		fk_matvec(p->pool, p->xb2, W(p, ROLE_WO, l), FK_F32, p->xb, dim, dim);
		for (int i = 0; i < dim; i++)
			p->x[i] += p->xb2[i];
		fk_rmsnorm(p->xb, p->x, W(p, ROLE_FFN_NORM, l), dim, eps);
		acc_sq(s->ffn_in + (size_t)l * dim, p->xb, dim);
		fk_matvec(p->pool, p->hb, W(p, ROLE_W1, l), FK_F32, p->xb, dim, hid);
		fk_matvec(p->pool, p->hb2, W(p, ROLE_W3, l), FK_F32, p->xb, dim, hid);
		fk_swiglu(p->hb, p->hb2, hid);
		acc_sq(s->w2_in + (size_t)l * hid, p->hb, hid);
		fk_matvec(p->pool, p->xb, W(p, ROLE_W2, l), FK_F32, p->hb, hid, dim);
		for (int i = 0; i < dim; i++)
			p->x[i] += p->xb[i];
	}
	fk_rmsnorm(p->xb, p->x, W(p, ROLE_OUTPUT_NORM, -1), dim, eps);
	acc_sq(s->out_in, p->xb, dim);
	s->tokens++;
}

int calib_collect(const struct fmodel *fm, const int *ids, int n_ids, int ctx, int threads,
                  struct calib_stats *s)
{
	const struct frt_config *c = &fm->cfg;
	const size_t L = (size_t)c->n_layers, dim = (size_t)c->dim, hid = (size_t)c->hidden_dim;
	memset(s, 0, sizeof *s);
	struct pass p = {.fm = fm, .ctx = ctx, .hs = c->dim / c->n_heads,
	                 .kv_dim = c->dim * c->n_kv_heads / c->n_heads};
	s->attn_in = calloc(L * dim, sizeof(double));
	s->wo_in = calloc(L * dim, sizeof(double));
	s->ffn_in = calloc(L * dim, sizeof(double));
	s->w2_in = calloc(L * hid, sizeof(double));
	s->out_in = calloc(dim, sizeof(double));
	p.x = malloc(dim * sizeof(float));
	p.xb = malloc(dim * sizeof(float));
	p.xb2 = malloc(dim * sizeof(float));
	p.q = malloc(dim * sizeof(float));
	p.hb = malloc(hid * sizeof(float));
	p.hb2 = malloc(hid * sizeof(float));
	p.att = malloc((size_t)ctx * sizeof(float));
	p.kc = malloc(L * (size_t)ctx * (size_t)p.kv_dim * sizeof(float));
	p.vc = malloc(L * (size_t)ctx * (size_t)p.kv_dim * sizeof(float));
	p.pool = threads > 1 ? fk_pool_create(threads) : NULL;
	int rc = 0;
	if (!s->attn_in || !s->wo_in || !s->ffn_in || !s->w2_in || !s->out_in || !p.x || !p.xb ||
	    !p.xb2 || !p.q || !p.hb || !p.hb2 || !p.att || !p.kc || !p.vc || (threads > 1 && !p.pool))
		rc = model_fail(ENOMEM, "out of memory for the calibration pass");
	/* each window: BOS, then up to ctx - 1 tokens of the text */
	for (int at = 0; !rc && at < n_ids; at += ctx - 1) {
		step(&p, s, FRT_BOS, 0);
		for (int pos = 1; pos < ctx && at + pos - 1 < n_ids; pos++)
			step(&p, s, ids[at + pos - 1], pos);
	}
	fk_pool_destroy(p.pool);
	free(p.x); free(p.xb); free(p.xb2); free(p.q); free(p.hb); free(p.hb2);
	free(p.att); free(p.kc); free(p.vc);
	if (!rc && s->tokens) {
		const double inv = 1.0 / s->tokens;
		double *all[] = {s->attn_in, s->wo_in, s->ffn_in, s->w2_in, s->out_in};
		const size_t len[] = {L * dim, L * dim, L * dim, L * hid, dim};
		for (int g = 0; g < 5; g++)
			for (size_t i = 0; i < len[g]; i++)
				all[g][i] *= inv;
	}
	if (rc)
		calib_free(s);
	return rc;
}

void calib_free(struct calib_stats *s)
{
	free(s->attn_in);
	free(s->wo_in);
	free(s->ffn_in);
	free(s->w2_in);
	free(s->out_in);
	memset(s, 0, sizeof *s);
}
