/* The float64 reference.  Deliberately naive: loops as the README states
 * the math, everything in double, no kernels. */
#include "ref_forward.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ref_state {
	struct ref_model m;
	int kv_dim, head_size;
	double *x, *xb, *xb2, *q, *hb, *hb2, *att, *logits;
	double *kcache, *vcache; /* [layers][seq][kv_dim] */
	unsigned char *skip;     /* [layers]: REF_SKIP_* bits */
	double *hidden;          /* [dim] */
};

int ref_load_llama2c(const char *path, struct ref_model *m, float **buf)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	int32_t h[7];
	if (fread(h, sizeof h, 1, f) != 1) {
		fclose(f);
		return -1;
	}
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, 28, SEEK_SET);
	float *p = malloc((size_t)size);
	if (!p || fread(p, 1, (size_t)size - 28, f) != (size_t)size - 28) {
		free(p);
		fclose(f);
		return -1;
	}
	fclose(f);
	memset(m, 0, sizeof *m);
	m->dim = h[0];
	m->hidden_dim = h[1];
	m->n_layers = h[2];
	m->n_heads = h[3];
	m->n_kv_heads = h[4];
	m->vocab_size = abs(h[5]);
	m->seq_len = h[6];
	const size_t d = (size_t)m->dim, L = (size_t)m->n_layers, hd = (size_t)m->hidden_dim;
	const size_t kv = d * (size_t)m->n_kv_heads / (size_t)m->n_heads;
	const size_t hs = d / (size_t)m->n_heads;
	const float *q = p;
	m->token_embedding = q; q += (size_t)m->vocab_size * d;
	m->rms_att = q; q += L * d;
	m->wq = q; q += L * d * d;
	m->wk = q; q += L * kv * d;
	m->wv = q; q += L * kv * d;
	m->wo = q; q += L * d * d;
	m->rms_ffn = q; q += L * d;
	m->w1 = q; q += L * hd * d;
	m->w2 = q; q += L * d * hd;
	m->w3 = q; q += L * hd * d;
	m->rms_final = q; q += d;
	q += (size_t)m->seq_len * hs; /* freq_cis_real, freq_cis_imag */
	m->wcls = h[5] > 0 ? m->token_embedding : q;
	*buf = p;
	return 0;
}

static double *dalloc(size_t n)
{
	return calloc(n, sizeof(double));
}

struct ref_state *ref_create(const struct ref_model *m)
{
	struct ref_state *s = calloc(1, sizeof *s);
	s->m = *m;
	s->head_size = m->dim / m->n_heads;
	s->kv_dim = m->dim * m->n_kv_heads / m->n_heads;
	s->x = dalloc((size_t)m->dim);
	s->xb = dalloc((size_t)m->dim);
	s->xb2 = dalloc((size_t)m->dim);
	s->q = dalloc((size_t)m->dim);
	s->hb = dalloc((size_t)m->hidden_dim);
	s->hb2 = dalloc((size_t)m->hidden_dim);
	s->att = dalloc((size_t)m->seq_len);
	s->logits = dalloc((size_t)m->vocab_size);
	s->skip = calloc((size_t)m->n_layers, 1);
	s->hidden = dalloc((size_t)m->dim);
	s->kcache = dalloc((size_t)m->n_layers * (size_t)m->seq_len * (size_t)s->kv_dim);
	s->vcache = dalloc((size_t)m->n_layers * (size_t)m->seq_len * (size_t)s->kv_dim);
	return s;
}

void ref_destroy(struct ref_state *s)
{
	free(s->x);
	free(s->xb);
	free(s->xb2);
	free(s->q);
	free(s->hb);
	free(s->hb2);
	free(s->att);
	free(s->logits);
	free(s->kcache);
	free(s->vcache);
	free(s->skip);
	free(s->hidden);
	free(s);
}

static void rmsnorm(double *o, const double *x, const float *w, int n)
{
	double ss = 0;
	for (int i = 0; i < n; i++)
		ss += x[i] * x[i];
	const double k = 1.0 / sqrt(ss / n + 1e-5);
	for (int i = 0; i < n; i++)
		o[i] = w[i] * x[i] * k;
}

/* o[r] = sum_i W[r][i] x[i], W row-major [rows][cols] */
static void matmul(double *o, const float *W, const double *x, int rows, int cols)
{
	for (int r = 0; r < rows; r++) {
		double s = 0;
		for (int i = 0; i < cols; i++)
			s += (double)W[(size_t)r * cols + i] * x[i];
		o[r] = s;
	}
}

static void rotate(double *v, int i, int head_size, int pos)
{
	const int j = i % head_size;
	const double a = pos / pow(10000.0, (double)j / head_size);
	const double v0 = v[i], v1 = v[i + 1];
	v[i] = v0 * cos(a) - v1 * sin(a);
	v[i + 1] = v0 * sin(a) + v1 * cos(a);
}

const double *ref_forward(struct ref_state *s, int token, int pos)
{
	const struct ref_model *m = &s->m;
	const int dim = m->dim, hd = m->hidden_dim, kv = s->kv_dim, hs = s->head_size;
	const int seq = m->seq_len;

	for (int i = 0; i < dim; i++)
		s->x[i] = m->token_embedding[(size_t)token * dim + i];

	for (int l = 0; l < m->n_layers; l++) {
		if (s->skip[l] & REF_SKIP_ATTN)
			goto ffn;
		rmsnorm(s->xb, s->x, m->rms_att + (size_t)l * dim, dim);
		double *k = s->kcache + ((size_t)l * seq + pos) * kv;
		double *v = s->vcache + ((size_t)l * seq + pos) * kv;
		matmul(s->q, m->wq + (size_t)l * dim * dim, s->xb, dim, dim);
		matmul(k, m->wk + (size_t)l * kv * dim, s->xb, kv, dim);
		matmul(v, m->wv + (size_t)l * kv * dim, s->xb, kv, dim);
		for (int i = 0; i < dim; i += 2) {
			rotate(s->q, i, hs, pos);
			if (i < kv)
				rotate(k, i, hs, pos);
		}
		for (int h = 0; h < m->n_heads; h++) {
			const int kvh = h / (m->n_heads / m->n_kv_heads);
			double max = -INFINITY, sum = 0;
			for (int t = 0; t <= pos; t++) {
				const double *kt = s->kcache + ((size_t)l * seq + t) * kv + kvh * hs;
				double d = 0;
				for (int i = 0; i < hs; i++)
					d += s->q[h * hs + i] * kt[i];
				s->att[t] = d / sqrt((double)hs);
				if (s->att[t] > max)
					max = s->att[t];
			}
			for (int t = 0; t <= pos; t++) {
				s->att[t] = exp(s->att[t] - max);
				sum += s->att[t];
			}
			for (int i = 0; i < hs; i++) {
				double o = 0;
				for (int t = 0; t <= pos; t++)
					o += s->att[t] / sum * s->vcache[((size_t)l * seq + t) * kv + kvh * hs + i];
				s->xb[h * hs + i] = o;
			}
		}
		matmul(s->xb2, m->wo + (size_t)l * dim * dim, s->xb, dim, dim);
		for (int i = 0; i < dim; i++)
			s->x[i] += s->xb2[i];
	ffn:
		if (s->skip[l] & REF_SKIP_FFN)
			continue;
		rmsnorm(s->xb, s->x, m->rms_ffn + (size_t)l * dim, dim);
		matmul(s->hb, m->w1 + (size_t)l * hd * dim, s->xb, hd, dim);
		matmul(s->hb2, m->w3 + (size_t)l * hd * dim, s->xb, hd, dim);
		for (int i = 0; i < hd; i++)
			s->hb[i] = s->hb[i] / (1.0 + exp(-s->hb[i])) * s->hb2[i];
		matmul(s->xb, m->w2 + (size_t)l * dim * hd, s->hb, dim, hd);
		for (int i = 0; i < dim; i++)
			s->x[i] += s->xb[i];
	}
	memcpy(s->hidden, s->x, (size_t)dim * sizeof *s->hidden);
	rmsnorm(s->x, s->x, m->rms_final, dim);
	matmul(s->logits, m->wcls, s->x, m->vocab_size, dim);
	return s->logits;
}

void ref_skip_layers(struct ref_state *s, const unsigned char *skip)
{
	for (int l = 0; l < s->m.n_layers; l++)
		s->skip[l] = skip && skip[l] ? REF_SKIP_ATTN | REF_SKIP_FFN : 0;
}

void ref_skip_parts(struct ref_state *s, const unsigned char *parts)
{
	for (int l = 0; l < s->m.n_layers; l++)
		s->skip[l] = parts ? parts[l] & (REF_SKIP_ATTN | REF_SKIP_FFN) : 0;
}

const double *ref_hidden(const struct ref_state *s)
{
	return s->hidden;
}
