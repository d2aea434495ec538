/* flexrt against the float64 reference (ref_forward.c): the real
 * stories260K checkpoint in f32, and synthetic models in q8_0 and q4_0;
 * bit-identical results over thread counts and kernel paths; the sampler,
 * the generate loop and configuration errors. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <flexrt/runtime.h>

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref_forward.h"

#define STORIES FLEXPAGE_SHARED_MODELS "/stories260K.bin"

/* Logits of the f32 runtime stay within this of float64, relative to the
 * largest logit of the step (measured: ~1e-6 on stories260K). */
#define F32_LOGIT_TOL 1e-4
/* Quantized models: the runtime quantizes activations to q8_0, so its
 * logits differ from float64 over the same (dequantized) weights by the
 * activation rounding, about 0.4% per product compounding over the layers
 * (measured: up to ~2e-2 on the synthetic model): relative RMS over a
 * step below this. */
#define QUANT_LOGIT_RMS_TOL 5e-2

/* ------------------------------------------------------------------ */
/* Runtime weights from a llama2.c-layout model                         */

struct wired {
	struct frt_config cfg;
	struct frt_weights w;
	struct frt_layer *layers;
	void *mem[16];       /* quantized copies, to free */
	int n_mem;
	struct ref_model deq; /* the weights the runtime sees, as floats */
	float *deq_mem[16];
	int n_deq;
};

/* Quantize rows x cols of src (or point at it for f32); also keep the
 * dequantized floats so that the reference sees the same weights. */
static const void *matrix(struct wired *wd, int type, const float *src, size_t rows, size_t cols,
                          const float **deq)
{
	if (type == FK_F32) {
		*deq = src;
		return src;
	}
	const size_t rb = fk_row_bytes(type, cols);
	cr_assert(rb, "cols %zu", cols);
	char *q = malloc(rb * rows);
	float *f = malloc(sizeof(float) * rows * cols);
	for (size_t r = 0; r < rows; r++) {
		if (type == FK_F16)
			for (size_t i = 0; i < cols; i++)
				((uint16_t *)(q + r * rb))[i] = fk_fp32_to_fp16(src[r * cols + i]);
		else if (type == FK_Q8_0)
			fk_quantize_row_q8_0(src + r * cols, (fk_block_q8_0 *)(q + r * rb), cols);
		else
			fk_quantize_row_q4_0(src + r * cols, (fk_block_q4_0 *)(q + r * rb), cols);
		fk_dequantize_row(type, q + r * rb, f + r * cols, cols);
	}
	wd->mem[wd->n_mem++] = q;
	wd->deq_mem[wd->n_deq++] = f;
	*deq = f;
	return q;
}

/* The type of each matrix, as a file may mix them. */
struct types {
	int wq, wk, wv, wo, w1, w2, w3, embd, cls;
};

static void wire_types(struct wired *wd, const struct ref_model *m, const struct types *t)
{
	memset(wd, 0, sizeof *wd);
	wd->cfg = (struct frt_config){ m->dim, m->hidden_dim, m->n_layers, m->n_heads,
	                               m->n_kv_heads, m->vocab_size, m->seq_len, 10000.0f, 1e-5f };
	const size_t d = (size_t)m->dim, hd = (size_t)m->hidden_dim, L = (size_t)m->n_layers;
	const size_t kv = d * (size_t)m->n_kv_heads / (size_t)m->n_heads;
	struct ref_model *q = &wd->deq;
	*q = *m;
	const void *wq = matrix(wd, t->wq, m->wq, L * d, d, &q->wq);
	const void *wk = matrix(wd, t->wk, m->wk, L * kv, d, &q->wk);
	const void *wv = matrix(wd, t->wv, m->wv, L * kv, d, &q->wv);
	const void *wo = matrix(wd, t->wo, m->wo, L * d, d, &q->wo);
	const void *w1 = matrix(wd, t->w1, m->w1, L * hd, d, &q->w1);
	const void *w2 = matrix(wd, t->w2, m->w2, L * d, hd, &q->w2);
	const void *w3 = matrix(wd, t->w3, m->w3, L * hd, d, &q->w3);
	const void *emb = matrix(wd, t->embd, m->token_embedding, (size_t)m->vocab_size, d, &q->token_embedding);
	const void *cls = emb;
	if (m->wcls != m->token_embedding)
		cls = matrix(wd, t->cls, m->wcls, (size_t)m->vocab_size, d, &q->wcls);
	else
		q->wcls = q->token_embedding;

	const size_t rd[] = { fk_row_bytes(t->wq, d), fk_row_bytes(t->wk, d), fk_row_bytes(t->wv, d),
	                      fk_row_bytes(t->wo, d), fk_row_bytes(t->w1, d), fk_row_bytes(t->w3, d),
	                      fk_row_bytes(t->w2, hd) };
	wd->layers = calloc(L, sizeof *wd->layers);
	for (size_t l = 0; l < L; l++) {
		struct frt_layer *y = &wd->layers[l];
		y->attn_norm = m->rms_att + l * d;
		y->ffn_norm = m->rms_ffn + l * d;
		y->wq = (struct frt_tensor){ (const char *)wq + l * d * rd[0], t->wq };
		y->wk = (struct frt_tensor){ (const char *)wk + l * kv * rd[1], t->wk };
		y->wv = (struct frt_tensor){ (const char *)wv + l * kv * rd[2], t->wv };
		y->wo = (struct frt_tensor){ (const char *)wo + l * d * rd[3], t->wo };
		y->w1 = (struct frt_tensor){ (const char *)w1 + l * hd * rd[4], t->w1 };
		y->w3 = (struct frt_tensor){ (const char *)w3 + l * hd * rd[5], t->w3 };
		y->w2 = (struct frt_tensor){ (const char *)w2 + l * d * rd[6], t->w2 };
	}
	const int cls_type = m->wcls != m->token_embedding ? t->cls : t->embd;
	wd->w = (struct frt_weights){ { emb, t->embd }, wd->layers, m->rms_final, { cls, cls_type } };
}

static void wire(struct wired *wd, const struct ref_model *m, int type)
{
	const struct types t = { type, type, type, type, type, type, type, type, type };
	wire_types(wd, m, &t);
}

static void unwire(struct wired *wd)
{
	for (int i = 0; i < wd->n_mem; i++)
		free(wd->mem[i]);
	for (int i = 0; i < wd->n_deq; i++)
		free(wd->deq_mem[i]);
	free(wd->layers);
}

static frt_model *create(const struct wired *wd, int threads)
{
	struct frt_options o = { threads, 0 };
	frt_model *m = frt_model_create(&wd->cfg, &wd->w, &o);
	cr_assert(m, "frt_model_create: %s", frt_last_error());
	return m;
}

static float *stories_buf;
static struct ref_model stories;

static void load_stories(void)
{
	if (ref_load_llama2c(STORIES, &stories, &stories_buf))
		cr_skip_test("%s is missing or unreadable: the real-model tests need it", STORIES);
}

static void free_stories(void)
{
	free(stories_buf);
	stories_buf = NULL;
}

/* ------------------------------------------------------------------ */
/* The real model against float64                                       */

Test(forward, stories260k_matches_float64_reference, .init = load_stories, .fini = free_stories)
{
	enum { STEPS = 200 };
	struct wired wd;
	wire(&wd, &stories, FK_F32);
	frt_model *m = create(&wd, 2);
	struct ref_state *ref = ref_create(&stories);
	int token = FRT_BOS, ids_rt[STEPS], ids_ref[STEPS];
	double worst = 0;
	for (int pos = 0; pos < STEPS; pos++) {
		const float *lg = frt_forward(m, token, pos);
		const double *lr = ref_forward(ref, token, pos);
		cr_assert(lg);
		double max = 0, diff = 0;
		int best = 0;
		for (int i = 0; i < stories.vocab_size; i++) {
			max = fmax(max, fabs(lr[i]));
			diff = fmax(diff, fabs(lg[i] - lr[i]));
			if (lr[i] > lr[best])
				best = i;
		}
		const double rel = diff / fmax(max, 1.0);
		worst = fmax(worst, rel);
		cr_assert(rel <= F32_LOGIT_TOL, "pos %d: logits differ by %g (relative %g)", pos, diff, rel);
		ids_rt[pos] = frt_argmax(lg, stories.vocab_size);
		ids_ref[pos] = best;
		cr_assert_eq(ids_rt[pos], ids_ref[pos], "greedy token at pos %d: runtime %d, reference %d",
		             pos, ids_rt[pos], ids_ref[pos]);
		token = ids_ref[pos];
	}
	cr_log_info("stories260K: %d greedy tokens identical, worst relative logit error %.2e",
	            STEPS, worst);
	ref_destroy(ref);
	frt_model_destroy(m);
	unwire(&wd);
}

/* The same logits, bit for bit, whatever the thread count or the kernel
 * path: a row's arithmetic never depends on either. */
Test(forward, bit_identical_over_threads_and_paths, .init = load_stories, .fini = free_stories)
{
	enum { STEPS = 40 };
	struct wired wd;
	wire(&wd, &stories, FK_F32);
	static float want[STEPS][512];
	const int saved = fk_get_isa();
	fk_set_isa(FK_ISA_SCALAR);
	frt_model *m = create(&wd, 1);
	int token = FRT_BOS;
	for (int pos = 0; pos < STEPS; pos++) {
		memcpy(want[pos], frt_forward(m, token, pos), sizeof want[pos]);
		token = frt_argmax(want[pos], 512);
	}
	frt_model_destroy(m);
	for (int isa = FK_ISA_SCALAR; isa <= FK_ISA_AVX512; isa++) {
		if (fk_set_isa(isa))
			continue;
		for (int t = 1; t <= 3; t++) {
			m = create(&wd, t);
			token = FRT_BOS;
			for (int pos = 0; pos < STEPS; pos++) {
				const float *lg = frt_forward(m, token, pos);
				cr_assert(!memcmp(lg, want[pos], sizeof want[pos]),
				          "%s, %d threads: logits at pos %d differ", fk_isa_name(isa), t, pos);
				token = frt_argmax(lg, 512);
			}
			frt_model_destroy(m);
		}
	}
	fk_set_isa(saved);
	unwire(&wd);
}

/* ------------------------------------------------------------------ */
/* Synthetic models: quantized types                                     */

static uint64_t rng = 42;

static double gauss(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	double u1 = ((rng >> 11) + 0.5) * 0x1p-53;
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	double u2 = (rng >> 11) * 0x1p-53;
	return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static float *fill(float *p, size_t n, double scale, double mean)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (float)(mean + scale * gauss());
	return p + n;
}

/* 2 layers, 4 heads over 2 KV heads, an unshared classifier, of dim d,
 * hidden hd and vocabulary V. */
static float *synth_shape(struct ref_model *m, size_t d, size_t hd, size_t V)
{
	*m = (struct ref_model){ (int)d, (int)hd, 2, 4, 2, (int)V, 32, NULL, NULL, NULL, NULL, NULL,
	                         NULL, NULL, NULL, NULL, NULL, NULL, NULL };
	const size_t L = 2, kv = d / 2;
	const size_t n = V * d * 2 + L * (2 * d + 2 * d * d + 2 * kv * d + 3 * hd * d) + d;
	float *buf = malloc(n * sizeof(float)), *p = buf;
	m->token_embedding = p; p = fill(p, V * d, 1.0, 0);
	m->wcls = p; p = fill(p, V * d, 0.2, 0);
	m->rms_att = p; p = fill(p, L * d, 0.1, 1);
	m->rms_ffn = p; p = fill(p, L * d, 0.1, 1);
	m->rms_final = p; p = fill(p, d, 0.1, 1);
	m->wq = p; p = fill(p, L * d * d, 0.125, 0);
	m->wk = p; p = fill(p, L * kv * d, 0.125, 0);
	m->wv = p; p = fill(p, L * kv * d, 0.125, 0);
	m->wo = p; p = fill(p, L * d * d, 0.125, 0);
	m->w1 = p; p = fill(p, L * hd * d, 0.125, 0);
	m->w3 = p; p = fill(p, L * hd * d, 0.125, 0);
	m->w2 = p; p = fill(p, L * d * hd, 0.1, 0);
	cr_assert_eq((size_t)(p - buf), n);
	return buf;
}

/* dim 64, hidden 96, vocab 80. */
static float *synth_model(struct ref_model *m)
{
	return synth_shape(m, 64, 96, 80);
}

static void mixed_against_reference(const struct types *types, const char *label)
{
	struct ref_model sm;
	float *buf = synth_model(&sm);
	struct wired wd;
	wire_types(&wd, &sm, types);
	frt_model *m = create(&wd, 2);
	/* the same weights repacked (frt_model_repack) must give the same
	 * logits bit for bit: hidden 96 is 3 blocks, a partial unit of 4 */
	frt_model *mp = create(&wd, 2);
	cr_assert_eq(frt_model_repack(mp), 0, "%s", frt_last_error());
	cr_assert_eq(frt_model_repack(mp), 0, "a second call does nothing");
	struct ref_state *ref = ref_create(&wd.deq);
	int token = FRT_BOS, agree = 0;
	double worst = 0;
	for (int pos = 0; pos < sm.seq_len; pos++) {
		const float *lg = frt_forward(m, token, pos);
		const float *lp = frt_forward(mp, token, pos);
		cr_assert(lg && lp && !memcmp(lg, lp, sizeof *lg * (size_t)sm.vocab_size),
		          "%s pos %d: repacked logits differ", label, pos);
		const double *lr = ref_forward(ref, token, pos);
		double se = 0, sr = 0;
		for (int i = 0; i < sm.vocab_size; i++) {
			se += (lg[i] - lr[i]) * (lg[i] - lr[i]);
			sr += lr[i] * lr[i];
		}
		const double rel = sqrt(se / sr);
		worst = fmax(worst, rel);
		cr_assert(rel < QUANT_LOGIT_RMS_TOL, "%s pos %d: relative RMS logit error %g",
		          label, pos, rel);
		int best = 0;
		for (int i = 1; i < sm.vocab_size; i++)
			if (lr[i] > lr[best])
				best = i;
		agree += frt_argmax(lg, sm.vocab_size) == best;
		token = best;
	}
	cr_log_info("%s: worst relative RMS logit error %.2e, greedy agreement %d/%d",
	            label, worst, agree, sm.seq_len);
	cr_assert(agree >= sm.seq_len * 9 / 10, "greedy tokens agree at only %d of %d positions",
	          agree, sm.seq_len);
	ref_destroy(ref);
	frt_model_destroy(m);
	frt_model_destroy(mp);
	unwire(&wd);
	free(buf);
}

/* Repacked in place (frt_model_repack_in_place) over the caller's own
 * copy of the weights: the same logits bit for bit as the file's layout.
 * dim 128 and hidden 256 are whole units, so every layer matrix is
 * overwritten; a classifier of 80 rows is too, one of 100 (a partial
 * group) is copied, and a q8_0 one is left alone. */
static void in_place_same_logits(size_t vocab, int cls_type)
{
	struct ref_model sm;
	float *buf = synth_shape(&sm, 128, 256, vocab);
	const struct types t = { FK_Q4_0, FK_Q4_0, FK_Q4_0, FK_Q4_0, FK_Q4_0, FK_Q4_0, FK_Q4_0,
	                         FK_Q4_0, cls_type };
	struct wired wd, wi;
	wire_types(&wd, &sm, &t);
	wire_types(&wi, &sm, &t);
	const void *wq = wi.layers[0].wq.data, *cls = wi.w.output.data;
	uint8_t *before = malloc(fk_row_bytes(FK_Q4_0, 128) * 128);
	memcpy(before, wq, fk_row_bytes(FK_Q4_0, 128) * 128);
	frt_model *m = create(&wd, 2), *mi = create(&wi, 2);
	cr_assert_eq(frt_model_repack_in_place(mi), 0, "%s", frt_last_error());
	cr_assert_eq(frt_model_repack_in_place(mi), 0, "a second call does nothing");
	cr_assert(memcmp(before, wq, fk_row_bytes(FK_Q4_0, 128) * 128),
	          "wq was not repacked where it is");
	cr_assert_eq(memcmp(cls, wd.w.output.data, fk_row_bytes(cls_type, 128) * vocab) != 0,
	             cls_type == FK_Q4_0 && vocab % 8 == 0, "classifier in place: vocab %zu", vocab);
	int token = FRT_BOS;
	for (int pos = 0; pos < sm.seq_len; pos++) {
		const float *lg = frt_forward(m, token, pos);
		const float *li = frt_forward(mi, token, pos);
		cr_assert(lg && li && !memcmp(lg, li, sizeof *lg * vocab),
		          "vocab %zu pos %d: logits repacked in place differ", vocab, pos);
		token = frt_argmax(lg, (int)vocab);
	}
	frt_model_destroy(m);
	frt_model_destroy(mi);
	free(before);
	unwire(&wd);
	unwire(&wi);
	free(buf);
}

Test(forward, q4_0_repacked_in_place_same_logits)
{
	in_place_same_logits(80, FK_Q4_0);
	in_place_same_logits(100, FK_Q4_0);
	in_place_same_logits(80, FK_Q8_0);
}

static void quantized_against_reference(int type)
{
	const struct types t = { type, type, type, type, type, type, type, type, type };
	mixed_against_reference(&t, fk_type_name(type));
}

Test(forward, q8_0_close_to_float64_over_same_weights)
{
	quantized_against_reference(FK_Q8_0);
}

Test(forward, q4_0_close_to_float64_over_same_weights)
{
	quantized_against_reference(FK_Q4_0);
}

Test(forward, f16_close_to_float64_over_same_weights)
{
	quantized_against_reference(FK_F16);
}

/* Every matrix of its own type, as GGUF files mix them: each product and
 * the embedding row take their own type's path. */
Test(forward, mixed_types_close_to_float64_over_same_weights)
{
	const struct types t = { FK_Q8_0, FK_F16, FK_F32, FK_Q4_0, FK_F16, FK_Q8_0, FK_Q4_0,
	                         FK_Q4_0, FK_F16 };
	mixed_against_reference(&t, "mixed");
}

Test(forward, f32_synthetic_matches_float64)
{
	struct ref_model sm;
	float *buf = synth_model(&sm);
	struct wired wd;
	wire(&wd, &sm, FK_F32);
	frt_model *m = create(&wd, 1);
	struct ref_state *ref = ref_create(&sm);
	int token = 5;
	for (int pos = 0; pos < sm.seq_len; pos++) {
		const float *lg = frt_forward(m, token, pos);
		const double *lr = ref_forward(ref, token, pos);
		for (int i = 0; i < sm.vocab_size; i++)
			cr_assert(fabs(lg[i] - lr[i]) <= F32_LOGIT_TOL * fmax(1.0, fabs(lr[i])),
			          "pos %d logit %d: %g vs %g", pos, i, lg[i], lr[i]);
		token = (token * 7 + 3) % sm.vocab_size;
	}
	ref_destroy(ref);
	frt_model_destroy(m);
	unwire(&wd);
	free(buf);
}

/* ------------------------------------------------------------------ */
/* Sampler                                                              */

Test(sampler, greedy_is_argmax_lowest_on_ties)
{
	float v[6] = { 0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 0.0f };
	frt_sampler *s = frt_sampler_create(6, 0.0f, 0.9f, 1);
	cr_assert_eq(frt_sample(s, v), 1);
	frt_sampler_destroy(s);
	cr_assert_eq(frt_argmax(v, 6), 1);
}

/* With temperature 1 the draws follow softmax(logits): check the counts
 * of 40000 draws within 5 standard deviations. */
Test(sampler, empty_vocabulary_is_refused)
{
	errno = 0;
	cr_assert_null(frt_sampler_create(0, 0.0f, 0.9f, 1));
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(frt_last_error(), "vocab_size = 0"), "%s", frt_last_error());
}

Test(sampler, temperature_follows_the_distribution)
{
	const float logits[4] = { 0.0f, 1.0f, 2.0f, -1.0f };
	double p[4], z = 0;
	for (int i = 0; i < 4; i++)
		z += exp(logits[i]);
	for (int i = 0; i < 4; i++)
		p[i] = exp(logits[i]) / z;
	frt_sampler *s = frt_sampler_create(4, 1.0f, 1.0f, 1234);
	int count[4] = {0};
	const int N = 40000;
	for (int k = 0; k < N; k++) {
		float v[4];
		memcpy(v, logits, sizeof v);
		count[frt_sample(s, v)]++;
	}
	for (int i = 0; i < 4; i++) {
		const double sd = sqrt(N * p[i] * (1 - p[i]));
		cr_assert(fabs(count[i] - N * p[i]) < 5 * sd, "token %d: %d draws, expected %.0f", i,
		          count[i], N * p[i]);
	}
	frt_sampler_destroy(s);
}

/* top-p keeps the smallest most likely set above p: with p = 0.5 and
 * probabilities (0.6, 0.3, 0.1) only token 0 is ever drawn; with p = 0.8,
 * tokens 0 and 1 only. */
Test(sampler, top_p_truncates)
{
	const float logits[3] = { logf(0.6f), logf(0.3f), logf(0.1f) };
	frt_sampler *a = frt_sampler_create(3, 1.0f, 0.5f, 7), *b = frt_sampler_create(3, 1.0f, 0.8f, 7);
	int seen_b[3] = {0};
	for (int k = 0; k < 2000; k++) {
		float v[3];
		memcpy(v, logits, sizeof v);
		cr_assert_eq(frt_sample(a, v), 0);
		memcpy(v, logits, sizeof v);
		seen_b[frt_sample(b, v)]++;
	}
	cr_assert_eq(seen_b[2], 0);
	cr_assert(seen_b[0] > 0 && seen_b[1] > 0);
	frt_sampler_destroy(a);
	frt_sampler_destroy(b);
}

Test(sampler, same_seed_same_tokens)
{
	float base[50];
	for (int i = 0; i < 50; i++)
		base[i] = sinf((float)i);
	int run[3][100];
	const uint64_t seeds[3] = { 99, 99, 100 };
	for (int r = 0; r < 3; r++) {
		frt_sampler *s = frt_sampler_create(50, 0.8f, 0.9f, seeds[r]);
		for (int k = 0; k < 100; k++) {
			float v[50];
			memcpy(v, base, sizeof v);
			run[r][k] = frt_sample(s, v);
		}
		frt_sampler_destroy(s);
	}
	cr_assert(!memcmp(run[0], run[1], sizeof run[0]), "seed 99 twice differs");
	cr_assert(memcmp(run[0], run[2], sizeof run[0]), "seeds 99 and 100 give the same tokens");
}

/* ------------------------------------------------------------------ */
/* Generate loop                                                        */

struct seen {
	int pos[64], tok[64], n, stop_after;
};

static int on_token(void *ctx, int pos, int token)
{
	struct seen *s = ctx;
	s->pos[s->n] = pos;
	s->tok[s->n] = token;
	s->n++;
	return s->stop_after && s->n >= s->stop_after;
}

Test(generate, prompt_then_greedy_and_stops)
{
	struct ref_model sm;
	float *buf = synth_model(&sm);
	struct wired wd;
	wire(&wd, &sm, FK_F32);
	frt_model *m = create(&wd, 1);
	frt_sampler *s = frt_sampler_create(sm.vocab_size, 0.0f, 0.0f, 1);

	/* greedy continuation after a forced prompt equals argmax by hand */
	const int prompt[3] = { 1, 17, 42 };
	struct seen seen = { .stop_after = 0 };
	struct frt_gen_stats st;
	cr_assert_eq(frt_generate(m, s, prompt, 3, 10, -1, on_token, &seen, &st), 0, "%s", frt_last_error());
	cr_assert_eq(seen.n, 10, "one callback per forward pass: %d", seen.n);
	cr_assert_eq(st.tokens, 10);
	cr_assert_eq(seen.tok[0], 17);
	cr_assert_eq(seen.tok[1], 42);
	frt_model *m2 = create(&wd, 1);
	int token = 1;
	for (int pos = 0; pos < 10; pos++) {
		const float *lg = frt_forward(m2, token, pos);
		const int next = pos + 1 < 3 ? prompt[pos + 1] : frt_argmax(lg, sm.vocab_size);
		cr_assert_eq(seen.pos[pos], pos + 1);
		cr_assert_eq(seen.tok[pos], next, "token %d: %d, expected %d", pos, seen.tok[pos], next);
		token = next;
	}
	frt_model_destroy(m2);

	/* a callback that says stop, and a stop token */
	struct seen few = { .stop_after = 4 };
	cr_assert_eq(frt_generate(m, s, NULL, 0, 30, -1, on_token, &few, &st), 0);
	cr_assert_eq(few.n, 4);
	struct seen upto = { .stop_after = 0 };
	cr_assert_eq(frt_generate(m, s, NULL, 0, 30, -1, on_token, &upto, &st), 0);
	const int stop = upto.tok[5];
	int first = 0;
	while (upto.tok[first] != stop)
		first++;
	struct seen cut = { .stop_after = 0 };
	cr_assert_eq(frt_generate(m, s, NULL, 0, 30, stop, on_token, &cut, &st), 0);
	cr_assert_eq(cut.n, first, "stopped after %d tokens, expected %d", cut.n, first);

	/* a prompt token out of the vocabulary */
	const int bad[2] = { 1, 80 };
	cr_assert_eq(frt_generate(m, s, bad, 2, 10, -1, NULL, NULL, NULL), -EINVAL);
	cr_assert(strstr(frt_last_error(), "not in the vocabulary"), "%s", frt_last_error());
	errno = 0;
	cr_assert_null(frt_forward(m, 80, 0));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(frt_forward(m, 0, sm.seq_len));
	cr_assert_eq(errno, EINVAL);

	frt_sampler_destroy(s);
	frt_model_destroy(m);
	unwire(&wd);
	free(buf);
}

/* ------------------------------------------------------------------ */
/* Configuration errors                                                 */

/* Every field of the configuration, at its limit, past it and at zero. */
Test(model, config_check_names_each_field)
{
	const struct frt_config ok = { 64, 172, 5, 8, 4, 512, 256, 0, 0 };
	cr_assert_eq(frt_config_check(&ok), 0, "%s", frt_last_error());
	const struct {
		const char *name;
		size_t off;
		int limit;
		int limit_passes;        /* 0: the field's limit fails another rule */
	} f[] = {
		{ "dim", offsetof(struct frt_config, dim), 1 << 16, 1 },
		{ "hidden_dim", offsetof(struct frt_config, hidden_dim), 1 << 20, 1 },
		{ "n_layers", offsetof(struct frt_config, n_layers), 4096, 1 },
		{ "n_heads", offsetof(struct frt_config, n_heads), 1 << 16, 0 },
		{ "n_kv_heads", offsetof(struct frt_config, n_kv_heads), 1 << 16, 0 },
		{ "vocab_size", offsetof(struct frt_config, vocab_size), 1 << 24, 1 },
		{ "seq_len", offsetof(struct frt_config, seq_len), 1 << 20, 1 },
	};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		const int vals[3] = { 0, f[i].limit + 1, f[i].limit };
		const char *const why[3] = { "must be positive", "is implausibly large", NULL };
		for (int k = 0; k < 3; k++) {
			struct frt_config c = ok;
			*(int *)((char *)&c + f[i].off) = vals[k];
			const int rc = frt_config_check(&c);
			if (k == 2 && f[i].limit_passes) {
				cr_assert_eq(rc, 0, "%s = %d (the limit): %s", f[i].name, vals[k],
				             frt_last_error());
				continue;
			}
			cr_assert_eq(rc, -EINVAL, "%s = %d: %d", f[i].name, vals[k], rc);
			if (!why[k])
				continue;
			char want[96];
			snprintf(want, sizeof want, "%s = %d %s", f[i].name, vals[k], why[k]);
			cr_assert(strstr(frt_last_error(), want), "%s: %s", want, frt_last_error());
		}
	}
	struct frt_config c = ok;
	c.rope_theta = -1;
	cr_assert_eq(frt_config_check(&c), -EINVAL);
	cr_assert(strstr(frt_last_error(), "rope_theta"), "%s", frt_last_error());
	c = ok;
	c.norm_eps = NAN;
	cr_assert_eq(frt_config_check(&c), -EINVAL);
	cr_assert(strstr(frt_last_error(), "norm_eps"), "%s", frt_last_error());
	c = ok;
	c.n_kv_heads = 16;
	cr_assert_eq(frt_config_check(&c), -EINVAL);
	cr_assert(strstr(frt_last_error(), "n_heads = 8 is not a multiple of n_kv_heads = 16"), "%s",
	          frt_last_error());
}

Test(model, bad_configs_are_named)
{
	struct ref_model sm;
	float *buf = synth_model(&sm);
	struct wired wd;
	wire(&wd, &sm, FK_Q8_0);
	struct frt_config c = wd.cfg;
	c.n_heads = 3;
	cr_assert_null(frt_model_create(&c, &wd.w, NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(frt_last_error(), "n_heads"), "%s", frt_last_error());
	c = wd.cfg;
	c.n_kv_heads = 3;
	cr_assert_null(frt_model_create(&c, &wd.w, NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(frt_last_error(), "n_kv_heads"), "%s", frt_last_error());
	c = wd.cfg;
	c.dim = -64;
	cr_assert_null(frt_model_create(&c, &wd.w, NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(frt_last_error(), "dim = -64"), "%s", frt_last_error());
	c = wd.cfg;
	c.hidden_dim = 100;
	cr_assert_null(frt_model_create(&c, &wd.w, NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(frt_last_error(), "multiples of 32"), "%s", frt_last_error());
	c = wd.cfg;
	c.n_heads = 64;
	c.n_kv_heads = 64;
	cr_assert_null(frt_model_create(&c, &wd.w, NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(frt_last_error(), "odd"), "%s", frt_last_error());
	struct frt_weights w = wd.w;
	w.token_embd.type = 3;
	cr_assert_null(frt_model_create(&wd.cfg, &w, NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(frt_last_error(), "type"), "%s", frt_last_error());
	w = wd.w;
	wd.layers[1].w2.data = NULL;
	cr_assert_null(frt_model_create(&wd.cfg, &w, NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(frt_last_error(), "layer 1 w2"), "%s", frt_last_error());
	unwire(&wd);
	free(buf);
}
