/* Re-scaling of input channels with the inverse folded into the operation
 * before it, as AWQ and SmoothQuant do, chosen to lower the entropy of the
 * quantized values rather than only their error.
 *
 * A q8_0 block shares one step among 32 neighbouring input channels.
 * Multiplying channel j's weights by s_j and dividing its activation by
 * s_j changes nothing in float; quantized, channel j's effective step
 * becomes step / s_j.  The output error of a channel is its activation
 * RMS a_j times its weight error, and the bits it costs fall with the
 * log of its step, so at a given rate the error is least when every
 * channel's step is proportional to 1 / a_j: s_j proportional to a_j
 * (alpha = 1).  Channels of small activations then hold small integers
 * near zero, which an entropy coder stores in few bits. */
#include <math.h>
#include <stdlib.h>

#include "fmodel.h"

#define S_MIN (1.0 / 64)
#define S_MAX 64.0

/* s[j] = (sqrt(ms[j]) / geometric mean)^alpha, clamped. */
static void scales(const double *ms, int n, double alpha, double *s)
{
	double lg = 0;
	for (int j = 0; j < n; j++)
		lg += 0.5 * log(ms[j] > 1e-30 ? ms[j] : 1e-30);
	lg /= n;
	for (int j = 0; j < n; j++) {
		const double a = 0.5 * log(ms[j] > 1e-30 ? ms[j] : 1e-30);
		double v = exp(alpha * (a - lg));
		s[j] = v < S_MIN ? S_MIN : v > S_MAX ? S_MAX : v;
	}
}

static void scale_cols(float *w, uint64_t rows, uint64_t cols, const double *s)
{
	for (uint64_t r = 0; r < rows; r++)
		for (uint64_t j = 0; j < cols; j++)
			w[r * cols + j] = (float)(w[r * cols + j] * s[j]);
}

static void unscale_rows(float *w, uint64_t rows, uint64_t cols, const double *s)
{
	for (uint64_t r = 0; r < rows; r++)
		for (uint64_t j = 0; j < cols; j++)
			w[r * cols + j] = (float)(w[r * cols + j] / s[r]);
}

static void unscale_vec(float *v, int n, const double *s)
{
	for (int j = 0; j < n; j++)
		v[j] = (float)(v[j] / s[j]);
}

static void stats_after(double *ms, int n, const double *s)
{
	for (int j = 0; j < n; j++)
		ms[j] /= s[j] * s[j];
}

static float *T(struct fmodel *fm, int role, int layer)
{
	return fm->w[fmodel_find(fm, role, layer)];
}

void rescale_apply(struct fmodel *fm, struct calib_stats *st, double alpha)
{
	const struct frt_config *c = &fm->cfg;
	const int dim = c->dim, hid = c->hidden_dim, hs = dim / c->n_heads;
	const int kv = dim * c->n_kv_heads / c->n_heads, group = c->n_heads / c->n_kv_heads;
	double *s = malloc(sizeof(double) * (size_t)(hid > dim ? hid : dim));
	double *ms = malloc(sizeof(double) * (size_t)kv);
	double *sw = malloc(sizeof(double) * (size_t)dim);
	if (!s || !ms || !sw || alpha == 0)
		goto out;
	const uint64_t d = (uint64_t)dim, h = (uint64_t)hid, k = (uint64_t)kv;
	for (int l = 0; l < c->n_layers; l++) {
		double *a = st->attn_in + (size_t)l * dim;
		scales(a, dim, alpha, s);
		unscale_vec(T(fm, ROLE_ATTN_NORM, l), dim, s);
		scale_cols(T(fm, ROLE_WQ, l), d, d, s);
		scale_cols(T(fm, ROLE_WK, l), k, d, s);
		scale_cols(T(fm, ROLE_WV, l), k, d, s);
		stats_after(a, dim, s);

		/* wo's input channel j is V's row r(j): the query heads of a group
		 * share a KV head, so the channels of one row share its scale */
		double *o = st->wo_in + (size_t)l * dim;
		for (int r = 0; r < kv; r++)
			ms[r] = 0;
		for (int j = 0; j < dim; j++)
			ms[(j / hs / group) * hs + j % hs] += o[j] / group;
		scales(ms, kv, alpha, s);
		unscale_rows(T(fm, ROLE_WV, l), k, d, s);
		for (int j = 0; j < dim; j++)
			sw[j] = s[(j / hs / group) * hs + j % hs];
		scale_cols(T(fm, ROLE_WO, l), d, d, sw);
		stats_after(o, dim, sw);

		double *f = st->ffn_in + (size_t)l * dim;
		scales(f, dim, alpha, s);
		unscale_vec(T(fm, ROLE_FFN_NORM, l), dim, s);
		scale_cols(T(fm, ROLE_W1, l), h, d, s);
		scale_cols(T(fm, ROLE_W3, l), h, d, s);
		stats_after(f, dim, s);

		/* down's input is silu(gate) * up: linear in up's rows */
		double *g = st->w2_in + (size_t)l * hid;
		scales(g, hid, alpha, s);
		unscale_rows(T(fm, ROLE_W3, l), h, d, s);
		scale_cols(T(fm, ROLE_W2, l), d, h, s);
		stats_after(g, hid, s);
	}
	/* a classifier shared with the embedding cannot take column scales:
	 * the embedding rows would change with them */
	if (!fm->shared_classifier) {
		scales(st->out_in, dim, alpha, s);
		unscale_vec(T(fm, ROLE_OUTPUT_NORM, -1), dim, s);
		scale_cols(T(fm, ROLE_OUTPUT, -1), (uint64_t)c->vocab_size, d, s);
		stats_after(st->out_in, dim, s);
	}
out:
	free(s);
	free(ms);
	free(sw);
}
