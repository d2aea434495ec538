/* Compression-aware quantization: the model in float, calibrated on text,
 * its input channels re-scaled (rescale.c), quantized on a grid an
 * entropy coder stores in few bits (cquant.c), and written to an image;
 * then measured: entropy, zstd-stored size and error of the quantized
 * matrices, and the logits' error against the float model. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include <flexkern/kernels.h>

#include "fmodel.h"

/* What each level means: re-scaling exponent, q8_0 grid, dead zone
 * (docs/compression.md says how they were measured). */
static const struct cquant_params levels[MODEL_COMPRESS_MAX_LEVEL + 1] = {
#define LEVEL(a, q, z, s, b) {.alpha = a, .qmax = q, .deadzone = z, .step = s, .scale_bits = b}
	LEVEL(0, 127, 0.5, 0, 10), LEVEL(0.5, 63, 0.5, 0, 2), LEVEL(0.5, 31, 0.5, 0, 2),
	LEVEL(0.5, 27, 0.5, 0, 2), LEVEL(0.5, 23, 0.5, 0, 2), LEVEL(0.5, 19, 0.5, 0, 2),
	LEVEL(0.5, 15, 0.5, 0, 2),
#undef LEVEL
};

/* The calibration tokens: up to max of the text at path after skip. */
static int calib_ids(const struct model_compress_options *o, int ctx, int **ids, int *n)
{
	*ids = NULL;
	if (!o->calib)
		return model_fail(EINVAL, "--calib: a calibration text is needed at --compressible %d",
		                  o->level);
	FILE *f = fopen(o->calib, "rb");
	if (!f)
		return model_fail(errno, "--calib: %s: cannot open: %s", o->calib, strerror(errno));
	const int want = o->calib_tokens > 0 ? o->calib_tokens : 4096;
	/* a token is at least a byte: 16 bytes a token is plenty */
	size_t cap = (size_t)want * 16 + 64, len = 0;
	char *text = malloc(cap);
	int rc = 0;
	if (!text)
		rc = model_fail(ENOMEM, "out of memory");
	else if (fseek(f, (long)o->calib_skip, SEEK_SET))
		rc = model_fail(EINVAL, "--calib: %s: cannot skip %llu bytes", o->calib,
		                (unsigned long long)o->calib_skip);
	else
		len = fread(text, 1, cap, f);
	if (!rc && ferror(f))
		rc = model_fail(EIO, "--calib: %s: read error", o->calib);
	fclose(f);
	if (!rc && !len)
		rc = model_fail(EINVAL, "--calib: %s is empty%s", o->calib,
		                o->calib_skip ? " after the bytes skipped" : "");
	if (!rc) {
		*ids = malloc((len + 2) * sizeof(int));
		if (!*ids)
			rc = model_fail(ENOMEM, "out of memory");
	}
	if (!rc) {
		*n = frt_tokenizer_encode(o->tok, text, len, 0, 0, *ids, (int)len + 2);
		if (*n < 0)
			rc = model_fail(EINVAL, "--calib: %s: %s", o->calib, frt_last_error());
		else if (*n > want)
			*n = want;
		if (!rc && *n < ctx - 1)
			rc = model_fail(EINVAL, "--calib: %s holds %d tokens, shorter than one window "
			                "of %d", o->calib, *n, ctx - 1);
	}
	free(text);
	if (rc) {
		free(*ids);
		*ids = NULL;
	}
	return rc;
}

/* The mean squares of the inputs of tensor t (NULL: unweighted). */
static const double *inputs_of(const struct fmodel *fm, const struct calib_stats *s,
                               const struct llama_tensor *t)
{
	if (!s->tokens)
		return NULL;
	const size_t l = (size_t)(t->layer < 0 ? 0 : t->layer), dim = (size_t)fm->cfg.dim;
	switch (t->role) {
	case ROLE_WQ: case ROLE_WK: case ROLE_WV: return s->attn_in + l * dim;
	case ROLE_WO: return s->wo_in + l * dim;
	case ROLE_W1: case ROLE_W3: return s->ffn_in + l * dim;
	case ROLE_W2: return s->w2_in + l * (size_t)fm->cfg.hidden_dim;
	case ROLE_OUTPUT: return s->out_in;
	case ROLE_TOKEN_EMBD: return fm->shared_classifier ? s->out_in : NULL;
	}
	return NULL;
}

static uint64_t zstd_size(const void *p, size_t n, int level)
{
	const size_t cap = ZSTD_compressBound(n);
	void *z = malloc(cap);
	const size_t k = z ? ZSTD_compress(z, cap, p, n, level) : 0;
	free(z);
	return z && !ZSTD_isError(k) ? k : n;
}

/* The zstd size of a matrix's blocks with the 2-byte scales of every
 * block first and the quants after. */
static uint64_t split_size(int type, const void *q, size_t n, int level)
{
	const size_t bs = fk_row_bytes(type, FK_QK), blocks = n / bs;
	uint8_t *t = malloc(n);
	if (!t)
		return n;
	for (size_t b = 0; b < blocks; b++) {
		memcpy(t + 2 * b, (const uint8_t *)q + b * bs, 2);
		memcpy(t + 2 * blocks + (bs - 2) * b, (const uint8_t *)q + b * bs + 2, bs - 2);
	}
	const uint64_t k = zstd_size(t, n, level);
	free(t);
	return k;
}

static void note_kept(struct model_compress_report *r, const char *name)
{
	const size_t at = strlen(r->kept_f32);
	if (at + 40 < sizeof r->kept_f32)
		snprintf(r->kept_f32 + at, sizeof r->kept_f32 - at, "%s%.*s", at ? " " : "",
		         (int)(strlen(name) > 7 && !strcmp(name + strlen(name) - 7, ".weight")
		                   ? strlen(name) - 7 : strlen(name)), name);
	else if (!strstr(r->kept_f32, "..."))
		strcat(r->kept_f32, " ...");
	r->n_kept_f32++;
}

/* RMS of the logits' difference over RMS of the reference's, on the
 * first n ids after BOS. */
static int logit_error(const struct fmodel *fm, void **q, const int *types, const int *ids,
                       int n, int threads, double *err)
{
	struct frt_layer *lf = calloc((size_t)fm->cfg.n_layers, sizeof *lf);
	struct frt_layer *lq = calloc((size_t)fm->cfg.n_layers, sizeof *lq);
	struct frt_weights wf, wq;
	frt_model *mf = NULL, *mq = NULL;
	int rc = 0;
	if (!lf || !lq) {
		rc = model_fail(ENOMEM, "out of memory");
		goto out;
	}
	fmodel_weights(fm, &wf, lf);
	fmodel_weights(fm, &wq, lq);
	for (int i = 0; i < fm->n; i++)
		if (!llama_is_norm(fm->t[i].role))
			llama_set(&wq, lq, &fm->t[i], q[i] ? q[i] : fm->w[i], types[i]);
	wq.layers = lq;
	if (fm->shared_classifier)
		wq.output = wq.token_embd;
	const struct frt_options fo = {.n_threads = threads, .max_seq = n + 1};
	mf = frt_model_create(&fm->cfg, &wf, &fo);
	mq = frt_model_create(&fm->cfg, &wq, &fo);
	if (!mf || !mq) {
		rc = model_fail(EINVAL, "the runtime refuses the model: %s", frt_last_error());
		goto out;
	}
	const int V = fm->cfg.vocab_size;
	float *ref = malloc((size_t)V * sizeof(float));
	double num = 0, den = 0;
	for (int pos = 0; ref && pos <= n; pos++) {
		const int tok = pos ? ids[pos - 1] : FRT_BOS;
		memcpy(ref, frt_forward(mf, tok, pos), (size_t)V * sizeof(float));
		const float *lg = frt_forward(mq, tok, pos);
		for (int v = 0; v < V; v++) {
			num += ((double)lg[v] - ref[v]) * ((double)lg[v] - ref[v]);
			den += (double)ref[v] * ref[v];
		}
	}
	if (!ref)
		rc = model_fail(ENOMEM, "out of memory");
	free(ref);
	*err = den > 0 ? sqrt(num / den) : 0;
out:
	frt_model_destroy(mf);
	frt_model_destroy(mq);
	free(lf);
	free(lq);
	return rc;
}

int model_compress_write(const char *path, fp_writer *w, const struct model_compress_options *o,
                         struct model_compress_report *rep)
{
	struct model_compress_report scratch;
	struct model_compress_report *r = rep ? rep : &scratch;
	memset(r, 0, sizeof *r);
	if (o->level < 0 || o->level > MODEL_COMPRESS_MAX_LEVEL)
		return model_fail(EINVAL, "--compressible %d is out of range 0..%d", o->level,
		                  MODEL_COMPRESS_MAX_LEVEL);
	if (o->type != FK_Q8_0 && o->type != FK_Q4_0 && o->type != FK_F32)
		return model_fail(EINVAL, "compression-aware quantization makes q8_0, q4_0 or f32 "
		                  "(re-scaled) matrices, not %s", fk_type_name(o->type));
	struct cquant_params p = levels[o->level];
	if (o->params)
		p = (struct cquant_params){.alpha = o->params[0], .qmax = (int)o->params[1],
		                           .deadzone = o->params[2], .step = o->params[3],
		                           .scale_bits = o->params[4] > 0 ? (int)o->params[4] : 10};
	if (p.alpha < 0 || p.alpha > 2 || p.qmax < 1 || p.qmax > 127 || p.deadzone < 0 ||
	    p.deadzone > 4 || p.step < 0 || p.step > 4 || p.scale_bits < 0 || p.scale_bits > 10)
		return model_fail(EINVAL, "--cq-params %g,%d,%g,%g,%d: alpha is 0..2, qmax 1..127, "
		                  "dead zone 0..4, step 0..4, scale bits 1..10", p.alpha, p.qmax,
		                  p.deadzone, p.step, p.scale_bits);
	r->alpha = p.alpha;
	r->qmax = p.qmax;
	r->deadzone = p.deadzone;
	r->step = p.step;
	r->scale_bits = p.scale_bits;
	const int zl = o->zstd_level ? o->zstd_level : 3, threads = o->threads > 0 ? o->threads : 1;
	struct fmodel fm;
	int rc = fmodel_load(&fm, path);
	if (rc)
		return rc;
	const int seq = fm.cfg.seq_len;
	const int ctx = o->ctx > 1 ? (o->ctx < seq ? o->ctx : seq) : (seq < 256 ? seq : 256);
	int *ids = NULL, n_ids = 0;
	struct calib_stats st = {0};
	void **q = calloc((size_t)fm.n, sizeof *q);
	int *types = calloc((size_t)fm.n, sizeof *types);
	if (!q || !types) {
		rc = model_fail(ENOMEM, "out of memory");
		goto out;
	}
	/* calibration: needed to re-scale; at level 0 only for the errors */
	if ((p.alpha > 0 || o->calib) && (rc = calib_ids(o, ctx, &ids, &n_ids)))
		goto out;
	if (ids && (rc = calib_collect(&fm, ids, n_ids, ctx, threads, &st)))
		goto out;
	r->calib_tokens = st.tokens;
	rescale_apply(&fm, &st, p.alpha);

	struct model_sink sink = {w, NULL, path};
	if ((rc = model_sink_header(&sink, &fm.cfg, fm.shared_classifier, o->type, NULL)))
		goto out;
	double err_sum = 0;
	int n_mat = 0;
	uint64_t ent_w = 0;
	double ent_sum = 0;
	for (int i = 0; !rc && i < fm.n; i++) {
		const struct llama_tensor *t = &fm.t[i];
		const int norm = llama_is_norm(t->role);
		int type = norm ? FK_F32 : o->type;
		if (type != FK_F32 && t->cols % FK_QK) {
			type = FK_F32;
			note_kept(r, t->name);
		}
		types[i] = type;
		const size_t bytes = fk_row_bytes(type, (size_t)t->cols) * (size_t)t->rows;
		const void *data = fm.w[i];
		if (type != FK_F32) {
			if (!(q[i] = malloc(bytes))) {
				rc = model_fail(ENOMEM, "out of memory");
				break;
			}
			cquant_matrix(type, &p, fm.w[i], t->rows, t->cols, q[i]);
			data = q[i];
			const double e = cquant_error(type, q[i], fm.w[i], t->rows, t->cols,
			                              inputs_of(&fm, &st, t));
			err_sum += e;
			n_mat++;
			const uint64_t nw = t->rows * t->cols;
			ent_sum += cquant_entropy(type, q[i], t->rows, t->cols) * (double)nw;
			ent_w += nw;
			r->q_weights += nw;
			r->q_bytes += bytes;
			r->q_zstd_bytes += zstd_size(q[i], bytes, zl);
			r->q_split_bytes += split_size(type, q[i], bytes, zl);
		}
		if (!rc)
			rc = model_sink_begin(&sink, t, type);
		if (!rc)
			rc = model_sink_write(&sink, t, data, bytes);
		if (!rc)
			rc = model_sink_end(&sink, t);
	}
	r->weighted_err = n_mat ? err_sum / n_mat : 0;
	r->entropy = ent_w ? ent_sum / (double)ent_w : 0;
	if (!rc && ids && o->type != FK_F32) {
		/* a few windows' worth, fewer for a big model: two passes a token */
		double mat = 0;
		for (int i = 0; i < fm.n; i++)
			mat += (double)fm.t[i].rows * (double)fm.t[i].cols;
		int n = (int)(4e9 / mat);
		n = n < 16 ? 16 : n > 2 * (ctx - 1) ? 2 * (ctx - 1) : n;
		if (n > n_ids)
			n = n_ids;
		if (n > seq - 1)
			n = seq - 1;
		r->err_tokens = n + 1;
		rc = logit_error(&fm, q, types, ids, n, threads, &r->logit_err);
	}
out:
	for (int i = 0; q && i < fm.n; i++)
		free(q[i]);
	free(q);
	free(types);
	free(ids);
	calib_free(&st);
	fmodel_free(&fm);
	return rc;
}
