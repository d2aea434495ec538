/* A program that knows flexrt and flexkern only from their installed
 * files: run.sh builds it out of the tree with `pkg-config --cflags --libs
 * flexrt` (which brings flexkern).
 *
 * It checks a kernel product against a float64 sum, the error convention
 * of both libraries, and one forward pass of a small model whose layers
 * are all zero, so that the logits are the classifier (the embedding,
 * shared) times the RMS-normalised embedding row of the token: a formula
 * computed here in double.  Exit 0 when all agree, 1 otherwise. */
#include <flexrt/runtime.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...) (fprintf(stderr, "rt_consumer: " __VA_ARGS__), fputc('\n', stderr), exit(1))

enum { DIM = 64, HIDDEN = 96, LAYERS = 2, HEADS = 4, KV_HEADS = 2, VOCAB = 40, SEQ = 8 };

static float value(unsigned i)
{
	return (float)((i * 2654435761u >> 8) % 2001) / 1000.0f - 1.0f;
}

static void check_kernels(void)
{
	enum { IN = 96, OUT = 5 };
	static float w[OUT * IN], x[IN], y[OUT];
	for (unsigned i = 0; i < OUT * IN; i++)
		w[i] = value(i);
	for (unsigned i = 0; i < IN; i++)
		x[i] = value(7 * i + 3);
	fk_pool *pool = fk_pool_create(2);
	if (!pool)
		FAIL("fk_pool_create: %s", fk_last_error());
	fk_matvec(pool, y, w, FK_F32, x, IN, OUT);
	fk_pool_destroy(pool);
	for (int r = 0; r < OUT; r++) {
		double want = 0;
		for (int i = 0; i < IN; i++)
			want += (double)w[r * IN + i] * x[i];
		if (fabs(y[r] - want) > 1e-4 * (1 + fabs(want)))
			FAIL("fk_matvec row %d: %.7g, float64 says %.7g", r, y[r], want);
	}
	if (fk_type_parse("q8_0") != FK_Q8_0 || fk_type_parse("q5_1") != -EINVAL ||
	    !strstr(fk_last_error(), "q5_1"))
		FAIL("fk_type_parse: '%s'", fk_last_error());
}

static void check_forward(void)
{
	static float embd[VOCAB * DIM], ones[HIDDEN], zeros[HIDDEN * DIM];
	for (unsigned i = 0; i < VOCAB * DIM; i++)
		embd[i] = value(i + 11);
	for (int i = 0; i < HIDDEN; i++)
		ones[i] = 1.0f;
	struct frt_layer layers[LAYERS];
	for (int l = 0; l < LAYERS; l++)
		layers[l] = (struct frt_layer){
			.attn_norm = ones, .ffn_norm = ones,
			.wq = {zeros, FK_F32}, .wk = {zeros, FK_F32}, .wv = {zeros, FK_F32},
			.wo = {zeros, FK_F32}, .w1 = {zeros, FK_F32}, .w2 = {zeros, FK_F32},
			.w3 = {zeros, FK_F32},
		};
	const struct frt_config cfg = {DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, SEQ, 0, 0};
	const struct frt_weights w = {{embd, FK_F32}, layers, ones, {embd, FK_F32}};

	struct frt_config bad = cfg;
	bad.n_kv_heads = 3;
	if (frt_config_check(&bad) != -EINVAL || !strstr(frt_last_error(), "n_kv_heads = 3"))
		FAIL("frt_config_check: '%s'", frt_last_error());
	errno = 0;
	if (frt_model_create(&bad, &w, NULL) || errno != EINVAL)
		FAIL("frt_model_create accepted n_kv_heads = 3 (errno %d)", errno);

	frt_model *m = frt_model_create(&cfg, &w, &(struct frt_options){.n_threads = 2});
	if (!m)
		FAIL("frt_model_create: %s", frt_last_error());
	const int token = 17;
	const float *logits = frt_forward(m, token, 0);
	if (!logits)
		FAIL("frt_forward: %s", frt_last_error());
	const float *e = embd + token * DIM;
	double ss = 0;
	for (int i = 0; i < DIM; i++)
		ss += (double)e[i] * e[i];
	const double scale = 1.0 / sqrt(ss / DIM + 1e-5);
	for (int v = 0; v < VOCAB; v++) {
		double want = 0;
		for (int i = 0; i < DIM; i++)
			want += (double)embd[v * DIM + i] * e[i] * scale;
		if (fabs(logits[v] - want) > 1e-4 * (1 + fabs(want)))
			FAIL("logit %d: %.7g, float64 says %.7g", v, logits[v], want);
	}
	if (frt_forward(m, VOCAB, 1) || errno != EINVAL)
		FAIL("frt_forward accepted token %d", VOCAB);
	frt_model_destroy(m);
}

int main(void)
{
	check_kernels();
	check_forward();
	printf("rt_consumer: flexkern (%s path) and flexrt agree with float64\n",
	       fk_isa_name(fk_get_isa()));
	return 0;
}
