/* The synthetic-model generator.
 *
 * Weights look like a trained model's to the pager and the codecs: each
 * value is a standard normal (an exact quantile from a 65536-entry table)
 * times a scale drawn from 16 log-normal levels, a Gaussian scale mixture
 * with heavy tails (kurtosis about 8); each row has its own log-normal scale
 * (sigma 0.3); matrices are scaled 1/sqrt(in), the embedding 0.1; norm
 * weights are 1 + 0.05 N(0, 1).
 *
 * Every row seeds its own xoshiro256+ stream from (seed, tensor, row) with
 * splitmix64, so rows can be made on any thread in any order and the file
 * is the same.  One 64-bit draw gives three values, and quantization runs
 * on each row as it is made: ~1.1 billion values take a few seconds. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flexkern/kernels.h>

#include "internal.h"

const struct model_shape model_shapes[] = {
	{"260k", {64, 172, 5, 8, 4, 512, 512, 10000.0f, 1e-5f}, 1},
	{"110m", {768, 2048, 12, 12, 12, 32000, 1024, 10000.0f, 1e-5f}, 1},
	{"tinyllama-1.1b", {2048, 5632, 22, 32, 4, 32000, 2048, 10000.0f, 1e-5f}, 0},
	{"llama2-7b", {4096, 11008, 32, 32, 32, 32000, 4096, 10000.0f, 1e-5f}, 0},
	{NULL, {0, 0, 0, 0, 0, 0, 0, 0, 0}, 0},
};

int model_parse_shape(const char *s, struct model_shape *out)
{
	for (const struct model_shape *p = model_shapes; p->name; p++) {
		if (!strcmp(s, p->name)) {
			*out = *p;
			return 0;
		}
	}
	int v[8], n = 0;
	char tail;
	n = sscanf(s, "%d,%d,%d,%d,%d,%d,%d,%d%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
	           &v[6], &v[7], &tail);
	if (n != 7 && n != 8)
		return model_fail(EINVAL, "--shape: '%s' is not 260k, 110m, tinyllama-1.1b, llama2-7b "
		                  "or DIM,HIDDEN,LAYERS,HEADS,KV_HEADS,VOCAB,SEQ[,SHARED]", s);
	*out = (struct model_shape){"custom", {v[0], v[1], v[2], v[3], v[4], v[5], v[6], 10000.0f, 1e-5f},
	                            n == 8 ? v[7] != 0 : 1};
	return model_check_config(&out->cfg, "--shape", "");
}

/* The type of tensor t in a model whose matrices are of type. */
static int type_of(const struct llama_tensor *t, int type)
{
	return llama_is_norm(t->role) ? FK_F32 : type;
}

uint64_t model_synth_bytes(const struct frt_config *c, int shared, int type)
{
	uint64_t n = 0;
	struct llama_tensor t;
	for (int i = 0; llama_tensor_at(c, shared, i, &t); i++)
		n += fk_row_bytes(type_of(&t, type), (size_t)t.cols) * t.rows;
	return n;
}

/* ------------------------------------------------------------------ */
/* Random numbers                                                       */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

struct xoshiro {
	uint64_t s[4];
};

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256+: the top bits, which the values use, are its best. */
static inline uint64_t next(struct xoshiro *r)
{
	uint64_t *s = r->s;
	const uint64_t out = s[0] + s[3], t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

static void seed_row(struct xoshiro *r, uint64_t seed, int tensor, uint64_t row)
{
	uint64_t x = seed ^ ((uint64_t)tensor << 48) ^ (row * 0xD1B54A32D192ED03ull);
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

/* Acklam's inverse normal CDF (relative error below 1.2e-9). */
static double probit(double p)
{
	static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
	                           -2.759285104469687e+02, 1.383577518672690e+02,
	                           -3.066479806614716e+01, 2.506628277459239e+00};
	static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
	                           -1.556989798598866e+02, 6.680131188771972e+01,
	                           -1.328068155288572e+01};
	static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
	                           -2.400758277161838e+00, -2.549732539343734e+00,
	                           4.374664141464968e+00, 2.938163982698783e+00};
	static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
	                           2.445134137142996e+00, 3.754408661907416e+00};
	if (p < 0.02425) {
		const double q = sqrt(-2 * log(p));
		return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
		       ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
	}
	if (p > 1 - 0.02425)
		return -probit(1 - p);
	const double q = p - 0.5, r = q * q;
	return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
	       (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

struct tables {
	float normal[65536];         /* quantiles at (i + 0.5) / 65536 */
	float mix[16];               /* scale levels, E[mix^2] = 1 */
};

static void make_tables(struct tables *t)
{
	for (int i = 0; i < 65536; i++)
		t->normal[i] = (float)probit((i + 0.5) / 65536.0);
	double m2 = 0, lv[16];
	for (int k = 0; k < 16; k++) {
		lv[k] = exp(0.5 * probit((k + 0.5) / 16.0));
		m2 += lv[k] * lv[k] / 16;
	}
	for (int k = 0; k < 16; k++)
		t->mix[k] = (float)(lv[k] / sqrt(m2));
}

/* ------------------------------------------------------------------ */
/* Rows                                                                 */

struct job {
	const struct tables *tab;
	const struct llama_tensor *t;
	int type;
	int tensor_index;
	uint64_t seed, row0;
	size_t n_rows, row_bytes;
	float base;                  /* the tensor's standard deviation */
	float **scratch;             /* one row of floats per thread */
	char *out;
};

static void make_row(const struct job *j, uint64_t row, float *v)
{
	struct xoshiro r;
	seed_row(&r, j->seed, j->tensor_index, row);
	const struct tables *tab = j->tab;
	const size_t n = (size_t)j->t->cols;
	if (llama_is_norm(j->t->role)) {
		for (size_t i = 0; i < n; i++)
			v[i] = 1.0f + 0.05f * tab->normal[next(&r) >> 48];
		return;
	}
	const float scale = j->base * expf(0.3f * tab->normal[next(&r) >> 48]);
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		const uint64_t x = next(&r);
		v[i] = scale * tab->normal[x & 0xffff] * tab->mix[(x >> 16) & 15];
		v[i + 1] = scale * tab->normal[(x >> 20) & 0xffff] * tab->mix[(x >> 36) & 15];
		v[i + 2] = scale * tab->normal[(x >> 40) & 0xffff] * tab->mix[(x >> 56) & 15];
	}
	for (; i < n; i++) {
		const uint64_t x = next(&r);
		v[i] = scale * tab->normal[x & 0xffff] * tab->mix[(x >> 16) & 15];
	}
}

static void rows_fn(void *ctx, int ith, int nth)
{
	const struct job *j = ctx;
	const size_t r0 = j->n_rows * (size_t)ith / (size_t)nth, r1 = j->n_rows * (size_t)(ith + 1) / (size_t)nth;
	float *v = j->scratch[ith];
	for (size_t r = r0; r < r1; r++) {
		char *dst = j->out + r * j->row_bytes;
		make_row(j, j->row0 + r, j->type == FK_F32 ? (float *)dst : v);
		if (j->type == FK_Q8_0)
			fk_quantize_row_q8_0(v, (fk_block_q8_0 *)dst, (size_t)j->t->cols);
		else if (j->type == FK_Q4_0)
			fk_quantize_row_q4_0(v, (fk_block_q4_0 *)dst, (size_t)j->t->cols);
	}
}

/* The tensor's standard deviation before the row scales: the embedding
 * 0.1, matrices 1/sqrt(in). */
static float base_std(const struct llama_tensor *t)
{
	return t->role == ROLE_TOKEN_EMBD ? 0.1f : (float)(1.0 / sqrt((double)t->cols));
}

static int synth(struct model_sink *sink, const struct frt_config *c, int shared, int type,
                 uint64_t seed, int threads, const char *tokenizer)
{
	int rc = model_check_config(c, "synth", "shape");
	if (rc)
		return rc;
	if (type != FK_F32 && type != FK_Q8_0 && type != FK_Q4_0)
		return model_fail(EINVAL, "synth: type %d is not f32, q8_0 or q4_0", type);
	if (type != FK_F32 && (c->dim % FK_QK || c->hidden_dim % FK_QK))
		return model_fail(EINVAL, "synth: %s needs dim (%d) and hidden_dim (%d) to be multiples "
		                  "of %d", fk_type_name(type), c->dim, c->hidden_dim, FK_QK);
	if ((rc = model_sink_header(sink, c, shared, type, tokenizer)))
		return rc;

	struct tables *tab = malloc(sizeof *tab);
	fk_pool *pool = fk_pool_create(threads > 0 ? threads : 1);
	const int nth = pool ? fk_pool_size(pool) : 0;
	const size_t widest = (size_t)(c->hidden_dim > c->dim ? c->hidden_dim : c->dim);
	float **scratch = calloc((size_t)(nth ? nth : 1), sizeof *scratch);
	const size_t batch = 8u << 20; /* bytes of rows per write */
	char *out = malloc(batch + widest * sizeof(float));
	if (!tab || !pool || !scratch || !out)
		rc = model_fail(ENOMEM, "synth: out of memory");
	for (int i = 0; !rc && i < nth; i++)
		if (!(scratch[i] = malloc(widest * sizeof(float))))
			rc = model_fail(ENOMEM, "synth: out of memory");
	if (!rc)
		make_tables(tab);

	struct llama_tensor t;
	for (int ti = 0; !rc && llama_tensor_at(c, shared, ti, &t); ti++) {
		const int tt = type_of(&t, type);
		if ((rc = model_sink_begin(sink, &t, tt)))
			break;
		struct job j = {tab, &t, tt, ti, seed, 0, 0, fk_row_bytes(tt, (size_t)t.cols),
		                base_std(&t), scratch, out};
		const size_t per = batch / j.row_bytes ? batch / j.row_bytes : 1;
		for (uint64_t r = 0; !rc && r < t.rows; r += per) {
			j.row0 = r;
			j.n_rows = (size_t)(t.rows - r < per ? t.rows - r : per);
			fk_pool_run(pool, rows_fn, &j);
			rc = model_sink_write(sink, &t, out, j.n_rows * j.row_bytes);
		}
		if (!rc)
			rc = model_sink_end(sink, &t);
	}

	for (int i = 0; scratch && i < nth; i++)
		free(scratch[i]);
	free(scratch);
	free(out);
	fk_pool_destroy(pool);
	free(tab);
	return rc;
}

int model_synth_write(fp_writer *w, const struct frt_config *c, int shared, int type,
                      uint64_t seed, int threads)
{
	struct model_sink s = {w, NULL, "synth"};
	return synth(&s, c, shared, type, seed, threads, NULL);
}

int model_synth_write_gguf(fp_gguf_writer *w, const struct frt_config *c, int shared, int type,
                           uint64_t seed, int threads, const char *tokenizer)
{
	struct model_sink s = {NULL, w, "synth"};
	return synth(&s, c, shared, type, seed, threads, tokenizer);
}
